"""Signed-in sessions of the web pages, and their CSRF protection.

A session is a cookie holding the account name, an expiry and a random nonce, signed with
HMAC-SHA256 by a secret that notifyd keeps in its data folder (made once, 0600), so sessions
outlive a restart and nothing about them is stored. The cookie is HttpOnly, SameSite=Lax and
Secure whenever the page was reached over HTTPS (directly or through a trusted proxy).

Every form carries a CSRF token that must equal the ``notifyd_csrf`` cookie (the
double-submit pattern): another site can make a browser post a form, but cannot read the
cookie to put its value in the form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from aiohttp import web

SESSION_COOKIE = "notifyd_session"
CSRF_COOKIE = "notifyd_csrf"
CSRF_FIELD = "csrf_token"
SESSION_SECONDS = 12 * 3600
_NEW_CSRF = web.RequestKey("new_csrf", str)  # a token this response must set as the cookie


def load_secret(data_dir: Path) -> bytes:
    """The signing secret, made on first use and kept private to notifyd."""
    path = data_dir / "session.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, secret)
        finally:
            os.close(descriptor)
        return secret


class Sessions:
    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _sign(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode(), hashlib.sha256).hexdigest()

    def start(self, response: web.StreamResponse, account: str, *, secure: bool) -> None:
        """``secure``: the page was reached over HTTPS (directly or through the proxy)."""
        expires = int(time.time()) + SESSION_SECONDS
        payload = f"{account}|{expires}|{secrets.token_hex(8)}"
        value = base64.urlsafe_b64encode(payload.encode()).decode() + "." + self._sign(payload)
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Lax",
            secure=secure,
            path="/",
        )

    def end(self, response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/")

    def account(self, request: web.Request) -> str | None:
        """The signed-in account's name, or None (no cookie, a bad signature, expired)."""
        value = request.cookies.get(SESSION_COOKIE, "")
        encoded, _, signature = value.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if not signature or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        account, _, rest = payload.partition("|")
        expires, _, _nonce = rest.partition("|")
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return account


def csrf_token(request: web.Request) -> str:
    """The CSRF token for the page being rendered: the cookie's, or a new one that
    ``set_csrf_cookie`` puts on the response."""
    token = request.cookies.get(CSRF_COOKIE) or request.get(_NEW_CSRF)
    if not token:
        token = secrets.token_urlsafe(24)
        request[_NEW_CSRF] = token
    return token


def set_csrf_cookie(request: web.Request, response: web.StreamResponse, *, secure: bool) -> None:
    if CSRF_COOKIE not in request.cookies and request.get(_NEW_CSRF):
        response.set_cookie(
            CSRF_COOKIE,
            request[_NEW_CSRF],
            httponly=True,
            samesite="Strict",
            secure=secure,
            path="/",
        )


def csrf_ok(request: web.Request, form: dict[str, str]) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = form.get(CSRF_FIELD, "")
    return bool(cookie) and hmac.compare_digest(cookie, sent)
