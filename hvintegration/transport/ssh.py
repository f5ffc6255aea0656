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
                             &executable=NAME&mode=persistent|oneshot&sessions=N
                             &max_channels=N&max_output=BYTES]

``shell`` names the remote login shell: ``posix`` for Linux (the default),
``powershell`` or ``cmd`` for Windows OpenSSH (whose default shell is
cmd.exe unless the ``DefaultShell`` registry value says otherwise).
``executable`` is the remote PowerShell program: ``powershell`` on Windows
shells, ``pwsh`` on a POSIX shell. ``mode=persistent`` (the default) keeps
PowerShell channels open for the operations; ``mode=oneshot`` opens one per
operation. ``sessions`` (default 4) bounds the PowerShell channels open at
once: concurrent operations run side by side on up to that many, each
opened when first needed, and the rest wait their turn. When the
connection has fewer free channels than ``sessions`` (``max_channels``, or
a server's lower ``MaxSessions``), a call waiting for a channel takes the
session another call finishes with, so the pool keeps reusing the
PowerShells it has. A password may be
given to :class:`SSHTarget` directly; a password in the URL is accepted but
discouraged (it lands in shell history), and never shown again.

``max_channels`` bounds the channels one connection runs at once, shell
commands and PowerShell sessions together (default 8, under OpenSSH's
default ``MaxSessions`` of 10 with room for a kill channel); more wait their
turn, and a server that refuses a channel
lowers the bound instead of failing the call. ``max_output`` bounds what
one call may write (stdout and stderr together, or one PowerShell answer).

A shell command that times out or is cancelled is killed with everything
it started (:mod:`._ssh_process`), as root when it ran under ``sudo``,
before the call returns: the call takes at most its timeout plus
:data:`~._ssh_process.KILL_TIMEOUT` seconds, connecting included.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

import attrs

from hvintegration._seconds import check_seconds
from hvintegration.errors import (
    InvalidTargetError,
    OperationTimeoutError,
    RemoteCommandError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.transport._powershell_session import (
    DEFAULT_SESSIONS,
    PowerShellProcess,
    PowerShellSession,
    check_sessions,
)
from hvintegration.transport._powershell_wire import (
    DEFAULT_MAX_OUTPUT,
    command_line,
    validate_executable,
)
from hvintegration.transport._process import Output, OutputLimitError
from hvintegration.transport._ssh_channels import DEFAULT_MAX_CHANNELS, ChannelLimit
from hvintegration.transport._ssh_connect import client_options, connect, known_hosts_option
from hvintegration.transport._ssh_process import (
    KILL_TIMEOUT,
    LAUNCH_LINE,
    PID_PREFIX,
    Killer,
    SSHPowerShell,
    as_bytes,
    carries_token,
    frame,
    new_token,
    read_pid,
    run_kill,
    runs_under_sudo,
    signal_number,
)
from hvintegration.transport._url import (
    check_options,
    check_user_name,
    parse_options,
    whole_number,
)
from hvintegration.transport.base import (
    CompletedCommand,
    JsonValue,
    OperationResult,
    PowerShellTransport,
    ShellTransport,
    log_reconnect,
    log_retry,
)

if TYPE_CHECKING:
    import asyncssh

    from hvintegration.operations import Operation

__all__ = ["SSHTarget", "SSHTransport", "known_hosts_option"]

_SHELLS = ("posix", "powershell", "cmd")
_MODES = ("persistent", "oneshot")

_OPTIONS = {
    "known_hosts",
    "key",
    "shell",
    "connect_timeout",
    "executable",
    "mode",
    "sessions",
    "max_channels",
    "max_output",
}


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
        mode: ``persistent`` (PowerShell channels kept for many operations)
            or ``oneshot`` (one channel per operation).
        sessions: PowerShell channels that may be open at once (1 to 64; 4
            by default): concurrent operations run side by side on up to
            this many, each opened when first needed; more wait their turn.
            They count under ``max_channels`` with the shell commands.
        max_output: Bytes one call may write (a shell command's stdout and
            stderr together, or one PowerShell answer) before it is stopped
            and refused as oversized.
        max_channels: Channels (shell commands and PowerShell sessions) the
            connection runs at once; the rest wait. Keep it under the
            server's ``MaxSessions`` (OpenSSH: 10), which must also leave
            one channel for killing a command.

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
    max_channels: int = DEFAULT_MAX_CHANNELS
    sessions: int = DEFAULT_SESSIONS

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
        check_seconds(
            self.connect_timeout, "connect_timeout", error=InvalidTargetError, target=self.url
        )
        if self.executable is not None:
            validate_executable(self.executable, target=self.url)
        if self.mode not in _MODES:
            raise InvalidTargetError(
                f"unknown mode {self.mode!r} (valid: {', '.join(_MODES)})", target=self.url
            )
        for name in ("max_output", "max_channels", "sessions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                # Named without its settings: the URL would spell the bad
                # value like a good one (sessions='4' as ?sessions=4).
                host = f"[{self.host}]" if ":" in self.host else self.host
                raise InvalidTargetError(
                    f"{name} must be a whole number, not {value!r}", target=f"ssh://{host}"
                )
        if self.max_output < 1024:
            raise InvalidTargetError("max_output must be at least 1024 bytes", target=self.url)
        if self.max_channels < 1:
            raise InvalidTargetError("max_channels must be at least 1", target=self.url)
        check_user_name(self.user, target=self.url)
        try:
            check_sessions(self.sessions)
        except ValueError as exc:
            raise InvalidTargetError(str(exc), target=self.url) from None

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

    def __repr__(self) -> str:
        # The URL names every setting but the password; the one setting a
        # URL cannot carry is said in words.
        unverified = "" if self.verify_host_key else ", host key not verified"
        return f"<SSHTarget {self.url}{unverified}>"

    @property
    def url(self) -> str:
        """The target as a URL: every setting but the password.

        Settings at their defaults are left out, so a plain target stays
        ``ssh://user@host``; ``parse_target(target.url)`` gives the same
        settings back (the password aside).

        Example:
            >>> SSHTarget("hv1", user="admin", shell="cmd", client_keys=("~/k",)).url
            'ssh://admin@hv1?key=~%2Fk&shell=cmd'
        """
        user = f"{urllib.parse.quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port != 22 else ""
        query: list[tuple[str, str]] = []
        if self.known_hosts is not None:
            query.append(("known_hosts", self.known_hosts))
        query.extend(("key", key) for key in self.client_keys or ())
        if self.shell != "posix":
            query.append(("shell", self.shell))
        if self.connect_timeout != 15.0:
            query.append(("connect_timeout", f"{self.connect_timeout:g}"))
        if self.executable is not None:
            query.append(("executable", self.executable))
        if self.mode != "persistent":
            query.append(("mode", self.mode))
        for name, value, default in (
            ("sessions", self.sessions, DEFAULT_SESSIONS),
            ("max_channels", self.max_channels, DEFAULT_MAX_CHANNELS),
            ("max_output", self.max_output, DEFAULT_MAX_OUTPUT),
        ):
            if value != default:
                query.append((name, str(value)))
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"ssh://{user}{host}{port}{suffix}"

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> SSHTarget:
        """Parse ``ssh://`` URL parts.

        Raises:
            InvalidTargetError: No host, a bad port or an unknown option. The
                message never repeats a password.
        """
        try:
            port = 22 if url.port is None else url.port
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            # Port 0 would not mean 22: it is no port to connect to.
            raise InvalidTargetError(
                "the port of an ssh:// target must be a number from 1 to 65535"
            )
        if not url.hostname:
            raise InvalidTargetError("an ssh:// target needs a host name: ssh://user@host")
        options, single = parse_options(url)
        check_options(url, options, _OPTIONS, scheme="ssh")
        keys = tuple(options["key"]) if "key" in options else None
        try:
            connect_timeout = float(single.get("connect_timeout", "15"))
        except ValueError:
            raise InvalidTargetError("connect_timeout must be a number of seconds") from None
        numbers = {
            name: whole_number(single, name, default)
            for name, default in (
                ("max_channels", DEFAULT_MAX_CHANNELS),
                ("max_output", DEFAULT_MAX_OUTPUT),
                ("sessions", DEFAULT_SESSIONS),
            )
        }
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
            max_channels=numbers["max_channels"],
            max_output=numbers["max_output"],
            sessions=numbers["sessions"],
        )

    def client_options(self) -> asyncssh.SSHClientConnectionOptions:
        """The asyncssh options for this target (login, keys, host keys, timeouts).

        Returns:
            The options; secrets included, so never log them.

        Raises:
            InvalidTargetError: A key or known_hosts file cannot be read.
        """
        return client_options(
            target=self.url,
            user=self.user,
            password=self.password,
            known_hosts=self.known_hosts,
            client_keys=self.client_keys,
            connect_timeout=self.connect_timeout,
            verify_host_key=self.verify_host_key,
        )

    def open(self) -> SSHTransport:
        """A transport for this target; it connects on first use."""
        return SSHTransport(self)


class SSHTransport(PowerShellTransport, ShellTransport):
    """One SSH connection to one target, made lazily and reused by every call.

    A broken connection is dropped and made again on the next call. Closing
    kills the commands still running on the target, then closes the
    connection; a cancelled close drops the connection at once.

    Args:
        settings: The target settings.
    """

    def __init__(self, settings: SSHTarget) -> None:
        self.settings = settings
        self._connection: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._slots = ChannelLimit(settings.max_channels)
        # The connection's kill channel (._ssh_process.Killer), opened with it.
        self._killer: Killer | None = None
        # Sweeps of exited commands' sessions still under way (see _sweep).
        self._sweeps: set[asyncio.Task[None]] = set()
        # Shell commands in flight: their channel, session id once known,
        # token, and whether they ran under sudo.
        self._commands: dict[asyncssh.SSHClientProcess[bytes], _Running] = {}
        self._session = PowerShellSession(
            self._spawn,
            target=self.target,
            executable=settings.powershell,
            persistent=settings.mode == "persistent",
            max_output=settings.max_output,
            sessions=settings.sessions,
            crowded=self._slots.crowded,
        )

    @property
    def target(self) -> str:
        """The target URL, with no secret in it."""
        return self.settings.url

    async def _open(self) -> None:
        """Connect now, so that authentication and host-key errors surface early."""
        await self._connect("open")

    async def _connect(
        self, operation: str, *, deadline: float | None = None
    ) -> asyncssh.SSHClientConnection:
        self._check_open(operation)
        async with self._lock:
            connection = self._connection
            if connection is not None and not connection.is_closed():
                return connection
            if connection is not None:
                log_reconnect(self.target, operation, "the SSH connection was lost")
            self._connection = None
            options = self.settings.client_options()
            if deadline is not None:
                # The connect counts towards the call's timeout: give up
                # with the call, and with a message that says so.
                left = deadline - asyncio.get_running_loop().time()
                if options.connect_timeout is None or left < options.connect_timeout:
                    import asyncssh

                    options = asyncssh.SSHClientConnectionOptions(
                        options=options, connect_timeout=max(left, 0.001)
                    )
            connection = await connect(
                self.settings.host,
                self.settings.port,
                options,
                target=self.target,
                operation=operation,
            )
            if self._closed:
                # aclose() ran while we were connecting.
                connection.abort()
                raise TransportClosedError(
                    "the transport is closed", target=self.target, operation=operation
                )
            self._connection = connection
            if self._slots.open == 0:
                # A new connection: the server's limit may be another one.
                self._slots.limit = self.settings.max_channels
            # The kill channel comes first, so that no number of running
            # commands can leave a kill without a channel.
            self._forget_killer()
            with contextlib.suppress(Exception):
                self._killer = await asyncio.wait_for(Killer.open(connection), KILL_TIMEOUT)
            self._slots.set_killer(self._killer is not None)
            return connection

    def _forget_killer(self, killer: Killer | None = None) -> None:
        """Close the kill channel (only if it is ``killer``, when given) and free its slot."""
        if self._killer is None or (killer is not None and self._killer is not killer):
            return
        self._killer.close()
        self._killer = None
        self._slots.set_killer(False)

    def _killer_for(self, connection: asyncssh.SSHClientConnection) -> Killer | None:
        killer = self._killer
        if killer is None or self._connection is not connection:
            return None
        if not killer.alive():
            self._forget_killer(killer)
            return None
        return killer

    def _drop(self, connection: asyncssh.SSHClientConnection) -> None:
        if self._connection is connection:
            self._connection = None
            self._forget_killer()
        connection.close()

    async def _run_command(
        self,
        argv: tuple[str, ...],
        *,
        input: bytes | None,
        timeout: float,
    ) -> CompletedCommand:
        # Every argument travels on stdin to a fixed launcher, quoted for
        # sh, so no login shell ever reads it as syntax (._ssh_process).
        if self.settings.shell != "posix":
            raise TransportError(
                f"shell commands need a POSIX login shell; this target's is {self.settings.shell}",
                target=self.target,
                operation="run_command",
            )
        deadline = asyncio.get_running_loop().time() + timeout
        closed = TransportClosedError(
            f"the transport was closed while {argv[0]} ran; it was killed",
            target=self.target,
            operation="run_command",
        )
        try:
            done = await self._run_remote(argv, input=input, timeout=timeout, deadline=deadline)
        except TransportError as exc:
            if not self._closed or isinstance(exc, TransportClosedError):
                raise
            raise closed from exc
        if self._closed:
            raise closed
        return done

    async def _open_channel(
        self, deadline: float
    ) -> tuple[asyncssh.SSHClientConnection, asyncssh.SSHClientProcess[bytes]]:
        """A slot and a channel running the launcher; a refusal waits for the next slot."""
        import asyncssh

        attempts = 0
        while True:
            connection = await self._connect("run_command", deadline=deadline)
            await self._slots.acquire()
            try:
                process = await connection.create_process(LAUNCH_LINE, encoding=None)
            except asyncssh.ChannelOpenError as exc:
                # A refused channel concerns this call only: the connection
                # and every other call on it carry on.
                attempts += 1
                if self._slots.refused() or attempts < 5:
                    log_retry(
                        self.target,
                        "run_command",
                        "the server refused a channel",
                        attempt=attempts + 1,
                    )
                    await asyncio.sleep(0.02 * attempts)
                    continue
                raise TransportError(
                    f"the server refused an SSH channel: {exc.reason}",
                    target=self.target,
                    operation="run_command",
                ) from exc
            except BaseException as exc:
                self._slots.release()
                if isinstance(exc, (asyncssh.DisconnectError, OSError)):
                    self._drop(connection)
                    raise TransportBrokenError(
                        f"cannot open an SSH channel: {exc}",
                        target=self.target,
                        operation="run_command",
                    ) from exc
                raise
            return connection, process

    async def _run_remote(
        self,
        command: tuple[str, ...],
        *,
        input: bytes | None,
        timeout: float,
        deadline: float,
    ) -> CompletedCommand:
        import asyncssh

        connection, process = await self._open_channel(deadline)
        running = _Running(new_token(), runs_under_sudo(command), carries_token(command))
        self._commands[process] = running
        loop = asyncio.get_running_loop()
        failure: BaseException | None = None
        try:
            process.stdin.write(frame(command, running.token) + (input or b""))
            process.stdin.write_eof()
            running.pid, prelude = await read_pid(process)
            stdout, stderr = await _collect(process, self.settings.max_output)
            stderr = prelude + stderr
        except OutputLimitError as exc:
            failure = exc
        except (asyncssh.DisconnectError, asyncssh.ChannelOpenError, OSError) as exc:
            process.close()
            self._drop(connection)
            self._forget(process)
            raise TransportBrokenError(
                f"the SSH connection broke: {exc}", target=self.target, operation="run_command"
            ) from exc
        except BaseException as exc:
            failure = exc
        if failure is not None:
            killed = await self._kill(connection, process)
            self._forget(process)
            if isinstance(failure, OutputLimitError):
                raise RemoteCommandError(
                    f"{command[0]} wrote more than {self.settings.max_output} bytes of output "
                    f"(max_output); it was stopped{_outcome(killed, running.carried)}",
                    error_id="output-limit",
                    target=self.target,
                    operation="run_command",
                ) from None
            if isinstance(failure, asyncio.CancelledError) and loop.time() >= deadline - 0.01:
                # The base class's deadline cancelled the call: say what
                # became of the command.
                outcome = _outcome(killed, running.carried)
                raise OperationTimeoutError(
                    f"{command[0]} did not finish within {timeout:g} s{outcome}",
                    timeout=timeout,
                    target=self.target,
                    operation="run_command",
                ) from None
            raise failure
        # The sweep runs behind the answer: the caller does not wait for a
        # second round trip, and aclose() waits for every sweep left.
        sweep = asyncio.ensure_future(self._sweep(connection, running))
        self._sweeps.add(sweep)
        sweep.add_done_callback(self._sweeps.discard)
        self._forget(process)
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
            status = 128 + signal_number(signal_name)
        return CompletedCommand(command, status, stdout, stderr)

    async def _sweep(self, connection: asyncssh.SSHClientConnection, running: _Running) -> None:
        """Kill what is left of an exited command's session.

        A background child of the command (``sleep 300 &``) is in its
        session and would run on after the call. A process that left the
        session (a daemon the call started with ``setsid``) is not touched.
        Needs the kill channel; without one, nothing is swept.
        """
        killer = self._killer_for(connection)
        if killer is None or running.pid is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(killer.kill(running.pid, "", sudo=running.sudo), KILL_TIMEOUT)

    def _forget(self, process: asyncssh.SSHClientProcess[bytes]) -> None:
        """The command's channel is done with: close it and give its slot back."""
        if self._commands.pop(process, None) is not None:
            process.close()
            self._slots.release()

    async def _kill(
        self, connection: asyncssh.SSHClientConnection, process: asyncssh.SSHClientProcess[bytes]
    ) -> bool:
        """Kill what a command started, within :data:`KILL_TIMEOUT`; whether that is known done.

        Survives a second cancellation: the kill finishes (or times out)
        before the caller learns of it.
        """
        running = self._commands.get(process)
        if running is None:
            return False
        if process.exit_status is not None and process.is_closing():
            return True
        task = asyncio.ensure_future(self._kill_now(connection, process, running))
        cancelled = False
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            asyncio.current_task().cancel()  # type: ignore[union-attr]
        return task.result()

    async def _kill_now(
        self,
        connection: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
        running: _Running,
    ) -> bool:
        import asyncssh

        loop = asyncio.get_running_loop()
        end = loop.time() + KILL_TIMEOUT
        killed = False
        killer = self._killer_for(connection)
        if killer is not None:
            with contextlib.suppress(Exception):
                killed = await asyncio.wait_for(
                    killer.kill(running.pid, running.token, sudo=running.sudo),
                    end - loop.time(),
                )
        with contextlib.suppress(Exception, asyncio.TimeoutError):
            # Without the kill channel, a channel of its own.
            while not killed and not connection.is_closed():
                await asyncio.wait_for(self._slots.acquire(urgent=True), end - loop.time())
                try:
                    killed = await asyncio.wait_for(
                        run_kill(connection, running.pid, running.token, sudo=running.sudo),
                        end - loop.time(),
                    )
                except asyncssh.ChannelOpenError:
                    await asyncio.sleep(0.05)
                finally:
                    self._slots.release()
            # The command's channel closes once its session is gone.
            process.close()
            await asyncio.wait_for(process.wait_closed(), max(0.0, end - loop.time()))
        return killed

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
            command = PID_PREFIX + command
        # A PowerShell channel holds a slot of the connection's channel limit
        # from its opening until it is closed, like a shell command: the
        # pool's sessions and the commands together stay under MaxSessions.
        attempts = 0
        while True:
            connection = await self._connect(operation)
            await self._slots.acquire()
            if self._closed:
                # aclose() ran while this call waited for a channel.
                self._slots.release()
                self._check_open(operation)
            try:
                process = await connection.create_process(command, encoding=None)
            except asyncssh.ChannelOpenError as exc:
                if self._closed:
                    self._slots.release()
                    raise TransportClosedError(
                        "the transport was closed during the call",
                        target=self.target,
                        operation=operation,
                    ) from exc
                # Refused (a MaxSessions lower than ours): wait for one of
                # our channels to close and try again; with none of ours
                # open, the refusal is not about the number and fails this
                # operation only.
                attempts += 1
                if self._slots.refused() and attempts < 5:
                    log_retry(
                        self.target,
                        operation,
                        "the server refused a channel",
                        attempt=attempts + 1,
                    )
                    await asyncio.sleep(0.02 * attempts)
                    continue
                raise TransportError(
                    f"the server refused an SSH channel: {exc.reason}",
                    target=self.target,
                    operation=operation,
                ) from exc
            except BaseException as exc:
                self._slots.release()
                if isinstance(exc, (asyncssh.DisconnectError, OSError)):
                    self._drop(connection)
                    raise TransportBrokenError(
                        f"cannot open an SSH channel: {exc}",
                        target=self.target,
                        operation=operation,
                    ) from exc
                raise
            break
        release = _once(self._slots.release)
        pid = None
        if posix:
            limit = self.settings.connect_timeout
            try:
                pid, _ = await asyncio.wait_for(read_pid(process), limit)
            except asyncio.TimeoutError:
                process.close()
                release()
                raise TransportBrokenError(
                    f"the remote login shell did not start PowerShell within {limit:g} s",
                    target=self.target,
                    operation=operation,
                ) from None
            except BaseException:
                # Closing the channel ends the remote PowerShell's stdin,
                # and with it the PowerShell.
                process.close()
                release()
                raise
        return SSHPowerShell(connection, process, pid, self._drop, release)

    async def _aclose(self) -> None:
        """Close every PowerShell channel, kill running commands, then close the connection."""
        await self._session.aclose()
        connection = self._connection
        if connection is None:
            return
        await asyncio.gather(*(self._kill(connection, process) for process in list(self._commands)))
        if self._sweeps:
            await asyncio.wait(list(self._sweeps), timeout=KILL_TIMEOUT)
        self._forget_killer()
        connection.close()
        await asyncio.wait_for(connection.wait_closed(), KILL_TIMEOUT)
        self._connection = None

    def _abort(self) -> None:
        """Close every channel and drop the connection at once."""
        for sweep in list(self._sweeps):
            sweep.cancel()
        self._session.abort(final=self._closed)
        for process in list(self._commands):
            with contextlib.suppress(Exception):
                process.close()
        self._forget_killer()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abort()


@attrs.define
class _Running:
    """A shell command in flight: what killing it takes."""

    token: str
    sudo: bool
    # Whether the token reaches every process it starts (not through
    # every form of sudo: ._ssh_process.carry_token).
    carried: bool = True
    pid: int | None = None


def _once(callback: Callable[[], None]) -> Callable[[], None]:
    """``callback``, run on the first call only."""
    pending = [callback]

    def run() -> None:
        if pending:
            pending.pop()()

    return run


def _outcome(killed: bool, carried: bool = True) -> str:
    if killed and not carried:
        return (
            "; its session was killed, but a process it started that left the "
            "session may still be running (sudo dropped the call's token; "
            "use sudo -n -- COMMAND)"
        )
    if killed:
        return (
            "; it was killed with everything it started, but it may have made "
            "its change before that"
        )
    return "; it could not be killed and may still be running: its change may yet be made"


async def _collect(process: asyncssh.SSHClientProcess[bytes], limit: int) -> tuple[bytes, bytes]:
    """Read stdout and stderr to their end, at most ``limit`` bytes in all.

    Once the command has exited, its output gets a second more to end (see
    :class:`._process.Output`): a descendant left running may hold it open.

    Raises:
        OutputLimitError: More than ``limit`` bytes arrived.
    """
    output = Output(limit)

    async def exit() -> None:
        # asyncssh signals no event for the exit status alone; poll it.
        while process.exit_status is None and process.exit_signal is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    def reader(stream: asyncssh.SSHReader[bytes]) -> Callable[[int], Awaitable[bytes]]:
        async def read(size: int) -> bytes:
            return as_bytes(await stream.read(size))

        return read

    readers = asyncio.gather(
        output.drain(reader(process.stdout), output.stdout),
        output.drain(reader(process.stderr), output.stderr),
    )
    stdout, stderr, _ = await output.collect(readers, exit())
    return stdout, stderr
