"""Out-of-process PSRP connections for pypsrp that survive a misbehaving peer.

pypsrp 1.0.0b1 carries out-of-process PSRP (one XML element per line) over
a child's stdin/stdout or an SSH channel. Its own connections have three
weak spots, each guarded here:

* the peer's stderr is mixed into the protocol stream (``ProcessInfo``
  merges it into stdout; its SSH session queues the channel's extended
  data), so one warning corrupts the stream: stderr is kept apart;
* when the stream ends, its listener stops silently and every waiting
  pipeline waits forever: :attr:`Carrier.lost` is set at the end of the
  stream so the transport stops waiting at once;
* closing a broken pool never stops the connection, leaving the child
  running: :meth:`Carrier.kill` releases the child (with its process group)
  or the SSH connection, whatever state the pool is in.

The settings classes subclass pypsrp's ``ProcessInfo`` and ``SSHInfo`` so
pypsrp opens runspace pools through them as usual.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
from typing import Any

from hvintegration.errors import AuthenticationError, HostKeyError, TransportError
from hvintegration.transport._process import kill_process_group


class _OptionalImportNoise(logging.Filter):
    # pypsrp 1.0.0b1 logs an ERROR with a traceback on import when psutil,
    # which only its named-pipe connection needs, is missing. We never use
    # that connection, so the message would only alarm.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Optional Named Pipe")


_noise = _OptionalImportNoise()
logging.getLogger("psrp").addFilter(_noise)
try:
    import psrp
finally:
    logging.getLogger("psrp").removeFilter(_noise)

__all__ = [
    "Carrier",
    "GuardedProcessInfo",
    "GuardedSSHInfo",
    "ProcessCarrier",
    "SSHCarrier",
    "psrp",
]

_READ_SIZE = 32_768
_EXIT_GRACE = 2.0
_STDERR_LINES = 5


class Carrier(psrp.AsyncOutOfProcConnection):
    """An out-of-process PSRP stream that notices when the peer is gone.

    pypsrp's listener ends silently when the stream ends and leaves every
    pipeline waiting; :attr:`lost` lets the transport stop waiting at once.
    """

    def __init__(self, pool: Any, callback: Any, lost: asyncio.Event) -> None:
        super().__init__(pool, callback)
        self.lost = lost
        self.finished = asyncio.Event()

    async def read(self) -> bytes | None:
        try:
            data = await self.receive()
        except (OSError, EOFError):
            data = None
        if not data:
            self.lost.set()
            return None
        return data

    async def _listen(self) -> None:
        # pypsrp 1.0.0b1 runs its listener as a task nobody awaits when the
        # pool breaks; knowing when it ends lets close wait for it.
        try:
            await super()._listen()
        finally:
            self.finished.set()

    async def receive(self) -> bytes | None:
        """The next bytes from the peer, or ``None`` at the end of the stream."""
        raise NotImplementedError

    def describe_end(self) -> str:
        """Why the stream ended, for error messages."""
        return "the peer closed the connection"

    async def kill(self) -> None:
        """Release the process or channel now. Idempotent."""
        raise NotImplementedError


class ProcessCarrier(Carrier):
    """PSRP on a child's stdin/stdout, with stderr kept out of the stream."""

    def __init__(
        self, pool: Any, callback: Any, lost: asyncio.Event, process: asyncio.subprocess.Process
    ) -> None:
        super().__init__(pool, callback, lost)
        self.process = process
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        # pypsrp's own ProcessInfo merges stderr into stdout, so one warning
        # from the peer corrupts the protocol; keep only the last lines, for
        # error messages.
        assert self.process.stderr is not None
        with contextlib.suppress(OSError, ValueError):
            async for line in self.process.stderr:
                self.stderr_tail.append(line.decode("utf-8", "replace").rstrip())

    async def receive(self) -> bytes | None:
        assert self.process.stdout is not None
        return await self.process.stdout.read(_READ_SIZE) or None

    async def write(self, data: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(data)
        await stdin.drain()

    def describe_end(self) -> str:
        status = self.process.returncode
        text = "the PSRP process ended"
        if status is not None and status < 0:
            text += f" (killed by {_signal_name(-status)})"
        elif status is not None:
            text += f" with status {status}"
        last = next((line for line in reversed(self.stderr_tail) if line), "")
        if last:
            text += f" (stderr: {last[:200]})"
        return text

    async def stop(self) -> None:
        # Called by pypsrp after a clean close: end of input lets the peer
        # exit by itself; kill it if it does not.
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.process.wait()), _EXIT_GRACE)
        await self.kill()

    async def kill(self) -> None:
        await kill_process_group(self.process)
        stdin = self.process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), _EXIT_GRACE)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class GuardedProcessInfo(psrp.ProcessInfo):
    """``psrp.ProcessInfo`` that keeps stderr apart and the child in reach."""

    def __init__(self, target: str, executable: str, arguments: list[str]) -> None:
        super().__init__(executable, arguments)
        self.target = target
        self.carrier: Carrier | None = None
        self.lost = asyncio.Event()

    # Returns our own out-of-process connection, not pypsrp's process one.
    async def create_async(self, pool: Any, callback: Any) -> Carrier:  # type: ignore[override]
        try:
            process = await asyncio.create_subprocess_exec(
                self.executable,
                *self.arguments,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise TransportError(
                f"cannot start {self.executable}: {exc.strerror or exc}", target=self.target
            ) from exc
        self.carrier = ProcessCarrier(pool, callback, self.lost, process)
        return self.carrier


class SSHCarrier(Carrier):
    """PSRP on an SSH subsystem channel; the channel's stderr is dropped."""

    def __init__(
        self,
        pool: Any,
        callback: Any,
        lost: asyncio.Event,
        connection: Any,
        channel: Any,
        session: Any,
    ) -> None:
        super().__init__(pool, callback, lost)
        self.connection = connection
        self.channel = channel
        self.session = session

    async def receive(self) -> bytes | None:
        data: bytes | None = await self.session.incoming.get()
        return data

    async def write(self, data: bytes) -> None:
        if self.channel.is_closing():
            raise BrokenPipeError("the SSH channel is closed")
        self.channel.write(data)

    def describe_end(self) -> str:
        return "the SSH channel to the PSRP subsystem closed"

    async def stop(self) -> None:
        await self.kill()

    async def kill(self) -> None:
        self.channel.close()
        self.connection.close()
        self.session.incoming.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.wait_closed(), _EXIT_GRACE)


