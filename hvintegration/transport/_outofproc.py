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
  or the SSH connection, whatever state the pool is in, and
  :meth:`Carrier.abort` does the same without waiting, for a cancelled close.

The settings classes subclass pypsrp's ``ProcessInfo`` and ``SSHInfo`` so
pypsrp opens runspace pools through them as usual. :class:`Session` holds one
open pool with what carries it, and waits on it no longer than the peer is
there; :func:`close_wsman` releases what pypsrp's WinRM connection leaves
open.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal
import urllib.parse
from collections.abc import Awaitable
from typing import Any, TypeVar

from psrpcore.types import RunspacePoolState

from hvintegration.errors import TransportError
from hvintegration.transport._process import abort_process, kill_process_group
from hvintegration.transport._ssh_connect import connect
from hvintegration.transport._url import missing_extra


class _OptionalImportNoise(logging.Filter):
    # pypsrp 1.0.0b1 logs an ERROR with a traceback on import when psutil,
    # which only its named-pipe connection needs, is missing, and likewise
    # for its SSH connection without asyncssh. We never use the first, and
    # a psrp:// target over SSH says itself what it needs, so the messages
    # would only alarm.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Optional Named Pipe", "Optional SSH"))


# A psrp that is absent, fails to import, or is not the package this module
# was written for is one line naming the extra (an ImportError), not an
# AttributeError from the first class below that uses it.
_problem = missing_extra(urllib.parse.urlsplit("psrp://"), scheme="psrp")
if _problem is not None:
    raise ImportError(_problem, name="psrp")


class _MessageBodies(logging.Filter):
    # psrpcore logs every PSRP message it queues or processes at DEBUG with
    # its whole CLIXML body, which holds the parameter values: a PowerShell
    # Direct password (invoke_in_vm's Password, sent as a plain string so
    # that every transport carries it alike), KVP values. The record stays,
    # with the message type and ids; the body is replaced by its length.
    _BODIES = ("Queuing PSRP Message", "Processing PSRP Message")

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            str(record.msg).startswith(self._BODIES)
            and isinstance(record.args, tuple)
            and record.args
        ):
            body = str(record.args[-1])
            record.args = (*record.args[:-1], f"<{len(body)} characters not logged>")
        return True


logging.getLogger("psrpcore._base").addFilter(_MessageBodies())

_noise = _OptionalImportNoise()
logging.getLogger("psrp").addFilter(_noise)
try:
    import psrp
finally:
    logging.getLogger("psrp").removeFilter(_noise)

__all__ = [
    "Carrier",
    "Discarded",
    "GuardedProcessInfo",
    "GuardedSSHInfo",
    "PeerGone",
    "ProcessCarrier",
    "SSHCarrier",
    "Session",
    "close_wsman",
    "psrp",
]

_T = TypeVar("_T")
_READ_SIZE = 32_768
_CLOSE_TIMEOUT = 5.0
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

    def abort(self) -> None:
        """Release the process or channel without waiting. Idempotent; never raises."""
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

    def abort(self) -> None:
        abort_process(self.process)
        self.lost.set()
        self._stderr_task.cancel()

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

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.close()
        with contextlib.suppress(Exception):
            self.connection.abort()
        self.session.incoming.put_nowait(None)
        self.lost.set()

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


class _NoSSHInfo(psrp.ConnectionInfo):
    """What stands for ``psrp.SSHInfo`` when pypsrp could not import it (no asyncssh)."""

    def __init__(self, hostname: str, **kwargs: Any) -> None:
        self.hostname = hostname
        self.port = kwargs.get("port", 22)
        self.subsystem = kwargs.get("subsystem", "powershell")
        self.options = kwargs.get("options")

    async def create_async(self, pool: Any, callback: Any) -> Any:
        raise NotImplementedError


# pypsrp defines SSHInfo only where asyncssh imports (the ssh extra).
_SSHInfo: Any = getattr(psrp, "SSHInfo", None) or _NoSSHInfo


