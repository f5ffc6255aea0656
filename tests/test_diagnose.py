"""diagnose: every verdict from both ends, through the simulator and the real Linux guest sandbox.

The host side always comes from a simulated host. The guest side comes from
the same simulated world (a Windows guest reached straight or with
PowerShell Direct), from a simulated Linux guest, or from the guest sandbox:
real sshd, Debian's real hv_kvp_daemon and hv_vss_daemon.
"""

from __future__ import annotations

import asyncio
import io
import json
import shlex
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hvintegration import HyperVHost, LinuxGuest, WindowsGuest, catalogue
from hvintegration.cli.diagnose import format_diagnosis
from hvintegration.diagnosis import diagnose_host
from hvintegration.diagnosis_records import Diagnosis, DiagnosisVerdict
from hvintegration.errors import (
    AmbiguousVMError,
    BatchError,
    NotFoundError,
    PermissionDeniedError,
    VMNotFoundError,
)
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.simulator.state import save_host
from hvintegration.testing import MockTransport, OperationRequest, Request
from hvintegration.testing.linux_guest import GuestLayout, GuestSandbox, sandbox_unavailable_reason
from hvintegration.transport import OperationResult
from hvintegration.windows import Credential

V = DiagnosisVerdict
HOST_SERVICES = [spec.name for spec in catalogue.HOST_SERVICES]
GUEST_ONLY = ["Remote Desktop Virtualization", "PowerShell Direct"]


def verdicts(diagnosis: Diagnosis) -> dict[str, str]:
    return {item.service.name: item.verdict.value for item in diagnosis.services}


def steps(diagnosis: Diagnosis, service: str) -> list[tuple[str, str, str]]:
    return [(r.python, r.cli, r.manual) for r in diagnosis.service(service).remedies]


# -- the host alone ----------------------------------------------------------


async def test_the_seeds_demovm_from_the_host_alone() -> None:
    async with HyperVHost.connect("sim://") as host:
        diagnosis = await host.vm("demovm").diagnose()
    assert verdicts(diagnosis) == {
        "Guest Service Interface": "disabled on host",
        "Heartbeat": "working", "Key-Value Pair Exchange": "working", "Shutdown": "working",
        "Time Synchronization": "working", "VSS": "working",
        "Remote Desktop Virtualization": "unknown", "PowerShell Direct": "unknown",
    }  # fmt: skip
    # Unknown only because no guest was asked: nothing to act on there.
    assert [item.service.name for item in diagnosis.problems] == ["Guest Service Interface"]
    assert not diagnosis.ok
    assert steps(diagnosis, "Guest Service Interface") == [
        (
            "await host.vm('demovm').integration_service('Guest Service Interface').enable()",
            "hvintegration --target sim://HV01 host enable demovm 'Guest Service Interface'",
            "Hyper-V\\Enable-VMIntegrationService -VMName 'demovm' -Name 'Guest Service Interface'",
        )
    ]
    gsi = diagnosis.service("Guest Service Interface")
    assert gsi.host is not None
    assert not gsi.host.enabled
    assert gsi.guest is None


async def test_no_contact_from_the_host_alone_is_a_guest_side_not_running() -> None:
    lab = SimulatedHost()
    lab.vm("demovm").windows.services["vmicvss"].status = "Stopped"  # type: ignore[union-attr]
    async with HyperVHost.connect(lab) as host:
        windows = await host.vm("demovm").diagnose(guest_os="Windows Server 2022")
        linux = await host.vm("demovm").diagnose(guest_os="Ubuntu 22.04")
    vss = windows.service("VSS")
    assert vss.verdict is V.GUEST_NOT_RUNNING
    assert vss.host is not None
    assert vss.host.primary_status == "No Contact"
    # The guest's OS says which side's way to start it.
    assert [r.manual for r in vss.remedies] == ["Start-Service -Name vmicvss"]
    assert [r.manual for r in linux.service("VSS").remedies] == ["hv_vss_daemon"]
    assert [r.cli for r in linux.service("VSS").remedies] == [""]


def rewriting(
    lab: SimulatedHost, statuses: dict[str, dict[str, object]]
) -> tuple[Any, MockTransport]:
    """The simulated host's own answers, with the statuses of some services replaced.

    For statuses real hosts report that the simulator does not play; every
    other byte is the simulated host's.
    """
    inner = lab.open()

    async def forward(request: Request) -> OperationResult:
        assert isinstance(request, OperationRequest)
        result = await inner.run_operation(
            request.operation, request.parameters, timeout=request.timeout
        )
        output = []
        for obj in result.output:
            if isinstance(obj, dict) and obj.get("Name") in statuses:
                obj = {**obj, **statuses[str(obj["Name"])]}
            output.append(obj)
        return OperationResult(tuple(output), result.errors)

    return inner, MockTransport(forward, target=inner.target)


async def test_lost_communication_as_a_host_reports_it() -> None:
    lost = {"PrimaryStatusDescription": "Lost Communication"}
    inner, host_side = rewriting(
        SimulatedHost(), {"VSS": {**lost, "OperationalStatus": ["LostCommunication"]}}
    )
    async with inner, HyperVHost.connect(host_side) as host:
        diagnosis = await host.vm("demovm").diagnose(guest_os="Windows Server 2022")
    vss = diagnosis.service("VSS")
    assert vss.verdict is V.LOST_COMMUNICATION
    assert vss.reason == "the host reports Lost Communication"
    assert [r.manual for r in vss.remedies] == ["Restart-Service -Name vmicvss"]
    assert diagnosis.verdict("Heartbeat") is V.WORKING


async def test_a_linux_guests_protocol_mismatch_as_real_hosts_report_it() -> None:
    # A Windows 11 host with an Ubuntu 24.04 guest whose KVP daemon runs:
    # KVP and VSS "OK" with the protocol mismatch text (xrdp#1403).
    mismatch = {
        "SecondaryStatusDescription": "The protocol version of the component installed in "
        "the virtual machine does not match the version expected by the hosting system.",
        "OperationalStatus": ["Ok", "ProtocolMismatch"],
    }
    lab = SimulatedHost(os="windows-11")
    lab.add_vm("ub2404", guest="ubuntu-22.04")
    inner, host_side = rewriting(lab, {"Key-Value Pair Exchange": mismatch, "VSS": mismatch})
    async with inner, HyperVHost.connect(host_side) as host:
        vm = host.vm("ub2404")
        alone = await vm.diagnose(guest_os="Ubuntu 24.04")
        async with LinuxGuest.connect(SimulatedLinuxGuest("ub2404")) as guest:
            both = await vm.diagnose(guest)
        unknown_os = await vm.diagnose(guest_os="FreeBSD 14")
    assert alone.verdict("Key-Value Pair Exchange") is V.WORKING
    # VSS shows the text whether or not hv_vss_daemon runs: only the guest can tell.
    assert alone.verdict("VSS") is V.UNKNOWN
    assert not alone.service("VSS").problem
    assert both.verdict("VSS") is V.WORKING
    assert both.service("VSS").reason.startswith("hv_vss_daemon runs in the guest")
    # An OS neither Windows nor Linux: the text is a mismatch, and both ways are shown.
    assert unknown_os.verdict("VSS") is V.PROTOCOL_MISMATCH
    assert unknown_os.advice is None


