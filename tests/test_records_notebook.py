"""Every record shows in a notebook: each public record class has an HTML
table of its own, the tuples of records inside records are RecordLists, and
an empty list says "(no rows)" as the command line does."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import attrs

import hvintegration
from hvintegration import HyperVHost, LinuxGuest, RecordList, WindowsGuest, advise


def _public_record_classes() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(hvintegration.__path__, "hvintegration."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            record = hasattr(value, "to_dict") or hasattr(value, "__columns__")
            if isinstance(value, type) and attrs.has(value) and record:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def test_every_public_record_class_has_an_html_display() -> None:
    classes = _public_record_classes()
    assert len(classes) > 20
    missing = [cls.__name__ for cls in classes if not hasattr(cls, "_repr_html_")]
    assert missing == []


def _walk(value: Any, seen: dict[str, Any]) -> None:
    if attrs.has(type(value)):
        seen.setdefault(type(value).__name__, value)
        for field in attrs.fields(type(value)):
            _walk(getattr(value, field.name), seen)
    elif isinstance(value, (list, tuple)):
        for item in value[:3]:
            _walk(item, seen)
    elif isinstance(value, dict):
        for item in list(value.values())[:3]:
            _walk(item, seen)


async def test_every_record_the_library_returns_renders_as_a_table() -> None:
    seen: dict[str, Any] = {}
    async with HyperVHost.connect("sim://") as host:
        _walk(await host.list_vms(), seen)
        _walk(await host.integration_services(), seen)
        _walk(await host.vm("demovm").set_kvp_items({"a": "b"}), seen)
    async with LinuxGuest.connect("sim-linux://") as guest:
        _walk(await guest.status(), seen)
        _walk(await guest.kvp(), seen)
    async with WindowsGuest.connect("sim://?guest=demovm") as windows:
        _walk(await windows.services(), seen)
    _walk(advise(host_os="2019", guest_os="win7"), seen)
    for name in (
        "KvpItem",
        "KvpChange",
        "DaemonProcess",
        "UnitState",
        "VMBusDevice",
        "DeviceNode",
        "InstalledProgram",
        "Source",
        "LinuxSide",
        "DaemonSpec",
    ):
        assert name in seen, name
    for name, record in seen.items():
        shown = record._repr_html_()
        assert isinstance(shown, str), name
        assert "<table" in shown or "<p>" in shown, name


def test_advice_sources_show_as_a_table_and_an_empty_list_says_no_rows() -> None:
    advice = advise(host_os="2019", guest_os="win7")
    assert isinstance(advice.sources, RecordList)
    assert advice.sources._repr_html_().startswith("<table")
    assert advice.sources[0:0]._repr_html_() == "<p>(no rows)</p>"
    assert advice == advise(host_os="2019", guest_os="win7")
