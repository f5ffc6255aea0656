"""The psrp:// transport survives peers that die, hang, babble or stop.

Each fault ends in a clear error from the library's hierarchy within the
call's timeout, leaves no child process behind, and the next operation works
on a new runspace pool. Children are found through ``/proc``: every running
process whose parent is this test process and whose command line names the
test's state file.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from hvintegration.errors import (
    OperationStoppedError,
    OperationTimeoutError,
    ProtocolError,
    RemoteCommandError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.operations import GET_INTEGRATION_SERVICES, LIST_VMS, Operation
from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.state import edit_state, save_host
from hvintegration.transport.psrp import PSRPTarget, PSRPTransport

SERVER = ("-m", "hvintegration.testing.psrp_server")
ALL_VMS = {"VM": None}


def children(marker: str) -> list[int]:
    """Live (not zombie) children of this process whose command line has ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == os.getpid() and state != "Z" and marker.encode() in cmdline:
            found.append(int(entry))
    return found


@pytest.fixture
def state(tmp_path: Path) -> str:
    path = tmp_path / "host.json"
    save_host(SimulatedHost(), path)
    return str(path)


def transport(state: str, *extra: str, **settings: object) -> PSRPTransport:
    target = PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=(*SERVER, "--state", state, *extra),
        **settings,  # type: ignore[arg-type]
    )
    return target.open()


def program(code: str, **settings: object) -> PSRPTransport:
    """A transport whose peer is a Python one-liner instead of a PSRP server."""
    target = PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=("-c", code),
        **settings,  # type: ignore[arg-type]
    )
    return target.open()


async def test_server_killed_mid_pipeline_is_noticed_before_the_timeout(state: str) -> None:
    with edit_state(state) as host:
        host.inject_fault("hang", operation="list_vms")
    async with transport(state) as psrp:
        [first] = children(state)
        call = asyncio.ensure_future(psrp.run_operation(LIST_VMS, ALL_VMS, timeout=30))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        os.kill(first, signal.SIGKILL)
        with pytest.raises(TransportBrokenError, match="ended") as caught:
            await call
        assert time.monotonic() - started < 5
        assert "operation list_vms" in str(caught.value)
        assert children(state) == []
        result = await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        assert len(result.output) == 1
        assert psrp.pools_opened == 2
        assert children(state) != [first]
    assert children(state) == []


async def test_server_exiting_mid_pipeline_leaves_no_child(state: str) -> None:
    with edit_state(state) as host:
        host.inject_fault("disconnect", operation="list_vms")
    async with transport(state) as psrp:
        with pytest.raises(TransportBrokenError, match="status 3"):
            await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        assert children(state) == []
        await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        assert psrp.pools_opened == 2


async def test_hung_pipeline_is_stopped_and_the_pool_kept(state: str) -> None:
    with edit_state(state) as host:
        host.inject_fault("hang", operation="list_vms")
    async with transport(state) as psrp:
        [child] = children(state)
        with pytest.raises(OperationTimeoutError):
            await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=0.5)
        result = await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        assert len(result.output) == 1
        # The stop signal reached the server: the same pool and child serve on.
        assert psrp.pools_opened == 1
        assert children(state) == [child]


async def test_peer_that_never_answers_times_out_and_is_killed(tmp_path: Path) -> None:
    marker = str(tmp_path / "silent")
    code = f"import sys; {marker!r}; sys.stdin.buffer.read()"
    psrp = program(code, connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(OperationTimeoutError, match="did not open"):
        await psrp.open()
    assert time.monotonic() - started < 5
    assert children(marker) == []
    with pytest.raises(OperationTimeoutError):
        await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=0.5)
    assert children(marker) == []
    await psrp.aclose()


async def test_garbage_instead_of_an_answer_is_a_protocol_error(state: str) -> None:
    async with transport(state, "--garbage-on", "list_vms") as psrp:
        started = time.monotonic()
        with pytest.raises(ProtocolError, match="unreadable") as caught:
            await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        assert time.monotonic() - started < 5
        assert isinstance(caught.value, TransportError)
        assert children(state) == []
        result = await psrp.run_operation(GET_INTEGRATION_SERVICES, ALL_VMS, timeout=10)
        assert len(result.output) == 6
        assert psrp.pools_opened == 2


