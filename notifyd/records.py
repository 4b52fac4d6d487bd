"""Stored records: what a notification is, what a job is, and how a job's life is told.

Frozen dataclasses whose enum values are the strings the storage keeps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class NotificationKind(StrEnum):
    """The notification methods of (Bimsie1)RemoteServiceInterface, by their wire names."""

    NEW_REVISION = "newRevision"
    NEW_EXTENDED_DATA_ON_PROJECT = "newExtendedDataOnProject"
    NEW_EXTENDED_DATA_ON_REVISION = "newExtendedDataOnRevision"


class Dialect(StrEnum):
    """Which BIMserver generation sent a notification; the worker answers in the same one."""

    BIMSIE1 = "bimsie1"  # BIMserver 1.3 and 1.4
    BIMSERVER_15 = "1.5"  # BIMserver 1.5 and later


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting, possibly until run_after after a failed attempt
    RUNNING = "running"  # claimed under a lease
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # failed for good: permanent error or out of attempts
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.DEAD, JobStatus.CANCELLED)


class AttemptOutcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # will be retried
    DEAD = "dead"  # failed for good
    LEASE_EXPIRED = "lease_expired"  # the worker died or hung; reclaimed
    RELEASED = "released"  # handed back on shutdown, not counted against max_attempts
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One notification as BIMserver sent it, in domain terms."""

    kind: NotificationKind
    dialect: Dialect
    poid: int
    roid: int | None
    edid: int | None
    soid: int
    service: str
    profile: str
    api_url: str
    token: str | None
    user_token: str | None  # as BIMserver sent it; never stored (the intake keeps its account)
    account: str | None = None  # the provider's account the user token named

    @property
    def dedup_key(self) -> str:
        """Two notifications with this key are the same event and become one job. Oids are
        per BIMserver, so the server's URL is part of the key."""
        return json.dumps(
            [
                self.api_url,
                str(self.kind),
                self.poid,
                self.roid,
                self.edid,
                self.soid,
                self.service,
                self.profile,
            ],
            separators=(",", ":"),
        )


UPLOAD_KIND = "upload"


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """A model a BIM-bots client posted to a service's resource URL, stored on disk before
    the job is: its caller waits for the result instead of a BIMserver being written to."""

    upload_id: str  # random: every upload is a job of its own
    service: str
    profile: str
    input_type: str
    output_type: str
    model_path: str  # relative to the data folder
    size: int
    account: str | None = None  # the provider's user the job runs for
    client_id: str | None = None  # the OAuth client (a BIMserver, a plug-in) that sent it
    context_id: str | None = None  # the caller's Context-Id, echoed with the result

    @property
    def dedup_key(self) -> str:
        return f"upload:{self.upload_id}"


Origin = Notification | Upload


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtendedDataWritten:
    """The service's result was added to the revision as extended data."""

    file_id: int
    schema: str | None = None
    bytes: int | None = None
    already_present: bool = False  # a retried job found it there and wrote nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class RevisionCheckedIn:
    """The service's result was checked in as a new revision of its write project."""

    poid: int
    roid: int | None = None
    checkin_id: int | None = None
    topic_id: int | None = None
    comment: str | None = None
    already_checked_in: bool = False  # a retried job found it there and checked in nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredResult:
    """The service's result kept for the caller who posted the model to fetch."""

    path: str  # relative to the data folder
    mime: str
    filename: str
    title: str
    output_type: str
    bytes: int


Delivery = ExtendedDataWritten | RevisionCheckedIn | StoredResult


@dataclass(frozen=True, slots=True, kw_only=True)
class Timings:
    """Where a job's time went, in milliseconds; None for a stage it did not reach."""

    download: float | None = None
    service: float | None = None
    write_back: float | None = None
    total: float | None = None
    since_arrival: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult:
    """What a succeeded job came to: skipped (and why) or what it delivered."""

    skipped: str | None = None
    delivery: Delivery | None = None
    timings: Timings = field(default_factory=Timings)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {}
        if self.skipped is not None:
            record["skipped"] = self.skipped
        if isinstance(self.delivery, ExtendedDataWritten):
            record["extended_data"] = _fields(self.delivery)
        elif isinstance(self.delivery, RevisionCheckedIn):
            record["checkin"] = _fields(self.delivery)
        elif isinstance(self.delivery, StoredResult):
            record["stored"] = _fields(self.delivery)
        record["timings_ms"] = {k: v for k, v in _fields(self.timings).items() if v is not None}
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> JobResult:
        """Also reads what releases before typed results stored (``extended_data_file_id``,
        ``since_notification``), so no finished job's result is lost to the change."""
        delivery: Delivery | None = None
        if "extended_data" in record:
            delivery = ExtendedDataWritten(**record["extended_data"])
        elif "extended_data_file_id" in record:
            delivery = ExtendedDataWritten(
                file_id=record["extended_data_file_id"],
                schema=record.get("schema"),
                bytes=record.get("bytes"),
                already_present="skipped" in record,
            )
        if "stored" in record:
            delivery = StoredResult(**record["stored"])
        checkin = record.get("checkin")
        if isinstance(checkin, Mapping) and "already_checked_in" in checkin:
            delivery = RevisionCheckedIn(**checkin)
        elif isinstance(checkin, Mapping):
            delivery = RevisionCheckedIn(
                poid=checkin["poid"],
                roid=checkin.get("roid"),
                checkin_id=checkin.get("checkinid"),
                topic_id=checkin.get("topicId"),
                comment=record.get("comment"),
                already_checked_in="skipped" in record,
            )
        timings = dict(record.get("timings_ms") or {})
        if "since_notification" in timings:
            timings["since_arrival"] = timings.pop("since_notification")
        known = {k: v for k, v in timings.items() if k in Timings.__dataclass_fields__}
        skipped = record.get("skipped")
        if delivery is not None and skipped in ("already on the revision", "already checked in"):
            skipped = None  # the old shape said so with "skipped"; it is the delivery's flag now
        return cls(skipped=skipped, delivery=delivery, timings=Timings(**known))


