"""Which of the library's errors a pypsrp failure becomes.

pypsrp, its HTTP and authentication layers, and psrpcore each raise their
own exceptions; :func:`map_psrp_error` is the one place that turns them into
:mod:`hvintegration.errors`, so the ``psrp://`` transport reports the same
failure the same way whether it met it opening a pool or running a pipeline.
What depends on the pool the failure happened on (the transport closed under
it, its peer gone, the pool broken) comes in as a :class:`PoolState`.
"""

from __future__ import annotations

import ssl
import xml.etree.ElementTree
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import attrs
import httpcore
import httpx
import psrpcore
import spnego.exceptions
from psrp import _exceptions as wsman
from psrpcore._exceptions import _InvalidState

from hvintegration.errors import (
    AuthenticationError,
    HostKeyError,
    HvIntegrationError,
    OperationStoppedError,
    OperationTimeoutError,
    PermissionDeniedError,
    ProtocolError,
    RemoteCommandError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.transport._clixml import error_from_ps
from hvintegration.transport._outofproc import Discarded, PeerGone, psrp
from hvintegration.transport.base import ErrorRecord
from hvintegration.transport.errormap import error_from_record

__all__ = ["ERROR_TABLE", "ErrorRule", "PoolState", "TargetNames", "map_psrp_error"]

_E = TypeVar("_E", bound=BaseException)


class TargetNames(Protocol):
    """What messages say about a target (a ``PSRPTarget``); never its password."""

    @property
    def url(self) -> str:
        """The target URL."""

    @property
    def host(self) -> str:
        """The host name."""

    @property
    def user(self) -> str | None:
        """The login name."""

    @property
    def auth(self) -> str:
        """The WinRM authentication."""

    @property
    def effective_port(self) -> int | None:
        """The port connected to (``None`` for a local process)."""


@attrs.frozen
class PoolState:
    """What the transport knows of the pool a failure happened on.

    Attributes:
        closed: The transport was closed under the operation.
        ended: How the peer's stream ended (it did, before the answer), or
            ``None``.
        broken: The pool's own state is ``Broken``.
    """

    closed: bool = False
    ended: str | None = None
    broken: bool = False


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


@attrs.frozen
class ErrorRule:
    """What one exception type becomes.

    Attributes:
        errors: The library error classes the rule may give (the builder
            picks one where the exception's own data decides, such as a
            WS-Management fault code).
        build: Makes the error from the exception, the target's names and
            the ``target``/``operation`` keywords.
    """

    errors: tuple[type[HvIntegrationError], ...]
    build: Callable[[Any, TargetNames, dict[str, Any]], HvIntegrationError]


def _rule(
    *errors: type[HvIntegrationError],
) -> Callable[[Callable[[Any, TargetNames, dict[str, Any]], HvIntegrationError]], ErrorRule]:
    def make(build: Callable[[Any, TargetNames, dict[str, Any]], HvIntegrationError]) -> ErrorRule:
        return ErrorRule(errors, build)

    return make


def _text(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:300]


@_rule(RemoteCommandError)
def _pipeline_failed(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    record = (
        error_from_ps(exc.error_record)
        if exc.error_record is not None
        else ErrorRecord(str(exc) or "the pipeline failed")
    )
    return error_from_record(record, **where)


@_rule(OperationStoppedError)
def _pipeline_stopped(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return OperationStoppedError(
        f"the remote side stopped the operation before it finished: {exc}",
        error_id="PipelineStopped",
        category="OperationStopped",
        remote_message=str(exc),
        **where,
    )


@_rule(AuthenticationError)
def _refused(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return AuthenticationError(
        f"the WinRM service refused the credentials ({settings.auth} "
        f"authentication as {settings.user or 'the current user'})",
        **where,
    )


@_rule(AuthenticationError)
def _spnego(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return AuthenticationError(
        f"{settings.auth} authentication as {settings.user or 'the current user'} "
        f"failed before the WinRM service answered: {_text(exc)}",
        **where,
    )


# ERROR_ACCESS_DENIED (5): what WinRM answers an account that may log on but
# may not use the endpoint ("Access is denied."), e.g. one that is neither an
# administrator nor in Remote Management Users (about_Remote_Troubleshooting,
# "How to enable remoting for non-administrative users").
_ACCESS_DENIED = 5


@_rule(PermissionDeniedError, TransportError)
def _wsman_fault(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    reason = str(getattr(exc, "reason", "") or "").strip()
    if exc.code == _ACCESS_DENIED or "access is denied" in reason.lower():
        return PermissionDeniedError(
            f"the WinRM service denied {settings.user or 'the current user'} access to the "
            "endpoint: use an account in Administrators (or in Remote Management Users for a "
            f"custom endpoint) on {settings.host} ({reason or 'Access is denied.'})",
            remote_message=reason,
            **where,
        )
    return TransportError(
        f"the WinRM service refused the request: {reason or type(exc).MESSAGE} "
        f"(WS-Management fault {exc.code})",
        **where,
    )


@_rule(TransportBrokenError)
def _shell_gone(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return TransportBrokenError(
        f"the WinRM shell of the runspace pool is gone: {type(exc).MESSAGE}", **where
    )


@_rule(OperationTimeoutError)
def _wsman_timeout(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return OperationTimeoutError(
        f"the WinRM service gave up on the request: {type(exc).MESSAGE}", **where
    )


@_rule(TransportError)
def _http_status(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return TransportError(f"the WinRM service answered HTTP {exc.http_code}: {exc}", **where)


@_rule(TransportError)
def _pool_in_use(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return TransportError(
        f"the runspace pool is not available, most likely in use by another client: {exc}",
        **where,
    )


@_rule(ProtocolError)
def _unreadable(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return ProtocolError(f"unexpected PSRP answer: {_text(exc)}", **where)


@_rule(ProtocolError)
def _not_xml(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return ProtocolError(
        f"the peer answered with something that is not XML ({_text(exc)}); "
        f"is {settings.host} a WinRM endpoint?",
        **where,
    )


@_rule(ProtocolError)
def _too_deep(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return ProtocolError("the peer's answer is nested too deeply to read", **where)


@_rule(ProtocolError)
def _old_protocol(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return ProtocolError(
        f"the peer's PSRP protocol is too old: {_text(exc)} (PowerShell 3.0 or newer is needed)",
        **where,
    )


@_rule(OperationTimeoutError)
def _http_timeout(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return OperationTimeoutError(f"{settings.host} did not answer in time: {_text(exc)}", **where)


@_rule(TransportError)
def _cannot_connect(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    port = settings.effective_port
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    where_to = settings.host if port is None else f"{host}:{port}"
    return TransportError(f"cannot connect to {where_to}: {_text(exc)}", **where)


@_rule(TransportBrokenError)
def _connection_failed(
    exc: Any, settings: TargetNames, where: dict[str, Any]
) -> HvIntegrationError:
    return TransportBrokenError(f"the connection failed: {_text(exc)}", **where)


@_rule(TransportBrokenError)
def _peer_gone(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return TransportBrokenError("the peer went away", **where)


@_rule(TransportBrokenError)
def _discarded(exc: Any, settings: TargetNames, where: dict[str, Any]) -> HvIntegrationError:
    return TransportBrokenError("the runspace pool was discarded", **where)


ERROR_TABLE: Mapping[type[BaseException], ErrorRule] = {
    # pypsrp (psrp._exceptions), most specific first.
    psrp.PipelineFailed: _pipeline_failed,
    psrp.PipelineStopped: _pipeline_stopped,
    psrp.WSManAuthenticationError: _refused,
    psrp.WSManHTTPError: _http_status,
    wsman.ErrorCancelled: _shell_gone,
    wsman.OperationAborted: _shell_gone,
    wsman.UnexpectedSelectors: _shell_gone,
    wsman.ShellDisconnected: _shell_gone,
    wsman.ServiceStreamDisconnected: _shell_gone,
    wsman.OperationTimedOut: _wsman_timeout,
    wsman.WSManFault: _wsman_fault,
    wsman.RunspaceNotAvailable: _pool_in_use,
    psrp.PSRPError: _unreadable,
    # psrpcore (psrpcore._exceptions): the peer broke the protocol.
    psrpcore.InvalidProtocolVersion: _old_protocol,
    psrpcore.InvalidPipelineState: _unreadable,
    psrpcore.InvalidRunspacePoolState: _unreadable,
    # The private base of the two state errors, which the table covers too.
    _InvalidState: _unreadable,
    psrpcore.MissingCipherError: _unreadable,
    psrpcore.PSRPCoreError: _unreadable,
    # What pypsrp lets through from the layers under it.
    xml.etree.ElementTree.ParseError: _not_xml,
    spnego.exceptions.SpnegoError: _spnego,
    httpx.TimeoutException: _http_timeout,
    httpx.ConnectError: _cannot_connect,
    httpx.HTTPError: _connection_failed,
    httpcore.TimeoutException: _http_timeout,
    httpcore.ConnectError: _cannot_connect,
    httpcore.NetworkError: _connection_failed,
    httpcore.ProtocolError: _unreadable,
    # Out-of-process carriers (._outofproc).
    PeerGone: _peer_gone,
    Discarded: _discarded,
    # Python's own, raised while reading an answer.
    RecursionError: _too_deep,
    UnicodeError: _unreadable,
    ValueError: _unreadable,
    KeyError: _unreadable,
    TimeoutError: _http_timeout,
    ConnectionRefusedError: _cannot_connect,
    OSError: _connection_failed,
}
"""Every exception type the ``psrp://`` transport knows, and what it becomes.

A failure is looked up by its class and then each base class in turn (its
method resolution order), so the most specific entry wins. Every exception
class pypsrp and psrpcore define has its own entry
(``tests/test_transport_psrp_errors.py`` walks both packages to check)."""


def rule_for(kind: type[BaseException]) -> ErrorRule | None:
    """The table's rule for an exception class, through its bases; ``None`` if none fits."""
    for base in kind.__mro__:
        rule = ERROR_TABLE.get(base)
        if rule is not None:
            return rule
    return None


def map_psrp_error(
    exc: Exception, *, settings: TargetNames, operation: str, pool: PoolState | None = None
) -> HvIntegrationError | None:
    """The library's error for one exception from pypsrp or its layers.

    What the pool tells comes first (the transport was closed under the
    call, the peer's stream ended, a certificate was refused somewhere in
    the chain); otherwise :data:`ERROR_TABLE` decides by the exception's
    type.

    Args:
        exc: What pypsrp raised.
        settings: The target's settings, for the message (never the password).
        operation: The operation that was running, or ``open``.
        pool: The state of the pool it ran on, when known.

    Returns:
        The error to raise (the caller chains ``exc``), or ``None`` for an
        exception the table does not know.
    """
    where: dict[str, Any] = {"target": settings.url, "operation": operation}
    if isinstance(exc, HvIntegrationError):
        if exc.target is None:
            exc.target = settings.url
        if exc.operation is None:
            exc.operation = operation
        return exc
    refused = _cause(exc, ssl.SSLCertVerificationError)
    if refused is not None:
        return HostKeyError(
            f"the certificate of {settings.host} could not be verified: "
            f"{refused.verify_message or refused}; pass the issuing CA with ca=PATH",
            **where,
        )
    pool = pool if pool is not None else PoolState()
    final = isinstance(exc, (psrp.PipelineFailed, psrp.PipelineStopped))
    if not final:
        if pool.closed and isinstance(exc, (PeerGone, Discarded, psrp.PSRPError, OSError)):
            return TransportClosedError("the transport was closed while the operation ran", **where)
        if pool.ended is not None:
            return TransportBrokenError(f"{pool.ended}, before it answered", **where)
        if pool.broken and isinstance(exc, (psrp.PSRPError, psrpcore.PSRPCoreError)):
            return ProtocolError(
                f"the runspace pool broke on an unreadable answer: {_text(exc)}", **where
            )
    rule = rule_for(type(exc))
    if rule is None:
        return None
    return rule.build(exc, settings, where)
