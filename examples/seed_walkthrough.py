"""The vendor how-to's first example, against the simulator.

Run: python examples/seed_walkthrough.py [TARGET]
"""

from __future__ import annotations

import asyncio
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
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "sim://"))
