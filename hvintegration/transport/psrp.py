"""The ``psrp://`` transport: PowerShell Remoting Protocol through pypsrp.

This is how Windows administrators reach a Hyper-V host remotely: WinRM
(WS-Management over HTTP 5985 or HTTPS 5986) or PSRP over SSH to a
``powershell`` subsystem. Each target gets one runspace pool, opened on first
use and reused by every operation; several operations run at once on it, up
to ``max_pipelines``. An operation is its fixed script plus real PSRP
parameters, so no value is ever spliced into script text.

URL forms::

    psrp://[user@]host[:port][?auth=negotiate&ssl=true&ca=PATH]     WinRM
    psrp://[user@]host[:port]?via=ssh[&known_hosts=PATH&key=PATH]    SSH
    psrp://localhost?via=process[&executable=pwsh&arg=...]           local child

WinRM options: ``auth`` (``negotiate``, ``ntlm``, ``kerberos``, ``credssp``,
``basic``), ``ssl`` (HTTPS; the default port becomes 5986), ``ca`` (a PEM CA
bundle to verify the server certificate against instead of the system
store), ``cert_validation=false`` (labs only), ``configuration`` (a session
configuration such as a JEA endpoint). SSH options: ``known_hosts``, ``key``
(repeatable), ``subsystem``. Process options: ``executable`` and ``arg``
(repeatable); the default runs ``pwsh -NoProfile -NoLogo -ServerMode``. Any
form takes ``max_pipelines`` and ``connect_timeout``. A password may be given
in the URL or to :class:`PSRPTarget`; it never appears in ``repr``, the URL,
logs or errors.

pypsrp's asyncio API exists only in its 1.0 beta, pinned exactly. The guards
here cover what that beta gets wrong: every await has a timeout; a peer that
goes away mid-pipeline is noticed at once instead of waited on forever; the
peer's stderr is kept out of the protocol stream; a broken pool is killed
(child process or SSH channel) and a new one opened on the next operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import urllib.parse
from collections.abc import Mapping
from ssl import SSLContext
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
from psrpcore.types import RunspacePoolState

from hvintegration.errors import (
    AuthenticationError,
    HostKeyError,
    HvIntegrationError,
    InvalidTargetError,
    OperationStoppedError,
    OperationTimeoutError,
    ProtocolError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.transport._clixml import error_from_ps, from_wire, to_wire
from hvintegration.transport._outofproc import (
    Discarded,
    GuardedProcessInfo,
    GuardedSSHInfo,
    PeerGone,
    Session,
    close_wsman,
    psrp,
)
from hvintegration.transport._url import check_options, parse_options
from hvintegration.transport.base import (
    ErrorRecord,
    JsonValue,
    OperationResult,
    PowerShellTransport,
)
from hvintegration.transport.errormap import error_from_record
from hvintegration.transport.ssh import known_hosts_option

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = ["PSRPTarget", "PSRPTransport"]

_VIAS = ("wsman", "ssh", "process")
_AUTHS = ("negotiate", "ntlm", "kerberos", "credssp", "basic")
_PWSH_SERVER_ARGS = ("-NoProfile", "-NoLogo", "-ServerMode")
_COMMON_OPTIONS = {"via", "max_pipelines", "connect_timeout"}
_VIA_OPTIONS = {
    "wsman": {"auth", "ssl", "ca", "cert_validation", "configuration"},
    "ssh": {"known_hosts", "key", "subsystem"},
    "process": {"executable", "arg"},
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_STOP_TIMEOUT = 5.0
_CLOSE_TIMEOUT = 5.0
_EXIT_GRACE = 2.0


def _flag(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidTargetError(f"psrp:// option {name} takes true or false, not {text!r}")


@attrs.frozen
class PSRPTarget:
    """Settings for a PSRP target, apart from any live connection.

    Attributes:
        host: Host name or address (``localhost`` for ``via="process"``).
        via: ``wsman`` (WinRM), ``ssh`` or ``process`` (a local child
            speaking PSRP on stdin/stdout, such as ``pwsh -ServerMode``).
        port: TCP port; by default 5985 (5986 with ``ssl``) or 22.
        user: Login name; for WinRM, ``DOMAIN\\\\user`` or ``user@REALM``
            also work.
        password: The password. Never shown in ``repr``, the URL or errors.
        auth: WinRM authentication: ``negotiate``, ``ntlm``, ``kerberos``,
            ``credssp`` or ``basic`` (HTTPS only: it sends the password as
            is).
        ssl: WinRM over HTTPS.
        ca: A PEM file of CA certificates that the HTTPS certificate must
            chain to, instead of the system's trust store.
        cert_validation: Verify the HTTPS certificate and host name. Turning
            it off exposes the password and the session to impersonation;
            it exists for labs.
        configuration: The PowerShell session configuration (endpoint).
        known_hosts: For SSH, a known_hosts file; the user's own by default.
        client_keys: For SSH, private key files; the user's default keys and
            agent when ``None``.
        subsystem: For SSH, the subsystem that runs the PSRP server.
        executable: For ``process``, the program to start.
        arguments: For ``process``, its arguments; ``None`` gives pwsh's
            ``-NoProfile -NoLogo -ServerMode``.
        max_pipelines: How many operations run at once on the pool.
        connect_timeout: Seconds to open the runspace pool.

    Example:
        >>> target = PSRPTarget("hv01.example.com", user="admin", password="s3cret", ssl=True)
        >>> target.url
        'psrp://admin@hv01.example.com?ssl=true'
        >>> "s3cret" in repr(target)
        False
    """

    host: str
    via: str = "wsman"
    port: int | None = None
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    auth: str = "negotiate"
    ssl: bool = False
    ca: str | None = None
    cert_validation: bool = True
    configuration: str = "Microsoft.PowerShell"
    known_hosts: str | None = None
    client_keys: tuple[str, ...] | None = None
    subsystem: str = "powershell"
    executable: str = "pwsh"
    arguments: tuple[str, ...] | None = None
    max_pipelines: int = 8
    connect_timeout: float = 30.0

    def __attrs_post_init__(self) -> None:
        if self.via not in _VIAS:
            raise InvalidTargetError(
                f"unknown psrp:// connection {self.via!r} (valid: {', '.join(_VIAS)})"
            )
        if not self.host:
            raise InvalidTargetError("a psrp:// target needs a host name: psrp://user@host")
        if self.port is not None and not 0 < self.port < 65536:
            raise InvalidTargetError(f"port {self.port} is out of range (1 to 65535)")
        if self.auth not in _AUTHS:
            raise InvalidTargetError(
                f"unknown psrp:// auth {self.auth!r} (valid: {', '.join(_AUTHS)})"
            )
        if self.via == "wsman" and self.auth == "basic" and not self.ssl:
            raise InvalidTargetError(
                "basic authentication over plain HTTP would send the password in clear "
                "text; add ssl=true or use negotiate, ntlm, kerberos or credssp",
                target=self.url,
            )
        if self.ca is not None and not (self.via == "wsman" and self.ssl):
            raise InvalidTargetError("ca= applies to WinRM over HTTPS (ssl=true)", target=self.url)
        if not 1 <= self.max_pipelines <= 64:
            raise InvalidTargetError("max_pipelines must be from 1 to 64", target=self.url)
        if not self.connect_timeout > 0:
            raise InvalidTargetError("connect_timeout must be positive", target=self.url)

    @property
    def effective_port(self) -> int | None:
        """The port connected to: the given one, or the default of the connection."""
        if self.port is not None or self.via == "process":
            return self.port
        if self.via == "ssh":
            return 22
        return 5986 if self.ssl else 5985

    @property
    def url(self) -> str:
        """The target as a URL: every setting but the password."""
        user = f"{urllib.parse.quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        query: list[tuple[str, str]] = []
        if self.via != "wsman":
            query.append(("via", self.via))
        if self.via == "wsman":
            if self.auth != "negotiate":
                query.append(("auth", self.auth))
            if self.ssl:
                query.append(("ssl", "true"))
            if self.ca is not None:
                query.append(("ca", self.ca))
            if not self.cert_validation:
                query.append(("cert_validation", "false"))
            if self.configuration != "Microsoft.PowerShell":
                query.append(("configuration", self.configuration))
        elif self.via == "ssh":
            if self.known_hosts is not None:
                query.append(("known_hosts", self.known_hosts))
            query.extend(("key", key) for key in self.client_keys or ())
            if self.subsystem != "powershell":
                query.append(("subsystem", self.subsystem))
        else:
            if self.executable != "pwsh":
                query.append(("executable", self.executable))
            query.extend(("arg", arg) for arg in self.arguments or ())
        if self.max_pipelines != 8:
            query.append(("max_pipelines", str(self.max_pipelines)))
        if self.connect_timeout != 30.0:
            query.append(("connect_timeout", f"{self.connect_timeout:g}"))
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"psrp://{user}{host}{port}{suffix}"

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> PSRPTarget:
        """Parse ``psrp://`` URL parts.

        Args:
            url: The split URL.

        Returns:
            The target settings.

        Raises:
            InvalidTargetError: No host, a bad port, an unknown or misplaced
                option, or a malformed value. The message never repeats a
                password.

        Example:
            >>> from hvintegration.transport import parse_target
            >>> parse_target("psrp://admin@hv01:5986?ssl=true&auth=ntlm").effective_port
            5986
        """
        try:
            port = url.port
        except ValueError:
            raise InvalidTargetError(
                "the port of a psrp:// target must be a number from 1 to 65535"
            ) from None
        if not url.hostname:
            raise InvalidTargetError("a psrp:// target needs a host name: psrp://user@host")
        options, single = parse_options(url)
        via = single.get("via", "wsman")
        if via not in _VIAS:
            raise InvalidTargetError(
                f"unknown psrp:// connection via={via!r} (valid: {', '.join(_VIAS)})"
            )
        allowed = _COMMON_OPTIONS | _VIA_OPTIONS[via]
        check_options(url, options, allowed, scheme="psrp", context=f" for via={via}")
        try:
            max_pipelines = int(single.get("max_pipelines", "8"))
            connect_timeout = float(single.get("connect_timeout", "30"))
        except ValueError:
            raise InvalidTargetError(
                "max_pipelines must be a whole number and connect_timeout a number of seconds"
            ) from None
        return cls(
            host=url.hostname,
            via=via,
            port=port,
            user=urllib.parse.unquote(url.username) if url.username else None,
            password=urllib.parse.unquote(url.password) if url.password else None,
            auth=single.get("auth", "negotiate").lower(),
            ssl=_flag(single["ssl"], "ssl") if "ssl" in single else False,
            ca=single.get("ca") or None,
            cert_validation=(
                _flag(single["cert_validation"], "cert_validation")
                if "cert_validation" in single
                else True
            ),
            configuration=single.get("configuration") or "Microsoft.PowerShell",
            known_hosts=single.get("known_hosts") or None,
            client_keys=tuple(options["key"]) if "key" in options else None,
            subsystem=single.get("subsystem") or "powershell",
            executable=single.get("executable") or "pwsh",
            arguments=tuple(options["arg"]) if "arg" in options else None,
            max_pipelines=max_pipelines,
            connect_timeout=connect_timeout,
        )

    def tls_context(self) -> SSLContext:
        """The TLS settings for WinRM over HTTPS.

        Returns:
            A context that verifies the certificate chain and host name,
            against ``ca`` when given, else the system's trust store; one that
            verifies nothing when ``cert_validation`` is off.
        """
        if not self.cert_validation:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        try:
            return ssl.create_default_context(cafile=self.ca)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidTargetError(
                f"cannot read the CA bundle {self.ca}: {exc}", target=self.url
            ) from exc

    def connection_info(self) -> psrp.ConnectionInfo:
        """The pypsrp connection settings for one runspace pool.

        Returns:
            A ``psrp.WSManInfo``, or for SSH and process targets a guarded
            subclass of ``psrp.SSHInfo`` or ``psrp.ProcessInfo``. It holds the
            password; never log it.

        Raises:
            InvalidTargetError: A CA bundle or key file cannot be read.
        """
        if self.via == "process":
            arguments = _PWSH_SERVER_ARGS if self.arguments is None else self.arguments
            return GuardedProcessInfo(self.url, self.executable, list(arguments))
        if self.via == "ssh":
            return GuardedSSHInfo(
                self.url, self.host, self.effective_port or 22, self.subsystem, self._ssh_options()
            )
        return psrp.WSManInfo(
            self.host,
            scheme="https" if self.ssl else "http",
            port=self.effective_port or -1,
            auth=self.auth,  # type: ignore[arg-type] # checked against _AUTHS
            username=self.user,
            password=self.password,
            ssl_context=self.tls_context() if self.ssl else None,
            connection_timeout=self.connect_timeout,
            configuration_name=self.configuration,
        )

    def _ssh_options(self) -> Any:
        import asyncssh

        options: dict[str, Any] = {"connect_timeout": self.connect_timeout}
        if self.user is not None:
            options["username"] = self.user
        if self.password is not None:
            options["password"] = self.password
        options["known_hosts"] = known_hosts_option(self.known_hosts)
        if self.client_keys is not None:
            options["client_keys"] = list(self.client_keys)
            options["agent_path"] = None
        try:
            return asyncssh.SSHClientConnectionOptions(**options)
        except (OSError, asyncssh.KeyImportError, ValueError) as exc:
            raise InvalidTargetError(
                f"cannot read an SSH key or known_hosts file: {exc}", target=self.url
            ) from exc

    def open(self) -> PSRPTransport:
        """A transport for this target; it opens its runspace pool on first use."""
        return PSRPTransport(self)


_E = TypeVar("_E", bound=BaseException)


def _cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """``exc`` or the first exception it was raised from that is a ``kind``."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _fill(exc: HvIntegrationError, target: str, operation: str) -> HvIntegrationError:
    if exc.target is None:
        exc.target = target
    if exc.operation is None:
        exc.operation = operation
    return exc