async def test_remedies_for_a_guest_of_unknown_system() -> None:
    lab = SimulatedHost()
    lab.vm("demovm").windows.services["vmicvss"].status = "Stopped"  # type: ignore[union-attr]
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("demovm").diagnose(guest_os="FreeBSD 14")
    assert [r.manual for r in diagnosis.service("VSS").remedies] == [
        "Start-Service -Name vmicvss",
        "hv_vss_daemon",
    ]


async def test_a_whole_host_in_three_round_trips() -> None:
    lab = SimulatedHost()
    lab.add_vm("legacy", state="Off")
    lab.add_vm("win7", guest="windows-7")
    lab.add_vm("web1", guest="ubuntu-22.04")
    lab.vm("demovm").windows.services["vmicvss"].status = "Stopped"  # type: ignore[union-attr]
    async with HyperVHost.connect(lab) as host:
        before = lab.round_trips
        batch = await diagnose_host(host, host_os="Windows Server 2022")
        trips = lab.round_trips - before
        one_by_one = [await host.vm(name).diagnose(host_os="Windows Server 2022")
                      for name in ("demovm", "legacy", "win7", "web1")]  # fmt: skip
        two = await diagnose_host(host, ["win7", "legacy"])
        with pytest.raises(VMNotFoundError):
            await diagnose_host(host, ["ghost"])
    assert trips == 3
    assert [d.vm for d in batch] == ["demovm", "legacy", "win7", "web1"]
    assert [d.services for d in batch] == [d.services for d in one_by_one]
    assert [d.vm for d in two] == ["legacy", "win7"]
    assert batch[0].verdict("VSS") is V.GUEST_NOT_RUNNING
    # Off: the host still knows which services it has disabled.
    assert set(verdicts(batch[1]).values()) == {"VM not running", "disabled on host"}


async def test_a_vm_that_is_off() -> None:
    lab = SimulatedHost()
    lab.add_vm("legacy", state="Off")
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("legacy").diagnose()
    # A service disabled on the host shows through an Off VM: the host knows.
    assert verdicts(diagnosis)["Guest Service Interface"] == "disabled on host"
    assert "the VM is Off" in diagnosis.service("Guest Service Interface").reason
    assert steps(diagnosis, "Guest Service Interface") == [(
        "await host.vm('legacy').integration_service('Guest Service Interface').enable()",
        "hvintegration --target sim://HV01 host enable legacy 'Guest Service Interface'",
        "Hyper-V\\Enable-VMIntegrationService -VMName 'legacy' -Name 'Guest Service Interface'",
    )]  # fmt: skip
    assert {v for k, v in verdicts(diagnosis).items() if k != "Guest Service Interface"} == {
        "VM not running"
    }
    assert diagnosis.summary is not None
    assert diagnosis.summary.state == "Off"
    assert steps(diagnosis, "VSS") == [("", "", "Hyper-V\\Start-VM -Name 'legacy'")]
    assert "the library does not change a VM's power state" in (
        diagnosis.service("VSS").remedies[0].action
    )
    assert not diagnosis.ok


@pytest.mark.parametrize(
    ("state", "manual"),
    [
        ("Off", "Hyper-V\\Start-VM -Name 'legacy'"),
        ("Saved", "Hyper-V\\Start-VM -Name 'legacy'"),
        ("Paused", "Hyper-V\\Resume-VM -Name 'legacy'"),
    ],
)
async def test_a_vm_not_running_is_started_or_resumed_once(state: str, manual: str) -> None:
    lab = SimulatedHost()
    lab.add_vm("legacy", state=state)
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("legacy").diagnose()
    # One step for the VM, not one per service, in the list and the text.
    assert [(item.service.name, step.manual) for item, step in diagnosis.remedies] == [
        ("Guest Service Interface",
         "Hyper-V\\Enable-VMIntegrationService -VMName 'legacy' -Name 'Guest Service Interface'"),
        ("Heartbeat", manual),
    ]  # fmt: skip
    [(_, power)] = diagnosis.remedies[1:]
    assert [s.service.name for s in diagnosis.remedy_services(power)] == [
        "Heartbeat", "Key-Value Pair Exchange", "Shutdown", "Time Synchronization", "VSS",
        "Remote Desktop Virtualization", "PowerShell Direct",
    ]  # fmt: skip
    assert format_diagnosis(diagnosis).count(f"by hand: {manual}") == 1


async def test_an_unknown_vm_is_an_error() -> None:
    async with HyperVHost.connect("sim://") as host:
        with pytest.raises(VMNotFoundError, match="nosuchvm"):
            await host.vm("nosuchvm").diagnose()


async def test_a_host_that_fails_without_a_guest_raises() -> None:
    lab = SimulatedHost()
    lab.inject_fault("error", operation="get_integration_services")
    async with HyperVHost.connect(lab) as host:
        # The host's own error, which the caller can catch by its class.
        with pytest.raises(PermissionDeniedError, match="permission denied") as caught:
            await host.vm("demovm").diagnose()
    assert caught.value.operation == "get_integration_services"
    assert str(caught.value).count("[target") == 1


async def test_a_host_that_fails_with_a_guest_keeps_the_guest_side() -> None:
    lab = SimulatedHost()
    lab.inject_fault("error", operation="get_integration_services")
    async with HyperVHost.connect(lab) as host, WindowsGuest.connect(lab.inside("demovm")) as guest:
        diagnosis = await host.vm("demovm").diagnose(guest)
    heartbeat = diagnosis.service("Heartbeat")
    assert heartbeat.verdict is V.UNKNOWN
    assert "PermissionDeniedError" in heartbeat.error
    assert heartbeat.guest is not None
    assert heartbeat.guest.running
    assert diagnosis.verdict("PowerShell Direct") is V.WORKING
    assert any("the host could not be read" in note for note in diagnosis.notes)


