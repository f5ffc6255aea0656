"""The ``ssh://`` transport: one reused asyncssh connection per target.

Shell commands (a Linux guest) travel as argv lists, quoted for a POSIX
shell with :func:`shlex.join`, so no argument is ever read as shell syntax.
PowerShell operations (a Windows host or guest running OpenSSH) run through
a fixed bootstrap command line with the requests on the channel's stdin
(:mod:`._powershell_wire`); the command line holds no caller value and is
the same for cmd.exe, PowerShell and a POSIX login shell.

Secure by default: the host key must be in ``known_hosts`` (the user's
``~/.ssh/known_hosts`` unless another file is named), keys come from the
user's usual files and agent, and no password or key material ever appears
in ``repr``, logs or errors.

URL form::

    ssh://[user@]host[:port][?known_hosts=PATH&key=PATH&shell=posix|powershell|cmd
                             &executable=NAME&mode=persistent|oneshot]

``shell`` names the remote login shell: ``posix`` for Linux (the default),
``powershell`` or ``cmd`` for Windows OpenSSH (whose default shell is
cmd.exe unless the ``DefaultShell`` registry value says otherwise).
``executable`` is the remote PowerShell program: ``powershell`` on Windows
shells, ``pwsh`` on a POSIX shell. ``mode=persistent`` (the default) keeps
one PowerShell channel open for every operation; ``mode=oneshot`` opens one
per operation. A password may be given to :class:`SSHTarget` directly; a
password in the URL is accepted but discouraged (it lands in shell history),
and never shown again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from hvintegration.errors import (
    AuthenticationError,
    HostKeyError,
    InvalidTargetError,
    OperationTimeoutError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.transport._powershell_session import PowerShellProcess, PowerShellSession
from hvintegration.transport._powershell_wire import (
    DEFAULT_MAX_OUTPUT,
    command_line,
    validate_executable,
)
from hvintegration.transport._url import check_options, parse_options
from hvintegration.transport.base import (
    CompletedCommand,
    JsonValue,
    OperationResult,
    PowerShellTransport,
    ShellTransport,
)

if TYPE_CHECKING:
    import asyncssh

    from hvintegration.operations import Operation

__all__ = ["SSHTarget", "SSHTransport"]

_SHELLS = ("posix", "powershell", "cmd")
_MODES = ("persistent", "oneshot")
_KILL_TIMEOUT = 5.0
_STDERR_KEPT = 8192
# Every shell command first reports its process id on stderr, then becomes
# the command (exec keeps the id), so that a timed-out or cancelled command
# can be killed on the remote side.
_PID_MARKER = b"hvintegration-pid:"
_PID_PREFIX = 'printf "hvintegration-pid:%s\\n" "$$" >&2 && exec '

_OPTIONS = {"known_hosts", "key", "shell", "connect_timeout", "executable", "mode"}


def known_hosts_option(path: str | None) -> str | tuple[list[str], list[str], list[str]]:
    """What to pass asyncssh as ``known_hosts`` so that host keys are always checked.

    Left unset, asyncssh would follow the user's OpenSSH configuration, and
    ``UserKnownHostsFile none`` there would silently accept any host key. So
    the library always names the trust store itself.

    Args:
        path: A known_hosts file, or ``None`` for ``~/.ssh/known_hosts``.

    Returns:
        The file to read, or empty trust lists (every host key is then
        refused) when the default file does not exist.
    """
    if path is not None:
        return path
    default = os.path.expanduser("~/.ssh/known_hosts")
    return default if os.path.exists(default) else ([], [], [])


@attrs.frozen
class SSHTarget:
    """Settings for an SSH target, apart from any live connection.

    Attributes:
        host: Host name or address.
        port: TCP port.
        user: Login name; the local user's when ``None``.
        password: A password, if password authentication is wanted. Never
            shown in ``repr`` or the URL.
        known_hosts: A known_hosts file; the user's ``~/.ssh/known_hosts``
            when ``None``.
        client_keys: Private key files; the user's default keys and agent
            when ``None``.
        shell: The remote login shell: ``posix``, ``powershell`` or ``cmd``.
        connect_timeout: Seconds to establish the connection.
        verify_host_key: Whether the host key must be known. Turning it off
            exposes the connection to impersonation; it exists for labs.
        executable: The remote PowerShell program for operations; ``None``
            means ``powershell`` on a Windows shell and ``pwsh`` on a POSIX
            shell. A plain name or path (it stands unquoted in the command
            line).
        mode: ``persistent`` (one PowerShell channel for every operation) or
            ``oneshot`` (one channel per operation).
        max_output: Bytes one operation may write before its answer is
            refused as oversized.

    Example:
        >>> SSHTarget("guest1", user="admin", password="s3cret").url
        'ssh://admin@guest1'
        >>> "s3cret" in repr(SSHTarget("guest1", password="s3cret"))
        False
    """

    host: str
    port: int = 22
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    known_hosts: str | None = None
    client_keys: tuple[str, ...] | None = None
    shell: str = "posix"
    connect_timeout: float = 15.0
    verify_host_key: bool = True
    executable: str | None = None
    mode: str = "persistent"
    max_output: int = DEFAULT_MAX_OUTPUT

    def __attrs_post_init__(self) -> None:
        if not self.host:
            raise InvalidTargetError("an ssh:// target needs a host name")
        if not 0 < self.port < 65536:
            raise InvalidTargetError(f"port {self.port} is out of range", target=self.url)
        if self.shell not in _SHELLS:
            raise InvalidTargetError(
                f"unknown remote shell {self.shell!r} (valid: {', '.join(_SHELLS)})",
                target=self.url,
            )
        if self.connect_timeout <= 0:
            raise InvalidTargetError("connect_timeout must be positive", target=self.url)
        if self.executable is not None:
            validate_executable(self.executable, target=self.url)
        if self.mode not in _MODES:
            raise InvalidTargetError(
                f"unknown mode {self.mode!r} (valid: {', '.join(_MODES)})", target=self.url
            )
        if self.max_output < 1024:
            raise InvalidTargetError("max_output must be at least 1024 bytes", target=self.url)

    @property
    def powershell(self) -> str:
        """The remote PowerShell program that operations start.

        Example:
            >>> SSHTarget("hv1", shell="cmd").powershell, SSHTarget("hv1").powershell
            ('powershell', 'pwsh')
        """
        if self.executable is not None:
            return self.executable
        return "pwsh" if self.shell == "posix" else "powershell"

    @property
    def url(self) -> str:
        """The target as a URL, without password or options."""
        user = f"{urllib.parse.quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port != 22 else ""
        return f"ssh://{user}{host}{port}"

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> SSHTarget:
        """Parse ``ssh://`` URL parts.

        Raises:
            InvalidTargetError: No host, a bad port or an unknown option. The
                message never repeats a password.
        """
        try:
            port = url.port or 22
        except ValueError:
            raise InvalidTargetError(
                "the port of an ssh:// target must be a number from 1 to 65535"
            ) from None
        if not url.hostname:
            raise InvalidTargetError("an ssh:// target needs a host name: ssh://user@host")
        options, single = parse_options(url)
        check_options(url, options, _OPTIONS, scheme="ssh")
        keys = tuple(options["key"]) if "key" in options else None
        try:
            connect_timeout = float(single.get("connect_timeout", "15"))
        except ValueError:
            raise InvalidTargetError("connect_timeout must be a number of seconds") from None
        return cls(
            host=url.hostname,
            port=port,
            user=urllib.parse.unquote(url.username) if url.username else None,
            password=urllib.parse.unquote(url.password) if url.password else None,
            known_hosts=single.get("known_hosts") or None,
            client_keys=keys,
            shell=single.get("shell", "posix"),
            connect_timeout=connect_timeout,
            executable=single.get("executable") or None,
            mode=single.get("mode", "persistent"),
        )

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`asyncssh.connect`.

        Returns:
            The options; secrets included, so never log them.
        """
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": 30,
        }
        if self.user is not None:
            options["username"] = self.user
        if self.password is not None:
            options["password"] = self.password
        options["known_hosts"] = (
            known_hosts_option(self.known_hosts) if self.verify_host_key else None
        )
        if self.client_keys is not None:
            options["client_keys"] = list(self.client_keys)
            options["agent_path"] = None
        return options

    def open(self) -> SSHTransport:
        """A transport for this target; it connects on first use."""
        return SSHTransport(self)


