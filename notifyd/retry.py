"""When to try a failed attempt again: pure decisions, no I/O.

Exponential backoff with full jitter and a cap (as AWS's analysis of backoff recommends), so
many jobs failing together against one BIMserver do not all come back at the same moment.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from notifyd.errors import JobFailure, Retry


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    base_seconds: float = 5.0
    cap_seconds: float = 600.0
    outage_cap_seconds: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, error: BaseException, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None when the job should die now.

        ``attempt`` is the number of the attempt that failed, from 1. Whether attempts are used
        up is the storage's decision (it knows ``max_attempts``).
        """
        if isinstance(error, JobFailure) and error.permanent:
            return None
        if isinstance(error, Retry) and error.delay is not None:
            return max(0.0, error.delay)
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempt - 1))
        return self.rng.uniform(0, ceiling)

    def outage_pause(self, failures: int) -> float:
        """How long a BIMserver that did not answer ``failures`` times in a row is left alone.

        No jitter: its paused jobs should come back together, as one probe."""
        return min(self.outage_cap_seconds, self.base_seconds * 2 ** max(0, failures - 1))
