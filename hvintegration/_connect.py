"""Opening a resource on a target: awaitable, and an async context manager.

``HyperVHost.connect(...)`` and ``WindowsGuest.connect(...)`` return a
:class:`Connection`: ``async with`` closes the resource on exit, ``await``
hands it over for the caller to close, which suits notebooks.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Generic, NoReturn, Protocol, TypeVar, Union

from hvintegration.errors import InvalidTargetError
from hvintegration.transport import (
    PowerShellTarget,
    PowerShellTransport,
    ShellTarget,
    ShellTransport,
    Target,
    Transport,
    parse_target,
)

__all__ = [
    "Connection",
    "ConnectionNotOpenError",
    "PowerShellTargetLike",
    "ShellTargetLike",
    "TargetLike",
    "powershell_transport_for",
    "shell_transport_for",
    "transport_for",
]

TargetLike = Union[str, Target, Transport]
"""A URL, a target (settings, or a simulated host or guest, which are targets
too), or a live transport."""

PowerShellTargetLike = Union[str, PowerShellTarget, PowerShellTransport]
"""What a Hyper-V host or a Windows guest can be reached through."""

ShellTargetLike = Union[str, ShellTarget, ShellTransport]
"""What a Linux guest can be reached through."""


class _Resource(Protocol):
    @property
    def transport(self) -> Transport: ...

    async def aclose(self) -> None: ...


_R = TypeVar("_R", bound=_Resource)


class ConnectionNotOpenError(AttributeError, TypeError):
    """A resource's method used on a :class:`Connection` instead of the resource.

    An :class:`AttributeError`, so ``hasattr(connection, "vm")`` is False
    and ``getattr(connection, "vm", None)`` is None, as for any object that
    lacks the name; and a :class:`TypeError`, the kind of mistake it is. The
    message says how to open the connection, or that it was closed.
    """


class Connection(Generic[_R]):
    """A resource about to be opened.

    Open it with ``async with`` or ``await``; anything else (``.vm``,
    ``.services()``...) raises :class:`ConnectionNotOpenError` (a
    :class:`TypeError` and an :class:`AttributeError`) that shows both
    ways, or says the connection was closed, and no coroutine is left
    behind to warn about.

    Args:
        resource: The resource; its transport is opened on ``await`` or
            ``async with``, and the resource closed if that fails.
    """

    __slots__ = ("_resource", "_state")

    def __init__(self, resource: _R) -> None:
        self._resource = resource
        # "new", then "open" once awaited or entered, "closed" once an
        # ``async with`` block has ended.
        self._state = "new"

    def _hint(self) -> str:
        # The two ways that work, spelled out so they can be pasted back.
        cls = type(self._resource).__name__
        var = "guest" if cls.endswith("Guest") else "host"
        call = f"{cls}.connect(url)"
        return f"write `async with {call} as {var}:` or `{var} = await {call}`"

    if not TYPE_CHECKING:
        # Run time only: a type checker keeps rejecting ``connect(...).vm``.

        def __getattr__(self, attribute: str) -> NoReturn:
            # Reached only for names a connection lacks: the resource's methods
            # (``.vm``, ``.services``...) used before the connection was opened.
            if attribute.startswith("_"):
                # Private and protocol probes (copy, pickle, IPython's display
                # hooks) get the plain answer those tools expect.
                raise AttributeError(attribute)
            cls = type(self._resource).__name__
            if self._state == "closed":
                raise ConnectionNotOpenError(
                    f"this {cls}.connect() connection was closed when its `async with` block "
                    f"ended, so it has no .{attribute}; use the object `as` gave inside the "
                    f"block, or open a new one: {self._hint()}"
                )
            if self._state == "open":
                raise ConnectionNotOpenError(
                    f"a connection has no .{attribute}; the {cls} is what opening it gave: "
                    f"{self._hint()}"
                )
            raise ConnectionNotOpenError(
                f"{cls}.connect() gives a connection that is not open "
                f"yet, so it has no .{attribute}: {self._hint()}"
            )

        def __call__(self, *args: object, **kwargs: object) -> NoReturn:
            raise TypeError(f"a connection is not callable; open it first: {self._hint()}")

        def __enter__(self) -> NoReturn:
            raise TypeError(f"a connection opens with `async with`, not `with`: {self._hint()}")

        def __exit__(self, *exc_info: object) -> None:  # never reached: __enter__ raises
            return None

    def __repr__(self) -> str:
        if self._state == "closed":
            return f"<Connection to {self._resource!r}, closed>"
        if self._state == "open":
            return f"<Connection to {self._resource!r}, open>"
        return f"<Connection to {self._resource!r}, not open: {self._hint()}>"

    def __await__(self) -> Generator[object, None, _R]:
        return self._open().__await__()

    async def _open(self) -> _R:
        try:
            await self._resource.transport.open()
        except BaseException:
            await self._resource.aclose()
            raise
        self._state = "open"
        return self._resource

    async def __aenter__(self) -> _R:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = "closed"
        await self._resource.aclose()


def transport_for(target: TargetLike) -> Transport:
    """A transport for any way a caller names a target.

    Raises:
        InvalidTargetError: A URL is malformed or names no transport.
    """
    if isinstance(target, Transport):
        return target
    if isinstance(target, str):
        return parse_target(target).open()
    if inspect.iscoroutine(target):
        target.close()  # it will never be awaited now; say so once, here
        raise InvalidTargetError(
            "the target is a coroutine: did you forget `await`? "
            "(pass a URL, target settings or a transport)"
        )
    if isinstance(target, type):
        raise InvalidTargetError(
            f"the target is the class {target.__name__}; pass an instance of it"
        )
    opener = getattr(target, "open", None)
    if not callable(opener) or not hasattr(target, "url"):
        raise InvalidTargetError(
            "a target is a URL such as sim:// or ssh://user@host, target settings or a "
            f"transport, not {type(target).__name__}"
        )
    transport = opener()
    if not isinstance(transport, Transport):
        raise InvalidTargetError(
            f"{type(target).__name__}.open() gave {type(transport).__name__}, not a transport"
        )
    return transport


def powershell_transport_for(target: PowerShellTargetLike) -> PowerShellTransport:
    """A transport that runs PowerShell operations, for a host or a Windows guest.

    Raises:
        InvalidTargetError: A URL is malformed, names no transport, or names
            a target that has only a POSIX shell (``sim-linux://``).
    """
    transport = transport_for(target)
    if not isinstance(transport, PowerShellTransport):
        raise InvalidTargetError(
            f"{transport.target} runs shell commands only; a Hyper-V host or a Windows "
            "guest needs a PowerShell target (sim://, local://, ssh://, psrp://)"
        )
    return transport


def shell_transport_for(target: ShellTargetLike) -> ShellTransport:
    """A transport that runs shell commands, for a Linux guest.

    Raises:
        InvalidTargetError: A URL is malformed, names no transport, or names
            a target that runs PowerShell operations only (``sim://``,
            ``psrp://``).
    """
    transport = transport_for(target)
    if not isinstance(transport, ShellTransport):
        raise InvalidTargetError(
            f"{transport.target} runs PowerShell operations only; a Linux guest needs a "
            "shell target (sim-linux://, ssh://, local://)"
        )
    return transport
