"""The one narrow interface every transport implements.

A transport carries two kinds of request to one target and nothing else:

* :meth:`Transport.run_operation` runs one of the library's fixed PowerShell
  operations (:mod:`hvintegration.operations`) with its parameters passed out
  of band: as real PSRP parameters, or as JSON on the child's stdin. No
  parameter value is ever spliced into script text.
* :meth:`Transport.run_command` runs an argv list on a POSIX shell target,
  such as a Linux guest.

Resource code (``HyperVHost``, ``LinuxGuest``...) only ever talks to this
interface, so it never knows which transport it runs on. A transport
translates its backend's failures into :mod:`hvintegration.errors` at this
edge, keeping the cause (``raise ... from exc``).
"""

from __future__ import annotations

import abc
import asyncio
import shlex
from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar, Union

import attrs

from hvintegration.errors import OperationTimeoutError, RemoteCommandError, TransportError

if TYPE_CHECKING:
    from typing_extensions import Self

    from hvintegration.operations import Operation

__all__ = [
    "CompletedCommand",
    "ErrorRecord",
    "JsonValue",
    "OperationResult",
    "Transport",
    "within",
]

JsonValue = Union[None, bool, int, float, str, Sequence["JsonValue"], Mapping[str, "JsonValue"]]
"""A value that survives a JSON round trip: what operation parameters and
results are made of."""


@attrs.frozen
class ErrorRecord:
    """A PowerShell error record, reduced to what the library acts on.

    Attributes:
        message: The exception message.
        error_id: ``FullyQualifiedErrorId``, such as
            ``HvIntegration.VMNotFound`` or
            ``InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM``.
        category: The ``ErrorCategory`` name, such as ``ObjectNotFound``.
        exception_type: The .NET type name of the exception.
        target_object: ``TargetObject``; the library's scripts set it to the
            item of a batch that failed (a VM reference or a change index).
        details: ``ErrorDetails.RecommendedAction``; the library's scripts use
            it for the valid choices, one per line.
    """

    message: str
    error_id: str = ""
    category: str = ""
    exception_type: str = ""
    target_object: JsonValue = None
    details: str = ""

    @property
    def base_id(self) -> str:
        """The error id before the first comma (PowerShell appends the command name)."""
        return self.error_id.split(",", 1)[0]


@attrs.frozen
class OperationResult:
    """What one run of an operation produced.

    Attributes:
        output: The objects the script wrote to its output stream, as JSON
            objects with the script's property names.
        errors: Non-terminating errors the script wrote; the library's
            scripts use them to report failed items of a batch while the rest
            of the batch goes on.
    """

    output: tuple[Mapping[str, JsonValue], ...]
    errors: tuple[ErrorRecord, ...] = ()


@attrs.frozen
class CompletedCommand:
    """The result of one argv run on a shell target, like ``asyncssh``'s.

    Attributes:
        argv: The command as run.
        exit_status: The exit code.
        stdout: Everything the command wrote to stdout.
        stderr: Everything the command wrote to stderr.
    """

    argv: tuple[str, ...]
    exit_status: int
    stdout: bytes
    stderr: bytes

    def check(self, *, target: str | None = None, operation: str | None = None) -> None:
        """Raise unless the command exited with status 0.

        Raises:
            RemoteCommandError: With ``error_id`` ``exit:N`` and the command's
                stderr as the remote message.
        """
        if self.exit_status == 0:
            return
        remote = self.stderr.decode("utf-8", "replace").strip()
        command = shlex.join(self.argv)
        message = f"{command} exited with status {self.exit_status}"
        if remote:
            message += f": {remote.splitlines()[-1]}"
        raise RemoteCommandError(
            message,
            error_id=f"exit:{self.exit_status}",
            remote_message=remote,
            target=target,
            operation=operation,
        )


_T = TypeVar("_T")


async def within(
    awaitable: Awaitable[_T],
    timeout: float,
    *,
    target: str,
    operation: str,
    message: str | None = None,
) -> _T:
    """Await ``awaitable`` for at most ``timeout`` seconds.

    Whatever it started is cancelled when time runs out, so its own cleanup
    runs before this returns.

    Args:
        awaitable: The call.
        timeout: Seconds allowed.
        target: The target URL, for the error.
        operation: The operation name, for the error.
        message: The error text; ``no answer within N s`` by default.

    Raises:
        OperationTimeoutError: ``timeout`` passed.
    """
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise OperationTimeoutError(
            message or f"no answer within {timeout:g} s",
            timeout=timeout,
            target=target,
            operation=operation,
        ) from None


class Transport(abc.ABC):
    """A live connection to one target.

    Use it as an async context manager or call :meth:`aclose`; closing twice
    is harmless. After closing, every call raises
    :class:`~hvintegration.errors.TransportClosedError`. A transport may
    connect lazily on its first call; :meth:`open` connects eagerly so that
    connection errors surface early.

    Implementations must make every call honour ``timeout`` and be
    cancellation-safe: a cancelled or timed-out call leaves no process,
    channel or pipeline behind, and the next call works.
    """

    @property
    @abc.abstractmethod
    def target(self) -> str:
        """The target as a URL with no secret in it, for messages and logs."""

    async def open(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Connect now instead of on first use. Safe to call more than once."""

    @abc.abstractmethod
    async def run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        """Run one fixed PowerShell operation with out-of-band parameters.

        Args:
            operation: The operation to run.
            parameters: Its parameters by name; only JSON values.
            timeout: Seconds before the call is abandoned and cleaned up.

        Returns:
            The output objects and non-terminating errors.

        Raises:
            RemoteCommandError: The script failed with a terminating error
                (mapped to a more specific error where one fits).
            OperationTimeoutError: ``timeout`` passed.
            TransportError: The connection failed, broke or was closed.
        """

    async def run_command(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float,
    ) -> CompletedCommand:
        """Run an argv list on a shell target.

        Args:
            argv: The program and its arguments; each travels as one word.
            input: Bytes for the command's stdin.
            timeout: Seconds before the command is abandoned and killed.

        Returns:
            The completed command, whatever its exit status.

        Raises:
            OperationTimeoutError: ``timeout`` passed.
            TransportError: The target has no shell, or the connection failed.
        """
        raise TransportError(
            "this target runs PowerShell operations only, not shell commands",
            target=self.target,
            operation="run_command",
        )

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the connection and everything it started. Idempotent."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target}>"
