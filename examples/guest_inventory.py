"""List every VM's guest OS, integration services and IP addresses, with no guest login.

Reads the VMs (Get-VM) and their Key-Value Pair Exchange items in two round
trips, whatever the number of VMs; a guest that is off, or whose KVP side does
not run, shows what the host alone knows.

Run: python examples/guest_inventory.py TARGET

The target is the first argument, or HVINTEGRATION_TARGET; with neither the
script stops (it never falls back to the simulator). Try it with ``sim://``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from hvintegration import HyperVHost


async def main(target: str) -> int:
    async with HyperVHost.connect(target) as host:
        vms = {vm.id: vm for vm in await host.list_vms()}
        items = {kvp.vm_id: kvp for kvp in await host.key_value_pairs()}
    print(f"{'VMName':<10} {'State':<8} {'OS':<32} {'IC state':<16} IPv4")
    for vm_id, vm in vms.items():
        kvp = items.get(vm_id)
        os_name = (kvp.os_name if kvp else None) or "-"
        addresses = ", ".join(kvp.ipv4_addresses) if kvp else ""
        state = vm.integration_services_state or "unknown"
        print(f"{vm.name:<10} {vm.state:<8} {os_name:<32} {state:<16} {addresses or '-'}")
    return 0


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HVINTEGRATION_TARGET", "")
    if not target:
        sys.exit(
            "usage: guest_inventory.py TARGET (or set HVINTEGRATION_TARGET); "
            "to try it out: guest_inventory.py 'sim://?vms=2'"
        )
    sys.exit(asyncio.run(main(target)))
