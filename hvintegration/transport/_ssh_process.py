"""Remote processes on SSH channels: find their id, kill them, talk to a PowerShell.

Closing a channel that has no terminal does not stop the command behind it,
so every command the ``ssh://`` transport starts on a POSIX login shell
first reports its process id (a marker line on stderr) and then becomes the
command (``exec`` keeps the id). A timed-out or cancelled command is then
killed, with its process group, over a second channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncssh

__all__ = [
    "KILL_TIMEOUT",
    "PID_PREFIX",
    "SSHPowerShell",
    "as_bytes",
    "kill_remote",
    "read_pid",
    "signal_number",
]

KILL_TIMEOUT = 5.0
"""Seconds a remote kill, or the close of a channel, may take."""

_PID_MARKER = b"hvintegration-pid:"
PID_PREFIX = 'printf "hvintegration-pid:%s\\n" "$$" >&2 && exec '
"""Put before a POSIX command line: it reports the shell's id, then execs the command."""

_STDERR_KEPT = 8192
_PRELUDE_LIMIT = 64 * 1024


async def read_pid(process: asyncssh.SSHClientProcess[bytes]) -> tuple[int | None, bytes]:
    """The remote process id from the marker line, and any stderr before it.

    Login shells may print to stderr before running the command (a noisy
    ``.bashrc``), so the marker is searched for rather than assumed first;
    what came before it is kept as the command's stderr.

    Returns:
        The id (``None`` when stderr ended without a marker) and the stderr
        that came before the marker.
    """
    prelude = b""
    while len(prelude) < _PRELUDE_LIMIT:
        line = as_bytes(await process.stderr.readline())
        if not line:
            break
        if line.startswith(_PID_MARKER):
            text = line[len(_PID_MARKER) :].strip()
            return (int(text) if text.isdigit() else None), prelude
        prelude += line
    return None, prelude


async def kill_remote(
    connection: asyncssh.SSHClientConnection,
    process: asyncssh.SSHClientProcess[bytes],
    pid: int | None,
) -> None:
    """Kill a remote command and its process group, then close its channel. Never raises.

    sshd starts each command as the leader of its own process group, so the
    group is killed by id over a second channel when the id is known.
    """
    if pid is not None and not connection.is_closed():
        kill = connection.run(f"kill -KILL -- -{pid} {pid} 2>/dev/null", check=False)
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.wait_for(kill, KILL_TIMEOUT))
    process.close()


class SSHPowerShell:
    """A remote PowerShell on one SSH channel (a ``PowerShellProcess``).

    Args:
        connection: The connection the channel runs on.
        process: The channel's process.
        pid: The remote process id, when the login shell is POSIX.
        on_connection_lost: Called with the connection when a close finds it
            closed, so the transport makes a new one next time.
    """

    def __init__(
        self,
        connection: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
        pid: int | None,
        on_connection_lost: Callable[[asyncssh.SSHClientConnection], None],
    ) -> None:
        self._connection = connection
        self._process = process
        self._pid = pid
        self._on_connection_lost = on_connection_lost
        self._stderr = bytearray()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        self._closed = False

    async def _drain_stderr(self) -> None:
        while chunk := await self._process.stderr.read(65536):
            self._stderr += as_bytes(chunk)
            del self._stderr[:-_STDERR_KEPT]

    async def write(self, data: bytes) -> None:
        import asyncssh

        try:
            self._process.stdin.write(data)
            await self._process.stdin.drain()
        except (asyncssh.Error, BrokenPipeError) as exc:
            raise ConnectionResetError(str(exc)) from exc

    async def read(self, size: int) -> bytes:
        import asyncssh

        try:
            return as_bytes(await self._process.stdout.read(size))
        except asyncssh.Error as exc:
            raise ConnectionResetError(str(exc)) from exc

    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def alive(self) -> bool:
        return (
            not self._closed
            and self._process.exit_status is None
            and not self._connection.is_closed()
        )

    def abort(self) -> None:
        # Closing the channel ends the remote loop's stdin, which it watches
        # even mid-operation; the connection itself is the transport's.
        self._closed = True
        with contextlib.suppress(Exception):
            self._process.close()
        self._stderr_task.cancel()

    async def close(self, grace: float) -> int | None:
        self._closed = True
        process = self._process
        if grace > 0 and not self._connection.is_closed():
            # End of stdin ends the remote loop, which exits on its own.
            with contextlib.suppress(Exception):
                process.stdin.write_eof()
                await asyncio.wait_for(process.wait_closed(), grace)
        if process.exit_status is None:
            # Still running: closing the channel ends its stdin, which the
            # remote loop watches even mid-operation; on a POSIX shell the
            # process group is also killed by id.
            await kill_remote(self._connection, process, self._pid)
        process.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait_closed(), KILL_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        self._stderr_task.cancel()
        if self._connection.is_closed():
            self._on_connection_lost(self._connection)
        status = process.exit_status
        return None if status is None or status < 0 else status


def as_bytes(data: object) -> bytes:
    """``data`` as bytes: asyncssh hands back ``str`` or ``bytes`` by encoding."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return b""


def signal_number(name: str) -> int:
    """The number of a signal named as SSH names it (``KILL``); 0 when unknown."""
    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return 0
