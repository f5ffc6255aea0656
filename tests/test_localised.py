"""The names a localised host prints are names the library takes: resolved
through the component GUIDs the host reports, in Python and on the command line."""

from __future__ import annotations

import io
import uuid

import pytest

from hvintegration import (
    ApplyResult,
    BatchError,
    HyperVHost,
    ServiceNotFoundError,
    UnsafeChangeError,
    VMNotFoundError,
    catalogue,
)
from hvintegration.cli import run
from hvintegration.simulator import LOCALES, SimulatedHost

GSI = catalogue.GUEST_SERVICE_INTERFACE
GSI_ID = uuid.UUID("6c09bb55-d683-4da0-8931-c9bf705f6480")
HEARTBEAT_ID = uuid.UUID("84eaae65-2f2e-45f5-9bb5-0e857dc8eb47")
VSS_ID = uuid.UUID("5ced1297-4598-4915-a5fc-ad21bb4d02a4")


@pytest.mark.parametrize(
    ("locale", "name"), [("de-DE", "Gastdienstschnittstelle"), ("zh-TW", "客體服務介面")]
)
async def test_the_printed_name_enables_the_service(locale: str, name: str) -> None:
    sim = SimulatedHost(locale=locale)
    async with HyperVHost.connect(sim) as host:
        printed = [state.name for state in await host.vm("demovm").integration_services()]
        assert name in printed
        result = await host.vm("demovm").apply({name: True})
        # Lower case and spaces around it too, as a person may type it.
        again = await host.apply({"demovm": {f" {name.lower()} ": False}})
    assert result.items[0].state.service is GSI
    assert result.items[0].state.name == name
    assert result.items[0].changed
    assert again.items[0].state.enabled is False
    assert sim.vm("demovm").enabled[GSI_ID] is False


async def test_every_localised_name_resolves_to_its_own_service() -> None:
    for locale, names in LOCALES.items():
        sim = SimulatedHost(locale=locale)
        async with HyperVHost.connect(sim) as host:
            vm = host.vm("demovm")
            for component_id, name in names.items():
                spec = await vm.resolve_service(name)
                assert spec.component_id == component_id, (locale, name)


async def test_catalogue_names_cost_no_extra_round_trip_and_host_names_one() -> None:
    sim = SimulatedHost(locale="de-DE")
    async with HyperVHost.connect(sim) as host:
        await host.vm("demovm").apply({"Guest Service Interface": True})
        assert sim.calls == ["set_integration_services"]
        await host.vm("demovm").apply({"Gastdienstschnittstelle": False, "VSS": True})
        assert sim.calls[1:] == ["get_integration_services", "set_integration_services"]
        spec = await host.vm("demovm").resolve_service("vss")
        assert spec is catalogue.VSS
        assert len(sim.calls) == 3


async def test_resolve_then_act_on_one_service() -> None:
    sim = SimulatedHost(locale="zh-TW")
    async with HyperVHost.connect(sim) as host:
        vm = host.vm("demovm")
        heartbeat = vm.integration_service(await vm.resolve_service("活動訊號"))
        with pytest.raises(UnsafeChangeError):
            await heartbeat.disable()
        state = await heartbeat.refresh()
    assert state.name == "活動訊號"
    assert state.enabled is True
    assert sim.vm("demovm").enabled[HEARTBEAT_ID] is True


async def test_an_unknown_name_lists_the_catalogue_and_the_host_names() -> None:
    sim = SimulatedHost(locale="de-DE")
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(ServiceNotFoundError) as caught:
            await host.vm("demovm").apply({"Gastdienst": True, "VSS": False})
        with pytest.raises(ServiceNotFoundError) as resolved:
            await host.vm("demovm").resolve_service("Gastdienst")
    for error in (caught.value, resolved.value):
        assert error.name == "Gastdienst"
        assert "Gastdienstschnittstelle" in error.choices
        assert "Guest Service Interface" in error.choices
        assert "unknown integration service 'Gastdienst'" in str(error)
    assert "set_integration_services" not in sim.calls
    assert sim.vm("demovm").enabled[VSS_ID] is True


async def test_checks_still_come_before_any_change() -> None:
    sim = SimulatedHost(locale="de-DE")
    async with HyperVHost.connect(sim) as host:
        vm = host.vm("demovm")
        with pytest.raises(UnsafeChangeError):
            await vm.apply({"Takt": False})
        with pytest.raises(ValueError, match="both name Guest Service Interface"):
            await vm.apply({"Gastdienstschnittstelle": True, "Guest Service Interface": False})
        calls = len(sim.calls)
        with pytest.raises(ServiceNotFoundError, match="has no host-side switch"):
            await vm.apply({"PowerShell Direct": True, "Takt": True})
        assert len(sim.calls) == calls  # refused before anything was sent
    assert "set_integration_services" not in sim.calls


