"""The provider's own users: who a BIM-bots grant binds a client to, and whom a job runs for.

Small on purpose (the accounts issue extends it): a name and a password, hashed with scrypt
from the standard library (memory-hard, no new dependency), compared in constant time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets

from notifyd.errors import NotifydError

# scrypt parameters: 128 * N * r = 16 MiB per check, and 27-70 ms (median 29 ms, 20 checks)
# on this project's 2-core machine.
_N, _R, _P = 2**14, 8, 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8


class AccountError(NotifydError):
    """A name or password that cannot be used, or credentials that do not match."""


class AccountTaken(AccountError):
    """The name or e-mail belongs to another account (the API answers 409)."""


class RegistrationClosed(AccountError):
    """``open_registration`` is off: only the provider makes accounts (the API answers 403)."""


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise AccountError(
            "an account name is 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    return password


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    return f"scrypt${_N}${_R}${_P}${encoded[0]}${encoded[1]}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def unusable_hash() -> str:
    """Checked against when the account does not exist, so that a sign-in takes as long as
    with a wrong password; made on first use, not at import (scrypt costs tens of ms)."""
    return hash_password(secrets.token_urlsafe(16))
