"""Helpers for testing code built on hvintegration, and transports.

Everything here works without Hyper-V: a simulated host
(:class:`SimulatedHost`) to point your own tools at, peers that serve it, and
(in :mod:`hvintegration.testing.conformance`, which needs pytest) the
conformance suite every transport passes.

Example:
    >>> import asyncio
    >>> from hvintegration import HyperVHost
    >>> from hvintegration.testing import SimulatedHost
    >>> sim = SimulatedHost()
    >>> async def my_tool(host):
    ...     return [s.name for s in await host.integration_services() if not s.enabled]
    >>> async def main():
    ...     async with HyperVHost.connect(sim) as host:
    ...         return await my_tool(host)
    >>> asyncio.run(main())
    ['Guest Service Interface']
    >>> sim.round_trips
    1
"""

from hvintegration.simulator import (
    GUEST_OSES,
    HOST_OSES,
    LOCALES,
    Fault,
    FaultKind,
    GuestOS,
    HostOS,
    SimulatedHost,
    SimulatedVM,
)
from hvintegration.simulator.linux import DISTROS, SimulatedLinuxGuest
from hvintegration.simulator.state import edit_state, load_host, save_host
from hvintegration.transport.simulator import SimulatorTransport

__all__ = [
    "DISTROS",
    "GUEST_OSES",
    "HOST_OSES",
    "LOCALES",
    "Fault",
    "FaultKind",
    "GuestOS",
    "HostOS",
    "SimulatedHost",
    "SimulatedLinuxGuest",
    "SimulatedVM",
    "SimulatorTransport",
    "edit_state",
    "load_host",
    "save_host",
]