async def test_kvp_that_cannot_be_read_is_a_note() -> None:
    lab = SimulatedHost()
    lab.inject_fault("error", operation="get_kvp_items", times=2)
    async with HyperVHost.connect(lab) as host:
        one = await host.vm("demovm").diagnose()
        every = await diagnose_host(host)
    for diagnosis in (one, every[0]):
        assert diagnosis.guest_os == ""
        assert diagnosis.verdict("Heartbeat") is V.WORKING
        [note] = diagnosis.notes
        assert note.startswith("Key-Value Pair Exchange items could not be read: Permission")


async def test_a_localised_host_and_names_that_need_quoting() -> None:
    name = "it\u2019s 'mine'"
    lab = SimulatedHost(locale="de-DE")
    lab.add_vm(name)
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm(name).diagnose()
    gsi = diagnosis.service("Guest Service Interface")
    assert gsi.host is not None
    assert gsi.host.name == "Gastdienstschnittstelle"
    assert gsi.verdict is V.HOST_DISABLED
    [step] = gsi.remedies
    # Display text, quoted for its shell: every quote PowerShell reads as ' doubled.
    assert step.manual == (
        "Hyper-V\\Enable-VMIntegrationService -VMName 'it\u2019\u2019s ''mine''' "
        "-Name 'Guest Service Interface'"
    )
    assert shlex.split(step.cli)[-2:] == [name, "Guest Service Interface"]
    assert step.python == (
        f"await host.vm({name!r}).integration_service('Guest Service Interface').enable()"
    )


async def test_a_host_without_guest_service_interface() -> None:
    async with HyperVHost.connect("sim://?os=windows-server-2012") as host:
        diagnosis = await host.vm("demovm").diagnose()
    gsi = diagnosis.service("Guest Service Interface")
    assert gsi.verdict is V.NOT_SUPPORTED
    assert gsi.host is None
    assert not gsi.problem


async def test_a_guest_that_is_not_a_guest_is_refused() -> None:
    async with HyperVHost.connect("sim://") as host:
        with pytest.raises(TypeError, match="WindowsGuest or LinuxGuest, not str"):
            await host.vm("demovm").diagnose("sim-linux://")  # type: ignore[arg-type]


# -- a Windows guest -----------------------------------------------------------


async def test_windows_guest_both_ends_and_the_remedies_work() -> None:
    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host, WindowsGuest.connect(lab.inside("demovm")) as guest:
        vm = host.vm("demovm")
        await guest.service("vmicvss").stop()
        first = await vm.diagnose(guest)
        assert first.verdict("VSS") is V.GUEST_NOT_RUNNING
        vss = first.service("VSS")
        assert vss.guest is not None
        assert vss.guest.state == "Stopped (Manual)"
        assert steps(first, "VSS") == [
            (
                "await guest.service('vmicvss').start()",
                shlex.join(
                    ["hvintegration", "--target", guest.target, "windows", "start", "vmicvss"]
                ),
                "Start-Service -Name vmicvss",
            )
        ]
        gsi = first.service("Guest Service Interface")
        assert gsi.verdict is V.HOST_DISABLED
        assert gsi.reason == "running in the guest (vmicguestinterface) but disabled on the host"
        # Doing what the remedies say makes both services work.
        await guest.service("vmicvss").start()
        await vm.integration_service("Guest Service Interface").enable()
        second = await vm.diagnose(guest)
    assert second.ok
    assert set(verdicts(second).values()) == {"working"}


async def test_a_disabled_windows_service_is_enabled_then_started() -> None:
    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host, WindowsGuest.connect(lab.inside("demovm")) as guest:
        await guest.service("vmictimesync").disable()
        await guest.service("vmictimesync").stop()
        diagnosis = await host.vm("demovm").diagnose(guest)
    assert [r.manual for r in diagnosis.service("Time Synchronization").remedies] == [
        "Set-Service -Name vmictimesync -StartupType Manual",
        "Start-Service -Name vmictimesync",
    ]


async def test_windows_guest_through_powershell_direct() -> None:
    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host:
        vm = host.vm("demovm")
        guest = vm.windows(Credential("Administrator", "hvintegration"))
        diagnosis = await vm.diagnose(guest)
        assert diagnosis.verdict("Heartbeat") is V.WORKING
        assert diagnosis.verdict("PowerShell Direct") is V.WORKING
        wrong = vm.windows(Credential("Administrator", "wrong"))
        refused = await vm.diagnose(wrong)
    # A guest that refuses the account: unknown with the error, the host side kept.
    kvp = refused.service("Key-Value Pair Exchange")
    assert kvp.verdict is V.UNKNOWN
    assert kvp.error
    assert kvp.problem
    assert kvp.host is not None
    assert kvp.host.primary_status == "OK"
    assert refused.verdict("Guest Service Interface") is V.HOST_DISABLED
    assert refused.verdict("PowerShell Direct") is V.UNKNOWN
    assert not refused.ok


async def test_an_old_windows_guest_protocol_mismatch_and_missing_services() -> None:
    lab = SimulatedHost(os="windows-10")
    lab.add_vm("win7", guest="windows-7")
    async with HyperVHost.connect(lab) as host, WindowsGuest.connect(lab.inside("win7")) as guest:
        vm = host.vm("win7")
        bare = await vm.diagnose(guest)
        advised = await vm.diagnose(guest, host_os="Windows 10", guest_os="Windows 7 SP1")
    assert bare.verdict("Heartbeat") is V.PROTOCOL_MISMATCH
    assert bare.verdict("Guest Service Interface") is V.NOT_SUPPORTED
    assert bare.verdict("PowerShell Direct") is V.NOT_SUPPORTED
    assert bare.advice is None
    # The guest's OS may come from Key-Value Pair Exchange; the host's never does.
    assert any(note.startswith("an update is needed; give the host") for note in bare.notes)
    [hint] = bare.service("Heartbeat").remedies
    # No call with a placeholder that would fail as written: say what to give.
    assert (hint.python, hint.cli) == ("", "")
    assert "(give --host-os to get it)" in hint.action
    assert advised.advice is not None
    assert advised.advice.data_exchange
    # Key-Value Pair Exchange is already enabled: nothing to enable.
    actions = [(r.side, r.cli) for r in advised.service("Heartbeat").remedies]
    assert actions == [
        ("guest", "hvintegration advise --host-os 'Windows 10' --guest-os 'Windows 7'"),
    ]
    # One update step for the whole guest, not one per service.
    assert [step.action for _, step in advised.remedies].count(
        "update the guest's integration services: Windows Update"
    ) == 1
    manual = advised.service("Heartbeat").remedies[-1].manual
    assert manual.startswith("install the updates Windows Update offers")


