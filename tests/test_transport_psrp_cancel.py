"""Cancelling one psrp:// call stops only its own pipeline.

A caller that gives up in the first milliseconds of a call (while its
pipeline is still being created on the pool) must not cost anybody else:
the other calls in flight on the same runspace pool answer, and the pool is
kept.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest

from hvintegration.operations import LIST_VMS
from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.transport.psrp import PSRPTarget

SERVER = ("-m", "hvintegration.testing.psrp_server")
ALL_VMS = {"VM": None}


@pytest.fixture
def state(tmp_path: Path) -> str:
    path = tmp_path / "host.json"
    save_host(SimulatedHost(), path)
    return str(path)


@pytest.mark.timeout(300)
async def test_cancelling_calls_early_fails_no_other_call_and_keeps_the_pool(state: str) -> None:
    target = PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=(*SERVER, "--state", state),
        max_pipelines=32,
    )
    chance = random.Random(11)
    async with target.open() as psrp:
        calls = [
            asyncio.ensure_future(psrp.run_operation(LIST_VMS, ALL_VMS, timeout=120))
            for _ in range(200)
        ]
        doomed = set(chance.sample(range(200), 50))
        # Cancel at random early points: before the call reaches the pool,
        # while its pipeline is being created, or soon after it started.
        for step in range(60):
            for index in sorted(doomed):
                if chance.random() < 0.05 and not calls[index].done():
                    calls[index].cancel()
            await asyncio.sleep(0 if step % 3 else 0.001)
        for index in doomed:
            calls[index].cancel()
        results = await asyncio.gather(*calls, return_exceptions=True)
        failures = [
            (index, result)
            for index, result in enumerate(results)
            if index not in doomed and isinstance(result, BaseException)
        ]
        assert failures == []
        assert all(len(r.output) == 1 for i, r in enumerate(results) if i not in doomed)
        # The cancelled pipelines were stopped one by one; the pool stayed.
        after = await psrp.run_operation(LIST_VMS, ALL_VMS, timeout=30)
        assert len(after.output) == 1
        assert psrp.pools_opened == 1
