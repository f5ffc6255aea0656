"""The ``local://`` transport: the machine running Python is the target.

Shell commands run as child processes of this process (a Linux guest
managing itself). PowerShell operations run through a local PowerShell
executable (a Hyper-V host managing itself), started with the fixed
bootstrap of :mod:`._powershell_wire`; parameters travel as JSON on its
stdin, never on its command line.

URL form::

    local://[?executable=PATH&mode=persistent|oneshot&sessions=N&max_output=BYTES]

``executable`` is the PowerShell program: Windows PowerShell by default on
Windows (see :func:`default_powershell`), ``pwsh`` elsewhere.
``mode=persistent`` (the default) keeps PowerShell processes for the
operations of the transport; ``mode=oneshot`` starts one per operation.
``sessions`` (default 4, :data:`~._powershell_session.DEFAULT_SESSIONS`)
bounds the PowerShell processes that run at once: concurrent operations
run side by side on up to that many, each started when first needed, and
the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import ntpath
import os
import platform
import sys
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from hvintegration.errors import (
    InvalidTargetError,
    PowerShellNotFoundError,
    TransportClosedError,
    TransportError,
)
from hvintegration.transport._powershell_session import (
    DEFAULT_SESSIONS,
    PowerShellProcess,
    PowerShellSession,
    check_sessions,
)
from hvintegration.transport._powershell_wire import DEFAULT_MAX_OUTPUT, powershell_argv
from hvintegration.transport._process import abort_process, kill_process_group, run_process
from hvintegration.transport._url import check_options, parse_options, whole_number
from hvintegration.transport.base import (
    CompletedCommand,
    JsonValue,
    OperationResult,
    PowerShellTransport,
    ShellTransport,
)

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = ["MODES", "LocalTarget", "LocalTransport", "default_powershell", "windows_powershell"]

MODES = ("persistent", "oneshot")
"""How PowerShell processes serve operations: one long-lived process per
transport, or one process per operation."""

_STDERR_KEPT = 8192


def default_powershell() -> str:
    """The PowerShell that ``local://`` starts unless told otherwise.

    ``pwsh`` off Windows. On Windows, Windows PowerShell 5.1:
    ``powershell.exe``, except under a 32-bit Python on 64-bit Windows,
    where that name finds the 32-bit PowerShell in ``SysWOW64``, which has no
    Hyper-V module; there it is the 64-bit one, through the ``Sysnative``
    alias (see :func:`windows_powershell`).
    """
    if sys.platform != "win32":
        return "pwsh"
    return windows_powershell(os.environ, platform.architecture()[0])


def windows_powershell(environ: Mapping[str, str], python_bits: str) -> str:
    """The Windows PowerShell to start on Windows, for a Python of ``python_bits``.

    A 32-bit process on 64-bit Windows runs under WOW64, whose file system
    redirector sends ``System32`` to ``SysWOW64``; such a process reaches the
    real ``System32`` as ``%SystemRoot%\\Sysnative`` ("File System
    Redirector",
    https://learn.microsoft.com/windows/win32/winprog64/file-system-redirector).
    WOW64 sets ``PROCESSOR_ARCHITEW6432`` (the machine's real architecture)
    in such processes only ("WOW64 Implementation Details",
    https://learn.microsoft.com/windows/win32/winprog64/wow64-implementation-details).
    The Hyper-V module is 64-bit only.

    Args:
        environ: The environment (``os.environ``).
        python_bits: ``platform.architecture()[0]``: ``32bit`` or ``64bit``.

    Returns:
        ``powershell.exe``, or the full ``Sysnative`` path under WOW64.

    Example:
        >>> wow64 = {"PROCESSOR_ARCHITEW6432": "AMD64", "SystemRoot": "C:\\\\Windows"}
        >>> print(windows_powershell(wow64, "32bit"))
        C:\\Windows\\Sysnative\\WindowsPowerShell\\v1.0\\powershell.exe
        >>> windows_powershell({}, "64bit")
        'powershell.exe'
    """
    if python_bits == "32bit" and environ.get("PROCESSOR_ARCHITEW6432"):
        root = environ.get("SystemRoot") or environ.get("SYSTEMROOT") or "C:\\Windows"
        return ntpath.join(root, "Sysnative", "WindowsPowerShell", "v1.0", "powershell.exe")
    return "powershell.exe"


@attrs.frozen
class LocalTarget:
    """Settings for the local machine as a target.

    Attributes:
        executable: The PowerShell program for operations
            (:func:`default_powershell` by default).
        mode: ``persistent`` (PowerShell processes kept for many
            operations) or ``oneshot`` (one process per operation).
        sessions: PowerShell processes that may run at once (1 to 64; 4 by
            default): concurrent operations run side by side on up to this
            many, each started when first needed; more wait their turn.
        max_output: Bytes one call may write (a shell command's stdout and
            stderr together, or one PowerShell answer) before it is stopped
            and refused as oversized.

    Example:
        >>> LocalTarget(executable="/opt/pwsh").url
        'local://?executable=%2Fopt%2Fpwsh'
        >>> LocalTarget(mode="oneshot").url
        'local://?mode=oneshot'
        >>> LocalTarget(sessions=8).url
        'local://?sessions=8'
    """

    executable: str = attrs.field(factory=default_powershell)
    mode: str = "persistent"
    max_output: int = DEFAULT_MAX_OUTPUT
    sessions: int = DEFAULT_SESSIONS

    def __attrs_post_init__(self) -> None:
        if not self.executable:
            raise InvalidTargetError("executable must not be empty", target="local://")
        if self.mode not in MODES:
            raise InvalidTargetError(
                f"unknown mode {self.mode!r} (valid: {', '.join(MODES)})", target="local://"
            )
        if self.max_output < 1024:
            raise InvalidTargetError("max_output must be at least 1024 bytes", target="local://")
        try:
            check_sessions(self.sessions)
        except ValueError as exc:
            raise InvalidTargetError(str(exc), target="local://") from None

    def __repr__(self) -> str:
        # The URL names every setting that matters and never the password.
        return f"<LocalTarget {self.url}>"

    @property
    def url(self) -> str:
        """The target as a URL."""
        query = {}
        if self.executable != default_powershell():
            query["executable"] = self.executable
        if self.mode != "persistent":
            query["mode"] = self.mode
        if self.sessions != DEFAULT_SESSIONS:
            query["sessions"] = str(self.sessions)
        if self.max_output != DEFAULT_MAX_OUTPUT:
            query["max_output"] = str(self.max_output)
        return "local://" + (f"?{urllib.parse.urlencode(query)}" if query else "")

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> LocalTarget:
        """Parse ``local://`` URL parts.

        Raises:
            InvalidTargetError: The URL names a host or an unknown option.
        """
        if url.netloc not in ("", "localhost"):
            raise InvalidTargetError(
                "local:// takes no host name; use ssh:// or psrp:// for another machine",
                target="local://",
            )
        options, single = parse_options(url)
        check_options(
            url,
            options,
            ("executable", "mode", "sessions", "max_output"),
            scheme="local",
            target="local://",
        )
        try:
            max_output = whole_number(single, "max_output", DEFAULT_MAX_OUTPUT)
            sessions = whole_number(single, "sessions", DEFAULT_SESSIONS)
        except InvalidTargetError as exc:
            raise InvalidTargetError(str(exc), target="local://") from None
        mode = single.get("mode", "persistent")
        if "executable" in single:
            return cls(
                executable=single["executable"],
                mode=mode,
                max_output=max_output,
                sessions=sessions,
            )
        return cls(mode=mode, max_output=max_output, sessions=sessions)

    def open(self) -> LocalTransport:
        """A transport to this machine."""
        return LocalTransport(self)


class LocalTransport(PowerShellTransport, ShellTransport):
    """Runs commands and PowerShell operations on this machine.

    Args:
        settings: The target settings; defaults when omitted.

    Example:
        >>> import asyncio
        >>> async def main():
        ...     async with LocalTransport() as local:
        ...         done = await local.run_command(["echo", "hi"], timeout=5)
        ...     return done.exit_status, done.stdout
        >>> asyncio.run(main())
        (0, b'hi\\n')
    """

    def __init__(self, settings: LocalTarget | None = None) -> None:
        self.settings = settings if settings is not None else LocalTarget()
        self._session = PowerShellSession(
            self._spawn,
            target=self.target,
            executable=self.settings.executable,
            persistent=self.settings.mode == "persistent",
            max_output=self.settings.max_output,
            sessions=self.settings.sessions,
        )
        self._running: set[asyncio.subprocess.Process] = set()

    @property
    def target(self) -> str:
        """``local://`` and the PowerShell executable if not the default."""
        return self.settings.url

    async def _run_command(
        self,
        argv: tuple[str, ...],
        *,
        input: bytes | None,
        timeout: float,
    ) -> CompletedCommand:
        # The child, its group and whatever carries its call token are killed
        # on a timeout or a cancellation; its output is capped (max_output).
        done = await run_process(
            argv,
            input=input,
            timeout=timeout,
            target=self.target,
            running=self._running,
            max_output=self.settings.max_output,
        )
        if self._closed:
            raise TransportClosedError(
                f"the transport was closed while {argv[0]} ran; it was killed",
                target=self.target,
                operation="run_command",
            )
        return done

    async def _run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        # PowerShellNotFoundError when the executable cannot be run;
        # ProtocolError (process stopped) for an unreadable answer;
        # TransportBrokenError when the process died (the next call starts
        # a new one).
        return await self._session.run(operation, parameters, timeout=timeout)

    async def _spawn(self, operation: str) -> PowerShellProcess:
        executable = self.settings.executable
        try:
            process = await asyncio.create_subprocess_exec(
                *powershell_argv(executable),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise PowerShellNotFoundError(
                executable, target=self.target, operation=operation
            ) from exc
        except PermissionError as exc:
            raise PowerShellNotFoundError(
                executable,
                reason="cannot be run (permission denied)",
                target=self.target,
                operation=operation,
            ) from exc
        except OSError as exc:
            raise TransportError(
                f"cannot start {executable}: {exc.strerror or exc}",
                target=self.target,
                operation=operation,
            ) from exc
        return _LocalPowerShell(process)

    async def _aclose(self) -> None:
        """Kill the shell commands still running, then stop the PowerShell process."""
        for process in list(self._running):
            await kill_process_group(process)
        await self._session.aclose()

    def _abort(self) -> None:
        """Kill the shell commands and PowerShell processes at once."""
        if self._closed:
            for process in list(self._running):
                abort_process(process)
        self._session.abort(final=self._closed)


class _LocalPowerShell:
    """A PowerShell child process in its own process group."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._stderr = bytearray()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        self._closed = False

    async def _drain_stderr(self) -> None:
        # Always read stderr, or a chatty child blocks on a full pipe.
        stream = self._process.stderr
        assert stream is not None
        while chunk := await stream.read(65536):
            self._stderr += chunk
            del self._stderr[:-_STDERR_KEPT]

    async def write(self, data: bytes) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        stdin.write(data)
        await stdin.drain()

    async def read(self, size: int) -> bytes:
        stdout = self._process.stdout
        assert stdout is not None
        return await stdout.read(size)

    async def _discard_stdout(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        while await stdout.read(65536):
            pass

    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def alive(self) -> bool:
        return not self._closed and self._process.returncode is None

    def abort(self) -> None:
        self._closed = True
        abort_process(self._process)

    async def close(self, grace: float) -> int | None:
        self._closed = True
        process = self._process
        # Keep reading stdout until the child is gone: asyncio reaps a child
        # only once its pipes are closed, and a full pipe never closes.
        drain = asyncio.ensure_future(self._discard_stdout())
        try:
            if grace > 0 and process.returncode is None:
                with contextlib.suppress(OSError, RuntimeError):
                    assert process.stdin is not None
                    process.stdin.close()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(process.wait()), grace)
            await kill_process_group(process)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(drain, 1.0)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        self._stderr_task.cancel()
        status = process.returncode
        return None if status is None else (status if status >= 0 else 128 - status)
