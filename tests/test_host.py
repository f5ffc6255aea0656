"""The host API against the simulator: the seed's walk-through, batches, bad input."""

from __future__ import annotations

import uuid

import pytest

from hvintegration import (
    AmbiguousVMError,
    BatchError,
    HyperVHost,
    InvalidTargetError,
    OperationTimeoutError,
    PermissionDeniedError,
    ProtocolError,
    ServiceNotFoundError,
    TransportBrokenError,
    TransportClosedError,
    VMNotFoundError,
    catalogue,
)
from hvintegration.simulator import SimulatedHost
from hvintegration.testing import MockTransport
from hvintegration.transport.base import JsonValue, OperationResult

GSI = "Guest Service Interface"


@pytest.fixture
def sim() -> SimulatedHost:
    return SimulatedHost()


async def test_the_seed_walkthrough(sim: SimulatedHost) -> None:
    async with HyperVHost.connect(sim) as host:
        vm = host.vm("demovm")
        before = await vm.integration_services()
        assert [(s.name, s.enabled) for s in before] == [
            (GSI, False),
            ("Heartbeat", True),
            ("Key-Value Pair Exchange", True),
            ("Shutdown", True),
            ("Time Synchronization", True),
            ("VSS", True),
        ]
        gsi = vm.integration_service(GSI)
        enabled = await gsi.enable()
        assert enabled.enabled is True
        assert (await gsi.refresh()).enabled is True
        disabled = await gsi.disable()
        assert disabled.enabled is False
        assert disabled.primary_status == "OK"
    assert sim.vm("demovm").enabled[catalogue.GUEST_SERVICE_INTERFACE.component_id] is False


async def test_enabling_an_enabled_service_changes_nothing(sim: SimulatedHost) -> None:
    async with HyperVHost.connect(sim) as host:
        result = await host.vm("demovm").apply({"VSS": True})
    assert result.changed == ()
    assert result.unchanged[0].state.enabled is True


async def test_awaited_connect_and_explicit_close(sim: SimulatedHost) -> None:
    host = await HyperVHost.connect(sim)
    assert [vm.name for vm in await host.list_vms()] == ["demovm"]
    await host.aclose()
    await host.aclose()
    with pytest.raises(TransportClosedError):
        await host.list_vms()


async def test_vm_by_id_and_summary(sim: SimulatedHost) -> None:
    vm_id = sim.vm("demovm").id
    async with HyperVHost.connect(sim) as host:
        summary = await host.vm(vm_id).summary()
        services = await host.vm(vm_id).integration_services()
    assert (summary.name, summary.id, summary.state, summary.host) == (
        "demovm",
        vm_id,
        "Running",
        "HV01",
    )
    assert {s.vm_id for s in services} == {vm_id}


async def test_vm_names_compare_exactly_but_ignore_case(sim: SimulatedHost) -> None:
    sim.add_vm("demovm2")
    async with HyperVHost.connect(sim) as host:
        services = await host.vm("DEMOVM").integration_services()
        with pytest.raises(VMNotFoundError):
            await host.vm("demo*").integration_services()
    assert {s.vm_name for s in services} == {"demovm"}


async def test_unknown_vm_names_the_known_ones(sim: SimulatedHost) -> None:
    sim.add_vm("web01")
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(VMNotFoundError) as caught:
            await host.vm("web02").integration_services()
        with pytest.raises(VMNotFoundError):
            await host.vm("web02").summary()
        with pytest.raises(VMNotFoundError):
            await host.vm("web02").apply({"VSS": False})
    error = caught.value
    assert isinstance(error, LookupError)
    assert error.name == "web02"
    assert set(error.choices) == {"demovm", "web01"}
    assert "known: demovm, web01" in str(error)
    assert "target sim://HV01" in str(error)


async def test_two_vms_with_one_name_are_never_guessed(sim: SimulatedHost) -> None:
    twin = sim.add_vm("demovm", id=uuid.UUID(int=42))
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(AmbiguousVMError) as caught:
            await host.vm("demovm").apply({GSI: True})
        result = await host.vm(twin.id).apply({GSI: True})
    assert str(twin.id) in str(caught.value)
    assert result.changed[0].state.vm_id == twin.id
    assert sim.vms[0].enabled[catalogue.GUEST_SERVICE_INTERFACE.component_id] is False


