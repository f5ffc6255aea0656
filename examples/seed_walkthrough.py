"""The vendor how-to's first example.

Run: python examples/seed_walkthrough.py TARGET

The target is the first argument, or HVINTEGRATION_TARGET; with neither the
script stops (it never falls back to the simulator). Try it with ``sim://``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from hvintegration import HyperVHost


async def main(target: str) -> None:
    async with HyperVHost.connect(target) as host:
        vm = host.vm("demovm")
        print("Get-VMIntegrationService -VMName demovm")
        for state in await vm.integration_services():
            print(f"  {state.name:<25} {state.enabled!s:<6} {state.primary_status}")

        gsi = vm.integration_service("Guest Service Interface")
        print("Enable-VMIntegrationService ... -> enabled =", (await gsi.enable()).enabled)
        print("Disable-VMIntegrationService ... -> enabled =", (await gsi.disable()).enabled)


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HVINTEGRATION_TARGET", "")
    if not target:
        sys.exit(
            "usage: seed_walkthrough.py TARGET (or set HVINTEGRATION_TARGET); "
            "to try it out: seed_walkthrough.py sim://"
        )
    asyncio.run(main(target))
