"""The base of resource objects that own one transport."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

from hvintegration._seconds import check_seconds
from hvintegration.transport.base import Transport

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_TIMEOUT", "TransportResource"]

DEFAULT_TIMEOUT = 60.0
"""Seconds an operation may take before it is abandoned, unless set otherwise."""


_T = TypeVar("_T", bound=Transport)


class TransportResource(Generic[_T]):
    """A resource that owns a transport: closing it closes the transport.

    Args:
        transport: The live transport, of the kind the resource needs.
        timeout: Seconds each operation may take.
    """

    def __init__(self, transport: _T, *, timeout: float) -> None:
        check_seconds(timeout, "timeout", target=transport.target)
        self.transport = transport
        self.timeout = timeout

    @property
    def target(self) -> str:
        """The target URL, with no secret in it."""
        return self.transport.target

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target}>"

    async def aclose(self) -> None:
        """Close the transport. Safe to call more than once."""
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        await self.transport.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
