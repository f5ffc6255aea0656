"""PowerShell transports: persistent session vs one process per call, and the
library's own CPU per record.

Everything runs in one run, against the stand-in PowerShell (a real child
process speaking the wire contract, backed by the simulator), and each
figure is measured ``--repeats`` times, interleaved, and printed as
min / median / max:

* wall time per single-VM read with one long-lived PowerShell process versus
  one process per call (target: persistent at least 5x faster);
* client CPU the library spends per record read, building the records
  included: ``HyperVHost.integration_services()`` over ``local://`` (request
  encoding, framing, envelope decoding, records) minus a bare round trip on
  one process that writes a ready request line and reads the answer line
  without decoding it, divided by the records of the answer;
* record decoding alone, before and after parsing each repeated id once:
  one decoder for the whole answer either way, as the library uses it, with
  the earlier reading of a service (every VM id and component id parsed
  anew) beside today's.

Usage::

    python benchmarks/powershell_session.py [--vms 200] [--calls 20] [--repeats 5]

What a real host adds (PowerShell's own start-up, the Hyper-V module, WMI
behind each cmdlet) is not measured here; see docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from hvintegration import HyperVHost, catalogue
from hvintegration._decode import Decoder
from hvintegration.operations import GET_INTEGRATION_SERVICES
from hvintegration.records import IntegrationServiceState
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import load_host, save_host
from hvintegration.testing.standin_powershell import install_standin
from hvintegration.transport._powershell_wire import (
    ENVELOPE_PREFIX,
    RUNNER_LINE,
    decode_envelope,
    encode_request,
    powershell_argv,
)
from hvintegration.transport.base import JsonValue
from hvintegration.transport.local import LocalTarget

ONE_VM = {"VM": [{"Name": "demovm"}]}
ALL_VMS: dict[str, JsonValue] = {"VM": None}


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 3) -> str:
    """``min / median / max`` of ``values`` times ``scale``."""
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low * scale:.{digits}f} / {middle * scale:.{digits}f} / {high * scale:.{digits}f}"


async def single_vm_reads(executable: str, mode: str, calls: int) -> float:
    """Wall seconds per single-VM read, connecting included."""
    wall = time.perf_counter()
    async with LocalTarget(executable=executable, mode=mode).open() as transport:
        for _ in range(calls):
            result = await transport.run_operation(GET_INTEGRATION_SERVICES, ONE_VM, timeout=60)
            assert len(result.output) == 6
    return (time.perf_counter() - wall) / calls


async def library_reads(executable: str, calls: int, records: int) -> float:
    """Client CPU seconds per call of ``HyperVHost.integration_services()``,
    on a session already started."""
    async with HyperVHost.connect(LocalTarget(executable=executable).open(), timeout=60) as host:
        assert len(await host.integration_services()) == records
        cpu = time.process_time()
        for _ in range(calls):
            await host.integration_services()
        return (time.process_time() - cpu) / calls


async def _start(executable: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *powershell_argv(executable),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 26,
    )


async def bare_reads(executable: str, calls: int) -> tuple[float, bytes]:
    """Client CPU seconds per call for the same request on one process with
    no encoding or decoding at all, and the last answer's frame."""
    process = await _start(executable)
    assert process.stdin is not None
    assert process.stdout is not None
    request = encode_request(
        1, GET_INTEGRATION_SERVICES.name, GET_INTEGRATION_SERVICES.script, ALL_VMS
    )
    process.stdin.write(RUNNER_LINE)

    async def one() -> bytes:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(request)
        await process.stdin.drain()
        while not (line := await process.stdout.readline()).startswith(ENVELOPE_PREFIX):
            pass
        return line

    await one()  # started and warm, as the library's session is
    cpu = time.process_time()
    for _ in range(calls):
        line = await one()
    elapsed = (time.process_time() - cpu) / calls
    process.stdin.close()
    await process.wait()
    return elapsed, line[len(ENVELOPE_PREFIX) :].rstrip(b"\r\n")


