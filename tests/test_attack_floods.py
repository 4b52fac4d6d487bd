"""Slow clients and floods against a running `notifyd serve`: connections that dribble their
request head are cut, connections past the limit are refused at once, and a flood of ten
times the ack benchmark's load (320 connections) does not stop a BIMserver's notifications
from being acknowledged."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from tests.daemon import Daemon
from tests.factories import make_envelope

pytestmark = [pytest.mark.attack, pytest.mark.slow]


async def _notify(session: aiohttp.ClientSession, url: str) -> tuple[int, float]:
    started = time.perf_counter()
    async with session.post(f"{url}/json", data=json.dumps(make_envelope())) as response:
        await response.read()
        return response.status, time.perf_counter() - started


async def _slow_head(port: int, stop: asyncio.Event) -> bool:
    """Send a request head one byte at a time; whether the daemon cut the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Slow: "
    try:
        for byte in head + b"a" * 1000:
            if stop.is_set():
                return False
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                    return True
            except TimeoutError:
                continue
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        writer.close()


async def test_slow_heads_are_cut_and_a_flood_does_not_stop_notifications(
    tmp_path: Path, figures: Callable[[str], None]
) -> None:
    daemon = Daemon(
        tmp_path / "data",
        env={"NOTIFYD_HEAD_TIMEOUT_SECONDS": "1.5", "NOTIFYD_MAX_CONNECTIONS": "1024"},
    )
    await daemon.start()
    try:
        stop = asyncio.Event()
        slow = [asyncio.create_task(_slow_head(daemon.port, stop)) for _ in range(200)]
        flood_answers: list[int] = []

        async def flood(session: aiohttp.ClientSession, until: float) -> None:
            while time.monotonic() < until:
                try:
                    status, _ = await _notify(session, daemon.url)
                    flood_answers.append(status)
                except aiohttp.ClientError:
                    flood_answers.append(0)

        connector = aiohttp.TCPConnector(limit=320)
        async with aiohttp.ClientSession(connector=connector) as flooding:
            until = time.monotonic() + 6
            flooders = [asyncio.create_task(flood(flooding, until)) for _ in range(320)]
            await asyncio.sleep(0.5)
            legit: list[tuple[int, float]] = []
            async with aiohttp.ClientSession() as bimserver:
                while time.monotonic() < until - 0.5:
                    legit.append(await _notify(bimserver, daemon.url))
                    await asyncio.sleep(0.05)
            await asyncio.gather(*flooders)
        cut = sum(await asyncio.gather(*slow))
        stop.set()
    finally:
        daemon.stop()

    assert all(status == 200 for status, _ in legit), legit
    seconds = sorted(took for _, took in legit)
    p99 = seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))]
    assert cut == 200, f"only {cut} of 200 slow connections were cut"
    assert p99 < 5.0
    answered = sum(1 for s in flood_answers if s == 200)
    figures(
        f"200 slow-head connections: {cut} cut after the 1.5 s head timeout; flood of 320 "
        f"connections: {answered} of {len(flood_answers)} notifications answered 200 in 6 s; "
        f"a BIMserver beside them: {len(legit)} of {len(legit)} acknowledged, "
        f"p50 {statistics.median(seconds) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )


async def test_connections_past_the_limit_are_refused_at_once(
    tmp_path: Path, figures: Callable[[str], None]
) -> None:
    daemon = Daemon(
        tmp_path / "data",
        env={"NOTIFYD_MAX_CONNECTIONS": "50", "NOTIFYD_HEAD_TIMEOUT_SECONDS": "30"},
    )
    await daemon.start()
    held = []
    try:
        for _ in range(50):
            held.append(await asyncio.open_connection("127.0.0.1", daemon.port))
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b"too many connections" in answer
        for _reader, held_writer in held:
            held_writer.close()
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as session:
            status, _ = await _notify(session, daemon.url)
        assert status == 200
    finally:
        daemon.stop()
    figures(
        "50 held connections at max_connections=50: the 51st answered 503 at once; "
        "once they closed, a notification was acknowledged"
    )
