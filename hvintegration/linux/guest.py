"""``LinuxGuest`` and ``LinuxDaemon``: the seed's Linux procedure, as an API.

Every read is one round trip: the whole status (driver, VMBus devices, device
nodes, installed and running daemons, systemd units) comes from one fixed
script. Changes need root: the library uses the login directly when it is
root, else ``sudo -n``; without either it raises
:class:`~hvintegration.errors.PermissionDeniedError` before changing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hvintegration import catalogue
from hvintegration._connect import Connection, ShellTargetLike, shell_transport_for
from hvintegration._resource import DEFAULT_TIMEOUT, TransportResource
from hvintegration._table import RecordList
from hvintegration.errors import (
    DaemonControlError,
    DaemonNotFoundError,
    PermissionDeniedError,
    RemoteCommandError,
    UnsafeChangeError,
)
from hvintegration.linux.names import NO_RESTART_UNITS, DaemonSpec, resolve_daemon
from hvintegration.linux.records import DaemonState, DriverState, KvpItem, LinuxStatus
from hvintegration.linux.report import parse_kvp_report, parse_status
from hvintegration.linux.scripts import (
    KVP_PERL,
    KVP_PYTHON,
    KVP_SCRIPT,
    START_SCRIPT,
    STATUS_SCRIPT,
    STOP_SCRIPT,
)
from hvintegration.transport.base import CompletedCommand, ShellTransport

if TYPE_CHECKING:
    pass

__all__ = ["DEFAULT_TIMEOUT", "KVP_DIRECTORY", "LinuxDaemon", "LinuxGuest"]


KVP_DIRECTORY = "/var/lib/hyperv"
"""Where hv_kvp_daemon keeps its pool files."""

_UNITS: tuple[str, ...] = tuple(
    dict.fromkeys(
        unit
        for spec in catalogue.ALL_SERVICES
        if spec.linux is not None
        for unit in spec.linux.units
    )
)
_ACTIVE = ("active", "activating", "reloading", "deactivating")
_KEY_LIMIT = 512 - 1
_VALUE_LIMIT = 2048 - 1


def _sh(script: str, *args: str) -> list[str]:
    # The script is fixed text; "hvintegration" becomes $0, values are $1...
    return ["sh", "-c", script, "hvintegration", *args]


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
        done = await self._run(_sh(STATUS_SCRIPT, *_UNITS))
        done.check(target=self.target, operation="linux_status")
        return parse_status(done.stdout, target=self.target)

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

        Args:
            pool: One pool (0-4), or every pool when ``None``.

        Returns:
            The items, pool by pool in file order; malformed records are
            items with a ``problem``.

        Raises:
            ValueError: ``pool`` is not 0-4.
            RemoteCommandError: The guest has neither python3 nor perl.

        Example:
            >>> import asyncio
            >>> async def main():
            ...     async with LinuxGuest.connect("sim-linux://web1") as guest:
            ...         return [(i.key, i.value) for i in await guest.kvp(pool=3)][1]
            >>> asyncio.run(main())
            ('VirtualMachineName', 'web1')
        """
        pools = tuple(range(5)) if pool is None else (_check_pool(pool),)
        done = await self._run(_kvp_argv("read"))
        done.check(target=self.target, operation="linux_kvp")
        return RecordList(parse_kvp_report(done.stdout, pools, target=self.target))

    async def set_kvp(self, items: dict[str, str]) -> RecordList[KvpItem]:
        """Write guest-to-host items to pool 1 under the daemon's lock.

        Existing keys are replaced in place, new keys appended. Needs root
        (or ``sudo -n``).

        Args:
            items: Key to value; keys up to 511 and values up to 2,047 UTF-8
                bytes, neither containing NUL.

        Returns:
            Pool 1 afterwards.

        Raises:
            ValueError: A key or value is empty, too long or contains NUL.
            PermissionDeniedError: Neither root nor passwordless sudo.

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
        lines = []
        for key, value in items.items():
            lines.append(
                f"set\t{_kvp_bytes(key, _KEY_LIMIT, 'key').hex()}\t"
                f"{_kvp_bytes(value, _VALUE_LIMIT, 'value', empty=True).hex()}"
            )
        return await self._write_kvp(lines)

    async def delete_kvp(self, keys: Sequence[str]) -> RecordList[KvpItem]:
        """Remove guest-to-host items from pool 1 under the daemon's lock.

        Args:
            keys: The keys; missing keys are ignored.

        Returns:
            Pool 1 afterwards.
        """
        if isinstance(keys, str):
            raise TypeError("keys is a sequence of keys, not one string")
        return await self._write_kvp(
            [f"delete\t{_kvp_bytes(key, _KEY_LIMIT, 'key').hex()}\t" for key in keys]
        )

    async def _write_kvp(self, lines: list[str]) -> RecordList[KvpItem]:
        status = await self.status()
        data = ("\n".join(lines) + "\n").encode()
        what = "write KVP pool 1"
        done = await self._privileged(status, _kvp_argv("write"), what, input=data)
        done.check(target=self.target, operation=what)
        return await self.kvp(1)

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
        if status.uid == 0:
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


def _check_pool(pool: int) -> int:
    if isinstance(pool, bool) or not isinstance(pool, int) or not 0 <= pool <= 4:
        raise ValueError(f"a KVP pool is a number from 0 to 4, not {pool!r}")
    return pool


def _kvp_bytes(text: str, limit: int, what: str, *, empty: bool = False) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"a KVP {what} is a str, not {type(text).__name__}")
    data = text.encode("utf-8")
    if (not data and not empty) or b"\0" in data or len(data) > limit:
        raise ValueError(
            f"a KVP {what} must be {'' if empty else 'non-empty '}UTF-8 of at most "
            f"{limit} bytes without NUL"
        )
    return data


def _kvp_argv(mode: str, interpreter: str = "") -> list[str]:
    return _sh(KVP_SCRIPT, mode, KVP_DIRECTORY, KVP_PYTHON, KVP_PERL, interpreter)


class LinuxDaemon:
    """One integration daemon on one guest. It holds no state.

    ``start``, ``stop`` and ``restart`` are idempotent and return the state
    afterwards; stopping the KVP daemon needs ``force=True``. Where systemd
    runs the guest and has a unit for the daemon they use ``systemctl``;
    otherwise ``stop`` sends ``SIGTERM`` to every instance and waits
    (bounded) until they are gone, and ``start`` runs the installed program
    detached, as root.

    Args:
        guest: The guest.
        spec: Which daemon.

    Example:
        >>> import asyncio
        >>> async def main():
        ...     async with LinuxGuest.connect("sim-linux://") as guest:
        ...         kvp = guest.daemon("hv_kvp_daemon")
        ...         before = await kvp.state()
        ...         after = await kvp.restart()
        ...     return before.running, after.running, before.processes != after.processes
        >>> asyncio.run(main())
        (True, True, True)
    """

    def __init__(self, guest: LinuxGuest, spec: DaemonSpec) -> None:
        self.guest = guest
        self.spec = spec

    def __repr__(self) -> str:
        return f"<LinuxDaemon {self.spec.name} on {self.guest.target}>"

    async def state(self) -> DaemonState:
        """Its current state. One round trip."""
        return (await self.guest.status()).daemon(self.spec.name)

    async def _state_of(self) -> tuple[LinuxStatus, DaemonState]:
        status = await self.guest.status()
        return status, status.daemon(self.spec.name)

    async def stop(
        self, *, force: bool = False, grace: float = 10.0, kill: bool = False
    ) -> DaemonState:
        """Stop every instance; a no-op when none runs.

        Args:
            force: Needed to stop the Key-Value Pair Exchange daemon: the
                host learns the guest's IP addresses through it (the
                catalogue marks the service critical). Nothing is sent
                without it.
            grace: Seconds to wait for instances to exit after ``SIGTERM``.
            kill: Send ``SIGKILL`` to instances still running after
                ``grace`` instead of failing.

        Returns:
            The state afterwards.

        Raises:
            UnsafeChangeError: A critical service's daemon without ``force``.
            PermissionDeniedError: Neither root nor passwordless sudo;
                nothing was signalled.
            DaemonControlError: Instances outlived ``grace`` (and ``kill``
                was off), or systemctl failed.
        """
        if grace < 0:
            raise ValueError("grace must not be negative")
        if self.spec.service.critical and not force:
            raise UnsafeChangeError(
                [self.spec.service.name],
                target=self.guest.target,
                operation=f"stop {self.spec.name}",
            )
        status, state = await self._state_of()
        what = f"stop {self.spec.name}"
        if state.unit is not None and state.unit.active_state in _ACTIVE:
            done = await self.guest._privileged(
                status, ["systemctl", "stop", "--", state.unit.name], what
            )
            self._check(done, what)
            status, state = await self._state_of()
        if state.processes:
            items = [f"{p.pid}:{p.start_ticks}" for p in state.processes]
            done = await self.guest._privileged(
                status,
                _sh(
                    STOP_SCRIPT,
                    str(round(grace * 10)),
                    "1" if kill else "0",
                    str(len(items)),
                    *items,
                    *_UNITS,
                ),
                what,
                timeout=self.guest.timeout + grace + 5,
            )
            if done.exit_status not in (0, 3):
                self._check(done, what)
            # The stop script ends with a fresh status: no extra round trip.
            state = parse_status(done.stdout, target=self.guest.target).daemon(self.spec.name)
            if done.exit_status == 3:
                pids = [int(pid) for pid in _fields(done.stdout, "alive") if pid.isdigit()]
                raise DaemonControlError(
                    f"{self.spec.name} (pid {', '.join(map(str, pids))}) still runs "
                    f"{grace:g} s after SIGTERM; stop(kill=True) sends SIGKILL",
                    daemon=self.spec.name,
                    pids=pids,
                    target=self.guest.target,
                    operation=what,
                )
        return state

    async def start(self, *, settle: float = 0.5) -> DaemonState:
        """Start it; a no-op when an instance already runs.

        Args:
            settle: Seconds to watch a directly started daemon before
                judging whether it stayed up.

        Returns:
            The state afterwards.

        Raises:
            DaemonNotFoundError: It is not installed on the guest.
            PermissionDeniedError: Neither root nor passwordless sudo.
            DaemonControlError: It exited at once (the message carries its
                output), or systemctl failed.
        """
        status, state = await self._state_of()
        if state.running:
            return state
        what = f"start {self.spec.name}"
        if state.unit is not None:
            unit = state.unit.name
            done = await self.guest._privileged(status, ["systemctl", "start", "--", unit], what)
            if done.exit_status != 0:
                stderr = done.stderr.decode("utf-8", "replace").strip()
                raise self._start_failed(f"systemctl start {unit} failed", stderr)
            _, state = await self._state_of()
            if not state.running:
                raise self._start_failed(
                    f"systemctl start {state.unit.name if state.unit else ''} left "
                    f"{self.spec.name} not running",
                    "",
                )
            return state
        program = state.program
        if program is None:
            raise DaemonNotFoundError(
                self.spec.name,
                reason=(
                    f"{self.spec.name} is not installed (looked on PATH, /usr/sbin, "
                    f"/usr/lib/hyper-v/bin, /usr/libexec/hypervkvpd and "
                    f"/usr/lib/linux-tools/{status.kernel or '<kernel>'})"
                ),
                target=self.guest.target,
                operation=what,
            )
        done = await self.guest._privileged(
            status,
            _sh(START_SCRIPT, str(max(1, round(settle * 10))), program, *_UNITS),
            what,
            timeout=self.guest.timeout + settle,
        )
        self._check(done, what)
        # The start script ends with a fresh status: no extra round trip.
        state = parse_status(done.stdout, target=self.guest.target).daemon(self.spec.name)
        if not state.running:
            launcher = _fields(done.stdout, "launcher")
            log_hex = _fields(done.stdout, "log")
            log = bytes.fromhex(log_hex[0]).decode("utf-8", "replace").strip() if log_hex else ""
            how = f" with status {launcher[1]}" if launcher[:1] == ["exited"] else ""
            raise self._start_failed(f"{program} exited right after starting{how}", log)
        return state

    async def restart(self, *, grace: float = 10.0, kill: bool = False) -> DaemonState:
        """Stop every instance, wait until they are gone, then start it.

        A stopped daemon is simply started. Always a stop followed by a
        start, never ``systemctl restart``: Fedora's packaging says
        hypervkvpd does not support restarting, and a stop that waits for
        the old process to go is what it needs. Like a Windows guest's
        restart, it needs no ``force``: the service comes back.

        Args:
            grace: As for :meth:`stop`.
            kill: As for :meth:`stop`.

        Returns:
            The state afterwards, with new process ids.
        """
        await self.stop(force=True, grace=grace, kill=kill)
        return await self.start()

    def _check(self, done: CompletedCommand, what: str) -> None:
        try:
            done.check(target=self.guest.target, operation=what)
        except RemoteCommandError as exc:
            raise DaemonControlError(
                exc.message,
                daemon=self.spec.name,
                remote_message=exc.remote_message,
                target=self.guest.target,
                operation=what,
            ) from exc

    def _start_failed(self, message: str, log: str) -> DaemonControlError:
        units = set(self.spec.units) & NO_RESTART_UNITS
        if units:
            message += (
                f" (Fedora's packaging says {', '.join(sorted(units))} does not support "
                "restarting; the driver may accept the daemon again only after a reboot)"
            )
        if log:
            message += f": {log.splitlines()[-1]}"
        return DaemonControlError(
            message,
            daemon=self.spec.name,
            remote_message=log,
            target=self.guest.target,
            operation=f"start {self.spec.name}",
        )


def _fields(stdout: bytes, keyword: str) -> list[str]:
    for line in stdout.decode("utf-8", "replace").splitlines():
        fields = line.split("\t")
        if fields[0] == keyword:
            return fields[1:]
    return []