class SSHTransport(PowerShellTransport, ShellTransport):
    """One SSH connection to one target, made lazily and reused by every call.

    A broken connection is dropped and made again on the next call.

    Args:
        settings: The target settings.
    """

    def __init__(self, settings: SSHTarget) -> None:
        self.settings = settings
        self._connection: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._session = PowerShellSession(
            self._spawn,
            target=self.target,
            executable=settings.powershell,
            persistent=settings.mode == "persistent",
            max_output=settings.max_output,
        )

    @property
    def target(self) -> str:
        """The target URL, with no secret in it."""
        return self.settings.url

    async def _open(self) -> None:
        """Connect now, so that authentication and host-key errors surface early."""
        await self._connect("open")

    async def _connect(self, operation: str) -> asyncssh.SSHClientConnection:
        if self._closed:
            raise TransportClosedError(
                "the transport is closed", target=self.target, operation=operation
            )
        async with self._lock:
            connection = self._connection
            if connection is not None and not connection.is_closed():
                return connection
            self._connection = None
            connection = await self._dial(operation)
            if self._closed:
                # aclose() ran while we were connecting.
                connection.close()
                raise TransportClosedError(
                    "the transport is closed", target=self.target, operation=operation
                )
            self._connection = connection
            return connection

    async def _dial(self, operation: str) -> asyncssh.SSHClientConnection:
        import asyncssh

        where = {"target": self.target, "operation": operation}
        settings = self.settings.connect_options()
        host, port = settings.pop("host"), settings.pop("port")
        try:
            options = asyncssh.SSHClientConnectionOptions(**settings)
        except (OSError, asyncssh.KeyImportError, ValueError) as exc:
            # A key or known_hosts file that is missing or unreadable is a
            # settings problem, not a network one.
            raise InvalidTargetError(
                f"cannot read an SSH key or known_hosts file: {exc}", **where
            ) from exc
        try:
            return await asyncssh.connect(host, port, options=options)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyError(
                f"the host key of {self.settings.host} is not trusted: {exc.reason} "
                "(add it to known_hosts after checking its fingerprint)",
                **where,
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise AuthenticationError(
                f"authentication as {self.settings.user or 'the local user'} failed "
                "(check the key, agent or password)",
                **where,
            ) from exc
        except asyncssh.DisconnectError as exc:
            raise TransportError(f"SSH connection refused: {exc.reason}", **where) from exc
        except asyncio.TimeoutError as exc:
            raise OperationTimeoutError(
                f"no SSH connection within {self.settings.connect_timeout:g} s",
                timeout=self.settings.connect_timeout,
                **where,
            ) from exc
        except OSError as exc:
            raise TransportError(
                f"cannot reach {self.settings.host}:{self.settings.port}: {exc.strerror or exc}",
                **where,
            ) from exc
        except asyncssh.Error as exc:
            raise TransportError(f"SSH connection failed: {exc}", **where) from exc

    def _drop(self, connection: asyncssh.SSHClientConnection) -> None:
        if self._connection is connection:
            self._connection = None
        connection.close()

    async def _run_command(
        self,
        argv: tuple[str, ...],
        *,
        input: bytes | None,
        timeout: float,
    ) -> CompletedCommand:
        # Every argument is quoted with shlex.join, so the remote shell
        # passes it on as one word and never interprets it.
        import asyncssh

        if self.settings.shell != "posix":
            raise TransportError(
                f"shell commands need a POSIX login shell; this target's is {self.settings.shell}",
                target=self.target,
                operation="run_command",
            )
        command = argv
        connection = await self._connect("run_command")
        try:
            process = await connection.create_process(
                _PID_PREFIX + shlex.join(command), encoding=None
            )
        except (asyncssh.ChannelOpenError, asyncssh.DisconnectError, OSError) as exc:
            self._drop(connection)
            raise TransportBrokenError(
                f"cannot open an SSH channel: {exc}", target=self.target, operation="run_command"
            ) from exc
        pid: int | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            pid, prelude = await asyncio.wait_for(_read_pid(process), timeout)
            stdout, stderr = await asyncio.wait_for(
                process.communicate(input or b""), max(0.0, deadline - loop.time())
            )
            stderr = prelude + _as_bytes(stderr)
        except asyncio.TimeoutError:
            await self._kill_remote(connection, process, pid)
            raise OperationTimeoutError(
                f"{command[0]} did not finish within {timeout:g} s",
                timeout=timeout,
                target=self.target,
                operation="run_command",
            ) from None
        except (asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError) as exc:
            process.close()
            self._drop(connection)
            raise TransportBrokenError(
                f"the SSH connection broke: {exc}", target=self.target, operation="run_command"
            ) from exc
        except BaseException:
            await self._kill_remote(connection, process, pid)
            raise
        status = process.exit_status
        if status is None or status < 0:
            if connection.is_closed():
                self._drop(connection)
                raise TransportBrokenError(
                    "the SSH connection closed before the command finished",
                    target=self.target,
                    operation="run_command",
                )
            signal_name = process.exit_signal[0] if process.exit_signal else "unknown"
            status = 128 + _signal_number(signal_name)
        return CompletedCommand(command, status, _as_bytes(stdout), _as_bytes(stderr))

    async def _kill_remote(
        self,
        connection: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
        pid: int | None,
    ) -> None:
        # Closing a channel without a terminal does not stop the remote
        # command; sshd started it as the leader of its own process group,
        # so kill that group over a second channel, then close the first.
        if pid is not None and not connection.is_closed():
            kill = connection.run(f"kill -KILL -- -{pid} {pid} 2>/dev/null", check=False)
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wait_for(kill, _KILL_TIMEOUT))
        process.close()

    async def _run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        # The channel runs the fixed bootstrap command line; the request
        # travels on its stdin. A timed-out or cancelled call closes its
        # channel, which ends the remote PowerShell (and, on a POSIX login
        # shell, kills its process group). AuthenticationError, HostKeyError,
        # PowerShellNotFoundError, ProtocolError and TransportBrokenError
        # say what failed.
        return await self._session.run(operation, parameters, timeout=timeout)

    async def _spawn(self, operation: str) -> PowerShellProcess:
        import asyncssh

        posix = self.settings.shell == "posix"
        command = command_line(self.settings.powershell)
        if posix:
            command = _PID_PREFIX + command
        connection = await self._connect(operation)
        try:
            process = await connection.create_process(command, encoding=None)
        except (asyncssh.ChannelOpenError, asyncssh.DisconnectError, OSError) as exc:
            self._drop(connection)
            raise TransportBrokenError(
                f"cannot open an SSH channel: {exc}", target=self.target, operation=operation
            ) from exc
        pid = None
        if posix:
            try:
                pid, _ = await asyncio.wait_for(_read_pid(process), self.settings.connect_timeout)
            except BaseException:
                process.close()
                raise
        return _SSHPowerShell(self, connection, process, pid)

    async def _aclose(self) -> None:
        """Close every PowerShell channel, then the connection."""
        await self._session.aclose()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.wait_closed(), 5)