async def test_a_guest_connection_into_another_vm_is_noted() -> None:
    lab = SimulatedHost()
    lab.add_vm("other")
    async with HyperVHost.connect(lab) as host, WindowsGuest.connect(lab.inside("other")) as guest:
        wrong = await host.vm("demovm").diagnose(guest)
        right = await host.vm("other").diagnose(guest)
    assert any(
        note.startswith("the guest connection reports computer name other, but the VM's Key")
        for note in wrong.notes
    )
    assert not any("computer name" in note for note in right.notes)


async def test_a_windows_guest_that_is_gone() -> None:
    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host:
        guest = await WindowsGuest.connect(lab.inside("demovm"))
        lab.inject_fault("disconnect", operation="get_guest_services")
        try:
            diagnosis = await host.vm("demovm").diagnose(guest)
        finally:
            await guest.aclose()
    for name in ("Heartbeat", "VSS", "PowerShell Direct"):
        assert diagnosis.verdict(name) is V.UNKNOWN
        assert diagnosis.service(name).error.startswith("Transport")


# -- a Linux guest, simulated ------------------------------------------------------


@pytest.fixture
def linux_lab() -> SimulatedHost:
    lab = SimulatedHost()
    lab.add_vm("web1", guest="ubuntu-22.04", enabled={"Guest Service Interface": True})
    return lab


async def test_simulated_linux_guest_working_then_a_daemon_stopped(
    linux_lab: SimulatedHost,
) -> None:
    sim = SimulatedLinuxGuest("web1")
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sim) as guest:
        vm = host.vm("web1")
        assert verdicts(await vm.diagnose(guest)) == {
            **{name: "working" for name in HOST_SERVICES},
            **{name: "not supported" for name in GUEST_ONLY},
        }
        await guest.daemon("vss").stop()
        stopped = await vm.diagnose(guest)
        assert stopped.verdict("VSS") is V.GUEST_NOT_RUNNING
        assert steps(stopped, "VSS") == [
            (
                "await guest.daemon('hv_vss_daemon').start()",
                "hvintegration --target sim-linux://web1 linux start hv_vss_daemon",
                "systemctl start hv-vss-daemon.service",
            )
        ]
        await guest.daemon("hv_vss_daemon").start()
        assert (await vm.diagnose(guest)).ok


async def test_the_real_hosts_table_with_a_linked_linux_guest() -> None:
    # A Windows 11 host, an Ubuntu 24.04 guest running no KVP or VSS daemon:
    # what a real host reported (Guest Service Interface False OK, KVP No
    # Contact, VSS OK with the protocol mismatch text, the rest OK).
    lab = SimulatedHost(os="windows-11")
    lab.add_vm("ub2404", guest="ubuntu-22.04")
    sim = SimulatedLinuxGuest("ub2404", distro="ubuntu-24.04")
    lab.link_linux("ub2404", sim)
    async with HyperVHost.connect(lab) as host, LinuxGuest.connect(sim) as guest:
        vm = host.vm("ub2404")
        await guest.daemon("kvp").stop(force=True)
        await guest.daemon("vss").stop()
        alone = await vm.diagnose()
        both = await vm.diagnose(guest)
        # What the remedies say, done through the library.
        for item in both.problems:
            if item.service.host_toggle and item.verdict is V.GUEST_NOT_RUNNING:
                await guest.daemon(item.remedies[0].python.split("'")[1]).start()
        await vm.integration_service("Guest Service Interface").enable()
        fixed = await vm.diagnose(guest)
        from_host = await vm.diagnose()
    assert verdicts(alone) == {
        "Guest Service Interface": "disabled on host",
        "Heartbeat": "working",
        "Key-Value Pair Exchange": "guest side not running",
        "Shutdown": "working",
        "Time Synchronization": "working",
        # No KVP daemon, so no OS name; but no integration services version
        # and a heartbeat without application status say Linux: VSS's
        # mismatch text is what every Linux guest shows.
        "VSS": "unknown",
        "Remote Desktop Virtualization": "not supported",
        "PowerShell Direct": "not supported",
    }
    assert any(note.startswith("taken for a Linux guest") for note in alone.notes)
    # Linux remedies only, none with a placeholder in it.
    assert [r.python for r in alone.service("Key-Value Pair Exchange").remedies] == [
        "await guest.daemon('hv_kvp_daemon').start()"
    ]
    assert not any("vmic" in step.python for _, step in alone.remedies)
    assert verdicts(both)["VSS"] == "guest side not running"
    assert both.service("VSS").reason == (
        "enabled on the host (which reports OK), but in the guest hv_vss_daemon is "
        "stopped (/usr/sbin/hv_vss_daemon)"
    )
    assert verdicts(both)["Guest Service Interface"] == "disabled on host"
    assert both.notes == ()
    assert fixed.ok, fixed.problems
    # With hv_kvp_daemon running the host learns the OS: KVP works, and VSS
    # is for the guest to tell.
    assert from_host.guest_os
    assert from_host.verdict("Key-Value Pair Exchange") is V.WORKING
    assert from_host.verdict("VSS") is V.UNKNOWN
    assert from_host.ok


async def test_simulated_linux_guest_disabled_on_host_and_lost_contact() -> None:
    lab = SimulatedHost()
    # The host's guest profile has no KVP daemon: the host reports No Contact
    # for Key-Value Pair Exchange while this guest's daemon runs.
    lab.add_vm("web2", guest="linux-kernel-only", enabled={"VSS": False})
    sim = SimulatedLinuxGuest("web2")
    async with HyperVHost.connect(lab) as host, LinuxGuest.connect(sim) as guest:
        diagnosis = await host.vm("web2").diagnose(guest)
    vss = diagnosis.service("VSS")
    assert vss.verdict is V.HOST_DISABLED
    assert vss.reason == "running in the guest (hv_vss_daemon) but disabled on the host"
    kvp = diagnosis.service("Key-Value Pair Exchange")
    assert kvp.verdict is V.LOST_COMMUNICATION
    assert kvp.reason == "hv_kvp_daemon runs in the guest, but the host reports No Contact"
    # Restarting the KVP daemon stops it first: the library asks for force,
    # so the remedy says so and works as written.
    [restart] = kvp.remedies
    assert restart.python == "await guest.daemon('hv_kvp_daemon').restart(force=True)"
    assert restart.cli.endswith("linux restart hv_kvp_daemon --force")
    async with LinuxGuest.connect(sim) as guest:
        state = await guest.daemon("hv_kvp_daemon").restart(force=True)
    assert state.running


