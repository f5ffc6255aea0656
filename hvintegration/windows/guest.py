"""Windows guests: the Hyper-V guest services (``vmic*``) inside a VM.

Reach a guest directly (any PowerShell transport to it: ``ssh://...?shell=
powershell``, ``psrp://``, ``local://`` inside the guest, ``sim://?guest=VM``)
or through its host with PowerShell Direct (:meth:`WindowsGuest.direct`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, NoReturn

from hvintegration import catalogue
from hvintegration._connect import Connection, PowerShellTargetLike, powershell_transport_for
from hvintegration._decode import Decoder
from hvintegration._host_wire import VMHandle
from hvintegration._resource import DEFAULT_TIMEOUT, TransportResource
from hvintegration._table import RecordList
from hvintegration.errors import UnsafeChangeError
from hvintegration.operations import GET_GUEST_SERVICES, SET_GUEST_SERVICE
from hvintegration.preflight import preflight_guest
from hvintegration.records import PreflightReport
from hvintegration.transport.base import JsonValue, PowerShellTransport
from hvintegration.transport.errormap import error_from_record
from hvintegration.windows.direct import Credential, HostConnection, PowerShellDirectTransport
from hvintegration.windows.records import GuestServiceState

__all__ = ["GuestService", "WindowsGuest"]

_WINDOWS_SERVICES = {spec.windows_service: spec for spec in catalogue.ALL_SERVICES}


def _decode_service(decoder: Decoder, value: JsonValue) -> GuestServiceState:
    obj = decoder.object(value, "a guest service")
    name = decoder.text(obj, "Name", allow_null=False)
    return GuestServiceState(
        computer_name=decoder.text(obj, "ComputerName"),
        name=name,
        service=_WINDOWS_SERVICES.get(name.casefold()),
        present=decoder.flag(obj, "Present"),
        display_name=decoder.text(obj, "DisplayName"),
        status=decoder.text(obj, "Status"),
        start_type=decoder.text(obj, "StartType"),
    )


class WindowsGuest(TransportResource[PowerShellTransport]):
    """A Windows guest and its Hyper-V guest services.

    Args:
        transport: A PowerShell transport to the guest; the guest owns it.
        timeout: Seconds each operation may take.

    Example:
        >>> import asyncio
        >>> from hvintegration.windows import WindowsGuest
        >>> async def main():
        ...     async with WindowsGuest.connect("sim://?guest=demovm") as guest:
        ...         return [(s.name, s.status) for s in await guest.services()][-2:]
        >>> asyncio.run(main())
        [('vmicrdv', 'Running'), ('vmicvmsession', 'Stopped')]
    """

    def __init__(self, transport: PowerShellTransport, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(transport, timeout=timeout)

    if not TYPE_CHECKING:
        # Run time only: a type checker keeps rejecting ``await guest``.

        def __await__(self) -> NoReturn:
            # ``await WindowsGuest.direct(...)``: Python's own message ("can't
            # be used in 'await' expression") does not say what to write.
            raise TypeError(
                "WindowsGuest.direct() and vm.windows() give the guest at once, with nothing "
                "to await: write `guest = WindowsGuest.direct(host, vm, credential)` and "
                "await its calls (`await guest.services()`)"
            )

    @classmethod
    def connect(
        cls, target: PowerShellTargetLike, *, timeout: float = DEFAULT_TIMEOUT
    ) -> Connection[WindowsGuest]:
        """Connect to a guest directly.

        Args:
            target: A URL, target settings or transport reaching the guest.
            timeout: Seconds each operation may take.

        Returns:
            Use with ``async with``, or ``await`` it and call :meth:`aclose`.
        """
        return Connection(cls(powershell_transport_for(target), timeout=timeout))

    @classmethod
    def direct(
        cls,
        host: HostConnection,
        vm: str | uuid.UUID | VMHandle,
        credential: Credential,
        *,
        timeout: float | None = None,
    ) -> WindowsGuest:
        """Reach a guest through its host with PowerShell Direct. No I/O yet.

        Args:
            host: The connected :class:`~hvintegration.HyperVHost`; it stays
                open when the guest closes.
            vm: The VM's name or id, or the
                :class:`~hvintegration.VirtualMachine` from ``host.vm(...)``.
            credential: An account in the guest (an administrator, to change
                services).
            timeout: Seconds per operation; the host's when ``None``.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> from hvintegration.windows import Credential, WindowsGuest
            >>> async def main():
            ...     async with HyperVHost.connect("sim://") as host:
            ...         guest = WindowsGuest.direct(
            ...             host, "demovm", Credential("Administrator", "hvintegration"))
            ...         return (await guest.service("Heartbeat").refresh()).status
            >>> asyncio.run(main())
            'Running'
        """
        transport = PowerShellDirectTransport(host, vm, credential)
        return cls(transport, timeout=host.timeout if timeout is None else timeout)

    async def preflight(self) -> PreflightReport:
        """Check, read-only, that the library can work in this guest. One round trip.

        Reports the session (PowerShell edition, version, language mode),
        whether the account may change services, what PowerShell Direct
        needs in the guest, the transport, and a dry read of the guest
        operations; problems are verdicts in the report, not exceptions.

        Returns:
            The report; ``report.ok`` is False when any check failed.

        Example:
            >>> import asyncio
            >>> from hvintegration.windows import WindowsGuest
            >>> async def main():
            ...     async with WindowsGuest.connect("sim://?guest=demovm") as guest:
            ...         report = await guest.preflight()
            ...     return report.ok, report.check("rights").verdict.value
            >>> asyncio.run(main())
            (True, 'ok')
        """
        return await preflight_guest(self.transport, timeout=self.timeout)

    async def services(self) -> RecordList[GuestServiceState]:
        """Every Hyper-V guest service, as ``Get-Service -Name vm*`` lists them.

        One round trip. A service the guest does not have (older guests lack
        the newer ones) is listed with ``present=False``.
        """
        names = [spec.windows_service for spec in catalogue.ALL_SERVICES]
        return await self._read(names)

    async def _read(self, names: list[str]) -> RecordList[GuestServiceState]:
        result = await self.transport.run_operation(
            GET_GUEST_SERVICES, {"Name": list(names)}, timeout=self.timeout
        )
        if result.errors:
            raise error_from_record(
                result.errors[0], target=self.target, operation=GET_GUEST_SERVICES.name
            )
        decoder = Decoder(self.target, GET_GUEST_SERVICES.name)
        return RecordList(_decode_service(decoder, obj) for obj in result.output)

    def service(self, service: catalogue.ServiceRef) -> GuestService:
        """One guest service by any catalogue name (``vmicvss``, ``VSS``...). No I/O.

        Raises:
            ServiceNotFoundError: The name is unknown; the message lists the
                valid ones.
        """
        return GuestService(self, catalogue.resolve(service))


class GuestService:
    """One ``vmic*`` service in a Windows guest.

    Every action is idempotent and returns the state afterwards. Stopping or
    disabling Heartbeat, Shutdown, Key-Value Pair Exchange or PowerShell
    Direct needs ``force=True``.

    Args:
        guest: The guest.
        spec: The catalogue entry.
    """

    def __init__(self, guest: WindowsGuest, spec: catalogue.ServiceSpec) -> None:
        self.guest = guest
        self.spec = spec

    @property
    def name(self) -> str:
        """The Windows service name, e.g. ``vmicheartbeat``."""
        return self.spec.windows_service

    def __repr__(self) -> str:
        return f"<GuestService {self.name} on {self.guest.target}>"

    async def refresh(self) -> GuestServiceState:
        """Its current state; ``present`` is False when the guest lacks it."""
        states = await self.guest._read([self.name])
        if len(states) != 1:
            raise Decoder(self.guest.target, GET_GUEST_SERVICES.name).fail(
                f"expected one service, got {len(states)}"
            )
        return states[0]

    async def _act(self, action: str, *, risky: bool, force: bool) -> GuestServiceState:
        if risky and self.spec.critical and not force:
            raise UnsafeChangeError(
                [self.spec.name], target=self.guest.target, operation=SET_GUEST_SERVICE.name
            )
        # Leave the transport's timeout room to report a stuck service itself.
        wait = max(1, min(30, int(self.guest.timeout / 2)))
        parameters: Mapping[str, JsonValue] = {
            "Name": self.name,
            "Action": action,
            "WaitSeconds": wait,
        }
        result = await self.guest.transport.run_operation(
            SET_GUEST_SERVICE, parameters, timeout=self.guest.timeout
        )
        if result.errors:
            raise error_from_record(
                result.errors[0],
                target=self.guest.target,
                operation=SET_GUEST_SERVICE.name,
                name=self.name,
            )
        decoder = Decoder(self.guest.target, SET_GUEST_SERVICE.name)
        if len(result.output) != 1:
            raise decoder.fail(f"expected one result, got {len(result.output)}")
        obj = decoder.object(result.output[0], "a service change")
        return _decode_service(decoder, obj.get("Service"))

    async def start(self) -> GuestServiceState:
        """Start it (``Start-Service``); a no-op when running.

        Raises:
            ServiceNotFoundError: The guest does not have this service.
            RemoteCommandError: It is disabled; :meth:`enable` it first.
            PermissionDeniedError: The account is not a guest administrator.
        """
        return await self._act("start", risky=False, force=False)

    async def stop(self, *, force: bool = False) -> GuestServiceState:
        """Stop it (``Stop-Service``); a no-op when stopped.

        Args:
            force: Needed for critical services (see the class docstring).

        Raises:
            UnsafeChangeError: Critical and ``force`` not set; nothing sent.
            OperationTimeoutError: It stayed in StopPending.
        """
        return await self._act("stop", risky=True, force=force)

    async def restart(self) -> GuestServiceState:
        """Stop it if running, then start it (``Restart-Service``)."""
        return await self._act("restart", risky=False, force=False)

    async def enable(self) -> GuestServiceState:
        """Allow it to start: restores the startup type Manual (the trigger-start
        default of the ``vmic*`` services); a no-op unless Disabled."""
        return await self._act("enable", risky=False, force=False)

    async def disable(self, *, force: bool = False) -> GuestServiceState:
        """Set its startup type to Disabled; a no-op when disabled.

        It keeps running until stopped; Hyper-V cannot start it again.

        Args:
            force: Needed for critical services (see the class docstring).
        """
        return await self._act("disable", risky=True, force=force)
