"""The ``sim-linux://`` transport: shell commands answered in process.

A thin adapter: every command goes to a :class:`SimulatedShellPeer`, an
object in this process that answers argv lists the way a real guest's shell
would (the simulator's Linux guests, in :mod:`hvintegration.simulator.linux`).
This module knows nothing of the simulator; the ``sim-linux://`` URL is
parsed by :class:`hvintegration.simulator.targets.SimulatedLinuxTarget`.
"""

from __future__ import annotations

from typing import Protocol

from hvintegration.transport.base import CompletedCommand, ShellTransport

__all__ = ["SimulatedLinuxTransport", "SimulatedShellPeer"]


class SimulatedShellPeer(Protocol):
    """Something in this process that answers shell commands."""

    @property
    def url(self) -> str:
        """The peer as a URL, for messages."""

    async def answer_command(self, argv: tuple[str, ...], input: bytes | None) -> CompletedCommand:
        """Answer one command, or raise the error the wire would give."""


class SimulatedLinuxTransport(ShellTransport):
    """Runs commands against one in-process peer, such as a simulated Linux guest.

    Args:
        peer: What answers; usually you get this transport from
            :meth:`hvintegration.simulator.linux.SimulatedLinuxGuest.open`.

    Example:
        >>> import asyncio
        >>> from hvintegration.simulator.linux import SimulatedLinuxGuest
        >>> async def main():
        ...     async with SimulatedLinuxGuest().open() as transport:
        ...         done = await transport.run_command(["uname", "-r"], timeout=5)
        ...     return done.exit_status
        >>> asyncio.run(main())
        127
    """

    def __init__(self, peer: SimulatedShellPeer) -> None:
        self.peer = peer

    @property
    def target(self) -> str:
        """The peer's URL, e.g. ``sim-linux://linuxvm``."""
        return self.peer.url

    async def _run_command(
        self,
        argv: tuple[str, ...],
        *,
        input: bytes | None,
        timeout: float,
    ) -> CompletedCommand:
        return await self.peer.answer_command(argv, input)

    async def _aclose(self) -> None:
        """Nothing to release; the peer lives on."""