def _ssh_session() -> Any:
    import asyncssh

    class Session(asyncssh.SSHClientSession[bytes]):
        def __init__(self) -> None:
            self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

        def data_received(self, data: bytes, datatype: int | None) -> None:
            # Extended data is the remote stderr: it is not PSRP and pypsrp's
            # own session would mix it into the stream.
            if datatype is None:
                self.incoming.put_nowait(data)

        def eof_received(self) -> bool:
            self.incoming.put_nowait(None)
            return False

        def connection_lost(self, exc: Exception | None) -> None:
            self.incoming.put_nowait(None)

    return Session()


class GuardedSSHInfo(psrp.SSHInfo):
    """``psrp.SSHInfo`` that verifies the host, maps its errors and sees the end."""

    def __init__(self, target: str, hostname: str, port: int, subsystem: str, options: Any):
        super().__init__(hostname, port=port, subsystem=subsystem, options=options)
        self.target = target
        self.carrier: Carrier | None = None
        self.lost = asyncio.Event()

    # Returns our own out-of-process connection, not pypsrp's SSH one.
    async def create_async(self, pool: Any, callback: Any) -> Carrier:  # type: ignore[override]
        import asyncssh

        where = {"target": self.target}
        try:
            connection = await asyncssh.connect(self.hostname, port=self.port, options=self.options)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyError(
                f"the host key of {self.hostname} is not trusted: {exc.reason} "
                "(add it to known_hosts after checking its fingerprint)",
                **where,
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise AuthenticationError(
                "SSH authentication failed (check the user, key, agent or password)", **where
            ) from exc
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            raise TransportError(
                f"cannot connect to {self.hostname}:{self.port} over SSH: {exc}", **where
            ) from exc
        try:
            channel, session = await connection.create_session(
                _ssh_session, subsystem=self.subsystem, encoding=None
            )
        except (asyncssh.Error, OSError) as exc:
            connection.close()
            raise TransportError(
                f"the SSH server did not start the {self.subsystem!r} subsystem: {exc}", **where
            ) from exc
        self.carrier = SSHCarrier(pool, callback, self.lost, connection, channel, session)
        return self.carrier
