"""Run operations through PowerShell processes: persistent or one per call.

A :class:`PowerShellSession` owns at most one running PowerShell (a local
child process or an SSH channel, behind :class:`PowerShellProcess`) and
speaks the wire contract of :mod:`._powershell_wire` with it.

* Persistent (the default): one process runs call after call, so PowerShell
  starts and the Hyper-V module loads once. Calls are serialised on it. A
  process that died is replaced by a new one on the next call.
* One-shot: each call starts a process, sends one request and closes it;
  concurrent calls run in parallel processes.

The transport applies each call's deadline. A call that times out, is
cancelled, or gets an unreadable answer kills its process (a persistent session starts a fresh
one next time), because the process may be busy or mid-answer and cannot be
trusted with the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from hvintegration.transport.base import JsonValue, OperationResult
from hvintegration.transport.errormap import error_from_record

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = ["PowerShellProcess", "PowerShellSession", "Spawner"]

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
    """Runs operations through PowerShell processes started by ``spawn``.

    Args:
        spawn: Starts one process.
        target: The target URL, for errors.
        executable: The PowerShell program, for errors.
        persistent: Keep one process for many calls (else one per call).
        max_output: Bytes one call may read before the answer is refused.
    """

    def __init__(
        self,
        spawn: Spawner,
        *,
        target: str,
        executable: str,
        persistent: bool,
        max_output: int,
    ) -> None:
        self._spawn = spawn
        self._target = target
        self._executable = executable
        self.persistent = persistent
        self._max_output = max_output
        self._live: _Live | None = None
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._closed = False
        self._active: set[_Live] = set()
        # Every process started and not yet seen to the end, including those
        # being closed, so that abort() can kill what a cancelled close left.
        self._processes: set[PowerShellProcess] = set()
        self._cleanups: set[asyncio.Task[None]] = set()

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
        # One process serves one call at a time; one-shot calls each have
        # their own process and so run side by side.
        async with self._lock if self.persistent else contextlib.nullcontext():
            self._check_open(operation)
            for attempt in (1, 2):
                live = await self._acquire(operation)
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
                    if answered and not self.persistent:
                        self._release_later(live)
                    elif not answered:
                        await self._release(live, graceful=False)
                break
        if reply.error is not None:
            raise error_from_record(reply.error, target=self._target, operation=operation)
        return reply.result

    def _release_later(self, live: _Live) -> None:
        task = asyncio.ensure_future(self._release(live, graceful=True))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanup_done)

    def _cleanup_done(self, task: asyncio.Task[None]) -> None:
        self._cleanups.discard(task)
        if not task.cancelled():
            # Retrieved so that a failed shutdown is not reported as an
            # unhandled task error; the process is gone either way.
            task.exception()

    async def _acquire(self, operation: str) -> _Live:
        live = self._live
        if live is not None and live.process.alive():
            return live
        if live is not None:
            await self._release(live, graceful=False)
        process = await self._spawn(operation)
        self._processes.add(process)
        if self._closed:
            # The transport closed while the process was starting.
            await self._close(process, 0.0)
            self._check_open(operation)
        live = _Live(process, self._max_output)
        self._active.add(live)
        if self.persistent:
            self._live = live
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

    async def _release(self, live: _Live, *, graceful: bool) -> None:
        if self._live is live:
            self._live = None
        self._active.discard(live)
        await self._close(live.process, _CLOSE_GRACE if graceful else 0.0)

    async def _close(self, process: PowerShellProcess, grace: float) -> int | None:
        # Shielded: a cancelled caller must not leave a half-closed process.
        # The process stays known to abort() until its close is done.
        closing = asyncio.ensure_future(process.close(grace))
        closing.add_done_callback(lambda _: self._processes.discard(process))
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
        """Close every process; calls in flight fail. Idempotent."""
        self._closed = True
        for live in list(self._active):
            await self._release(live, graceful=True)
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
        self._live = None
        self._active.clear()
        for process in list(self._processes):
            process.abort()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
