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
import signal
from collections.abc import Callable, Mapping, Sequence

from hvintegration.errors import OperationTimeoutError
from hvintegration.transport.base import CompletedCommand

__all__ = ["abort_process", "kill_process_group", "kill_process_tree", "run_process"]

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


async def run_process(
    argv: Sequence[str],
    *,
    input: bytes | None,
    timeout: float,
    target: str,
    env: Mapping[str, str] | None = None,
    running: set[asyncio.subprocess.Process] | None = None,
) -> CompletedCommand:
    """Run ``argv`` to completion and collect its output.

    Args:
        argv: Program and arguments, passed to exec without a shell.
        input: Bytes for stdin; stdin is empty when ``None``.
        timeout: Seconds before the child is killed.
        target: The target URL, for errors.
        env: The child's environment; the current one when ``None``.
        running: Holds the child while it runs, so that its owner can kill
            it when closing.

    Returns:
        The completed command; a program that does not exist or cannot be
        run gives exit status 127 or 126, as a shell would.

    Raises:
        OperationTimeoutError: ``timeout`` passed; the child is gone.
    """
    command = tuple(argv)
    if not command:
        raise ValueError("an empty command")
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=None if env is None else dict(env),
        )
    except FileNotFoundError:
        return CompletedCommand(command, _NOT_FOUND, b"", f"{command[0]}: not found\n".encode())
    except PermissionError:
        message = f"{command[0]}: permission denied\n".encode()
        return CompletedCommand(command, _NOT_EXECUTABLE, b"", message)
    if running is not None:
        running.add(process)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(input or b""), timeout)
    except asyncio.TimeoutError:
        await kill_process_group(process)
        raise OperationTimeoutError(
            f"{command[0]} did not finish within {timeout:g} s",
            timeout=timeout,
            target=target,
            operation="run_command",
        ) from None
    except BaseException:
        await kill_process_group(process)
        raise
    finally:
        if running is not None:
            running.discard(process)
    status = process.returncode
    assert status is not None
    # Killed by a signal: report it as a shell would (128 + signal number).
    return CompletedCommand(command, status if status >= 0 else 128 - status, stdout, stderr)
