"""The JSON-RPC envelope BIMserver posts to ``<service url>/json``, in every shape senders use.

``parse_envelope`` turns raw bytes into calls; ``parse_parameters`` validates one call's
arguments against the allowlisted method's signature. Errors are ``ProtocolError`` whose
message names the field or value at fault, in BIMserver's own wording where it has one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from notifyd.errors import ProtocolError
from notifyd.records import Dialect, NotificationKind

REMOTE_SERVICE_INTERFACES: dict[str, Dialect] = {
    "Bimsie1RemoteServiceInterface": Dialect.BIMSIE1,
    "org.buildingsmart.bimsie1.Bimsie1RemoteServiceInterface": Dialect.BIMSIE1,
    "org.bimserver.shared.interfaces.bimsie1.Bimsie1RemoteServiceInterface": Dialect.BIMSIE1,
    "RemoteServiceInterface": Dialect.BIMSERVER_15,
    "org.bimserver.RemoteServiceInterface": Dialect.BIMSERVER_15,
    "org.bimserver.shared.interfaces.RemoteServiceInterface": Dialect.BIMSERVER_15,
}


class _Parameters(BaseModel):
    """Lax like BIMserver's JsonConverter: numbers as strings pass, unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)


NonEmpty = Field(min_length=1)

JAVA_LONG_MAX = 2**63 - 1
SECRET_PARAMETERS = frozenset({"token", "userToken"})


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("an object id is a number, not a boolean")
    return value


# An object id as BIMserver sends it: a Java long; anything a Java long (and SQLite's INTEGER)
# cannot hold is refused, naming the parameter, before it reaches a commit. BIMserver's oids
# are never negative and it writes -1 for "none": a project, revision or extended data of -1
# leaves the job nothing to read, so it is refused. A service id of -1 is what BIMserver
# itself sends with newExtendedDataOnRevision after addExtendedDataToRevision
# (AddExtendedDataToRevisionDatabaseAction.java:84, NewExtendedDataOnRevisionNotification
# .java:109 at HEAD), so it is kept.
Oid = Annotated[int, BeforeValidator(_not_a_boolean), Field(ge=0, le=JAVA_LONG_MAX)]
ServiceOid = Annotated[int, BeforeValidator(_not_a_boolean), Field(ge=-1, le=JAVA_LONG_MAX)]


class GetService(_Parameters):
    serviceIdentifier: str = NonEmpty


class GetPublicProfiles(_Parameters):
    serviceIdentifier: str = NonEmpty


class GetPrivateProfiles(_Parameters):
    serviceIdentifier: str = NonEmpty
    token: str | None


class _NotificationParameters(_Parameters):
    poid: Oid
    soid: ServiceOid
    serviceIdentifier: str = NonEmpty
    profileIdentifier: str | None
    userToken: str | None
    token: str = NonEmpty
    apiUrl: str = NonEmpty


class NewRevision(_NotificationParameters):
    roid: Oid


class NewExtendedDataOnProject(_NotificationParameters):
    edid: Oid


class NewExtendedDataOnRevision(_NotificationParameters):
    roid: Oid
    edid: Oid


NotificationParameters = NewRevision | NewExtendedDataOnProject | NewExtendedDataOnRevision

# The allowlist: nothing outside this table is ever dispatched.
METHODS: dict[str, type[_Parameters]] = {
    "getService": GetService,
    "getPublicProfiles": GetPublicProfiles,
    "getPrivateProfiles": GetPrivateProfiles,
    NotificationKind.NEW_REVISION.value: NewRevision,
    NotificationKind.NEW_EXTENDED_DATA_ON_PROJECT.value: NewExtendedDataOnProject,
    NotificationKind.NEW_EXTENDED_DATA_ON_REVISION.value: NewExtendedDataOnRevision,
}


