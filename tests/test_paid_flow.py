"""A paid service, end to end through HTTP and the CLI, following only what notifyd says:
refused with "payment required" and where to register; an account and a user token made
through the API; refused for want of credit; topped up with `notifyd accounts credit`; then
the job runs for that account with its private profile and is charged once. A job that
dies is refunded."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from notifyd.emulator.notifier import ServiceCallFailed
from notifyd.records import JobStatus
from tests.cli import admin_command
from tests.factories import make_envelope
from tests.ifc_factory import build_model
from tests.stack import running_stack, wait_for_jobs

EMAIL, PASSWORD = "carol@example.com", "correct horse"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{EMAIL}:{PASSWORD}".encode()).decode()}


async def _post(url: str, body: Any, **options: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, **options) as r:
        return r.status, await r.json()


async def _get(url: str, token: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return await r.json()


async def test_from_payment_required_to_a_paid_job(tmp_path: Path) -> None:
    model = build_model(tmp_path / "model.ifc")
    async with running_stack(tmp_path, prices={"ifc-summary": 3}) as stack:
        poid = stack.emulator.add_project()
        service = await stack.service("ifc-summary", poid=poid)

        # 1. No account: refused, and told where to register and get a token.
        roid = stack.emulator.add_revision(poid, model)
        with pytest.raises(ServiceCallFailed) as refused:
            await stack.emulator.notify_new_revision(service, roid)
        message = str(refused.value)
        assert "payment required: ifc-summary costs 3 credits per job" in message
        api = re.search(r"POST (\S+)/api/accounts", message)
        assert api is not None
        assert "/account/register" in message

        # 2. Following it, with no browser: an account and a user token.
        status, _ = await _post(
            f"{stack.url}/api/accounts", {"email": EMAIL, "password": PASSWORD, "name": "carol"}
        )
        assert status == 201
        status, issued = await _post(
            f"{stack.url}/api/tokens",
            {"label": "bimserver"},
            headers=BASIC,
        )
        assert status == 201
        token = issued["token"]
        service = dataclasses.replace(service, user_token=token)

        # 3. An account without credit: refused, with the balance and where to top up.
        with pytest.raises(ServiceCallFailed) as poor:
            await stack.emulator.notify_new_revision(service, roid)
        assert "the account carol holds 0" in str(poor.value)
        assert "top up at" in str(poor.value)

        # 4. Topped up from the command line; a private profile; BIMserver lists it.
        assert "balance 10" in await admin_command(
            tmp_path / "data", "accounts", "credit", EMAIL, "10"
        )
        status, _ = await _post(
            f"{stack.url}/api/profiles",
            {
                "service": "ifc-summary",
                "identifier": "counts",
                "name": "Counts",
                "settings": {"include_quantities": False, "group_by_storey": False},
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert status == 201
        listing = make_envelope(
            "getPrivateProfiles",
            parameters={"serviceIdentifier": "ifc-summary", "token": token},
        )
        status, listed = await _post(f"{stack.url}/json", listing)
        assert [p["identifier"] for p in listed["response"]["result"]] == ["private:counts"]
        service = dataclasses.replace(service, profile="private:counts")

        # 5. The job runs for carol with her profile and is charged once.
        await stack.emulator.notify_new_revision(service, roid)
        await stack.emulator.notify_new_revision(service, roid)  # BIMserver sent it twice
        [job] = await wait_for_jobs(stack.storage, 1)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        assert (job.account, job.profile) == ("carol", "private:counts")
        assert job.notification.user_token is None
        [written] = stack.emulator.extended_data_of(roid)
        summary = json.loads(written["data"])
        assert "storeys" not in summary  # the private profile's group_by_storey = false
        assert summary["elementCounts"]["IfcWall"] == 3
        account = await _get(f"{stack.url}/api/account", token)
        assert account["balance"] == 7


async def test_a_paid_job_that_dies_is_refunded(tmp_path: Path) -> None:
    model = build_model(tmp_path / "model.ifc")
    async with running_stack(tmp_path, prices={"test-boom": 2}, max_attempts=1) as stack:
        await _post(
            f"{stack.url}/api/accounts", {"email": EMAIL, "password": PASSWORD, "name": "carol"}
        )
        _status, issued = await _post(f"{stack.url}/api/tokens", {}, headers=BASIC)
        await admin_command(tmp_path / "data", "accounts", "credit", EMAIL, "5")
        poid = stack.emulator.add_project()
        service = dataclasses.replace(
            await stack.service("test-boom", poid=poid), user_token=issued["token"]
        )
        await stack.emulator.notify_new_revision(service, stack.emulator.add_revision(poid, model))
        [job] = await wait_for_jobs(stack.storage, 1)
        assert job.status is JobStatus.DEAD
        # Refunded on the worker's next maintenance round (reclaim_seconds).
        for _ in range(100):
            balance = (await _get(f"{stack.url}/api/account", issued["token"]))["balance"]
            if balance == 5:
                break
            await asyncio.sleep(0.1)
        assert balance == 5
