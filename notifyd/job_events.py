"""Job endings announced inside one process, so that a caller waiting for a job (a BIM-bots
client on the line) hears of it at once instead of at its next look at the database.

Only a hint: a job another process ran is not announced, so waiters still look at the
database from time to time."""

from __future__ import annotations

import asyncio
import contextlib


class JobEvents:
    def __init__(self) -> None:
        self._waiters: dict[int, list[asyncio.Event]] = {}

    def ended(self, job_id: int) -> None:
        for event in self._waiters.pop(job_id, []):
            event.set()

    async def wait(self, job_id: int, timeout: float) -> bool:
        """True if the job was announced as ended within ``timeout`` seconds."""
        event = asyncio.Event()
        self._waiters.setdefault(job_id, []).append(event)
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            waiting = self._waiters.get(job_id)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(event)
                if not waiting:
                    del self._waiters[job_id]
