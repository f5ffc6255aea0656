"""Run operations through PowerShell processes: a bounded pool, or one per call.

A :class:`PowerShellSession` owns the PowerShell processes of one transport
(local child processes or SSH channels, behind :class:`PowerShellProcess`)
and speaks the wire contract of :mod:`._powershell_wire` with them.

* Persistent (the default): a pool of at most ``sessions`` processes, each
  running call after call, so PowerShell starts and the Hyper-V module
  loads once per process. A call takes an idle process, or starts one when
  none is idle and fewer than ``sessions`` exist; beyond that it waits. So
  independent concurrent calls run side by side, up to the bound, and
  sequential calls keep reusing one process. A process that died is
  replaced by a new one on the next call that needs it. A call that waits
  for its new process to start (an SSH connection out of free channels)
  takes instead the first process another call of the pool finishes with,
  so a pool larger than the channels left for it reuses its processes
  rather than closing one and starting the next.
* One-shot: each call starts a process, sends one request and closes it;
  at most ``sessions`` run at once.

The transport applies each call's deadline. A call that times out, is
cancelled, or gets an unreadable answer kills its process (the pool starts
a fresh one when next needed), because the process may be busy or
mid-answer and cannot be trusted with the next request. A call cancelled
while it waits for a free process has started nothing.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from hvintegration.errors import (
    PowerShellNotFoundError,
    ProtocolError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.transport._powershell_wire import (
    RUNNER_LINE,
    EndOfOutput,
    FrameReader,
    Reply,
    decode_envelope,
    encode_request,
)
from hvintegration.transport.base import JsonValue, OperationResult, log_retry
from hvintegration.transport.errormap import error_from_record

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = [
    "DEFAULT_SESSIONS",
    "MAX_SESSIONS",
    "PowerShellProcess",
    "PowerShellSession",
    "Spawner",
    "check_sessions",
]

DEFAULT_SESSIONS = 4
"""PowerShell processes one transport runs at most, by default.

