"""``POST /services/{service}``: a posted model runs through the queue and the worker and
comes back as the result, synchronously or by polling; every bad request is refused before
anything runs."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session

from notifyd.config import Settings
from notifyd.records import JobStatus, StoredResult
from notifyd.web.keys import SETTINGS, STORAGE
from tests.bots_client import REDIRECT, access_token, consent, register, run
from tests.ifc_factory import build_model

IFC2X3 = {"Input-Type": "IFC_STEP_2X3TC1", "Output-Type": "IFC_ANALYTICS_JSON_1_0"}
IFC4 = {"Input-Type": "IFC_STEP_4", "Output-Type": "IFC_ANALYTICS_JSON_1_0"}


@pytest.fixture
async def bots(
    make_client: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Path
) -> Any:
    settings = make_settings(
        run_worker=True,
        poll_seconds=0.2,
        bots_max_upload_bytes=2_000_000,
        public_url="http://bots.test",
    )
    client = await make_client(settings)
    client.base = str(client.make_url("")).rstrip("/")
    client.model = build_model(tmp_path / "model.ifc").read_bytes()
    return client


async def test_authlib_completes_the_code_flow_and_calls_a_service(bots: Any) -> None:
    registered = await run(register, bots.base, redirect_uris=[REDIRECT])
    session = OAuth2Session(
        registered["client_id"],
        registered["client_secret"],
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, state = session.create_authorization_url(
        f"{bots.base}/oauth/authorize", code_verifier=verifier
    )
    callback = await run(consent, url, username="alice", password="12345678", create="on")
    token = await run(
        session.fetch_token,
        f"{bots.base}/oauth/access",
        authorization_response=callback,
        code_verifier=verifier,
        state=state,
    )
    resource = token["resource_url"].replace("http://bots.test", bots.base)
    answer = await run(
        session.post,
        resource,
        data=bots.model,
        headers={**IFC4, "Context-Id": "ctx-42"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["Content-Disposition"].startswith('attachment; filename="summary-')
    assert answer.headers["Output-Type"] == "IFC_ANALYTICS_JSON_1_0"
    assert answer.headers["Data-Title"] == "IFC summary"
    assert answer.headers["Context-Id"] == "ctx-42"
    summary = answer.json()
    assert summary["schema"] == "IFC4"
    assert summary["elementCounts"]["IfcWall"] == 3
    [job] = await _jobs(bots)
    assert job.origin.account == "alice"
    assert isinstance(job.result.delivery, StoredResult)


async def _jobs(bots: Any) -> list[Any]:
    return list(await bots.app[STORAGE].list_jobs())


async def test_a_bimserver_shaped_post_gets_what_bimserver_reads(bots: Any) -> None:
    token = await run(access_token, bots.base)
    # ServiceImpl.triggerRevisionService: Bearer, Input-Type, Output-Type, raw body, and no
    # Content-Type at all.
    answer = await run(
        requests.post,
        f"{bots.base}/services/ifc-summary",
        data=bots.model,
        headers={"Authorization": f"Bearer {token}", **IFC4, "Content-Type": ""},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    disposition = answer.headers["Content-Disposition"]
    start = disposition.index("filename=") + 10  # BIMserver: indexOf("filename=") + 10
    assert disposition[start : disposition.index('"', start)].endswith(".json")
    assert answer.headers["Content-Type"]


async def test_bimservers_own_token_header_is_accepted(bots: Any) -> None:
    token = await run(access_token, bots.base)
    answer = await run(
        requests.post,
        f"{bots.base}/services/ifc-summary",
        data=bots.model,
        headers={"Token": token, **IFC4},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text


# BIMserver's Accept-Flow, or RFC 7240's Prefer: respond-async.
@pytest.mark.parametrize("asks_async", [{"Accept-Flow": "ASYNC"}, {"Prefer": "respond-async"}])
async def test_an_async_post_answers_202_and_the_result_is_fetched_later(
    bots: Any, asks_async: dict[str, str]
) -> None:
    token = await run(access_token, bots.base)
    auth = {"Authorization": f"Bearer {token}"}
    answer = await run(
        requests.post,
        f"{bots.base}/services/ifc-summary",
        data=bots.model,
        headers={**auth, **IFC4, **asks_async, "Context-Id": "c1"},
        timeout=60,
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["Output-Type"] == "Async"
    topic = answer.headers["Topic-Id"]
    assert answer.headers["Location"] == f"http://bots.test/bots/jobs/{topic}"
    assert answer.headers["Context-Id"] == "c1"
    state_url = f"{bots.base}/bots/jobs/{topic}"
    for _ in range(300):
        state = (await run(requests.get, state_url, headers=auth, timeout=10)).json()
        if state["state"] == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert state["state"] == "succeeded"
    result = await run(requests.get, f"{state_url}/result", headers=auth, timeout=10)
    assert result.status_code == 200
    assert result.json()["elementCounts"]["IfcWall"] == 3
    assert result.headers["Context-Id"] == "c1"
    # Another account's token sees no such topic.
    other = await run(access_token, bots.base, "mallory")
    hidden = await run(
        requests.get, state_url, headers={"Authorization": f"Bearer {other}"}, timeout=10
    )
    assert hidden.status_code == 404


async def test_a_model_the_service_cannot_read_fails_with_its_reason(bots: Any) -> None:
    token = await run(access_token, bots.base)
    answer = await run(
        requests.post,
        f"{bots.base}/services/ifc-summary",
        data=b"<html>502 Bad Gateway</html>",
        headers={"Authorization": f"Bearer {token}", **IFC4},
        timeout=60,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]


@pytest.mark.parametrize(
    ("headers", "path", "status", "says"),
    [
        ({}, "ifc-summary", 401, "invalid_token"),
        ({"Authorization": "Bearer nope"}, "ifc-summary", 401, "invalid_token"),
        ({"Output-Type": "IFC_ANALYTICS_JSON_1_0"}, "ifc-summary", 400, "Input-Type"),
        ({"Input-Type": "IFC_STEP_4"}, "ifc-summary", 400, "Output-Type"),
        ({**IFC4, "Input-Type": "BCF_ZIP_2_0"}, "ifc-summary", 415, "BCF_ZIP_2_0"),
        ({**IFC4, "Output-Type": "VALIDATION_JSON_1_0"}, "ifc-summary", 415, "Output-Type"),
        (IFC4, "no-such-service", 404, "no-such-service"),
        ({**IFC4, "Content-Encoding": "br"}, "ifc-summary", 415, "Content-Encoding"),
    ],
)
async def test_a_bad_request_is_refused_and_nothing_runs(
    bots: Any, headers: dict[str, str], path: str, status: int, says: str
) -> None:
    token = await run(access_token, bots.base)
    sent = dict(headers)
    if status != 401:
        sent["Authorization"] = f"Bearer {token}"
    answer = await run(
        requests.post, f"{bots.base}/services/{path}", data=bots.model, headers=sent, timeout=10
    )
    assert answer.status_code == status, answer.text
    assert says in answer.text
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert await _jobs(bots) == []


async def test_a_model_over_the_limit_is_refused_and_not_kept(bots: Any) -> None:
    token = await run(access_token, bots.base)

    def chunks() -> Any:  # no Content-Length: the limit is found while streaming
        for _ in range(40):
            yield b"x" * 65_536

    answer = await run(
        requests.post,
        f"{bots.base}/services/ifc-summary",
        data=chunks(),
        headers={"Authorization": f"Bearer {token}", **IFC4},
        timeout=10,
    )
    assert answer.status_code == 413
    assert await _jobs(bots) == []
    uploads = bots.app[SETTINGS].data_dir / "uploads"
    assert not any(uploads.iterdir())


async def test_an_empty_post_is_refused(bots: Any) -> None:
    token = await run(access_token, bots.base)
    answer = await run(
        requests.post,
        f"{bots.base}/services/ifc-summary",
        data=b"",
        headers={"Authorization": f"Bearer {token}", **IFC4},
        timeout=10,
    )
    assert answer.status_code == 400
    assert "no model" in answer.json()["error"]


async def test_the_real_samples_run_through_the_resource_endpoint(
    bots: Any, ifc_samples: Path
) -> None:
    token = await run(access_token, bots.base)
    for path, headers in (
        (ifc_samples / "ifc2x3" / "4walls1floorSite.ifc", IFC2X3),
        (ifc_samples / "ifc4" / "wall-elemented-case.ifc", IFC4),
    ):
        answer = await run(
            requests.post,
            f"{bots.base}/services/ifc-summary",
            data=path.read_bytes(),
            headers={"Authorization": f"Bearer {token}", **headers},
            timeout=120,
        )
        assert answer.status_code == 200, (path.name, answer.text)
        assert json.loads(answer.content)["products"] > 0
    jobs = await bots.app[STORAGE].list_jobs()
    assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}


async def test_a_bimserver_shaped_client_goes_from_registration_to_a_result(bots: Any) -> None:
    """Each request as BIMserver's source builds it (OAuthServiceImpl, ServiceImpl)."""
    registration = (
        await run(
            requests.post,
            f"{bots.base}/oauth/register",
            data=json.dumps(
                {
                    "type": "push",
                    "client_name": "BIMserver",
                    "client_url": "http://bim.local/apps/bimviews/",
                    "client_description": "",
                    "client_icon": "",
                    "redirect_url": "http://bim.local/apps/bimviews/",
                }
            ),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    ).json()
    state = json.dumps({"_poid": 1, "_soid": 2, "_serverId": 3, "_serviceName": "IFC summary"})
    url = (
        f"{bots.base}/oauth/authorize?client_id={registration['client_id']}"
        f"&response_type=code&state={requests.utils.quote(state)}&auth_type=service"
        "&redirect_uri=http%3A%2F%2Fbim.local%2Fapps%2Fbimviews%2F%3Fpage%3DOAuth"
    )
    callback = await run(consent, url, username="bim", password="12345678", create="on")
    code = requests.utils.urlparse(callback).query.split("code=")[1].split("&")[0]
    token = (
        await run(
            requests.post,
            f"{bots.base}/oauth/access",
            data={
                "grant_type": "authorization_code",
                "code": requests.utils.unquote(code),
                "client_id": registration["client_id"],
                "client_secret": registration["client_secret"],
                "redirect_uri": "crap",
            },
            timeout=10,
        )
    ).json()
    resource = token["resource_url"].replace("http://bots.test", bots.base)
    assert resource.endswith("/services/ifc-summary")
    answer = await run(
        requests.post,
        resource,
        data=bots.model,
        headers={"Authorization": f"Bearer {token['access_token']}", **IFC4, "Content-Type": ""},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["Data-Title"] == "IFC summary"
    [job] = await _jobs(bots)
    assert job.origin.account == "bim"
    assert job.origin.client_id == registration["client_id"]


async def test_a_job_longer_than_the_sync_wait_is_answered_202(
    make_client: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    client = await make_client(
        make_settings(run_worker=True, poll_seconds=0.2, bots_sync_wait_seconds=0)
    )
    base = str(client.make_url("")).rstrip("/")
    token = await run(access_token, base)
    answer = await run(
        requests.post,
        f"{base}/services/ifc-summary",
        data=build_model(tmp_path / "m.ifc").read_bytes(),
        headers={"Authorization": f"Bearer {token}", **IFC4},
        timeout=60,
    )
    assert answer.status_code == 202
    assert answer.headers["Output-Type"] == "Async"
    assert answer.headers["Location"].endswith(f"/bots/jobs/{answer.headers['Topic-Id']}")


async def test_a_token_request_may_come_as_json(bots: Any) -> None:
    registered = await run(register, bots.base, redirect_uris=[REDIRECT])
    url = (
        f"{bots.base}/oauth/authorize?client_id={registered['client_id']}&response_type=code"
        "&service=ifc-summary"
    )
    callback = await run(consent, url, username="json", password="12345678", create="on")
    code = requests.utils.unquote(callback.split("code=")[1].split("&")[0])
    answer = await run(
        requests.post,
        f"{bots.base}/oauth/access",
        json={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": registered["client_id"],
            "client_secret": registered["client_secret"],
        },
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["resource_url"].endswith("/services/ifc-summary")


async def test_a_refused_upload_is_never_invited(bots: Any) -> None:
    """curl sends Expect: 100-continue for large bodies: a bad token or a declared size over
    the limit is answered before the body is sent."""
    token = await run(access_token, bots.base)
    for headers, status in (
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Bearer {token}", "Content-Length": "3000000"}, 413),
    ):
        reader, writer = await asyncio.open_connection(bots.server.host, bots.server.port)
        head = [
            "POST /services/ifc-summary HTTP/1.1",
            f"Host: {bots.server.host}",
            "Expect: 100-continue",
            "Input-Type: IFC_STEP_4",
            "Output-Type: IFC_ANALYTICS_JSON_1_0",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        if "Content-Length" not in headers:
            head.append("Content-Length: 1000")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status_line.split()[1] == str(status).encode(), status_line


async def test_a_paid_service_without_credit_is_refused_before_the_body(
    make_client: Callable[..., Any], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(run_worker=True, prices={"ifc-summary": 2})
    client = await make_client(settings)
    base = str(client.make_url("")).rstrip("/")
    token = await run(access_token, base)
    answer = await run(
        requests.post,
        f"{base}/services/ifc-summary",
        data=build_model(tmp_path / "model.ifc").read_bytes(),
        headers={"Authorization": f"Bearer {token}", **IFC4},
        timeout=60,
    )
    assert answer.status_code == 402, answer.text
    assert "costs 2 credits per job" in answer.text
    assert "holds 0" in answer.text
    assert await client.app[STORAGE].list_jobs() == []
