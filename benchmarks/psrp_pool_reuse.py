"""What reusing one PSRP runspace pool buys, measured side by side in one run.

1. One pool reused for many operations, against a new pool per operation
   (what a naive script that connects for every call does).
2. Twenty VMs' integration services read concurrently on one pool, against
   the same twenty reads one after another, and against the library's own
   way: one batched call that names all twenty VMs (one round trip).

The peer is the PSRP test server (psrpcore's server classes backed by the
simulator) started as a child process, so every number includes a real PSRP
handshake, fragments and CLIXML; opening a pool includes starting the
child, as starting ``pwsh -ServerMode`` or logging in over WinRM would.

Each case is measured ``--repeats`` times, the cases interleaved within
each repeat, and every figure and ratio is printed as min / median / max
(a ratio is taken within one repeat, then spread over the repeats).

Usage::

    python benchmarks/psrp_pool_reuse.py [--operations 100] [--naive 40]
                                         [--vms 20] [--latency 0.05] [--repeats 3]

``--latency`` is the simulated host's time per call (Hyper-V's cmdlets take
tens of milliseconds); concurrency can only overlap waiting, never CPU of
the single-threaded test server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence

from hvintegration.operations import GET_INTEGRATION_SERVICES, LIST_VMS
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.transport.psrp import PSRPTarget

TIMEOUT = 60.0


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> str:
    """``min / median / max`` of ``values`` times ``scale``."""
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low * scale:.{digits}f} / {middle * scale:.{digits}f} / {high * scale:.{digits}f}"


def ratios(slow: Sequence[float], fast: Sequence[float]) -> list[float]:
    """``slow / fast`` within each repeat."""
    return [a / b for a, b in zip(slow, fast, strict=True)]


def server_target(state: str, max_pipelines: int = 8) -> PSRPTarget:
    return PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=("-m", "hvintegration.testing.psrp_server", "--state", state),
        max_pipelines=max_pipelines,
    )


async def reused_pool(state: str, operations: int) -> float:
    async with server_target(state).open() as transport:
        started = time.perf_counter()
        for _ in range(operations):
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=TIMEOUT)
        return time.perf_counter() - started


async def pool_per_operation(state: str, operations: int) -> float:
    started = time.perf_counter()
    for _ in range(operations):
        async with server_target(state).open() as transport:
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=TIMEOUT)
    return time.perf_counter() - started


async def read_vms(state: str, names: list[str], concurrent: bool) -> float:
    async with server_target(state, max_pipelines=len(names)).open() as transport:

        async def read(name: str) -> None:
            result = await transport.run_operation(
                GET_INTEGRATION_SERVICES, {"VM": [{"Name": name}]}, timeout=TIMEOUT
            )
            assert len(result.output) == 6

        started = time.perf_counter()
        if concurrent:
            await asyncio.gather(*(read(name) for name in names))
        else:
            for name in names:
                await read(name)
        return time.perf_counter() - started


async def read_vms_batched(state: str, names: list[str]) -> float:
    """The twenty VMs in one call, as ``HyperVHost`` reads them."""
    async with server_target(state).open() as transport:
        started = time.perf_counter()
        result = await transport.run_operation(
            GET_INTEGRATION_SERVICES, {"VM": [{"Name": name} for name in names]}, timeout=TIMEOUT
        )
        elapsed = time.perf_counter() - started
    assert len(result.output) == 6 * len(names)
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=100)
    parser.add_argument("--naive", type=int, default=40, help="operations with a pool each")
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="hvintegration-bench-")

    reuse_state = os.path.join(directory, "reuse.json")
    save_host(SimulatedHost(), reuse_state)
    vms_state = os.path.join(directory, "vms.json")
    host = SimulatedHost(vms=[], latency=options.latency)
    names = [f"vm{number:02d}" for number in range(1, options.vms + 1)]
    for name in names:
        host.add_vm(name)
    save_host(host, vms_state)
    await reused_pool(reuse_state, 5)  # warm up imports and the file cache

    reused: list[float] = []
    naive: list[float] = []
    sequential: list[float] = []
    concurrent: list[float] = []
    batched: list[float] = []
    for _ in range(options.repeats):
        reused.append(await reused_pool(reuse_state, options.operations) / options.operations)
        naive.append(await pool_per_operation(reuse_state, options.naive) / options.naive)
        sequential.append(await read_vms(vms_state, names, concurrent=False))
        concurrent.append(await read_vms(vms_state, names, concurrent=True))
        batched.append(await read_vms_batched(vms_state, names))

    print(f"{options.repeats} repeats, cases interleaved (min / median / max)")
    print(
        f"1. one pool reused ({options.operations} ops) vs a new pool per operation "
        f"({options.naive} ops), list_vms"
    )
    print(f"   reused pool:         {spread(reused, 1000, 2)} ms/op")
    print(f"   pool per operation:  {spread(naive, 1000, 2)} ms/op")
    reuse = ratios(naive, reused)
    verdict = "meets" if statistics.median(reuse) >= 10 else "MISSES"
    print(f"   reuse faster by      {spread(reuse, 1, 1)} x ({verdict} the 10x target)")
    print(f"2. {options.vms} VMs' services on one pool, host latency {options.latency:g} s/call")
    print(f"   one after another:   {spread(sequential)} s")
    print(f"   concurrently:        {spread(concurrent)} s")
    print(f"   one batched call:    {spread(batched)} s")
    print(
        f"   concurrent vs one after another:    {spread(ratios(sequential, concurrent), 1, 1)} x"
    )
    print(f"   batched vs one after another:       {spread(ratios(sequential, batched), 1, 1)} x")
    print(f"   batched vs concurrent:              {spread(ratios(concurrent, batched), 1, 1)} x")


if __name__ == "__main__":
    asyncio.run(main())