@pytest.mark.parametrize("name", ["Gastdienstschnittstelle", "Guest Service Interface"])
async def test_an_unknown_vm_fails_alone_whatever_the_language_of_the_names(name: str) -> None:
    sim = SimulatedHost(locale="de-DE")
    sim.add_vm("vm001")
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(BatchError) as caught:
            await host.apply({"nosuch": {name: True}, "vm001": {name: True}})
    assert isinstance(caught.value.result, ApplyResult)
    assert [change.state.vm_name for change in caught.value.result.items] == ["vm001"]
    assert list(caught.value.errors) == ["nosuch/Guest Service Interface"]
    assert isinstance(caught.value.errors["nosuch/Guest Service Interface"], VMNotFoundError)
    assert sim.vm("vm001").enabled[GSI_ID] is True


async def test_a_host_name_for_only_an_unknown_vm_reports_the_vm() -> None:
    sim = SimulatedHost(locale="de-DE")
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(VMNotFoundError, match="no virtual machine named 'nosuch'"):
            await host.apply({"nosuch": {"Gastdienstschnittstelle": True}})
    assert "set_integration_services" not in sim.calls


@pytest.mark.parametrize(
    ("locale", "typed", "service"),
    [
        # Decomposed u + COMBINING DIAERESIS, as macOS file names and some
        # input methods give it.
        ("de-DE", "Austausch von Schlu\u0308ssel-Wert-Paaren", catalogue.KEY_VALUE_PAIR_EXCHANGE),
        # FULLWIDTH SOLIDUS, as a Chinese input method types the slash.
        ("zh-TW", "索引鍵\uff0f值組交換", catalogue.KEY_VALUE_PAIR_EXCHANGE),
        # IDEOGRAPHIC SPACE between the words, and a doubled space.
        ("ja-JP", "ゲスト\u3000サービス  インターフェイス", GSI),
    ],
)
async def test_names_match_whatever_their_unicode_spelling(
    locale: str, typed: str, service: catalogue.ServiceSpec
) -> None:
    async with HyperVHost.connect(SimulatedHost(locale=locale)) as host:
        printed = {spec.key: name for name, spec in (await host.display_names()).items()}
        assert typed != printed[service.key]
        assert await host.vm("demovm").resolve_service(typed) == service
        result = await host.vm("demovm").apply({typed: True})
    assert result.items[0].state.service == service


def test_catalogue_names_fold_the_same_way() -> None:
    assert catalogue.resolve("\uff56\uff53\uff53") == catalogue.VSS  # full-width "vss"
    assert catalogue.resolve("Guest\u00a0Service   Interface") == GSI


async def test_a_localised_name_given_to_integration_service_points_to_resolve_service() -> None:
    async with HyperVHost.connect(SimulatedHost(locale="de-DE")) as host:
        with pytest.raises(ServiceNotFoundError, match=r"await vm\.resolve_service\('Takt'\)"):
            host.vm("demovm").integration_service("Takt")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("locale", "name", "critical"),
    [("de-DE", "Gastdienstschnittstelle", "Takt"), ("zh-TW", "客體服務介面", "活動訊號")],
)
def test_the_command_line_takes_the_names_it_prints(locale: str, name: str, critical: str) -> None:
    target = f"sim://?locale={locale}"
    status, printed, _ = _cli("-t", target, "host", "services", "demovm")
    assert status == 0
    assert name in printed
    status, out, err = _cli("-t", target, "host", "enable", "demovm", name)
    assert status == 0, err
    assert name in out
    status, out, err = _cli("-t", target, "host", "disable", "demovm", critical)
    assert status == 2
    assert "--force" in err
    status, out, err = _cli("-t", target, "host", "disable", "demovm", critical, "--force")
    assert status == 0, err
    assert critical in out


def test_the_command_line_lists_the_host_names_for_a_typo() -> None:
    status, _, err = _cli("-t", "sim://?locale=de-DE", "host", "enable", "demovm", "Gastdienst")
    assert status == 3
    assert "unknown integration service 'Gastdienst'" in err
    assert "Gastdienstschnittstelle" in err


def test_a_windows_guest_service_by_the_display_name_it_prints() -> None:
    target = "sim://?guest=demovm"
    status, printed, _ = _cli("-t", target, "windows", "services")
    assert status == 0
    assert "Hyper-V Volume Shadow Copy Requestor" in printed
    status, out, err = _cli("-t", target, "windows", "stop", "Hyper-V Volume Shadow Copy Requestor")
    assert status == 0, err
    assert "Stopped" in out
    assert catalogue.resolve("hyper-v heartbeat service") is catalogue.HEARTBEAT
