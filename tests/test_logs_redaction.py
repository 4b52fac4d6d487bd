"""No BIMserver token or other secret ever reaches a log line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import structlog

from notifyd.logs import REDACTED, configure_logging, redact_secrets, scrub_text
from tests.factories import make_envelope


def test_redacts_secret_keys_at_any_depth() -> None:
    event = {
        "event": "x",
        "token": "T",
        "parameters": {"userToken": "U", "poid": 1, "nested": [{"access_token": "A"}]},
        "Authorization": "Bearer B",
        "client_secret": "S",
    }
    out = redact_secrets(None, "info", event)
    assert out["token"] == REDACTED
    assert out["parameters"]["userToken"] == REDACTED
    assert out["parameters"]["poid"] == 1
    assert out["parameters"]["nested"][0]["access_token"] == REDACTED
    assert out["Authorization"] == REDACTED
    assert out["client_secret"] == REDACTED


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_configured_logger_never_prints_a_token(
    capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    configure_logging(log_format, "debug")
    structlog.get_logger("t").info("notification", token="SECRET-T", userToken="SECRET-U")
    logging.getLogger("aiohttp.test").warning("stdlib %s", "line", extra={"token": "SECRET-S"})
    err = capsys.readouterr().err
    assert "SECRET" not in err
    assert "notification" in err
    assert "stdlib line" in err


def test_json_lines_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    structlog.get_logger("t").info("job_claimed", job_id=3)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["job_id"] == 3


async def test_a_whole_notification_request_logs_no_token(
    client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("json", "debug")
    body = make_envelope(token="SECRET-TOKEN-1", userToken="SECRET-USER-1")
    response = await client.post("/json", data=json.dumps(body))
    assert response.status == 200
    bad = make_envelope(token="SECRET-TOKEN-2", poid="not a number")
    await client.post("/json", data=json.dumps(bad))
    err = capsys.readouterr().err
    assert "SECRET" not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    queued = next(line for line in lines if line.get("job_id"))
    assert queued["event"] == "json_request"
    assert queued["method"] == "newRevision"
    assert queued["request_id"]
    refused = next(line for line in lines if "error" in line)
    assert "poid" in refused["error"]


def test_an_exception_is_logged_with_type_message_and_traceback_but_no_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("json", "info")
    try:
        raise RuntimeError("GET http://b.test/download?token=SECRET-Q&topicId=1 failed")
    except RuntimeError:
        structlog.get_logger("t").exception("worker_loop_failed")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "worker_loop_failed"
    assert line["level"] == "error"
    assert line["error_type"] == "RuntimeError"
    assert "download?token=[redacted]&topicId=1" in line["error"]
    assert "Traceback (most recent call last)" in line["exception"]
    assert "SECRET" not in json.dumps(line)


def test_aiohttps_own_error_lines_carry_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    try:
        raise ValueError('Invalid body b\'{"token":"SECRET-B","poid":1}\'')
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    err = capsys.readouterr().err
    line = json.loads(err.strip().splitlines()[-1])
    assert line["event"] == "Error handling request"
    assert line["error_type"] == "ValueError"
    assert "SECRET" not in err


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("/download?token=abc&topicId=5", "/download?token=[redacted]&topicId=5"),
        ('{"token":"X","poid":1}', '{"token":"[redacted]","poid":1}'),
        ('"userToken": ["X"]', '"userToken": ["[redacted]"]'),
        ("Authorization: Bearer abc", "Authorization: [redacted]"),
        ("errorCode: 5, soid=3", "errorCode: 5, soid=3"),
    ],
)
def test_secrets_written_into_text_are_cut_out(text: str, scrubbed: str) -> None:
    assert scrub_text(text) == scrubbed


async def test_a_failing_request_is_logged_with_its_traceback(
    aiohttp_client: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiohttp import web

    from notifyd.web.middlewares import request_middleware

    async def broken(_request: web.Request) -> web.Response:
        raise KeyError("token=SECRET-K")

    app = web.Application(middlewares=[request_middleware])
    app.router.add_get("/broken", broken)
    configure_logging("json", "info")
    client = await aiohttp_client(app)
    response = await client.get("/broken")
    assert response.status == 500
    err = capsys.readouterr().err
    line = next(json.loads(x) for x in err.splitlines() if '"request_failed"' in x)
    assert line["error_type"] == "KeyError"
    assert "in broken" in line["exception"]
    assert "SECRET" not in err