@dataclass(frozen=True, slots=True)
class Call:
    """One request of an envelope, its interface recognised and its method allowlisted."""

    interface: str
    dialect: Dialect
    method: str
    parameters: _Parameters


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed body: ``calls`` holds a Call or the ProtocolError of each request, in order."""

    calls: list[Call | ProtocolError]
    batch: bool
    id: Any = None


def parse_envelope(body: bytes) -> Envelope:
    """Raises ProtocolError when the body as a whole is unusable."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"the request body is not valid UTF-8 (byte {exc.start})") from exc
    if not text.strip():
        raise ProtocolError("the request body is empty; expected a JSON object with 'request'")
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        # orjson refuses numbers no double holds (1e400), which are valid JSON: one such
        # value must fail its own call, not every call of the batch.
        try:
            document = json.loads(text)
        except (ValueError, RecursionError):
            raise ProtocolError(
                "the request body is not valid JSON: "
                f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
    if not isinstance(document, dict):
        raise ProtocolError(f"the request body must be a JSON object, not {_json_type(document)}")
    envelope_id = document.get("id")
    if "requests" in document:
        requests = document["requests"]
        if not isinstance(requests, list):
            raise ProtocolError(f"'requests' must be a list, not {_json_type(requests)}")
        return Envelope(
            [_parse_request(r, f"requests[{i}]") for i, r in enumerate(requests)],
            batch=True,
            id=envelope_id,
        )
    if "request" in document:
        call = _parse_request(document["request"], "request")
        if isinstance(call, ProtocolError):
            raise call
        return Envelope([call], batch=False, id=envelope_id)
    raise ProtocolError("the request body has neither 'request' nor 'requests'")


def _parse_request(request: Any, where: str) -> Call | ProtocolError:
    try:
        return _parse_call(request, where)
    except ProtocolError as exc:
        return exc


def _parse_call(request: Any, where: str) -> Call:
    if not isinstance(request, dict):
        raise ProtocolError(f"'{where}' must be a JSON object, not {_json_type(request)}")
    interface = request.get("interface")
    if not isinstance(interface, str) or not interface:
        raise ProtocolError(f"'{where}' has no 'interface'")
    dialect = REMOTE_SERVICE_INTERFACES.get(interface)
    if dialect is None:
        raise ProtocolError(
            f"Interface '{interface}' not found; this endpoint serves RemoteServiceInterface "
            "and Bimsie1RemoteServiceInterface"
        )
    method = request.get("method")
    if not isinstance(method, str) or not method:
        raise ProtocolError(f"'{where}' has no 'method'")
    model = METHODS.get(method)
    if model is None:
        raise ProtocolError(
            f"Method '{method}' not found on {interface}; known methods: "
            + ", ".join(sorted(METHODS))
        )
    raw = request["parameters"] if "parameters" in request else request.get("arguments", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ProtocolError(
            f"'parameters' of {method} must be a JSON object, not {_json_type(raw)}"
        )
    return Call(interface, dialect, method, _validate(model, method, raw))


def _validate(model: type[_Parameters], method: str, raw: dict[str, Any]) -> _Parameters:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(_describe(exc, method, raw)) from None


def _describe(error: ValidationError, method: str, raw: dict[str, Any]) -> str:
    """Each problem with the parameter's name; the offending value too, unless it is a secret."""
    problems = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"])
        if item["type"] == "missing":
            problems.append(f"Missing parameter: {method} -> {name}")
            continue
        if raw.get(name, ...) is None:
            problems.append(f"Parameter {method} -> {name} must not be null")
            continue
        if item["type"] in ("greater_than_equal", "less_than_equal"):
            low = -1 if name == "soid" else 0
            reason = f"an object id is a Java long from {low} to {JAVA_LONG_MAX}"
            if item.get("input") == -1:
                reason += f" (-1 is BIMserver's 'none': a {method} must name its {name[:-3]})"
        else:
            reason = str(item["msg"]).removeprefix("Value error, ")
        shown = "" if name in SECRET_PARAMETERS else f" (got {_shown(item.get('input'))})"
        problems.append(f"Invalid value for parameter {method} -> {name}: {reason}{shown}")
    return "; ".join(problems)


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "an object"


def result_body(result: Any) -> dict[str, Any]:
    """A successful answer; a void method answers ``{}`` as BIMserver's own JsonHandler does."""
    return {"response": {"result": {} if result is None else result}}


def exception_body(message: str) -> dict[str, Any]:
    """An error BIMserver's client raises as a UserException with our message."""
    return {"response": {"exception": {"__type": "UserException", "message": message}}}


def answer(envelope_id: Any, responses: list[dict[str, Any]], *, batch: bool) -> dict[str, Any]:
    """The whole reply body: one response, or all of them in order for a batch, each a bare
    ``{"result":…}`` or ``{"exception":…}`` (``JsonHandler.processMultiRequest``, lines
    100-111 at BIMserver HEAD)."""
    if batch:
        body: dict[str, Any] = {"responses": [r["response"] for r in responses]}
    else:
        body = dict(responses[0])
    if envelope_id is not None:
        body["id"] = envelope_id
    return body