Each is a PowerShell with the Hyper-V module loaded (tens of MB on the host),
and each call on a Hyper-V host already carries a whole batch; four lets
independent calls (a UI refresh beside a compliance read beside an apply)
proceed side by side without making the host run many heavy sessions for
one client. Over ``ssh://`` they are channels on one connection, counted
with its shell commands under ``max_channels``: OpenSSH's sshd serves at
most ``MaxSessions`` sessions per connection, 10 unless configured
(sshd_config(5); the setting arrived with
https://github.com/openssh/openssh-portable/commit/7207f64a23a49a719aad3083c068f50e5034ccb8)."""

MAX_SESSIONS = 64
"""The largest ``sessions`` setting accepted."""

_CLOSE_GRACE = 2.0
# What shells answer for a program they cannot find: sh's status 127,
# cmd.exe's 9009, and the message cmd.exe and PowerShell both print.
_NOT_FOUND_STATUS = (127, 9009)
_NOT_FOUND_TEXT = "is not recognized as"


class PowerShellProcess(Protocol):
    """One running PowerShell: a local child process or an SSH channel."""

    async def write(self, data: bytes) -> None:
        """Write to its stdin.

        Raises:
            OSError: The pipe or channel is closed.
        """

    async def read(self, size: int) -> bytes:
        """Read up to ``size`` bytes of its stdout; ``b""`` at the end."""

    def stderr_text(self) -> str:
        """The end of what it wrote to stderr so far."""

    def alive(self) -> bool:
        """Whether it can still take requests."""

    async def close(self, grace: float) -> int | None:
        """Close stdin, give it ``grace`` seconds to exit, then kill it.

        Never raises; afterwards nothing of the process is left.

        Returns:
            Its exit status, if it exited and the status is known.
        """

    def abort(self) -> None:
        """Kill it now, without waiting; for a close that cannot wait. Never raises."""


Spawner = Callable[[str], Awaitable[PowerShellProcess]]
"""Starts one PowerShell process with the bootstrap command line, for the
named operation (which errors name).

Raises :class:`~hvintegration.errors.PowerShellNotFoundError` or another
:class:`~hvintegration.errors.TransportError` when it cannot."""


class _NoAnswer(Exception):
    """A process ended or broke before any byte of its answer arrived."""

    def __init__(self, error: TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class _Live:
    """A process with its frame reader; the reader keeps bytes read ahead."""

    def __init__(self, process: PowerShellProcess, max_output: int) -> None:
        self.process = process
        self.frames = FrameReader(process.read, max_bytes=max_output)
        self.answered = 0


class PowerShellSession:
    """Runs operations through a pool of PowerShell processes started by ``spawn``.

    Args:
        spawn: Starts one process.
        target: The target URL, for errors.
        executable: The PowerShell program, for errors.
        persistent: Keep processes for many calls (else one per call).
        max_output: Bytes one call may read before the answer is refused.
        sessions: Processes that may run at once (see :data:`DEFAULT_SESSIONS`).
        crowded: Asked when a kept process finishes a call that no call of
            this pool waits for; ``True`` closes it instead of keeping it
            idle (an SSH connection whose channel slots others wait for).

    Raises:
        ValueError: ``sessions`` is not a whole number from 1 to
            :data:`MAX_SESSIONS`.
    """

    def __init__(
        self,
        spawn: Spawner,
        *,
        target: str,
        executable: str,
        persistent: bool,
        max_output: int,
        sessions: int = DEFAULT_SESSIONS,
        crowded: Callable[[], bool] | None = None,
    ) -> None:
        check_sessions(sessions)
        self._crowded = crowded
        self._spawn = spawn
        self._target = target
        self._executable = executable
        self.persistent = persistent
        self.sessions = sessions
        self._max_output = max_output
        # Processes that answered their last call and wait for the next;
        # the most recently used is taken first, so a sequential caller
        # keeps to one process.
        self._idle: list[_Live] = []
        # Calls waiting for a process to start, in order: a process another
        # call finishes with is handed to the first of them instead.
        # Each with its start, stopped as soon as a process is handed over.
        self._wanting: collections.deque[
            tuple[asyncio.Future[_Live], asyncio.Future[PowerShellProcess]]
        ] = collections.deque()
        self._slots = asyncio.Semaphore(sessions)
        self._next_id = 0
        self._closed = False
        self._active: set[_Live] = set()
        # Every process started and not yet seen to the end, including those
        # being closed, so that abort() can kill what a cancelled close left.
        self._processes: set[PowerShellProcess] = set()
        self._cleanups: set[asyncio.Task[object]] = set()

    async def run(
        self, operation: Operation, parameters: Mapping[str, JsonValue], *, timeout: float
    ) -> OperationResult:
        """Run one checked operation (see :meth:`PowerShellTransport.run_operation`).

        The transport has checked the parameters and applies ``timeout``
        around this call.
        """
        self._next_id += 1
        request_id = self._next_id
        try:
            request = encode_request(request_id, operation.name, operation.script, parameters)
        except (TypeError, ValueError) as exc:
            raise ProtocolError(
                f"the parameters cannot travel as JSON: {exc}",
                target=self._target,
                operation=operation.name,
            ) from exc
        return await self._locked_call(operation.name, request_id, request, operation.repeatable)

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise TransportClosedError(
                "the transport is closed", target=self._target, operation=operation
            )

    async def _locked_call(
        self, operation: str, request_id: int, request: bytes, repeatable: bool
    ) -> OperationResult:
        # A process serves one call at a time; a slot stands for a process,
        # so at most `sessions` calls are on the wire and the rest wait here,
        # having started nothing.
        async with self._slots:
            self._check_open(operation)
            for attempt in (1, 2):
                try:
                    live = await self._acquire(operation)
                except TransportError as exc:
                    # aclose() ran while the process was starting.
                    if self._closed and not isinstance(exc, TransportClosedError):
                        raise TransportClosedError(
                            "the transport was closed during the call",
                            target=self._target,
                            operation=operation,
                        ) from exc
                    raise
                reused = live.answered > 0
                answered = False
                try:
                    reply = await self._exchange(live, operation, request_id, request)
                    answered = True
                except _NoAnswer as silent:
                    # A kept process that died while idle is found out only
                    # now. Send the request once more to a fresh process, but
                    # only when repeating it is harmless: the process may
                    # also have died while running it.
                    if reused and repeatable and attempt == 1 and not self._closed:
                        log_retry(self._target, operation, "the kept process had ended", attempt=2)
                        continue
                    self._check_open(operation)
                    raise silent.error from silent.__cause__
                except TransportError as exc:
                    # aclose() stopped the process under this call.
                    if self._closed:
                        raise TransportClosedError(
                            "the transport was closed during the call",
                            target=self._target,
                            operation=operation,
                        ) from exc
                    raise
                finally:
                    # A one-shot process that answered may end on its own,
                    # after the answer is handed back: its shutdown must not
                    # eat into the caller's deadline and turn a done
                    # operation into a timeout. Any other process that is not
                    # kept is killed at once.
                    if answered and self._keep():
                        self._hand_over(live)
                    elif answered:
                        self._release_later(live)
                    else:
                        await self._release(live, graceful=False)
                break
        if reply.error is not None:
            raise error_from_record(reply.error, target=self._target, operation=operation)
        return reply.result

    def _keep(self) -> bool:
        """Whether a process that answered serves another call."""
        if not self.persistent or self._closed:
            return False
        if any(not wanting.done() for wanting, _ in self._wanting):
            return True  # a call of this pool waits for a process: hand it over
        return self._crowded is None or not self._crowded()

    def _hand_over(self, live: _Live) -> None:
        """Give a process that answered to the first call waiting for one, else keep it idle."""
        while self._wanting:
            wanting, starting = self._wanting.popleft()
            if not wanting.done():
                wanting.set_result(live)
                # Stopped now, not when its caller next runs: a start still
                # waiting for a channel would make the connection look
                # crowded to the next call that finishes.
                starting.cancel()
                return
        self._idle.append(live)

    def _release_later(self, live: _Live) -> None:
        task = asyncio.ensure_future(self._release(live, graceful=True))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanup_done)

    def _cleanup_done(self, task: asyncio.Task[object]) -> None:
        self._cleanups.discard(task)
        if not task.cancelled():
            # Retrieved so that a failed shutdown is not reported as an
            # unhandled task error; the process is gone either way.
            task.exception()

    async def _acquire(self, operation: str) -> _Live:
        while True:
            while self._idle:
                live = self._idle.pop()
                if live.process.alive():
                    return live
                # Died while idle (killed, or its channel closed): replace it.
                await self._release(live, graceful=False)
            started = await self._start_or_take(operation)
            if not isinstance(started, _Live):
                break
            if started.process.alive():
                return started
            await self._release(started, graceful=False)
        process = started
        self._processes.add(process)
        if self._closed:
            # The transport closed while the process was starting.
            await self._close(process, 0.0)
            self._check_open(operation)
        live = _Live(process, self._max_output)
        self._active.add(live)
        try:
            await process.write(RUNNER_LINE)
        except OSError as exc:
            await self._release(live, graceful=False)
            raise await self._broken(live, operation, f"cannot write to PowerShell: {exc}") from exc
        except BaseException:
            # Cancelled before the process took its first line: nobody
            # would ever use it.
            await self._release(live, graceful=False)
            raise
        return live

    async def _start_or_take(self, operation: str) -> _Live | PowerShellProcess:
        """Start a process, or take one another call hands over first.

        Over SSH a start may wait for a free channel while the channels are
        held by this pool's own busy processes: the first of them to finish
        is taken instead, and the start given up (it holds nothing yet, or
        its process is closed at once).
        """
        if not self.persistent:
            return await self._spawn(operation)
        handed: asyncio.Future[_Live] = asyncio.get_running_loop().create_future()
        starting = asyncio.ensure_future(self._spawn(operation))
        self._wanting.append((handed, starting))
        either: set[asyncio.Future[object]] = {starting, handed}  # type: ignore[arg-type]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # Cancelled: give up the start, and pass on a process handed
            # over meanwhile.
            self._give_up_start(starting)
            if handed.done() and not handed.cancelled():
                self._return(handed.result())
            handed.cancel()
            raise
        finally:
            if (handed, starting) in self._wanting:
                self._wanting.remove((handed, starting))
        if handed.done():
            self._give_up_start(starting)
            return handed.result()
        handed.cancel()
        return starting.result()

    def _return(self, live: _Live) -> None:
        """Put back a process that a cancelled call was handed and never used."""
        if self._closed:
            self._release_later(live)
        else:
            self._hand_over(live)

    def _give_up_start(self, starting: asyncio.Future[PowerShellProcess]) -> None:
        """Stop a start nobody waits for; close its process if it started anyway."""
        if not starting.done():
            starting.cancel()

        def started(task: asyncio.Future[PowerShellProcess]) -> None:
            if task.cancelled() or task.exception() is not None:
                return
            process = task.result()
            self._processes.add(process)
            closing = asyncio.ensure_future(self._discard(process))
            self._cleanups.add(closing)
            closing.add_done_callback(self._cleanup_done)

        starting.add_done_callback(started)

    async def _discard(self, process: PowerShellProcess) -> None:
        await self._close(process, 0.0)

    async def _release(self, live: _Live, *, graceful: bool) -> None:
        if live in self._idle:
            self._idle.remove(live)
        self._active.discard(live)
        await self._close(live.process, _CLOSE_GRACE if graceful else 0.0)

    async def _close(self, process: PowerShellProcess, grace: float) -> int | None:
        # Shielded: a cancelled caller must not leave a half-closed process.
        # The process stays known to abort() until its close is done.
        closing = asyncio.ensure_future(process.close(grace))
        closing.add_done_callback(lambda _: self._processes.discard(process))
        # Known to aclose() too: a caller cancelled once more while it waits
        # here (asyncio.gather lets its caller go on at the first cancelled
        # call, whose close may then cancel the others) leaves the close
        # running, and aclose() waits for it, so that no process outlives
        # the event loop.
        self._cleanups.add(closing)
        closing.add_done_callback(self._cleanup_done)
        return await asyncio.shield(closing)

    async def _exchange(
        self, live: _Live, operation: str, request_id: int, request: bytes
    ) -> Reply:
        try:
            await live.process.write(request)
        except OSError as exc:
            error = await self._broken(live, operation, f"cannot write to PowerShell: {exc}")
            raise _NoAnswer(error) from exc
        try:
            frame = await live.frames.next_frame(target=self._target, operation=operation)
        except ProtocolError:
            raise
        except OSError as exc:
            raise await self._broken(live, operation, f"the PowerShell pipe broke: {exc}") from exc
        except EndOfOutput as end:
            if end.partial:
                raise await self._broken(
                    live, operation, "PowerShell exited in the middle of its answer", end.noise
                ) from None
            error = await self._broken(
                live, operation, "PowerShell exited without answering", end.noise
            )
            raise _NoAnswer(error) from None
        reply = decode_envelope(
            frame, request_id=request_id, target=self._target, operation=operation
        )
        live.answered += 1
        return reply

    async def _broken(
        self, live: _Live, operation: str, message: str, noise: str = ""
    ) -> TransportError:
        status = await self._close(live.process, 0.5)
        stderr = live.process.stderr_text().strip()
        if live.answered == 0 and (status in _NOT_FOUND_STATUS or _NOT_FOUND_TEXT in stderr):
            return PowerShellNotFoundError(
                self._executable,
                reason=f"could not be started ({_last_line(stderr) or f'status {status}'})",
                target=self._target,
                operation=operation,
            )
        if status is not None:
            message += f" (exit status {status})"
        detail = _last_line(stderr) or _last_line(noise)
        if detail:
            message += f": {detail}"
        return TransportBrokenError(message, target=self._target, operation=operation)

    async def aclose(self) -> None:
        """Close every process, idle or busy; calls in flight fail. Idempotent."""
        self._closed = True
        lives = list(self._active)
        if lives:
            await asyncio.gather(*(self._release(live, graceful=True) for live in lives))
        if self._cleanups:
            await asyncio.gather(*list(self._cleanups), return_exceptions=True)

    def abort(self, *, final: bool) -> None:
        """Kill every process now, without waiting. Never raises.

        Args:
            final: The transport is closing: calls in flight fail and no new
                process starts. Otherwise (a failed connect) the next call
                starts a new process.
        """
        if final:
            self._closed = True
        self._idle.clear()
        self._active.clear()
        for process in list(self._processes):
            process.abort()


def check_sessions(sessions: object) -> int:
    """Refuse a ``sessions`` setting that is not a whole number from 1 to :data:`MAX_SESSIONS`.

    Args:
        sessions: The setting.

    Returns:
        The setting.

    Raises:
        ValueError: It is not such a number (a bool is refused too).

    Example:
        >>> check_sessions(4)
        4
    """
    if isinstance(sessions, bool) or not isinstance(sessions, int):
        raise ValueError(f"sessions must be a whole number, not {sessions!r}")
    if not 1 <= sessions <= MAX_SESSIONS:
        raise ValueError(f"sessions must be from 1 to {MAX_SESSIONS}, not {sessions}")
    return sessions


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
