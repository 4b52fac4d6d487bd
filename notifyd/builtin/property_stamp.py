"""IFC property stamp: adds a property set to every element and checks the result in as a new
revision, so that the check-in path has a real user."""

from __future__ import annotations

from notifyd.builtin.model import open_sound_model
from notifyd.services import Revision, ServiceContext


def stamp(ctx: ServiceContext) -> Revision:
    import ifcopenshell.api.pset

    assert ctx.model_path is not None
    settings = ctx.settings
    opened = open_sound_model(ctx.model_path)
    model = opened.model
    elements = model.by_type("IfcElement")
    owner_history = next(iter(model.by_type("IfcOwnerHistory")), None)
    for number, element in enumerate(elements, start=1):
        pset = ifcopenshell.api.pset.add_pset(model, product=element, name=settings.pset_name)
        if owner_history is not None and getattr(pset, "OwnerHistory", None) is None:
            pset.OwnerHistory = owner_history
        ifcopenshell.api.pset.edit_pset(
            model, pset=pset, properties={settings.property_name: settings.value}
        )
        if number % 500 == 0:
            ctx.progress(int(90 * number / len(elements)), f"{number} of {len(elements)}")
    out = ctx.work_dir / f"stamped-{ctx.roid}.ifc"
    model.write(str(out))
    ctx.log.info("stamped", elements=len(elements))
    return Revision(
        path=out,
        comment=f"{settings.pset_name}.{settings.property_name} added to {len(elements)} elements",
    )
