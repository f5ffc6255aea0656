"""A transport that answers with your own function, for tests of code built on hvintegration.

Like ``httpx.MockTransport``: give :class:`MockTransport` a handler; every
call becomes a request record (:class:`OperationRequest` for a PowerShell
operation, :class:`CommandRequest` for a shell command) passed to it, and
what the handler returns is the answer. The transport is both kinds, so it
serves a :class:`~hvintegration.HyperVHost`, a
:class:`~hvintegration.windows.WindowsGuest` and a
:class:`~hvintegration.LinuxGuest` alike, and it keeps the base class's
contract (closed check, parameter and argv checks, deadline, error mapping).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Union

import attrs

from hvintegration.transport.base import (
    CompletedCommand,
    JsonValue,
    OperationResult,
    PowerShellTransport,
    ShellTransport,
)

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = ["CommandRequest", "Handler", "MockTransport", "OperationRequest", "Request"]


@attrs.frozen
class OperationRequest:
    """One PowerShell operation, as a :class:`MockTransport` handler sees it.

    Attributes:
        operation: The operation; ``operation.name`` is e.g. ``list_vms``.
        parameters: Its parameters by name, already checked against the
            names the operation declares.
        timeout: Seconds the caller allows.
    """

    operation: Operation
    parameters: Mapping[str, JsonValue]
    timeout: float

    def __repr__(self) -> str:
        # Parameter names only: a value may be a password (invoke_in_vm).
        names = ",".join(sorted(self.parameters)) or "-"
        return (
            f"<OperationRequest {self.operation.name} parameters={names} timeout={self.timeout:g}>"
        )


@attrs.frozen
class CommandRequest:
    """One shell command, as a :class:`MockTransport` handler sees it.

    Attributes:
        argv: The command; each item one word.
        input: Bytes for its stdin, or ``None``.
        timeout: Seconds the caller allows.
    """

    argv: tuple[str, ...]
    input: bytes | None
    timeout: float

    def __repr__(self) -> str:
        # The program only: an argument or the input may carry a secret.
        size = "-" if self.input is None else f"{len(self.input)} bytes"
        return (
            f"<CommandRequest {self.argv[0] if self.argv else '-'} "
            f"args={max(len(self.argv) - 1, 0)} input={size} timeout={self.timeout:g}>"
        )


Request = Union[OperationRequest, CommandRequest]
"""What a handler receives."""

Answer = Union[OperationResult, CompletedCommand]

Handler = Callable[[Request], Union[Answer, Awaitable[Answer]]]
"""A function (or coroutine function) from a request to its answer: an
:class:`~hvintegration.transport.OperationResult` for an operation, a
:class:`~hvintegration.transport.CompletedCommand` for a command. It may
raise: errors of :mod:`hvintegration.errors` reach the caller as they are
(with the target and operation filled in), any other exception as a
:class:`~hvintegration.errors.TransportError`."""


class MockTransport(PowerShellTransport, ShellTransport):
    """A transport whose every answer comes from ``handler``.

    Args:
        handler: Called once per round trip with the request; see
            :data:`Handler`.
        target: The URL it reports in messages.

    Attributes:
        requests: Every request handled so far, in order: count them to
            check how many round trips your code makes.

    Raises:
        TransportError: (from a call) The handler raised an exception that is
            not an :class:`~hvintegration.errors.HvIntegrationError`, or
            returned the wrong kind of answer.

    Example:
        >>> import asyncio
        >>> from hvintegration import HyperVHost
        >>> from hvintegration.testing import MockTransport
        >>> from hvintegration.transport import OperationResult
        >>> def handler(request):
        ...     assert request.operation.name == "list_vms"
        ...     vm = {"Name": "web01", "Id": "9b1f3c1e-0000-4000-8000-000000000001",
        ...           "State": "Running", "Generation": 2,
        ...           "IntegrationServicesVersion": "10.0.20348", "ComputerName": "HV01"}
        ...     return OperationResult((vm,))
        >>> mock = MockTransport(handler)
        >>> async def main():
        ...     async with HyperVHost.connect(mock) as host:
        ...         return [vm.name for vm in await host.list_vms()]
        >>> asyncio.run(main())
        ['web01']
        >>> len(mock.requests)
        1

        The same transport kind serves shell commands:

        >>> from hvintegration.transport import CompletedCommand
        >>> def shell(request):
        ...     return CompletedCommand(request.argv, 0, b"Linux", b"")
        >>> async def uname():
        ...     async with MockTransport(shell) as transport:
        ...         return (await transport.run_command(["uname"], timeout=5)).stdout
        >>> asyncio.run(uname())
        b'Linux'
    """

    def __init__(self, handler: Handler, *, target: str = "mock://") -> None:
        self.handler = handler
        self._target = target
        self.requests: list[Request] = []

    @property
    def target(self) -> str:
        """The URL given at construction (``mock://`` by default)."""
        return self._target

    async def _answer(self, request: Request) -> object:
        self.requests.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            return await answer
        return answer

    async def _run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        answer = await self._answer(OperationRequest(operation, dict(parameters), timeout))
        if not isinstance(answer, OperationResult):
            raise TypeError(
                f"the handler answered {operation.name} with {type(answer).__name__}, "
                "not an OperationResult"
            )
        return answer

    async def _run_command(
        self,
        argv: tuple[str, ...],
        *,
        input: bytes | None,
        timeout: float,
    ) -> CompletedCommand:
        answer = await self._answer(CommandRequest(argv, input, timeout))
        if not isinstance(answer, CompletedCommand):
            raise TypeError(
                f"the handler answered {argv[0]} with {type(answer).__name__}, "
                "not a CompletedCommand"
            )
        return answer

    async def _aclose(self) -> None:
        """Nothing to release."""
