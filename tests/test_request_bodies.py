"""Request bodies on /json: refused early when too large, cut off when they stall, bounded in
memory together, and inflated by notifyd itself; every answer is BIMserver's JSON."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any

import pytest

from notifyd.web.keys import BODY_BUDGET, STORAGE
from tests.factories import make_envelope

pytestmark = pytest.mark.attack  # the attack-and-fault suite: -m attack


async def _raw(client: Any, head: bytes, body: bytes = b"") -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(head + body)
    await writer.drain()
    return reader, writer


def _head(length: int | None, *extra: str) -> bytes:
    lines = ["POST /json HTTP/1.1", "Host: notifyd", "Content-Type: application/json", *extra]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    status_line = await asyncio.wait_for(reader.readline(), 10)
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), json.loads(body)


def _message(answer: dict[str, Any]) -> str:
    exception = answer["response"]["exception"]
    assert exception["__type"] == "UserException"
    return str(exception["message"])


async def test_an_oversized_expect_100_continue_gets_its_413_not_an_invitation(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(max_body_bytes=4096))
    reader, writer = await _raw(client, _head(10_000_000, "Expect: 100-continue"))
    status, answer = await _answer(reader)
    writer.close()
    assert status == 413
    assert "10000000 bytes; the limit is 4096" in _message(answer)


async def test_an_acceptable_expect_100_continue_is_invited_and_answered(client: Any) -> None:
    body = json.dumps(make_envelope()).encode()
    reader, writer = await _raw(client, _head(len(body), "Expect: 100-continue"))
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 100")
    assert await reader.readline() == b"\r\n"
    writer.write(body)
    status, answer = await _answer(reader)
    writer.close()
    assert (status, answer) == (200, {"response": {"result": {}}})


async def test_a_body_that_stops_arriving_is_cut_off_with_408(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(body_idle_seconds=0.3))
    reader, writer = await _raw(client, _head(1000), b'{"request": ')
    status, answer = await _answer(reader)
    writer.close()
    assert status == 408
    assert "stopped arriving for 0.3 s (12 bytes received)" in _message(answer)


async def test_a_body_that_trickles_is_cut_off_at_the_deadline(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(make_settings(body_idle_seconds=0.5, body_timeout_seconds=1.0))
    reader, writer = await _raw(client, _head(1000))

    async def trickle() -> None:
        for _ in range(30):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.1)

    feeding = asyncio.create_task(trickle())
    status, answer = await _answer(reader)
    feeding.cancel()
    writer.close()
    assert status == 408
    assert "did not arrive within 1 s" in _message(answer)


async def test_stalled_large_bodies_share_a_budget_and_small_ones_always_pass(
    make_client: Any, make_settings: Any
) -> None:
    client = await make_client(
        make_settings(max_body_bytes=400_000, body_budget_bytes=200_000, body_idle_seconds=5)
    )
    budget = client.app[BODY_BUDGET]
    stalled = []
    for _ in range(4):
        reader, writer = await _raw(client, _head(390_000), b" " * 150_000)
        stalled.append((reader, writer))
    await asyncio.sleep(0.3)
    assert budget.held <= 200_000
    refused = []
    for reader, _writer in stalled:
        try:
            status, answer = await asyncio.wait_for(_answer(reader), 0.5)
        except TimeoutError:
            continue
        refused.append(status)
        assert "too many large request bodies" in _message(answer)
    assert refused
    assert set(refused) == {503}
    response = await client.post("/json", data=json.dumps(make_envelope()))
    assert (response.status, await response.json()) == (200, {"response": {"result": {}}})
    for _reader, writer in stalled:
        writer.close()
    await asyncio.sleep(0.1)
    assert budget.held <= 200_000


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, br"])
async def test_an_encoding_notifyd_does_not_inflate_is_refused_as_json(
    client: Any, encoding: str
) -> None:
    body = json.dumps(make_envelope()).encode()
    response = await client.post(
        "/json", data=body, headers={"Content-Encoding": encoding}, compress=None
    )
    assert response.status == 415
    assert "is not supported" in _message(await response.json())
    assert await client.app[STORAGE].list_jobs() == []


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some send it
    ],
)
async def test_a_gzip_or_deflate_body_is_inflated(client: Any, encoding: str, pack: Any) -> None:
    body = pack(json.dumps(make_envelope()).encode())
    response = await client.post("/json", data=body, headers={"Content-Encoding": encoding})
    assert (response.status, await response.json()) == (200, {"response": {"result": {}}})
    assert len(await client.app[STORAGE].list_jobs()) == 1


async def test_a_gzip_bomb_is_refused_at_the_limit(client: Any) -> None:
    bomb = gzip.compress(b" " * 200_000_000, compresslevel=9)
    assert len(bomb) < 1_000_000
    response = await client.post("/json", data=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status == 413
    assert "inflates to over the limit" in _message(await response.json())


@pytest.mark.parametrize("body", [b"not gzip at all", gzip.compress(b'{"request": {}}')[:-12]])
async def test_an_invalid_gzip_body_is_named(client: Any, body: bytes) -> None:
    response = await client.post("/json", data=body, headers={"Content-Encoding": "gzip"})
    assert response.status == 200
    assert "not valid gzip" in _message(await response.json())
