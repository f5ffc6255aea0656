"""The simulated Hyper-V host as a target, and the inside of its VMs.

A :class:`SimulatedHost` *is* a target: it has a ``url`` and ``open()``
returns a transport whose calls it answers, so
``HyperVHost.connect(SimulatedHost())`` needs no special case anywhere.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hvintegration.simulator.engine import deliver_operation, run_simulated_call
from hvintegration.simulator.faults import Fault, FaultKind
from hvintegration.simulator.world import HostModel, SimulatedVM
from hvintegration.transport.simulator import SimulatorTransport

if TYPE_CHECKING:
    from hvintegration.operations import Operation
    from hvintegration.transport.base import JsonValue, OperationResult

__all__ = ["Fault", "FaultKind", "InsideVM", "SimulatedHost", "SimulatedVM"]


class SimulatedHost(HostModel):
    """A simulated Hyper-V host, seeded like the seed document's host.

    By default it runs Windows Server 2022 in ``en-US`` with one VM,
    ``demovm``, whose Guest Service Interface is disabled and whose other five
    services are enabled and healthy. Pass it wherever a target goes
    (:meth:`hvintegration.HyperVHost.connect`); :meth:`inside` is the target
    for a Windows guest reached straight, as ``sim://?guest=VM`` is.

    Args:
        name: The host's computer name.
        os: A key of :data:`~hvintegration.simulator.HOST_OSES` or a
            :class:`~hvintegration.simulator.HostOS`.
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
        >>> host.url
        'sim://HV01'
    """

    @property
    def url(self) -> str:
        """``sim://NAME``: names the host in messages."""
        return f"sim://{self.name}"

    def open(self) -> SimulatorTransport:
        """A transport whose operations this host answers.

        Returns:
            A :class:`~hvintegration.transport.simulator.SimulatorTransport`.
        """
        return SimulatorTransport(self)

    def inside(self, vm: str) -> InsideVM:
        """The inside of one VM, as a target: a Windows guest reached straight.

        Args:
            vm: The VM's name or id; checked on each call, as a connection
                to a guest that is not there fails then.
        """
        return InsideVM(self, vm)

    async def answer_operation(
        self, operation: Operation, parameters: Mapping[str, JsonValue]
    ) -> OperationResult:
        """Answer one operation sent to this host (see
        :func:`~hvintegration.simulator.engine.deliver_operation`)."""
        return await deliver_operation(
            operation,
            parameters,
            lambda name, sent: run_simulated_call(self, name, sent),
            target=self.url,
        )


class InsideVM:
    """The inside of one simulated VM, as a target.

    What a connection straight to a Windows guest reaches: guest operations
    run there, host operations fail as they would without the Hyper-V
    module. Round trips and faults count on the host.

    Args:
        host: The host of the VM.
        vm: The VM's name or id.

    Example:
        >>> import asyncio
        >>> from hvintegration.windows import WindowsGuest
        >>> lab = SimulatedHost()
        >>> async def main():
        ...     async with WindowsGuest.connect(lab.inside("demovm")) as guest:
        ...         return (await guest.service("vmicheartbeat").refresh()).status
        >>> asyncio.run(main())
        'Running'
    """

    def __init__(self, host: SimulatedHost, vm: str) -> None:
        self.host = host
        self.vm = vm

    def __repr__(self) -> str:
        return f"<InsideVM {self.url}>"

    @property
    def url(self) -> str:
        """``sim://HOST?guest=VM``."""
        return f"{self.host.url}?{urllib.parse.urlencode({'guest': self.vm})}"

    def open(self) -> SimulatorTransport:
        """A transport whose operations run inside the VM."""
        return SimulatorTransport(self)

    async def answer_operation(
        self, operation: Operation, parameters: Mapping[str, JsonValue]
    ) -> OperationResult:
        """Answer one operation sent into the VM."""
        return await deliver_operation(
            operation,
            parameters,
            lambda name, sent: run_simulated_call(self.host, name, sent, guest=self.vm),
            target=self.url,
        )
