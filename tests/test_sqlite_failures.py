"""A failure inside the SQLite backend answers every caller with a StorageError; nobody waits
forever and the next notification is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from notifyd.errors import StorageError
from notifyd.storage import sqlite as backend
from notifyd.storage.sqlite import SqliteStorage
from tests.factories import make_envelope, make_notification

pytestmark = pytest.mark.attack  # the attack-and-fault suite: -m attack


async def test_a_failing_insert_is_reported_and_the_next_one_stored(
    storage: SqliteStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = backend._enqueue_many
    calls = []

    def failing_once(conn: Any, ops: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk went away")
        return real(conn, ops)

    monkeypatch.setattr(backend, "_enqueue_many", failing_once)
    with pytest.raises(StorageError, match="disk went away"):
        await storage.enqueue(make_notification(), max_attempts=3)
    assert (await storage.enqueue(make_notification(), max_attempts=3)).created
    assert len(await storage.list_jobs()) == 1


async def test_a_storage_failure_answers_bimserver_with_503_and_a_user_exception(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(conn: Any, ops: Any) -> Any:
        raise RuntimeError("disk full")

    monkeypatch.setattr(backend, "_enqueue_many", failing)
    response = await client.post("/json", data=json.dumps(make_envelope()))
    assert response.status == 503
    exception = (await response.json())["response"]["exception"]
    assert exception["__type"] == "UserException"
    assert "could not store the notification" in exception["message"]
    assert "disk full" in exception["message"]
