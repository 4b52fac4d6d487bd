"""The enqueue link between a receiver process and its primary: what a receiver sends is
committed as if the primary had received it, a bad frame is refused by name without
disturbing the rest, and a primary that goes away fails what was waiting (never a false
acknowledgement)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from notifyd.errors import StorageError
from notifyd.records import EnqueueResult, Origin, Upload
from notifyd.storage.enqueue_link import (
    EnqueueLink,
    EnqueueServer,
    origin_from_wire,
    origin_to_wire,
)
from notifyd.storage.sqlite import SqliteStorage
from tests.factories import make_notification


@pytest.fixture
async def linked(
    tmp_path: Path, storage: SqliteStorage
) -> AsyncIterator[tuple[EnqueueServer, EnqueueLink]]:
    async def enqueue(origin: Origin, max_attempts: int) -> EnqueueResult:
        return await storage.enqueue(origin, max_attempts=max_attempts)

    server = EnqueueServer(tmp_path / "link" / "enqueue.sock", enqueue, lambda: ["a problem"])
    await server.start()
    link = EnqueueLink(server.path)
    await link.connect()
    try:
        yield server, link
    finally:
        await link.close()
        await server.close()


def test_notifications_and_uploads_cross_the_link_unchanged() -> None:
    notification = make_notification(account="ann")
    upload = Upload(
        upload_id="u1",
        service="ifc-summary",
        profile="default",
        input_type="IFC_STEP_2X3TC1",
        output_type="JSON",
        model_path="uploads/u1.ifc",
        size=12,
        client_id="c",
    )
    for origin in (notification, upload):
        assert origin_from_wire(orjson.loads(orjson.dumps(origin_to_wire(origin)))) == origin


def test_a_frame_that_is_no_origin_is_named() -> None:
    with pytest.raises(ValueError, match="unknown origin type 'job'"):
        origin_from_wire({"type": "job", "fields": {}})
    with pytest.raises(ValueError, match="not a notification"):
        origin_from_wire({"type": "notification", "fields": {"kind": "newRevision"}})


async def test_what_a_receiver_sends_is_committed_once(
    linked: tuple[EnqueueServer, EnqueueLink], storage: SqliteStorage
) -> None:
    _, link = linked
    notification = make_notification()
    first, again = await asyncio.gather(
        link.enqueue(notification, max_attempts=3), link.enqueue(notification, max_attempts=3)
    )
    assert first.job_id == again.job_id
    assert sorted([first.created, again.created]) == [False, True]
    job = await storage.get(first.job_id)
    assert job.max_attempts == 3
    assert await link.primary_problems() == ["a problem"]


async def test_a_malformed_frame_is_refused_by_name_and_the_rest_still_committed(
    linked: tuple[EnqueueServer, EnqueueLink], storage: SqliteStorage
) -> None:
    server, link = linked
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    body = b'{"id":7,"origin":{"type":"notification","fields":{}},"max_attempts":1}'
    writer.write(struct.pack("!I", len(body)) + body)
    length = struct.unpack("!I", await reader.readexactly(4))[0]
    reply = await reader.readexactly(length)
    assert b'"id":7' in reply
    assert b"a malformed enqueue frame: not a notification" in reply
    writer.close()
    stored = await link.enqueue(make_notification(), max_attempts=5)
    assert stored.created


async def test_a_primary_that_goes_away_fails_what_waits(tmp_path: Path) -> None:
    """The primary reads the frame and dies before answering (its socket closes)."""
    path = tmp_path / "enqueue.sock"

    async def die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(4)
        writer.close()

    server = await asyncio.start_unix_server(die, path=str(path))
    link = EnqueueLink(path)
    await link.connect()
    with pytest.raises(StorageError, match="primary process"):
        await link.enqueue(make_notification(), max_attempts=1)
    assert link.closed.is_set()
    with pytest.raises(StorageError, match="the primary process is gone"):
        await link.enqueue(make_notification(), max_attempts=1)
    await link.close()
    server.close()
    await server.wait_closed()


async def test_a_receiver_without_a_primary_says_where_it_looked(tmp_path: Path) -> None:
    link = EnqueueLink(tmp_path / "nobody.sock")
    with pytest.raises(StorageError, match=r"cannot reach the primary process at .*nobody\.sock"):
        await link.connect(timeout=0.2)