async def test_simulated_linux_guest_without_daemons(linux_lab: SimulatedHost) -> None:
    sim = SimulatedLinuxGuest("web1", distro="minimal")
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sim) as guest:
        diagnosis = await host.vm("web1").diagnose(guest, guest_os="Ubuntu 24.04")
    kvp = diagnosis.service("Key-Value Pair Exchange")
    assert kvp.verdict is V.GUEST_NOT_RUNNING
    assert kvp.guest is not None
    assert kvp.guest.state == "not installed"
    assert not kvp.guest.present
    assert kvp.remedies[0].manual == (
        "install linux-tools-virtual, linux-cloud-tools-virtual with the distribution's "
        "package manager"
    )
    assert diagnosis.verdict("Heartbeat") is V.WORKING


async def test_simulated_linux_guest_unreachable(linux_lab: SimulatedHost) -> None:
    sim = SimulatedLinuxGuest("web1")
    sim.inject_fault("disconnect")
    linux_lab.vm("web1").enabled[catalogue.VSS.component_id] = False  # type: ignore[index]
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sim) as guest:
        diagnosis = await host.vm("web1").diagnose(guest)
    heartbeat = diagnosis.service("Heartbeat")
    assert heartbeat.verdict is V.UNKNOWN
    assert heartbeat.error.startswith("Transport")
    assert heartbeat.host is not None
    assert heartbeat.host.enabled
    # Disabled on the host is known whatever the guest says.
    assert diagnosis.verdict("VSS") is V.HOST_DISABLED
    assert diagnosis.verdict("PowerShell Direct") is V.NOT_SUPPORTED


async def test_a_linux_guest_that_hangs_times_out_into_unknown(linux_lab: SimulatedHost) -> None:
    sim = SimulatedLinuxGuest("web1")
    sim.inject_fault("hang", operation="status")
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sim, timeout=0.5) as guest:
        diagnosis = await host.vm("web1").diagnose(guest)
    kvp = diagnosis.service("Key-Value Pair Exchange")
    assert kvp.verdict is V.UNKNOWN
    assert kvp.error.startswith("OperationTimeoutError")
    assert kvp.host is not None


async def test_cancelling_a_diagnosis_leaves_no_guest_read_behind(
    linux_lab: SimulatedHost,
) -> None:
    sim = SimulatedLinuxGuest("web1")
    sim.inject_fault("hang", operation="status")
    linux_lab.inject_fault("hang", operation="list_vms")
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sim) as guest:
        task = asyncio.ensure_future(host.vm("web1").diagnose(guest))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in others if not t.done()]


# -- the real Linux guest sandbox ---------------------------------------------------


@pytest.fixture
def layout() -> GuestLayout:
    return GuestLayout()


@pytest.fixture
def sandbox(layout: GuestLayout) -> Iterator[GuestSandbox]:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with GuestSandbox(layout) as running:
        yield running


async def test_real_daemons_stopped_then_started(
    sandbox: GuestSandbox, linux_lab: SimulatedHost
) -> None:
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sandbox.url()) as guest:
        vm = host.vm("web1")
        stopped = await vm.diagnose(guest)
        assert {n: stopped.verdict(n).value for n in ("Key-Value Pair Exchange", "VSS")} == {
            "Key-Value Pair Exchange": "guest side not running",
            "VSS": "guest side not running",
        }
        # No systemd in the sandbox: the seed's way, the daemon run as root.
        assert steps(stopped, "Key-Value Pair Exchange")[0][2] == "/usr/sbin/hv_kvp_daemon"
        assert stopped.verdict("Heartbeat") is V.WORKING
        for item in stopped.problems:
            for remedy in item.remedies:
                await guest.daemon(remedy.python.split("'")[1]).start()
        started = await vm.diagnose(guest)
        await guest.daemon("kvp").stop(force=True)
        await guest.daemon("vss").stop()
        await guest.daemon("fcopy").stop()
    assert started.ok, started.problems
    kvp = started.service("Key-Value Pair Exchange")
    assert kvp.guest is not None
    assert kvp.guest.state.startswith("running, pid ")


async def test_real_daemons_against_a_host_that_disagrees(sandbox: GuestSandbox) -> None:
    # The host's profile runs no KVP daemon (it reports No Contact) and has
    # VSS disabled, while the real daemons run in the guest.
    lab = SimulatedHost()
    lab.add_vm("web2", guest="linux-kernel-only", enabled={"VSS": False})
    async with HyperVHost.connect(lab) as host, LinuxGuest.connect(sandbox.url()) as guest:
        await guest.daemon("kvp").start()
        await guest.daemon("vss").start()
        diagnosis = await host.vm("web2").diagnose(guest)
        await guest.daemon("kvp").stop(force=True)
        await guest.daemon("vss").stop()
    vss = diagnosis.service("VSS")
    assert vss.verdict is V.HOST_DISABLED
    assert vss.reason == "running in the guest (hv_vss_daemon) but disabled on the host"
    kvp = diagnosis.service("Key-Value Pair Exchange")
    assert kvp.verdict is V.LOST_COMMUNICATION
    # No systemd in the sandbox: the seed's way, a SIGTERM and the daemon run again.
    assert [r.manual for r in kvp.remedies] == [
        "kill -15 $(pidof hv_kvp_daemon); /usr/sbin/hv_kvp_daemon"
    ]
    assert diagnosis.verdict("PowerShell Direct") is V.NOT_SUPPORTED


@pytest.mark.parametrize("layout", [GuestLayout(driver="absent")])
async def test_real_guest_without_the_driver(
    sandbox: GuestSandbox, linux_lab: SimulatedHost
) -> None:
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sandbox.url()) as guest:
        diagnosis = await host.vm("web1").diagnose(guest)
    for name in HOST_SERVICES:
        assert diagnosis.verdict(name) is V.GUEST_NOT_RUNNING, name
    assert steps(diagnosis, "Heartbeat") == [("", "", "modprobe hv_utils")]
    assert steps(diagnosis, "VSS")[0] == ("", "", "modprobe hv_utils")


@pytest.mark.parametrize("layout", [GuestLayout(path_daemons=False)])
async def test_real_guest_without_daemons_installed(
    sandbox: GuestSandbox, linux_lab: SimulatedHost
) -> None:
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sandbox.url()) as guest:
        diagnosis = await host.vm("web1").diagnose(guest, guest_os="Debian GNU/Linux 12")
    vss = diagnosis.service("VSS")
    assert vss.verdict is V.GUEST_NOT_RUNNING
    assert vss.guest is not None
    assert vss.guest.state == "not installed"
    # Debian's package, from the maintenance data.
    assert vss.remedies[0].action == (
        "install hv_vss_daemon: the distribution's Hyper-V daemon package (hyperv-daemons)"
    )


