"""Audit every VM of every host in an inventory: which integration services are off or unhealthy.

Reads all hosts at once (one connection and one round trip per host, at most
``--max-connections`` open together) and prints one line per VM that needs a
look, then the hosts that could not be read, each with its own error. A host
that is down never hides the others.

Run: python examples/audit_inventory.py INVENTORY [--group GROUP] [--max-connections N] [--csv FILE]

INVENTORY is a TOML inventory (see docs/fleets.md) or an Ansible inventory
(with ``pip install 'hvintegration[ansible]'``). Exit status 0 when every host
was read and every VM is healthy, 1 otherwise, 2 when the inventory cannot be
used (the one-line error says why). VMs are told apart by id: two VMs of one
name on a host are two VMs, each line naming its id.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import uuid
from collections import Counter, defaultdict

from hvintegration import HvIntegrationError, catalogue
from hvintegration.fleet import FleetProgress, FleetResult, ServiceRow, load_inventory


def progress(step: FleetProgress) -> None:
    # On stderr, so the report on stdout stays clean for a pipe.
    status = "ok" if step.last.ok else "FAILED"
    print(f"[{step.done}/{step.total}] {step.last.target}: {status}", file=sys.stderr)


async def read(args: argparse.Namespace) -> FleetResult[ServiceRow]:
    inventory = load_inventory(args.inventory)
    fleet = inventory.fleet(
        group=args.group, max_connections=args.max_connections, progress=progress
    )
    return await fleet.integration_services()


def english(key: str) -> str:
    # A row names a service by its catalogue key; people read the English name.
    spec = catalogue.lookup_host(key)
    return spec.name if spec is not None else key


def report(result: FleetResult[ServiceRow], args: argparse.Namespace) -> int:
    # Per host and VM (by id: names need not be unique), the services that
    # are off or whose guest does not answer.
    findings: dict[tuple[str, uuid.UUID], list[str]] = defaultdict(list)
    names: dict[tuple[str, uuid.UUID], str] = {}
    for row in result.rows:
        names[row.target, row.vm_id] = row.vm
        if not row.enabled:
            findings[row.target, row.vm_id].append(f"{english(row.service)} off")
        elif row.status not in ("OK", ""):
            findings[row.target, row.vm_id].append(f"{english(row.service)}: {row.status}")
    per_name = Counter((host, name) for (host, _), name in names.items())
    shared = {key for key, name in names.items() if per_name[key[0], name] > 1}
    for key, problems in sorted(findings.items(), key=lambda item: (item[0][0], names[item[0]])):
        host, vm_id = key
        vm = f"{names[key]} ({vm_id})" if key in shared else names[key]
        print(f"{host} {vm}: {'; '.join(problems)}")
    for failed in result.failed:
        print(f"{failed.target}: not read: {failed.error}")
    read = len(result.targets) - len(result.failed)
    print(
        f"{len(names)} VMs on {read} hosts audited, {len(findings)} need a look, "
        f"{len(result.failed)} hosts not read"
    )
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["target", "vm", "vm_id", "service", "enabled", "status"])
            for row in result.rows:
                writer.writerow(
                    [row.target, row.vm, row.vm_id, row.service, row.enabled, row.status]
                )
    return 0 if result.ok and not findings else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inventory")
    parser.add_argument("--group")
    parser.add_argument("--max-connections", type=int)
    parser.add_argument("--csv", help="also write every row to this CSV file")
    arguments = parser.parse_args()
    try:
        outcome = asyncio.run(read(arguments))
    except (HvIntegrationError, ValueError) as error:
        # An unusable inventory (or a bad option): one line, no traceback.
        print(f"audit_inventory: error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(report(outcome, arguments))
