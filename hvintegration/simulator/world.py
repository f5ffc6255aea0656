"""The data of a simulated Hyper-V host: its VMs, files and settings.

These are the only mutable objects in the library, on purpose: they *are* the
fake host that operations change. Each simulated host is independent; there is
no shared state between hosts or between ``sim://`` connections.

The behaviours (:mod:`~hvintegration.simulator.behaviour`,
:mod:`~hvintegration.simulator.windows_behaviour`) read and change a
:class:`HostModel`; :class:`~hvintegration.simulator.SimulatedHost` adds what
makes it a target you connect to.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable

import attrs

from hvintegration import catalogue
from hvintegration.errors import parse_vm_id
from hvintegration.linux.names import match_program
from hvintegration.simulator.faults import SimulatedPeer
from hvintegration.simulator.guest_state import GuestFiles, WindowsGuestState
from hvintegration.simulator.linux_model import LinuxGuestModel
from hvintegration.simulator.profiles import GUEST_OSES, HOST_OSES, LOCALES, GuestOS, HostOS

__all__ = ["HostModel", "SimulatedVM"]

_VM_NAMESPACE = uuid.UUID("1d7c6b2e-8f9a-4e51-9a53-2f5b8c1e7d40")


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
        kvp_host: The host-to-guest KVP items (``HostExchangeItems``); they
            stay while the VM is off.
        kvp_guest: The items the guest published (``GuestExchangeItems``),
            for a guest that is not :attr:`linux`.
        linux: A simulated Linux guest inside this VM (:meth:`HostModel.link_linux`):
            its daemons decide which services answer, host items land in
            its KVP pool 0 and its pool 1 is what the host reads.
        kvp_directory: The folder on this machine that a real Linux guest
            inside the VM sees as ``/var/lib/hyperv``
            (:meth:`HostModel.link_kvp_directory`), or ``None``.
        kvp_failures: KVP method name (``AddKvpItems``...) to how it fails:
            ``(return value, job state, job error code)``; a return value of
            4096 fails in the job.
        ipv4: The addresses the guest reports through KVP; when left empty,
            the host gives the n-th VM it adopts ``192.0.2.(10+n)``
            (RFC 5737's documentation range).
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
    kvp_host: dict[str, str] = attrs.field(factory=dict)
    kvp_guest: dict[str, str] = attrs.field(factory=dict)
    linux: LinuxGuestModel | None = None
    kvp_directory: str | None = None
    kvp_failures: dict[str, tuple[int, int, int]] = attrs.field(factory=dict)
    ipv4: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # Short, and without the guest's accounts and passwords, which the
        # generated repr would have printed (``lab.add_vm()`` echoes it).
        return f"<SimulatedVM {self.name} {self.guest.name} {self.state} id={self.id}>"

    def runs(self, component_id: uuid.UUID) -> bool:
        """Whether the guest side of a service is up.

        The guest OS must provide it, in a Windows guest its ``vmic*``
        service must be running, and in a linked Linux guest the driver must
        be there and, for KVP, VSS and file copy, the daemon must run.
        """
        if self.linux is not None:
            return self._linux_runs(component_id)
        if component_id not in self.guest.services:
            return False
        if self.windows is None:
            return True
        spec = catalogue.by_component_id(component_id)
        if spec is None:
            return True
        service = self.windows.services.get(spec.windows_service)
        return service is not None and service.status == "Running"

    def _linux_runs(self, component_id: uuid.UUID) -> bool:
        guest = self.linux
        assert guest is not None
        if guest.driver == "absent":
            return False
        spec = catalogue.by_component_id(component_id)
        if spec is None or spec.linux is None or not spec.linux.daemons:
            return True  # heartbeat, shutdown, time sync: the driver alone
        for process in guest.processes:
            daemon = match_program(process.program)
            if daemon is not None and daemon.service is spec:
                return True
        return False


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


class HostModel(SimulatedPeer):
    """The data of a simulated Hyper-V host, seeded like the seed document's host.

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
        powercli: VMware PowerCLI is installed too, so an unqualified
            ``Get-VM`` may run PowerCLI's cmdlet, which fails with
            ``Core_BaseCmdlet_NotConnectedError``; the shipped scripts call
            ``Hyper-V\\Get-VM`` and are not affected.
        rights: What the account may do: ``administrator`` (elevated),
            ``hyperv-administrators`` (a member of Hyper-V Administrators),
            or ``none``, whom Hyper-V refuses with an access-denied error.
        hyperv_module: Whether the Hyper-V PowerShell module is installed.
        language_mode: The session's language mode; anything but
            ``FullLanguage`` refuses every operation, as the prelude does.
        edition: ``Desktop`` (Windows PowerShell 5.1) or ``Core``
            (PowerShell 7), which has no native Hyper-V module before
            Windows build 17763 (``os="windows-server-2016"`` is 14393).

    Example:
        >>> host = HostModel()
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
        powercli: bool = False,
        rights: str = "administrator",
        hyperv_module: bool = True,
        language_mode: str = "FullLanguage",
        edition: str = "Desktop",
    ) -> None:
        if isinstance(os, str):
            if os not in HOST_OSES:
                raise ValueError(f"unknown host OS {os!r}; choose from {', '.join(HOST_OSES)}")
            os = HOST_OSES[os]
        if locale not in LOCALES:
            raise ValueError(f"unknown locale {locale!r}; choose from {', '.join(LOCALES)}")
        super().__init__(latency=latency)
        self.name = name
        self.os = os
        self.locale = locale
        self.vms: list[SimulatedVM] = []
        self.files: dict[str, bytes] = {}
        self.powercli = powercli
        self.rights = rights
        self.hyperv_module = hyperv_module
        self.language_mode = language_mode
        self.edition = edition
        for vm in [SimulatedVM("demovm")] if vms is None else vms:
            self._adopt(vm)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name} {self.os.name} {self.locale} vms={len(self.vms)}>"
        )

    def _adopt(self, vm: SimulatedVM) -> SimulatedVM:
        if not vm.ipv4:
            vm.ipv4 = (f"192.0.2.{10 + len(self.vms) % 240}",)
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

    def link_linux(self, vm: str | uuid.UUID, guest: LinuxGuestModel) -> SimulatedVM:
        """Put a simulated Linux guest inside a VM of this host.

        From then on the host's statuses and KVP follow the guest: a service
        answers when its daemon runs there, items the host sets appear in the
        guest's KVP pool 0 (where ``hv_kvp_daemon`` keeps what the host
        sends), and what the guest writes to pool 1 is what the host reads as
        the guest's items.

        Args:
            vm: The VM's name or id (see :meth:`vm`).
            guest: The guest, e.g. a
                :class:`~hvintegration.simulator.linux.SimulatedLinuxGuest`.

        Returns:
            The VM.

        Raises:
            KeyError: No VM has that name or id.
        """
        machine = self.vm(vm)
        machine.linux = guest
        return machine

    def link_kvp_directory(
        self, vm: str | uuid.UUID, directory: str | os.PathLike[str]
    ) -> SimulatedVM:
        """Connect a VM's KVP to a real Linux guest's pool files.

        ``directory`` is the folder that guest sees as ``/var/lib/hyperv``
        (the guest sandbox's ``kvp_dir``, for one). Items the host sets are
        written to its ``.kvp_pool_0`` and the guest's items are read from
        its ``.kvp_pool_1``, each under the ``fcntl`` lock ``hv_kvp_daemon``
        takes, and only once the daemon has created the files (it creates
        all five when it starts). POSIX only.

        Args:
            vm: The VM's name or id (see :meth:`vm`).
            directory: The pool folder.

        Returns:
            The VM.

        Raises:
            KeyError: No VM has that name or id.
        """
        machine = self.vm(vm)
        machine.kvp_directory = os.fspath(directory)
        return machine

    def vm(self, name: str | uuid.UUID) -> SimulatedVM:
        """The VM with this id, or the first VM with this name.

        Args:
            name: The VM's id (a :class:`uuid.UUID`, or text in GUID form,
                braces or not, as the host reads it) or its name (without
                case). A VM that shares its name with another is reached by
                its id.

        Raises:
            KeyError: No VM has that id or name.
        """
        vm_id = name if isinstance(name, uuid.UUID) else parse_vm_id(name)
        for vm in self.vms:
            if vm_id is not None and vm.id == vm_id:
                return vm
            if vm_id is None and vm.name.casefold() == str(name).strip().casefold():
                return vm
        raise KeyError(name)

    def add_host_file(self, path: str, data: bytes) -> None:
        """Put a file on the host, as a source for copying into guests.

        Args:
            path: Its path on the host; compared without regard to case.
            data: Its contents.
        """
        self.files[path.casefold()] = data