async def test_real_guest_that_goes_away(sandbox: GuestSandbox, linux_lab: SimulatedHost) -> None:
    async with HyperVHost.connect(linux_lab) as host, LinuxGuest.connect(sandbox.url()) as guest:
        sandbox.kill_sshd()
        diagnosis = await host.vm("web1").diagnose(guest)
    kvp = diagnosis.service("Key-Value Pair Exchange")
    assert kvp.verdict is V.UNKNOWN
    assert kvp.error
    assert kvp.host is not None
    assert kvp.host.primary_status == "OK"
    assert not diagnosis.ok


# -- the command line -------------------------------------------------------------


def cli(*argv: str) -> tuple[int, str, str]:
    from hvintegration.cli import run

    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_cli_table_remedies_and_exit_status() -> None:
    status, out, _ = cli("--target", "sim://", "diagnose", "demovm")
    assert status == 1
    assert "[!!] disabled on host" in out
    assert "[ok] working" in out
    assert "hvintegration --target sim://HV01 host enable demovm 'Guest Service Interface'" in out
    assert "by hand: Hyper-V\\Enable-VMIntegrationService" in out


def test_cli_exits_0_when_nothing_asks_for_action(tmp_path: pytest.TempPathFactory) -> None:
    lab = SimulatedHost()
    lab.vm("demovm").enabled[catalogue.GUEST_SERVICE_INTERFACE.component_id] = True  # type: ignore[index]
    state = f"{tmp_path}/host.json"
    save_host(lab, state)
    status, out, _ = cli("--target", f"sim://?state={state}", "diagnose", "demovm", "--json")
    assert status == 0
    # One VM, one record: an object, as `host kvp` and `linux status` print.
    data = json.loads(out)
    assert data["vm"] == "demovm"
    assert data["ok"] is True
    assert data["services"][0]["problem"] is False
    assert [s["verdict"] for s in data["services"][:6]] == ["working"] * 6
    assert data["services"][0]["service"] == "guest_service_interface"


def test_cli_with_a_linux_guest_and_an_unknown_vm() -> None:
    status, out, _ = cli("--target", "sim://", "diagnose", "demovm", "--guest", "sim-linux://")
    assert status == 1
    assert "hv_kvp_daemon: running, pid" in out
    assert cli("--target", "sim://", "diagnose", "nosuchvm")[0] == 3


def test_cli_guest_that_cannot_be_reached_keeps_the_host_side() -> None:
    status, out, err = cli(
        "--target", "sim://", "diagnose", "demovm", "--guest", "ssh://root@127.0.0.1:1?known_hosts=/dev/null"
    )  # fmt: skip
    assert status == 1, err
    assert "[!!] unknown" in out
    guest = "ssh://root@127.0.0.1:1?known_hosts=%2Fdev%2Fnull"
    assert f"- the guest {guest} could not be read: TransportError" in out
    assert "disabled on host" in out


def test_cli_through_powershell_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVINTEGRATION_GUEST_PASSWORD", "hvintegration")
    status, out, err = cli("-t", "sim://", "diagnose", "demovm", "--direct", "Administrator")
    assert status == 1, err
    assert "vmicvss: Running (Manual)" in out
    monkeypatch.setenv("HVINTEGRATION_GUEST_PASSWORD", "wrong")
    status, out, _ = cli("-t", "sim://", "diagnose", "demovm", "--direct", "Administrator")
    assert status == 1
    assert "[!!] unknown" in out
    both = ("--direct", "Administrator", "--guest", "sim-linux://")
    status, _, err = cli("-t", "sim://", "diagnose", "demovm", *both)
    assert status == 2
    assert "--guest URL or --direct USER" in err


def test_guest_kind_by_scheme() -> None:
    from hvintegration.cli.diagnose import guest_kind

    assert guest_kind("sim://?guest=demovm") == "windows"
    assert guest_kind("psrp://admin@web1") == "windows"
    assert guest_kind("ssh://root@web1") == "linux"
    assert guest_kind("ssh://admin@web1?shell=cmd") == "windows"
    assert guest_kind("local://", platform="win32") == "windows"
    assert guest_kind("local://", platform="linux") == "linux"


async def test_the_notebook_table_colours_the_verdict() -> None:
    async with HyperVHost.connect("sim://") as host:
        diagnosis = await host.vm("demovm").diagnose()
    page = diagnosis._repr_html_()
    assert '<td style="background:#f8d7da"><b>disabled on host</b></td>' in page
    assert page.count('style="background:#d4edda"') == 5
    assert "<code>hvintegration --target sim://HV01 host enable demovm" in page


# -- what a first round of use turned up -------------------------------------


async def test_a_linux_guest_without_its_kvp_daemon_from_the_host_alone() -> None:
    # The host's reference case: a Linux guest served by the kernel alone
    # (no hv_kvp_daemon, so no OSName). VSS's mismatch text is no fault.
    lab = SimulatedHost(os="windows-11")
    lab.add_vm("kern", guest="linux-kernel-only")
    async with HyperVHost.connect(lab) as host:
        alone = await host.vm("kern").diagnose(host_os="Windows 11")
        [batch] = await diagnose_host(host, ["kern"], host_os="Windows 11")
    for diagnosis in (alone, batch):
        assert diagnosis.verdict("VSS") is V.UNKNOWN
        assert diagnosis.verdict("Key-Value Pair Exchange") is V.GUEST_NOT_RUNNING
        assert diagnosis.advice is None
        # Linux steps only: no Windows service, no advise() with a placeholder.
        pythons = [step.python for _, step in diagnosis.remedies]
        assert "await guest.daemon('hv_kvp_daemon').start()" in pythons
        assert not any("vmic" in text or "GUEST-OS" in text for text in pythons)
        assert not any("advise(" in text for text in pythons)


async def test_a_windows_guest_with_kvp_disabled_is_not_taken_for_linux() -> None:
    lab = SimulatedHost()
    lab.add_vm("win7", guest="windows-7", enabled={"Key-Value Pair Exchange": False})
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("win7").diagnose(host_os="Windows 10", guest_os="Windows 7")
    assert diagnosis.verdict("Heartbeat") is V.PROTOCOL_MISMATCH
    assert not any(note.startswith("taken for a Linux guest") for note in diagnosis.notes)
    # The update needs Key-Value Pair Exchange, which is disabled: enable it
    # first. (Windows 7 has no Guest Service Interface: nothing to enable.)
    assert diagnosis.verdict("Guest Service Interface") is V.NOT_SUPPORTED
    assert [(step.side, step.action) for _, step in diagnosis.remedies][0:2] == [
        ("host", "enable Key-Value Pair Exchange for the VM on the host"),
        ("guest", "update the guest's integration services: Windows Update"),
    ]