async def test_unknown_service_name_fails_before_anything_is_changed(sim: SimulatedHost) -> None:
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(ServiceNotFoundError) as caught:
            host.vm("demovm").integration_service("Guest Servce")
        with pytest.raises(ServiceNotFoundError, match="only inside the guest"):
            await host.vm("demovm").apply({"vmicrdv": True})
        assert sim.round_trips == 0
        # A name the catalogue does not know may be the host's own (a
        # localised host's): one read looks it up, and nothing is changed.
        with pytest.raises(ServiceNotFoundError):
            await host.vm("demovm").apply({"VSS": False, "Telepathy": True})
    assert "valid: Guest Service Interface, Heartbeat" in str(caught.value)
    assert sim.calls == ["get_integration_services"]


async def test_bad_desired_states_are_refused(sim: SimulatedHost) -> None:
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(ValueError, match="both name VSS"):
            await host.vm("demovm").apply({"VSS": True, "Backup": False})
        with pytest.raises(TypeError):
            await host.vm("demovm").apply({"VSS": "yes"})  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="empty"):
            host.vm(" ")
        with pytest.raises(TypeError):
            host.vm(3)  # type: ignore[arg-type]
        assert (await host.apply({})).items == ()
    assert sim.round_trips == 0


async def test_a_host_without_the_service(sim: SimulatedHost) -> None:
    old = SimulatedHost(os="windows-server-2012")
    async with HyperVHost.connect(old) as host:
        services = await host.vm("demovm").integration_services()
        with pytest.raises(ServiceNotFoundError) as caught:
            await host.vm("demovm").integration_service(GSI).enable()
        with pytest.raises(ServiceNotFoundError):
            await host.vm("demovm").integration_service(GSI).refresh()
    assert GSI not in {s.name for s in services}
    assert len(services) == 5
    assert "it offers: Heartbeat" in str(caught.value)


async def test_a_localised_host_resolves_through_the_guid() -> None:
    german = SimulatedHost(locale="de-DE")
    async with HyperVHost.connect(german) as host:
        gsi = await host.vm("demovm").integration_service(GSI).enable()
        services = await host.vm("demovm").integration_services()
    assert gsi.name == "Gastdienstschnittstelle"
    assert gsi.service is catalogue.GUEST_SERVICE_INTERFACE
    assert gsi.display_name == GSI
    assert [s.service for s in services] == list(catalogue.HOST_SERVICES)


async def test_guest_support_decides_the_status(sim: SimulatedHost) -> None:
    sim.add_vm("win7", guest="windows-7")
    sim.add_vm("bare", guest="linux-kernel-only")
    sim.add_vm("off", state="Off")
    async with HyperVHost.connect(sim) as host:
        win7 = await host.vm("win7").integration_service(GSI).enable()
        bare = await host.vm("bare").integration_services()
        off = await host.vm("off").integration_services()
    assert win7.primary_status == "No Contact"
    assert win7.operational_status == ("NoContact",)
    by_name = {s.name: s for s in bare}
    assert by_name["Key-Value Pair Exchange"].primary_status == "No Contact"
    assert by_name["Heartbeat"].healthy
    assert {(s.primary_status, s.operational_status) for s in off} == {("", ())}


async def test_reading_several_vms_reports_each_failure(sim: SimulatedHost) -> None:
    sim.add_vm("web01")
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(BatchError) as caught:
            await host.integration_services(["demovm", "ghost", "web01"])
    error = caught.value
    assert set(error.errors) == {"ghost"}
    assert isinstance(error.errors["ghost"], VMNotFoundError)
    assert {s.vm_name for s in error.result} == {"demovm", "web01"}  # type: ignore[attr-defined]


async def test_a_batch_apply_keeps_what_succeeded(sim: SimulatedHost) -> None:
    sim.add_vm("web01")
    old_host_vm = sim.add_vm("db01")
    del old_host_vm.enabled[catalogue.VSS.component_id]  # as if the host lacked it
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(BatchError) as caught:
            await host.apply(
                {
                    "demovm": {GSI: True},
                    "ghost": {GSI: True},
                    "db01": {"VSS": False, GSI: True},
                    "web01": {"Heartbeat": False},
                },
                force=True,
            )
    error = caught.value
    assert set(error.errors) == {"ghost/Guest Service Interface", "db01/VSS"}
    done = [(c.state.vm_name, c.state.name) for c in error.result.changed]  # type: ignore[attr-defined]
    assert done == [("demovm", GSI), ("db01", GSI), ("web01", "Heartbeat")]
    assert sim.vm("web01").enabled[catalogue.HEARTBEAT.component_id] is False


