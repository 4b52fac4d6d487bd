"""Small IFC models built with ifcopenshell.api, for tests that must run without the shared
samples."""

from __future__ import annotations

from pathlib import Path

import ifcopenshell
import ifcopenshell.api.aggregate
import ifcopenshell.api.context
import ifcopenshell.api.owner
import ifcopenshell.api.owner.settings
import ifcopenshell.api.project
import ifcopenshell.api.pset
import ifcopenshell.api.root
import ifcopenshell.api.spatial
import ifcopenshell.api.unit


def build_model(
    path: Path,
    *,
    schema: str = "IFC4",
    walls: int = 3,
    external_walls: int = 2,
    slabs: int = 1,
) -> Path:
    """A project with one storey holding ``walls`` walls (the first ``external_walls`` say
    IsExternal) and ``slabs`` slabs (which do not)."""
    model = ifcopenshell.api.project.create_file(version=schema)
    if schema == "IFC2X3":
        _owner_history_settings(model)
    project = ifcopenshell.api.root.create_entity(model, ifc_class="IfcProject", name="Test")
    ifcopenshell.api.unit.assign_unit(model)
    ifcopenshell.api.context.add_context(model, context_type="Model")
    site = ifcopenshell.api.root.create_entity(model, ifc_class="IfcSite", name="Site")
    building = ifcopenshell.api.root.create_entity(model, ifc_class="IfcBuilding", name="B")
    storey = ifcopenshell.api.root.create_entity(
        model, ifc_class="IfcBuildingStorey", name="Level 0"
    )
    storey.Elevation = 0.0
    ifcopenshell.api.aggregate.assign_object(model, products=[site], relating_object=project)
    ifcopenshell.api.aggregate.assign_object(model, products=[building], relating_object=site)
    ifcopenshell.api.aggregate.assign_object(model, products=[storey], relating_object=building)
    elements = []
    for number in range(walls):
        wall = ifcopenshell.api.root.create_entity(model, ifc_class="IfcWall", name=f"W{number}")
        if number < external_walls:
            pset = ifcopenshell.api.pset.add_pset(model, product=wall, name="Pset_WallCommon")
            ifcopenshell.api.pset.edit_pset(model, pset=pset, properties={"IsExternal": True})
        elements.append(wall)
    for number in range(slabs):
        elements.append(
            ifcopenshell.api.root.create_entity(model, ifc_class="IfcSlab", name=f"S{number}")
        )
    if elements:
        ifcopenshell.api.spatial.assign_container(
            model, products=elements, relating_structure=storey
        )
    model.write(str(path))
    return path


def _owner_history_settings(model: ifcopenshell.file) -> None:
    """IFC2X3 requires an owner history on every rooted entity."""
    person = ifcopenshell.api.owner.add_person(model, identification="T", family_name="Tester")
    organisation = ifcopenshell.api.owner.add_organisation(
        model, identification="NTD", name="notifyd tests"
    )
    user = ifcopenshell.api.owner.add_person_and_organisation(
        model, person=person, organisation=organisation
    )
    application = ifcopenshell.api.owner.add_application(model)
    ifcopenshell.api.owner.settings.get_user = lambda _file: user
    ifcopenshell.api.owner.settings.get_application = lambda _file: application
