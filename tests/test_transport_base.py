"""The base class keeps the contract that every transport relies on.

These run over the in-process transports (``MockTransport``, ``sim://``,
``sim-linux://``), where nothing but the base class stands between the caller
and the wire; the real transports' own share is in
``test_transport_contract.py``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping

import attrs
import pytest

from hvintegration import HyperVHost, LinuxGuest
from hvintegration.errors import (
    AuthenticationError,
    InvalidParameterError,
    InvalidTargetError,
    OperationTimeoutError,
    RemoteCommandError,
    TransportClosedError,
)
from hvintegration.operations import LIST_VMS
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.testing import MockTransport
from hvintegration.testing.mock import Request
from hvintegration.transport import (
    CompletedCommand,
    JsonValue,
    OperationResult,
    PowerShellTransport,
    ShellTransport,
    Transport,
)

EMPTY = OperationResult(())


def _list_vms(transport: PowerShellTransport) -> Awaitable[OperationResult]:
    return transport.run_operation(LIST_VMS, {"VM": None}, timeout=5)


async def _outcome(call: Callable[[], Awaitable[object]], turns: int) -> str:
    task = asyncio.ensure_future(call())
    for _ in range(turns):
        await asyncio.sleep(0)
    accepted = task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "result after an accepted cancel" if accepted else "done first"


@pytest.mark.parametrize("turns", range(6))
async def test_a_callers_cancellation_is_never_turned_into_a_result(turns: int) -> None:
    # asyncio.wait_for before Python 3.12 returned the result when the call
    # finished as the cancellation arrived, and the caller ran on.
    mock = MockTransport(lambda request: EMPTY)
    sim = SimulatedHost().open()
    for transport in (mock, sim):
        outcome = await _outcome(lambda t=transport: _list_vms(t), turns)  # type: ignore[misc]
        assert outcome in ("cancelled", "done first")


async def test_a_timeout_the_wire_reports_itself_is_kept() -> None:
    async def own_deadline(request: Request) -> OperationResult:
        raise OperationTimeoutError("no SSH connection within 0.5 s", timeout=0.5)

    with pytest.raises(OperationTimeoutError, match=r"within 0\.5 s") as caught:
        await MockTransport(own_deadline).run_operation(LIST_VMS, {"VM": None}, timeout=30)
    assert caught.value.timeout == 0.5
    assert caught.value.target == "mock://"

    async def inner_wait_for(request: Request) -> OperationResult:
        await asyncio.wait_for(asyncio.sleep(10), 0.01)
        return EMPTY

    with pytest.raises(OperationTimeoutError, match="timed out") as caught:
        await MockTransport(inner_wait_for).run_operation(LIST_VMS, {"VM": None}, timeout=30)
    assert caught.value.operation == "list_vms"
    assert "within 30 s" not in str(caught.value)


async def test_the_calls_own_deadline_still_reads_as_such() -> None:
    async def hang(request: Request) -> OperationResult:
        await asyncio.Event().wait()
        raise AssertionError

    with pytest.raises(OperationTimeoutError, match=r"no answer within 0\.05 s"):
        await MockTransport(hang).run_operation(LIST_VMS, {"VM": None}, timeout=0.05)


class _SlowClose(ShellTransport):
    """Its graceful close takes a while, and records what happened to it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.release = asyncio.Event()

    @property
    def target(self) -> str:
        return "test://slow-close"

    async def _run_command(
        self, argv: tuple[str, ...], *, input: bytes | None, timeout: float
    ) -> CompletedCommand:
        await asyncio.Event().wait()
        raise AssertionError

    async def _aclose(self) -> None:
        self.events.append("closing")
        await self.release.wait()
        self.events.append("closed")

    def _abort(self) -> None:
        self.events.append("aborted")


async def test_a_second_aclose_waits_for_the_first() -> None:
    transport = _SlowClose()
    first = asyncio.ensure_future(transport.aclose())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(transport.aclose())
    await asyncio.sleep(0.01)
    assert not second.done()
    transport.release.set()
    await asyncio.gather(first, second)
    assert transport.events == ["closing", "closed"]


async def test_cancelling_the_first_aclose_aborts_and_frees_the_second_waiter() -> None:
    transport = _SlowClose()
    first = asyncio.ensure_future(transport.aclose())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(transport.aclose())
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # returns, is not cancelled itself
    assert transport.events == ["closing", "aborted"]


async def test_cancelling_a_waiting_second_aclose_leaves_the_first_going() -> None:
    transport = _SlowClose()
    first = asyncio.ensure_future(transport.aclose())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(transport.aclose())
    await asyncio.sleep(0)
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    transport.release.set()
    await first
    assert transport.events == ["closing", "closed"]


def _hung_mock() -> MockTransport:
    async def hang(request: Request) -> OperationResult:
        await asyncio.Event().wait()
        raise AssertionError

    return MockTransport(hang)


async def _closing_under_a_call(
    transport: Transport, call: Callable[[], Awaitable[object]]
) -> BaseException | object:
    task = asyncio.ensure_future(call())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(transport.aclose(), 5)
    try:
        return await asyncio.wait_for(task, 5)
    except Exception as exc:
        return exc


async def test_calls_in_flight_end_as_closed_on_in_process_transports() -> None:
    mock = _hung_mock()
    outcome = await _closing_under_a_call(mock, lambda: _list_vms(mock))
    assert isinstance(outcome, TransportClosedError)
    assert outcome.operation == "list_vms"

    host = SimulatedHost(latency=0.5)
    sim = host.open()
    outcome = await _closing_under_a_call(sim, lambda: _list_vms(sim))
    assert isinstance(outcome, TransportClosedError)

    guest = SimulatedLinuxGuest(latency=0.5)
    shell = guest.open()
    outcome = await _closing_under_a_call(
        shell, lambda: shell.run_command(["uname", "-r"], timeout=5)
    )
    assert isinstance(outcome, TransportClosedError)