class _EveryIdParsed(Decoder):
    """The decoder as it read a service before repeated ids were cached:
    the same checks, every VM id and component id parsed anew."""

    def guid(self, obj: Mapping[str, JsonValue], key: str) -> uuid.UUID:
        text = self.text(obj, key, allow_null=False)
        try:
            return uuid.UUID(text)
        except ValueError:
            raise self.fail(f"property {key} is not a GUID: {text[:60]!r}") from None

    def service_state(self, value: JsonValue) -> IntegrationServiceState:
        obj = self.object(value, "an integration service")
        full_id = self.text(obj, "Id", allow_null=False)
        suffix = full_id.rsplit("\\", 1)[-1]
        try:
            component_id = uuid.UUID(suffix)
        except ValueError:
            raise self.fail(f"integration service Id {full_id[:80]!r} ends in no GUID") from None
        return IntegrationServiceState(
            vm_name=self.text(obj, "VMName", allow_null=False),
            vm_id=self.guid(obj, "VMId"),
            name=self.text(obj, "Name"),
            component_id=component_id,
            service=catalogue.by_component_id(component_id),
            enabled=self.flag(obj, "Enabled"),
            primary_status=self.text(obj, "PrimaryStatusDescription"),
            secondary_status=self.text(obj, "SecondaryStatusDescription"),
            operational_status=self.strings(obj, "OperationalStatus"),
        )


def decoding(frame: bytes) -> tuple[float, float, int]:
    """CPU seconds per record to turn decoded output objects into records,
    one decoder per call as the library uses it: every id parsed (before)
    and each repeated id parsed once (after)."""
    reply = decode_envelope(frame, request_id=1, target="local://", operation="bench")
    output = reply.result.output
    target, name = "local://", GET_INTEGRATION_SERVICES.name

    def before() -> None:
        decoder = _EveryIdParsed(target, name)
        for value in output:
            decoder.service_state(value)

    def after() -> None:
        decoder = Decoder(target, name)
        for value in output:
            decoder.service_state(value)

    def cost(work: Callable[[], None]) -> float:
        start = time.process_time()
        for _ in range(5):
            work()
        return (time.process_time() - start) / 5 / len(output)

    return cost(before), cost(after), len(output)


async def main(vms: int, calls: int, repeats: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="hvintegration-bench-"))
    state = directory / "host.json"
    host = SimulatedHost()
    for number in range(vms - 1):
        host.add_vm(f"vm{number:04d}")
    save_host(host, state)
    records = vms * 6
    executable = str(install_standin(directory / "bin", state)["pwsh"])
    # Warm the file cache and the interpreter once, for every side alike.
    await single_vm_reads(executable, "oneshot", 1)

    persistent: list[float] = []
    oneshot: list[float] = []
    library: list[float] = []
    bare: list[float] = []
    before: list[float] = []
    after: list[float] = []
    for _ in range(repeats):
        persistent.append(await single_vm_reads(executable, "persistent", calls))
        oneshot.append(await single_vm_reads(executable, "oneshot", calls))
        library.append(await library_reads(executable, calls, records))
        cpu, frame = await bare_reads(executable, calls)
        bare.append(cpu)
        old, new, decoded = decoding(frame)
        assert decoded == records
        before.append(old)
        after.append(new)
    assert load_host(state).round_trips > 0

    print(
        f"PowerShell session benchmark: stand-in PowerShell, {vms} VMs ({records} records), "
        f"{calls} calls per measurement, {repeats} repeats (min / median / max)"
    )
    print()
    print("Single-VM reads, wall ms per call, connecting included")
    print(f"  {'persistent (one process)':<34} {spread(persistent, 1000, 2)}")
    print(f"  {'one-shot (process per call)':<34} {spread(oneshot, 1000, 2)}")
    ratios = [o / p for o, p in zip(oneshot, persistent, strict=True)]
    verdict = "meets" if statistics.median(ratios) >= 5 else "MISSES"
    print(f"  persistent faster by              {spread(ratios, 1, 1)} x ({verdict} the 5x target)")
    print()
    print(f"Reading every service of {vms} VMs, client CPU")
    print(f"  {'HyperVHost.integration_services()':<34} {spread(library, 1000)} ms per call")
    print(f"  {'bare round trip (no codec)':<34} {spread(bare, 1000)} ms per call")
    overhead = [(lib - raw) / records for lib, raw in zip(library, bare, strict=True)]
    print(f"  {'library overhead per record':<34} {spread(overhead, 1e6, 1)} us")
    print("    (request encoding, framing, JSON envelope decoding, records built)")
    print()
    print("Building records alone, client CPU per record (the JSON already decoded)")
    print(f"  {'before: every id parsed':<34} {spread(before, 1e6, 2)} us")
    print(f"  {'after: each repeated id once':<34} {spread(after, 1e6, 2)} us")
    saved = [1 - new / old for old, new in zip(before, after, strict=True)]
    print(f"  {'saved':<34} {spread(saved, 100, 0)} %")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vms", type=int, default=200, help="VMs on the simulated host")
    parser.add_argument("--calls", type=int, default=20, help="calls per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each figure")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.vms, arguments.calls, arguments.repeats))
