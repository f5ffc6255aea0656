"""``LinuxDaemon``: start, stop and restart one integration daemon of a guest.

Where systemd runs the guest and has a unit for the daemon, ``systemctl``;
otherwise signals and a detached start, as the seed document does by hand.
Every change reads the status first and ends with a fresh one, so a change is
two round trips (three with systemd) and returns the state afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hvintegration.errors import (
    DaemonControlError,
    DaemonNotFoundError,
    RemoteCommandError,
    UnsafeChangeError,
)
from hvintegration.linux._shell import ACTIVE_STATES, UNITS, report_fields, sh
from hvintegration.linux.names import NO_RESTART_UNITS, DaemonSpec
from hvintegration.linux.records import DaemonState, LinuxStatus
from hvintegration.linux.report import parse_status
from hvintegration.linux.scripts import START_SCRIPT, STOP_SCRIPT
from hvintegration.transport.base import CompletedCommand

__all__ = ["LinuxDaemon"]


class LinuxGuestLike(Protocol):
    """What a daemon needs of its guest (:class:`~hvintegration.linux.LinuxGuest`).

    Spelled out here so that this module need not import the guest's, which
    imports this one.
    """

    timeout: float

    @property
    def target(self) -> str:
        """The guest's URL."""
        ...

    async def status(self) -> LinuxStatus:
        """The guest's whole status. One round trip."""
        ...

    async def _privileged(
        self,
        status: LinuxStatus,
        argv: Sequence[str],
        what: str,
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> CompletedCommand: ...


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
        >>> from hvintegration.linux import LinuxGuest
        >>> async def main():
        ...     async with LinuxGuest.connect("sim-linux://") as guest:
        ...         kvp = guest.daemon("hv_kvp_daemon")
        ...         before = await kvp.state()
        ...         after = await kvp.restart(force=True)
        ...     return before.running, after.running, before.processes != after.processes
        >>> asyncio.run(main())
        (True, True, True)
    """

    def __init__(self, guest: LinuxGuestLike, spec: DaemonSpec) -> None:
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
        _, state = await self._stop(grace=grace, kill=kill)
        return state

    async def _stop(self, *, grace: float, kill: bool) -> tuple[LinuxStatus, DaemonState]:
        """Stop it; returns the guest's status afterwards, which a restart reuses."""
        status, state = await self._state_of()
        what = f"stop {self.spec.name}"
        if state.unit is not None and state.unit.active_state in ACTIVE_STATES:
            done = await self.guest._privileged(
                status, ["systemctl", "stop", "--", state.unit.name], what
            )
            self._check(done, what)
            status, state = await self._state_of()
        if state.processes:
            items = [f"{p.pid}:{p.start_ticks}" for p in state.processes]
            done = await self.guest._privileged(
                status,
                sh(
                    STOP_SCRIPT,
                    str(round(grace * 10)),
                    "1" if kill else "0",
                    str(len(items)),
                    *items,
                    *UNITS,
                ),
                what,
                timeout=self.guest.timeout + grace + 5,
            )
            if done.exit_status not in (0, 3):
                self._check(done, what)
            # The stop script ends with a fresh status: no extra round trip.
            status = parse_status(done.stdout, target=self.guest.target)
            state = status.daemon(self.spec.name)
            if done.exit_status == 3:
                pids = [int(pid) for pid in report_fields(done.stdout, "alive") if pid.isdigit()]
                raise DaemonControlError(
                    f"{self.spec.name} (pid {', '.join(map(str, pids))}) still runs "
                    f"{grace:g} s after SIGTERM; stop(kill=True) sends SIGKILL",
                    daemon=self.spec.name,
                    pids=pids,
                    target=self.guest.target,
                    operation=what,
                )
        return status, state

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
        return await self._start(status, state, settle=settle)

    async def _start(
        self, status: LinuxStatus, state: DaemonState, *, settle: float
    ) -> DaemonState:
        """Start it, given a status read just before."""
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
            sh(START_SCRIPT, str(max(1, round(settle * 10))), program, *UNITS),
            what,
            timeout=self.guest.timeout + settle,
        )
        self._check(done, what)
        # The start script ends with a fresh status: no extra round trip.
        state = parse_status(done.stdout, target=self.guest.target).daemon(self.spec.name)
        if not state.running:
            launcher = report_fields(done.stdout, "launcher")
            log_hex = report_fields(done.stdout, "log")
            log = bytes.fromhex(log_hex[0]).decode("utf-8", "replace").strip() if log_hex else ""
            how = f" with status {launcher[1]}" if launcher[:1] == ["exited"] else ""
            raise self._start_failed(f"{program} exited right after starting{how}", log)
        return state

    async def restart(
        self, *, force: bool = False, grace: float = 10.0, kill: bool = False
    ) -> DaemonState:
        """Stop every instance, wait until they are gone, then start it.

        A stopped daemon is simply started. Always a stop followed by a
        start, never ``systemctl restart``: Fedora's packaging says
        hypervkvpd does not support restarting, and a stop that waits for
        the old process to go is what it needs.

        Args:
            force: Needed for the Key-Value Pair Exchange daemon, as for
                :meth:`stop`: when the start half fails (Red Hat's and
                Fedora's hypervkvpd may not come back until a reboot) the
                daemon stays stopped. Nothing is sent without it.
            grace: As for :meth:`stop`.
            kill: As for :meth:`stop`.

        Returns:
            The state afterwards, with new process ids.

        Raises:
            UnsafeChangeError: A critical service's daemon without ``force``.
        """
        if grace < 0:
            raise ValueError("grace must not be negative")
        if self.spec.service.critical and not force:
            raise UnsafeChangeError(
                [self.spec.service.name],
                target=self.guest.target,
                operation=f"restart {self.spec.name}",
            )
        # The stop ends with a fresh status; the start needs no other.
        status, state = await self._stop(grace=grace, kill=kill)
        return await self._start(status, state, settle=0.5)

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
