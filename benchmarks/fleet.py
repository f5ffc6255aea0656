"""What a fleet buys over one target after another, and what a big fleet costs.

1. 20 simulated hosts with 50 VMs each, every call delayed by ``--latency``
   seconds as a remote host's would be: reading every integration service of
   every VM through :class:`~hvintegration.fleet.Fleet`, against the same
   read host after host (connect, read, close). Both runs are measured here,
   and the ratio printed; the simulator counts round trips, and the fleet
   run must take exactly one per host.
2. 1,000 simulated hosts through a fleet bounded to ``--max-connections``:
   wall time, time and peak traced memory per host, and the most connections
   open at once, counted by the transports themselves.

Everything runs in this process (the simulator answers in process), so
what concurrency overlaps is the hosts' latency, never CPU: the sequential
run pays latency and CPU once per host, the fleet the latency about once
per batch of ``--max-connections`` hosts but still all the CPU. With ``c``
the controller's CPU per host (about 13 ms here for 50 VMs' 300 records,
half of it the simulator playing the host, which a real host would do on
its own CPU), the speed-up is about ``hosts * (latency + c) / (latency +
hosts * c)``: 10x at 0.2 s per round trip, 16x at 1.5 s, the default, which
is the order of a remote ``Get-VMIntegrationService`` of 50 VMs.

Usage::

    python benchmarks/fleet.py [--hosts 20] [--vms 50] [--latency 1.5]
                               [--big 1000] [--big-latency 0.05]
                               [--max-connections 32]

Exits 1 when the fleet is under 15x faster, takes more than one round trip
on a host, or holds more connections open than the bound.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import tracemalloc

from hvintegration import HyperVHost
from hvintegration.fleet import Fleet
from hvintegration.simulator import SimulatedHost
from hvintegration.transport.simulator import SimulatorTransport


def estate(hosts: int, vms: int, latency: float) -> list[SimulatedHost]:
    """``hosts`` simulated hosts with ``vms`` VMs each (``demovm`` included)."""
    built = []
    for number in range(hosts):
        host = SimulatedHost(f"HV{number:04d}", latency=latency)
        for vm in range(1, vms):
            host.add_vm(f"vm{vm:03d}")
        built.append(host)
    return built


async def one_after_another(hosts: list[SimulatedHost]) -> tuple[float, int]:
    started = time.perf_counter()
    rows = 0
    for simulated in hosts:
        async with HyperVHost.connect(simulated) as host:
            rows += len(await host.integration_services())
    return time.perf_counter() - started, rows


async def through_fleet(hosts: list[SimulatedHost], bound: int) -> tuple[float, int, bool]:
    started = time.perf_counter()
    result = await Fleet(hosts, max_connections=bound).integration_services()
    return time.perf_counter() - started, len(result.rows), result.ok


class Gauge:
    """Transports open now and the most at once, counted where they open and close."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0


class CountedTransport(SimulatorTransport):
    def __init__(self, peer: SimulatedHost, gauge: Gauge) -> None:
        super().__init__(peer)
        self.gauge = gauge

    async def _open(self) -> None:
        self.gauge.now += 1
        self.gauge.peak = max(self.gauge.peak, self.gauge.now)

    async def _aclose(self) -> None:
        self.gauge.now -= 1
        await super()._aclose()


class Counted:
    """A simulated host whose connections the gauge counts."""

    def __init__(self, host: SimulatedHost, gauge: Gauge) -> None:
        self.host = host
        self.gauge = gauge

    @property
    def url(self) -> str:
        return self.host.url

    def open(self) -> CountedTransport:
        return CountedTransport(self.host, self.gauge)


async def big_fleet(count: int, latency: float, bound: int) -> bool:
    hosts = estate(count, 1, latency)
    gauge = Gauge()
    fleet = Fleet([Counted(host, gauge) for host in hosts], max_connections=bound)
    started = time.perf_counter()
    result = await fleet.integration_services()
    wall = time.perf_counter() - started

    # Memory in a second run of its own: tracing slows every allocation.
    traced = Fleet([Counted(host, Gauge()) for host in hosts], max_connections=bound)
    tracemalloc.start()
    await traced.integration_services()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    failed = len(result.failed)
    print(f"\n{count} hosts, max_connections={bound}, latency {latency:g} s per round trip")
    print(f"  wall time           {wall:8.2f} s   ({wall / count * 1000:.2f} ms per host)")
    batches = -(-count // bound)
    print(f"  latency alone       {batches * latency:8.2f} s   ({batches} batches of {bound})")
    print(f"  peak traced memory  {peak / 2**20:8.2f} MiB ({peak / count / 1024:.1f} KiB per host)")
    counted = f"(bound {bound}; the fleet counted {result.peak_connections})"
    print(f"  most open at once   {gauge.peak:8d}     {counted}")
    print(f"  failed targets      {failed:8d}")
    rounds = {host.round_trips for host in hosts}
    print(f"  round trips per host {sorted(rounds)} (one run counted twice: timed and traced)")
    return gauge.peak <= bound and result.peak_connections <= bound and failed == 0


async def main(args: argparse.Namespace) -> int:
    print(
        f"{args.hosts} hosts x {args.vms} VMs, {args.latency:g} s per round trip, "
        f"max_connections={args.max_connections}"
    )
    sequential_hosts = estate(args.hosts, args.vms, args.latency)
    fleet_hosts = estate(args.hosts, args.vms, args.latency)
    sequential, rows_a = await one_after_another(sequential_hosts)
    concurrent, rows_b, ok = await through_fleet(fleet_hosts, args.max_connections)
    ratio = sequential / concurrent
    trips = [host.round_trips for host in fleet_hosts]
    print(f"  one after another   {sequential:8.2f} s   {rows_a} rows")
    print(f"  fleet               {concurrent:8.2f} s   {rows_b} rows")
    print(f"  speed-up            {ratio:8.1f}x  (target: at least 15x)")
    print(f"  round trips per host in the fleet run: {trips}")
    good = ok and rows_a == rows_b and ratio >= 15 and set(trips) == {1}
    if args.big:
        good = await big_fleet(args.big, args.big_latency, args.max_connections) and good
    print("\nOK" if good else "\nBELOW TARGET")
    return 0 if good else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--vms", type=int, default=50)
    parser.add_argument("--latency", type=float, default=1.5)
    parser.add_argument("--big", type=int, default=1000, help="hosts of the big run; 0 skips it")
    parser.add_argument("--big-latency", type=float, default=0.05)
    parser.add_argument("--max-connections", type=int, default=32)
    sys.exit(asyncio.run(main(parser.parse_args())))