class GuardedSSHInfo(_SSHInfo):  # type: ignore[misc]
    """``psrp.SSHInfo`` that verifies the host, maps its errors and sees the end."""

    def __init__(self, target: str, hostname: str, port: int, subsystem: str, options: Any):
        super().__init__(hostname, port=port, subsystem=subsystem, options=options)
        self.target = target
        self.carrier: Carrier | None = None
        self.lost = asyncio.Event()

    # Returns our own out-of-process connection, not pypsrp's SSH one.
    async def create_async(self, pool: Any, callback: Any) -> Carrier:
        try:
            import asyncssh
        except ImportError as exc:
            raise TransportError(
                "psrp:// over SSH needs asyncssh: pip install 'hvintegration[ssh]'",
                target=self.target,
            ) from exc

        # Always built by the shared SSH options builder (never pypsrp's
        # defaults, which follow the user's OpenSSH configuration).
        assert self.options is not None
        connection = await connect(
            self.hostname, self.port, self.options, target=self.target, operation=None
        )
        try:
            channel, session = await connection.create_session(
                _ssh_session, subsystem=self.subsystem, encoding=None
            )
        except (asyncssh.Error, OSError) as exc:
            connection.abort()
            raise TransportError(
                f"the SSH server did not start the {self.subsystem!r} subsystem: {exc}",
                target=self.target,
            ) from exc
        except BaseException:
            # Cancelled while the channel opened: no carrier holds the
            # connection yet, so nothing else would close it.
            connection.abort()
            raise
        self.carrier = SSHCarrier(pool, callback, self.lost, connection, channel, session)
        return self.carrier


class Session:
    """One runspace pool and what carries it.

    Args:
        pool: The ``psrp.AsyncRunspacePool``.
        info: The connection settings it was opened with; guarded ones
            carry the ``lost`` event and the live carrier.
    """

    def __init__(self, pool: psrp.AsyncRunspacePool, info: Any) -> None:
        self.pool = pool
        self.info = info
        self.failed = False
        self.pipelines: set[asyncio.Task[Any]] = set()
        self.closing: asyncio.Future[None] | None = None

    def abort(self) -> None:
        """Kill what carries the pool, and stop waiting on it, at once. Never raises."""
        self.failed = True
        carrier = self.carrier
        if carrier is not None:
            carrier.abort()
        for task in self.pipelines:
            task.cancel()
        if self.closing is not None:
            self.closing.cancel()

    @property
    def carrier(self) -> Carrier | None:
        carrier: Carrier | None = getattr(self.info, "carrier", None)
        return carrier

    @property
    def lost(self) -> bool:
        lost: asyncio.Event | None = getattr(self.info, "lost", None)
        return lost is not None and lost.is_set()

    @property
    def broken(self) -> bool:
        return self.failed or self.lost or self.pool.state != RunspacePoolState.Opened

    async def watch(self, awaitable: Awaitable[_T]) -> _T:
        """Await, but stop waiting as soon as the peer's stream ends.

        A coroutine is cancelled when the peer goes away or the caller gives
        up; a task (a running pipeline) is never cancelled here, it is left
        for the caller to stop and clean up.

        Raises:
            PeerGone: The stream ended first.
            Discarded: The pool was discarded under a running pipeline.
        """
        owned = not isinstance(awaitable, asyncio.Future)
        task = asyncio.ensure_future(awaitable)
        lost_event: asyncio.Event | None = getattr(self.info, "lost", None)
        lost = None if lost_event is None else asyncio.ensure_future(lost_event.wait())
        try:
            await asyncio.wait(
                {task} if lost is None else {task, lost}, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            if owned:
                task.cancel()
            raise
        finally:
            if lost is not None:
                lost.cancel()
        if task.done():
            if task.cancelled() and not owned:
                raise Discarded
            return task.result()
        self.failed = True
        if owned:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        raise PeerGone


class Discarded(Exception):
    """The pool was closed or discarded while a pipeline ran on it."""


class PeerGone(Exception):
    """The peer's stream ended while an operation waited on it."""


async def close_wsman(pool: Any) -> None:
    """Close the HTTP layers of a WinRM pool, whatever state it is in."""
    # pypsrp 1.0.0b1 closes its HTTP client only when the pool closes
    # cleanly, and even then never the connection of its own authenticating
    # HTTP transport (httpx does not call that transport's __aexit__), so a
    # socket would stay open; release both directly.
    http = getattr(getattr(pool, "_connection", None), "_connection", None)
    client = getattr(http, "_http", None)
    connection = getattr(getattr(client, "_transport", None), "_connection", None)
    for close in (getattr(client, "aclose", None), getattr(connection, "aclose", None)):
        if close is not None:
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(close(), _CLOSE_TIMEOUT)
