"""POST /json as BIMserver 1.4 and 1.5 call it: descriptors, notifications and bad input."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from notifyd.records import Dialect, JobStatus, NotificationKind
from notifyd.web.keys import STORAGE
from tests.conftest import BIMSERVER
from tests.factories import (
    CONTENT_TYPE,
    INTERFACE,
    make_envelope,
    make_request,
    notification_parameters,
)

DIALECTS = [Dialect.BIMSIE1, Dialect.BIMSERVER_15]

SERVICE_DESCRIPTOR_FIELDS = {
    "__type",
    "name",
    "url",
    "token",
    "identifier",
    "notificationProtocol",
    "description",
    "trigger",
    "readRevision",
    "readExtendedData",
    "writeRevision",
    "writeExtendedData",
    "providerName",
    "companyUrl",
    "tokenUrl",
    "newProfileUrl",
    "registerUrl",
    "authorizeUrl",
}


async def post(client: Any, body: Any, dialect: Dialect = Dialect.BIMSERVER_15, **kw: Any) -> Any:
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    headers = {"Content-Type": CONTENT_TYPE[dialect], **kw.pop("headers", {})}
    return await client.post(kw.pop("path", "/json"), data=data, headers=headers, **kw)


async def call(client: Any, body: Any, dialect: Dialect = Dialect.BIMSERVER_15) -> dict[str, Any]:
    response = await post(client, body, dialect)
    assert response.status == 200
    return await response.json()


def exception_message(answer: dict[str, Any]) -> str:
    exception = answer["response"]["exception"]
    assert exception["__type"] == "UserException"
    return exception["message"]


async def jobs(client: Any) -> list[Any]:
    return await client.app[STORAGE].list_jobs()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_get_service_returns_every_descriptor_field(client: Any, dialect: Dialect) -> None:
    body = make_envelope("getService", dialect, {"serviceIdentifier": "ifc-validation"})
    result = (await call(client, body, dialect))["response"]["result"]
    assert set(result) == SERVICE_DESCRIPTOR_FIELDS
    assert result["__type"] == "SServiceDescriptor"
    assert result["identifier"] == "ifc-validation"
    assert result["notificationProtocol"] == "JSON"
    assert result["trigger"] == "NEW_REVISION"
    assert result["readRevision"] is True
    assert result["readExtendedData"] is None
    assert result["writeRevision"] is False
    assert result["writeExtendedData"] == "VALIDATION_JSON_1_0"
    for key in ("tokenUrl", "newProfileUrl", "registerUrl", "authorizeUrl"):
        assert result[key].startswith(result["url"])


async def test_descriptor_urls_follow_public_url_and_secret(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(
        make_settings(public_url="https://bim.example.com/nd/", secret_path="s3cret")
    )
    body = make_envelope("getService", parameters={"serviceIdentifier": "ifc-summary"})
    result = (await call_path(client, body, "/s3cret/json"))["response"]["result"]
    assert result["url"] == "https://bim.example.com/nd/s3cret"
    assert result["tokenUrl"] == "https://bim.example.com/nd/oauth/access"
    assert result["authorizeUrl"] == "https://bim.example.com/nd/oauth/authorize"


async def call_path(client: Any, body: Any, path: str) -> dict[str, Any]:
    response = await post(client, body, path=path)
    assert response.status == 200
    return await response.json()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_public_profiles_are_profile_descriptors(client: Any, dialect: Dialect) -> None:
    body = make_envelope("getPublicProfiles", dialect, {"serviceIdentifier": "ifc-validation"})
    result = (await call(client, body, dialect))["response"]["result"]
    assert [p["identifier"] for p in result] == ["default", "structure-only"]
    for profile in result:
        assert set(profile) == {"__type", "identifier", "name", "description", "publicProfile"}
        assert profile["__type"] == "SProfileDescriptor"
        assert profile["publicProfile"] is True


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_private_profiles_without_a_token_are_an_empty_list(
    client: Any, dialect: Dialect
) -> None:
    body = make_envelope(
        "getPrivateProfiles", dialect, {"serviceIdentifier": "ifc-summary", "token": None}
    )
    assert (await call(client, body, dialect)) == {"response": {"result": []}}


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_an_unknown_token_for_private_profiles_says_where_to_get_one(
    client: Any, dialect: Dialect
) -> None:
    body = make_envelope(
        "getPrivateProfiles", dialect, {"serviceIdentifier": "ifc-summary", "token": "t"}
    )
    exception = (await call(client, body, dialect))["response"]["exception"]
    assert exception["__type"] == "UserException"
    assert "/account/tokens" in exception["message"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "method",
    ["newRevision", "newExtendedDataOnRevision", "newExtendedDataOnProject"],
)
async def test_notification_is_queued_before_the_void_answer(
    client: Any, dialect: Dialect, method: str
) -> None:
    params = notification_parameters(method)
    answer = await call(client, make_envelope(method, dialect, params), dialect)
    assert answer == {"response": {"result": {}}}
    [job] = await jobs(client)
    assert job.status is JobStatus.QUEUED
    n = job.notification
    assert n.kind is NotificationKind(method)
    assert n.dialect is dialect
    assert (n.poid, n.soid, n.service, n.profile) == (131073, 720899, "ifc-summary", "default")
    assert n.roid == params.get("roid")
    assert n.edid == params.get("edid")
    assert (n.token, n.api_url) == ("d4f8c0ffee0a55", BIMSERVER)
    # The user token is never stored; it names no account here, so the job has none.
    assert (n.user_token, n.account) == (None, None)


async def test_reference_wire_example_is_accepted_verbatim(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(allowed_api_urls=["http://bimserver:8080"]))
    raw = (
        '{"request":{"interface":"RemoteServiceInterface","method":"newRevision",'
        '"parameters":{"poid":131073,"roid":655363,"soid":720899,"serviceIdentifier":'
        '"ifc-summary","profileIdentifier":"default","userToken":"abc","token":"d4f8a55",'
        '"apiUrl":"http://bimserver:8080"}}}'
    )
    assert await call(client, raw) == {"response": {"result": {}}}
    assert len(await jobs(client)) == 1


@pytest.mark.parametrize(
    "interface",
    [
        "Bimsie1RemoteServiceInterface",
        "org.buildingsmart.bimsie1.Bimsie1RemoteServiceInterface",
        "RemoteServiceInterface",
        "org.bimserver.RemoteServiceInterface",
    ],
)
async def test_short_and_fully_qualified_interfaces(client: Any, interface: str) -> None:
    body = {
        "request": make_request(
            "getService", {"serviceIdentifier": "ifc-summary"}, interface=interface
        )
    }
    assert (await call(client, body))["response"]["result"]["identifier"] == "ifc-summary"


async def test_wiki_arguments_key_is_accepted(client: Any) -> None:
    body = {
        "request": {
            "interface": "Bimsie1RemoteServiceInterface",
            "method": "newRevision",
            "arguments": notification_parameters(),
        }
    }
    assert await call(client, body) == {"response": {"result": {}}}
    assert len(await jobs(client)) == 1


async def test_strings_for_numbers_and_unknown_keys(client: Any) -> None:
    params = notification_parameters(poid="131073", roid="655999", soid="-1", extra="ignored")
    assert await call(client, make_envelope(parameters=params)) == {"response": {"result": {}}}
    [job] = await jobs(client)
    assert (job.notification.poid, job.notification.roid, job.notification.soid) == (
        131073,
        655999,
        -1,
    )


async def test_top_level_token_and_id_are_accepted_and_id_echoed(client: Any) -> None:
    body = {**make_envelope("getService", parameters={"serviceIdentifier": "ifc-summary"})}
    body.update({"token": "ignored", "id": 7})
    answer = await call(client, body)
    assert answer["id"] == 7
    assert answer["response"]["result"]["identifier"] == "ifc-summary"


async def test_batch_is_answered_in_order_and_one_bad_request_spoils_nothing(client: Any) -> None:
    body = {
        "id": "b1",
        "requests": [
            make_request("getService", {"serviceIdentifier": "ifc-summary"}),
            make_request("newRevision", notification_parameters()),
            make_request("noSuchMethod", {}),
            make_request("newRevision", notification_parameters(poid="not a number")),
            make_request("newRevision", notification_parameters(roid=1)),
        ],
    }
    answer = await call(client, body)
    assert answer["id"] == "b1"
    responses = answer["responses"]
    assert len(responses) == 5
    # Bare elements, as BIMserver's JsonHandler.processMultiRequest writes them.
    assert responses[0]["result"]["identifier"] == "ifc-summary"
    assert responses[1] == {"result": {}}
    assert "noSuchMethod" in responses[2]["exception"]["message"]
    assert "poid" in responses[3]["exception"]["message"]
    assert responses[4] == {"result": {}}
    assert len(await jobs(client)) == 2


async def test_duplicate_notifications_become_one_job(client: Any) -> None:
    params = notification_parameters()
    bodies = [make_envelope(parameters=params) for _ in range(5)]
    answers = await asyncio.gather(*(call(client, b) for b in bodies))
    assert all(a == {"response": {"result": {}}} for a in answers)
    assert len(await jobs(client)) == 1
    other_profile = make_envelope(parameters={**params, "profileIdentifier": "counts-only"})
    await call(client, other_profile)
    assert len(await jobs(client)) == 2


async def test_extended_data_pair_is_two_jobs(client: Any) -> None:
    """NEW_EXTENDED_DATA arrives as newExtendedDataOnRevision (soid -1), then newRevision."""
    first = notification_parameters("newExtendedDataOnRevision", soid=-1)
    second = {k: v for k, v in first.items() if k != "edid"}
    await call(client, make_envelope("newExtendedDataOnRevision", parameters=first))
    await call(client, make_envelope("newRevision", parameters=second))
    kinds = sorted(str(j.notification.kind) for j in await jobs(client))
    assert kinds == ["newExtendedDataOnRevision", "newRevision"]


async def test_null_profile_uses_the_default_profile(client: Any) -> None:
    params = notification_parameters(profileIdentifier=None, userToken=None)
    assert await call(client, make_envelope(parameters=params)) == {"response": {"result": {}}}
    [job] = await jobs(client)
    assert job.notification.profile == "default"
    assert job.notification.user_token is None


BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "must be a JSON object, not an array"),
    (b"\xff\xfe", "not valid UTF-8"),
    (b'{"hello": 1}', "neither 'request' nor 'requests'"),
    (b'{"request": "newRevision"}', "'request' must be a JSON object"),
    (b'{"requests": {}}', "'requests' must be a list"),
    (b'{"request": {"method": "getService"}}', "has no 'interface'"),
    (
        b'{"request": {"interface": "ServiceInterface", "method": "getService"}}',
        "Interface 'ServiceInterface' not found",
    ),
    (b'{"request": {"interface": "RemoteServiceInterface"}}', "has no 'method'"),
    (
        b'{"request": {"interface": "RemoteServiceInterface", "method": "__init__"}}',
        "Method '__init__' not found",
    ),
    (
        b'{"request": {"interface": "RemoteServiceInterface", "method": "getService",'
        b' "parameters": [1]}}',
        "'parameters' of getService must be a JSON object",
    ),
    (
        b'{"request": {"interface": "RemoteServiceInterface", "method": "getService",'
        b' "parameters": {}}}',
        "Missing parameter: getService -> serviceIdentifier",
    ),
]


@pytest.mark.parametrize(("body", "expected"), BAD_BODIES)
async def test_bad_bodies_get_a_user_exception_naming_the_fault(
    client: Any, body: bytes, expected: str
) -> None:
    response = await post(client, body)
    assert response.status == 200
    assert expected in exception_message(await response.json())
    assert await jobs(client) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"roid": None}, "Parameter newRevision -> roid must not be null"),
        ({"poid": "abc"}, "newRevision -> poid"),
        ({"soid": 1.5}, "newRevision -> soid"),
        ({"token": ""}, "newRevision -> token"),
        ({"token": None}, "newRevision -> token must not be null"),
        ({"apiUrl": None}, "newRevision -> apiUrl must not be null"),
        ({"serviceIdentifier": "nope"}, "No service found with identifier 'nope'"),
        ({"profileIdentifier": "nope"}, "has no profile with identifier 'nope'"),
        ({"apiUrl": "http://evil.test:8080"}, "apiUrl 'http://evil.test:8080' is not allowed"),
        ({"apiUrl": "file:///etc/passwd"}, "is not an http(s) URL"),
        ({"apiUrl": "http://bimserver.test:8081"}, "is not allowed"),
    ],
)
async def test_bad_notification_parameters_are_refused_by_name(
    client: Any, overrides: dict[str, Any], expected: str
) -> None:
    answer = await call(client, make_envelope(**overrides))
    assert expected in exception_message(answer)
    assert await jobs(client) == []


OUT_OF_RANGE = [2**63, str(2**63), 2**64, -2, "-9223372036854775809", 1e400]


@pytest.mark.parametrize("field", ["poid", "roid", "soid"])
@pytest.mark.parametrize("value", OUT_OF_RANGE, ids=repr)
async def test_an_id_no_java_long_holds_fails_only_its_own_call(
    client: Any, field: str, value: Any
) -> None:
    """Valid notifications batched with it are stored and answered; it is refused by name."""
    good = [make_request("newRevision", notification_parameters()) for _ in range(3)]
    bad = make_request("newRevision", notification_parameters(**{field: value}))
    body = json.dumps({"requests": [good[0], bad, *good[1:]]}).replace("Infinity", "1e400")
    response = await post(client, body.encode())
    assert response.status == 200
    answers = (await response.json())["responses"]
    assert [("result" in a) for a in answers] == [True, False, True, True]
    message = answers[1]["exception"]["message"]
    assert f"newRevision -> {field}" in message
    assert len(await jobs(client)) == 3


@pytest.mark.parametrize("field", ["poid", "roid"])
async def test_minus_one_is_none_and_names_what_is_missing(client: Any, field: str) -> None:
    answer = await call(client, make_envelope(**{field: -1}))
    assert "-1 is BIMserver's 'none'" in exception_message(answer)
    assert await jobs(client) == []


async def test_the_largest_java_long_is_an_id(client: Any) -> None:
    answer = await call(client, make_envelope(poid=2**63 - 1, roid=str(2**63 - 1)))
    assert answer == {"response": {"result": {}}}
    [job] = await jobs(client)
    assert (job.notification.poid, job.notification.roid) == (2**63 - 1, 2**63 - 1)


@pytest.mark.parametrize(
    "sent",
    [
        f"  {BIMSERVER}",
        f"{BIMSERVER}\n",
        f"{BIMSERVER}\r\n",
        f"{BIMSERVER}/",
        f"{BIMSERVER}//",
        f"{BIMSERVER}?",
        f"{BIMSERVER}#",
        BIMSERVER.upper().replace("HTTP://", "http://"),
    ],
)
async def test_api_url_is_normalised_before_it_is_checked_and_stored(
    client: Any, sent: str
) -> None:
    answer = await call(client, make_envelope(apiUrl=sent))
    assert answer == {"response": {"result": {}}}
    [job] = await jobs(client)
    assert job.notification.api_url == BIMSERVER


@pytest.mark.parametrize(
    ("sent", "says"),
    [
        (f"{BIMSERVER}/?x=1", "has a query"),
        (f"{BIMSERVER}#frag", "has a fragment"),
        ("http://bimserver.test:8080/bim server", "whitespace or control characters"),
        ("http://bimserver.test:8080\r\nX-Injected: 1", "whitespace or control characters"),
        ("http://user:pw@bimserver.test:8080", "must not carry a user name or password"),
        ("http://bimserver.test:99999", "not a valid URL"),
    ],
)
async def test_an_api_url_that_cannot_be_called_is_refused_by_name(
    client: Any, sent: str, says: str
) -> None:
    answer = await call(client, make_envelope(apiUrl=sent))
    message = exception_message(answer)
    assert says in message
    assert "pw" not in message
    assert await jobs(client) == []


@pytest.mark.parametrize("field", ["token", "userToken"])
async def test_a_refused_secret_is_never_echoed(
    client: Any, field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = await call(client, make_envelope(**{field: ["SECRET-VALUE"]}))
    message = exception_message(answer)
    assert f"newRevision -> {field}" in message
    assert "SECRET" not in message
    assert "SECRET" not in capsys.readouterr().err


async def test_missing_parameter_is_named(client: Any) -> None:
    params = notification_parameters()
    del params["apiUrl"]
    answer = await call(client, make_envelope(parameters=params))
    assert exception_message(answer) == "Missing parameter: newRevision -> apiUrl"


async def test_oversized_body_is_refused_with_413_and_json(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(max_body_bytes=2048))
    params = notification_parameters(userToken="x" * 4096)
    response = await post(client, make_envelope(parameters=params))
    assert response.status == 413
    assert "limit of 2048 bytes" in exception_message(await response.json()) or (
        "the limit is 2048" in exception_message(await response.json())
    )
    assert await jobs(client) == []


async def test_oversized_chunked_body_is_refused(make_client: Any, make_settings: Any) -> None:
    client = await make_client(make_settings(max_body_bytes=2048))

    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post("/json", data=chunks())
    assert response.status == 413
    assert "max_body_bytes" in exception_message(await response.json())


async def test_ip_allowlist_refuses_other_callers(make_client: Any, make_settings: Any) -> None:
    client = await make_client(make_settings(allowed_ips=["10.0.0.0/8"]))
    response = await post(client, make_envelope())
    assert response.status == 403
    assert "127.0.0.1" in exception_message(await response.json())
    assert await jobs(client) == []


async def test_ip_allowlist_admits_loopback(make_client: Any, make_settings: Any) -> None:
    client = await make_client(make_settings(allowed_ips=["127.0.0.0/8", "::1/128"]))
    assert await call(client, make_envelope()) == {"response": {"result": {}}}


async def test_forwarded_for_counts_only_from_trusted_proxies(
    make_client: Any, make_settings: Any
) -> None:
    untrusted = await make_client(make_settings(allowed_ips=["192.0.2.0/24"]))
    spoofed = await post(untrusted, make_envelope(), headers={"X-Forwarded-For": "192.0.2.7"})
    assert spoofed.status == 403
    trusted = await make_client(
        make_settings(allowed_ips=["192.0.2.0/24"], trusted_proxies=["127.0.0.0/8"])
    )
    proxied = await post(trusted, make_envelope(), headers={"X-Forwarded-For": "192.0.2.7"})
    assert proxied.status == 200


async def test_secret_path_hides_the_plain_endpoint(make_client: Any, make_settings: Any) -> None:
    client = await make_client(make_settings(secret_path="s3cret", base_path="/bim"))
    assert (await post(client, make_envelope(), path="/json")).status == 404
    assert (await post(client, make_envelope(), path="/bim/json")).status == 404
    answer = await call_path(client, make_envelope(), "/bim/s3cret/json")
    assert answer == {"response": {"result": {}}}


async def test_bad_requests_do_not_disturb_concurrent_good_ones(client: Any) -> None:
    good = [make_envelope() for _ in range(20)]
    bad: list[Any] = [b"{oops", make_envelope(poid="x"), make_envelope(serviceIdentifier="x")] * 5
    answers = await asyncio.gather(*(post(client, body) for body in [*good, *bad]))
    assert all(a.status == 200 for a in answers)
    assert len(await jobs(client)) == 20


async def test_healthz_reports_queue_counts(client: Any) -> None:
    await call(client, make_envelope())
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["jobs"]["queued"] == 1


async def test_answers_are_json_with_request_id(client: Any) -> None:
    response = await post(client, make_envelope(), headers={"X-Request-Id": "abc-123"})
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Request-Id"] == "abc-123"


def test_interfaces_table_names_both_dialects() -> None:
    assert set(INTERFACE.values()) == {"Bimsie1RemoteServiceInterface", "RemoteServiceInterface"}


async def test_a_service_url_typed_with_a_trailing_slash_still_reaches_the_endpoint(
    make_client: Any, make_settings: Any
) -> None:
    """BIMserver posts to the stored URL + "/json", so ".../bim/" arrives as "/bim//json"."""
    client = await make_client(make_settings(base_path="/bim"))
    answer = await call_path(client, make_envelope(), "/bim//json")
    assert answer == {"response": {"result": {}}}


@pytest.mark.parametrize(
    ("dialect", "token_path"),
    [(Dialect.BIMSIE1, "/account/tokens"), (Dialect.BIMSERVER_15, "/oauth/access")],
)
async def test_token_url_is_the_token_page_for_1_4_and_the_oauth_endpoint_for_1_5(
    client: Any, dialect: Dialect, token_path: str
) -> None:
    body = make_envelope("getService", dialect, {"serviceIdentifier": "ifc-summary"})
    result = (await call(client, body, dialect))["response"]["result"]
    assert result["tokenUrl"].endswith(token_path)
    page = await client.get(token_path, allow_redirects=False)
    assert page.status in (303, 405)  # the page (sign in first) / the token endpoint is POST
