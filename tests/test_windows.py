"""Windows guests: vmic* services directly and through PowerShell Direct, file
copy into guests, and the force guard on critical services."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from hvintegration import (
    AuthenticationError,
    Credential,
    DestinationExistsError,
    FileCopyUnavailableError,
    GuestNotReadyError,
    HyperVHost,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    PowerShellDirectError,
    RemoteCommandError,
    ServiceNotFoundError,
    UnsafeChangeError,
    VMNotFoundError,
    VMNotRunningError,
    WindowsGuest,
    catalogue,
)
from hvintegration.errors import InvalidTargetError, TransportError
from hvintegration.simulator import SimulatedHost

ADMIN = Credential("Administrator", "hvintegration")
GSI = "Guest Service Interface"

SEED_GUEST_TABLE = [
    ("Running", "vmicguestinterface", "Hyper-V Guest Service Interface"),
    ("Running", "vmicheartbeat", "Hyper-V Heartbeat Service"),
    ("Running", "vmickvpexchange", "Hyper-V Data Exchange Service"),
    ("Running", "vmicshutdown", "Hyper-V Guest Shutdown Service"),
    ("Running", "vmictimesync", "Hyper-V Time Synchronization Service"),
    ("Running", "vmicvss", "Hyper-V Volume Shadow Copy Requestor"),
    ("Running", "vmicrdv", "Hyper-V Remote Desktop Virtualization Service"),
    ("Stopped", "vmicvmsession", "Hyper-V PowerShell Direct Service"),
]


@pytest.fixture
def sim() -> SimulatedHost:
    lab = SimulatedHost()
    lab.add_vm("legacy", guest="windows-server-2012")
    lab.add_vm("penguin", guest="ubuntu-22.04")
    return lab


GuestFactory = Callable[[SimulatedHost, HyperVHost, str], WindowsGuest]


def _direct(sim: SimulatedHost, host: HyperVHost, vm: str) -> WindowsGuest:
    return host.vm(vm).windows(ADMIN)


def _straight(sim: SimulatedHost, host: HyperVHost, vm: str) -> WindowsGuest:
    return WindowsGuest(sim.inside(vm).open())


@pytest.fixture(params=[_direct, _straight], ids=["powershell-direct", "direct-connection"])
async def reach(
    request: pytest.FixtureRequest, sim: SimulatedHost
) -> AsyncIterator[Callable[[str], WindowsGuest]]:
    factory: GuestFactory = request.param
    async with HyperVHost.connect(sim) as host:
        yield lambda vm: factory(sim, host, vm)


async def test_services_list_like_the_seed(
    reach: Callable[[str], WindowsGuest], request: pytest.FixtureRequest
) -> None:
    async with reach("demovm") as guest:
        services = await guest.services()
    expected = list(SEED_GUEST_TABLE)
    if "powershell-direct" in request.node.name:
        # The session that reads the list is what trigger-starts vmicvmsession.
        expected[-1] = ("Running", *expected[-1][1:])
    assert [(s.status, s.name, s.display_name) for s in services] == expected
    assert [s.service for s in services] == list(catalogue.ALL_SERVICES)
    assert {s.start_type for s in services} == {"Manual"}


async def test_an_older_guest_reports_absent_services(sim: SimulatedHost) -> None:
    # PowerShell Direct cannot reach a guest this old; connect straight to it.
    guest = WindowsGuest(sim.inside("legacy").open())
    services = {s.name: s for s in await guest.services()}
    assert not services["vmicguestinterface"].present
    assert services["vmicheartbeat"].present
    assert not (await guest.service("vmicguestinterface").refresh()).present
    with pytest.raises(ServiceNotFoundError, match="no service named 'vmicguestinterface'"):
        await guest.service(GSI).start()


async def test_actions_are_idempotent_and_return_the_new_state(
    reach: Callable[[str], WindowsGuest], sim: SimulatedHost
) -> None:
    guest = reach("demovm")
    vss = guest.service("VSS")
    assert (await vss.stop()).status == "Stopped"
    assert (await vss.stop()).status == "Stopped"
    assert (await vss.start()).status == "Running"
    assert (await vss.restart()).status == "Running"
    assert (await vss.disable()).start_type == "Disabled"
    assert (await vss.stop()).status == "Stopped"
    with pytest.raises(RemoteCommandError, match="disabled; enable it"):
        await vss.start()
    assert (await vss.enable()).start_type == "Manual"
    windows = sim.vm("demovm").windows
    assert windows is not None
    assert windows.services["vmicvss"].start_type == "Manual"


async def test_critical_services_need_force(
    reach: Callable[[str], WindowsGuest], sim: SimulatedHost
) -> None:
    guest = reach("demovm")
    for name in ("vmicheartbeat", "vmicshutdown", "vmickvpexchange", "vmicvmsession"):
        with pytest.raises(UnsafeChangeError, match="force=True"):
            await guest.service(name).stop()
        with pytest.raises(UnsafeChangeError):
            await guest.service(name).disable()
    windows = sim.vm("demovm").windows
    assert windows is not None
    assert windows.services["vmicheartbeat"].status == "Running"
    assert (await guest.service("Heartbeat").stop(force=True)).status == "Stopped"
    assert (await guest.service("Time Synchronization").stop()).status == "Stopped"


async def test_a_stopped_guest_service_shows_as_no_contact_on_the_host(
    reach: Callable[[str], WindowsGuest], sim: SimulatedHost
) -> None:
    await reach("demovm").service("vmicvss").stop()
    async with HyperVHost.connect(sim) as host:
        state = await host.vm("demovm").integration_service("VSS").refresh()
    assert (state.enabled, state.primary_status) == (True, "No Contact")


async def test_a_stuck_service_times_out_clearly(
    reach: Callable[[str], WindowsGuest], sim: SimulatedHost
) -> None:
    windows = sim.vm("demovm").windows
    assert windows is not None
    windows.services["vmicvss"].stuck = True
    with pytest.raises(OperationTimeoutError, match="still StopPending"):
        await reach("demovm").service("vmicvss").stop()


async def test_non_administrators_are_refused(sim: SimulatedHost) -> None:
    windows = sim.vm("demovm").windows
    assert windows is not None
    windows.credentials["guest"] = "pw"
    async with HyperVHost.connect(sim) as host:
        guest = host.vm("demovm").windows(Credential("guest", "pw"))
        assert len(await guest.services()) == 8
        with pytest.raises(PermissionDeniedError, match="Administrators in the guest"):
            await guest.service("vmicvss").stop()


async def test_powershell_direct_failures(sim: SimulatedHost) -> None:
    sim.add_vm("off", state="Off")
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(AuthenticationError, match="credential") as caught:
            await host.vm("demovm").windows(Credential("Administrator", "wrong")).services()
        assert "wrong" not in str(caught.value)
        with pytest.raises(VMNotFoundError):
            await host.vm("ghost").windows(ADMIN).services()
        with pytest.raises(VMNotRunningError, match="Off"):
            await host.vm("off").windows(ADMIN).services()
        with pytest.raises(GuestNotReadyError, match="Windows 10"):
            await host.vm("legacy").windows(ADMIN).services()
        with pytest.raises(PowerShellDirectError):
            await host.vm("penguin").windows(ADMIN).services()
        windows = sim.vm("demovm").windows
        assert windows is not None
        windows.services["vmicvmsession"].start_type = "Disabled"
        with pytest.raises(GuestNotReadyError, match="vmicvmsession service disabled"):
            await host.vm("demovm").windows(ADMIN).services()
    assert "wrong" not in repr(host.vm("demovm").windows(Credential("x", "wrong")).transport)


async def test_powershell_direct_needs_a_recent_host() -> None:
    old = SimulatedHost(os="windows-server-2012-r2")
    async with HyperVHost.connect(old) as host:
        with pytest.raises(PowerShellDirectError, match="Windows 10 or Windows Server 2016"):
            await host.vm("demovm").windows(ADMIN).services()


async def test_powershell_direct_starts_the_trigger_started_session_service(
    sim: SimulatedHost,
) -> None:
    async with HyperVHost.connect(sim) as host:
        session = await host.vm("demovm").windows(ADMIN).service("vmicvmsession").refresh()
    assert session.status == "Running"


async def test_guest_operations_on_the_wrong_side(sim: SimulatedHost) -> None:
    # The wrong side is a wrong target, not a remote failure: the CLI exits 2.
    async with WindowsGuest.connect(sim) as guest:
        with pytest.raises(InvalidTargetError, match="runs inside a Windows guest"):
            await guest.services()
    async with HyperVHost.connect(sim.inside("demovm")) as inside:
        with pytest.raises(InvalidTargetError, match="is a Windows guest"):
            await inside.list_vms()
    async with HyperVHost.connect(sim) as host:
        guest_transport = host.vm("demovm").windows(ADMIN).transport
        from hvintegration.operations import LIST_VMS

        with pytest.raises(TransportError, match="runs on a Hyper-V host"):
            await guest_transport.run_operation(LIST_VMS, {"VM": None}, timeout=5)


async def test_powershell_direct_is_one_round_trip_per_call(sim: SimulatedHost) -> None:
    async with HyperVHost.connect(sim) as host:
        guest = host.vm("demovm").windows(ADMIN)
        await guest.services()
        await guest.service("vmicvss").restart()
    assert sim.calls == ["invoke_in_vm", "invoke_in_vm"]


# --- file copy -----------------------------------------------------------------


@pytest.fixture
def lab() -> SimulatedHost:
    lab = SimulatedHost()
    lab.add_host_file("C:\\Tools\\agent.msi", b"x" * 2048)
    return lab


async def test_copy_file_into_a_guest(lab: SimulatedHost) -> None:
    async with HyperVHost.connect(lab) as host:
        vm = host.vm("demovm")
        with pytest.raises(FileCopyUnavailableError) as caught:
            await vm.copy_file("C:\\Tools\\agent.msi", "C:\\Temp\\agent.msi")
        assert caught.value.side == "host"
        assert "Enable it first" in str(caught.value)
        await vm.integration_service(GSI).enable()
        done = await vm.copy_file("c:\\tools\\AGENT.msi", "C:\\Temp\\agent.msi")
        assert (done.vm_name, done.size) == ("demovm", 2048)
        with pytest.raises(DestinationExistsError) as exists:
            await vm.copy_file("C:\\Tools\\agent.msi", "C:\\Temp\\agent.msi")
        assert isinstance(exists.value, FileExistsError)
        assert "overwrite=True" in str(exists.value)
        await vm.copy_file("C:\\Tools\\agent.msi", "C:\\Temp\\agent.msi", overwrite=True)
        with pytest.raises(RemoteCommandError, match="cannot find the path"):
            await vm.copy_file("C:\\Tools\\agent.msi", "C:\\New\\Dir\\agent.msi")
        await vm.copy_file("C:\\Tools\\agent.msi", "C:\\New\\Dir\\agent.msi", create_full_path=True)
        with pytest.raises(NotFoundError, match="no file"):
            await vm.copy_file("C:\\Tools\\missing.msi", "C:\\Temp\\x")
        with pytest.raises(ValueError, match="empty"):
            await vm.copy_file("", "C:\\Temp\\x")
    files = lab.vm("demovm").files
    assert files is not None
    assert files.files["c:\\temp\\agent.msi"] == b"x" * 2048
    assert "c:\\new\\dir" in files.directories


async def test_copy_file_with_the_guest_side_stopped(lab: SimulatedHost) -> None:
    windows = lab.vm("demovm").windows
    assert windows is not None
    windows.services["vmicguestinterface"].status = "Stopped"
    linux = lab.add_vm("penguin", guest="linux-kernel-only", enabled={GSI: True})
    async with HyperVHost.connect(lab) as host:
        await host.vm("demovm").integration_service(GSI).enable()
        for vm_name, hint in (("demovm", "vmicguestinterface"), (linux.name, "hv_fcopy_daemon")):
            with pytest.raises(FileCopyUnavailableError) as caught:
                await host.vm(vm_name).copy_file("C:\\Tools\\agent.msi", "/tmp/agent.msi")
            assert caught.value.side == "guest"
            assert hint in str(caught.value)


async def test_copy_file_to_a_stopped_vm_or_an_old_host(lab: SimulatedHost) -> None:
    lab.add_vm("off", state="Off", enabled={GSI: True})
    async with HyperVHost.connect(lab) as host:
        with pytest.raises(VMNotRunningError):
            await host.vm("off").copy_file("C:\\Tools\\agent.msi", "C:\\Temp\\a")
        with pytest.raises(VMNotFoundError):
            await host.vm("ghost").copy_file("C:\\Tools\\agent.msi", "C:\\Temp\\a")
    async with HyperVHost.connect(SimulatedHost(os="windows-server-2012")) as host:
        with pytest.raises(ServiceNotFoundError, match="Windows Server 2012 R2"):
            await host.vm("demovm").copy_file("C:\\a", "C:\\Temp\\a")


async def test_copy_file_into_a_linux_guest(lab: SimulatedHost) -> None:
    lab.add_vm("web01", guest="ubuntu-22.04", enabled={GSI: True})
    async with HyperVHost.connect(lab) as host:
        done = await host.vm("web01").copy_file(
            "C:\\Tools\\agent.msi", "/opt/agent/agent.msi", create_full_path=True
        )
        with pytest.raises(RemoteCommandError, match="absolute"):
            await host.vm("web01").copy_file("C:\\Tools\\agent.msi", "relative/path")
    assert done.destination == "/opt/agent/agent.msi"
    files = lab.vm("web01").files
    assert files is not None
    assert "/opt/agent" in files.directories


# --- the force guard on the host side ------------------------------------------


@pytest.mark.parametrize("service", ["Heartbeat", "Shutdown", "Key-Value Pair Exchange"])
async def test_turning_off_a_critical_host_service_needs_force(
    sim: SimulatedHost, service: str
) -> None:
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(UnsafeChangeError, match="force=True") as caught:
            await host.vm("demovm").integration_service(service).disable()
        assert isinstance(caught.value, ValueError)
        with pytest.raises(UnsafeChangeError):
            await host.apply({"demovm": {service: False, "VSS": False}})
        assert sim.round_trips == 0
        state = await host.vm("demovm").integration_service(service).disable(force=True)
    assert state.enabled is False
    assert "Key-Value Pair Exchange" in str(UnsafeChangeError(["Key-Value Pair Exchange"]))


# --- review fixes ---------------------------------------------------------------


async def test_restarting_a_disabled_service_leaves_it_running(sim: SimulatedHost) -> None:
    guest = WindowsGuest(sim.inside("demovm").open())
    await guest.service("vmictimesync").disable()
    with pytest.raises(RemoteCommandError, match="enable it before restarting"):
        await guest.service("vmictimesync").restart()
    state = await guest.service("vmictimesync").refresh()
    assert (state.status, state.start_type) == ("Running", "Disabled")


async def test_a_non_administrator_may_ask_for_what_already_is(sim: SimulatedHost) -> None:
    windows = sim.vm("demovm").windows
    assert windows is not None
    windows.credentials["guest"] = "pw"
    async with HyperVHost.connect(sim) as host:
        guest = host.vm("demovm").windows(Credential("guest", "pw"))
        assert (await guest.service("vmicvss").start()).status == "Running"
        with pytest.raises(PermissionDeniedError):
            await guest.service("vmicvss").restart()


async def test_force_cannot_be_dodged_with_a_doctored_catalogue_entry(sim: SimulatedHost) -> None:
    import attrs

    relaxed = attrs.evolve(catalogue.HEARTBEAT, critical=False)
    invented = attrs.evolve(catalogue.HEARTBEAT, windows_service="vmicinvented")
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(UnsafeChangeError):
            await host.vm("demovm").apply({relaxed: False})
        with pytest.raises(ServiceNotFoundError):
            await host.vm("demovm").apply({invented: True})
        with pytest.raises(UnsafeChangeError):
            await host.vm("demovm").windows(ADMIN).service(relaxed).stop()
    assert sim.round_trips == 0


async def test_one_vm_named_twice_cannot_get_contradicting_changes(sim: SimulatedHost) -> None:
    vm_id = sim.vm("demovm").id
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(ValueError, match="both name VSS of one VM"):
            await host.apply({"demovm": {"VSS": True}, "DEMOVM": {"VSS": False}})
        assert sim.round_trips == 0
        # By name and by id: one read of the VMs tells they are one, and
        # nothing is changed.
        with pytest.raises(ValueError, match="both name VSS of one VM"):
            await host.apply({"demovm": {"VSS": False}, vm_id: {"VSS": True}})
    assert sim.calls == ["list_vms"]
    assert sim.vm("demovm").enabled[catalogue.VSS.component_id] is True


def test_powershell_direct_records_as_hyper_v_writes_them() -> None:
    from hvintegration.transport.base import ErrorRecord
    from hvintegration.transport.errormap import error_from_record

    refused = ErrorRecord(
        "The credential is invalid.",
        error_id="CreateRemoteRunspaceForVMFailed,Microsoft.PowerShell.Commands.InvokeCommandCommand",
        category="InvalidArgument",
        exception_type="System.Management.Automation.Remoting.PSDirectException",
    )
    unreachable = ErrorRecord(
        "An error has occurred which Windows PowerShell cannot handle.",
        error_id="CreateRemoteRunspaceForVMFailed,Microsoft.PowerShell.Commands.InvokeCommandCommand",
        category="InvalidOperation",
        exception_type="System.Management.Automation.Remoting.PSRemotingDataStructureException",
    )
    where = {"target": "sim://HV01", "operation": "invoke_in_vm"}
    assert isinstance(error_from_record(refused, **where), AuthenticationError)
    assert isinstance(error_from_record(unreachable, **where), PowerShellDirectError)
