"""The simulator's own surface: state files, faults, settings and sim:// URLs."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

from hvintegration import (
    Credential,
    HyperVHost,
    InvalidTargetError,
    RemoteCommandError,
    WindowsGuest,
    catalogue,
)
from hvintegration.operations import GET_GUEST_SERVICES, INVOKE_IN_VM, LIST_VMS, Operation
from hvintegration.simulator import GUEST_OSES, HOST_OSES, LOCALES, SimulatedHost
from hvintegration.simulator.state import edit_state, host_from_json, host_to_json, load_host
from hvintegration.simulator.targets import HostStateFile, SimulatorTarget
from hvintegration.transport import JsonValue, PowerShellTransport, parse_target


def test_state_round_trip_keeps_everything() -> None:
    sim = SimulatedHost("LAB", os="windows-server-2016", locale="ja-JP", latency=0.01)
    sim.add_vm("web01", guest="ubuntu-22.04", state="Off", enabled={"VSS": False})
    sim.inject_fault("hang", operation="list_vms", times=2)
    sim.round_trips = 7
    copy = host_from_json(json.loads(json.dumps(host_to_json(sim))))
    assert host_to_json(copy) == host_to_json(sim)
    assert copy.vm("web01").enabled[catalogue.VSS.component_id] is False


@pytest.mark.parametrize(
    "data",
    [{}, {"format": 99}, {"format": 1, "name": "x"}, {"format": 1, "name": "x", "os": "dos"}],
)
def test_bad_state_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="simulated host state"):
        host_from_json(data)


def test_state_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    path.write_text("{ nope")
    with pytest.raises(ValueError, match="not JSON"):
        load_host(path)
    with pytest.raises(FileNotFoundError), edit_state(tmp_path / "missing.json"):
        pass


def test_concurrent_edits_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    with edit_state(path, create=SimulatedHost()):
        pass

    def bump(_: int) -> None:
        with edit_state(path) as sim:
            sim.round_trips += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(bump, range(64)))
    assert load_host(path).round_trips == 64


def test_failed_edit_is_discarded(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    with edit_state(path, create=SimulatedHost()):
        pass

    def half_made_edit() -> None:
        with edit_state(path) as sim:
            sim.add_vm("half-made")
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        half_made_edit()
    assert [vm.name for vm in load_host(path).vms] == ["demovm"]


def test_faults_are_consumed_in_order() -> None:
    sim = SimulatedHost()
    sim.inject_fault("error", operation="list_vms", times=2)
    sim.inject_fault("hang")
    assert sim.take_fault("get_integration_services").kind.value == "hang"  # type: ignore[union-attr]
    assert sim.take_fault("list_vms") is not None
    assert sim.take_fault("list_vms") is not None
    assert sim.take_fault("list_vms") is None
    with pytest.raises(ValueError, match="meteor"):
        sim.inject_fault("meteor")


def test_unknown_profiles_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown host OS"):
        SimulatedHost(os="windows-95")
    with pytest.raises(ValueError, match="unknown locale"):
        SimulatedHost(locale="xx-XX")
    with pytest.raises(ValueError, match="unknown guest OS"):
        SimulatedHost().add_vm("x", guest="beos")
    with pytest.raises(KeyError):
        SimulatedHost().vm("ghost")


def test_profiles_are_consistent() -> None:
    host_ids = {s.component_id for s in catalogue.HOST_SERVICES}
    for host in HOST_OSES.values():
        assert host.services <= host_ids
    for guest in GUEST_OSES.values():
        assert guest.services <= host_ids
    for names in LOCALES.values():
        assert set(names) == host_ids


def test_sim_urls() -> None:
    target = parse_target("sim://LAB?os=windows-server-2012&locale=zh-TW&vms=200&latency=0.5")
    assert isinstance(target, SimulatorTarget)
    assert target.url == "sim://LAB?os=windows-server-2012&locale=zh-TW&vms=200&latency=0.5"
    host = target.build_host()
    assert len(host.vms) == 201
    assert host.vms[-1].name == "vm200"
    assert parse_target("sim://").url == "sim://HV01"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sim://?os=dos", "unknown simulated host OS"),
        ("sim://?locale=tlh", "unknown simulated locale"),
        ("sim://?vms=-1", "vms from 0"),
        ("sim://?latency=999", "latency from 0"),
        ("sim://?latency=soon", "malformed"),
    ],
)
def test_bad_sim_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidTargetError, match=message):
        parse_target(url)


def _spliced(operation: Operation) -> Operation:
    # What a caller value spliced into the script text would look like.
    return attrs.evolve(operation, script=operation.script + "\n# x")


@pytest.mark.parametrize(
    ("where", "operation", "parameters"),
    [
        ("host", LIST_VMS, {"VM": None}),
        ("inside", GET_GUEST_SERVICES, {"Name": ["vmicvss"]}),
        ("state-file", LIST_VMS, {"VM": None}),
    ],
)
async def test_the_simulator_runs_only_the_shipped_scripts(
    where: str, operation: Operation, parameters: dict[str, JsonValue], tmp_path: Path
) -> None:
    sim = SimulatedHost()
    transports: dict[str, PowerShellTransport] = {
        "host": sim.open(),
        "inside": sim.inside("demovm").open(),
        "state-file": HostStateFile(tmp_path / "lab.json", seed=sim).open(),
    }
    async with transports[where] as transport:
        await transport.run_operation(operation, parameters, timeout=5)
        with pytest.raises(RemoteCommandError, match="not the shipped one") as caught:
            await transport.run_operation(_spliced(operation), parameters, timeout=5)
    assert caught.value.error_id == "HvIntegration.Simulator.UnknownScript"
    # The refused call never reached the simulated host.
    counted = load_host(tmp_path / "lab.json") if where == "state-file" else sim
    assert counted.round_trips == 1


async def test_the_simulator_refuses_an_operation_it_does_not_ship() -> None:
    unknown = Operation("list_everything", script="Hyper-V\\Get-VM", parameters=())
    async with SimulatedHost().open() as transport:
        with pytest.raises(RemoteCommandError, match="'list_everything' is not the shipped"):
            await transport.run_operation(unknown, {}, timeout=5)


async def test_powershell_direct_runs_only_the_shipped_guest_scripts() -> None:
    sim = SimulatedHost()
    async with HyperVHost.connect(sim) as host:
        guest = WindowsGuest.direct(host, "demovm", Credential("Administrator", "hvintegration"))
        spliced = _spliced(GET_GUEST_SERVICES)
        with pytest.raises(RemoteCommandError, match="shipped guest operation scripts") as caught:
            await guest.transport.run_operation(spliced, {"Name": ["vmicvss"]}, timeout=5)
        assert caught.value.error_id == "HvIntegration.Simulator.UnknownScript"


async def test_powershell_direct_refuses_a_bare_operation_name_as_script() -> None:
    # Real PowerShell would try to run the word as a command and fail; the
    # simulator must not run the operation of that name instead.
    sim = SimulatedHost()
    before = sim.vm("demovm").windows
    assert before is not None
    status_before = before.services["vmicvss"].status
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(RemoteCommandError, match="shipped guest operation scripts"):
            await host.transport.run_operation(
                INVOKE_IN_VM,
                {
                    "VM": {"Name": "demovm"},
                    "UserName": "Administrator",
                    "Password": "hvintegration",
                    "Script": "set_guest_service",
                    "Parameters": {"Name": "vmicvss", "Action": "Stop"},
                },
                timeout=5,
            )
    assert before.services["vmicvss"].status == status_before


async def test_an_operation_built_by_hand_with_more_parameters_is_refused() -> None:
    # The base class checks names against the operation's own list; only a
    # comparison with the whole shipped record stops extra names.
    forged = Operation("list_vms", LIST_VMS.script, (*LIST_VMS.parameters, "Injected"))
    sim = SimulatedHost()
    async with sim.open() as transport:
        with pytest.raises(RemoteCommandError, match="not the shipped one"):
            await transport.run_operation(forged, {"VM": None, "Injected": "x"}, timeout=5)
    assert sim.round_trips == 0
