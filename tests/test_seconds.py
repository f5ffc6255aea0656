"""Every duration the public API takes is checked the same way, before anything is sent."""

from __future__ import annotations

import io
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hvintegration import HyperVHost, LinuxGuest, doctor
from hvintegration._seconds import check_seconds
from hvintegration.cli import EXIT_CODES, run
from hvintegration.errors import InvalidParameterError, InvalidTargetError
from hvintegration.operations import LIST_VMS
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.transport.psrp import PSRPTarget
from hvintegration.transport.ssh import SSHTarget

BAD = [math.nan, math.inf, -math.inf, -1.0, True, "5", None, 10**400]


@pytest.mark.parametrize("value", BAD)
def test_the_check_refuses_what_is_no_duration(value: object) -> None:
    with pytest.raises(InvalidParameterError, match=r"^wait must be a finite number of seconds"):
        check_seconds(value, "wait", zero=True)


def test_the_check_takes_ints_floats_and_zero_where_allowed() -> None:
    assert check_seconds(3, "grace", zero=True) == 3.0
    assert check_seconds(0, "grace", zero=True) == 0.0
    with pytest.raises(
        InvalidParameterError, match="timeout must be a finite number of seconds > 0"
    ):
        check_seconds(0, "timeout")
    with pytest.raises(InvalidTargetError, match="connect_timeout"):
        check_seconds(math.nan, "connect_timeout", error=InvalidTargetError, target="ssh://h")


async def _stop(guest: LinuxGuest, value: Any) -> object:
    return await guest.daemon("kvp").stop(grace=value)


async def _restart(guest: LinuxGuest, value: Any) -> object:
    return await guest.daemon("kvp").restart(grace=value)


async def _lock(guest: LinuxGuest, value: Any) -> object:
    return await guest.daemon("kvp").start(lock_timeout=value)


async def _settle(guest: LinuxGuest, value: Any) -> object:
    return await guest.daemon("kvp").start(settle=value)


@pytest.mark.parametrize("call", [_stop, _restart, _lock, _settle])
@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
async def test_a_daemon_refuses_a_bad_duration_and_changes_nothing(
    call: Callable[[LinuxGuest, Any], Awaitable[object]], value: float
) -> None:
    sim = SimulatedLinuxGuest()
    async with LinuxGuest.connect(sim) as guest:
        before = sim.round_trips
        with pytest.raises(InvalidParameterError, match="must be a finite number of seconds"):
            await call(guest, value)
        assert sim.round_trips == before


@pytest.mark.parametrize("value", [math.nan, math.inf, 0, -5])
async def test_connections_and_calls_refuse_a_bad_timeout(value: float) -> None:
    with pytest.raises(InvalidParameterError, match="timeout must be a finite number"):
        async with HyperVHost.connect(SimulatedHost(), timeout=value):
            pass
    with pytest.raises(InvalidParameterError, match="timeout must be a finite number"):
        await doctor(SimulatedHost(), timeout=value)
    async with HyperVHost.connect(SimulatedHost()) as host:
        with pytest.raises(InvalidParameterError, match="timeout must be a finite number"):
            await host.transport.run_operation(LIST_VMS, {"VM": None}, timeout=value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0])
def test_settings_refuse_a_bad_duration(value: float) -> None:
    with pytest.raises(InvalidTargetError, match="connect_timeout must be a finite number"):
        SSHTarget("hv01", connect_timeout=value)
    with pytest.raises(InvalidTargetError, match="connect_timeout must be a finite number"):
        PSRPTarget("hv01", connect_timeout=value)
    with pytest.raises(InvalidParameterError, match="latency must be a finite number"):
        SimulatedHost(latency=value)
    with pytest.raises(InvalidParameterError, match="latency must be a finite number"):
        SimulatedLinuxGuest(latency=value)


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_the_command_line_names_the_bad_grace(value: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["-t", "sim-linux://?distro=ubuntu-14.04", "linux", "stop", "vss", "--grace", value]
    status = run(argv, out=out, err=err)
    assert status == EXIT_CODES["usage"]
    assert "grace must be a finite number of seconds >= 0" in err.getvalue()
    assert "Traceback" not in err.getvalue()
