"""Simulated Linux guests: explore ``LinuxGuest`` with no VM.

A :class:`SimulatedLinuxGuest` is a target: pass it to
:meth:`hvintegration.LinuxGuest.connect`, or reach a fresh one with
``sim-linux://``. It models the driver, devices, installed programs, process
table, systemd units, account and KVP pools of a real guest
(:mod:`~hvintegration.simulator.linux_model`), answers the library's own
scripts (:mod:`~hvintegration.simulator.linux_behaviour`), and has the host
simulator's faults, latency and round-trip counting
(:mod:`~hvintegration.simulator.faults`). What it does not model: a shell;
any other command exits with status 127.
"""

from __future__ import annotations

from hvintegration.simulator.distros import DISTROS, Distro
from hvintegration.simulator.engine import deliver_command, run_simulated_command
from hvintegration.simulator.linux_model import LinuxGuestModel, SimulatedProcess
from hvintegration.transport.base import CompletedCommand
from hvintegration.transport.simlinux import SimulatedLinuxTransport

__all__ = ["DISTROS", "Distro", "SimulatedLinuxGuest", "SimulatedProcess"]


class SimulatedLinuxGuest(LinuxGuestModel):
    """A simulated Linux guest with the Hyper-V daemons, seeded per distribution.

    By default every installed daemon runs once (the ``ubuntu-14.04``
    profile copies the seed document: two ``hv_kvp_daemon`` instances and one
    ``hv_vss_daemon``), and pool 3 carries the host's facts.

    Args:
        name: The guest's host name, used in its URL.
        distro: A key of :data:`DISTROS` or a :class:`Distro`.
        user: The login name; ``root`` has uid 0, anyone else 1000.
        sudo: Whether that user has passwordless sudo.
        latency: Seconds each command takes.

    Attributes:
        processes: The process table.
        pools: KVP pool number to file bytes.
        fail_start: Daemon names that exit at once when started, as a
            daemon does without its device node.
        ignore_term: Daemon names whose instances survive ``SIGTERM``.
        faults: Injected faults (:meth:`inject_fault`).
        round_trips: Commands answered so far.
        calls: The name of each command (``status``, ``stop``, ``start``,
            ``kvp``, ``systemctl``...), in order.

    Raises:
        ValueError: An unknown distribution key.

    Example:
        >>> import asyncio
        >>> from hvintegration import LinuxGuest
        >>> sim = SimulatedLinuxGuest(distro="sles-15")
        >>> sorted(p.program for p in sim.processes)[:1]
        ['/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon']
        >>> _ = sim.inject_fault("error", operation="status")
        >>> async def main():
        ...     async with LinuxGuest.connect(sim) as guest:
        ...         try:
        ...             await guest.status()
        ...         except Exception as exc:
        ...             print(type(exc).__name__)
        ...         return (await guest.driver()).state
        >>> asyncio.run(main())
        RemoteCommandError
        'module'
        >>> sim.round_trips, sim.calls
        (2, ['status', 'status'])
    """

    @property
    def url(self) -> str:
        """``sim-linux://NAME``: names the guest in messages."""
        return f"sim-linux://{self.name}"

    def open(self) -> SimulatedLinuxTransport:
        """A transport whose commands this guest answers."""
        return SimulatedLinuxTransport(self)

    async def answer_command(self, argv: tuple[str, ...], input: bytes | None) -> CompletedCommand:
        """Answer one command sent to this guest (see
        :func:`~hvintegration.simulator.engine.run_simulated_command`)."""
        outcome = run_simulated_command(self, argv, input)
        return await deliver_command(outcome, target=self.url)
