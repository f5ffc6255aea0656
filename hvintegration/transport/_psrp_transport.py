"""The live side of ``psrp://``: one runspace pool, reused by every operation.

Settings and URL parsing are :class:`~hvintegration.transport.psrp.PSRPTarget`;
the connections that carry a pool over a child process or SSH are
:mod:`._outofproc`; what each failure becomes is :mod:`._psrp_errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from psrpcore.types import RunspacePoolState

from hvintegration.errors import (
    AnswerTooLargeError,
    HvIntegrationError,
    OperationTimeoutError,
    ProtocolError,
    TransportClosedError,
    TransportError,
)
from hvintegration.operations._psrp_output import PSRP_OUTPUT
from hvintegration.transport._clixml import error_from_ps, to_wire
from hvintegration.transport._outofproc import Session, close_wsman, psrp
from hvintegration.transport._powershell_wire import DEFAULT_MAX_OUTPUT
from hvintegration.transport._psrp_errors import PoolState, TargetNames, map_psrp_error
from hvintegration.transport.base import (
    MAX_DEPTH,
    JsonValue,
    OperationResult,
    PowerShellTransport,
    log_reconnect,
)

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = ["PSRPSettings", "PSRPTransport", "decode_output"]

_STOP_TIMEOUT = 5.0
_CLOSE_TIMEOUT = 5.0
_EXIT_GRACE = 2.0


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _nests_deeper(value: list[Any], limit: int) -> bool:
    """Whether parsed JSON nests more than ``limit`` lists and objects, the outer one included.

    Level by level, keeping only the containers: an answer of thousands of
    flat records costs one pass over their values, not a stack entry each.
    """
    level: list[Any] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for container in level:
            values = container.values() if type(container) is dict else container
            # json.loads makes exactly dict and list, never subclasses.
            below += [item for item in values if type(item) is dict or type(item) is list]
        level = below
    return False


def _protocol_error(text: str, target: str, operation: str) -> ProtocolError:
    return ProtocolError(f"the PSRP peer answered {text}", target=target, operation=operation)


def decode_output(
    output: list[Any], *, target: str, operation: str, max_output: int = DEFAULT_MAX_OUTPUT
) -> tuple[dict[str, Any], ...]:
    """The output objects of one operation, from the pipeline's PSRP output.

    The pipeline ends in :data:`~hvintegration.operations._psrp_output.PSRP_OUTPUT`,
    which writes exactly one string: a JSON array of plain objects. It is
    parsed here, once, with no other conversion.

    Args:
        output: What the pipeline wrote, as pypsrp deserialised it.
        target: The target URL, for errors.
        operation: The operation name, for errors.
        max_output: The most bytes (UTF-8) the JSON string may have, as
            ``local://`` and ``ssh://`` bound what one operation writes.

    Returns:
        The objects, in order.

    Raises:
        ProtocolError: Not exactly one string; longer than ``max_output``;
            not JSON; not an array of objects; or nested deeper than the
            library reads.

    Example:
        >>> decode_output(['[{"Name":"demovm","Enabled":true}]'], target="psrp://h", operation="x")
        ({'Name': 'demovm', 'Enabled': True},)
    """
    if len(output) != 1 or not isinstance(output[0], str):
        kinds = ", ".join(sorted({type(item).__name__ for item in output})) or "nothing"
        raise _protocol_error(
            f"with {len(output)} output objects ({kinds}), not the one JSON string "
            "the output command writes",
            target,
            operation,
        )
    text = output[0]
    # The output command escapes every character beyond ASCII, so the
    # length in characters is the length in bytes; only text from another
    # peer needs encoding to be measured.
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > max_output:
        raise AnswerTooLargeError(
            f"the answer is {size} bytes, more than the {max_output} one operation may "
            "return (the target's max_output setting); refused",
            max_output=max_output,
            target=target,
            operation=operation,
        )
    try:
        # Parsed as it came (psrpcore's str subclass): a str() copy would
        # cost another full copy of the answer at the peak of the call.
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise _protocol_error("with JSON nested too deeply to read", target, operation) from None
    except ValueError as exc:
        raise _protocol_error(f"with text that is not JSON: {exc}", target, operation) from None
    if not isinstance(data, list):
        raise _protocol_error(
            f"with a JSON {type(data).__name__}, not an array of objects", target, operation
        )
    # The same limit as every other transport: MAX_DEPTH levels inside a
    # record, which with the array and the record itself is two more.
    if _nests_deeper(data, MAX_DEPTH + 2):
        raise ProtocolError(
            f"the answer nests lists or objects deeper than {MAX_DEPTH} levels; refused",
            target=target,
            operation=operation,
        )
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise _protocol_error(
                f"with output object {index} a {type(item).__name__}, not an object",
                target,
                operation,
            )
    return tuple(data)


class PSRPSettings(TargetNames, Protocol):
    """The settings a :class:`PSRPTransport` runs on: a
    :class:`~hvintegration.transport.psrp.PSRPTarget`. (A protocol, so that
    the settings module may import the transport and not the reverse.)"""

    @property
    def max_pipelines(self) -> int:
        """How many operations run at once on the pool."""

    @property
    def connect_timeout(self) -> float:
        """Seconds to open the runspace pool."""

    @property
    def max_output(self) -> int:
        """Bytes of JSON one operation's answer may have."""

    def connection_info(self) -> psrp.ConnectionInfo:
        """The pypsrp connection settings for one runspace pool."""


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

    def __init__(self, settings: PSRPSettings) -> None:
        self.settings = settings
        # The settings are frozen; building the URL anew for every log line
        # and error of every call is CPU spent for nothing.
        self._target = settings.url
        self._max_output = settings.max_output
        self._session: Session | None = None
        # Every pool opened or opening and not yet closed to the end, so that
        # abort() can kill what a cancelled close or a failed open left.
        self._sessions: set[Session] = set()
        self._lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(settings.max_pipelines)
        self._cleanups: set[asyncio.Task[None]] = set()
        self.pools_opened = 0
        """How many runspace pools this transport has opened so far."""

    @property
    def target(self) -> str:
        """The target URL, with no secret in it."""
        return self._target

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
                log_reconnect(self.target, operation, "the runspace pool broke")
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
            exc.operation = exc.operation or operation
            raise
        pool = psrp.AsyncRunspacePool(info, max_runspaces=self.settings.max_pipelines)
        session = Session(pool, info)
        self._sessions.add(session)
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
            error = self._map_error(exc, session, operation) if isinstance(exc, Exception) else None
            if error is None:
                raise
            raise error from exc
        self.pools_opened += 1
        return session

    async def _discard(self, session: Session) -> None:
        """Close a pool, politely when it is healthy; then kill what is left.

        Safe to call more than once and from several tasks: they all wait for
        the one close.
        """
        if session.closing is None:
            session.closing = asyncio.ensure_future(self._close_session(session))
            session.closing.add_done_callback(lambda _: self._sessions.discard(session))
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
            # A local scope, not dot-sourced into the pooled runspace: no
            # variable or function of one operation is seen by the next.
            shell.add_script(operation.script, use_local_scope=True)
            for key in operation.parameters:
                if key in wire:
                    shell.add_parameter(key, wire[key])
            # Piped into the shipped output command, which answers with one
            # compact JSON string instead of one CLIXML object per record.
            shell.add_script(PSRP_OUTPUT, use_local_scope=True)
            pipeline: asyncio.Task[Any] | None = None
            # Starting a pipeline sends its CreatePipeline message; cut short,
            # it would leave the pool half told of a pipeline and pypsrp's
            # own task for it orphaned. So the start runs as a task of its
            # own that a cancelled caller does not interrupt (watch() never
            # cancels a task): the pipeline is stopped once it has started,
            # and the pool with the other calls on it carries on.
            starting: asyncio.Task[asyncio.Task[list[Any]]] = asyncio.ensure_future(
                shell.invoke_async()
            )
            # Known to the pool, so that discarding the pool ends it too.
            session.pipelines.add(starting)
            starting.add_done_callback(session.pipelines.discard)
            try:
                started = await session.watch(starting)
                pipeline = started
                session.pipelines.add(started)
                output = await session.watch(started)
            except asyncio.CancelledError:
                if pipeline is None:
                    self._abandon(session, shell, starting, starting=True)
                else:
                    self._abandon(session, shell, pipeline)
                raise
            except Exception as exc:
                # Kill a broken pool first: the error then reports how the
                # peer ended, and no child outlives the error.
                was_broken = session.broken
                if was_broken:
                    await self._retire(session)
                error = self._map_error(exc, session, name)
                if error is None:
                    raise
                if not was_broken and isinstance(error, TransportError):
                    session.failed = True
                    await self._retire(session)
                raise error from exc
            finally:
                if pipeline is not None and pipeline.done():
                    session.pipelines.discard(pipeline)
        return self._result(output, shell, name)

    def _result(self, output: list[Any], shell: Any, operation: str) -> OperationResult:
        objects = decode_output(
            output, target=self.target, operation=operation, max_output=self._max_output
        )
        errors = tuple(error_from_ps(record) for record in shell.streams.error)
        return OperationResult(objects, errors)

    def _abandon(
        self, session: Session, shell: Any, pending: asyncio.Task[Any], *, starting: bool = False
    ) -> None:
        """Stop a pipeline whose caller gave up, in the background.

        ``pending`` is the running pipeline, or (``starting``) the task still
        starting it.
        """
        task = asyncio.ensure_future(self._stop_pipeline(session, shell, pending, starting))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _started(self, session: Session, pending: asyncio.Task[Any]) -> Any:
        """The pipeline task once its start is done; ``None`` if it never started.

        Raises:
            asyncio.TimeoutError: The start did not finish in time.
        """
        try:
            result = await asyncio.wait_for(asyncio.shield(pending), _STOP_TIMEOUT)
        except asyncio.TimeoutError:
            raise
        except asyncio.CancelledError:
            if not pending.cancelled():
                raise
            return None
        except Exception:
            # The start failed: the peer refused the pipeline, or the pool
            # broke (which session.broken then tells).
            return None
        if isinstance(result, asyncio.Task):
            session.pipelines.add(result)
            return result
        return None

    async def _stop_pipeline(
        self, session: Session, shell: Any, pending: asyncio.Task[Any], starting: bool
    ) -> None:
        stopped = False
        pipeline: asyncio.Task[Any] | None = pending
        if starting:
            # Cancelled while the pipeline was starting: let the start
            # finish, then stop the pipeline like any other.
            try:
                pipeline = await self._started(session, pending)
            except asyncio.TimeoutError:
                pending.cancel()
                pipeline = None
            else:
                stopped = pipeline is None and not session.broken
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

    def _map_error(
        self, exc: Exception, session: Session, operation: str
    ) -> HvIntegrationError | None:
        """The error for a failure on ``session``; ``None`` for an unknown exception."""
        carrier = session.carrier
        pool = PoolState(
            closed=self._closed,
            ended=carrier.describe_end() if session.lost and carrier is not None else None,
            broken=session.pool.state == RunspacePoolState.Broken,
        )
        return map_psrp_error(exc, settings=self.settings, operation=operation, pool=pool)

    def _translate(self, exc: Exception, operation: str) -> HvIntegrationError:
        error = map_psrp_error(exc, settings=self.settings, operation=operation)
        return error if error is not None else super()._translate(exc, operation)

    async def _aclose(self) -> None:
        """Close the runspace pool and everything it started."""
        cleanups = list(self._cleanups)
        if cleanups:
            await asyncio.gather(*cleanups, return_exceptions=True)
        async with self._lock:
            session, self._session = self._session, None
        if session is not None:
            await self._discard(session)

    def _abort(self) -> None:
        """Kill every pool's child process or SSH connection at once."""
        if self._closed:
            self._session = None
            for task in list(self._cleanups):
                task.cancel()
        for session in list(self._sessions):
            session.abort()
        self._sessions.clear()
