"""SSH connections, made the same way for every transport that uses SSH.

``ssh://`` and ``psrp://...?via=ssh`` both reach their target through
asyncssh. This module is the one place that decides how: which options a
connection gets (:func:`client_options`), which host keys are trusted
(:func:`known_hosts_option`), and which of the library's errors a failed
connect becomes (:func:`connect`). So a host key, a refused login or a
connect timeout reads the same whichever transport met it.

A server that drops a connection before the login (OpenSSH's ``sshd`` does
so on purpose with ``MaxStartups``: by default, beyond 10 connections still
logging in, it drops 30% of new ones, rising to all of them at 100) is tried
again with a growing, jittered pause, within the connect timeout; when the
time is up the error says what happened and why.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hvintegration.errors import (
    AuthenticationError,
    HostKeyError,
    InvalidTargetError,
    OperationTimeoutError,
    TransportError,
)
from hvintegration.transport.base import log_retry

if TYPE_CHECKING:
    import asyncssh

__all__ = [
    "DROP_RETRY_FIRST",
    "DROP_RETRY_MAX",
    "KEEPALIVE_INTERVAL",
    "client_options",
    "connect",
    "known_hosts_option",
]

KEEPALIVE_INTERVAL = 30.0
"""Seconds between keepalive requests, so a dead peer is noticed on an idle connection."""

DROP_RETRY_FIRST = 0.05
"""Seconds before the first new attempt after the server dropped a connection before the login."""

DROP_RETRY_MAX = 1.0
"""The longest pause, in seconds, between attempts after such drops; each pause
doubles up to this and is then spread by ±50% so that many clients dropped at
once do not all come back at once."""

_MAX_STARTUPS = (
    "sshd drops connections still logging in beyond its MaxStartups "
    "(default 10:30:100): open fewer connections at once, or raise MaxStartups"
)


def _dropped(exc: BaseException) -> bool:
    """Whether a connect failed because the server closed it before the login.

    sshd's ``MaxStartups`` closes the socket right after accepting it: the
    client then reads end of file (asyncssh's ``ConnectionLost``) or a reset.
    A refused connection (nothing listening) is not a drop.
    """
    import asyncssh

    return isinstance(
        exc,
        (asyncssh.ConnectionLost, ConnectionResetError, ConnectionAbortedError, BrokenPipeError),
    )


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


def client_options(
    *,
    target: str,
    user: str | None,
    password: str | None,
    known_hosts: str | None,
    client_keys: Sequence[str] | None,
    connect_timeout: float,
    verify_host_key: bool = True,
) -> asyncssh.SSHClientConnectionOptions:
    """The asyncssh options for one SSH target.

    Args:
        target: The target URL, for errors.
        user: Login name; the local user's when ``None``.
        password: A password, or ``None``.
        known_hosts: A known_hosts file; the user's own when ``None``.
        client_keys: Private key files; the user's default keys and agent
            when ``None``.
        connect_timeout: Seconds the connection and login may take.
        verify_host_key: Whether the host key must be known.

    Returns:
        The options. They hold secrets: never log them.

    Raises:
        InvalidTargetError: A key or known_hosts file is missing or unreadable.
    """
    import asyncssh
    from asyncssh.saslprep import SASLPrepError

    options: dict[str, Any] = {
        "connect_timeout": connect_timeout,
        "keepalive_interval": KEEPALIVE_INTERVAL,
        "known_hosts": known_hosts_option(known_hosts) if verify_host_key else None,
    }
    if user is not None:
        options["username"] = user
    if password is not None:
        options["password"] = password
    if client_keys is not None:
        options["client_keys"] = list(client_keys)
        options["agent_path"] = None
    if verify_host_key and known_hosts is not None:
        # asyncssh reads the file only when it connects, and a missing one
        # would then read as an unreachable host.
        try:
            with open(known_hosts, "rb"):
                pass
        except OSError as exc:
            raise InvalidTargetError(
                f"cannot read the known_hosts file {known_hosts!r}: {exc.strerror or exc}",
                target=target,
            ) from exc
    try:
        return asyncssh.SSHClientConnectionOptions(**options)
    except SASLPrepError as exc:
        # The user name (checked when the target was made, so only a name
        # asyncssh refuses on grounds of its own): never a file problem.
        raise InvalidTargetError(
            f"the user name is not valid for SSH: {exc}", target=target
        ) from exc
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        # A key or known_hosts file that is missing or unreadable is a
        # settings problem, not a network one.
        raise InvalidTargetError(
            f"cannot read an SSH key or known_hosts file: {exc}", target=target
        ) from exc


async def connect(
    host: str,
    port: int,
    options: asyncssh.SSHClientConnectionOptions,
    *,
    target: str,
    operation: str | None,
) -> asyncssh.SSHClientConnection:
    """Connect and log in, mapping every failure into the library's errors.

    A connection that fails or is cancelled half-way is released by asyncssh
    before this returns. A connection the server drops before the login (as
    ``sshd`` does beyond its ``MaxStartups``, see the ``sshd_config(5)`` manual:
    https://man.openbsd.org/sshd_config#MaxStartups) is tried again after a
    pause of :data:`DROP_RETRY_FIRST` seconds, doubling up to
    :data:`DROP_RETRY_MAX`, for as long as the options' ``connect_timeout``
    allows (the whole connect, attempts and pauses, stays within it).

    Args:
        host: Host name or address.
        port: TCP port.
        options: From :func:`client_options`.
        target: The target URL, for errors.
        operation: The operation that needed the connection, for errors.

    Returns:
        The connection, logged in.

    Raises:
        HostKeyError: The host key is not trusted.
        AuthenticationError: The login was refused.
        OperationTimeoutError: No connection within the options'
            ``connect_timeout``.
        TransportError: The host cannot be reached or refused the connection,
            or kept dropping it before the login until the connect timeout
            was spent (the message names ``MaxStartups``).
    """
    import asyncssh

    where: dict[str, Any] = {"target": target, "operation": operation}
    loop = asyncio.get_running_loop()
    timeout = options.connect_timeout
    deadline = None if not timeout else loop.time() + timeout
    pause = DROP_RETRY_FIRST
    attempt = 1
    while True:
        try:
            return await _connect_once(host, port, options, where)
        except TransportError as exc:
            cause = exc.__cause__
            if cause is None or not _dropped(cause):
                raise
            wait = pause * random.uniform(0.5, 1.5)
            spent = loop.time() + wait >= deadline if deadline is not None else attempt >= 10
            if spent:
                within = f" in {timeout:g} s" if timeout else ""
                raise TransportError(
                    f"{host}:{port} dropped the SSH connection before the login "
                    f"{attempt} times{within} ({_MAX_STARTUPS})",
                    **where,
                ) from cause
            attempt += 1
            log_retry(
                target, operation or "connect", "the server dropped the connection", attempt=attempt
            )
            await asyncio.sleep(wait)
            pause = min(pause * 2, DROP_RETRY_MAX)
            if deadline is not None:
                options = asyncssh.SSHClientConnectionOptions(
                    options=options, connect_timeout=max(deadline - loop.time(), 0.001)
                )


async def _connect_once(
    host: str,
    port: int,
    options: asyncssh.SSHClientConnectionOptions,
    where: dict[str, Any],
) -> asyncssh.SSHClientConnection:
    """One connect and login, every failure mapped (see :func:`connect`)."""
    import asyncssh

    # The key the server offered, kept so that a refusal can show its
    # fingerprint: asyncssh asks the client object about a key that is not
    # in known_hosts, and refuses it when the answer is False.
    offered: list[asyncssh.SSHKey] = []

    class _Client(asyncssh.SSHClient):
        def validate_host_public_key(
            self, host: str, addr: str, port: int, key: asyncssh.SSHKey
        ) -> bool:
            offered.append(key)
            return False

    try:
        return await asyncssh.connect(host, port, client_factory=_Client, options=options)
    except asyncssh.HostKeyNotVerifiable as exc:
        fingerprint = ""
        if offered:
            key = offered[-1]
            fingerprint = f"; it offered {key.get_algorithm()} key {key.get_fingerprint('sha256')}"
        raise HostKeyError(
            f"the host key of {host}:{port} is not trusted: {exc.reason}{fingerprint} "
            "(add it to known_hosts after checking its fingerprint, e.g. with "
            "ssh-keyscan and ssh-keygen -lf, against the one the host itself shows)",
            **where,
        ) from exc
    except asyncssh.PermissionDenied as exc:
        user = options.username or "the local user"
        raise AuthenticationError(
            f"SSH authentication as {user} failed (check the key, agent or password)", **where
        ) from exc
    except asyncssh.DisconnectError as exc:
        raise TransportError(f"SSH connection refused: {exc.reason}", **where) from exc
    except asyncio.TimeoutError as exc:
        timeout = options.connect_timeout
        raise OperationTimeoutError(
            f"no SSH connection to {host}:{port} within {timeout:g} s"
            if timeout
            else f"no SSH connection to {host}:{port}",
            timeout=timeout,
            **where,
        ) from exc
    except OSError as exc:
        raise TransportError(f"cannot reach {host}:{port}: {exc.strerror or exc}", **where) from exc
    except asyncssh.Error as exc:
        raise TransportError(f"SSH connection failed: {exc}", **where) from exc
