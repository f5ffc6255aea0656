"""``LinuxGuest``: the seed's Linux procedure, as an API.

The guest reads its status and KVP pools and runs commands as root; one
daemon's start, stop and restart are :class:`~hvintegration.linux.daemon.LinuxDaemon`
(also importable from here), and the KVP items' checks and encoding are in
:mod:`hvintegration.linux.kvp`.

Every read is one round trip: the whole status (driver, VMBus devices, device
nodes, installed and running daemons, systemd units) comes from one fixed
script. Changes need root: the library uses the login directly when it is
root, else ``sudo -n``; without either it raises
:class:`~hvintegration.errors.PermissionDeniedError` before changing anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hvintegration import catalogue
from hvintegration._connect import Connection, ShellTargetLike, shell_transport_for
from hvintegration._resource import DEFAULT_TIMEOUT, TransportResource
from hvintegration._table import RecordList
from hvintegration.errors import PermissionDeniedError
from hvintegration.linux._shell import UNITS
from hvintegration.linux._shell import sh as _sh
from hvintegration.linux.daemon import LinuxDaemon
from hvintegration.linux.kvp import (
    KVP_DIRECTORY,
    check_pool,
    delete_lines,
    parse_kvp_read,
    parse_kvp_write,
    set_lines,
)
from hvintegration.linux.kvp import kvp_argv as _kvp_argv
from hvintegration.linux.names import DaemonSpec, resolve_daemon
from hvintegration.linux.records import DaemonState, DriverState, KvpItem, LinuxStatus
from hvintegration.linux.report import parse_status
from hvintegration.linux.scripts import STATUS_SCRIPT
from hvintegration.transport.base import CompletedCommand, ShellTransport

# LinuxDaemon and KVP_DIRECTORY live in their own modules and stay importable
# from here, where they have always been.
__all__ = ["DEFAULT_TIMEOUT", "KVP_DIRECTORY", "LinuxDaemon", "LinuxGuest"]


class LinuxGuest(TransportResource[ShellTransport]):
    """A Linux guest reached over ``ssh://``, ``local://`` or the simulator.

    Open one with :meth:`connect`, as an async context manager or with
    ``await``.

    Args:
        transport: A live transport to a POSIX shell; the guest owns it.
        timeout: Seconds each command may take.

    Example:
        >>> import asyncio
        >>> async def main():
        ...     async with LinuxGuest.connect("sim-linux://") as guest:
        ...         state = await guest.daemon("vss").stop()
        ...     return state.running
        >>> asyncio.run(main())
        False
    """

    def __init__(self, transport: ShellTransport, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(transport, timeout=timeout)
        # The login's own uid, from the last status read without sudo. A
        # status that a privileged script printed says uid 0 and must not
        # decide whether the next change needs sudo.
        self._login_uid: int | None = None

    @classmethod
    def connect(
        cls,
        target: ShellTargetLike,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Connection[LinuxGuest]:
        """Connect to a guest.

        Args:
            target: ``ssh://user@host``, ``local://``, ``sim-linux://``,
                target settings, a transport, or a
                :class:`~hvintegration.simulator.linux.SimulatedLinuxGuest`.
            timeout: Seconds each command may take.

        Returns:
            Use with ``async with`` (closes on exit) or ``await`` it for a
            guest you close yourself with :meth:`aclose`.

        Raises:
            InvalidTargetError: The URL is malformed or names no transport.

        Example:
            >>> import asyncio
            >>> async def main():
            ...     guest = await LinuxGuest.connect("sim-linux://web1?distro=rhel-9")
            ...     try:
            ...         return (await guest.driver()).state
            ...     finally:
            ...         await guest.aclose()
            >>> asyncio.run(main())
            'module'
        """
        return Connection(cls(shell_transport_for(target), timeout=timeout))

    async def _run(
        self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None
    ) -> CompletedCommand:
        return await self.transport.run_command(
            argv, input=input, timeout=self.timeout if timeout is None else timeout
        )

    async def status(self) -> LinuxStatus:
        """Driver, VMBus devices, nodes, installed and running daemons. One round trip.

        Returns:
            The guest's status.

        Raises:
            RemoteCommandError: The status script failed.
            ProtocolError: Its report was unreadable.

        Example:
            >>> import asyncio
            >>> async def main():
            ...     async with LinuxGuest.connect("sim-linux://?distro=sles-15") as guest:
            ...         status = await guest.status()
            ...     return status.driver.state, status.daemon("fcopy").program
            >>> asyncio.run(main())
            ('module', '/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon')
        """
        done = await self._run(_sh(STATUS_SCRIPT, *UNITS))
        done.check(target=self.target, operation="linux_status")
        status = parse_status(done.stdout, target=self.target)
        self._login_uid = status.uid
        return status

    async def driver(self) -> DriverState:
        """The ``hv_utils`` driver: built in, module or absent. One round trip."""
        return (await self.status()).driver

    async def daemons(self) -> RecordList[DaemonState]:
        """Every integration daemon's state. One round trip."""
        return RecordList((await self.status()).daemons)

    def daemon(self, name: str | DaemonSpec | catalogue.ServiceSpec) -> LinuxDaemon:
        """One daemon, by any of its names. No I/O.

        Args:
            name: ``hv_kvp_daemon``, ``kvp``, ``hypervkvpd``, a unit name, or
                the catalogue service (``"Key-Value Pair Exchange"``).

        Raises:
            DaemonNotFoundError: No daemon has that name, or the service has
                none (heartbeat, shutdown, time sync).
        """
        return LinuxDaemon(self, resolve_daemon(name))

    async def kvp(self, pool: int | None = None) -> RecordList[KvpItem]:
        """Read the KVP pool files under the daemon's lock. One round trip.

        The pools are read from ``/var/lib/hyperv``, or from
        ``/var/opt/hyperv`` where an old daemon kept them.

        Args:
            pool: One pool (0-4), or every pool when ``None``.

        Returns:
            The items, pool by pool in file order; malformed records are
            items with a ``problem``. An empty list means the pools exist
            and are empty.

        Raises:
            ValueError: ``pool`` is not 0-4.
            NotFoundError: A pool asked for has no file: hv_kvp_daemon has
                never run on the guest.
            PermissionDeniedError: This login may not read a pool asked for.
            RemoteCommandError: The guest has neither python3 nor perl, or
                reading failed.

        Example:
            >>> import asyncio
            >>> async def main():
            ...     async with LinuxGuest.connect("sim-linux://web1") as guest:
            ...         return [(i.key, i.value) for i in await guest.kvp(pool=3)][1]
            >>> asyncio.run(main())
            ('VirtualMachineName', 'web1')
        """
        pools = tuple(range(5)) if pool is None else (check_pool(pool),)
        done = await self._run(_kvp_argv("read"))
        done.check(target=self.target, operation="linux_kvp")
        return RecordList(parse_kvp_read(done.stdout, pools, target=self.target))

    async def set_kvp(self, items: Mapping[str, str]) -> RecordList[KvpItem]:
        """Write guest-to-host items to pool 1 under the daemon's lock.

        Existing keys are replaced in place (in every record of a key that
        appears more than once), new keys appended. All or nothing: on any
        failure pool 1 is byte for byte as before and this raises. Needs
        root (or ``sudo -n``). Two round trips: the account, then the write,
        which reports pool 1 afterwards.

        Args:
            items: Key to value; keys up to 511 and values up to 2,047 UTF-8
                bytes, neither containing NUL.

        Returns:
            Pool 1 afterwards.

        Raises:
            ValueError: A key or value is empty, too long or contains NUL.
            PermissionDeniedError: Neither root nor passwordless sudo.
            RemoteCommandError: The write failed (a full file system, an I/O
                error); the message says that pool 1 is unchanged, or exactly
                what it holds when even restoring it failed.

        Example:
            >>> import asyncio
            >>> async def main():
            ...     async with LinuxGuest.connect("sim-linux://") as guest:
            ...         return await guest.set_kvp({"Role": "web"})
            >>> asyncio.run(main())
            RecordList([
             <KvpItem pool=1 'Role'='web'>
            ])
        """
        lines = set_lines(items)
        return await self._write_kvp(lines)

    async def delete_kvp(self, keys: Sequence[str]) -> RecordList[KvpItem]:
        """Remove guest-to-host items from pool 1 under the daemon's lock.

        Every record of a key goes, all or nothing, as for :meth:`set_kvp`.

        Args:
            keys: The keys; missing keys are ignored.

        Returns:
            Pool 1 afterwards.

        Raises:
            PermissionDeniedError: Neither root nor passwordless sudo.
            RemoteCommandError: The write failed; pool 1 is as before.
        """
        if isinstance(keys, str):
            raise TypeError("keys is a sequence of keys, not one string")
        return await self._write_kvp(delete_lines(keys))

    async def _write_kvp(self, lines: list[str]) -> RecordList[KvpItem]:
        status = await self.status()
        data = ("\n".join(lines) + "\n").encode()
        what = "write KVP pool 1"
        done = await self._privileged(status, _kvp_argv("write"), what, input=data)
        return RecordList(parse_kvp_write(done, target=self.target, operation=what))

    async def _privileged(
        self,
        status: LinuxStatus,
        argv: Sequence[str],
        what: str,
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CompletedCommand:
        """Run as root: directly when logged in as root, else through ``sudo -n``.

        sudo fails before the command runs when it would need a password, so
        a refusal never leaves anything half-done.
        """
        login_uid = status.uid if self._login_uid is None else self._login_uid
        if login_uid == 0:
            done = await self._run(argv, input=input, timeout=timeout)
        else:
            done = await self._run(["sudo", "-n", "--", *argv], input=input, timeout=timeout)
            refused = done.stderr.decode("utf-8", "replace").strip()
            if done.exit_status == 127 and not done.stdout:
                raise PermissionDeniedError(
                    f"{what} needs root: {status.user} is not root and sudo is not installed",
                    remote_message=refused,
                    target=self.target,
                    operation=what,
                )
            if done.exit_status == 1 and not done.stdout and _sudo_refused(refused):
                raise PermissionDeniedError(
                    f"{what} needs root: log in as root or give {status.user} passwordless "
                    f"sudo (sudo -n said: {refused.splitlines()[0]})",
                    remote_message=refused,
                    target=self.target,
                    operation=what,
                )
        return done


# What sudo -n says when it will not run the command (sudo 1.8 and 1.9).
_SUDO_REFUSALS = ("password is required", "not in the sudoers", "is not allowed", "may not run")


def _sudo_refused(stderr: str) -> bool:
    return any(
        line.startswith("sudo:") and any(reason in line for reason in _SUDO_REFUSALS)
        for line in stderr.splitlines()
    )