def _fields(value: Any) -> dict[str, Any]:
    return {name: getattr(value, name) for name in value.__dataclass_fields__}


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: int
    status: JobStatus
    origin: Origin
    attempts: int
    max_attempts: int
    run_after: float
    lease_until: float | None
    worker_id: str | None
    cancel_requested: bool
    created_at: float
    updated_at: float
    finished_at: float | None
    last_error: str | None
    result: JobResult | None = field(default=None)
    steps: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        return cls(
            id=row["id"],
            status=JobStatus(row["status"]),
            origin=_origin(row),
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            run_after=row["run_after"],
            lease_until=row["lease_until"],
            worker_id=row["worker_id"],
            cancel_requested=bool(row["cancel_requested"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            finished_at=row["finished_at"],
            last_error=row["last_error"],
            result=JobResult.from_record(json.loads(row["result"])) if row["result"] else None,
            steps=json.loads(row["steps"]),
        )

    @property
    def notification(self) -> Notification:
        """The BIMserver notification that brought the job; only for such jobs."""
        if not isinstance(self.origin, Notification):
            raise TypeError(f"job {self.id} was not brought by a BIMserver notification")
        return self.origin

    @property
    def service(self) -> str:
        return self.origin.service

    @property
    def profile(self) -> str:
        return self.origin.profile

    @property
    def account(self) -> str | None:
        """The provider's account the job runs for (and is charged to), if any."""
        return self.origin.account

    @property
    def server(self) -> str | None:
        """The BIMserver the job talks to, whose outages pause it; None for an upload."""
        return self.origin.api_url if isinstance(self.origin, Notification) else None

    def log_context(self) -> dict[str, Any]:
        context: dict[str, Any] = {
            "job_id": self.id,
            "service": self.service,
            "attempt": self.attempts,
        }
        if isinstance(self.origin, Notification):
            context.update(poid=self.origin.poid, roid=self.origin.roid)
        else:
            context.update(upload_id=self.origin.upload_id, input_type=self.origin.input_type)
        return context


def _origin(row: Mapping[str, Any]) -> Origin:
    if row["kind"] == UPLOAD_KIND:
        return Upload(
            upload_id=row["dedup_key"].removeprefix("upload:"),
            service=row["service"],
            profile=row["profile"],
            input_type=row["input_type"],
            output_type=row["output_type"],
            model_path=row["input_path"],
            size=row["input_size"],
            account=row["account"],
            client_id=row["client_id"],
            context_id=row["context_id"],
        )
    return Notification(
        kind=NotificationKind(row["kind"]),
        dialect=Dialect(row["dialect"]),
        poid=row["poid"],
        roid=row["roid"],
        edid=row["edid"],
        soid=row["soid"],
        service=row["service"],
        profile=row["profile"],
        api_url=row["api_url"],
        token=row["token"],
        user_token=row["user_token"],
        account=row["account"],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    job_id: int
    number: int
    worker_id: str
    outcome: AttemptOutcome
    started_at: float
    finished_at: float | None
    error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Attempt:
        return cls(
            job_id=row["job_id"],
            number=row["number"],
            worker_id=row["worker_id"],
            outcome=AttemptOutcome(row["outcome"]),
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            error=row["error"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EnqueueResult:
    job_id: int
    created: bool  # False when the notification was a duplicate of an existing job


@dataclass(frozen=True, slots=True, kw_only=True)
class JobMatch:
    """What a listing of jobs keeps (the admin page's filters); None keeps any. ``poid``
    keeps a BIMserver project's notifications, ``uploads`` the models posted to the bots
    resource URLs (which belong to no project)."""

    service: str | None = None
    account: str | None = None
    poid: int | None = None
    uploads: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerOutage:
    """A BIMserver that stopped answering: its jobs wait until ``paused_until``, then probe."""

    api_url: str
    down_since: float
    failures: int
    paused_until: float
    last_error: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ServerOutage:
        return cls(
            api_url=row["api_url"],
            down_since=row["down_since"],
            failures=row["failures"],
            paused_until=row["paused_until"],
            last_error=row["last_error"],
        )
