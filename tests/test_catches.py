"""Tests that catch what they claim: the force guard and locale-free refresh.

Each group here was written against a deliberate breakage that the rest of
the suite let through:

- the force guard looking only at the first change of a batch, so that
  ``vm.apply({"VSS": False, "Heartbeat": False})`` turned Heartbeat off
  without ``force``;
- ``IntegrationService.refresh()`` finding its service by the name the host
  reports, which is localised, instead of by the component GUID.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest

from hvintegration import (
    Credential,
    HyperVHost,
    ServiceNotFoundError,
    UnsafeChangeError,
    catalogue,
)
from hvintegration.cli import EXIT_CODES, run
from hvintegration.operations import Operation
from hvintegration.simulator import LOCALES, SimulatedHost
from hvintegration.transport.base import JsonValue, OperationResult, PowerShellTransport
from hvintegration.transport.simulator import SimulatorTransport

ADMIN = Credential("Administrator", "hvintegration")

CRITICAL_HOST = [spec for spec in catalogue.HOST_SERVICES if spec.critical]
HARMLESS_HOST = [spec for spec in catalogue.HOST_SERVICES if not spec.critical]
CRITICAL_GUEST = [spec for spec in catalogue.ALL_SERVICES if spec.critical]


def test_the_critical_services_are_the_documented_ones() -> None:
    # The vendor's integration services reference rates losing Shutdown as
    # high impact; Heartbeat, KVP and PowerShell Direct are what the host
    # needs to see and manage the guest. The guard tests below run for each.
    assert [s.name for s in CRITICAL_HOST] == ["Heartbeat", "Key-Value Pair Exchange", "Shutdown"]
    assert [s.name for s in CRITICAL_GUEST] == [
        "Heartbeat",
        "Key-Value Pair Exchange",
        "Shutdown",
        "PowerShell Direct",
    ]


def _enabled(sim: SimulatedHost) -> list[dict[uuid.UUID, bool]]:
    return [dict(vm.enabled) for vm in sim.vms]


def _batch(critical: catalogue.ServiceSpec, position: int) -> dict[catalogue.ServiceSpec, bool]:
    """The harmless services with a change each, and the critical one turned
    off at ``position`` (0 = first, len = last)."""
    changes: list[tuple[catalogue.ServiceSpec, bool]] = [
        (spec, spec is catalogue.GUEST_SERVICE_INTERFACE) for spec in HARMLESS_HOST
    ]
    changes.insert(position, (critical, False))
    return dict(changes)


POSITIONS = range(len(HARMLESS_HOST) + 1)


# --- the force guard: every path that takes several changes ----------------------


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("critical", CRITICAL_HOST, ids=lambda s: s.key)
async def test_vm_apply_refuses_a_critical_change_anywhere_in_the_batch(
    critical: catalogue.ServiceSpec, position: int
) -> None:
    sim = SimulatedHost()
    before = _enabled(sim)
    desired = _batch(critical, position)
    assert list(desired).index(critical) == position
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(UnsafeChangeError) as caught:
            await host.vm("demovm").apply(desired)
    assert caught.value.services == (critical.name,)
    assert sim.round_trips == 0
    assert _enabled(sim) == before


@pytest.mark.parametrize(
    "spelling",
    [
        lambda s: s.name,
        lambda s: s.key,
        lambda s: s.windows_service,
        lambda s: str(s.component_id).lower(),
        lambda s: s.component_id,
        lambda s: s.aliases[0] if s.aliases else s.name.upper(),
    ],
    ids=["name", "key", "windows", "guid-text", "guid", "alias"],
)
@pytest.mark.parametrize("critical", CRITICAL_HOST, ids=lambda s: s.key)
async def test_every_spelling_of_a_critical_service_is_guarded(
    critical: catalogue.ServiceSpec, spelling: object
) -> None:
    sim = SimulatedHost()
    name = spelling(critical)  # type: ignore[operator]
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(UnsafeChangeError):
            await host.vm("demovm").apply({"VSS": False, name: False})
    assert sim.round_trips == 0


async def test_every_critical_service_off_at_once_names_them_all() -> None:
    sim = SimulatedHost()
    before = _enabled(sim)
    desired = {spec: False for spec in catalogue.HOST_SERVICES}
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(UnsafeChangeError) as caught:
            await host.vm("demovm").apply(desired)
        assert sim.round_trips == 0
        assert _enabled(sim) == before
        result = await host.vm("demovm").apply(desired, force=True)
    assert sorted(caught.value.services) == sorted(s.name for s in CRITICAL_HOST)
    assert sim.round_trips == 1
    assert {c.state.component_id: c.state.enabled for c in result.items} == {
        s.component_id: False for s in catalogue.HOST_SERVICES
    }


@pytest.mark.parametrize("vm_position", range(3))
@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("critical", CRITICAL_HOST, ids=lambda s: s.key)
async def test_host_apply_refuses_a_critical_change_in_any_vm_at_any_position(
    critical: catalogue.ServiceSpec, position: int, vm_position: int
) -> None:
    sim = SimulatedHost()
    sim.add_vm("web01")
    sim.add_vm("db01")
    before = _enabled(sim)
    names = ["demovm", "web01", "db01"]
    desired = {name: {"Guest Service Interface": True, "VSS": False} for name in names}
    desired[names[vm_position]] = {
        spec.name: enabled for spec, enabled in _batch(critical, position).items()
    }
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(UnsafeChangeError) as caught:
            await host.apply(desired)
    assert caught.value.services == (critical.name,)
    assert sim.round_trips == 0
    assert _enabled(sim) == before


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("critical", CRITICAL_HOST, ids=lambda s: s.key)
async def test_force_lets_the_same_batch_through_in_one_round_trip(
    critical: catalogue.ServiceSpec, position: int
) -> None:
    sim = SimulatedHost()
    async with HyperVHost.connect(sim) as host:
        result = await host.vm("demovm").apply(_batch(critical, position), force=True)
    assert sim.round_trips == 1
    assert result.items[position].state.component_id == critical.component_id
    assert critical.component_id is not None
    assert sim.vm("demovm").enabled[critical.component_id] is False


@pytest.mark.parametrize("critical", CRITICAL_HOST, ids=lambda s: s.key)
async def test_integration_service_disable_is_guarded(critical: catalogue.ServiceSpec) -> None:
    sim = SimulatedHost()
    async with HyperVHost.connect(sim) as host:
        service = host.vm("demovm").integration_service(critical)
        with pytest.raises(UnsafeChangeError):
            await service.disable()
        assert sim.round_trips == 0
        assert (await service.enable()).enabled is True  # turning it on needs no force


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("critical", CRITICAL_HOST, ids=lambda s: s.key)
def test_the_command_line_refuses_several_changes_with_a_critical_one(
    tmp_path: Path, critical: catalogue.ServiceSpec, position: int
) -> None:
    target = f"sim://?state={tmp_path / 'lab.json'}"
    names = [spec.name for spec in HARMLESS_HOST]
    names.insert(position, critical.name)

    def cli(*argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        return run(["-t", target, *argv], out=out, err=err), out.getvalue() + err.getvalue()

    code, text = cli("host", "disable", "demovm", *names)
    assert code == EXIT_CODES["usage"], text
    assert "--force" in text
    code, text = cli("--json", "host", "services", "demovm")
    assert code == 0
    # Nothing changed, not even the harmless services listed before it.
    assert all(
        row["enabled"] for row in json.loads(text) if row["name"] != "Guest Service Interface"
    )


# --- the force guard on a Windows guest --------------------------------------------


@pytest.mark.parametrize("action", ["stop", "disable"])
@pytest.mark.parametrize("critical", CRITICAL_GUEST, ids=lambda s: s.key)
async def test_a_windows_guest_refuses_to_stop_or_disable_a_critical_service(
    critical: catalogue.ServiceSpec, action: str
) -> None:
    # A Windows guest changes one service per call: there is no batch path,
    # so each critical service is checked on both guarded actions.
    sim = SimulatedHost()
    windows = sim.vm("demovm").windows
    assert windows is not None
    async with HyperVHost.connect(sim) as host:
        service = host.vm("demovm").windows(ADMIN).service(critical.windows_service)
        with pytest.raises(UnsafeChangeError) as caught:
            await getattr(service, action)()
        assert caught.value.services == (critical.name,)
        assert sim.round_trips == 0
        # What is not guarded still goes through.
        assert (await service.refresh()).name == critical.windows_service
        assert sim.round_trips == 1


# --- refresh() by GUID on localised hosts ----------------------------------------


@pytest.mark.parametrize("locale", ["de-DE", "ja-JP", "zh-TW"])
@pytest.mark.parametrize("spec", catalogue.HOST_SERVICES, ids=lambda s: s.key)
async def test_refresh_on_a_localised_host(locale: str, spec: catalogue.ServiceSpec) -> None:
    async with HyperVHost.connect(f"sim://?locale={locale}") as host:
        service = host.vm("demovm").integration_service(spec)
        state = await service.refresh()
        changed = await (service.disable(force=True) if spec.critical else service.disable())
        again = await service.refresh()
    assert spec.component_id is not None
    assert state.name == LOCALES[locale][spec.component_id]
    assert (state.component_id, state.service, state.display_name) == (
        spec.component_id,
        spec,
        spec.name,
    )
    assert (changed.component_id, again.component_id) == (spec.component_id, spec.component_id)
    assert again.enabled is False


def test_the_localised_hosts_do_rename_most_services() -> None:
    # The test above only proves something where the name differs.
    for locale in ("de-DE", "ja-JP", "zh-TW"):
        renamed = [
            spec.name
            for spec in catalogue.HOST_SERVICES
            if spec.component_id is not None and LOCALES[locale][spec.component_id] != spec.name
        ]
        assert len(renamed) == 5, locale


class _RenamingHost(PowerShellTransport):
    """A simulated host whose services answer to names we choose.

    It passes every operation to a simulator and rewrites the ``Name`` of
    each integration service in the answer, as a host in another display
    language, or a host whose names changed with an update, would report
    them.
    """

    def __init__(self, sim: SimulatedHost, names: Mapping[uuid.UUID, str]) -> None:
        self.sim = sim
        self.names = dict(names)
        self.inner = SimulatorTransport(sim)

    @property
    def target(self) -> str:
        return "test://renaming"

    def _rename(self, obj: Mapping[str, JsonValue]) -> dict[str, JsonValue]:
        # A service record, or a change result holding one under "Service".
        renamed: dict[str, JsonValue] = {
            key: self._rename(item) if isinstance(item, Mapping) else item
            for key, item in obj.items()
        }
        full_id = obj.get("Id")
        if isinstance(full_id, str) and "Name" in obj:
            suffix = uuid.UUID(full_id.rsplit("\\", 1)[-1])
            renamed["Name"] = self.names.get(suffix, obj["Name"])
        return renamed

    async def _run_operation(
        self, operation: Operation, parameters: Mapping[str, JsonValue], *, timeout: float
    ) -> OperationResult:
        result = await self.inner.run_operation(operation, parameters, timeout=timeout)
        output = tuple(self._rename(value) for value in result.output)
        return OperationResult(output, result.errors)

    async def _open(self) -> None:
        await self.inner.open()

    async def _aclose(self) -> None:
        await self.inner.aclose()


def _swapped() -> dict[uuid.UUID, str]:
    """Each service reported under another service's English name."""
    specs = list(catalogue.HOST_SERVICES)
    return {
        spec.component_id: specs[(i + 1) % len(specs)].name
        for i, spec in enumerate(specs)
        if spec.component_id is not None
    }


