"""Windows guests: the ``vmic*`` services, reached directly or by PowerShell Direct.

Example:
    >>> import asyncio
    >>> from hvintegration import HyperVHost
    >>> from hvintegration.windows import Credential, WindowsGuest
    >>> async def main():
    ...     async with HyperVHost.connect("sim://") as host:
    ...         guest = WindowsGuest.direct(host, "demovm",
    ...                                     Credential("Administrator", "hvintegration"))
    ...         state = await guest.service("vmictimesync").stop()
    ...         return state.status
    >>> asyncio.run(main())
    'Stopped'
"""

from hvintegration.windows.direct import Credential, PowerShellDirectTransport
from hvintegration.windows.guest import GuestService, WindowsGuest
from hvintegration.windows.records import GuestServiceState

__all__ = [
    "Credential",
    "GuestService",
    "GuestServiceState",
    "PowerShellDirectTransport",
    "WindowsGuest",
]
