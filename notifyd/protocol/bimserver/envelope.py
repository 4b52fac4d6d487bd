"""Request and answer bodies of BIMserver's ``/json`` endpoint.

[1.5] ``BimServer/src/org/bimserver/JsonHandler.java:62-229``; [1.4] the same file at the tag.

- A single request ``{"token":…, "request":{interface, method, parameters}}`` is answered
  ``{"response":{"result":…}}`` or ``{"response":{"exception":{…}}}``; a null result is ``{}``
  (lines 178-183).
- A batch ``{"requests":[…]}`` is answered ``{"responses":[{"result":…},{"exception":…}]}``
  with bare elements, one per request, a failing one not stopping the rest (lines 100-111).
- [1.5] echoes a numeric ``id`` first (lines 70-74); [1.4] never does.
- An exception carries ``__type`` (the Java class's simple name) and ``message``; [1.5] adds
  ``errorType`` and ``errorCode`` when the exception has an error code, [1.4] ``errorCode`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from notifyd.records import Dialect


@dataclass(frozen=True, slots=True)
class Outcome:
    """One answered call: a result (None for BIMserver's ``{}``) or an exception."""

    result: Any = None
    exception_type: str | None = None
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.exception_type is not None


class MalformedAnswer(ValueError):
    """The body is not an answer BIMserver writes."""


def request(interface: str, method: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {"interface": interface, "method": method, "parameters": parameters}


def exception_object(
    dialect: Dialect, exception_type: str, message: str, error_code: tuple[str, int] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"__type": exception_type, "message": message}
    if error_code is not None:
        if dialect is Dialect.BIMSERVER_15:
            body["errorType"] = error_code[0]
        body["errorCode"] = error_code[1]
    return body


def read_outcome(element: Any) -> Outcome:
    """One ``{"result":…}`` or ``{"exception":…}``."""
    if not isinstance(element, dict):
        raise MalformedAnswer(f"an answer element must be an object, not {element!r:.80}")
    if "exception" in element and element["exception"] is not None:
        exception = element["exception"]
        if not isinstance(exception, dict):
            return Outcome(exception_type="UserException", message=str(exception))
        return Outcome(
            exception_type=str(exception.get("__type") or "UserException"),
            message=str(exception.get("message") or ""),
        )
    result = element.get("result")
    return Outcome(result=None if result == {} else result)


def read_answer(document: Any, *, batch: bool) -> list[Outcome]:
    """The outcomes of a single or a batch answer, in request order."""
    if not isinstance(document, dict):
        raise MalformedAnswer(f"the answer is not a JSON object: {document!r:.80}")
    if batch:
        responses = document.get("responses")
        if not isinstance(responses, list):
            raise MalformedAnswer("the batch answer has no 'responses' list")
        return [read_outcome(element) for element in responses]
    response = document.get("response")
    if not isinstance(response, dict):
        raise MalformedAnswer("the answer has no 'response' object")
    return [read_outcome(response)]
