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

Usage::

    python benchmarks/psrp_pool_reuse.py [--operations 200] [--naive 200]
                                         [--vms 20] [--latency 0.05]

``--latency`` is the simulated host's time per call (Hyper-V's cmdlets take
tens of milliseconds); concurrency can only overlap waiting, never CPU of
the single-threaded test server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

from hvintegration.operations import GET_INTEGRATION_SERVICES, LIST_VMS
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.transport.psrp import PSRPTarget

TIMEOUT = 60.0


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
    parser.add_argument("--operations", type=int, default=200)
    parser.add_argument("--naive", type=int, default=200, help="operations with a pool each")
    parser.add_argument("--vms", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    options = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="hvintegration-bench-")

    state = os.path.join(directory, "reuse.json")
    save_host(SimulatedHost(), state)
    await reused_pool(state, 5)  # warm up imports and the file cache
    reused = await reused_pool(state, options.operations)
    naive = await pool_per_operation(state, options.naive)
    per_reused = reused / options.operations
    per_naive = naive / options.naive
    print("1. one pool reused vs a new pool per operation (list_vms)")
    print(
        f"   reused pool:        {options.operations:4d} ops in {reused:7.3f} s  "
        f"= {per_reused * 1000:7.2f} ms/op"
    )
    print(
        f"   pool per operation: {options.naive:4d} ops in {naive:7.3f} s  "
        f"= {per_naive * 1000:7.2f} ms/op"
    )
    print(f"   reuse is {per_naive / per_reused:.1f}x faster per operation (target >= 10x)")

    state = os.path.join(directory, "vms.json")
    host = SimulatedHost(vms=[], latency=options.latency)
    names = [f"vm{number:02d}" for number in range(1, options.vms + 1)]
    for name in names:
        host.add_vm(name)
    save_host(host, state)
    sequential = await read_vms(state, names, concurrent=False)
    concurrent = await read_vms(state, names, concurrent=True)
    batched = await read_vms_batched(state, names)
    print(f"2. {options.vms} VMs' services on one pool, host latency {options.latency:g} s/call")
    print(f"   one after another:  {sequential:7.3f} s")
    print(f"   concurrently:       {concurrent:7.3f} s")
    print(f"   one batched call:   {batched:7.3f} s")
    print(
        f"   concurrency is {sequential / concurrent:.1f}x faster than one after another; "
        f"the batched call is {sequential / batched:.1f}x faster than one after another "
        f"and {concurrent / batched:.1f}x faster than concurrent calls"
    )


if __name__ == "__main__":
    asyncio.run(main())
