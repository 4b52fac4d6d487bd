"""IFC validation, reported in VALIDATION_JSON_1_0 as BIMserver-era services wrote it:
``{"items": [...]}`` with items of type ``header`` and ``line``; each line carries ``status``
(SUCCESS, WARNING or ERROR), ``identification``, ``text``, ``value`` and ``shouldBe``.

A model that fails the checks still succeeds as a job: the report is the result. Only the
checks that need a parsed model are skipped when the file cannot be parsed.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from notifyd.builtin.model import describe_unreadable, open_model, read_file_facts
from notifyd.errors import InvalidModel
from notifyd.services import ExtendedData, ServiceContext
from notifyd.stepfile import header_schema

EXTERNAL_PSETS = {
    "IfcWall": "Pset_WallCommon",
    "IfcSlab": "Pset_SlabCommon",
    "IfcDoor": "Pset_DoorCommon",
    "IfcWindow": "Pset_WindowCommon",
}
MAX_LINES_PER_CHECK = 200


class Report:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.errors = 0
        self.warnings = 0

    def header(self, text: str) -> None:
        self.items.append({"type": "header", "text": text})

    def line(
        self,
        status: str,
        identification: str,
        text: str,
        value: Any,
        should_be: Any,
    ) -> None:
        self.errors += status == "ERROR"
        self.warnings += status == "WARNING"
        self.items.append(
            {
                "type": "line",
                "status": status,
                "identification": identification,
                "text": text,
                "value": "" if value is None else str(value),
                "shouldBe": "" if should_be is None else str(should_be),
            }
        )

    def to_json(self) -> bytes:
        return json.dumps({"items": self.items}, indent=1).encode()


def validate(ctx: ServiceContext) -> ExtendedData:
    assert ctx.model_path is not None
    settings = ctx.settings
    report = Report()
    report.header(
        f"IFC validation of {f'revision {ctx.roid}' if ctx.roid is not None else 'the model'} "
        f"({ctx.profile} profile)"
    )
    ctx.progress(0, "checking the file")
    facts = read_file_facts(ctx.model_path)
    unreadable = describe_unreadable(facts)
    report.line(
        "ERROR" if unreadable else "SUCCESS",
        "file",
        "The file is an ISO 10303-21 (STEP) file",
        unreadable or "starts with ISO-10303-21;",
        "starts with ISO-10303-21;",
    )
    report.line(
        "SUCCESS" if facts.complete else "ERROR",
        "file",
        "The file is complete",
        "ends with END-ISO-10303-21;" if facts.complete else f"cut off after {facts.size} bytes",
        "ends with END-ISO-10303-21;",
    )
    opened = None
    if unreadable is None:
        try:
            opened = open_model(ctx.model_path)
        except InvalidModel as exc:
            report.line("ERROR", "file", "ifcopenshell can open the file", str(exc), "opens")
            _check_schema(report, header_schema(ctx.model_path), settings)
    if opened is not None:
        ctx.progress(30, "checking the model")
        _check_model(report, opened, settings)
    ctx.log.info("validation_done", errors=report.errors, warnings=report.warnings)
    return ExtendedData(
        data=report.to_json(),
        mime="application/json",
        filename=f"validation-{ctx.roid if ctx.roid is not None else ctx.job_id}.json",
        title=f"IFC validation: {report.errors} errors, {report.warnings} warnings",
    )


def _check_model(report: Report, opened: Any, settings: Any) -> None:
    model = opened.model
    report.line(
        "ERROR" if opened.log_errors else "SUCCESS",
        "file",
        "ifcopenshell read the file without errors",
        f"{len(opened.log_errors)} errors"
        + (f"; first: {opened.log_errors[0]}" if opened.log_errors else ""),
        "0 errors",
    )
    supported = _check_schema(report, opened.schema, settings)
    products = model.by_type("IfcProduct") if supported else []
    report.line(
        "SUCCESS" if products else "ERROR",
        "model",
        "The model contains products",
        f"{len(products)} products",
        "at least 1",
    )
    if settings.check_unique_guids:
        _check_unique_guids(report, model)
    if settings.require_is_external and products:
        _check_is_external(report, model)


def _check_schema(report: Report, schema: str | None, settings: Any) -> bool:
    supported = [s.upper() for s in settings.supported_schemas]
    ok = schema is not None and schema.upper() in supported
    report.line(
        "SUCCESS" if ok else "ERROR",
        "header",
        "The schema is supported",
        schema or "no FILE_SCHEMA in the header",
        " or ".join(supported),
    )
    return ok


def _check_unique_guids(report: Report, model: Any) -> None:
    try:
        roots = model.by_type("IfcRoot")
    except RuntimeError:
        return
    counts = Counter(root.GlobalId for root in roots)
    duplicates = {guid: n for guid, n in counts.items() if n > 1}
    if not duplicates:
        report.line("SUCCESS", "model", "GlobalIds are unique", f"{len(counts)} unique", "unique")
        return
    for guid, n in list(duplicates.items())[:MAX_LINES_PER_CHECK]:
        report.line("ERROR", guid, "GlobalId is unique", f"used {n} times", "used once")


def _check_is_external(report: Report, model: Any) -> None:
    import ifcopenshell.util.element

    missing = 0
    checked = 0
    for ifc_class, pset_name in EXTERNAL_PSETS.items():
        for element in model.by_type(ifc_class):
            checked += 1
            pset = ifcopenshell.util.element.get_pset(element, pset_name) or {}
            value = pset.get("IsExternal")
            if value is None:
                missing += 1
                if missing <= MAX_LINES_PER_CHECK:
                    report.line(
                        "ERROR",
                        f"#{element.id()} {element.is_a()} {element.GlobalId}",
                        f"{pset_name}.IsExternal is set",
                        "missing" if not pset else f"{pset_name} without IsExternal",
                        "TRUE or FALSE",
                    )
    report.line(
        "SUCCESS" if missing == 0 else "ERROR",
        "model",
        "Walls, slabs, doors and windows say whether they are external",
        f"{checked - missing} of {checked} do",
        f"{checked} of {checked}",
    )
