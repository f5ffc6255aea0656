"""Concurrent calls on one host: the pool of PowerShell sessions.

Twenty single-VM reads on one ``local://`` host, three ways, in one run:

* one after another (each call waits for the previous one);
* all twenty at once through a pool of ``--sessions`` PowerShell processes
  (target: at least 3x faster than one after another with a pool of 4);
* one batched call reading the twenty VMs (still the fastest).

The peer is the stand-in PowerShell (a real child process per session,
backed by the simulator). Its own work per call is small; a real host
spends most of a call inside the Hyper-V cmdlets, waiting on WMI. So each
call is given ``--latency`` seconds on the peer (the simulator's injected
latency, spent waiting, as a host's cmdlets do), and the run is repeated
with no latency at all, where only this machine's CPUs can overlap. Every
figure is measured ``--repeats`` times, interleaved, and printed as
min / median / max. Sessions are started before timing (a warm pool), as in
a long-running tool.

Usage::

    python benchmarks/session_pool.py [--calls 20] [--sessions 4] [--latency 0.05] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from hvintegration.operations import GET_INTEGRATION_SERVICES
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import edit_state, save_host
from hvintegration.testing.standin_powershell import install_standin
from hvintegration.transport.base import PowerShellTransport
from hvintegration.transport.local import LocalTarget


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> str:
    """``min / median / max`` of ``values`` times ``scale``."""
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low * scale:.{digits}f} / {middle * scale:.{digits}f} / {high * scale:.{digits}f}"


async def timed(work: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await work()
    return time.perf_counter() - start


async def measure(
    transport: PowerShellTransport, names: list[str], repeats: int
) -> tuple[list[float], list[float], list[float]]:
    """Seconds for the reads one after another, all at once, and batched."""

    async def read(name: str) -> None:
        result = await transport.run_operation(
            GET_INTEGRATION_SERVICES, {"VM": [{"Name": name}]}, timeout=120
        )
        assert len(result.output) == 6, result

    async def sequential() -> None:
        for name in names:
            await read(name)

    async def concurrent() -> None:
        await asyncio.gather(*(read(name) for name in names))

    async def batched() -> None:
        refs = [{"Name": name} for name in names]
        result = await transport.run_operation(GET_INTEGRATION_SERVICES, {"VM": refs}, timeout=120)
        assert len(result.output) == 6 * len(names)

    await concurrent()  # start every session of the pool before timing
    one_by_one: list[float] = []
    at_once: list[float] = []
    batch: list[float] = []
    for _ in range(repeats):
        one_by_one.append(await timed(sequential))
        at_once.append(await timed(concurrent))
        batch.append(await timed(batched))
    return one_by_one, at_once, batch


async def main(calls: int, sessions: int, latency: float, repeats: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="hvintegration-bench-"))
    state = directory / "host.json"
    host = SimulatedHost()
    names = [f"vm{number:02d}" for number in range(calls)]
    for name in names:
        host.add_vm(name)
    save_host(host, state)
    executable = str(install_standin(directory / "bin", state)["pwsh"])
    target = LocalTarget(executable=executable, sessions=sessions)

    print(
        f"Session pool benchmark: {calls} single-VM reads on one local:// host, "
        f"pool of {sessions}, stand-in PowerShell, {repeats} repeats (min / median / max)"
    )
    for wait in (latency, 0.0):
        with edit_state(state) as changed:
            changed.latency = wait
        async with target.open() as transport:
            one_by_one, at_once, batch = await measure(transport, names, repeats)
        print()
        print(f"peer time per call: {wait * 1000:.0f} ms")
        print(f"  {'case':<40} {'seconds':<24} {'vs one after another':<20}")
        rows = [
            ("one after another", one_by_one),
            (f"all at once, pool of {sessions}", at_once),
            ("one batched call", batch),
        ]
        for label, seconds in rows:
            ratios = [base / s for base, s in zip(one_by_one, seconds, strict=True)]
            print(f"  {label:<40} {spread(seconds):<24} {spread(ratios, 1, 1)} x")
        if wait > 0:
            gain = statistics.median([b / a for b, a in zip(one_by_one, at_once, strict=True)])
            verdict = "meets" if gain >= 3 else "MISSES"
            fastest = statistics.median(batch) < statistics.median(at_once)
            print(
                f"  pool gain {gain:.1f}x ({verdict} the 3x target); "
                f"one batched call {'is' if fastest else 'is NOT'} the fastest"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20, help="single-VM reads")
    parser.add_argument("--sessions", type=int, default=4, help="the pool's bound")
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds the peer spends per call"
    )
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each figure")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.sessions, arguments.latency, arguments.repeats))
