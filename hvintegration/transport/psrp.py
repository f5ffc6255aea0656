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
configuration such as a JEA endpoint), ``max_answer`` (the bytes one WinRM
answer may have before it is refused; 32 MiB by default). SSH options:
``known_hosts``, ``key`` (repeatable), ``subsystem``. Process options:
``executable`` and ``arg`` (repeatable); the default runs
``pwsh -NoProfile -NoLogo -ServerMode``. Any form takes ``max_pipelines``,
``connect_timeout`` and ``max_output`` (the bytes of one operation's JSON
answer, 32 MiB by default as for ``local://`` and ``ssh://``; a larger one is
refused before it is parsed). Whole-number options take ASCII digits only.
A password may be given
in the URL or to :class:`PSRPTarget`; it never appears in ``repr``, the URL,
logs or errors.

This module holds the settings (:class:`PSRPTarget`); the live transport is
:class:`PSRPTransport` (in ``._psrp_transport``, importable from here), and
what each pypsrp failure becomes is decided in ``._psrp_errors``.

pypsrp's asyncio API exists only in its 1.0 beta, pinned exactly. The guards
(``._outofproc``) cover what that beta gets wrong: every await has a
timeout; a peer that goes away mid-pipeline is noticed at once instead of
waited on forever; the peer's stderr is kept out of the protocol stream; a
broken pool is killed (child process or SSH channel) and a new one opened on
the next operation; each operation runs in a local scope, so nothing it
defines stays in the pooled runspace for the next.

