"""What a provider keeps about the people who use its services, beyond their sign-in: the
user tokens they paste into BIMserver, their private profiles, and their credit.

A user token, like every secret here, is stored only as its SHA-256 (``grants.secret_hash``);
its public ``id`` names it when it is listed or revoked. Credit is a ledger of signed
integer amounts: the balance is their sum, a charge is keyed by the job's dedup key so that a
job is charged once however often it is retried or re-sent, and a refund is keyed the same
way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class UserToken:
    id: str
    token_hash: str
    account: str
    label: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PrivateProfile:
    account: str
    service: str
    identifier: str
    name: str
    description: str
    settings: dict[str, Any]
    updated_at: float


class LedgerKind(StrEnum):
    CREDIT = "credit"  # a top-up (notifyd accounts credit)
    CHARGE = "charge"  # a job's price, once per job
    REFUND = "refund"  # a charged job that died, or was never stored


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    account: str
    kind: LedgerKind
    amount: int  # credits; a charge is negative
    job_key: str | None
    note: str
    created_at: float
