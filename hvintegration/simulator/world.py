"""The simulated Hyper-V world: hosts, their VMs, and injected faults.

These are the only mutable objects in the library, on purpose: they *are* the
fake host that operations change. Each simulated host is independent; there is
no shared state between hosts or between ``sim://`` connections.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from hvintegration import catalogue
from hvintegration.simulator.guest_state import GuestFiles, WindowsGuestState
from hvintegration.simulator.profiles import GUEST_OSES, HOST_OSES, LOCALES, GuestOS, HostOS

if TYPE_CHECKING:
    from hvintegration.transport.base import ErrorRecord
    from hvintegration.transport.simulator import SimulatorTransport

__all__ = [
    "Fault",
    "FaultKind",
    "SimulatedHost",
    "SimulatedVM",
]

_VM_NAMESPACE = uuid.UUID("1d7c6b2e-8f9a-4e51-9a53-2f5b8c1e7d40")


class FaultKind(enum.Enum):
    """What an injected fault does to the next matching round trip."""

    ERROR = "error"
    """The script fails with a terminating error record."""
    HANG = "hang"
    """The target never answers; the caller's timeout ends the call."""
    DISCONNECT = "disconnect"
    """The connection breaks mid-call."""


@attrs.define
class Fault:
    """A fault waiting for a round trip.

    Attributes:
        kind: What happens.
        operation: The operation name it waits for, or ``None`` for any.
        record: The error record for :attr:`FaultKind.ERROR`.
        times: How many more round trips it affects.
    """

    kind: FaultKind
    operation: str | None = None
    record: ErrorRecord | None = None
    times: int = 1


@attrs.define(eq=False)
class SimulatedVM:
    """One simulated virtual machine.

    Attributes:
        name: The VM name.
        guest: The guest operating system, which decides which integration
            services answer.
        state: ``Running``, ``Off``, ``Saved`` or ``Paused``.
        id: The VM id; by default derived from the name so that examples
            print the same ids on every run.
        generation: 1 or 2.
        enabled: Host-side enabled flag per component id.
        windows: The inside of a Windows guest (services, accounts); made
            for Windows guest profiles when the VM joins a host.
        files: The guest's file system, for file copy.
    """

    name: str
    guest: GuestOS = GUEST_OSES["windows-server-2022"]
    state: str = "Running"
    id: uuid.UUID = attrs.field(
        default=attrs.Factory(lambda vm: uuid.uuid5(_VM_NAMESPACE, vm.name), takes_self=True)
    )
    generation: int = 2
    enabled: dict[uuid.UUID, bool] = attrs.field(factory=dict)
    windows: WindowsGuestState | None = None
    files: GuestFiles | None = None

    def runs(self, component_id: uuid.UUID) -> bool:
        """Whether the guest side of a service is up.

        The guest OS must provide it, and in a Windows guest its ``vmic*``
        service must be running.
        """
        if component_id not in self.guest.services:
            return False
        if self.windows is None:
            return True
        spec = catalogue.by_component_id(component_id)
        if spec is None:
            return True
        service = self.windows.services.get(spec.windows_service)
        return service is not None and service.status == "Running"


def _seed_enabled(host_os: HostOS, overrides: dict[uuid.UUID, bool]) -> dict[uuid.UUID, bool]:
    # New VMs get every integration service except Guest Service Interface,
    # which Hyper-V leaves off by default (the seed's demovm shows exactly
    # that state: Guest Service Interface False, the other five True).
    enabled = {
        spec.component_id: spec is not catalogue.GUEST_SERVICE_INTERFACE
        for spec in catalogue.HOST_SERVICES
        if spec.component_id in host_os.services
    }
    enabled.update({k: v for k, v in overrides.items() if k in enabled})
    return enabled


