"""Run a local child process with a timeout, and never leave it behind.

Shared by the transports that start local programs. The child gets its own
process group, so a timeout or a cancelled task kills it and anything it
started, and the call waits until the group is gone. Windows has no process
groups: there the child's whole process tree is killed through psutil.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence

from hvintegration.errors import OperationTimeoutError, RemoteCommandError
from hvintegration.transport.base import CompletedCommand

__all__ = [
    "CALL_VARIABLE",
    "DEFAULT_MAX_OUTPUT",
    "KILL_GRACE",
    "Output",
    "OutputLimitError",
    "abort_process",
    "kill_process_group",
    "kill_process_tree",
    "run_process",
]

_log = logging.getLogger("hvintegration.transport")

# A shell answers 127 for a program it cannot find and 126 for one it cannot
# run; the local transport answers the same, so callers see one behaviour on
# every transport.
_NOT_FOUND = 127
_NOT_EXECUTABLE = 126


def _group_kill() -> tuple[Callable[[int, int], None], int] | None:
    """``os.killpg`` and ``SIGKILL`` where the platform has them (POSIX); else ``None``.

    Looked up at each call, not at import, so the Windows branch is what
    runs wherever they are missing.
    """
    killpg = getattr(os, "killpg", None)
    sigkill = getattr(signal, "SIGKILL", None)
    if killpg is None or sigkill is None:
        return None
    return killpg, int(sigkill)


def kill_process_tree(pid: int) -> None:
    """Kill a process and every process it started, where there are no process groups.

    Windows has no ``killpg``: ``TerminateProcess`` (what ``Process.kill()``
    calls there) ends the one process, and whatever it started, such as the
    programs a PowerShell script runs, would live on. psutil lists the
    descendants first (``Process.children(recursive=True)``, see
    https://psutil.readthedocs.io/en/latest/#kill-process-tree), then each is
    killed, the parent first so that it starts no more. Never raises.

    Args:
        pid: The process id of the root of the tree.
    """
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency on Windows
        _log.warning("psutil is missing; only process %s itself is killed", pid)
        with contextlib.suppress(OSError):
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        return
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except (psutil.Error, OSError):
        return
    for process in tree:
        with contextlib.suppress(psutil.Error, OSError):
            process.kill()


async def kill_process_group(process: asyncio.subprocess.Process) -> None:
    """Kill a child started with ``start_new_session=True`` and its group, then reap it.

    On Windows, which has no process groups, the child's whole process tree
    is killed instead (:func:`kill_process_tree`).

    The caller must keep reading the child's stdout and stderr pipes, if it
    has any, until this returns: asyncio reports a child as reaped only once
    its pipes are closed, and a full pipe nobody reads never closes.
    """
    if process.returncode is None:
        group = _group_kill()
        if group is None:
            kill_process_tree(process.pid)
        else:
            killpg, sigkill = group
            # Signal the group only: the child leads it. Process.kill() would
            # first poll (waitpid) a child that has just exited, reaping it
            # behind asyncio's child watcher, which then logs "Unknown child
            # process" and reports status 255 instead of the real one.
            try:
                killpg(process.pid, sigkill)
            except ProcessLookupError:
                pass
            except PermissionError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
    # Reaping cannot hang: a killed process cannot refuse. Shield it so a
    # second cancellation does not leave a zombie.
    await asyncio.shield(process.wait())


def abort_process(process: asyncio.subprocess.Process) -> None:
    """Kill a child started with ``start_new_session=True`` and its group, without waiting.

    For when awaiting is not possible (a cancelled close). On Windows the
    child's process tree is killed instead. The child's pipes are closed
    too, so asyncio finishes with the child as soon as its exit is seen,
    even if nobody reads them any more. Never raises.
    """
    if process.returncode is None:
        group = _group_kill()
        try:
            if group is None:
                kill_process_tree(process.pid)
            else:
                killpg, sigkill = group
                killpg(process.pid, sigkill)
        except ProcessLookupError:
            pass
        except OSError:
            with contextlib.suppress(OSError):
                process.kill()
    transport = getattr(process, "_transport", None)
    for fd in (0, 1, 2):
        with contextlib.suppress(Exception):
            pipe = transport.get_pipe_transport(fd) if transport is not None else None
            if pipe is not None:
                pipe.close()


CALL_VARIABLE = "HVINTEGRATION_CALL"
"""The environment variable that carries a call's token to everything it starts."""

DEFAULT_MAX_OUTPUT = 32 * 1024 * 1024
"""Bytes of output (stdout and stderr together) one command may write."""

KILL_GRACE = 5.0
"""Seconds the cleanup of a timed-out or cancelled command may add to its call."""

# After the child has exited, how long its output may still take to end: a
# descendant it left behind may hold the pipes open for ever.
_OUTPUT_GRACE = 1.0


class OutputLimitError(Exception):
    """A command wrote more than its output limit (raised by :class:`Output`)."""


class Output:
    """The stdout and stderr of one command, at most ``limit`` bytes together.

    Shared by ``local://`` and ``ssh://``: each drains its own streams into it
    and waits with :meth:`collect`.

    Args:
        limit: Bytes of stdout and stderr allowed together.
    """

    def __init__(self, limit: int) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._limit = limit
        self._total = 0

    async def drain(self, read: Callable[[int], Awaitable[bytes]], into: bytearray) -> None:
        """Read with ``read`` until it returns nothing, into ``into``.

        Raises:
            OutputLimitError: More than ``limit`` bytes arrived in all.
        """
        while chunk := await read(65536):
            self._total += len(chunk)
            if self._total > self._limit:
                raise OutputLimitError
            into += chunk

    async def collect(
        self, readers: Awaitable[object], exited: Awaitable[object]
    ) -> tuple[bytes, bytes, bool]:
        """Wait for the command to exit and its output to end.

        Once the command has exited, the output gets ``_OUTPUT_GRACE`` seconds
        more to end: a descendant left running may hold it open. Whatever is
        still pending at the end is cancelled.

        Args:
            readers: Draining every stream (and feeding stdin, if any).
            exited: Done when the command has exited.

        Returns:
            stdout, stderr, and whether the output ended (``False``: a
            descendant still holds it open).

        Raises:
            OutputLimitError: The output went over the limit.
        """
        reading: asyncio.Future[object] = asyncio.ensure_future(readers)
        exit_: asyncio.Future[object] = asyncio.ensure_future(exited)
        try:
            await asyncio.wait([reading, exit_], return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                await asyncio.wait([reading], timeout=_OUTPUT_GRACE)
            ended = reading.done()
            if ended:
                reading.result()
            # The exit may be noticed only after the output ended.
            await exit_
        finally:
            for future in (reading, exit_):
                if not future.done():
                    future.cancel()
                    with contextlib.suppress(BaseException):
                        await future
        return bytes(self.stdout), bytes(self.stderr), ended


async def run_process(
    argv: Sequence[str],
    *,
    input: bytes | None,
    timeout: float,
    target: str,
    env: Mapping[str, str] | None = None,
    running: set[asyncio.subprocess.Process] | None = None,
    max_output: int = DEFAULT_MAX_OUTPUT,
) -> CompletedCommand:
    """Run ``argv`` to completion and collect its output.

    The child leads a new process group and carries a per-call token in
    :data:`CALL_VARIABLE`; on a timeout or a cancellation the group, every
    process holding the token (even one that left the group) and their
    descendants are killed before this returns, at most :data:`KILL_GRACE`
    seconds after the deadline. A descendant the child leaves running after
    a normal exit is killed with the group after the output grace of
    ``_OUTPUT_GRACE`` seconds, unless it left the group (a daemon started
    with ``setsid``), which is left alone.

    Args:
        argv: Program and arguments, passed to exec without a shell.
        input: Bytes for stdin; stdin is empty when ``None``.
        timeout: Seconds before the child is killed.
        target: The target URL, for errors.
        env: The child's environment; the current one when ``None``.
        running: Holds the child while it runs, so that its owner can kill
            it when closing.
        max_output: Bytes of stdout and stderr together before the child is
            killed and the call refused.

    Returns:
        The completed command; a program that does not exist or cannot be
        run gives exit status 127 or 126, as a shell would.

    Raises:
        OperationTimeoutError: ``timeout`` passed; the child is gone.
        RemoteCommandError: More than ``max_output`` bytes of output; the
            child is gone.
    """
    command = tuple(argv)
    if not command:
        raise ValueError("an empty command")
    token = secrets.token_hex(12)
    child_env = dict(os.environ if env is None else env)
    child_env[CALL_VARIABLE] = token
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=child_env,
        )
    except FileNotFoundError:
        return CompletedCommand(command, _NOT_FOUND, b"", f"{command[0]}: not found\n".encode())
    except PermissionError:
        message = f"{command[0]}: permission denied\n".encode()
        return CompletedCommand(command, _NOT_EXECUTABLE, b"", message)
    if running is not None:
        running.add(process)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        stdout, stderr = await asyncio.wait_for(_collect(process, input, max_output), timeout)
    except BaseException as exc:
        await _kill_call(process, token)
        if isinstance(exc, OutputLimitError):
            raise RemoteCommandError(
                f"{command[0]} wrote more than {max_output} bytes of output (max_output); "
                "it was killed",
                error_id="output-limit",
                target=target,
                operation="run_command",
            ) from None
        if isinstance(exc, asyncio.TimeoutError) or (
            isinstance(exc, asyncio.CancelledError) and loop.time() >= deadline - 0.01
        ):
            raise OperationTimeoutError(
                f"{command[0]} did not finish within {timeout:g} s; it was killed with "
                "everything it started, but it may have made its change before that",
                timeout=timeout,
                target=target,
                operation="run_command",
            ) from None
        raise
    finally:
        if running is not None:
            running.discard(process)
    status = process.returncode
    assert status is not None
    # What is left of the child's group (``sleep 300 &``) would run on after
    # the call: kill it. A descendant that left the group (a daemon started
    # with setsid) is not the call's any more and is left alone.
    group = _group_kill()
    if group is not None:
        with contextlib.suppress(OSError):
            group[0](process.pid, group[1])
    # Killed by a signal: report it as a shell would (128 + signal number).
    return CompletedCommand(command, status if status >= 0 else 128 - status, stdout, stderr)


async def _collect(
    process: asyncio.subprocess.Process, input: bytes | None, limit: int
) -> tuple[bytes, bytes]:
    """Feed stdin, read stdout and stderr (at most ``limit`` bytes) until the child is done."""
    output = Output(limit)

    async def feed() -> None:
        stdin = process.stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if input:
                stdin.write(input)
                await stdin.drain()
            stdin.close()

    async def exit() -> None:
        # process.wait() returns only once the pipes are closed too, which a
        # descendant may prevent; returncode is set as soon as the child exits.
        while process.returncode is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    assert process.stdout is not None
    assert process.stderr is not None
    readers = asyncio.gather(
        feed(),
        output.drain(process.stdout.read, output.stdout),
        output.drain(process.stderr.read, output.stderr),
    )
    stdout, stderr, ended = await output.collect(readers, exit())
    if not ended:
        # A descendant holds the output open: stop listening, so that
        # asyncio can finish with the child.
        _close_pipes(process)
    await process.wait()
    return stdout, stderr


def _close_pipes(process: asyncio.subprocess.Process) -> None:
    transport = getattr(process, "_transport", None)
    for fd in (0, 1, 2):
        with contextlib.suppress(Exception):
            pipe = transport.get_pipe_transport(fd) if transport is not None else None
            if pipe is not None:
                pipe.close()


async def _kill_call(process: asyncio.subprocess.Process, token: str) -> None:
    """Kill the child, its group and every holder of ``token``; reap the child. Never raises.

    Survives a second cancellation: the cleanup finishes first, then the
    cancellation is passed on.
    """
    task = asyncio.ensure_future(_kill_call_now(process, token))
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        current = asyncio.current_task()
        if current is not None:
            current.cancel()


async def _kill_call_now(process: asyncio.subprocess.Process, token: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.get_running_loop().run_in_executor(None, _kill_token_holders, token)
    # What is left of the group, and the child itself; then let asyncio
    # finish with it even if something still holds its pipes.
    _close_pipes(process)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(kill_process_group(process), KILL_GRACE)


def _kill_token_holders(token: str) -> None:
    """SIGKILL every process whose environment holds ``token``, with its descendants.

    Where there is a ``/proc`` (Linux); elsewhere the process group (or the
    Windows process tree) is all that is killed. Each found process is
    stopped first, so that it cannot fork a child the next scan would miss.
    """
    if not os.path.isdir("/proc/self") or not hasattr(signal, "SIGSTOP"):
        return
    needle = f"\0{CALL_VARIABLE}={token}\0".encode()
    me = os.getpid()
    found: set[int] = set()
    for _ in range(50):
        new = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in found or int(entry) == me:
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
                if fields[0] == b"Z":
                    continue
                hit = int(fields[1]) in found
                if not hit:
                    with open(f"/proc/{pid}/environ", "rb") as handle:
                        hit = needle in b"\0" + handle.read()
            except (OSError, IndexError, ValueError):
                continue
            if hit:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGSTOP)
                new.add(pid)
        if not new:
            break
        found |= new
    for pid in found:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
