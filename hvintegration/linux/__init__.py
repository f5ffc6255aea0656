"""Linux guests: the ``hv_utils`` driver and the ``hv_*`` daemons.

Everything the seed document does by hand inside a Linux VM (``lsmod | grep
hv_utils``, ``ps -ef | grep hv``, ``compgen -c hv_``, ``kill -15``, running
the daemon as root) over ``ssh://``, ``local://`` or the simulated guest
``sim-linux://``.

Example:
    >>> import asyncio
    >>> from hvintegration.linux import LinuxGuest
    >>> async def main():
    ...     async with LinuxGuest.connect("sim-linux://?distro=ubuntu-14.04") as guest:
    ...         status = await guest.status()
    ...     return [(p.pid, p.program) for p in status.processes]
    >>> for pid, program in asyncio.run(main()):
    ...     print(pid, program)
    1286 /usr/lib/linux-tools/3.13.0-32-generic/hv_kvp_daemon
    9333 /usr/lib/linux-tools/3.13.0-32-generic/hv_kvp_daemon
    9365 /usr/lib/linux-tools/3.13.0-32-generic/hv_vss_daemon
"""

from hvintegration.linux.guest import DEFAULT_TIMEOUT, KVP_DIRECTORY, LinuxDaemon, LinuxGuest
from hvintegration.linux.names import DAEMONS, DaemonSpec, match_program, resolve_daemon
from hvintegration.linux.records import (
    DaemonProcess,
    DaemonState,
    DeviceNode,
    DriverState,
    InstalledProgram,
    KvpItem,
    LinuxStatus,
    UnitState,
    VMBusDevice,
)
from hvintegration.linux.report import decode_pool

__all__ = [
    "DAEMONS",
    "DEFAULT_TIMEOUT",
    "KVP_DIRECTORY",
    "DaemonProcess",
    "DaemonSpec",
    "DaemonState",
    "DeviceNode",
    "DriverState",
    "InstalledProgram",
    "KvpItem",
    "LinuxDaemon",
    "LinuxGuest",
    "LinuxStatus",
    "UnitState",
    "VMBusDevice",
    "decode_pool",
    "match_program",
    "resolve_daemon",
]
