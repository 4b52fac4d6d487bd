"""Run the application until a signal: listen, tell systemd, drain, reload.

aiohttp's ``run_app`` starts listening after the app's start-up and gives no moment between
"listening" and "serving" to announce; systemd's ``Type=notify`` needs ``READY=1`` exactly
then (a unit ordered after notifyd may send the first notification at once). So the runner
and sites are driven here: ``READY=1`` once every site accepts, ``WATCHDOG=1`` while the loop
runs, ``STOPPING=1`` as soon as SIGTERM or SIGINT arrives (then the worker drains through
the app's cleanup), and SIGHUP reloads what can change without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from notifyd.config import Settings
from notifyd.errors import NotifydError
from notifyd.logs import configure_logging
from notifyd.reload import prepare_reload
from notifyd.systemd_notify import SystemdNotifier
from notifyd.web.guard import ConnectionLimits, GuardedTCPSite
from notifyd.web.keys import INTAKE, LIFECYCLE, OAUTH, REGISTRY, SETTINGS, USER_ACCOUNTS

log = structlog.get_logger("notifyd")


class Server:
    def __init__(
        self,
        app: web.Application,
        *,
        load_settings: Callable[[], Settings],
        notifier: SystemdNotifier | None = None,
        **runner_options: Any,
    ) -> None:
        self.app = app
        self.settings = app[SETTINGS]
        self.load_settings = load_settings
        self.notifier = notifier or SystemdNotifier()
        self.runner = web.AppRunner(app, handle_signals=False, **runner_options)
        self._stop = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.runner.setup()
        try:
            self.limits = ConnectionLimits(
                max_connections=self.settings.max_connections,
                head_timeout=self.settings.head_timeout_seconds,
            )
            site = GuardedTCPSite(
                self.runner, self.settings.host, self.settings.port, limits=self.limits
            )
            await site.start()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._stopping, signum)
            loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
            self.notifier.notify("READY=1", "STATUS=accepting notifications")
            log.info("notifyd_ready", listening=[str(name) for name in self.runner.addresses])
            async with self._watchdog():
                await self._stop.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            await self.runner.cleanup()

    def _stopping(self, signum: int) -> None:
        if self._stop.is_set():
            return
        self.app[LIFECYCLE].draining = True
        self.notifier.notify("STOPPING=1", "STATUS=draining")
        log.info("notifyd_stopping", signal=signal.Signals(signum).name)
        self._stop.set()

    def _reload_soon(self) -> None:
        asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> None:
        """Read the config, services and profiles again; apply what can change now and name
        what needs a restart. A failure changes nothing."""
        self.notifier.notify("RELOADING=1", "STATUS=reloading")
        try:
            loaded = await asyncio.to_thread(self.load_settings)
            plan = await asyncio.to_thread(prepare_reload, self.app[INTAKE].settings, loaded)
        except NotifydError as exc:
            log.error("reload_failed", reason=exc.message, kept="everything as it was")
        else:
            self.app[REGISTRY].replace_with(plan.registry)
            self.app[INTAKE].settings = plan.settings
            self.app[OAUTH].settings = plan.settings
            self.app[USER_ACCOUNTS].settings = plan.settings
            if "log_level" in plan.applied:
                configure_logging(plan.settings.log_format, plan.settings.log_level)
            log.info(
                "reloaded",
                services=sorted(plan.registry.services),
                applied=list(plan.applied),
                needs_restart=list(plan.needs_restart),
            )
        self.notifier.notify("READY=1", "STATUS=accepting notifications")

    @contextlib.asynccontextmanager
    async def _watchdog(self) -> Any:
        """Ping at half the watchdog interval while the event loop turns: a loop that is
        stuck stops the pings and systemd restarts the daemon."""
        interval = self.notifier.watchdog_seconds
        if interval is None:
            yield
            return

        async def ping() -> None:
            while True:
                self.notifier.notify("WATCHDOG=1")
                await asyncio.sleep(interval / 2)

        task = asyncio.get_running_loop().create_task(ping())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
