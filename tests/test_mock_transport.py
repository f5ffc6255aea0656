"""hvintegration.testing.MockTransport: the handler sees each request and decides the answer."""

from __future__ import annotations

import pytest

from hvintegration import HyperVHost, LinuxGuest, VMNotFoundError, WindowsGuest
from hvintegration.errors import (
    InvalidParameterError,
    TransportClosedError,
    TransportError,
)
from hvintegration.operations import GET_GUEST_SERVICES, LIST_VMS
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.testing import CommandRequest, MockTransport, OperationRequest, Request
from hvintegration.transport import CompletedCommand, OperationResult


async def test_the_handler_gets_the_operation_and_its_parameters() -> None:
    seen: list[Request] = []

    def handler(request: Request) -> OperationResult:
        seen.append(request)
        return OperationResult(())

    mock = MockTransport(handler, target="mock://HV09")
    async with HyperVHost.connect(mock, timeout=7) as host:
        assert list(await host.list_vms()) == []
    [request] = seen
    assert isinstance(request, OperationRequest)
    assert (request.operation, request.parameters, request.timeout) == (LIST_VMS, {"VM": None}, 7)
    assert mock.requests == seen
    assert mock.closed


async def test_an_async_handler_can_wrap_a_real_transport() -> None:
    sim = SimulatedLinuxGuest()
    inner = sim.open()

    async def forward(request: Request) -> CompletedCommand:
        assert isinstance(request, CommandRequest)
        return await inner.run_command(request.argv, input=request.input, timeout=request.timeout)

    mock = MockTransport(forward)
    async with inner, LinuxGuest.connect(mock) as guest:
        assert (await guest.driver()).state == "module"
    assert [type(r) for r in mock.requests] == [CommandRequest]
    assert sim.round_trips == 1


async def test_errors_the_handler_raises_reach_the_caller() -> None:
    def missing(request: Request) -> OperationResult:
        raise VMNotFoundError("ghost", choices=["demovm"])

    async with HyperVHost.connect(MockTransport(missing)) as host:
        with pytest.raises(VMNotFoundError) as caught:
            await host.vm("ghost").summary()
    assert (caught.value.target, caught.value.operation) == ("mock://", "list_vms")

    def broken(request: Request) -> OperationResult:
        raise ConnectionResetError("peer went away")

    async with WindowsGuest.connect(MockTransport(broken)) as guest:
        with pytest.raises(TransportError, match="peer went away"):
            await guest.services()


async def test_the_wrong_kind_of_answer_is_a_transport_error() -> None:
    def wrong(request: Request) -> CompletedCommand:
        return CompletedCommand(("x",), 0, b"", b"")

    async with MockTransport(wrong) as transport:
        with pytest.raises(TransportError, match="not an OperationResult"):
            await transport.run_operation(GET_GUEST_SERVICES, {"Name": []}, timeout=5)


async def test_the_base_contract_still_holds() -> None:
    mock = MockTransport(lambda request: OperationResult(()))
    async with mock:
        with pytest.raises(InvalidParameterError, match="no parameter Colour"):
            await mock.run_operation(LIST_VMS, {"Colour": "blue"}, timeout=5)
        with pytest.raises(InvalidParameterError, match="empty command"):
            await mock.run_command([], timeout=5)
    with pytest.raises(TransportClosedError):
        await mock.run_operation(LIST_VMS, {"VM": None}, timeout=5)
    assert mock.requests == []
