"""The one narrow interface every transport implements, and enforces.

A transport carries two kinds of request to one target and nothing else:

* :meth:`PowerShellTransport.run_operation` runs one of the library's fixed
  PowerShell operations (:mod:`hvintegration.operations`) with its parameters
  passed out of band: as real PSRP parameters, or as JSON on the child's
  stdin. No parameter value is ever spliced into script text.
* :meth:`ShellTransport.run_command` runs an argv list on a POSIX shell
  target, such as a Linux guest.

The two kinds are two types, so a type checker catches a Linux guest pointed
at a PowerShell-only target; a transport that speaks both (``local://``,
``ssh://``) derives from both.

The public methods are template methods: the base class checks that the
transport is open, that the parameters and arguments are acceptable, applies
the deadline and maps every stray exception into
:mod:`hvintegration.errors`; a transport implements only the wire
(``_run_operation``, ``_run_command``, ``_open``, ``_aclose``, ``_abort``).
A subclass that overrides a public method is refused when it is defined::

    Transport
     ├── PowerShellTransport   run_operation -> _run_operation
     └── ShellTransport        run_command   -> _run_command

Resource code (``HyperVHost``, ``LinuxGuest``...) only ever talks to this
interface, so it never knows which transport it runs on.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import math
import shlex
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, Union

import attrs

from hvintegration._seconds import check_seconds
from hvintegration._table import printable
from hvintegration.errors import (
    HvIntegrationError,
    InvalidParameterError,
    OperationTimeoutError,
    RemoteCommandError,
    TransportClosedError,
    TransportError,
)
from hvintegration.operations import Operation

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "MAX_ARGUMENT_BYTES",
    "MAX_DEPTH",
    "CompletedCommand",
    "ErrorRecord",
    "JsonValue",
    "OperationResult",
    "PowerShellTarget",
    "PowerShellTransport",
    "ShellTarget",
    "ShellTransport",
    "Target",
    "Transport",
    "check_parameter_values",
    "log_reconnect",
    "log_retry",
    "within",
]

_log = logging.getLogger("hvintegration.transport")
"""The transports' logger. Every transport logs the same records through the
template methods: ``connected to URL`` (INFO) or the failure to (INFO), each
operation or command with its round trip number on the connection and its
duration (DEBUG), and the close (DEBUG). Only the target URL (which never
holds a password), operation and parameter *names*, and a command's program
are logged, never a parameter value, an argument or stdin, which may be
secret."""

MAX_ARGUMENT_BYTES = 128 * 1024
"""The largest argv a shell command may have, in UTF-8 bytes over all its
words. Linux caps one argument at 128 KiB (``MAX_ARG_STRLEN``), and sshd drops
the whole connection on a request it finds too large, so a larger one is
refused before it is sent."""

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
        message = f"{_short_command(self.argv)} exited with status {self.exit_status}"
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


class _Expired(Exception):
    """The deadline of :func:`_deadline` passed."""


async def _deadline(awaitable: Awaitable[_T], timeout: float) -> _T:
    """Await ``awaitable`` for at most ``timeout`` seconds, else raise :class:`_Expired`.

    Unlike ``asyncio.wait_for`` before Python 3.12, a cancellation of the
    caller that arrives as the call completes is never turned into a result,
    and a ``TimeoutError`` raised inside the call is not mistaken for the
    deadline.
    """
    if sys.version_info >= (3, 11):
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                return await awaitable
        except TimeoutError as exc:
            # A call that met the deadline and says what became of its work
            # (killed, or possibly still running) keeps its own error.
            if scope.expired() and not isinstance(exc, OperationTimeoutError):
                raise _Expired from None
            raise
    task = asyncio.ensure_future(awaitable)  # pragma: no cover - Python 3.10
    try:  # pragma: no cover - Python 3.10
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException:  # pragma: no cover - Python 3.10
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    if not done:  # pragma: no cover - Python 3.10
        task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
        if isinstance(outcome, OperationTimeoutError):
            raise outcome
        raise _Expired
    return task.result()  # pragma: no cover - Python 3.10


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
    runs before this returns. A timeout the call reports itself (its own
    :class:`~hvintegration.errors.OperationTimeoutError`, saying what became
    of its work) passes through unchanged; a caller's cancellation is never
    lost.

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
        return await _deadline(awaitable, timeout)
    except _Expired:
        raise OperationTimeoutError(
            message or f"no answer within {timeout:g} s",
            timeout=timeout,
            target=target,
            operation=operation,
        ) from None


def _change_unknown(check: str) -> str:
    # What a timed-out change says: read back first (the operation's own
    # check), then try again.
    return f"the change may have been made: read the state again ({check}) before trying again"


MAX_DEPTH = 64
"""How deeply lists and objects may nest, in parameters and in answers.
Nothing the library sends or reads comes close; a deeper value is refused
before it can exhaust a recursive encoder or decoder."""

_MIN_INTEGER = -(2**63)
_MAX_INTEGER = 2**64 - 1

# A request line wraps the parameters two levels deep (the request object and
# its "parameters"), and PowerShell 7's reader, System.Text.Json's
# JsonDocument, refuses input nested deeper than JsonDocumentOptions.MaxDepth
# (64 by default): parameters may nest two levels less.
_MAX_PARAMETER_DEPTH = MAX_DEPTH - 2


def _refuse(message: str, path: str, target: str, operation: str) -> InvalidParameterError:
    return InvalidParameterError(
        f"parameter {path} {message}; nothing was sent", target=target, operation=operation
    )


def check_parameter_values(
    parameters: Mapping[str, JsonValue], *, target: str, operation: str
) -> None:
    """Refuse parameter values that no PowerShell transport can carry whole.

    Every PowerShell transport calls this before anything is sent, so the
    same value is refused the same way everywhere. Walks the values without
    recursion. A NUL character is not refused: JSON (``\\u0000``) and CLIXML
    (``_x0000_``) both carry it, and it arrives unchanged.

    Args:
        parameters: The operation's parameters by name.
        target: The target URL, for the error.
        operation: The operation name, for the error.

    Raises:
        InvalidParameterError: A name or key that is not a string; a string
            with a lone surrogate (no UTF-8 form, so neither CLIXML nor the
            UTF-8 of an SSH channel can carry it); a float that is NaN or
            infinite; a whole number outside PowerShell's
            ``[long]``/``[ulong]`` range; lists or objects nested deeper
            than :data:`MAX_DEPTH`; or a value of another type
            (bytes, sets, objects).

    Example:
        >>> try:
        ...     check_parameter_values({"VM": {"Id": float("nan")}}, target="sim://", operation="x")
        ... except ValueError as exc:
        ...     print(exc.message)
        parameter VM.Id is nan, which JSON cannot carry; nothing was sent
    """
    stack: list[tuple[str, object, int]] = []
    named: Mapping[Any, object] = parameters
    for name, value in named.items():
        if not isinstance(name, str):
            raise _refuse("name is not a string", repr(name), target, operation)
        stack.append((name, value, 0))
    while stack:
        path, value, depth = stack.pop()
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _refuse(
                    "holds a lone surrogate, which has no UTF-8 form", path, target, operation
                ) from None
        elif isinstance(value, int):
            if not _MIN_INTEGER <= value <= _MAX_INTEGER:
                raise _refuse(
                    "is a whole number outside PowerShell's [long] and [ulong] range",
                    path,
                    target,
                    operation,
                )
        elif isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise _refuse(f"is {value!r}, which JSON cannot carry", path, target, operation)
        elif isinstance(value, (Mapping, list, tuple)):
            if depth >= _MAX_PARAMETER_DEPTH:
                raise _refuse(
                    f"nests lists or objects deeper than {_MAX_PARAMETER_DEPTH} levels",
                    path,
                    target,
                    operation,
                )
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise _refuse(
                            f"has a key that is not a string ({key!r})", path, target, operation
                        )
                    stack.append((f"{path}.{key}", item, depth + 1))
            else:
                stack.extend(
                    (f"{path}[{index}]", item, depth + 1) for index, item in enumerate(value)
                )
        else:
            raise _refuse(f"is a {type(value).__name__}, not a JSON value", path, target, operation)


def _short_command(argv: Sequence[str], limit: int = 120) -> str:
    """``argv`` as a shell would show it, shortened for a one-line message."""
    words = [word if len(word) <= 40 else word[:37] + "..." for word in argv]
    text = shlex.join(words)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _describe(exc: BaseException) -> str:
    # The library's errors hold no secret by design; anything else is named
    # by its class only, since a backend's message may quote what was sent.
    # A message quotes remote names and texts: their control characters are
    # escaped, and the record stays one line.
    if isinstance(exc, HvIntegrationError):
        return f"{type(exc).__name__}: {printable(exc.message)}"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return type(exc).__name__


def _outcome(result: object) -> str:
    if isinstance(result, OperationResult):
        return f", {len(result.output)} objects, {len(result.errors)} errors"
    if isinstance(result, CompletedCommand):
        return f", exit status {result.exit_status}"
    return ""


def log_retry(target: str, operation: str, reason: str, *, attempt: int) -> None:
    """Log, at DEBUG, that a transport sends a request again.

    For the transports' own retry loops (a kept process found dead, a
    refused SSH channel), so that every retry is logged the same way.

    Args:
        target: The target URL (never with a password).
        operation: The operation or ``run_command``.
        reason: Why, in a few words; never a parameter value.
        attempt: The number of the attempt about to start (2 for the first retry).
    """
    _log.debug("%s on %s: retrying (attempt %d): %s", operation, target, attempt, reason)


def log_reconnect(target: str, operation: str, reason: str) -> None:
    """Log, at INFO, that a transport connects again for a call.

    For transports that replace a broken connection on the next call (an
    SSH connection, a PSRP runspace pool), so that a reconnect shows like
    the first connect.

    Args:
        target: The target URL (never with a password).
        operation: The call that needs the new connection.
        reason: Why, in a few words.
    """
    _log.info("reconnecting to %s for %s: %s", target, operation, reason)


class _Call:
    """One request in flight on a transport."""

    __slots__ = ("ended_by_close", "finished")

    def __init__(self) -> None:
        self.ended_by_close = False
        self.finished = asyncio.Event()


class Transport(abc.ABC):
    """A live connection to one target.

    Use it as an async context manager or call :meth:`aclose`; closing twice
    is harmless, and so is cancelling a close: whatever the graceful close
    had not finished is then released at once (:meth:`_abort`). After
    closing, every call raises
    :class:`~hvintegration.errors.TransportClosedError`. A transport may
    connect lazily on its first call; :meth:`open` connects eagerly so that
    connection errors surface early.

    Subclasses implement the wire only: :meth:`_open` (optional),
    :meth:`_aclose` and :meth:`_abort`, and the request methods of their
    kind. They must be cancellation-safe: a cancelled or timed-out call
    leaves no process, channel or pipeline behind, and the next call works.

    Attributes:
        close_timeout: Seconds the graceful close may take before the
            transport is released forcefully.
    """

    close_timeout: ClassVar[float] = 10.0
    _TEMPLATE_METHODS: ClassVar[frozenset[str]] = frozenset(
        {"open", "aclose", "run_operation", "run_command", "closed", "__aenter__", "__aexit__"}
    )

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__:
            return
        # Look where each public name resolves through the MRO, so that a
        # mixin defining run_command is refused as surely as an override.
        overridden = sorted(
            name
            for name in cls._TEMPLATE_METHODS
            for owner in [next((k for k in cls.__mro__ if name in vars(k)), None)]
            if owner is not None and owner.__module__ != __name__
        )
        if overridden:
            raise TypeError(
                f"{cls.__qualname__} overrides {', '.join(overridden)}; a transport "
                "implements the underscored hooks (_run_operation, _run_command, _open, "
                "_aclose, _abort) and the base class keeps the contract"
            )

    # Per-instance state, created on first use: transports need not call
    # an __init__ of the base.
    _closed: bool = False
    _closing: asyncio.Future[None] | None = None
    _round_trips: int = 0
    _calls: dict[asyncio.Task[object], _Call] | None = None

    @property
    @abc.abstractmethod
    def target(self) -> str:
        """The target as a URL with no secret in it, for messages and logs."""

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    # -- the contract ---------------------------------------------------

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise TransportClosedError(
                "the transport is closed", target=self.target, operation=operation
            )

    def _check_timeout(self, timeout: float, operation: str) -> None:
        check_seconds(timeout, "timeout", target=self.target, operation=operation)

    async def _guarded(
        self, call: Awaitable[_T], *, timeout: float, operation: str, check: str | None = None
    ) -> _T:
        """Await one request under its deadline, mapping every failure.

        A call still in flight when the transport is closed ends with
        :class:`~hvintegration.errors.TransportClosedError`, whatever the
        wire would have done. A call that may change the target (``check``
        names how to read back what it changes) and runs out of time says
        that its change may have been made, and how to check.
        """
        task = asyncio.current_task()
        calls = self._calls
        if calls is None:
            calls = self._calls = {}
        record = _Call()
        if task is not None:
            calls[task] = record
        try:
            message = (
                f"no answer within {timeout:g} s; {_change_unknown(check)}"
                if check is not None
                else None
            )
            return await within(
                call, timeout, target=self.target, operation=operation, message=message
            )
        except asyncio.CancelledError:
            if task is None or not record.ended_by_close:
                raise
            # Cancelled by aclose(), not by the caller: unless the caller
            # cancelled too, report the close.
            if sys.version_info >= (3, 11) and task.uncancel() > 0:
                raise
            raise TransportClosedError(
                "the transport was closed while the call ran",
                target=self.target,
                operation=operation,
            ) from None
        except HvIntegrationError as exc:
            if exc.target is None:
                exc.target = self.target
            if exc.operation is None:
                exc.operation = operation
            raise
        except TimeoutError as exc:
            # A deadline of the wire's own, not the call's.
            raise OperationTimeoutError(
                f"the connection timed out: {exc}" if str(exc) else "the connection timed out",
                timeout=timeout,
                target=self.target,
                operation=operation,
            ) from exc
        except Exception as exc:
            raise self._translate(exc, operation) from exc
        finally:
            if task is not None and calls.get(task) is record:
                del calls[task]
            record.finished.set()

    async def _logged(
        self,
        call: Awaitable[_T],
        *,
        timeout: float,
        operation: str,
        what: str,
        check: str | None = None,
    ) -> _T:
        """:meth:`_guarded`, with the call's round trip and outcome logged."""
        self._round_trips += 1
        number = self._round_trips
        _log.debug("%s on %s: round trip %d, %s", operation, self.target, number, what)
        start = time.perf_counter()
        try:
            result = await self._guarded(call, timeout=timeout, operation=operation, check=check)
        except BaseException as exc:
            _log.debug(
                "%s on %s: round trip %d failed after %.1f ms: %s",
                operation,
                self.target,
                number,
                _ms(start),
                _describe(exc),
            )
            raise
        _log.debug(
            "%s on %s: round trip %d done in %.1f ms%s",
            operation,
            self.target,
            number,
            _ms(start),
            _outcome(result),
        )
        return result

    def _translate(self, exc: Exception, operation: str) -> HvIntegrationError:
        """Map an exception the wire let through into the library's hierarchy.

        Transports override this to map their backend's exceptions; the
        default calls any of them a transport failure.

        Args:
            exc: What the wire raised.
            operation: The operation that was running.

        Returns:
            The error to raise instead (the caller chains ``exc`` as its cause).
        """
        detail = str(exc) or type(exc).__name__
        return TransportError(
            f"unexpected failure ({type(exc).__name__}): {detail}",
            target=self.target,
            operation=operation,
        )

    async def open(self) -> None:
        """Connect now instead of on first use. Safe to call more than once.

        Raises:
            TransportClosedError: The transport is closed.
            TransportError: The connection could not be made (a subclass
                says why); whatever was opened on the way is released.
        """
        self._check_open("open")
        start = time.perf_counter()
        try:
            await self._open()
        except BaseException as exc:
            # A half-made connection (a child started, a socket open) must
            # not outlive the failed attempt.
            self._abort()
            _log.info(
                "connecting to %s failed after %.1f ms: %s",
                self.target,
                _ms(start),
                _describe(exc),
            )
            if isinstance(exc, HvIntegrationError):
                if exc.target is None:
                    exc.target = self.target
                if exc.operation is None:
                    exc.operation = "open"
                raise
            if not isinstance(exc, Exception):
                raise
            raise self._translate(exc, "open") from exc
        _log.info("connected to %s in %.1f ms", self.target, _ms(start))

    async def aclose(self) -> None:
        """Release the connection and everything it started.

        Idempotent: a second call waits for the first to finish. Safe under
        cancellation: if the graceful close is cancelled, fails or takes
        longer than :attr:`close_timeout`, the rest is released at once and
        a cancellation is then re-raised. Calls still in flight end with
        :class:`~hvintegration.errors.TransportClosedError`.
        """
        closing = self._closing
        if closing is not None:
            # Only this waiter is cancelled if it is; the first close goes on.
            await asyncio.shield(closing)
            return
        self._closed = True
        closing = self._closing = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        try:
            await _deadline(self._aclose(), self.close_timeout)
            await self._end_calls()
        except asyncio.CancelledError:
            _log.debug("close of %s cancelled; releasing at once", self.target)
            self._abort()
            self._end_calls_now()
            raise
        except Exception as exc:
            _log.debug(
                "graceful close of %s failed: %s; releasing at once", self.target, _describe(exc)
            )
            self._abort()
            self._end_calls_now()
        finally:
            closing.set_result(None)
        _log.debug(
            "closed %s in %.1f ms after %d round trips",
            self.target,
            _ms(start),
            self._round_trips,
        )

    def _end_calls_now(self) -> list[_Call]:
        """Cancel every call still in flight, except the caller's own."""
        current = asyncio.current_task()
        ended = []
        for task, record in list((self._calls or {}).items()):
            if task is current or task.done() or record.finished.is_set():
                continue
            if not record.ended_by_close:
                record.ended_by_close = True
                task.cancel()
            ended.append(record)
        return ended

    async def _end_calls(self) -> None:
        # Wait until each call has left the transport, not for the caller's
        # whole task, which goes on with its own work.
        ended = self._end_calls_now()
        if ended:
            with contextlib.suppress(_Expired):
                await _deadline(
                    asyncio.gather(*(record.finished.wait() for record in ended)),
                    self.close_timeout,
                )

    # -- the wire -------------------------------------------------------

    async def _open(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Connect eagerly; transports that connect lazily may leave this empty."""

    @abc.abstractmethod
    async def _aclose(self) -> None:
        """Release everything gracefully. Called once, by :meth:`aclose`."""

    def _abort(self) -> None:  # noqa: B027 - transports that hold nothing need no abort
        """Release everything at once, without awaiting: kill children, drop sockets.

        Called when a graceful close is cancelled or fails, and when
        :meth:`open` fails. It must not raise.
        """

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


class PowerShellTransport(Transport):
    """A transport that runs the library's fixed PowerShell operations.

    Implement :meth:`_run_operation`; the base checks the call first.
    """

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
            InvalidParameterError: A parameter name the operation does not
                declare, or a bad timeout; nothing was sent.
            RemoteCommandError: The script failed with a terminating error
                (mapped to a more specific error where one fits).
            OperationTimeoutError: ``timeout`` passed.
            TransportClosedError: The transport is closed.
            TransportError: The connection failed or broke.
        """
        if not isinstance(operation, Operation):
            raise InvalidParameterError(
                f"an operation is one of hvintegration.operations, not {type(operation).__name__}",
                target=self.target,
                operation="run_operation",
            )
        name = operation.name
        self._check_open(name)
        self._check_timeout(timeout, name)
        if not isinstance(parameters, Mapping) or not all(
            isinstance(key, str) for key in parameters
        ):
            raise InvalidParameterError(
                "parameters are a mapping of names (strings) to values",
                target=self.target,
                operation=name,
            )
        try:
            operation.check_parameters(parameters)
        except ValueError as exc:
            raise InvalidParameterError(str(exc), target=self.target, operation=name) from None
        check_parameter_values(parameters, target=self.target, operation=name)
        # Parameter names only: a value may be a password (invoke_in_vm's
        # credential) or a KVP value the caller keeps private.
        names = ", ".join(sorted(parameters)) or "none"
        return await self._logged(
            self._run_operation(operation, parameters, timeout=timeout),
            timeout=timeout,
            operation=name,
            what=f"parameters: {names}",
            check=operation.change_check(parameters),
        )

    @abc.abstractmethod
    async def _run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        """Send one checked operation over the wire.

        ``timeout`` is already enforced around this call; a transport uses it
        only for deadlines of its own (a remote kill, a reconnect).
        """


class ShellTransport(Transport):
    """A transport that runs argv lists on a POSIX shell target.

    Implement :meth:`_run_command`; the base checks the argv first.
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
            InvalidParameterError: An empty argv, a word that is not a
                string or holds a NUL, or an argv over
                :data:`MAX_ARGUMENT_BYTES`; nothing was sent.
            OperationTimeoutError: ``timeout`` passed.
            TransportClosedError: The transport is closed.
            TransportError: The target has no shell, or the connection failed.
        """
        operation = "run_command"
        self._check_open(operation)
        self._check_timeout(timeout, operation)
        command = self._check_argv(argv)
        if input is not None and not isinstance(input, (bytes, bytearray)):
            raise InvalidParameterError(
                "a command's input must be bytes", target=self.target, operation=operation
            )
        # The program only: an argument or stdin may carry a secret.
        what = f"program {command[0].rsplit('/', 1)[-1]!r} with {len(command) - 1} arguments"
        if input is not None:
            what += f" and {len(input)} bytes of input"
        return await self._logged(
            self._run_command(
                command, input=None if input is None else bytes(input), timeout=timeout
            ),
            timeout=timeout,
            operation=operation,
            what=what,
        )

    def _check_argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        where = {"target": self.target, "operation": "run_command"}
        if isinstance(argv, (str, bytes)):
            raise InvalidParameterError("argv must be a list of words, not one string", **where)
        command = tuple(argv)
        if not command:
            raise InvalidParameterError("an empty command", **where)
        size = 0
        for word in command:
            if not isinstance(word, str):
                raise InvalidParameterError(
                    f"every word of a command must be a string, not {type(word).__name__}", **where
                )
            if "\0" in word:
                raise InvalidParameterError("a command word holds a NUL character", **where)
            try:
                size += len(word.encode("utf-8")) + 1
            except UnicodeEncodeError:
                raise InvalidParameterError(
                    "a command word holds a lone surrogate, which has no UTF-8 form", **where
                ) from None
        if size > MAX_ARGUMENT_BYTES:
            raise InvalidParameterError(
                f"the command is {size} bytes long; at most {MAX_ARGUMENT_BYTES} are sent", **where
            )
        return command

    @abc.abstractmethod
    async def _run_command(
        self,
        argv: tuple[str, ...],
        *,
        input: bytes | None,
        timeout: float,
    ) -> CompletedCommand:
        """Run one checked argv over the wire.

        ``timeout`` is already enforced around this call; a transport uses it
        for its own cleanup deadlines (killing the remote command).
        """


class Target(Protocol):
    """Settings for one target; separate from the live connection."""

    @property
    def url(self) -> str:
        """The target as a URL with no secret in it."""

    def open(self) -> Transport:
        """A transport to this target, not yet connected."""


class PowerShellTarget(Protocol):
    """Settings for a target that runs PowerShell operations (a host, a Windows guest)."""

    @property
    def url(self) -> str:
        """The target as a URL with no secret in it."""

    def open(self) -> PowerShellTransport:
        """A transport to this target, not yet connected."""


class ShellTarget(Protocol):
    """Settings for a target with a POSIX shell (a Linux guest)."""

    @property
    def url(self) -> str:
        """The target as a URL with no secret in it."""

    def open(self) -> ShellTransport:
        """A transport to this target, not yet connected."""
