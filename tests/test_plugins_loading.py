"""Services arrive through the notifyd.services entry points and through service_modules."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

import pytest

from notifyd import plugins
from notifyd.errors import StartupError
from notifyd.services import Registry


def fake_entry_points(*points: EntryPoint) -> Any:
    def entry_points(group: str) -> list[EntryPoint]:
        return [p for p in points if p.group == group]

    return entry_points


def test_entry_point_services_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(name="tests", value="tests.plugins.services", group="notifyd.services")
    monkeypatch.setattr(plugins, "entry_points", fake_entry_points(point))
    specs = plugins.load_services(["notifyd.builtin_services"])
    identifiers = {s.identifier for s in specs}
    assert {"test-noop", "ifc-summary"} <= identifiers


def test_entry_point_may_name_the_function(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(
        name="tests", value="tests.plugins.services:register_services", group="notifyd.services"
    )
    monkeypatch.setattr(plugins, "entry_points", fake_entry_points(point))
    assert any(s.identifier == "test-noop" for s in plugins.load_services([]))


def test_a_broken_entry_point_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(name="broken", value="no_such_module_xyz", group="notifyd.services")
    monkeypatch.setattr(plugins, "entry_points", fake_entry_points(point))
    with pytest.raises(StartupError, match="entry point 'broken'"):
        plugins.load_services([])


def test_a_module_without_register_services_is_named() -> None:
    with pytest.raises(StartupError, match="has no register_services"):
        plugins.load_services(["json"], use_entry_points=False)


def test_a_service_declared_twice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint(
        name="again", value="notifyd.builtin_services:register_services", group="notifyd.plugins"
    )
    monkeypatch.setattr(plugins, "entry_points", fake_entry_points(point))
    specs = plugins.load_services(["notifyd.builtin_services"])
    with pytest.raises(StartupError, match="declared twice"):
        Registry.build(specs, [])


def test_a_module_listed_twice_is_one_plugin() -> None:
    specs = plugins.load_services(["notifyd.builtin_services"] * 2, use_entry_points=False)
    assert len(specs) == len({s.identifier for s in specs})


def test_a_handler_that_cannot_be_imported_is_refused() -> None:
    from notifyd.services import ServiceSpec

    spec = ServiceSpec(
        identifier="x",
        name="x",
        description="x",
        write_extended_data="VALIDATION_JSON_1_0",
        outputs=("VALIDATION_JSON_1_0",),
        handler="no_such_module_xyz:run",
    )
    with pytest.raises(StartupError, match="cannot be imported"):
        Registry.build([spec], [])