class SimulatedHost:
    """A simulated Hyper-V host, seeded like the seed document's host.

    By default it runs Windows Server 2022 in ``en-US`` with one VM,
    ``demovm``, whose Guest Service Interface is disabled and whose other five
    services are enabled and healthy.

    Args:
        name: The host's computer name.
        os: A key of :data:`~hvintegration.simulator.HOST_OSES` or a
            :class:`HostOS`.
        locale: A key of :data:`~hvintegration.simulator.LOCALES`; decides the
            service names the host reports.
        vms: The VMs; ``None`` seeds ``demovm``.
        latency: Seconds each round trip takes.

    Example:
        >>> from hvintegration.simulator import SimulatedHost
        >>> host = SimulatedHost()
        >>> [vm.name for vm in host.vms]
        ['demovm']
        >>> host.add_vm("web01", guest="ubuntu-22.04").name
        'web01'
    """

    def __init__(
        self,
        name: str = "HV01",
        *,
        os: str | HostOS = "windows-server-2022",
        locale: str = "en-US",
        vms: Iterable[SimulatedVM] | None = None,
        latency: float = 0.0,
    ) -> None:
        if isinstance(os, str):
            if os not in HOST_OSES:
                raise ValueError(f"unknown host OS {os!r}; choose from {', '.join(HOST_OSES)}")
            os = HOST_OSES[os]
        if locale not in LOCALES:
            raise ValueError(f"unknown locale {locale!r}; choose from {', '.join(LOCALES)}")
        self.name = name
        self.os = os
        self.locale = locale
        self.latency = latency
        self.vms: list[SimulatedVM] = []
        self.faults: list[Fault] = []
        self.files: dict[str, bytes] = {}
        self.round_trips = 0
        self.calls: list[str] = []
        for vm in [SimulatedVM("demovm")] if vms is None else vms:
            self._adopt(vm)

    def __repr__(self) -> str:
        return f"<SimulatedHost {self.name} {self.os.name} {self.locale} vms={len(self.vms)}>"

    def _adopt(self, vm: SimulatedVM) -> SimulatedVM:
        vm.enabled = _seed_enabled(self.os, vm.enabled)
        if vm.windows is None and vm.guest.family == "windows":
            vm.windows = WindowsGuestState.for_guest(vm.name, vm.guest)
        if vm.files is None:
            vm.files = GuestFiles(windows=vm.guest.family == "windows")
        self.vms.append(vm)
        return vm

    def add_vm(
        self,
        name: str,
        *,
        guest: str | GuestOS = "windows-server-2022",
        state: str = "Running",
        id: uuid.UUID | None = None,
        enabled: dict[catalogue.ServiceRef, bool] | None = None,
    ) -> SimulatedVM:
        """Create a VM on this host.

        Args:
            name: Its name; Hyper-V allows duplicates, and so does this.
            guest: A key of :data:`~hvintegration.simulator.GUEST_OSES` or a
                :class:`GuestOS`.
            state: Its power state.
            id: Its id; derived from the name when omitted (pass one to
                create two VMs with one name).
            enabled: Host-side enabled flags that differ from the defaults.

        Returns:
            The new VM.
        """
        if isinstance(guest, str):
            if guest not in GUEST_OSES:
                raise ValueError(f"unknown guest OS {guest!r}; choose from {', '.join(GUEST_OSES)}")
            guest = GUEST_OSES[guest]
        overrides = {}
        for ref, value in (enabled or {}).items():
            component_id = catalogue.resolve(ref).component_id
            if component_id is not None:
                overrides[component_id] = value
        vm = SimulatedVM(name, guest=guest, state=state, enabled=overrides)
        if id is not None:
            vm.id = id
        return self._adopt(vm)

    def vm(self, name: str) -> SimulatedVM:
        """The first VM with this name.

        Raises:
            KeyError: No VM has that name.
        """
        for vm in self.vms:
            if vm.name.casefold() == name.casefold():
                return vm
        raise KeyError(name)

    def add_host_file(self, path: str, data: bytes) -> None:
        """Put a file on the host, as a source for copying into guests.

        Args:
            path: Its path on the host; compared without regard to case.
            data: Its contents.
        """
        self.files[path.casefold()] = data

    def inject_fault(
        self,
        kind: FaultKind | str,
        *,
        operation: str | None = None,
        record: ErrorRecord | None = None,
        times: int = 1,
    ) -> Fault:
        """Make the next matching round trips fail.

        Args:
            kind: A :class:`FaultKind` or its value (``"error"``, ``"hang"``,
                ``"disconnect"``).
            operation: Only this operation; any when ``None``.
            record: For ``error``, the error record the script fails with;
                by default the access-denied record Hyper-V gives a user who
                is not a Hyper-V administrator.
            times: How many round trips it affects.

        Returns:
            The fault, which the caller may inspect or remove from
            :attr:`faults`.
        """
        fault = Fault(FaultKind(kind), operation=operation, record=record, times=times)
        self.faults.append(fault)
        return fault

    def take_fault(self, operation: str) -> Fault | None:
        """Consume one use of the first fault matching ``operation``, if any."""
        for fault in self.faults:
            if fault.operation in (None, operation):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def transport(self) -> SimulatorTransport:
        """A transport that runs operations against this host.

        Returns:
            A :class:`~hvintegration.transport.simulator.SimulatorTransport`;
            pass it to :meth:`hvintegration.HyperVHost.connect`.
        """
        from hvintegration.transport.simulator import SimulatorTransport

        return SimulatorTransport(self)