async def test_a_close_does_not_wait_for_the_callers_other_work() -> None:
    mock = _hung_mock()
    after = asyncio.Event()

    async def caller() -> None:
        with pytest.raises(TransportClosedError):
            await _list_vms(mock)
        await after.wait()  # the caller's own work, after the call

    task = asyncio.ensure_future(caller())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(mock.aclose(), 2)
    assert not task.done()
    after.set()
    await task


async def test_a_caller_cancelled_as_the_transport_closes_stays_cancelled() -> None:
    mock = _hung_mock()
    task = asyncio.ensure_future(_list_vms(mock))
    await asyncio.sleep(0.01)
    task.cancel()
    await mock.aclose()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    "parameters",
    [["VM"], "VM", None, 5, [("VM", None)], {1: None}],
    ids=["list", "str", "none", "int", "pairs", "int-key"],
)
async def test_parameters_that_are_not_a_mapping_of_names_are_refused(
    parameters: object,
) -> None:
    mock = MockTransport(lambda request: EMPTY)
    with pytest.raises(InvalidParameterError, match="mapping of names") as caught:
        await mock.run_operation(LIST_VMS, parameters, timeout=5)  # type: ignore[arg-type]
    assert caught.value.operation == "list_vms"
    assert mock.requests == []


async def test_an_operation_not_of_the_library_is_refused() -> None:
    mock = MockTransport(lambda request: EMPTY)

    @attrs.frozen
    class Lookalike:
        name: str = "list_vms"
        script: str = "Get-VM"
        parameters: tuple[str, ...] = ("VM",)

    with pytest.raises(InvalidParameterError, match=r"hvintegration\.operations"):
        await mock.run_operation(Lookalike(), {"VM": None}, timeout=5)  # type: ignore[arg-type]
    assert mock.requests == []


@pytest.mark.parametrize(
    "timeout",
    [10**400, math.inf, -math.inf, 1e400, "5", None, True, 0, -1, math.nan],
    ids=str,
)
async def test_every_call_has_a_finite_positive_timeout(timeout: object) -> None:
    mock = MockTransport(lambda request: EMPTY)
    with pytest.raises(InvalidParameterError, match="finite"):
        await mock.run_operation(LIST_VMS, {"VM": None}, timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="finite"):
        await mock.run_command(["true"], timeout=timeout)  # type: ignore[arg-type]
    assert mock.requests == []


def test_a_mixin_cannot_bring_its_own_public_method() -> None:
    class Mixin:
        async def run_command(self, *args: object, **kwargs: object) -> None:
            return None

    with pytest.raises(TypeError, match="overrides run_command"):

        class Sneaky(Mixin, ShellTransport):  # type: ignore[misc]
            @property
            def target(self) -> str:
                return "test://"

            async def _run_command(
                self, argv: tuple[str, ...], *, input: bytes | None, timeout: float
            ) -> CompletedCommand:
                raise AssertionError

            async def _aclose(self) -> None:
                pass


def test_a_subclass_of_a_transport_keeps_the_contract_too() -> None:
    class Mixin:
        async def aclose(self) -> None:
            return None

    with pytest.raises(TypeError, match="overrides aclose"):

        class Sneaky(Mixin, MockTransport):  # type: ignore[misc]
            pass


class _FailingOpen(ShellTransport):
    @property
    def target(self) -> str:
        return "test://failing-open"

    async def _open(self) -> None:
        raise AuthenticationError("the server refused the key")

    async def _run_command(
        self, argv: tuple[str, ...], *, input: bytes | None, timeout: float
    ) -> CompletedCommand:
        raise AssertionError

    async def _aclose(self) -> None:
        pass


async def test_open_says_where_and_what_failed() -> None:
    with pytest.raises(AuthenticationError) as caught:
        await _FailingOpen().open()
    assert caught.value.target == "test://failing-open"
    assert caught.value.operation == "open"


@pytest.mark.parametrize(
    ("target", "says"),
    [
        (None, "not NoneType"),
        (5, "not int"),
        ({"url": "sim://"}, "not dict"),
        (b"sim://", "not bytes"),
        (SimulatedHost, "an instance"),
    ],
    ids=["none", "int", "dict", "bytes", "class"],
)
def test_a_thing_that_is_no_target_is_refused_clearly(target: object, says: str) -> None:
    with pytest.raises(InvalidTargetError, match=says):
        HyperVHost.connect(target)  # type: ignore[arg-type]
    with pytest.raises(InvalidTargetError, match=says):
        LinuxGuest.connect(target)  # type: ignore[arg-type]


async def test_an_unawaited_coroutine_as_target_asks_for_await() -> None:
    async def make() -> Mapping[str, JsonValue]:
        return {}

    coroutine = make()
    with pytest.raises(InvalidTargetError, match="await"):
        HyperVHost.connect(coroutine)  # type: ignore[arg-type]
    # Refusing it also closed it: no "never awaited" warning fails the suite.


def test_a_failed_command_names_itself_briefly() -> None:
    script = "set -eu\n" + "echo something long and dull\n" * 400
    done = CompletedCommand(("sh", "-c", script, "status"), 1, b"", b"sh: Input/output error\n")
    with pytest.raises(RemoteCommandError) as caught:
        done.check(operation="linux status")
    message = str(caught.value)
    assert message.startswith("sh -c ")
    assert "exited with status 1: sh: Input/output error" in message
    assert len(message) < 300
    assert caught.value.remote_message == "sh: Input/output error"