class PSRPTransport(PowerShellTransport):
    """One runspace pool to one target, opened lazily and reused by every operation.

    Up to ``settings.max_pipelines`` operations run at once on the pool; more
    wait for a free slot (the wait counts towards their timeout). A pool that
    breaks (the peer dies, the stream turns unreadable, a pipeline cannot be
    stopped) is discarded with everything it started, and the next operation
    opens a new one.

    Args:
        settings: The target settings.

    Example::

        async with PSRPTarget("hv01", user="admin", password=secret, ssl=True).open() as t:
            result = await t.run_operation(LIST_VMS, {"VM": None}, timeout=30)
    """

    def __init__(self, settings: PSRPTarget) -> None:
        self.settings = settings
        self._session: Session | None = None
        self._lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(settings.max_pipelines)
        self._cleanups: set[asyncio.Task[None]] = set()
        self.pools_opened = 0
        """How many runspace pools this transport has opened so far."""

    @property
    def target(self) -> str:
        """The target URL, with no secret in it."""
        return self.settings.url

    def _closed_error(self, operation: str) -> TransportClosedError:
        return TransportClosedError(
            "the transport is closed", target=self.target, operation=operation
        )

    async def _open(self) -> None:
        """Open the runspace pool now, so that connection errors surface early.

        Raises:
            TransportError: The pool could not be opened (a subclass says
                why: authentication, host key or certificate, protocol).
            OperationTimeoutError: Not open within ``connect_timeout``.
        """
        await self._session_for("open", self.settings.connect_timeout)

    async def _session_for(self, operation: str, timeout: float) -> Session:
        if self._closed:
            raise self._closed_error(operation)
        async with self._lock:
            session = self._session
            if session is not None and not session.broken:
                return session
            if session is not None:
                self._session = None
                await self._discard(session)
            session = await self._open_session(operation, timeout)
            if self._closed:
                # aclose() ran while the pool was opening.
                await self._discard(session)
                raise self._closed_error(operation)
            self._session = session
            return session

    async def _open_session(self, operation: str, timeout: float) -> Session:
        try:
            info = self.settings.connection_info()
        except HvIntegrationError as exc:
            raise _fill(exc, self.target, operation) from None
        pool = psrp.AsyncRunspacePool(info, max_runspaces=self.settings.max_pipelines)
        session = Session(pool, info)
        limit = min(timeout, self.settings.connect_timeout)
        try:
            await asyncio.wait_for(session.watch(pool.open()), limit)
        except asyncio.TimeoutError:
            await self._discard(session)
            raise OperationTimeoutError(
                f"the runspace pool did not open within {limit:g} s",
                timeout=limit,
                target=self.target,
                operation=operation,
            ) from None
        except BaseException as exc:
            await self._discard(session)
            if isinstance(exc, Exception):
                raise self._map_error(exc, session, operation) from exc
            raise
        self.pools_opened += 1
        return session

    async def _discard(self, session: Session) -> None:
        """Close a pool, politely when it is healthy; then kill what is left.

        Safe to call more than once and from several tasks: they all wait for
        the one close.
        """
        if session.closing is None:
            session.closing = asyncio.ensure_future(self._close_session(session))
        await asyncio.shield(session.closing)

    async def _close_session(self, session: Session) -> None:
        healthy = not session.broken
        session.failed = True
        if healthy:
            # A peer that never acknowledges the close would hold pypsrp
            # forever; closing is bounded like connecting.
            limit = min(_CLOSE_TIMEOUT, self.settings.connect_timeout)
            with contextlib.suppress(Exception, asyncio.TimeoutError):
                await asyncio.wait_for(session.pool.close(), limit)
        for task in session.pipelines:
            task.cancel()
        if session.pipelines:
            await asyncio.gather(*session.pipelines, return_exceptions=True)
        carrier = session.carrier
        if carrier is not None:
            await carrier.kill()
            # The listener task ends once the stream does; wait for it so
            # that nothing of this pool outlives the transport.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(carrier.finished.wait(), _EXIT_GRACE)
        else:
            await close_wsman(session.pool)

    async def _retire(self, session: Session) -> None:
        async with self._lock:
            if self._session is session:
                self._session = None
        await self._discard(session)

    async def _run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        # Parameters travel as PSRP parameters. A terminating error becomes
        # the exception its record stands for; a pipeline stopped on the
        # remote side raises OperationStoppedError; a broken pool raises
        # TransportBrokenError (or ProtocolError when the peer sent something
        # unreadable) and the next call opens a new pool.
        try:
            wire = {name: to_wire(value) for name, value in parameters.items()}
        except TypeError as exc:
            raise ProtocolError(
                f"the parameters cannot travel as PSRP values: {exc}",
                target=self.target,
                operation=operation.name,
            ) from exc
        return await self._run(operation, wire, timeout)

    async def _run(
        self, operation: Operation, wire: Mapping[str, Any], timeout: float
    ) -> OperationResult:
        name = operation.name
        async with self._slots:
            session = await self._session_for(name, timeout)
            shell = psrp.AsyncPowerShell(session.pool)
            shell.add_script(operation.script)
            for key in operation.parameters:
                if key in wire:
                    shell.add_parameter(key, wire[key])
            pipeline: asyncio.Task[Any] | None = None
            try:
                started: asyncio.Task[list[Any]] = await session.watch(shell.invoke_async())
                pipeline = started
                session.pipelines.add(started)
                output = await session.watch(started)
            except asyncio.CancelledError:
                self._abandon(session, shell, pipeline)
                raise
            except Exception as exc:
                # Kill a broken pool first: the error then reports how the
                # peer ended, and no child outlives the error.
                was_broken = session.broken
                if was_broken:
                    await self._retire(session)
                error = self._map_error(exc, session, name)
                if not was_broken and isinstance(error, TransportError):
                    session.failed = True
                    await self._retire(session)
                raise error from exc
            finally:
                if pipeline is not None and pipeline.done():
                    session.pipelines.discard(pipeline)
        return self._result(output, shell, name)

    def _result(self, output: list[Any], shell: Any, operation: str) -> OperationResult:
        objects = []
        for index, item in enumerate(output):
            value = from_wire(item)
            if not isinstance(value, dict):
                raise ProtocolError(
                    f"output object {index} is {type(value).__name__}, not an object",
                    target=self.target,
                    operation=operation,
                )
            objects.append(value)
        errors = tuple(error_from_ps(record) for record in shell.streams.error)
        return OperationResult(tuple(objects), errors)

    def _abandon(self, session: Session, shell: Any, pipeline: asyncio.Task[Any] | None) -> None:
        """Stop a pipeline whose caller gave up, in the background."""
        task = asyncio.ensure_future(self._stop_pipeline(session, shell, pipeline))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _stop_pipeline(
        self, session: Session, shell: Any, pipeline: asyncio.Task[Any] | None
    ) -> None:
        stopped = False
        if pipeline is not None and not session.broken:
            try:
                await asyncio.wait_for(shell.stop(), _STOP_TIMEOUT)
                await asyncio.wait_for(asyncio.shield(pipeline), _STOP_TIMEOUT)
                stopped = True
            except psrp.PipelineStopped:
                stopped = True
            except asyncio.CancelledError:
                # The pool was discarded under the pipeline meanwhile.
                if not pipeline.cancelled():
                    raise
            except (Exception, asyncio.TimeoutError):
                stopped = False
        if pipeline is not None:
            session.pipelines.discard(pipeline)
            if not pipeline.done():
                pipeline.cancel()
            with contextlib.suppress(BaseException):
                await pipeline
        if not stopped:
            # A pipeline that was half sent, or that would not stop, leaves
            # the pool in an unknown state: start again with a new one.
            await self._retire(session)

    def _map_error(self, exc: Exception, session: Session, operation: str) -> HvIntegrationError:
        where = {"target": self.target, "operation": operation}
        if isinstance(exc, HvIntegrationError):
            return _fill(exc, self.target, operation)
        if isinstance(exc, psrp.PipelineFailed):
            record = (
                error_from_ps(exc.error_record)
                if exc.error_record is not None
                else ErrorRecord(str(exc) or "the pipeline failed")
            )
            return error_from_record(record, **where)
        if isinstance(exc, psrp.PipelineStopped):
            return OperationStoppedError(
                f"the remote side stopped the operation before it finished: {exc}",
                error_id="PipelineStopped",
                category="OperationStopped",
                remote_message=str(exc),
                **where,
            )
        if isinstance(exc, psrp.WSManAuthenticationError):
            return AuthenticationError(
                f"the WinRM service refused the credentials ({self.settings.auth} "
                f"authentication as {self.settings.user or 'the current user'})",
                **where,
            )
        refused = _cause(exc, ssl.SSLCertVerificationError)
        if refused is not None:
            return HostKeyError(
                f"the certificate of {self.settings.host} could not be verified: "
                f"{refused.verify_message or refused}; pass the issuing CA with ca=PATH",
                **where,
            )
        if self._closed and isinstance(exc, (PeerGone, Discarded, psrp.PSRPError, OSError)):
            # The caller closed the transport under this operation.
            return TransportClosedError("the transport was closed while the operation ran", **where)
        carrier = session.carrier
        if session.lost and carrier is not None:
            return TransportBrokenError(f"{carrier.describe_end()}, before it answered", **where)
        if isinstance(exc, PeerGone):
            return TransportBrokenError("the peer went away", **where)
        if isinstance(exc, Discarded):
            return TransportBrokenError("the runspace pool was discarded", **where)
        if isinstance(exc, psrp.PSRPError) and session.pool.state == RunspacePoolState.Broken:
            return ProtocolError(
                f"the runspace pool broke on an unreadable answer: {str(exc)[:300]}", **where
            )
        if isinstance(exc, psrp.WSManHTTPError):
            return TransportError(
                f"the WinRM service answered HTTP {exc.http_code}: {exc}", **where
            )
        if isinstance(exc, (psrp.PSRPError, ValueError, KeyError)):
            return ProtocolError(f"unexpected PSRP answer: {str(exc)[:300]}", **where)
        if isinstance(exc, OSError):
            return TransportBrokenError(f"the connection failed: {exc}", **where)
        module = type(exc).__module__.split(".", 1)[0]
        if module in {"httpx", "httpcore", "spnego", "psrpcore"}:
            return TransportError(f"{type(exc).__name__}: {str(exc)[:300]}", **where)
        raise exc

    async def _aclose(self) -> None:
        """Close the runspace pool and everything it started."""
        cleanups = list(self._cleanups)
        if cleanups:
            await asyncio.gather(*cleanups, return_exceptions=True)
        async with self._lock:
            session, self._session = self._session, None
        if session is not None:
            await self._discard(session)