async def test_remedies_name_a_vm_by_id_when_its_name_is_shared() -> None:
    lab = SimulatedHost()
    twin = uuid.UUID("11111111-2222-3333-4444-555555555555")
    lab.add_vm("demovm", id=twin)
    lab.add_vm("offvm", state="Off")
    async with HyperVHost.connect(lab) as host:
        by_id = await host.vm(twin).diagnose()
        by_text_id = await host.vm(str(twin)).diagnose()
        by_name = await host.vm("offvm").diagnose()
        batch = await diagnose_host(host)
        # The name names two VMs: the remedies must not use it.
        with pytest.raises(AmbiguousVMError):
            await host.vm("demovm").diagnose()
        for diagnosis in (by_id, by_text_id, batch[1]):
            [(_, enable)] = diagnosis.remedies
            assert enable.python == (
                f"await host.vm('{twin}').integration_service('Guest Service Interface').enable()"
            )
            assert enable.cli == (
                f"hvintegration --target sim://HV01 host enable {twin} 'Guest Service Interface'"
            )
            assert enable.manual == (
                f"Hyper-V\\Get-VM -Id '{twin}' | Hyper-V\\Enable-VMIntegrationService "
                "-Name 'Guest Service Interface'"
            )
            # As written, each reaches that VM and no other.
            done = (
                await host.vm(enable.cli.split()[5])
                .integration_service("Guest Service Interface")
                .enable()
            )
            assert done.vm_id == twin
            await host.vm(twin).integration_service("Guest Service Interface").disable()
    # A name only one VM has stays a name.
    assert "host enable offvm" in by_name.remedies[0][1].cli
    assert [d.vm for d in batch] == ["demovm", "demovm", "offvm"]
    assert batch[2].remedies[0][1].cli.split()[5] == "offvm"
    # The seed's demovm shares the name too: by id as well.
    assert str(batch[0].summary.id) in batch[0].remedies[0][1].cli  # type: ignore[union-attr]


def test_cli_remedies_for_a_shared_name_use_the_id(tmp_path: pytest.TempPathFactory) -> None:
    lab = SimulatedHost()
    twin = "11111111-2222-3333-4444-555555555555"
    lab.add_vm("demovm", id=uuid.UUID(twin))
    state = f"{tmp_path}/host.json"
    save_host(lab, state)
    status, out, _ = cli("--target", f"sim://?state={state}", "diagnose", twin)
    assert status == 1
    assert f"host enable {twin} 'Guest Service Interface'" in out
    assert f"by hand: Hyper-V\\Get-VM -Id '{twin}' | Hyper-V\\Enable-VMIntegrationService" in out


@pytest.mark.parametrize(
    ("url", "options", "status"),
    [
        ("sim://?rights=none", [], 4),
        ("sim://?latency=3", ["--timeout", "1"], 5),
    ],
    ids=["permission", "timeout"],
)
def test_cli_host_errors_keep_their_exit_status(url: str, options: list[str], status: int) -> None:
    code, out, err = cli("-t", url, *options, "diagnose", "demovm")
    assert (code, out) == (status, "")
    assert err.count("[target") <= 1


async def test_a_host_error_without_a_guest_is_the_hosts_own() -> None:
    lab = SimulatedHost()
    lab.inject_fault("error", operation="list_vms")
    async with HyperVHost.connect(lab) as host:
        with pytest.raises(PermissionDeniedError) as caught:
            await host.vm("demovm").diagnose()
    # Not wrapped again: one target suffix, the host operation that failed.
    assert str(caught.value).count("[target") == 1
    assert caught.value.operation in ("list_vms", "get_vm")


async def test_a_linux_guest_of_another_vm_is_noted() -> None:
    lab = SimulatedHost()
    lab.add_vm("web1", guest="ubuntu-22.04")
    lab.add_vm("web2", guest="ubuntu-22.04")
    g1, g2 = SimulatedLinuxGuest("web1"), SimulatedLinuxGuest("web2")
    lab.link_linux("web1", g1)
    lab.link_linux("web2", g2)
    async with HyperVHost.connect(lab) as host:
        async with LinuxGuest.connect(g2) as other:
            wrong = await host.vm("web1").diagnose(other)
            right = await host.vm("web2").diagnose(other)
        # A Linux guest connection for a VM whose KVP says Windows.
        async with LinuxGuest.connect(SimulatedLinuxGuest("demovm")) as linux:
            windows_vm = await host.vm("demovm").diagnose(linux)
    assert any(
        note.startswith("the Linux guest's KVP pool 3 says it runs in VM web2, not web1")
        for note in wrong.notes
    )
    assert not any("is it the guest inside this VM" in note for note in right.notes)
    assert any(
        note.startswith(
            "the VM's Key-Value Pair Exchange says its guest runs Windows Server 2022 "
            "Datacenter, but the guest connection reaches a Linux guest"
        )
        for note in windows_vm.notes
    )


async def test_one_vm_where_a_list_is_expected_is_refused() -> None:
    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host:
        for one in ("demovm", uuid.UUID(int=3), host.vm("demovm")):
            with pytest.raises(TypeError, match="list of VMs"):
                await diagnose_host(host, one)  # type: ignore[arg-type]
    assert lab.round_trips == 0


async def test_diagnose_host_keeps_the_diagnoses_it_could_make() -> None:
    async with HyperVHost.connect("sim://?vms=2") as host:
        with pytest.raises(BatchError) as caught:
            await diagnose_host(host, ["demovm", "nosuch", "vm001"])
    result = caught.value.result
    assert [d.vm for d in result] == ["demovm", "vm001"]
    assert all(isinstance(d, Diagnosis) for d in result)
    assert result[0].verdict("Guest Service Interface") is V.HOST_DISABLED
    assert list(caught.value.errors) == ["nosuch"]
    assert isinstance(caught.value.errors["nosuch"], VMNotFoundError)
    assert caught.value.operation == "diagnose"


async def test_an_unknown_host_os_is_refused_like_advise_refuses_it() -> None:
    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host:
        with pytest.raises(NotFoundError, match="unknown Hyper-V host OS 'Windwos 10'"):
            await host.vm("demovm").diagnose(host_os="Windwos 10")
        with pytest.raises(NotFoundError, match="unknown Hyper-V host OS"):
            await diagnose_host(host, host_os="Windwos 10")
    assert lab.round_trips == 0


def test_cli_an_unknown_host_os_exits_3() -> None:
    status, out, err = cli("-t", "sim://", "diagnose", "demovm", "--host-os", "Windwos 10")
    assert (status, out) == (3, "")
    assert "Windows Server 2025" in err


