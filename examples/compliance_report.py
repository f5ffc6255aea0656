"""Report, and optionally fix, VMs whose integration services differ from a policy.

Reads every service of every VM in one round trip, then applies the policy to
all offending VMs in one more. Failures of single VMs are reported without
losing the changes made to the others.

Run: python examples/compliance_report.py TARGET [--fix]

The target is the first argument, or HVINTEGRATION_TARGET; with neither the
script stops (it never falls back to the simulator). Try it with ``sim://``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from hvintegration import BatchError, HyperVHost, catalogue

# Backup tooling here copies files into guests, so Guest Service Interface
# must be on; everything else keeps Hyper-V's defaults.
POLICY = {
    catalogue.GUEST_SERVICE_INTERFACE: True,
    catalogue.HEARTBEAT: True,
    catalogue.KEY_VALUE_PAIR_EXCHANGE: True,
    catalogue.SHUTDOWN: True,
    catalogue.TIME_SYNCHRONIZATION: True,
    catalogue.VSS: True,
}


async def main(target: str, fix: bool) -> int:
    async with HyperVHost.connect(target) as host:
        offending: dict[uuid.UUID, dict[catalogue.ServiceSpec, bool]] = {}
        for state in await host.integration_services():
            service = state.service
            wanted = POLICY.get(service) if service else None
            if service is not None and wanted is not None and state.enabled != wanted:
                # By id, not name: two VMs may share a name.
                offending.setdefault(state.vm_id, {})[service] = wanted
                print(
                    f"{state.vm_name}: {state.display_name} is "
                    f"{'on' if state.enabled else 'off'}, policy says "
                    f"{'on' if wanted else 'off'}"
                )
        if not offending:
            print("every VM follows the policy")
            return 0
        if not fix:
            return 1
        try:
            result = await host.apply(offending)
        except BatchError as error:
            for item, failure in error.errors.items():
                print(f"could not fix {item}: {failure.message}")
            return 1
        print(f"fixed {len(result.changed)} services")
        return 0


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--fix"]
    target = arguments[0] if arguments else os.environ.get("HVINTEGRATION_TARGET", "")
    if not target:
        sys.exit(
            "usage: compliance_report.py TARGET [--fix] (or set HVINTEGRATION_TARGET); "
            "to try it out: compliance_report.py 'sim://?vms=5'"
        )
    sys.exit(asyncio.run(main(target, "--fix" in sys.argv)))