@pytest.mark.parametrize("spec", catalogue.HOST_SERVICES, ids=lambda s: s.key)
async def test_refresh_when_display_names_collide_with_other_services(
    spec: catalogue.ServiceSpec,
) -> None:
    sim = SimulatedHost()
    sim.vm("demovm").enabled[catalogue.GUEST_SERVICE_INTERFACE.component_id] = True  # type: ignore[index]
    assert spec.component_id is not None
    sim.vm("demovm").enabled[spec.component_id] = False
    names = _swapped()
    async with HyperVHost.connect(_RenamingHost(sim, names)) as host:
        state = await host.vm("demovm").integration_service(spec).refresh()
    assert state.component_id == spec.component_id
    assert state.service is spec
    assert state.name == names[spec.component_id]
    assert state.enabled is False  # only this service is off: the right one was found


async def test_refresh_when_every_service_has_one_name() -> None:
    sim = SimulatedHost()
    names = {spec.component_id: "Integration service" for spec in catalogue.HOST_SERVICES}
    async with HyperVHost.connect(_RenamingHost(sim, names)) as host:  # type: ignore[arg-type]
        for spec in catalogue.HOST_SERVICES:
            state = await host.vm("demovm").integration_service(spec).refresh()
            assert (state.component_id, state.name) == (spec.component_id, "Integration service")


async def test_refresh_after_the_host_changes_its_display_language() -> None:
    sim = SimulatedHost()
    async with HyperVHost.connect(sim) as host:
        service = host.vm("demovm").integration_service("Heartbeat")
        english = await service.refresh()
        sim.locale = "de-DE"
        german = await service.refresh()
        sim.locale = "ja-JP"
        japanese = await service.refresh()
    assert [english.name, german.name, japanese.name] == ["Heartbeat", "Takt", "ハートビート"]
    assert {english.component_id, german.component_id, japanese.component_id} == {
        catalogue.HEARTBEAT.component_id
    }


async def test_refresh_of_a_service_the_localised_host_lacks_is_not_found() -> None:
    sim = SimulatedHost(os="windows-server-2012", locale="de-DE")
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(ServiceNotFoundError):
            await host.vm("demovm").integration_service("Guest Service Interface").refresh()
