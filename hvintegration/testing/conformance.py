"""A conformance suite every PowerShell transport passes (needs pytest).

Subclass :class:`TransportConformance` in a test module and provide a
``peer`` fixture: a :class:`SimulatedPeer` that opens transports to a
simulated host and lets the test change that host. The same tests then run
over every transport, in process or across a real child process or SSH
channel.

Example (a test module)::

    import pytest
    from hvintegration.testing.conformance import InProcessPeer, TransportConformance

    class TestSimulator(TransportConformance):
        @pytest.fixture
        def peer(self):
            return InProcessPeer()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Protocol

import pytest

from hvintegration import catalogue
from hvintegration.errors import (
    AuthenticationError,
    FileCopyUnavailableError,
    OperationTimeoutError,
    PermissionDeniedError,
    TransportClosedError,
    TransportError,
)
from hvintegration.host import HyperVHost
from hvintegration.operations import GET_INTEGRATION_SERVICES, LIST_VMS, SET_INTEGRATION_SERVICES
from hvintegration.simulator.guest_state import DEFAULT_CREDENTIAL
from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.state import edit_state, save_host
from hvintegration.transport.base import JsonValue, PowerShellTransport
from hvintegration.windows.direct import Credential

__all__ = [
    "HOSTILE_NAMES",
    "InProcessPeer",
    "SimulatedPeer",
    "StateFilePeer",
    "TransportConformance",
]

HOSTILE_NAMES: tuple[str, ...] = (
    "it's",
    'say "hi"',
    "back`tick",
    "$(Remove-Item C:\\ -Recurse)",
    "a; Stop-Computer",
    "line\nbreak",
    "nul\x00inside",
    "\u2018curly\u2019 \u201alow\u201b",
    "@{x=1}",
    "*",
)
"""VM names that would break a script if a transport spliced them into text:
quotes of every kind PowerShell honours (including U+2018 to U+201B),
backtick, subexpressions, statement separators, newlines, NUL, wildcards."""


class SimulatedPeer(Protocol):
    """A simulated host reachable through the transport under test."""

    def open_transport(self) -> PowerShellTransport:
        """A new, unopened transport to the peer."""

    def edit(self) -> contextlib.AbstractContextManager[SimulatedHost]:
        """Change the host the peer serves; changes apply when the block exits."""


class InProcessPeer:
    """A simulated host in this process, reached through ``sim://``.

    Args:
        host: The host; a default one when omitted.
    """

    def __init__(self, host: SimulatedHost | None = None) -> None:
        self.host = host if host is not None else SimulatedHost()

    def open_transport(self) -> PowerShellTransport:
        """A ``sim://`` transport to the host."""
        return self.host.open()

    @contextlib.contextmanager
    def edit(self) -> Iterator[SimulatedHost]:
        """The host itself."""
        yield self.host


