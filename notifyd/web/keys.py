"""Every typed key of the application and of a request."""

from __future__ import annotations

from aiohttp import web

from notifyd.bots.oauth import OAuthProvider
from notifyd.config import Settings
from notifyd.hooks import Hooks
from notifyd.intake import Intake
from notifyd.job_events import JobEvents
from notifyd.services import Registry
from notifyd.storage.base import GrantStore, Storage
from notifyd.user_accounts import UserAccounts
from notifyd.web.body import BodyBudget, BodyLimits
from notifyd.web.lifecycle import Lifecycle
from notifyd.web.sessions import Sessions
from notifyd.worker import Worker

SETTINGS = web.AppKey("settings", Settings)
REGISTRY = web.AppKey("registry", Registry)
STORAGE = web.AppKey("storage", Storage)
INTAKE = web.AppKey("intake", Intake)
GRANTS = web.AppKey("grants", GrantStore)
OAUTH = web.AppKey("oauth", OAuthProvider)
JOB_EVENTS = web.AppKey("job_events", JobEvents)
WORKER = web.AppKey("worker", Worker)
BODY_LIMITS = web.AppKey("body_limits", BodyLimits)
BODY_BUDGET = web.AppKey("body_budget", BodyBudget)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
HOOKS = web.AppKey("hooks", Hooks)
USER_ACCOUNTS = web.AppKey("user_accounts", UserAccounts)
SESSIONS = web.AppKey("sessions", Sessions)
REQUEST_ID = web.RequestKey("request_id", str)
