"""Client CPU and memory per record over psrp://, against local://, in one run.

Reads every integration service of every VM on a simulated host of 1, 200
and 2,000 VMs (six records a VM) with one ``get_integration_services`` call,
and prints for each size, side by side:

* ``psrp://``: the library as shipped, whose pipeline ends in the output
  command, so the answer crosses PSRP as one JSON string parsed once;
* ``psrp:// objects``: the operation's script alone through the same pool,
  one CLIXML object per record turned into plain values one by one (the wire
  before the output command; ``--no-objects`` leaves it out, it is slow);
* ``local://``: the JSON session loop through the stand-in PowerShell.

The client CPU is this process's own (``time.process_time``): the peers are
child processes, so what they spend answering is not in it. Memory is the
peak of Python allocations during one call (``tracemalloc``, in a run of its
own because tracing slows every allocation), per record. Each figure is
measured ``--repeats`` times, the modes interleaved, and printed as
min / median / max; a ratio is taken within one repeat, then spread.

The peers are the PSRP test server (psrpcore's server classes behind the
simulator, started as a child process over out-of-process PSRP) and the
stand-in PowerShell: a real host spends its own time in Hyper-V's cmdlets
and PowerShell's serialiser, which neither adds to the client's CPU.

Usage::

    python benchmarks/psrp_wire.py [--sizes 1 200 2000] [--repeats 3] [--no-objects]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from hvintegration.operations import GET_INTEGRATION_SERVICES
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.standin_powershell import install_standin
from hvintegration.transport._clixml import from_wire, to_wire
from hvintegration.transport._outofproc import psrp
from hvintegration.transport.base import PowerShellTransport
from hvintegration.transport.local import LocalTarget
from hvintegration.transport.psrp import PSRPTarget, PSRPTransport

TIMEOUT = 600.0
ALL_VMS = {"VM": None}
RECORDS_PER_VM = 6

Call = Callable[[], Awaitable[int]]


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 1) -> str:
    """``min / median / max`` of ``values`` times ``scale``."""
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low * scale:.{digits}f} / {middle * scale:.{digits}f} / {high * scale:.{digits}f}"


def psrp_target(state: Path) -> PSRPTarget:
    return PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=("-m", "hvintegration.testing.psrp_server", "--state", str(state)),
    )


def library_call(transport: PowerShellTransport) -> Call:
    async def call() -> int:
        result = await transport.run_operation(GET_INTEGRATION_SERVICES, ALL_VMS, timeout=TIMEOUT)
        return len(result.output)

    return call


def objects_call(transport: PSRPTransport) -> Call:
    """The script alone on the transport's pool: one CLIXML object per record."""

    async def call() -> int:
        session = transport._session
        assert session is not None
        shell = psrp.AsyncPowerShell(session.pool)
        shell.add_script(GET_INTEGRATION_SERVICES.script, use_local_scope=True)
        shell.add_parameter("VM", to_wire(None))
        output = await asyncio.wait_for(shell.invoke(), TIMEOUT)
        return len([from_wire(item) for item in output])

    return call


async def cpu_per_record(call: Call, expected: int) -> float:
    gc.collect()
    start = time.process_time()
    records = await call()
    spent = time.process_time() - start
    if records != expected:
        raise SystemExit(f"expected {expected} records, got {records}")
    return spent / records


async def bytes_per_record(call: Call, expected: int) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        records = await call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if records != expected:
        raise SystemExit(f"expected {expected} records, got {records}")
    return peak / records


def write_host(path: Path, vms: int) -> None:
    host = SimulatedHost(vms=[])
    for number in range(vms):
        host.add_vm(f"vm{number:05d}")
    save_host(host, path)


async def measure(
    directory: Path, vms: int, repeats: int, objects: bool
) -> dict[str, tuple[list[float], list[float]]]:
    state = directory / f"host-{vms}.json"
    write_host(state, vms)
    executable = str(install_standin(directory / f"bin-{vms}", state)["pwsh"])
    expected = vms * RECORDS_PER_VM
    async with (
        psrp_target(state).open() as remote,
        LocalTarget(executable=executable).open() as local,
    ):
        calls: dict[str, Call] = {"psrp://": library_call(remote)}
        if objects:
            calls["psrp:// objects"] = objects_call(remote)
        calls["local://"] = library_call(local)
        # Warm both peers, the pool and the interpreter's caches.
        await calls["psrp://"]()
        await calls["local://"]()
        cpu: dict[str, list[float]] = {name: [] for name in calls}
        memory: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(repeats):
            for name, call in calls.items():
                cpu[name].append(await cpu_per_record(call, expected))
        for _ in range(repeats):
            for name, call in calls.items():
                memory[name].append(await bytes_per_record(call, expected))
    return {name: (cpu[name], memory[name]) for name in calls}


async def main(sizes: list[int], repeats: int, objects: bool) -> None:
    directory = Path(tempfile.mkdtemp(prefix="hvintegration-bench-"))
    print(
        f"Client CPU and memory per record, get_integration_services of every VM "
        f"({RECORDS_PER_VM} records a VM), {repeats} repeats, modes interleaved "
        "(min / median / max)"
    )
    header = (
        f"  {'VMs':>5} {'records':>8}  {'transport':<16} {'µs CPU/record':>24} "
        f"{'ms CPU/call (median)':>21} {'KiB/record':>24}"
    )
    print(header)
    verdicts = []
    for vms in sizes:
        figures = await measure(directory, vms, repeats, objects)
        records = vms * RECORDS_PER_VM
        for name, (cpu, memory) in figures.items():
            print(
                f"  {vms:>5} {records:>8}  {name:<16} {spread(cpu, 1e6):>24} "
                f"{statistics.median(cpu) * records * 1e3:>21.2f} "
                f"{spread(memory, 1 / 1024, 2):>24}"
            )
        cpu_of = {name: figures[name][0] for name in figures}
        ratio = [a / b for a, b in zip(cpu_of["psrp://"], cpu_of["local://"], strict=True)]
        line = (
            f"  {vms:>5} VMs: psrp:// spends {spread(ratio, 1, 2)}x the CPU of local:// per record"
        )
        if "psrp:// objects" in figures:
            gain = [
                a / b for a, b in zip(cpu_of["psrp:// objects"], cpu_of["psrp://"], strict=True)
            ]
            line += f"; the JSON string is {spread(gain)}x cheaper than one object per record"
        print(line)
        verdicts.append(statistics.median(ratio))
    worst = max(verdicts)
    verdict = "meets" if worst <= 2 else "MISSES"
    print(f"Worst median psrp:// / local:// ratio {worst:.2f}x ({verdict} the 2x target)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 200, 2000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-objects", action="store_true", help="leave out the one-object-per-record wire"
    )
    options = parser.parse_args()
    asyncio.run(main(options.sizes, options.repeats, not options.no_objects))