class StateFilePeer:
    """A simulated host kept in a state file that a child-process peer serves.

    Subclass it and implement :meth:`open_transport` to start the peer (the
    stand-in PowerShell, the PSRP server...) on :attr:`path`.

    Args:
        path: The state file; written with a default host when missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            save_host(SimulatedHost(), self.path)

    def open_transport(self) -> PowerShellTransport:
        """Start the peer; subclasses implement this."""
        raise NotImplementedError

    @contextlib.contextmanager
    def edit(self) -> Iterator[SimulatedHost]:
        """Load the host under the file lock, and save it afterwards."""
        with edit_state(self.path) as host:
            yield host


class TransportConformance:
    """Tests every PowerShell transport must pass.

    Subclasses provide the ``peer`` fixture. Every test opens its own
    transport and closes it, so a test that breaks a connection cannot
    affect the next.
    """

    timeout: float = 10.0
    """Seconds per call; generous, because a peer may be a child process."""

    hang_timeout: float = 1.0
    """Seconds before a call to a hanging peer is abandoned."""

    @pytest.fixture
    def peer(self) -> SimulatedPeer:
        """The simulated peer; subclasses override this fixture."""
        raise NotImplementedError("provide a peer fixture")

    async def test_list_vms_reads_the_seeded_host(self, peer: SimulatedPeer) -> None:
        async with peer.open_transport() as transport:
            result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
        assert [vm["Name"] for vm in result.output] == ["demovm"]
        assert result.output[0]["State"] == "Running"
        assert uuid.UUID(str(result.output[0]["Id"]))
        assert result.errors == ()

    async def test_reads_demovm_as_the_seed_shows_it(self, peer: SimulatedPeer) -> None:
        async with HyperVHost.connect(peer.open_transport(), timeout=self.timeout) as host:
            services = await host.vm("demovm").integration_services()
        assert [(s.name, s.enabled, s.primary_status) for s in services] == [
            ("Guest Service Interface", False, "OK"),
            ("Heartbeat", True, "OK"),
            ("Key-Value Pair Exchange", True, "OK"),
            ("Shutdown", True, "OK"),
            ("Time Synchronization", True, "OK"),
            ("VSS", True, "OK"),
        ]
        assert services[1].secondary_status == "OK"
        assert [s.service for s in services] == list(catalogue.HOST_SERVICES)

    async def test_whole_host_read_is_one_round_trip(self, peer: SimulatedPeer) -> None:
        with peer.edit() as sim:
            for number in range(20):
                sim.add_vm(f"vm{number:02d}")
            before = sim.round_trips
        async with HyperVHost.connect(peer.open_transport(), timeout=self.timeout) as host:
            services = await host.integration_services()
        with peer.edit() as sim:
            assert sim.round_trips - before == 1
        assert len(services) == 21 * 6

    async def test_apply_changes_only_what_differs_and_persists(self, peer: SimulatedPeer) -> None:
        desired = {"Guest Service Interface": True, "VSS": True, "Heartbeat": False}
        async with HyperVHost.connect(peer.open_transport(), timeout=self.timeout) as host:
            result = await host.vm("demovm").apply(desired, force=True)
            again = await host.vm("demovm").apply(desired, force=True)
            services = await host.vm("demovm").integration_services()
        assert [(c.state.name, c.changed) for c in result.items] == [
            ("Guest Service Interface", True),
            ("VSS", False),
            ("Heartbeat", True),
        ]
        assert again.changed == ()
        enabled = {s.name: s.enabled for s in services}
        assert enabled["Guest Service Interface"] is True
        assert enabled["Heartbeat"] is False

    async def test_missing_vm_is_an_error_record_beside_the_output(
        self, peer: SimulatedPeer
    ) -> None:
        parameters = {"VM": [{"Name": "nosuchvm"}, {"Name": "demovm"}]}
        async with peer.open_transport() as transport:
            result = await transport.run_operation(
                GET_INTEGRATION_SERVICES, parameters, timeout=self.timeout
            )
        assert len(result.output) == 6
        assert len(result.errors) == 1
        assert result.errors[0].base_id == "HvIntegration.VMNotFound"
        assert result.errors[0].target_object == "nosuchvm"
        assert "demovm" in result.errors[0].details.splitlines()

    async def test_failed_change_is_tagged_with_its_index(self, peer: SimulatedPeer) -> None:
        changes: list[JsonValue] = [
            {
                "VM": {"Name": "ghost"},
                "ServiceId": str(catalogue.VSS.component_id),
                "Enabled": True,
            },
            {
                "VM": {"Name": "demovm"},
                "ServiceId": str(catalogue.GUEST_SERVICE_INTERFACE.component_id),
                "Enabled": True,
            },
        ]
        async with peer.open_transport() as transport:
            result = await transport.run_operation(
                SET_INTEGRATION_SERVICES, {"Changes": changes}, timeout=self.timeout
            )
        assert [e.target_object for e in result.errors] == [0]
        assert [(o["Index"], o["Changed"]) for o in result.output] == [(1, True)]

    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    async def test_hostile_names_arrive_unchanged(self, peer: SimulatedPeer, name: str) -> None:
        with peer.edit() as sim:
            sim.add_vm(name)
        async with HyperVHost.connect(peer.open_transport(), timeout=self.timeout) as host:
            services = await host.vm(name).integration_services()
            changed = await host.vm(name).apply({"Guest Service Interface": True})
        assert {s.vm_name for s in services} == {name}
        assert changed.items[0].state.vm_name == name
        with peer.edit() as sim:
            # Only the named VM changed: the name was never a wildcard.
            assert [
                vm.name for vm in sim.vms if vm.enabled[changed.items[0].state.component_id]
            ] == [name]

    async def test_powershell_direct_carries_a_guest_operation(self, peer: SimulatedPeer) -> None:
        admin = Credential(*DEFAULT_CREDENTIAL)
        async with HyperVHost.connect(peer.open_transport(), timeout=self.timeout) as host:
            guest = host.vm("demovm").windows(admin)
            stopped = await guest.service("vmicvss").stop()
            services = await guest.services()
            with pytest.raises(AuthenticationError):
                await host.vm("demovm").windows(Credential(admin.user, "wrong")).services()
        assert (stopped.name, stopped.status) == ("vmicvss", "Stopped")
        assert [s.name for s in services][:2] == ["vmicguestinterface", "vmicheartbeat"]
        with peer.edit() as sim:
            windows = sim.vm("demovm").windows
            assert windows is not None
            assert windows.services["vmicvss"].status == "Stopped"

    async def test_copy_file_reaches_the_guest(self, peer: SimulatedPeer) -> None:
        with peer.edit() as sim:
            sim.add_host_file("C:\\Tools\\agent.msi", b"\x00\xffagent")
        async with HyperVHost.connect(peer.open_transport(), timeout=self.timeout) as host:
            with pytest.raises(FileCopyUnavailableError):
                await host.vm("demovm").copy_file("C:\\Tools\\agent.msi", "C:\\Temp\\a.msi")
            await host.vm("demovm").integration_service("Guest Service Interface").enable()
            done = await host.vm("demovm").copy_file(
                "C:\\Tools\\agent.msi", "C:\\Temp\\a.msi", overwrite=True
            )
        assert done.size == 7
        with peer.edit() as sim:
            files = sim.vm("demovm").files
            assert files is not None
            assert files.files["c:\\temp\\a.msi"] == b"\x00\xffagent"

    async def test_terminating_error_maps_to_permission_denied(self, peer: SimulatedPeer) -> None:
        with peer.edit() as sim:
            sim.inject_fault("error", operation="list_vms")
        async with peer.open_transport() as transport:
            with pytest.raises(PermissionDeniedError) as caught:
                await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
            assert "required permission" in str(caught.value)
            result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
        assert len(result.output) == 1

    async def test_hang_times_out_and_the_next_call_works(self, peer: SimulatedPeer) -> None:
        with peer.edit() as sim:
            sim.inject_fault("hang", operation="list_vms")
        async with peer.open_transport() as transport:
            with pytest.raises(OperationTimeoutError) as caught:
                await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.hang_timeout)
            assert isinstance(caught.value, TimeoutError)
            result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
        assert len(result.output) == 1

    async def test_disconnect_is_a_transport_error_and_the_next_call_works(
        self, peer: SimulatedPeer
    ) -> None:
        with peer.edit() as sim:
            sim.inject_fault("disconnect", operation="list_vms")
        async with peer.open_transport() as transport:
            with pytest.raises(TransportError):
                await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
            result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
        assert len(result.output) == 1

    async def test_cancelled_call_leaves_the_transport_usable(self, peer: SimulatedPeer) -> None:
        with peer.edit() as sim:
            sim.inject_fault("hang", operation="list_vms")
        async with peer.open_transport() as transport:
            task = asyncio.ensure_future(
                transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
            )
            # Cancel only once the call is in the hang: a child-process peer
            # may take longer to start than any fixed pause, and cancelling
            # before it took the fault would leave the fault for the next call.
            for _ in range(int(self.timeout / 0.02)):
                await asyncio.sleep(0.02)
                with peer.edit() as sim:
                    if not sim.faults:
                        break
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
        assert len(result.output) == 1

    async def test_concurrent_calls_all_answer(self, peer: SimulatedPeer) -> None:
        async with peer.open_transport() as transport:
            results = await asyncio.gather(
                *(
                    transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
                    for _ in range(8)
                )
            )
        assert all(len(r.output) == 1 for r in results)

    async def test_closed_transport_refuses_calls_and_closes_twice(
        self, peer: SimulatedPeer
    ) -> None:
        transport = peer.open_transport()
        async with transport:
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
        await transport.aclose()
        with pytest.raises(TransportClosedError):
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=self.timeout)
