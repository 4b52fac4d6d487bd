"""How BIMserver turns JSON parameters into Java values (``JsonConverter.fromJson``).

[1.5] ``Shared/src/org/bimserver/shared/json/JsonConverter.java:164-309`` (Jackson);
[1.4] the same file at the 1.4 tag (Gson). The rules that matter to a caller:

- an object with ``__type`` is built as that type; an unknown type fails with
  ``ConvertException("Unknown type: X")``; keys the type lacks are ignored;
- an object without ``__type`` fails with ``ConvertException("Missing __type field in …")``
  unless it is empty, which is null;
- numbers and booleans may come as strings; a Long that is not a number is 0 in 1.5 (Jackson's
  ``asLong``) and a ``ConvertException`` in 1.4 (Gson's ``getAsLong``); a Boolean is true only for
  ``true``/``"true"`` (or a non-zero number in 1.5);
- an enum literal the enum lacks fails with ``UnsupportedOperationException``;
- byte arrays are base64;
- a value of the wrong shape (an array for a Long, an object of another type) reaches
  ``Method.invoke``, which fails with ``IllegalArgumentException("argument type mismatch")``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from notifyd.protocol.bimserver.sobjects import ENUMS, FIELDS
from notifyd.records import Dialect


class ConversionFailure(Exception):
    """BIMserver would answer the call with this exception."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _mismatch() -> ConversionFailure:
    return ConversionFailure("IllegalArgumentException", "argument type mismatch")


def from_json(dialect: Dialect, java_type: str, value: Any) -> Any:
    """The Java value as BIMserver would build it, in Python terms (None for null)."""
    if isinstance(value, dict):
        return _object(dialect, java_type, value)
    if value is None:
        return None
    if isinstance(value, list):
        if java_type.startswith(("List<", "Set<")):
            inner = java_type[java_type.index("<") + 1 : -1]
            return [from_json(dialect, inner, item) for item in value]
        raise ConversionFailure("UnsupportedOperationException", _json_text(value))
    if java_type.startswith(("List<", "Set<")):
        raise _mismatch()  # a scalar where a collection is declared
    if java_type == "Long" or java_type == "Integer":
        return _number(dialect, value)
    if java_type == "Boolean":
        return _boolean(dialect, value)
    if java_type == "String":
        return value if isinstance(value, str) else _json_text(value)
    if java_type in ("byte[]", "DataHandler"):
        return decode_base64(str(value))
    if java_type in ENUMS[dialect]:
        if isinstance(value, str) and value in ENUMS[dialect][java_type]:
            return value
        raise ConversionFailure("UnsupportedOperationException", _json_text(value))
    raise _mismatch()


def _number(dialect: Dialect, value: Any) -> int:
    if isinstance(value, bool):
        if dialect is Dialect.BIMSIE1:
            raise ConversionFailure("ConvertException", f"java.lang.NumberFormatException: {value}")
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            if dialect is Dialect.BIMSIE1:
                raise ConversionFailure(
                    "ConvertException",
                    f'java.lang.NumberFormatException: For input string: "{value}"',
                ) from None
            return 0  # Jackson's TextNode.asLong() falls back to 0


def _boolean(dialect: Dialect, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return dialect is Dialect.BIMSERVER_15 and value != 0
    return str(value).strip().lower() == "true"


def _object(dialect: Dialect, java_type: str, value: dict[str, Any]) -> dict[str, Any] | None:
    if "__type" not in value:
        if not value:
            return None
        raise ConversionFailure("ConvertException", f"Missing __type field in {_json_text(value)}")
    type_name = str(value["__type"])
    fields = FIELDS[dialect].get(type_name)
    if fields is None:
        raise ConversionFailure("ConvertException", f"Unknown type: {type_name}")
    if type_name != java_type:
        raise _mismatch()
    built: dict[str, Any] = {"__type": type_name}
    for name, field_type in fields.items():
        if name in value:
            built[name] = from_json(dialect, _BOXED.get(field_type, field_type), value[name])
    return built


# Field types that convert like the boxed parameter types.
_BOXED = {"long": "Long", "int": "Integer", "boolean": "Boolean", "Date": "Long", "UUID": "String"}


def decode_base64(text: str) -> bytes:
    """Commons Codec's ``decodeBase64`` skips characters outside the alphabet."""
    try:
        return base64.b64decode(text.encode(), validate=False)
    except binascii.Error:
        return b""
