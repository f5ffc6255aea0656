"""How many channels one SSH connection may have open at once.

OpenSSH's sshd serves at most ``MaxSessions`` channels per connection (10
unless configured otherwise) and refuses the next one. A session stays
counted until its command has exited, even after the channel is closed, so
a timed-out command still holds its slot while it is being killed; the
kill needs a channel of its own.

So :class:`ChannelLimit` hands out ``limit`` slots to commands, queues the
rest in order, and keeps one more slot for kills. Each connection's kill
channel (:class:`~hvintegration.transport._ssh_process.Killer`), opened
before any command, holds that slot for good (:attr:`ChannelLimit.killer`);
without it, a kill takes the slot for a channel of its own and goes first
when a slot frees. When the server refuses a channel anyway (a stricter
``MaxSessions``), the limit shrinks to what the server accepted, less the
kill slot, and the refused call waits for its turn again: only a server
that refuses a channel while none of ours but the kill channel is open
fails the call. With the kill channel open from the start, the commands
never take the last session a kill needs, whatever the server's limit.

The PowerShell sessions of ``ssh://`` hold slots too, for as long as their
channel is open. A session that finishes a call while another call of its
pool waits for a channel to start one is handed to that call instead (so a
pool larger than the channels left for it reuses its sessions rather than
starting a PowerShell per call). Otherwise a kept session that falls idle
while a caller waits for a slot (:meth:`ChannelLimit.crowded`: a shell
command) is closed rather than kept, so idle sessions never starve a command.
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["DEFAULT_MAX_CHANNELS", "ChannelLimit"]

DEFAULT_MAX_CHANNELS = 8
"""Commands one connection runs at once: under sshd's default ``MaxSessions``
of 10, with room for a kill channel."""


class ChannelLimit:
    """Slots for the channels of one connection.

    Args:
        limit: Slots for commands; one more is kept for kills.

    Example:
        >>> import asyncio
        >>> async def main():
        ...     slots = ChannelLimit(8)
        ...     for _ in range(3):
        ...         await slots.acquire()
        ...     again = slots.refused()  # the server took two channels, not three
        ...     return again, slots.limit, slots.open
        >>> asyncio.run(main())
        (True, 1, 2)
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.killer = False
        """Whether a kill channel holds the kill slot (not counted in :attr:`open`)."""
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._urgent: collections.deque[asyncio.Future[None]] = collections.deque()

    def _free(self, urgent: bool) -> bool:
        if urgent:
            return self.open + self.killer < self.limit + 1
        return self.open < self.limit and not self._urgent

    async def acquire(self, *, urgent: bool = False) -> None:
        """Wait for a slot. ``urgent`` (a kill) may use the reserved slot and goes first."""
        queue = self._urgent if urgent else self._waiting
        if not queue and self._free(urgent):
            self.open += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter in queue:
                queue.remove(waiter)
            elif not waiter.cancelled():
                # The slot was handed over just as we were cancelled.
                self.release()
            raise
        # The slot was counted for us by _wake.

    def crowded(self) -> bool:
        """Whether a caller waits for a slot: a kept PowerShell channel
        that falls idle should then close and give its slot up."""
        return any(not waiter.done() for waiter in self._waiting)

    def release(self) -> None:
        """Give a slot back and hand it to the next waiter."""
        self.open -= 1
        self._wake()

    def refused(self) -> bool:
        """The server refused a channel while this caller held a slot.

        Shrinks the limit to the channels the server accepted, less one
        kept for kills, and gives the slot back.

        Returns:
            Whether the caller should queue again: ``False`` when no other
            channel was open, so the refusal is not about the number.
        """
        others = self.open - 1
        if others > 0:
            self.limit = max(1, min(self.limit, others + self.killer - 1))
        self.release()
        return others > 0

    def set_killer(self, held: bool) -> None:
        """A kill channel now holds (or no longer holds) the kill slot."""
        self.killer = held
        self._wake()

    def _wake(self) -> None:
        for queue, urgent in ((self._urgent, True), (self._waiting, False)):
            while queue and self._free(urgent):
                waiter = queue.popleft()
                if waiter.done():
                    continue
                self.open += 1
                waiter.set_result(None)
