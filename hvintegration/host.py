"""The Hyper-V host side: VMs and their integration services.

``HyperVHost`` -> ``VirtualMachine`` -> ``IntegrationService``: resource
objects that act, returning immutable records (:mod:`hvintegration.records`).
Resource objects hold no cached state; every read goes to the host.

Every batch is one round trip: reading the services of one VM, of several, or
of every VM on the host is one operation, and so is applying a desired state
to one VM or to many.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Union

from hvintegration import catalogue
from hvintegration._connect import Connection, PowerShellTargetLike, powershell_transport_for
from hvintegration._decode import Decoder
from hvintegration._host_wire import (
    DesiredState,
    VMHandle,
    VMKey,
    change_parameters,
    plan_changes,
    raise_partial,
    read_changes,
    read_file_copy,
    vm_key,
    wire_ref,
)
from hvintegration._resource import DEFAULT_TIMEOUT, TransportResource
from hvintegration._table import RecordList
from hvintegration.diagnosis import GuestConnection, diagnose_vm
from hvintegration.diagnosis_records import Diagnosis
from hvintegration.errors import (
    HvIntegrationError,
    ServiceNotFoundError,
    VMNotFoundError,
    parse_vm_id,
)
from hvintegration.host_kvp import HostKvpMethods, Runner, VMKvpMethods
from hvintegration.operations import (
    COPY_VM_FILE,
    GET_INTEGRATION_SERVICES,
    LIST_VMS,
    SET_INTEGRATION_SERVICES,
    Operation,
)
from hvintegration.preflight import preflight_host
from hvintegration.records import (
    ApplyResult,
    FileCopy,
    IntegrationServiceState,
    PreflightReport,
    VMSummary,
)
from hvintegration.transport import PowerShellTransport
from hvintegration.transport.base import ErrorRecord, JsonValue, OperationResult
from hvintegration.transport.errormap import error_from_record
from hvintegration.windows.direct import Credential
from hvintegration.windows.guest import WindowsGuest

__all__ = [
    "DEFAULT_TIMEOUT",
    "DesiredState",
    "DesiredStates",
    "HyperVHost",
    "IntegrationService",
    "VMRef",
    "VirtualMachine",
]


VMRef = Union[str, uuid.UUID, "VirtualMachine"]
"""A VM named by its name, its id (a :class:`uuid.UUID` or a GUID string, with
or without braces, any case), or a :class:`VirtualMachine`. A GUID string is
always an id, even where a VM is named like one: reach that VM by its own id."""

DesiredStates = Union[
    Mapping[str, DesiredState],
    Mapping[uuid.UUID, DesiredState],
    Mapping[Union[str, uuid.UUID], DesiredState],
    Mapping[VMRef, DesiredState],
]
"""Per VM, a :data:`DesiredState`, as :meth:`HyperVHost.apply` takes it."""


def _ref_key(ref: VMRef) -> VMKey:
    if isinstance(ref, VirtualMachine):
        return ref.ref
    return vm_key(ref)


def _ref_keys(vms: Iterable[VMRef]) -> list[VMKey]:
    """The keys of several VMs, refusing one VM where several are expected.

    Raises:
        TypeError: ``vms`` is one name, id or VM rather than a list of them
            (a str would otherwise be read one character per VM).
    """
    if isinstance(vms, (str, bytes, uuid.UUID, VirtualMachine)):
        raise TypeError(
            f"vms is a list of VMs (names, ids or VirtualMachine objects), not one "
            f"{type(vms).__name__}: pass [{vms!r}]"
        )
    return [_ref_key(vm) for vm in vms]


class HyperVHost(TransportResource[PowerShellTransport], HostKvpMethods):
    """A Hyper-V host reached through a transport.

    Open one with :meth:`connect`, as an async context manager or, in a
    notebook, with ``await``.

    Args:
        transport: The live transport; the host owns it and closes it.
        timeout: Seconds each operation may take.

    Example:
        >>> import asyncio
        >>> from hvintegration import HyperVHost
        >>> async def main():
        ...     async with HyperVHost.connect("sim://") as host:
        ...         services = await host.vm("demovm").integration_services()
        ...         return [(s.name, s.enabled) for s in services][:2]
        >>> asyncio.run(main())
        [('Guest Service Interface', False), ('Heartbeat', True)]
    """

    def __init__(self, transport: PowerShellTransport, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(transport, timeout=timeout)

    @classmethod
    def connect(
        cls,
        target: PowerShellTargetLike,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Connection[HyperVHost]:
        """Connect to a host.

        Args:
            target: A URL (``sim://``, or the scheme of an installed
                transport), target settings, a transport, or a
                :class:`~hvintegration.simulator.SimulatedHost`.
            timeout: Seconds each operation may take.

        Returns:
            Use with ``async with`` (closes on exit) or ``await`` it for a
            host you close yourself with :meth:`aclose`.

        Raises:
            InvalidTargetError: The URL is malformed or names no transport.
        """
        return Connection(cls(powershell_transport_for(target), timeout=timeout))

    async def _run(
        self, operation: Operation, parameters: Mapping[str, JsonValue]
    ) -> OperationResult:
        return await self.transport.run_operation(operation, parameters, timeout=self.timeout)

    def _kvp_runner(self) -> tuple[Runner, str]:
        return self._run, self.target

    def _kvp_refs(self, vms: Iterable[VMRef]) -> list[VMKey]:
        return _ref_keys(vms)

    def _error(
        self, record: ErrorRecord, operation: Operation, name: str | None = None
    ) -> HvIntegrationError:
        return error_from_record(record, target=self.target, operation=operation.name, name=name)

    async def _explained(self, error: VMNotFoundError) -> VMNotFoundError:
        """The error for an id no VM has, given the own id of a VM *named*
        like it (one more read, only then): text in GUID form is an id."""
        vm_id = parse_vm_id(error.name)
        if vm_id is None or error.own_ids:
            return error
        if not any(parse_vm_id(choice) == vm_id for choice in error.choices):
            return error
        try:
            vms = await self.list_vms()
        except HvIntegrationError:
            return error
        own = [str(vm.id) for vm in vms if parse_vm_id(vm.name) == vm_id]
        if not own:
            return error
        explained = VMNotFoundError(
            error.name,
            choices=error.choices,
            own_ids=own,
            target=error.target,
            operation=error.operation,
        )
        explained.__cause__ = error.__cause__
        return explained

    async def preflight(self) -> PreflightReport:
        """Check, read-only, that the library can work on this host. One round trip.

        Reports the session (PowerShell edition, version, language mode),
        the rights of the account, the Hyper-V module and which command a
        plain ``Get-VM`` runs, what PowerShell Direct needs, the transport's
        settings, and a dry read of every host operation. A problem is a
        verdict in the report, not an exception: see
        :class:`~hvintegration.preflight.PreflightReport`.

        Returns:
            The report; ``report.ok`` is False when any check failed.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://?hyperv=0") as host:
            ...         report = await host.preflight()
            ...     return report.ok, [check.name for check in report.failed]
            >>> asyncio.run(main())
            (False, ['hyperv-module'])
        """
        return await preflight_host(self.transport, timeout=self.timeout)

    def vm(self, ref: str | uuid.UUID) -> VirtualMachine:
        """A VM by name or id. No I/O: a missing VM is reported when used.

        Args:
            ref: The VM name (exact, case-insensitive, never a wildcard) or
                its id, as a :class:`uuid.UUID` or as text
                (``"6f1a2b3c-..."`` or ``"{6F1A2B3C-...}"``). Text in that
                form is always the id, never a name (see :data:`VMRef`).

        Raises:
            ValueError: The name is empty.
            TypeError: ``ref`` is not text or a UUID.

        Returns:
            The VM resource.
        """
        key = _ref_key(ref)
        return VirtualMachine(self, key)

    async def list_vms(self) -> RecordList[VMSummary]:
        """Every VM on the host, as ``Get-VM`` lists them. One round trip.

        Returns:
            The VM summaries.
        """
        result = await self._run(LIST_VMS, {"VM": None})
        if result.errors:
            raise self._error(result.errors[0], LIST_VMS)
        decoder = Decoder(self.target, LIST_VMS.name)
        return RecordList(decoder.vm_summary(obj) for obj in result.output)

    async def integration_services(
        self, vms: Iterable[VMRef] | None = None
    ) -> RecordList[IntegrationServiceState]:
        """The integration services of several VMs, or of all, in one round trip.

        Args:
            vms: The VMs to read; every VM on the host when ``None``.

        Returns:
            One record per service per VM, grouped by VM in host order; a VM
            named twice (by name and by id, say) is listed once.

        Raises:
            VMNotFoundError: The one VM asked for does not exist.
            BatchError: Some of several VMs could not be read; its
                ``result`` holds the services of the others.
            TypeError: ``vms`` is one VM (a str, say), not a list of them.
        """
        refs = None if vms is None else _ref_keys(vms)
        parameters: dict[str, JsonValue] = {
            "VM": None if refs is None else [wire_ref(ref) for ref in refs]
        }
        result = await self._run(GET_INTEGRATION_SERVICES, parameters)
        decoder = Decoder(self.target, GET_INTEGRATION_SERVICES.name)
        # A VM named twice is read twice; its services are listed once,
        # where it first appears.
        seen: set[tuple[object, ...]] = set()
        kept = []
        for obj in result.output:
            state = decoder.service_state(obj)
            key = (state.vm_id, state.component_id, state.name)
            if key not in seen:
                seen.add(key)
                kept.append(state)
        states = RecordList(kept)
        errors = {
            str(record.target_object): self._error(record, GET_INTEGRATION_SERVICES)
            for record in result.errors
        }
        try:
            raise_partial(
                errors, states, "could not read every VM", self.target, GET_INTEGRATION_SERVICES
            )
        except VMNotFoundError as exc:
            raise await self._explained(exc) from None
        return states

    async def apply(self, desired: DesiredStates, *, force: bool = False) -> ApplyResult:
        """Bring several VMs' services to a desired state in one round trip.

        Only what differs changes; a service already as requested is left
        alone and reported as unchanged.

        Args:
            desired: Per VM, a mapping of service to enabled flag, e.g.
                ``{"demovm": {"Guest Service Interface": True}}``. A service
                is any name the catalogue knows, or the name a localised
                host prints (``{"demovm": {"Gastdienstschnittstelle": True}}``):
                such names are looked up in one extra read of those VMs'
                services and matched through the component GUIDs the host
                reports, so they work whatever the host's language.
            force: Allow turning off Heartbeat, Shutdown or Key-Value Pair
                Exchange, which the host needs to manage the VM. Without it,
                asking for any of them off raises before anything is sent.

        Returns:
            One :class:`~hvintegration.records.ServiceChange` per requested
            service, in request order.

        Raises:
            ServiceNotFoundError: A service name is guest-only (raised
                before anything is sent), matches neither the catalogue nor
                the host's own names (after the one read that looks them
                up; the message lists both), or the one VM lacks it.
            UnsafeChangeError: A critical service would be turned off and
                ``force`` is not set; nothing was sent.
            VMNotFoundError: The one VM named does not exist.
            BatchError: Some changes failed; the others were made and are in
                its ``result``.
            ValueError: The same service of one VM is named twice (also
                through two spellings of the VM's name).
        """
        plan = [(_ref_key(ref), services) for ref, services in desired.items()]
        translated = await self._translate(plan)
        # One VM named by its name and by its id in one request: the host
        # must not get two changes to one service of it. Which names are
        # which ids is read (one round trip) only when both kinds appear.
        ids: dict[str, uuid.UUID] = {}
        if len({type(key) for key, _ in plan}) > 1:
            ids = await self._ids_by_name()
        items = plan_changes(translated, force=force, target=self.target, ids=ids)
        if not items:
            return ApplyResult(())
        result = await self._run(SET_INTEGRATION_SERVICES, change_parameters(items))
        return read_changes(result, items, target=self.target)

    async def _ids_by_name(self) -> dict[str, uuid.UUID]:
        """Each VM name (case-folded) that names one VM, to that VM's id."""
        ids: dict[str, uuid.UUID] = {}
        shared: set[str] = set()
        for summary in await self.list_vms():
            name = summary.name.casefold()
            if name in ids:
                shared.add(name)
            ids[name] = summary.id
        return {name: vm_id for name, vm_id in ids.items() if name not in shared}

    async def _translate(
        self, plan: list[tuple[VMKey, DesiredState]]
    ) -> list[tuple[VMKey, DesiredState]]:
        """Replace service names only the host knows (its own display
        names) by catalogue entries, reading the VMs concerned once.

        A VM of the plan that cannot be read (it does not exist, say) does
        not stop the others: the host prints the same names for every VM,
        so its names are translated through the others' and its changes
        fail one by one in the batch, as with catalogue names. Only a name
        no VM that could be read prints is refused here, with that VM's
        own error when it could not be read."""
        foreign = [
            vm
            for vm, services in plan
            if any(catalogue.lookup_host(service) is None for service in services)
        ]
        if not foreign:
            return plan
        result = await self._run(
            GET_INTEGRATION_SERVICES, {"VM": [wire_ref(ref) for ref in foreign]}
        )
        decoder = Decoder(self.target, GET_INTEGRATION_SERVICES.name)
        names = self._names_of(decoder.service_state(obj) for obj in result.output)
        unread = {
            str(record.target_object).casefold(): self._error(record, GET_INTEGRATION_SERVICES)
            for record in result.errors
        }
        translated: list[tuple[VMKey, DesiredState]] = []
        for vm, services in plan:
            mapped: dict[catalogue.ServiceRef, bool] = {}
            for service, enabled in services.items():
                if catalogue.lookup_host(service) is not None:
                    mapped[service] = enabled
                    continue
                failure = unread.get(str(vm).casefold())
                try:
                    mapped[self._by_display_name(str(service), names)] = enabled
                except ServiceNotFoundError:
                    if failure is not None:
                        raise failure from None
                    raise
            translated.append((vm, mapped))
        return translated

    @staticmethod
    def _names_of(states: Iterable[IntegrationServiceState]) -> dict[str, catalogue.ServiceSpec]:
        return {
            state.name: state.service
            for state in states
            if state.service is not None and state.service.component_id is not None
        }

    async def display_names(
        self, vms: Iterable[VMRef] | None = None
    ) -> dict[str, catalogue.ServiceSpec]:
        """The host's own name of each integration service, as it prints them. One round trip.

        A host names services in its display language
        (``Gastdienstschnittstelle`` on a German host, ``客體服務介面`` on a
        Traditional Chinese one); each name is matched to the catalogue
        through the component GUID the host reports with it (the ``Id``
        suffix), never by translating text.

        Args:
            vms: The VMs whose services to read; every VM when ``None``.

        Returns:
            Display name to catalogue entry, in the host's spelling.

        Raises:
            VMNotFoundError: The one VM asked for does not exist.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://?locale=de-DE") as host:
            ...         return (await host.display_names())["Takt"].name
            >>> asyncio.run(main())
            'Heartbeat'
        """
        return self._names_of(await self.integration_services(vms))

    def _by_display_name(
        self, name: str, names: Mapping[str, catalogue.ServiceSpec]
    ) -> catalogue.ServiceSpec:
        # Folded as the catalogue folds names: a decomposed accent, a
        # full-width slash or an ideographic space match the host's spelling.
        wanted = catalogue.fold_name(name)
        for shown, spec in names.items():
            if catalogue.fold_name(shown) == wanted:
                return spec
        english = [service.name for service in catalogue.HOST_SERVICES]
        raise ServiceNotFoundError(
            name,
            choices=[*english, *sorted(set(names) - set(english))],
            target=self.target,
            operation=SET_INTEGRATION_SERVICES.name,
        )


class VirtualMachine(VMKvpMethods, VMHandle):
    """One VM on a host. It holds no state: every method reads the host.

    Args:
        host: The host.
        ref: The VM's name or id.

    Example:
        >>> import asyncio
        >>> from hvintegration import HyperVHost
        >>> async def main():
        ...     async with HyperVHost.connect("sim://") as host:
        ...         vm = host.vm("demovm")
        ...         result = await vm.apply({"Guest Service Interface": True, "VSS": True})
        ...         return [(c.state.name, c.changed) for c in result.items]
        >>> asyncio.run(main())
        [('Guest Service Interface', True), ('VSS', False)]
    """

    def __init__(self, host: HyperVHost, ref: VMKey) -> None:
        self.host = host
        self.ref = ref

    def __repr__(self) -> str:
        return f"<VirtualMachine {self.ref} on {self.host.target}>"

    def _kvp_target(self) -> tuple[Runner, str, VMKey]:
        return self.host._run, self.host.target, self.ref

    def _kvp_timeout(self) -> float:
        return self.host.timeout

    async def summary(self) -> VMSummary:
        """The VM as ``Get-VM`` shows it. One round trip.

        Raises:
            VMNotFoundError: No such VM.
            AmbiguousVMError: Several VMs have this name.
        """
        result = await self.host._run(LIST_VMS, {"VM": [wire_ref(self.ref)]})
        if result.errors:
            error = self.host._error(result.errors[0], LIST_VMS, name=str(self.ref))
            if isinstance(error, VMNotFoundError):
                error = await self.host._explained(error)
            raise error
        decoder = Decoder(self.host.target, LIST_VMS.name)
        if len(result.output) != 1:
            raise decoder.fail(f"expected one VM, got {len(result.output)}")
        return decoder.vm_summary(result.output[0])

    async def integration_services(self) -> RecordList[IntegrationServiceState]:
        """Every integration service of this VM, as ``Get-VMIntegrationService``. One round trip.

        Raises:
            VMNotFoundError: No such VM.
            AmbiguousVMError: Several VMs have this name.
        """
        return await self.host.integration_services([self.ref])

    def integration_service(self, service: catalogue.ServiceRef) -> IntegrationService:
        """One integration service of this VM. No I/O.

        Args:
            service: Any name the catalogue knows, its GUID or its constant.
                For a name as a localised host prints it, use
                ``await vm.resolve_service(name)`` first (or :meth:`apply`,
                which takes such names).

        Raises:
            ServiceNotFoundError: The name is unknown (the message lists the
                valid ones) or the service has no host-side switch.
        """
        try:
            spec = catalogue.resolve_host(service)
        except ServiceNotFoundError as exc:
            if exc.message.startswith("unknown"):
                # Perhaps a name the host prints in its own language: only
                # the host can translate it, which this method (no I/O)
                # does not ask.
                exc.message += (
                    "; a name as a localised host prints it is resolved by "
                    f"'await vm.resolve_service({service!r})'"
                )
            raise
        return IntegrationService(self, spec)

    async def resolve_service(self, service: catalogue.ServiceRef) -> catalogue.ServiceSpec:
        """The catalogue entry of a service by any name, the host's own included.

        A name the catalogue knows needs no I/O; any other name is looked up
        among the names this VM's host prints (see
        :meth:`HyperVHost.display_names`), one round trip. Pass the result
        to :meth:`integration_service`.

        Raises:
            ServiceNotFoundError: Neither the catalogue nor the host knows
                the name (the message lists both kinds), or it names a
                guest-only service.
            VMNotFoundError: No such VM.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://?locale=zh-TW") as host:
            ...         vm = host.vm("demovm")
            ...         spec = await vm.resolve_service("客體服務介面")
            ...         state = await vm.integration_service(spec).enable()
            ...     return spec.name, state.name, state.enabled
            >>> asyncio.run(main())
            ('Guest Service Interface', '客體服務介面', True)
        """
        known = catalogue.lookup_host(service)
        if known is not None:
            return known
        names = await self.host.display_names([self.ref])
        return self.host._by_display_name(str(service), names)

    async def copy_file(
        self,
        source: str,
        destination: str,
        *,
        create_full_path: bool = False,
        overwrite: bool = False,
    ) -> FileCopy:
        """Copy a file from the host into the running guest (``Copy-VMFile -FileSource Host``).

        Needs Guest Service Interface enabled for the VM on the host and its
        guest side running (``vmicguestinterface`` in Windows,
        ``hv_fcopy_daemon`` or ``hv_fcopy_uio_daemon`` in Linux).

        Args:
            source: The file's path **on the Hyper-V host**.
            destination: The absolute path in the guest.
            create_full_path: Create missing folders of ``destination``.
            overwrite: Replace a file that exists at ``destination``.

        Returns:
            What was copied.

        Raises:
            FileCopyUnavailableError: Guest Service Interface is off on the
                host (``side == "host"``) or its guest side does not answer
                (``side == "guest"``); the message says how to turn it on.
            VMNotRunningError: The VM is not running.
            DestinationExistsError: The destination exists and ``overwrite``
                is not set.
            NotFoundError: The host has no such source file.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> from hvintegration.simulator import SimulatedHost
            >>> lab = SimulatedHost()
            >>> lab.add_host_file("C:\\\\tools\\\\agent.msi", b"0" * 1024)
            >>> async def main():
            ...     async with HyperVHost.connect(lab) as host:
            ...         vm = host.vm("demovm")
            ...         await vm.integration_service("Guest Service Interface").enable()
            ...         source, destination = "C:\\\\tools\\\\agent.msi", "C:\\\\Temp\\\\agent.msi"
            ...         done = await vm.copy_file(source, destination)
            ...         return done.size
            >>> asyncio.run(main())
            1024
        """
        if not source or not destination:
            raise ValueError("source and destination must not be empty")
        result = await self.host._run(
            COPY_VM_FILE,
            {
                "VM": wire_ref(self.ref),
                "SourcePath": source,
                "DestinationPath": destination,
                "CreateFullPath": create_full_path,
                "Overwrite": overwrite,
            },
        )
        return read_file_copy(result, target=self.host.target, vm=self.ref)

    def windows(self, credential: Credential) -> WindowsGuest:
        """The Windows guest inside this VM, through PowerShell Direct. No I/O.

        Args:
            credential: An account in the guest.

        Returns:
            The guest; closing it leaves the host open.
        """
        return WindowsGuest.direct(self.host, self.ref, credential)

    async def diagnose(
        self,
        guest: GuestConnection | None = None,
        *,
        host_os: str | None = None,
        guest_os: str | None = None,
    ) -> Diagnosis:
        """One verdict per integration service, from the host and (given one) the guest.

        See :mod:`hvintegration.diagnosis` for the verdicts and the rules.

        Args:
            guest: A connected WindowsGuest or LinuxGuest inside this VM, or
                ``None`` to decide from the host's statuses alone.
            host_os: The host's release, for the update path of a protocol
                mismatch.
            guest_os: The guest's OS; by default what the guest publishes
                through Key-Value Pair Exchange.

        Returns:
            The :class:`~hvintegration.diagnosis_records.Diagnosis`; a guest
            that cannot be read gives ``unknown`` verdicts with its error.

        Raises:
            VMNotFoundError: No such VM.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://") as host:
            ...         diagnosis = await host.vm("demovm").diagnose()
            ...     return [(d.service.name, d.verdict.value) for d in diagnosis.problems]
            >>> asyncio.run(main())
            [('Guest Service Interface', 'disabled on host')]
        """
        if isinstance(guest, Connection):
            # ``guest=LinuxGuest.connect(url)``, not yet opened.
            cls = type(guest._resource).__name__
            raise TypeError(
                f"guest is a {cls}.connect() connection that is not open: pass the guest it "
                f"opens, `guest = await {cls}.connect(url)` (or `async with "
                f"{cls}.connect(url) as guest:`)"
            )
        return await diagnose_vm(self, guest, host_os=host_os, guest_os=guest_os)

    async def apply(self, desired: DesiredState, *, force: bool = False) -> ApplyResult:
        """Bring this VM's services to a desired state in one round trip.

        Args:
            desired: Service to enabled flag, e.g. ``{"VSS": False}``.
            force: Allow turning off a service the host needs to manage the
                VM (see :meth:`HyperVHost.apply`).

        Returns:
            What was changed and what already was as requested.
        """
        return await self.host.apply({self.ref: desired}, force=force)


class IntegrationService:
    """One integration service of one VM, by its locale-free identity.

    Args:
        vm: The VM.
        spec: The catalogue entry.
    """

    def __init__(self, vm: VirtualMachine, spec: catalogue.ServiceSpec) -> None:
        self.vm = vm
        self.spec = spec

    def __repr__(self) -> str:
        return f"<IntegrationService {self.spec.name} of {self.vm.ref} on {self.vm.host.target}>"

    async def _set(self, enabled: bool, force: bool = False) -> IntegrationServiceState:
        result = await self.vm.apply({self.spec: enabled}, force=force)
        return result.items[0].state

    async def enable(self) -> IntegrationServiceState:
        """Enable it on the host (``Enable-VMIntegrationService``); a no-op when enabled.

        Returns:
            The state afterwards.
        """
        return await self._set(True)

    async def disable(self, *, force: bool = False) -> IntegrationServiceState:
        """Disable it on the host (``Disable-VMIntegrationService``); a no-op when disabled.

        Args:
            force: Needed for Heartbeat, Shutdown and Key-Value Pair
                Exchange, without which the host cannot manage the VM well.

        Returns:
            The state afterwards.

        Raises:
            UnsafeChangeError: The service is critical and ``force`` is not set.
        """
        return await self._set(False, force)

    async def refresh(self) -> IntegrationServiceState:
        """Read its current state. One round trip.

        Raises:
            ServiceNotFoundError: The host does not offer this service.
        """
        for state in await self.vm.integration_services():
            if state.component_id == self.spec.component_id:
                return state
        raise ServiceNotFoundError(
            self.spec.name,
            reason=f"the VM {self.vm.ref} has no {self.spec.name} integration service",
            target=self.vm.host.target,
            operation=GET_INTEGRATION_SERVICES.name,
        )