Each operation's script is piped into the shipped output command
(:mod:`hvintegration.operations._psrp_output`), so its answer crosses PSRP
as one compact JSON string, parsed once on the client, rather than as one
CLIXML object per record; error records still travel as PSRP error records.
"""

from __future__ import annotations

import ssl
import urllib.parse
from ssl import SSLContext
from typing import TYPE_CHECKING, Any

import attrs

from hvintegration._seconds import check_seconds
from hvintegration.errors import InvalidTargetError
from hvintegration.transport._powershell_wire import DEFAULT_MAX_ANSWER, DEFAULT_MAX_OUTPUT
from hvintegration.transport._ssh_connect import client_options
from hvintegration.transport._url import (
    check_options,
    check_user_name,
    missing_extra,
    parse_options,
    whole_number,
)

if TYPE_CHECKING:
    from hvintegration.transport._outofproc import psrp
    from hvintegration.transport._psrp_transport import PSRPTransport

__all__ = ["PSRPTarget", "PSRPTransport"]

_VIAS = ("wsman", "ssh", "process")
_AUTHS = ("negotiate", "ntlm", "kerberos", "credssp", "basic")
_PWSH_SERVER_ARGS = ("-NoProfile", "-NoLogo", "-ServerMode")
_COMMON_OPTIONS = {"via", "max_pipelines", "connect_timeout", "max_output"}
_VIA_OPTIONS = {
    "wsman": {"auth", "ssl", "ca", "cert_validation", "configuration", "max_answer"},
    "ssh": {"known_hosts", "key", "subsystem"},
    "process": {"executable", "arg"},
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
        max_answer: For WinRM, the bytes one HTTP answer may have; a larger
            one is refused with a ``ProtocolError`` before it is read whole.
        max_output: The bytes of JSON one operation's answer may have (32
            MiB by default, as for ``local://`` and ``ssh://``); a larger
            answer is refused with a ``ProtocolError`` before it is parsed.
            Every connection takes it.

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
    max_answer: int = DEFAULT_MAX_ANSWER
    max_output: int = DEFAULT_MAX_OUTPUT

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
        if not self.cert_validation and not (self.via == "wsman" and self.ssl):
            raise InvalidTargetError(
                "cert_validation= applies to WinRM over HTTPS (ssl=true)", target=self.url
            )
        if not 1 <= self.max_pipelines <= 64:
            raise InvalidTargetError("max_pipelines must be from 1 to 64", target=self.url)
        check_seconds(
            self.connect_timeout, "connect_timeout", error=InvalidTargetError, target=self.url
        )
        if self.max_answer < 65536:
            raise InvalidTargetError("max_answer must be at least 65536 bytes", target=self.url)
        if self.max_output < 1024:
            raise InvalidTargetError("max_output must be at least 1024 bytes", target=self.url)
        check_user_name(self.user, target=self.url)

    @property
    def effective_port(self) -> int | None:
        """The port connected to: the given one, or the default of the connection."""
        if self.port is not None or self.via == "process":
            return self.port
        if self.via == "ssh":
            return 22
        return 5986 if self.ssl else 5985

    def __repr__(self) -> str:
        # The URL names every setting that matters and never the password.
        return f"<PSRPTarget {self.url}>"

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
            if self.max_answer != DEFAULT_MAX_ANSWER:
                query.append(("max_answer", str(self.max_answer)))
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
        if self.max_output != DEFAULT_MAX_OUTPUT:
            query.append(("max_output", str(self.max_output)))
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
        max_pipelines = whole_number(single, "max_pipelines", 8)
        max_answer = whole_number(
            single, "max_answer", DEFAULT_MAX_ANSWER, what="a whole number of bytes"
        )
        max_output = whole_number(
            single, "max_output", DEFAULT_MAX_OUTPUT, what="a whole number of bytes"
        )
        try:
            connect_timeout = float(single.get("connect_timeout", "30"))
        except ValueError:
            raise InvalidTargetError("connect_timeout must be a number of seconds") from None
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
            max_answer=max_answer,
            max_output=max_output,
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
            InvalidTargetError: A CA bundle or key file cannot be read, or
                the optional packages are not installed.
        """
        self._require_extra()
        from hvintegration.transport._outofproc import GuardedProcessInfo, GuardedSSHInfo
        from hvintegration.transport._psrp_wsman import GuardedWSManInfo

        if self.via == "process":
            arguments = _PWSH_SERVER_ARGS if self.arguments is None else self.arguments
            return GuardedProcessInfo(self.url, self.executable, list(arguments))
        if self.via == "ssh":
            return GuardedSSHInfo(
                self.url, self.host, self.effective_port or 22, self.subsystem, self._ssh_options()
            )
        return GuardedWSManInfo(
            self.url,
            self.max_answer,
            # pypsrp puts the host into an http URL as it is: an IPv6
            # address needs its brackets there.
            f"[{self.host}]" if ":" in self.host else self.host,
            scheme="https" if self.ssl else "http",
            port=self.effective_port or -1,
            auth=self.auth,  # checked against _AUTHS
            username=self.user,
            password=self.password,
            ssl_context=self.tls_context() if self.ssl else None,
            connection_timeout=self.connect_timeout,
            configuration_name=self.configuration,
        )

    def _ssh_options(self) -> Any:
        return client_options(
            target=self.url,
            user=self.user,
            password=self.password,
            known_hosts=self.known_hosts,
            client_keys=self.client_keys,
            connect_timeout=self.connect_timeout,
        )

    def _require_extra(self) -> None:
        # The settings need no optional package; a connection does, and
        # without it says in one line what to install.
        problem = missing_extra(urllib.parse.urlsplit(self.url), scheme="psrp")
        if problem is not None:
            raise InvalidTargetError(problem, target=self.url)

    def open(self) -> PSRPTransport:
        """A transport for this target; it opens its runspace pool on first use.

        Raises:
            InvalidTargetError: The ``psrp`` extra (and for ``via=ssh`` the
                ``ssh`` extra) is not installed.
        """
        self._require_extra()
        from hvintegration.transport._psrp_transport import PSRPTransport

        return PSRPTransport(self)


def __getattr__(name: str) -> Any:
    # PSRPTransport is importable from here, yet importing PSRPTarget must
    # not need the psrp extra.
    if name == "PSRPTransport":
        from hvintegration.transport._psrp_transport import PSRPTransport

        return PSRPTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
