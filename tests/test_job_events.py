"""A job's end is announced to whoever waits for it in the same process."""

from __future__ import annotations

import asyncio

from notifyd.job_events import JobEvents


async def test_a_waiter_hears_of_the_end_of_its_job_only() -> None:
    events = JobEvents()
    mine = asyncio.create_task(events.wait(1, timeout=5))
    other = asyncio.create_task(events.wait(2, timeout=0.05))
    await asyncio.sleep(0)
    events.ended(1)
    assert await mine is True
    assert await other is False
    assert events._waiters == {}  # nobody left behind
