"""Diagnose every VM of a host: one line per VM, then what to do for each problem.

Diagnoses every VM from the host's side in three round trips, whatever the
number of VMs (the VMs, their services, their Key-Value Pair Exchange items;
the host's statuses decide and no guest credentials are needed), prints one
row per VM and, for every service that asks for action, the command that
fixes it.

Run: python examples/diagnose_host.py TARGET [--host-os OS]

The target is the first argument, or HVINTEGRATION_TARGET; with neither the
script stops (it never falls back to the simulator). Try it with ``sim://``.

Exits 1 when any VM has a service that asks for action, else 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from hvintegration import HyperVHost
from hvintegration._table import text_table
from hvintegration.diagnosis import diagnose_host


async def main(target: str, host_os: str | None) -> int:
    async with HyperVHost.connect(target) as host:
        found = await diagnose_host(host, host_os=host_os)
    print(text_table(found))
    for diagnosis in found:
        for item, step in diagnosis.remedies:
            command = step.cli or step.manual
            print(f"{diagnosis.vm}: {item.service.name} ({item.verdict.value}): {command}")
    return 0 if all(diagnosis.ok for diagnosis in found) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "target",
        nargs="?",
        default=os.environ.get("HVINTEGRATION_TARGET", ""),
        help="the host URL (default: HVINTEGRATION_TARGET); try 'sim://?vms=2'",
    )
    parser.add_argument("--host-os", default=None, help="the host's release, for update paths")
    options = parser.parse_args()
    if not options.target:
        parser.error("no target: give TARGET or set HVINTEGRATION_TARGET (try 'sim://?vms=2')")
    raise SystemExit(asyncio.run(main(options.target, options.host_os)))
