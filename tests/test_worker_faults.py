"""Every fault the emulator can inject ends in a retry that succeeds or a dead job that says
why, with BIMserver's own message in the job's history."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifyd.emulator import FaultKind
from notifyd.records import (
    AttemptOutcome,
    Dialect,
    ExtendedDataWritten,
    JobStatus,
    RevisionCheckedIn,
)
from tests.ifc_factory import build_model
from tests.stack import running_stack, wait_for_jobs, wait_for_status

pytestmark = pytest.mark.attack  # the attack-and-fault suite: -m attack

# (fault, target, times, what the failed attempt's error says). A dropped GET is repeated once
# by aiohttp itself on a fresh connection, so that fault must happen twice to reach notifyd.
TRANSIENT = [
    (FaultKind.HTTP_500, "getSerializerByPluginClassName", 1, "HTTP 500"),
    (FaultKind.HTTP_503, "addExtendedDataToRevision", 1, "HTTP 503"),
    (FaultKind.DROP, "uploadFile", 1, "uploadFile"),
    (FaultKind.DROP, "/download", 2, "download"),
    (FaultKind.TRUNCATE, "/download", 1, "broke off"),
    (FaultKind.NO_DATA_FOR_TOPIC, "getProgress", 1, "No data found for topicId"),
    (FaultKind.SLOW, "getProgress", 1, "timed out"),
]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return build_model(tmp_path / "model.ifc")


@pytest.mark.parametrize("dialect", [Dialect.BIMSIE1, Dialect.BIMSERVER_15])
@pytest.mark.parametrize(("kind", "target", "times", "says"), TRANSIENT)
async def test_transient_fault_is_retried_and_succeeds(
    tmp_path: Path,
    model: Path,
    dialect: Dialect,
    kind: FaultKind,
    target: str,
    times: int,
    says: str,
) -> None:
    async with running_stack(tmp_path, dialect, bimserver_timeout_seconds=0.5) as stack:
        stack.emulator.inject(kind, target, times=times, delay=2.0)
        job, roid = await stack.run("test-noop", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        history = await stack.storage.attempts(job.id)
        assert [a.outcome for a in history] == [AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED]
        assert says in (history[0].error or "")
        assert len(stack.emulator.extended_data_of(roid)) == 1


async def test_raw_download_missing_falls_back_to_get_download_data(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emulator.inject(FaultKind.HTTP_404, "/download")
        job, _ = await stack.run("ifc-summary", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        assert job.attempts == 1
        assert stack.emulator.calls_to("getDownloadData")


@pytest.mark.parametrize(
    ("kind", "target", "message", "says"),
    [
        (FaultKind.EXPIRED_TOKEN, "getSerializerByPluginClassName", "", "This token has expired"),
        (
            FaultKind.EXCEPTION,
            "addExtendedDataToRevision",
            "No rights to write extended data to revision",
            "No rights to write extended data",
        ),
        (
            FaultKind.EXCEPTION,
            "download",
            "No rights to download revision",
            "No rights to download revision",
        ),
    ],
)
async def test_permanent_fault_kills_the_job_at_once(
    tmp_path: Path, model: Path, kind: FaultKind, target: str, message: str, says: str
) -> None:
    async with running_stack(tmp_path) as stack:
        stack.emulator.inject(kind, target, times=10, message=message)
        job, _ = await stack.run("test-noop", model)
        assert job.status is JobStatus.DEAD
        assert job.attempts == 1
        assert says in (job.last_error or "")
        [attempt] = await stack.storage.attempts(job.id)
        assert attempt.outcome is AttemptOutcome.DEAD


async def test_an_expired_token_found_at_download_kills_the_job(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(tmp_path, Dialect.BIMSIE1) as stack:
        service = await stack.service("test-noop")
        poid = stack.emulator.add_project()
        roid = stack.emulator.add_revision(poid, model)
        token = await stack.emulator.notify_new_revision(service, roid)
        stack.emulator.expire_token(token)
        [job] = await wait_for_jobs(stack.storage, 1)
        assert job.status is JobStatus.DEAD
        assert "AuthenticationException" not in (job.last_error or "")  # 1.4: a UserException
        assert "This token has expired" in (job.last_error or "")


async def test_an_outage_past_the_patience_ends_dead_after_max_attempts(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(
        tmp_path, max_attempts=3, outage_patience_seconds=0, outage_probe_cap_seconds=0.1
    ) as stack:
        stack.emulator.inject(FaultKind.HTTP_503, "getSerializerByPluginClassName", times=100)
        job, _ = await stack.run("test-noop", model)
        assert job.status is JobStatus.DEAD
        history = await stack.storage.attempts(job.id)
        assert [a.outcome for a in history] == [
            AttemptOutcome.FAILED,
            AttemptOutcome.FAILED,
            AttemptOutcome.DEAD,
        ]
        assert all("HTTP 503" in (a.error or "") for a in history)
        assert job.notification.token is not None  # kept for `notifyd jobs retry`


async def test_a_bimserver_that_answers_with_transient_faults_spends_attempts(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(tmp_path, max_attempts=2) as stack:
        stack.emulator.inject(FaultKind.NO_DATA_FOR_TOPIC, "getProgress", times=100)
        job, _ = await stack.run("test-noop", model)
        assert job.status is JobStatus.DEAD
        assert job.attempts == 2
        assert await stack.storage.outages() == []


async def test_extended_data_is_written_once_when_the_answer_is_lost(
    tmp_path: Path, model: Path
) -> None:
    """BIMserver stores the extended data but the connection drops before the answer: the
    retry finds it on the revision instead of adding it twice."""
    async with running_stack(tmp_path) as stack:
        stack.emulator.inject(FaultKind.DROP_AFTER, "addExtendedDataToRevision")
        job, roid = await stack.run("test-noop", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        assert job.attempts == 2
        assert len(stack.emulator.extended_data_of(roid)) == 1
        assert len(stack.emulator.calls_to("uploadFile")) == 1
        assert job.result is not None
        assert isinstance(job.result.delivery, ExtendedDataWritten)
        assert job.result.delivery.already_present


@pytest.mark.parametrize(
    ("service", "status", "says", "attempts"),
    [
        ("test-reject", JobStatus.DEAD, "the model has no walls", 1),
        ("test-boom", JobStatus.DEAD, "ValueError: boom", 1),
        ("test-timeout", JobStatus.DEAD, "longer than its timeout of 0.5 s", 1),
        ("test-crash", JobStatus.DEAD, "the service process died (exit code 3)", 2),
        ("test-retry", JobStatus.SUCCEEDED, None, 2),
    ],
)
async def test_service_outcomes(
    tmp_path: Path, model: Path, service: str, status: JobStatus, says: str | None, attempts: int
) -> None:
    async with running_stack(tmp_path, max_attempts=2) as stack:
        job, _ = await stack.run(service, model)
        assert job.status is status, job.last_error
        assert job.attempts == attempts
        if says:
            assert says in (job.last_error or "")


async def test_memory_limit_stops_a_greedy_service(tmp_path: Path, model: Path) -> None:
    async with running_stack(tmp_path, memory_limit_mb=1024) as stack:
        job, _ = await stack.run("test-memory", model)
        assert job.status is JobStatus.DEAD
        assert "out of memory" in (job.last_error or "")


async def test_cancelling_a_running_job_stops_its_service(tmp_path: Path, model: Path) -> None:
    async with running_stack(tmp_path) as stack:
        job, roid = await stack.running_job("test-slow", model)
        await stack.storage.cancel(job.id)
        cancelled = await wait_for_status(stack.storage, job.id, JobStatus.CANCELLED, timeout=5)
        assert cancelled.notification.token is None
        assert stack.emulator.extended_data_of(roid) == []
        [topic] = stack.emulator.topics.values()
        assert topic.states[-1]["state"] == "AS_ERROR"


@pytest.mark.parametrize("dialect", [Dialect.BIMSIE1, Dialect.BIMSERVER_15])
async def test_serializer_lookups_that_throw_fall_back_to_the_content_type(
    tmp_path: Path, model: Path, dialect: Dialect
) -> None:
    """A renamed serializer and a plugin the user has no configuration of: both lookups throw
    (AbstractGetByFieldDatabaseAction, GetSerializerByPluginClassNameDatabaseAction), so the
    content type is asked."""
    async with running_stack(tmp_path, dialect) as stack:
        for serializer in stack.emulator.state.serializers.values():
            serializer.name = f"renamed {serializer.name}"
        stack.emulator.inject(
            FaultKind.EXCEPTION,
            "getSerializerByPluginClassName",
            times=100,
            message="No plugin found for this user with classname x",
        )
        job, _ = await stack.run("ifc-summary", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        assert stack.emulator.calls_to("getSerializerByName")
        assert stack.emulator.calls_to("getSerializerByContentType")


async def test_bimserver_1_4_schema_with_an_unknown_namespace_is_found_by_name(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(tmp_path, Dialect.BIMSIE1) as stack:
        job, roid = await stack.run("test-odd-namespace", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        assert stack.emulator.calls_to("getAllExtendedDataSchemas")
        [written] = stack.emulator.extended_data_of(roid)
        assert written["schema"] == "UNSTRUCTURED_UTF8_TEXT_1_0"


async def test_a_missing_extended_data_schema_is_named(tmp_path: Path, model: Path) -> None:
    async with running_stack(tmp_path) as stack:
        schemas = stack.emulator.state.schemas
        for oid in [o for o, s in schemas.items() if s.name == "UNSTRUCTURED_UTF8_TEXT_1_0"]:
            del schemas[oid]
        job, _ = await stack.run("test-noop", model)
        assert job.status is JobStatus.DEAD
        assert "has no extended data schema UNSTRUCTURED_UTF8_TEXT_1_0" in (job.last_error or "")


async def test_a_revision_is_checked_in_once_when_the_answer_is_lost(
    tmp_path: Path, model: Path
) -> None:
    """The upload goes through but the answer never arrives: the retry finds the revision by
    the job id in its comment instead of checking it in twice."""
    async with running_stack(tmp_path) as stack:
        stack.emulator.inject(FaultKind.DROP_AFTER, "/upload")
        job, _ = await stack.run("ifc-property-stamp", model)
        assert job.status is JobStatus.SUCCEEDED, job.last_error
        assert job.attempts == 2
        assert len(stack.emulator.checkins) == 1
        assert job.result is not None
        assert isinstance(job.result.delivery, RevisionCheckedIn)
        assert job.result.delivery.already_checked_in


@pytest.mark.parametrize(
    ("target", "outcome"),
    [
        # /json answers 307: a permanent fault of the apiUrl, never a re-post elsewhere.
        ("getSerializerByPluginClassName", JobStatus.DEAD),
        # /download answers 307: the download falls back to getDownloadData on the same server.
        ("/download", JobStatus.SUCCEEDED),
    ],
)
async def test_a_redirect_never_takes_the_token_to_another_host(
    tmp_path: Path, model: Path, aiohttp_server: object, target: str, outcome: JobStatus
) -> None:
    from aiohttp import web

    seen: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path_qs} {await request.text()}")
        return web.Response(text="{}")

    evil = web.Application()
    evil.router.add_route("*", "/{tail:.*}", elsewhere)
    server = await aiohttp_server(evil)  # type: ignore[operator]
    async with running_stack(tmp_path) as stack:
        location = f"http://127.0.0.1:{server.port}/collect?x=1"
        stack.emulator.inject(FaultKind.REDIRECT, target, times=10, message=location)
        job, _ = await stack.run("test-noop", model)
        assert job.status is outcome, job.last_error
        assert seen == []
        if outcome is JobStatus.DEAD:
            assert "HTTP 307" in (job.last_error or "")


async def test_a_call_that_times_out_spends_its_attempt_and_pauses_nothing(
    tmp_path: Path, model: Path
) -> None:
    async with running_stack(tmp_path, max_attempts=1, bimserver_timeout_seconds=0.3) as stack:
        stack.emulator.inject(FaultKind.SLOW, "getSerializerByPluginClassName", delay=2.0)
        job, _ = await stack.run("test-noop", model)
        assert job.status is JobStatus.DEAD
        assert "timed out" in (job.last_error or "")
        assert await stack.storage.outages() == []
