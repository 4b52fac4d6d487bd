"""The job state rules, one decision each, whatever backend applies them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from notifyd import job_rules as rules
from notifyd.errors import InvalidTransition
from notifyd.records import AttemptOutcome, Job, JobStatus
from tests.factories import make_notification


def job(**overrides: Any) -> Job:
    values: dict[str, Any] = {
        "id": 7,
        "status": JobStatus.RUNNING,
        "origin": make_notification(),
        "attempts": 1,
        "max_attempts": 3,
        "run_after": 0.0,
        "lease_until": 50.0,
        "worker_id": "w",
        "cancel_requested": False,
        "created_at": 0.0,
        "updated_at": 0.0,
        "finished_at": None,
        "last_error": None,
    }
    values.update(overrides)
    return Job(**values)


def test_a_failure_with_attempts_left_queues_the_job_at_its_retry_time() -> None:
    t = rules.failed(job(), "boom", retry_at=99.0, spend_attempt=True)
    assert (t.status, t.outcome, t.run_after, t.drops_worker) == (
        JobStatus.QUEUED,
        AttemptOutcome.FAILED,
        99.0,
        True,
    )


def test_the_last_attempt_dies_keeping_the_tokens_for_a_retry() -> None:
    t = rules.failed(job(attempts=3), "boom", retry_at=99.0, spend_attempt=True)
    assert (t.status, t.ended, t.erases_tokens) == (JobStatus.DEAD, True, False)


def test_a_permanent_failure_dies_at_once_and_erases_the_tokens() -> None:
    t = rules.failed(job(), "no rights", retry_at=None, spend_attempt=True)
    assert (t.status, t.erases_tokens) == (JobStatus.DEAD, True)


def test_an_attempt_not_spent_raises_the_limit_instead() -> None:
    t = rules.failed(job(attempts=3), "down", retry_at=99.0, spend_attempt=False)
    assert (t.status, t.max_attempts) == (JobStatus.QUEUED, 4)


def test_a_failure_of_a_job_asked_to_stop_cancels_it() -> None:
    t = rules.failed(job(cancel_requested=True), "stopped", retry_at=99.0, spend_attempt=True)
    assert (t.status, t.outcome) == (JobStatus.CANCELLED, AttemptOutcome.CANCELLED)


def test_an_expired_lease_queues_the_job_again_or_ends_it() -> None:
    assert rules.lease_expired(job(), 10.0).status is JobStatus.QUEUED
    last = rules.lease_expired(job(attempts=3), 10.0)
    assert (last.status, last.erases_tokens) == (JobStatus.DEAD, False)
    asked = rules.lease_expired(job(cancel_requested=True), 10.0)
    assert asked.status is JobStatus.CANCELLED


def test_a_release_gives_the_attempt_back() -> None:
    t = rules.released(job(), 10.0)
    assert (t.status, t.max_attempts, t.last_error) == (JobStatus.QUEUED, 4, None)


def test_a_retry_reopens_an_ended_job_that_can_still_run() -> None:
    dead = job(status=JobStatus.DEAD, attempts=3, finished_at=5.0)
    t = rules.retried(dead, 10.0, 2)
    assert (t.status, t.max_attempts, t.reopened) == (JobStatus.QUEUED, 5, True)
    spent = replace(dead, origin=make_notification(token=None))
    with pytest.raises(InvalidTransition, match="no longer holds a BIMserver token"):
        rules.retried(spent, 10.0, 1)
    with pytest.raises(InvalidTransition, match="only queued, dead or cancelled"):
        rules.retried(job(), 10.0, 1)


def test_a_cancel_ends_a_queued_job_and_asks_a_running_one() -> None:
    assert rules.cancelled(job(status=JobStatus.QUEUED)).status is JobStatus.CANCELLED
    asked = rules.cancelled(job())
    assert (asked.status, asked.cancel_requested) == (JobStatus.RUNNING, True)
    with pytest.raises(InvalidTransition, match="already succeeded"):
        rules.cancelled(job(status=JobStatus.SUCCEEDED))
