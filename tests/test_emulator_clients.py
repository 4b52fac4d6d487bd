"""The emulator accepts what python-bimserver-client sends: short names, a form Content-Type
and string booleans (bimserverapi itself drives it in test_bimserverapi_flows.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifyd.emulator import BimServerEmulator
from notifyd.records import Dialect
from tests.ifc_factory import build_model


async def post(session: aiohttp.ClientSession, url: str, body: Any, content_type: str) -> Any:
    async with session.post(
        f"{url}/json", data=json.dumps(body), headers={"Content-Type": content_type}
    ) as response:
        assert response.status == 200
        return await response.json(content_type=None)


@pytest.mark.parametrize("dialect", [Dialect.BIMSIE1, Dialect.BIMSERVER_15])
async def test_python_bimserver_client_style(tmp_path: Path, dialect: Dialect) -> None:
    model = build_model(tmp_path / "m.ifc")
    form = "application/x-www-form-urlencoded"
    async with BimServerEmulator(dialect) as emulator, aiohttp.ClientSession() as session:
        poid = emulator.add_project()
        roid = emulator.add_revision(poid, model)
        interfaces = await post(
            session,
            emulator.url,
            {
                "request": {
                    "interface": "MetaInterface",
                    "method": "getServiceInterfaces",
                    "parameters": {},
                }
            },
            form,
        )
        names = {i["simpleName"] for i in interfaces["response"]["result"]}
        assert ("Bimsie1AuthInterface" in names) is (dialect is Dialect.BIMSIE1)
        auth = "Bimsie1AuthInterface" if dialect is Dialect.BIMSIE1 else "AuthInterface"
        login = await post(
            session,
            emulator.url,
            {
                "request": {
                    "interface": auth,
                    "method": "login",
                    "parameters": {"username": emulator.username, "password": emulator.password},
                }
            },
            form,
        )
        token = login["response"]["result"]
        service = "Bimsie1ServiceInterface" if dialect is Dialect.BIMSIE1 else "ServiceInterface"
        oid = str(next(iter(emulator.state.serializers)))
        params: dict[str, Any] = (
            {"roid": str(roid), "serializerOid": oid, "showOwn": "false", "sync": "false"}
            if dialect is Dialect.BIMSIE1
            else {"roids": [roid], "query": "{}", "serializerOid": oid, "sync": "false"}
        )
        started = await post(
            session,
            emulator.url,
            {
                "token": token,
                "request": {"interface": service, "method": "download", "parameters": params},
            },
            form,
        )
        assert isinstance(started["response"]["result"], int)