async def test_a_protocol_mismatch_asks_once_and_enables_kvp_only_when_disabled() -> None:
    lab = SimulatedHost(os="windows-10")
    lab.add_vm("win7", guest="windows-7")
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("win7").diagnose(host_os="Windows 10")
    mismatched = diagnosis.by_verdict(V.PROTOCOL_MISMATCH)
    assert len(mismatched) == 5
    # Windows 7 has no Guest Service Interface: nothing to enable for it.
    [(_, update)] = diagnosis.remedies
    assert update.action == "update the guest's integration services: Windows Update"
    assert len(diagnosis.remedy_services(update)) == 5
    assert not any(
        "enable Key-Value Pair Exchange" in step.action for _, step in diagnosis.remedies
    )
    text = format_diagnosis(diagnosis)
    assert text.count("update the guest's integration services") == 1
    assert (
        "- Heartbeat, Key-Value Pair Exchange, Shutdown, Time Synchronization, VSS: update" in text
    )


# -- remedies a person can run as written ------------------------------------


def _guest_profiles() -> list[str]:
    from hvintegration.simulator import GUEST_OSES

    return list(GUEST_OSES)


@pytest.mark.parametrize("profile", _guest_profiles())
@pytest.mark.parametrize("state", ["Running", "Off", "Paused", "Saved"])
async def test_no_remedy_holds_a_placeholder_and_every_command_parses(
    profile: str, state: str
) -> None:
    from hvintegration.cli.parser import build_parser

    lab = SimulatedHost(os="windows-10")
    vm = lab.add_vm("vm1", guest=profile, state=state)
    # Every service disabled on the host, or enabled with the guest side
    # stopped: between them every verdict a host alone can reach.
    parser = build_parser()
    for enabled in (False, True):
        for spec in catalogue.HOST_SERVICES:
            vm.enabled[spec.component_id] = enabled  # type: ignore[index]
        async with HyperVHost.connect(lab) as host:
            found = [
                await host.vm("vm1").diagnose(),
                await host.vm("vm1").diagnose(host_os="Windows 10", guest_os=vm.guest.name),
            ]
        for diagnosis in found:
            for _, remedy in diagnosis.remedies:
                for text in (remedy.action, remedy.python, remedy.cli, remedy.manual):
                    assert "GUEST" not in text, (profile, text)
                    assert "<" not in text, (profile, text)
                if remedy.cli:
                    words = shlex.split(remedy.cli)
                    assert words[0] == "hvintegration"
                    parser.parse_args(words[1:])  # exits on a command it does not know


async def test_a_linux_step_without_a_guest_connection_has_no_command() -> None:
    lab = SimulatedHost()
    lab.add_vm("lin", guest="linux-kernel-only")
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("lin").diagnose()
    kvp = diagnosis.service("Key-Value Pair Exchange")
    assert kvp.remedies
    assert [r.cli for r in kvp.remedies] == [""]
    assert [r.manual for r in kvp.remedies] == ["hv_kvp_daemon"]


@pytest.mark.parametrize(
    ("guest", "guest_os", "host_os", "direct"),
    [
        ("windows-7", "Windows 7", None, False),
        ("windows-server-2012", "Windows Server 2012", None, False),
        ("windows-server-2012-r2", "Windows Server 2012 R2", None, False),
        ("windows-server-2022", "Windows Server 2022", "Windows Server 2012 R2", False),
        ("windows-server-2022", "Windows Server 2022", None, True),
    ],
)
async def test_no_powershell_direct_command_for_a_vm_that_cannot_have_it(
    guest: str, guest_os: str, host_os: str | None, direct: bool
) -> None:
    lab = SimulatedHost()
    vm = lab.add_vm("old", guest=guest)
    vm.windows.services["vmicvss"].status = "Stopped"  # type: ignore[union-attr]
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("old").diagnose(host_os=host_os, guest_os=guest_os)
    vss = diagnosis.service("VSS")
    assert vss.verdict is V.GUEST_NOT_RUNNING
    assert [r.manual for r in vss.remedies] == ["Start-Service -Name vmicvss"]
    if direct:
        assert [r.cli for r in vss.remedies] == [
            "hvintegration --target sim://HV01 windows --vm old start vmicvss"
        ]
    else:
        assert [r.cli for r in vss.remedies] == [""]
        assert "PowerShell Direct" in vss.remedies[0].action


@pytest.mark.parametrize("guest", ["windows-7", "windows-server-2012"])
async def test_guest_service_interface_of_an_older_windows_guest_is_not_supported(
    guest: str,
) -> None:
    lab = SimulatedHost(os="windows-10")
    lab.add_vm("old", guest=guest)
    async with HyperVHost.connect(lab) as host:
        # The guest's OS from its KVP items, before and after enabling.
        before = await host.vm("old").diagnose()
        await host.vm("old").integration_service("Guest Service Interface").enable()
        after = await host.vm("old").diagnose()
        direct = after.service("PowerShell Direct")
    for diagnosis in (before, after):
        gsi = diagnosis.service("Guest Service Interface")
        assert gsi.verdict is V.NOT_SUPPORTED, gsi.reason
        assert gsi.remedies == ()
    assert direct.verdict is V.NOT_SUPPORTED


async def test_a_windows_7_guest_with_updated_components_keeps_guest_service_interface() -> None:
    import attrs

    from hvintegration.simulator import GUEST_OSES

    updated = attrs.evolve(GUEST_OSES["windows-7"], integration_services_version="6.3.9600.16384")
    lab = SimulatedHost(os="windows-server-2012-r2")
    lab.add_vm("old", guest=updated)
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("old").diagnose()
    assert diagnosis.verdict("Guest Service Interface") is V.HOST_DISABLED


@pytest.mark.parametrize(
    ("host_os", "guest", "state"),
    [
        ("windows-server-2012", "windows-server-2012", "Up to date"),
        ("windows-8", "windows-server-2012", "Up to date"),
        ("windows-server-2012-r2", "windows-server-2012-r2", "Up to date"),
        ("windows-server-2012", "windows-server-2012-r2", "Up to date"),
        ("windows-server-2012-r2", "windows-server-2012", "Update required"),
        ("windows-server-2012", "windows-7", "Update required"),
        ("windows-10", "windows-7", "Update required"),
    ],
)
async def test_the_simulator_asks_for_an_update_only_for_older_components(
    host_os: str, guest: str, state: str
) -> None:
    lab = SimulatedHost(os=host_os)
    lab.add_vm("g", guest=guest)
    async with HyperVHost.connect(lab) as host:
        diagnosis = await host.vm("g").diagnose()
    assert diagnosis.integration_services_state == state
    mismatch = [s.service.name for s in diagnosis.services if s.verdict is V.PROTOCOL_MISMATCH]
    assert bool(mismatch) == (state == "Update required")