class _SSHPowerShell:
    """A remote PowerShell on one SSH channel."""

    def __init__(
        self,
        transport: SSHTransport,
        connection: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
        pid: int | None,
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._process = process
        self._pid = pid
        self._stderr = bytearray()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        self._closed = False

    async def _drain_stderr(self) -> None:
        while chunk := await self._process.stderr.read(65536):
            self._stderr += _as_bytes(chunk)
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
            return _as_bytes(await self._process.stdout.read(size))
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
            await self._transport._kill_remote(self._connection, process, self._pid)
        process.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(process.wait_closed(), _KILL_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        self._stderr_task.cancel()
        if self._connection.is_closed():
            self._transport._drop(self._connection)
        status = process.exit_status
        return None if status is None or status < 0 else status


_PRELUDE_LIMIT = 64 * 1024


async def _read_pid(process: asyncssh.SSHClientProcess[bytes]) -> tuple[int | None, bytes]:
    """The remote process id from the marker line, and any stderr before it.

    Login shells may print to stderr before running the command (a noisy
    ``.bashrc``), so the marker is searched for rather than assumed first;
    what came before it is kept as the command's stderr.
    """
    prelude = b""
    while len(prelude) < _PRELUDE_LIMIT:
        line = _as_bytes(await process.stderr.readline())
        if not line:
            break
        if line.startswith(_PID_MARKER):
            text = line[len(_PID_MARKER) :].strip()
            return (int(text) if text.isdigit() else None), prelude
        prelude += line
    return None, prelude


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return b""


def _signal_number(name: str) -> int:
    import signal

    try:
        return int(signal.Signals[f"SIG{name}"])
    except KeyError:
        return 0
