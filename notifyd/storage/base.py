"""The storage interface, in the domain's terms.

Every backend implements it and passes ``tests/test_storage_contract.py``. Times come from
the backend's injected clock, so tests can move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from notifyd.account_records import LedgerEntry, PrivateProfile, UserToken
from notifyd.grants import Account, AuthorizationCode, IssuedToken, OAuthClient, TokenKind
from notifyd.records import (
    Attempt,
    EnqueueResult,
    Job,
    JobMatch,
    JobResult,
    JobStatus,
    Origin,
    ServerOutage,
)


class Storage(Protocol):
    async def enqueue(self, origin: Origin, *, max_attempts: int) -> EnqueueResult:
        """Durably store a job for the notification, or return the job it duplicates.

        Returns only after the job is committed to stable storage.
        """

    async def claim(
        self, *, worker_id: str, lease_seconds: float, limit: int = 1, one_per_project: bool = True
    ) -> list[Job]:
        """Lease up to ``limit`` due jobs, oldest first; with ``one_per_project`` never a second
        job of a BIMserver project (api_url, poid) that already has one running."""

    async def heartbeat(self, job_id: int, *, worker_id: str, lease_seconds: float) -> Job | None:
        """Extend the lease and return the job (whose ``cancel_requested`` the worker obeys);
        None when the worker no longer holds it."""

    async def record_step(self, job_id: int, *, worker_id: str, name: str, value: Any) -> Job:
        """Remember that a write-back step is done, so that a later attempt skips it."""

    async def wrote_extended_data(self, *, api_url: str, service: str, file_id: int) -> bool:
        """Whether a job of ``service`` uploaded the file ``file_id`` to that BIMserver as
        extended data: the extended data that notifies it then is its own."""

    async def expire_lease(self, job_id: int, *, worker_id: str) -> bool:
        """End a lease now, for a worker known to be dead; ``reclaim_expired`` then takes it."""

    async def complete(
        self, job_id: int, *, worker_id: str, result: JobResult | None = None
    ) -> Job:
        """Mark the job succeeded and erase its tokens."""

    async def fail(
        self,
        job_id: int,
        *,
        worker_id: str,
        error: str,
        retry_at: float | None,
        spend_attempt: bool = True,
    ) -> Job:
        """Record a failed attempt: queue it again at ``retry_at``, or kill it for good when
        None (erasing its tokens). A job out of attempts dies too but keeps its tokens for
        ``retry``; an attempt that did not ``spend_attempt`` (BIMserver was down) is not
        counted against ``max_attempts``."""

    async def pause_server(
        self, api_url: str, *, error: str, pause: Callable[[int], float]
    ) -> ServerOutage:
        """Record that the BIMserver did not answer: its queued jobs wait ``pause(failures)``
        seconds (failures in this outage, from 1), then probe it. An outage is over when
        nothing failed for twice the last pause."""

    async def server_answered(self, api_url: str) -> None:
        """The BIMserver answered: its outage, if any, is over."""

    async def outages(self) -> list[ServerOutage]:
        """BIMservers that are down, as last seen."""

    async def erase_tokens(self, *, finished_before: float) -> int:
        """Erase the tokens dead jobs kept for a retry, once their retention window is over."""

    async def release(self, job_id: int, *, worker_id: str) -> Job:
        """Hand a running job back to the queue (shutdown); the attempt does not count
        against ``max_attempts``."""

    async def reclaim_expired(self) -> list[Job]:
        """Requeue every running job whose lease has expired (or kill it when out of attempts)."""

    async def retry(self, job_id: int, *, attempts: int = 1) -> Job:
        """Run a queued job now, or queue a dead or cancelled one again with ``attempts`` more
        tries (only while it still holds its BIMserver token)."""

    async def retry_dead(self, *, attempts: int = 1) -> list[Job]:
        """Queue again every dead job that still holds its tokens."""

    async def cancel(self, job_id: int) -> Job:
        """Cancel a queued job at once, or ask the worker running it to stop."""

    async def get(self, job_id: int) -> Job:
        """Raises JobNotFound."""

    async def find(self, origin_key: str) -> Job | None:
        """The job of an origin (its ``dedup_key``: an upload's topic), if there is one."""

    async def list_jobs(
        self,
        *,
        status: JobStatus | None = None,
        limit: int = 50,
        offset: int = 0,
        match: JobMatch | None = None,
    ) -> list[Job]:
        """Newest first; ``match`` narrows them in the query (never after the limit)."""

    async def attempts(self, job_id: int) -> list[Attempt]:
        """The job's whole attempt history, oldest first."""

    async def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when another process stores a job, where the backend can tell
        (PostgreSQL's LISTEN); a backend that cannot leaves it to the worker's poll."""

    async def problems(self) -> list[str]:
        """What keeps the storage from taking jobs now (its last commit failed, it is
        read-only, its disk is full), for /healthz; empty when it is well."""

    async def counts(self) -> dict[JobStatus, int]:
        """How many jobs are in each status."""


class GrantStore(Protocol):
    """The OAuth provider's records: accounts, clients, codes and tokens."""

    async def add_account(self, account: Account) -> bool:
        """False when an account of that name exists (nothing is changed)."""

    async def set_password(self, name: str, password_hash: str) -> bool: ...

    async def account(self, name: str) -> Account | None: ...

    async def register_client(self, client: OAuthClient, secret_hash: str) -> OAuthClient:
        """The stored client: ``client``, or the one registered before with the same
        redirect URIs, which now also accepts this secret."""

    async def client(self, client_id: str) -> OAuthClient | None: ...

    async def clients(self) -> list[OAuthClient]: ...

    async def secret_matches(self, client_id: str, secret_hash: str) -> bool: ...

    async def save_code(self, code: AuthorizationCode) -> None: ...

    async def take_code(self, code_hash: str, now: float) -> tuple[AuthorizationCode | None, bool]:
        """The code, now used; and whether it was used before (its tokens are then revoked)."""

    async def code_account(self, code_hash: str) -> str | None:
        """The account an authorization code was issued for, used or not (BIMserver 1.5 sends
        the code in getPrivateProfiles, ServiceImpl.java:2445)."""
        ...

    async def save_tokens(self, tokens: list[IssuedToken], now: float) -> None: ...

    async def live_token(
        self, token_hash: str, kind: TokenKind, now: float
    ) -> IssuedToken | None: ...

    async def use_refresh_token(
        self, token_hash: str, now: float
    ) -> tuple[IssuedToken | None, bool]:
        """The refresh token, now revoked; and whether it was used before (its family is
        then revoked)."""

    async def revoke(self, *, client_id: str | None = None, account: str | None = None) -> int: ...


class AccountStore(Protocol):
    """User tokens, private profiles and the credit ledger of accounts (``account_records``);
    the same contract on every backend (tests/test_account_store_contract.py)."""

    async def account_by_email(self, email: str) -> Account | None: ...

    async def set_email(self, name: str, email: str) -> bool:
        """False when another account has the e-mail, or there is no such account."""
        ...

    async def set_admin(self, name: str, is_admin: bool) -> bool: ...

    async def accounts(self) -> list[tuple[Account, int]]:
        """Every account with its balance."""
        ...

    async def add_user_token(self, token: UserToken) -> None: ...

    async def user_tokens(self, account: str) -> list[UserToken]: ...

    async def revoke_user_token(self, account: str, token_id: str, now: float) -> bool: ...

    async def account_of_token(self, token_hash: str) -> Account | None:
        """The account of a live (not revoked) user token."""
        ...

    async def save_profile(self, profile: PrivateProfile) -> bool:
        """Create or replace; True when it was created."""
        ...

    async def private_profile(
        self, account: str, service: str, identifier: str
    ) -> PrivateProfile | None: ...

    async def private_profiles(self, account: str, service: str | None) -> list[PrivateProfile]: ...

    async def delete_profile(self, account: str, service: str, identifier: str) -> bool: ...

    async def balance(self, account: str) -> int: ...

    async def credit(self, account: str, amount: int, note: str, now: float) -> int:
        """The new balance."""
        ...

    async def charge(self, account: str, job_key: str, amount: int, note: str, now: float) -> bool:
        """Charge ``amount`` for the job ``job_key`` unless it was charged before (True then
        too); False, charging nothing, when the balance is below ``amount``."""
        ...

    async def refund(self, job_key: str, note: str, now: float) -> bool:
        """Give back the job's charge, once; False when there was none or it was refunded."""
        ...

    async def refund_dead(self, now: float) -> int:
        """Refund every charge whose job is dead, or was never stored (a crash between the
        charge and the job), and is not refunded yet; how many."""
        ...

    async def ledger(self, account: str) -> list[LedgerEntry]: ...

    async def add_platform(self, name: str, secret: str, now: float) -> bool:
        """False when a platform of that name exists."""
        ...

    async def platform_secret(self, name: str) -> str | None: ...

    async def platforms(self) -> list[tuple[str, float]]:
        """Every platform's name and when it was added (never its secret)."""
        ...

    async def first_sight(self, platform: str, webhook_id: str, now: float, keep: float) -> bool:
        """Remember a signed request's id; False when it was seen within ``keep`` seconds
        (a replay). Older ids are forgotten."""
        ...
