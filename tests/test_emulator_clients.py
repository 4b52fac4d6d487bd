"""The emulator accepts what real BIMserver clients send: python-bimserver-client's short names,
form Content-Type and string booleans; bimserverapi's qualified names, top-level token,
batches and /stream websocket."""

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
        params: dict[str, Any] = (
            {"roid": str(roid), "serializerOid": "131", "showOwn": "false", "sync": "false"}
            if dialect is Dialect.BIMSIE1
            else {"roids": [roid], "query": "{}", "serializerOid": "262182", "sync": "false"}
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


async def test_bimserverapi_style(tmp_path: Path) -> None:
    async with BimServerEmulator() as emulator, aiohttp.ClientSession() as session:
        poid = emulator.add_project("P")
        content_type = "application/json; charset=UTF-8"
        login = await post(
            session,
            emulator.url,
            {
                "request": {
                    "interface": "org.bimserver.AuthInterface",
                    "method": "login",
                    "parameters": {"username": emulator.username, "password": emulator.password},
                }
            },
            content_type,
        )
        token = login["response"]["result"]
        batch = await post(
            session,
            emulator.url,
            {
                "token": token,
                "requests": [
                    {
                        "interface": "org.bimserver.ServiceInterface",
                        "method": "getProjectByPoid",
                        "parameters": {"poid": poid},
                    },
                    {
                        "interface": "org.bimserver.ServiceInterface",
                        "method": "getProjectByPoid",
                        "parameters": {},
                    },
                ],
            },
            content_type,
        )
        first, second = batch["responses"]
        assert first["response"]["result"]["name"] == "P"
        assert second["response"]["exception"]["message"] == (
            "Missing parameter: getProjectByPoid -> poid"
        )
        async with session.ws_connect(f"{emulator.url}/stream") as socket:
            assert "welcome" in await socket.receive_json()
            await socket.send_json({"token": token})
            assert "endpointid" in await socket.receive_json()


async def test_strict_about_type_and_rights(tmp_path: Path) -> None:
    model = build_model(tmp_path / "m.ifc")
    async with BimServerEmulator() as emulator, aiohttp.ClientSession() as session:
        poid = emulator.add_project()
        roid = emulator.add_revision(poid, model)
        from notifyd.emulator import Grant

        token = emulator.issue_token(
            Grant(read_roids=set(), write_extended_data_roids=set(), checkin_poid=None)
        )
        untyped = await post(
            session,
            emulator.url,
            {
                "token": token,
                "request": {
                    "interface": "ServiceInterface",
                    "method": "uploadFile",
                    "parameters": {"file": {"data": "", "filename": "x", "mime": "x", "size": 0}},
                },
            },
            "application/json",
        )
        assert untyped["response"]["exception"]["message"] == "Missing __type field"
        refused = await post(
            session,
            emulator.url,
            {
                "token": token,
                "request": {
                    "interface": "ServiceInterface",
                    "method": "download",
                    "parameters": {
                        "roids": [roid],
                        "query": "{}",
                        "serializerOid": 262182,
                        "sync": False,
                    },
                },
            },
            "application/json",
        )
        assert refused["response"]["exception"]["message"] == "No rights to download revision"
        wrong_dialect = await post(
            session,
            emulator.url,
            {
                "token": token,
                "request": {
                    "interface": "Bimsie1ServiceInterface",
                    "method": "download",
                    "parameters": {},
                },
            },
            "application/json",
        )
        assert "not found" in wrong_dialect["response"]["exception"]["message"]
