"""The pages in a real browser (Debian's chromium driven by Playwright; it cannot download a
browser of its own here): register, get a token, create a profile, sign in as an
administrator and retry a dead job. A screenshot of each page is saved under
test-output/screenshots (NOTIFYD_SCREENSHOTS to choose another folder)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from notifyd.records import JobStatus
from tests.cli import admin_command
from tests.conftest import PROJECT_ROOT, require_program
from tests.ifc_factory import build_model
from tests.stack import running_stack, wait_for_jobs

pytestmark = pytest.mark.slow

SHOTS = Path(os.environ.get("NOTIFYD_SCREENSHOTS", PROJECT_ROOT / "test-output" / "screenshots"))


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    chromium = require_program("chromium", "chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        try:
            yield launched
        finally:
            await launched.close()


async def shot(page: Any, name: str) -> None:
    """Playwright makes the folder."""
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def register(page: Any, url: str, name: str, email: str) -> None:
    await page.goto(f"{url}/account/register")
    await page.fill("#name", name)
    await page.fill("#email", email)
    await page.fill("#password", "correct horse")
    await shot(page, "01-register")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/account")


async def test_a_user_registers_gets_a_token_and_makes_a_profile(
    browser: Any, tmp_path: Path
) -> None:
    async with running_stack(tmp_path, prices={"ifc-summary": 3}) as stack:
        page = await browser.new_page()
        await register(page, stack.url, "erin", "erin@example.com")
        assert await page.text_content("#balance") == "0"
        await shot(page, "02-account")

        await page.goto(f"{stack.url}/account/tokens")
        await page.fill("#label", "BIMserver at the office")
        await page.click("text=Create a token")
        token = (await page.text_content("#new-token") or "").strip()
        assert token.startswith("ndu_")
        await shot(page, "03-token")

        await page.goto(f"{stack.url}/profiles/new?service=ifc-summary")
        await page.fill("#identifier", "counts")
        await page.fill("#name", "Counts only")
        await page.select_option("#setting-group_by_storey", "false")
        await shot(page, "04-new-profile")
        await page.click("text=Save profile")
        await page.wait_for_url(f"{stack.url}/profiles")
        assert "Counts only" in await page.content()
        await shot(page, "05-profiles")


async def test_an_administrator_retries_a_dead_job(browser: Any, tmp_path: Path) -> None:
    model = build_model(tmp_path / "model.ifc")
    async with running_stack(tmp_path, max_attempts=1) as stack:
        poid = stack.emulator.add_project()
        # Fails its first attempt in a way worth retrying; with one attempt allowed it dies
        # holding its BIMserver token, so it can run again.
        service = await stack.service("test-retry", poid=poid)
        await stack.emulator.notify_new_revision(service, stack.emulator.add_revision(poid, model))
        [job] = await wait_for_jobs(stack.storage, 1)
        assert job.status is JobStatus.DEAD

        page = await browser.new_page()
        await register(page, stack.url, "admin", "admin@example.com")
        result = await admin_command(
            tmp_path / "data", "accounts", "add-admin", "admin@example.com"
        )
        assert "is an administrator" in result
        await page.goto(f"{stack.url}/admin")
        assert await page.text_content("#count-dead") == "1"
        await shot(page, "06-admin")
        await page.click(f"text=#{job.id}")
        await page.wait_for_url(f"{stack.url}/admin/jobs/{job.id}")
        assert "not ready yet" in await page.content()
        await shot(page, "07-admin-job")
        async with page.expect_navigation():
            await page.click("#retry")
        assert page.url == f"{stack.url}/admin/jobs/{job.id}"
        for _ in range(100):
            again = await stack.storage.get(job.id)
            if again.status is JobStatus.SUCCEEDED:
                break
            await asyncio.sleep(0.1)
        assert again.status is JobStatus.SUCCEEDED
        assert again.attempts == 2
        await page.reload()
        await shot(page, "08-admin-job-retried")
