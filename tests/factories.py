"""Wire bodies exactly as BIMserver 1.4 and 1.5 send them, with overridable defaults."""

from __future__ import annotations

import itertools
from typing import Any

from notifyd.records import Dialect, Notification, NotificationKind, Upload
from tests.conftest import BIMSERVER

INTERFACE = {
    Dialect.BIMSIE1: "Bimsie1RemoteServiceInterface",
    Dialect.BIMSERVER_15: "RemoteServiceInterface",
}

# BIMserver 1.4 posts with HttpCore's StringEntity default; 1.5.49+ with application/json.
CONTENT_TYPE = {
    Dialect.BIMSIE1: "text/plain; charset=UTF-8",
    Dialect.BIMSERVER_15: "application/json",
}

_roids = itertools.count(655363)


def notification_parameters(method: str = "newRevision", **overrides: Any) -> dict[str, Any]:
    """Parameters in Java signature order, as JsonReflector writes them."""
    params: dict[str, Any] = {"poid": 131073}
    if method in ("newRevision", "newExtendedDataOnRevision"):
        params["roid"] = next(_roids)
    if method in ("newExtendedDataOnProject", "newExtendedDataOnRevision"):
        params["edid"] = 851969
    params.update(
        {
            "soid": 720899,
            "serviceIdentifier": "ifc-summary",
            "profileIdentifier": "default",
            "userToken": "user-token-abc",
            "token": "d4f8c0ffee0a55",
            "apiUrl": BIMSERVER,
        }
    )
    params.update(overrides)
    return params


def make_request(
    method: str,
    parameters: dict[str, Any],
    dialect: Dialect = Dialect.BIMSERVER_15,
    interface: str | None = None,
) -> dict[str, Any]:
    return {
        "interface": interface or INTERFACE[dialect],
        "method": method,
        "parameters": parameters,
    }


def make_envelope(
    method: str = "newRevision",
    dialect: Dialect = Dialect.BIMSERVER_15,
    parameters: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    if parameters is None:
        parameters = notification_parameters(method, **overrides)
    return {"request": make_request(method, parameters, dialect)}


def make_notification(**overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "kind": NotificationKind.NEW_REVISION,
        "dialect": Dialect.BIMSERVER_15,
        "poid": 131073,
        "roid": next(_roids),
        "edid": None,
        "soid": 720899,
        "service": "ifc-summary",
        "profile": "default",
        "api_url": BIMSERVER,
        "token": "d4f8c0ffee0a55",
        "user_token": "user-token-abc",
    }
    values.update(overrides)
    return Notification(**values)


def make_upload(**overrides: Any) -> Upload:
    """A model posted to a resource URL, as the bots endpoint stores it."""
    values: dict[str, Any] = {
        "upload_id": "8c1f0d",
        "service": "ifc-summary",
        "profile": "default",
        "input_type": "IFC_STEP_2X3TC1",
        "output_type": "UNSTRUCTURED_UTF8_TEXT_1_0",
        "model_path": "uploads/8c1f0d.ifc",
        "size": 4_096,
        "account": "alice",
    }
    values.update(overrides)
    return Upload(**values)