@pytest.mark.parametrize("vm_count", [1, 200])
async def test_whole_host_read_and_multi_service_apply_are_one_round_trip_each(
    vm_count: int,
) -> None:
    sim = SimulatedHost(vms=[])
    for number in range(vm_count):
        sim.add_vm(f"vm{number:03d}")
    desired = {
        f"vm{number:03d}": {GSI: True, "VSS": False, "Heartbeat": True}
        for number in range(vm_count)
    }
    async with HyperVHost.connect(sim) as host:
        services = await host.integration_services()
        assert sim.round_trips == 1
        result = await host.apply(desired)
        assert sim.round_trips == 2
        again = await host.vm("vm000").apply({GSI: True, "VSS": False})
        assert sim.round_trips == 3
    assert len(services) == 6 * vm_count
    assert len(result.changed) == 2 * vm_count
    assert len(result.unchanged) == vm_count
    assert again.changed == ()
    assert sim.calls == [
        "get_integration_services",
        "set_integration_services",
        "set_integration_services",
    ]


async def test_faults_map_to_their_errors(sim: SimulatedHost) -> None:
    async with HyperVHost.connect(sim, timeout=0.3) as host:
        sim.inject_fault("error")
        with pytest.raises(PermissionDeniedError, match="Hyper-V Administrators"):
            await host.list_vms()
        sim.inject_fault("hang")
        with pytest.raises(OperationTimeoutError) as caught:
            await host.list_vms()
        assert caught.value.timeout == 0.3
        sim.inject_fault("disconnect", operation="list_vms")
        with pytest.raises(TransportBrokenError):
            await host.list_vms()
        assert len(await host.list_vms()) == 1


async def test_connect_rejects_bad_targets() -> None:
    with pytest.raises(InvalidTargetError, match="unknown target scheme"):
        HyperVHost.connect("ftp://host")
    with pytest.raises(InvalidTargetError, match="a target is a URL"):
        HyperVHost.connect("demovm")
    with pytest.raises(InvalidTargetError, match="unknown sim:// option"):
        HyperVHost.connect("sim://?colour=blue")
    with pytest.raises(ValueError, match="timeout"):
        HyperVHost(SimulatedHost().open(), timeout=0)


def _garbage(output: list[JsonValue]) -> MockTransport:
    """A peer that answers with objects our scripts never produce."""
    return MockTransport(lambda request: OperationResult(tuple(output)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "output",
    [
        ["not an object"],
        [{"VMName": "demovm"}],
        [{"VMName": "demovm", "VMId": "not-a-guid", "Id": "x", "Enabled": True}],
        [
            {
                "VMName": "demovm",
                "VMId": str(uuid.UUID(int=1)),
                "Id": "Microsoft:x\\no-guid",
                "Name": "VSS",
                "Enabled": True,
            }
        ],
        [
            {
                "VMName": "demovm",
                "VMId": str(uuid.UUID(int=1)),
                "Id": f"Microsoft:x\\{catalogue.VSS.component_id}",
                "Name": "VSS",
                "Enabled": "True",
            }
        ],
    ],
)
async def test_malformed_output_is_a_protocol_error(output: list[JsonValue]) -> None:
    async with HyperVHost.connect(_garbage(output)) as host:
        with pytest.raises(ProtocolError, match="unreadable output"):
            await host.vm("demovm").integration_services()


async def test_apply_refuses_results_it_did_not_ask_for() -> None:
    bogus: list[JsonValue] = [{"Index": 5, "Changed": True, "Service": {}}]
    async with HyperVHost.connect(_garbage(bogus)) as host:
        with pytest.raises(ProtocolError, match="out of range"):
            await host.vm("demovm").apply({"VSS": True})
    async with HyperVHost.connect(_garbage([])) as host:
        with pytest.raises(ProtocolError, match="no result for change 0"):
            await host.vm("demovm").apply({"VSS": True})
