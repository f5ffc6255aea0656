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
from typing import Any, Protocol, TypeVar

import attrs

from hvintegration.errors import (
    AuthenticationError,
    HostKeyError,
    HvIntegrationError,
    OperationStoppedError,
    ProtocolError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.transport._clixml import error_from_ps
from hvintegration.transport._outofproc import Discarded, PeerGone, psrp
from hvintegration.transport.base import ErrorRecord
from hvintegration.transport.errormap import error_from_record

__all__ = ["PoolState", "TargetNames", "map_psrp_error"]

_E = TypeVar("_E", bound=BaseException)
# Exceptions from these packages are failures of the connection, whatever
# their type.
_BACKENDS = frozenset({"httpx", "httpcore", "spnego", "psrpcore"})


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


def map_psrp_error(
    exc: Exception, *, settings: TargetNames, operation: str, pool: PoolState | None = None
) -> HvIntegrationError | None:
    """The library's error for one exception from pypsrp or its layers.

    Args:
        exc: What pypsrp raised.
        settings: The target's settings, for the message (never the password).
        operation: The operation that was running, or ``open``.
        pool: The state of the pool it ran on, when known.

    Returns:
        The error to raise (the caller chains ``exc``), or ``None`` for an
        exception this module does not know.
    """
    where: dict[str, Any] = {"target": settings.url, "operation": operation}
    if isinstance(exc, HvIntegrationError):
        if exc.target is None:
            exc.target = settings.url
        if exc.operation is None:
            exc.operation = operation
        return exc
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
            f"the WinRM service refused the credentials ({settings.auth} "
            f"authentication as {settings.user or 'the current user'})",
            **where,
        )
    refused = _cause(exc, ssl.SSLCertVerificationError)
    if refused is not None:
        return HostKeyError(
            f"the certificate of {settings.host} could not be verified: "
            f"{refused.verify_message or refused}; pass the issuing CA with ca=PATH",
            **where,
        )
    pool = pool if pool is not None else PoolState()
    if pool.closed and isinstance(exc, (PeerGone, Discarded, psrp.PSRPError, OSError)):
        return TransportClosedError("the transport was closed while the operation ran", **where)
    if pool.ended is not None:
        return TransportBrokenError(f"{pool.ended}, before it answered", **where)
    if isinstance(exc, PeerGone):
        return TransportBrokenError("the peer went away", **where)
    if isinstance(exc, Discarded):
        return TransportBrokenError("the runspace pool was discarded", **where)
    if isinstance(exc, psrp.PSRPError) and pool.broken:
        return ProtocolError(
            f"the runspace pool broke on an unreadable answer: {str(exc)[:300]}", **where
        )
    if isinstance(exc, psrp.WSManHTTPError):
        return TransportError(f"the WinRM service answered HTTP {exc.http_code}: {exc}", **where)
    if isinstance(exc, (psrp.PSRPError, ValueError, KeyError)):
        return ProtocolError(f"unexpected PSRP answer: {str(exc)[:300]}", **where)
    if isinstance(exc, OSError):
        return TransportBrokenError(f"the connection failed: {exc}", **where)
    if type(exc).__module__.split(".", 1)[0] in _BACKENDS:
        return TransportError(f"{type(exc).__name__}: {str(exc)[:300]}", **where)
    return None
