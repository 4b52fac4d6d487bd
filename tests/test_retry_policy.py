"""Backoff with full jitter and a cap; permanent failures are never retried."""

from __future__ import annotations

import random

import pytest

from notifyd.bimserver.client import bimserver_error
from notifyd.errors import (
    BimServerError,
    BimServerUnavailable,
    InvalidModel,
    PermanentError,
    Retry,
    ServiceCrashed,
    ServiceTimeout,
)
from notifyd.retry import RetryPolicy


def policy() -> RetryPolicy:
    return RetryPolicy(base_seconds=2, cap_seconds=60, rng=random.Random(7))


@pytest.mark.parametrize(
    "error",
    [
        PermanentError("x"),
        InvalidModel("no walls"),
        ServiceTimeout("slow"),
        bimserver_error("UserException", "No rights to download revision", "download"),
        bimserver_error("AuthenticationException", "This token has expired", "download"),
        bimserver_error("UserException", "Invalid token", "download"),
    ],
)
def test_permanent_failures_die_at_once(error: Exception) -> None:
    assert policy().delay(error, attempt=1) is None


@pytest.mark.parametrize(
    "error",
    [
        BimServerUnavailable("connection refused"),
        bimserver_error("UserException", "No data found for topicId 42", "getDownloadData"),
        bimserver_error("ServerException", "database busy", "download"),
        ServiceCrashed("killed"),
        RuntimeError("a bug of ours"),
    ],
)
def test_transient_failures_back_off_within_the_jittered_ceiling(error: Exception) -> None:
    p = policy()
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (5, 32), (6, 60), (20, 60)]:
        for _ in range(50):
            delay = p.delay(error, attempt=attempt)
            assert delay is not None
            assert 0 <= delay <= ceiling


def test_full_jitter_spreads_retries() -> None:
    delays = {round(policy().delay(BimServerUnavailable("x"), attempt=4) or 0, 3)}
    p = policy()
    delays |= {round(p.delay(BimServerUnavailable("x"), attempt=4) or 0, 3) for _ in range(20)}
    assert len(delays) > 10


def test_a_service_may_name_its_delay() -> None:
    assert policy().delay(Retry("later", delay=12.5), attempt=1) == 12.5
    assert policy().delay(Retry("later"), attempt=1) is not None


def test_bimserver_error_keeps_bimservers_message() -> None:
    error = BimServerError("No rights to checkin to this project", call="upload")
    assert error.bimserver_message == "No rights to checkin to this project"
    assert "No rights to checkin to this project" in error.message
    assert error.permanent