async def test_garbage_instead_of_a_handshake_is_a_protocol_error(tmp_path: Path) -> None:
    marker = str(tmp_path / "babble")
    code = f"import sys; {marker!r}; print('<<garbage>>', flush=True); sys.stdin.buffer.read()"
    psrp = program(code)
    with pytest.raises(ProtocolError):
        await psrp.open()
    assert children(marker) == []
    await psrp.aclose()


async def test_stderr_noise_does_not_reach_the_protocol_stream(state: str) -> None:
    async with transport(state, "--stderr-on", "list_vms") as psrp:
        result = await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        again = await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
    assert len(result.output) == len(again.output) == 1


async def test_pool_broken_between_operations_is_replaced(state: str) -> None:
    async with transport(state) as psrp:
        await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        [first] = children(state)
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.3)
        result = await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        assert len(result.output) == 1
        assert psrp.pools_opened == 2
        [second] = children(state)
        assert second != first
    assert children(state) == []


async def test_pipeline_stopped_by_the_server_is_its_own_error(state: str) -> None:
    async with transport(state, "--stop-on", "list_vms") as psrp:
        with pytest.raises(OperationStoppedError, match="stopped") as caught:
            await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
        assert caught.value.error_id == "PipelineStopped"
        assert isinstance(caught.value, RemoteCommandError)
        # A stopped pipeline does not break the pool.
        result = await psrp.run_operation(GET_INTEGRATION_SERVICES, ALL_VMS, timeout=10)
        assert len(result.output) == 6
        assert psrp.pools_opened == 1


async def test_an_altered_script_is_refused_by_the_peer(state: str) -> None:
    altered = Operation("list_vms", LIST_VMS.script + "\nGet-Process", LIST_VMS.parameters)
    async with transport(state) as psrp:
        with pytest.raises(RemoteCommandError) as caught:
            await psrp.run_operation(altered, ALL_VMS, timeout=10)
        assert caught.value.error_id == "HvIntegrationTest.UnknownScript"
        assert psrp.pools_opened == 1


async def test_clean_close_leaves_a_quiet_child_that_exited_by_itself(state: str) -> None:
    psrp = transport(state)
    await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
    session = psrp._session
    assert session is not None
    assert session.carrier is not None
    carrier = session.carrier
    await psrp.aclose()
    assert carrier.process.returncode == 0  # type: ignore[attr-defined]
    assert list(carrier.stderr_tail) == []  # type: ignore[attr-defined]
    assert children(state) == []


async def test_more_calls_than_pipelines_all_answer(state: str) -> None:
    with edit_state(state) as host:
        host.latency = 0.2
    async with transport(state, max_pipelines=2) as psrp:
        results = await asyncio.gather(
            *(psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10) for _ in range(6))
        )
    assert all(len(r.output) == 1 for r in results)


async def test_a_missing_program_is_a_transport_error() -> None:
    psrp = PSRPTarget("localhost", via="process", executable="/nonexistent/pwsh").open()
    with pytest.raises(TransportError, match="cannot start /nonexistent/pwsh") as caught:
        await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=5)
    assert "operation list_vms" in str(caught.value)
    await psrp.aclose()


async def test_a_peer_that_exits_at_once_fails_the_open_quickly(tmp_path: Path) -> None:
    psrp = program("raise SystemExit(7)", connect_timeout=20)
    started = time.monotonic()
    with pytest.raises(TransportBrokenError, match="status 7"):
        await psrp.open()
    assert time.monotonic() - started < 5
    await psrp.aclose()


async def test_closing_under_a_running_operation(state: str) -> None:
    with edit_state(state) as host:
        host.inject_fault("hang", operation="list_vms")
    psrp = transport(state)
    call = asyncio.ensure_future(psrp.run_operation(LIST_VMS, ALL_VMS, timeout=30))
    await asyncio.sleep(0.5)
    await psrp.aclose()
    with pytest.raises(TransportClosedError):
        await call
    assert children(state) == []


async def test_a_close_that_is_never_acknowledged_is_bounded(state: str) -> None:
    psrp = transport(state, "--ignore-close", connect_timeout=1.0)
    await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=10)
    assert len(children(state)) == 1
    started = time.monotonic()
    await psrp.aclose()
    assert time.monotonic() - started < 4
    assert children(state) == []
