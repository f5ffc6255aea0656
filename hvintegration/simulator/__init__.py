"""A simulated Hyper-V world, shipped with the library (like moto for AWS).

Explore the API in a notebook, or test your own tools, with no Hyper-V: a
:class:`SimulatedHost` holds VMs whose integration services behave as Hyper-V
documents them (see the comments in :mod:`hvintegration.simulator.behaviour`).
Connect to a fresh default host with the URL ``sim://``, or build one and pass
it to :meth:`hvintegration.HyperVHost.connect`.

Example:
    >>> import asyncio
    >>> from hvintegration import HyperVHost
    >>> from hvintegration.simulator import SimulatedHost
    >>> sim = SimulatedHost(locale="de-DE")
    >>> _ = sim.add_vm("old", guest="windows-7")
    >>> async def main():
    ...     async with HyperVHost.connect(sim) as host:
    ...         services = await host.vm("old").integration_services()
    ...         return [(s.display_name, s.primary_status) for s in services if s.enabled][:2]
    >>> asyncio.run(main())
    [('Heartbeat', 'OK'), ('Key-Value Pair Exchange', 'OK')]
"""

from hvintegration.simulator.model import Fault, FaultKind, InsideVM, SimulatedHost, SimulatedVM
from hvintegration.simulator.profiles import GUEST_OSES, HOST_OSES, LOCALES, GuestOS, HostOS

__all__ = [
    "GUEST_OSES",
    "HOST_OSES",
    "LOCALES",
    "Fault",
    "FaultKind",
    "GuestOS",
    "HostOS",
    "InsideVM",
    "SimulatedHost",
    "SimulatedVM",
]
