"""Helpers for testing code built on hvintegration, and transports.

Everything importable from here works without Hyper-V, root or network: a
simulated host (:class:`SimulatedHost`) and Linux guest
(:class:`SimulatedLinuxGuest`) to point your own tools at, their state files,
and :class:`MockTransport` to answer calls with your own function.

The submodules are test rigs with more needs, each stated in its docstring:

* :mod:`~hvintegration.testing.conformance` (needs pytest): the suite every
  PowerShell transport passes.
* :mod:`~hvintegration.testing.standin_powershell`,
  :mod:`~hvintegration.testing.psrp_server` and
  :mod:`~hvintegration.testing.powershell_peers`: simulated hosts served by a
  real child process (the stand-in PowerShell, a PSRP server); over SSH they
  also need OpenSSH's ``sshd``.
* :mod:`~hvintegration.testing.sshd`: a real OpenSSH ``sshd`` on loopback
  (needs the ``sshd`` program and root, since sshd switches to the
  logged-in user).
* :mod:`~hvintegration.testing.linux_guest`: a real guest sandbox with the
  real Hyper-V daemons (needs root, ``unshare``, ``sshd`` and Debian's
  ``hyperv-daemons``); :func:`~hvintegration.testing.linux_guest.sandbox_unavailable_reason`
  says what is missing.

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
from hvintegration.simulator.model import InsideVM
from hvintegration.simulator.state import (
    edit_guest_state,
    edit_state,
    load_guest,
    load_host,
    save_guest,
    save_host,
)
from hvintegration.testing.mock import CommandRequest, MockTransport, OperationRequest, Request
from hvintegration.transport.simulator import SimulatorTransport

__all__ = [
    "DISTROS",
    "GUEST_OSES",
    "HOST_OSES",
    "LOCALES",
    "CommandRequest",
    "Fault",
    "FaultKind",
    "GuestOS",
    "HostOS",
    "InsideVM",
    "MockTransport",
    "OperationRequest",
    "Request",
    "SimulatedHost",
    "SimulatedLinuxGuest",
    "SimulatedVM",
    "SimulatorTransport",
    "edit_guest_state",
    "edit_state",
    "load_guest",
    "load_host",
    "save_guest",
    "save_host",
]
