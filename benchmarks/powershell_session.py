"""PowerShell transports: persistent session vs one process per operation.

Runs the same operations side by side, in one run, through the stand-in
PowerShell (a real child process speaking the wire contract, backed by the
simulator), and reports:

* the time per operation with one long-lived PowerShell process versus one
  process per operation (target: persistent at least 5x faster);
* the client CPU the library spends per operation (request encoding, envelope
  decoding, records) over a bare round trip on the same process, which
  writes a ready request line and reads the answer line without decoding it
  (target: under 2 ms).

Usage::

    python benchmarks/powershell_session.py [--operations 200]

Real PowerShell starts far slower than the stand-in (a second or more, and
the Hyper-V module loads on first use), so the ratio on a real host is
larger than the one printed here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from hvintegration.operations import GET_INTEGRATION_SERVICES
from hvintegration.testing.standin_powershell import install_standin
from hvintegration.transport._powershell_wire import (
    ENVELOPE_PREFIX,
    RUNNER_LINE,
    decode_envelope,
    encode_request,
    powershell_argv,
)
from hvintegration.transport.local import LocalTarget

PARAMETERS = {"VM": [{"Name": "demovm"}]}


async def through_transport(executable: str, mode: str, operations: int) -> tuple[float, float]:
    """Wall seconds and client CPU seconds for ``operations`` calls."""
    wall, cpu = time.perf_counter(), time.process_time()
    async with LocalTarget(executable=executable, mode=mode).open() as transport:
        for _ in range(operations):
            result = await transport.run_operation(GET_INTEGRATION_SERVICES, PARAMETERS, timeout=30)
            assert len(result.output) == 6
    return time.perf_counter() - wall, time.process_time() - cpu


async def _start(executable: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *powershell_argv(executable),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 24,
    )


async def bare_round_trips(executable: str, operations: int) -> tuple[float, float]:
    """The same calls on one process with no encoding or decoding at all."""
    process = await _start(executable)
    assert process.stdin is not None
    assert process.stdout is not None
    request = encode_request(
        1, GET_INTEGRATION_SERVICES.name, GET_INTEGRATION_SERVICES.script, PARAMETERS
    )
    wall, cpu = time.perf_counter(), time.process_time()
    process.stdin.write(RUNNER_LINE)
    for _ in range(operations):
        process.stdin.write(request)
        await process.stdin.drain()
        while not (await process.stdout.readline()).startswith(ENVELOPE_PREFIX):
            pass
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    process.stdin.close()
    await process.wait()
    return elapsed


async def sample_frame(executable: str) -> bytes:
    """One real answer from the stand-in, to time decoding alone."""
    process = await _start(executable)
    assert process.stdin is not None
    assert process.stdout is not None
    request = encode_request(
        1, GET_INTEGRATION_SERVICES.name, GET_INTEGRATION_SERVICES.script, PARAMETERS
    )
    stdout, _ = await process.communicate(RUNNER_LINE + request)
    (line,) = [line for line in stdout.splitlines() if line.startswith(ENVELOPE_PREFIX)]
    return line[len(ENVELOPE_PREFIX) :]


def codec_cpu(frame: bytes, operations: int) -> float:
    """Client CPU seconds to encode a request and decode an answer, per call."""
    start = time.process_time()
    for number in range(operations):
        encode_request(
            number, GET_INTEGRATION_SERVICES.name, GET_INTEGRATION_SERVICES.script, PARAMETERS
        )
        decode_envelope(frame, request_id=1, target="local://", operation="bench")
    return (time.process_time() - start) / operations


async def main(operations: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="hvintegration-bench-"))
    executable = str(install_standin(directory / "bin", directory / "host.json")["pwsh"])
    # Warm the file cache and the interpreter once, for both sides alike.
    await through_transport(executable, "oneshot", 1)

    persistent_wall, persistent_cpu = await through_transport(executable, "persistent", operations)
    oneshot_wall, _ = await through_transport(executable, "oneshot", operations)
    bare_wall, bare_cpu = await bare_round_trips(executable, operations)
    frame = await sample_frame(executable)
    codec = codec_cpu(frame, 2000)

    per = 1000 / operations
    print(f"PowerShell session benchmark: {operations} operations each, stand-in PowerShell")
    print(f"  {'mode':<28} {'total s':>9} {'ms/op':>9}")
    print(f"  {'persistent (one process)':<28} {persistent_wall:9.2f} {persistent_wall * per:9.2f}")
    print(f"  {'one-shot (process per op)':<28} {oneshot_wall:9.2f} {oneshot_wall * per:9.2f}")
    print(f"  {'bare round trip (no codec)':<28} {bare_wall:9.2f} {bare_wall * per:9.2f}")
    ratio = oneshot_wall / persistent_wall
    verdict = "meets" if ratio >= 5 else "MISSES"
    print(f"  persistent is {ratio:.1f}x faster per operation ({verdict} the 5x target)")
    overhead = (persistent_cpu - bare_cpu) * per
    verdict = "meets" if overhead < 2 else "MISSES"
    print("Library overhead per operation, client CPU:")
    print(f"  through the transport        {persistent_cpu * per:7.3f} ms")
    print(f"  bare round trip              {bare_cpu * per:7.3f} ms")
    print(f"  overhead                     {overhead:7.3f} ms ({verdict} the 2 ms target)")
    print(f"  encode + decode + records    {codec * 1000:7.3f} ms (measured alone)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=200)
    asyncio.run(main(parser.parse_args().operations))
