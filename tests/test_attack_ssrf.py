"""A notification's apiUrl is where the worker will send the notification's token: any
address the allowlist does not name is refused when the notification arrives (loopback,
link-local and cloud metadata, private ranges, other hosts, look-alikes and URL tricks), and
nothing is queued for it. (A redirect from an allowed BIMserver never takes the token
elsewhere: tests/test_worker_faults.py::test_a_redirect_never_takes_the_token_to_another_host.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from notifyd.web.keys import STORAGE
from tests.conftest import BIMSERVER
from tests.factories import make_envelope

pytestmark = pytest.mark.attack

HOSTILE = [
    "http://127.0.0.1:8080",
    "http://localhost:8080",
    "http://[::1]:8080",
    "http://0.0.0.0:8080",
    "http://2130706433:8080",  # 127.0.0.1 as one number
    "http://0x7f000001:8080",
    "http://127.1:8080",
    "http://169.254.169.254/latest/meta-data",  # cloud metadata
    "http://[fe80::1]:8080",
    "http://10.0.0.5:8080",
    "http://172.16.0.1:8080",
    "http://192.168.1.1:8080",
    "http://[fd00::1]:8080",
    "http://bimserver.test.evil.example:8080",  # look-alike host
    "http://bimserver.test:8081",  # another port
    "https://bimserver.test:8080",  # another scheme
    "http://bimserver.test:8080@evil.example",  # credentials trick
    "http://evil.example#@bimserver.test:8080",
    "http://evil.example/?x=http://bimserver.test:8080",
    "file:///etc/passwd",
    "gopher://bimserver.test:8080/",
    "ftp://bimserver.test:8080/",
    "http://bimserver.test:8080\\@evil.example",
    "",
]


@pytest.mark.parametrize("api_url", HOSTILE)
async def test_an_api_url_outside_the_allowlist_is_refused_and_nothing_queued(
    make_client: Any, make_settings: Any, api_url: str
) -> None:
    client = await make_client(make_settings(allowed_api_urls=[BIMSERVER]))
    answer = await client.post("/json", data=json.dumps(make_envelope(apiUrl=api_url)))
    assert answer.status == 200
    exception = (await answer.json())["response"]["exception"]
    assert exception["__type"] == "UserException"
    assert "apiUrl" in exception["message"]
    assert await client.app[STORAGE].list_jobs() == []


async def test_the_allowlisted_server_is_accepted_and_the_figures_recorded(
    make_client: Any, make_settings: Any, figures: Callable[[str], None]
) -> None:
    client = await make_client(make_settings(allowed_api_urls=[BIMSERVER]))
    answer = await client.post("/json", data=json.dumps(make_envelope(apiUrl=BIMSERVER)))
    assert (await answer.json()) == {"response": {"result": {}}}
    assert len(await client.app[STORAGE].list_jobs()) == 1
    figures(f"{len(HOSTILE)} hostile apiUrls refused with a UserException, none queued")
