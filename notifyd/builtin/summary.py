"""IFC summary: element counts by type, storeys with their contents, quantity totals."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from notifyd.builtin.model import open_sound_model
from notifyd.services import ExtendedData, ServiceContext

QUANTITY_VALUES = {
    "IfcQuantityLength": "LengthValue",
    "IfcQuantityArea": "AreaValue",
    "IfcQuantityVolume": "VolumeValue",
    "IfcQuantityCount": "CountValue",
    "IfcQuantityWeight": "WeightValue",
    "IfcQuantityTime": "TimeValue",
}


def summarize(ctx: ServiceContext) -> ExtendedData:
    assert ctx.model_path is not None
    ctx.progress(0, "reading the model")
    opened = open_sound_model(ctx.model_path)
    model = opened.model
    ctx.progress(40, "counting")
    products = model.by_type("IfcProduct")
    report: dict[str, Any] = {
        "schema": opened.schema,
        "fileSize": opened.facts.size,
        "entities": len(list(model)),
        "products": len(products),
        "elementCounts": dict(sorted(Counter(p.is_a() for p in products).items())),
    }
    if ctx.settings.group_by_storey:
        ctx.progress(60, "storeys")
        report["storeys"] = [_storey(storey) for storey in _sorted_storeys(model)]
    if ctx.settings.include_quantities:
        ctx.progress(80, "quantities")
        report["quantities"] = _quantity_totals(model)
    ctx.log.info("summary_done", products=len(products))
    return ExtendedData(
        data=json.dumps(report, indent=1, sort_keys=False).encode(),
        mime="application/json",
        filename=f"summary-{ctx.roid if ctx.roid is not None else ctx.job_id}.json",
        title="IFC summary",
    )


def _sorted_storeys(model: Any) -> list[Any]:
    return sorted(
        model.by_type("IfcBuildingStorey"),
        key=lambda s: (s.Elevation is None, s.Elevation or 0.0, s.Name or ""),
    )


def _storey(storey: Any) -> dict[str, Any]:
    contents: Counter[str] = Counter()
    for rel in getattr(storey, "ContainsElements", ()) or ():
        contents.update(element.is_a() for element in rel.RelatedElements)
    return {
        "globalId": storey.GlobalId,
        "name": storey.Name,
        "elevation": storey.Elevation,
        "elementCount": sum(contents.values()),
        "elements": dict(sorted(contents.items())),
    }


def _quantity_totals(model: Any) -> dict[str, dict[str, float | int]]:
    totals: dict[str, dict[str, float | int]] = defaultdict(lambda: {"total": 0.0, "count": 0})
    for quantity_set in model.by_type("IfcElementQuantity"):
        for quantity in quantity_set.Quantities or ():
            attribute = QUANTITY_VALUES.get(quantity.is_a())
            if attribute is None:
                continue
            value = getattr(quantity, attribute, None)
            if value is None:
                continue
            entry = totals[f"{quantity.Name} ({quantity.is_a()[11:]})"]
            entry["total"] += float(value)
            entry["count"] += 1
    return {
        name: {"total": round(v["total"], 6), "count": v["count"]}
        for name, v in sorted(totals.items())
    }
