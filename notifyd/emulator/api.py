"""The emulated JSON API: BIMserver's method table (``notifyd.protocol.bimserver.api``) with an
implementation per method, dispatched and failing as ``JsonHandler`` does.

Order of checks, as in ``JsonHandler.processSingleRequest`` ([1.5] lines 113-166): interface
(full or simple name), method, every declared parameter present and converted
(``JsonConverter``), then the token (``getServiceMap``: a bad token fails every method, even one
that needs none; [1.4] skips it for ``login``), then the method's own authentication and rights
checks. Each implementation names the source it follows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from notifyd.emulator.state import (
    EmulatedRevision,
    Grant,
    LongAction,
    ServerState,
)
from notifyd.protocol.bimserver import api
from notifyd.protocol.bimserver.converter import ConversionFailure, from_json
from notifyd.records import Dialect


class ApiError(Exception):
    """BIMserver answers the call with this exception."""

    def __init__(
        self,
        message: str,
        exception_type: str = "UserException",
        error_code: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exception_type = exception_type
        self.error_code = error_code


def null_pointer() -> ApiError:
    """What BIMserver answers where its code dereferences a missing object."""
    return ApiError("java.lang.NullPointerException", "NullPointerException")


class Auth(Enum):
    NONE = "none"  # no check in the implementation
    TOKEN = "token"  # noqa: S105 - requireAuthentication: any valid token
    REAL_USER = "real_user"  # requireRealUserAuthentication: not a notification's token


@dataclass(frozen=True, slots=True)
class Call:
    grant: Grant | None
    params: dict[str, Any]


Handler = Callable[["JsonApi", Call], Any]
_HANDLERS: dict[str, tuple[Auth, Handler]] = {}


def handles(name: str, auth: Auth) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[name] = (auth, fn)
        return fn

    return register


class JsonApi:
    def __init__(
        self,
        state: ServerState,
        *,
        username: str,
        password: str,
        on_extended_data: Callable[[int, int], None] | None = None,
    ) -> None:
        self.state = state
        self.dialect = state.dialect
        self.username = username
        self.password = password
        self.on_extended_data = on_extended_data
        missing = {m.name for m in api.METHODS[self.dialect].values()} - set(_HANDLERS)
        if missing:
            raise RuntimeError(f"no emulation for {sorted(missing)}")

    # -- dispatch ------------------------------------------------------------------------

    def resolve(self, request: Any) -> tuple[api.Method, dict[str, Any]]:
        """The declared method and its converted parameters, or the ApiError BIMserver gives."""
        if not isinstance(request, dict):
            raise ApiError(
                f"java.lang.ClassCastException: {type(request).__name__}", "ClassCastException"
            )
        if "interface" not in request:
            if self.dialect is Dialect.BIMSIE1:
                raise null_pointer()
            raise ApiError('No "interface" parameter found in request')
        interface_name = str(request["interface"])
        if "method" not in request:
            if self.dialect is Dialect.BIMSIE1:
                raise null_pointer()
            raise ApiError('No "method" parameter found in request')
        method_name = str(request["method"])
        interface = api.simple_interface_name(self.dialect, interface_name)
        if interface is None:
            raise ApiError(f"No service found with name {interface_name}")
        declared = api.METHODS[self.dialect].get((interface, method_name))
        if declared is None:
            elsewhere = [m for m in api.METHODS[self.dialect].values() if m.name == method_name]
            suggestion = f" (suggestion: {elsewhere[0].interface})" if elsewhere else ""
            raise ApiError(f"Method {method_name} not found on {interface_name}{suggestion}")
        raw = request.get("parameters")
        if "parameters" not in request:
            if declared.params and self.dialect is Dialect.BIMSERVER_15:
                raise ApiError(
                    f"Missing 'parameters' field, expected {len(declared.params)} parameters"
                )
            raw = {}
        if not isinstance(raw, dict):
            raise ApiError(f"java.lang.ClassCastException: {raw!r:.60}", "ClassCastException")
        params: dict[str, Any] = {}
        for param in declared.params:
            if param.name not in raw:
                if "parameters" not in request:  # [1.4] invokes with nulls
                    raise null_pointer()
                raise ApiError(f"Missing parameter: {declared.name} -> {param.name}")
            try:
                params[param.name] = from_json(self.dialect, param.type, raw[param.name])
            except ConversionFailure as exc:
                raise ApiError(exc.message, exc.exception_type) from None
        return declared, params

    def authenticate(self, token: str | None, method_name: str) -> Grant | None:
        """``PublicInterfaceFactory.get(token)`` and ``Authorization.fromToken``: [1.5] raises
        AuthenticationException, [1.4] a UserException with the same message."""
        if token is None or (self.dialect is Dialect.BIMSIE1 and method_name == "login"):
            return None
        grant = self.state.tokens.get(token)
        kind = (
            "AuthenticationException" if self.dialect is Dialect.BIMSERVER_15 else "UserException"
        )
        if grant is None:
            code = ("DefaultErrorCode", 3) if self.dialect is Dialect.BIMSERVER_15 else None
            raise ApiError("Invalid token", kind, code)
        if grant.expires_at < time.time():
            raise ApiError("This token has expired", kind)
        return grant

    def invoke(self, declared: api.Method, params: dict[str, Any], grant: Grant | None) -> Any:
        auth, handler = _HANDLERS[declared.name]
        if auth is not Auth.NONE and grant is None:
            raise ApiError("Authentication required for this call")
        if auth is Auth.REAL_USER and grant is not None and not grant.user:
            raise ApiError("Real authentication required (this session has token authentication)")
        return handler(self, Call(grant, params))

    # -- shared lookups ------------------------------------------------------------------

    def revision(self, roid: int | None) -> EmulatedRevision | None:
        return self.state.revisions.get(roid) if roid is not None else None

    def action(self, topic_id: int | None) -> LongAction | None:
        action = self.state.long_actions.get(topic_id) if topic_id is not None else None
        if (
            action is not None
            and action.title == "Starting download"
            and time.time() >= action.prepared_at
        ):
            # LongStreamingDownloadAction.java:173: progress -1; [1.4] LongDownloadAction:74: 0
            action.title = "Done preparing"
            action.progress = -1 if self.dialect is Dialect.BIMSERVER_15 else 0
        return action

    def start_download(
        self, roids: list[int], serializer_oid: int, grant: Grant, sync: bool
    ) -> int:
        if serializer_oid not in self.state.serializers:
            raise null_pointer()  # ServiceImpl.download: the configuration is null
        for roid in roids:
            if not grant.user and roid not in grant.read_roids:
                raise ApiError("No rights to download revision")  # canDownload
            if roid not in self.state.revisions:
                raise ApiError("Revision does not exist")
        action = LongAction(
            id=self.state.new_id(),
            roid=roids[0],
            serializer_oid=serializer_oid,
            prepared_at=time.time() + (0 if sync else self.state.prepare_seconds),
        )
        self.state.long_actions[action.id] = action
        return action.id
