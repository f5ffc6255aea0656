"""The ``sim://`` transport: PowerShell operations answered in process.

A thin adapter: every call goes to a :class:`SimulatedPowerShellPeer`, an
object in this process that answers operations the way a real host or
Windows guest would (the simulator's hosts, in
:mod:`hvintegration.simulator`). The peer keeps the wire contract itself:
parameters and results make a JSON round trip, each call is one counted
round trip, and latency, hangs, errors and disconnects behave as on a wire.
This module knows nothing of the simulator, so the transport layer never
imports it; the ``sim://`` URL is parsed by
:class:`hvintegration.simulator.targets.SimulatorTarget`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from hvintegration.transport.base import JsonValue, OperationResult, PowerShellTransport

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = ["SimulatedPowerShellPeer", "SimulatorTransport"]


class SimulatedPowerShellPeer(Protocol):
    """Something in this process that answers PowerShell operations."""

    @property
    def url(self) -> str:
        """The peer as a URL, for messages."""

    async def answer_operation(
        self, operation: Operation, parameters: Mapping[str, JsonValue]
    ) -> OperationResult:
        """Answer one operation, or raise the error the wire would give."""


class SimulatorTransport(PowerShellTransport):
    """Runs operations against one in-process peer, such as a simulated host.

    Args:
        peer: What answers; usually you get this transport from
            :meth:`hvintegration.simulator.SimulatedHost.open`.

    Example:
        >>> import asyncio
        >>> from hvintegration.simulator import SimulatedHost
        >>> from hvintegration.operations import LIST_VMS
        >>> sim = SimulatedHost()
        >>> async def main():
        ...     async with sim.open() as transport:
        ...         result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=5)
        ...     return [vm["Name"] for vm in result.output]
        >>> asyncio.run(main())
        ['demovm']
        >>> sim.round_trips
        1
    """

    def __init__(self, peer: SimulatedPowerShellPeer) -> None:
        self.peer = peer

    @property
    def target(self) -> str:
        """The peer's URL, e.g. ``sim://HV01``."""
        return self.peer.url

    async def _run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        # Refused as a wire would refuse it, before the peer sees anything.
        return await self.peer.answer_operation(operation, parameters)

    async def _aclose(self) -> None:
        """Nothing to release; the peer lives on."""
