"""``LinuxDaemon``: start, stop and restart one integration daemon of a guest.

Where systemd runs the guest and has a unit for the daemon, ``systemctl``;
otherwise signals and a detached start, as the seed document does by hand.
Every change reads the status first and ends with a fresh one (the guest
scripts end with the status report), so a change is two round trips and
returns the state afterwards.

Which unit and program are the daemon's is decided by
:func:`~hvintegration.linux.report.parse_status` (see
:attr:`~hvintegration.linux.records.DaemonState.unit`); this module only acts
on it, and never starts a daemon outside systemd while a unit owns it.
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
from hvintegration.linux.records import DaemonState, LinuxStatus, UnitState
from hvintegration.linux.report import parse_status
from hvintegration.linux.scripts import START_SCRIPT, STOP_SCRIPT, UNIT_SCRIPT
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
        self._check_stop("stop", force=force, grace=grace)
        _, state, _ = await self._stop(grace=grace, kill=kill)
        return state

    async def _stop(
        self, *, grace: float, kill: bool
    ) -> tuple[LinuxStatus, DaemonState, UnitState | None]:
        """Stop it; returns the status afterwards (a restart reuses it) and the unit before."""
        status, state = await self._state_of()
        owner = state.unit
        what = f"stop {self.spec.name}"
        self._check_complete(status, what)
        if state.unit is not None and state.unit.active_state in ACTIVE_STATES:
            status, _ = await self._unit("stop", state.unit.name, status, what)
            state = status.daemon(self.spec.name)
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
                    *_units(owner),
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
        return status, state, owner

    def _check_complete(self, status: LinuxStatus, what: str) -> None:
        """Refuse when the status may have left a running instance out."""
        if status.processes_complete:
            return
        raise DaemonControlError(
            f"cannot tell whether {self.spec.name} runs: the status left out "
            f"{', '.join(status.omitted)} and may have left out an instance; "
            "nothing was changed",
            daemon=self.spec.name,
            target=self.guest.target,
            operation=what,
        )

    async def _unit(
        self, verb: str, unit: str, status: LinuxStatus, what: str, *, settle: float = 0.0
    ) -> tuple[LinuxStatus, bytes]:
        """``systemctl VERB UNIT``, then the status, in one round trip."""
        done = await self.guest._privileged(
            status,
            sh(UNIT_SCRIPT, verb, str(max(0, round(settle * 10))), unit, *UNITS, unit),
            what,
            timeout=self.guest.timeout + settle,
        )
        self._check(done, what)
        after = parse_status(done.stdout, target=self.guest.target)
        rc, _, err_hex = (*report_fields(done.stdout, "systemctl"), "", "")[:3]
        if rc != "0":
            err = _unhex(err_hex)
            raise self._failed(
                f"systemctl {verb} {unit} failed"
                + (f": {err.splitlines()[0]}" if err else f" with status {rc}"),
                err,
                what,
                after,
                unit,
            )
        return after, done.stdout

    async def start(self, *, settle: float = 0.5) -> DaemonState:
        """Start it; a no-op when an instance already runs.

        The check and the start are two steps: two starts of one daemon at
        the same moment, over two connections to one guest, can both find
        it stopped and start two instances (which the daemons tolerate, as
        ``ps -ef | grep hv`` shows on a real guest). Start a daemon from one
        place at a time; a fleet's ``apply`` takes turns on a machine that
        an inventory lists under two names.

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
        self,
        status: LinuxStatus,
        state: DaemonState,
        *,
        settle: float,
        owner: UnitState | None = None,
        restarting: bool = False,
    ) -> DaemonState:
        """Start it, given a status read just before and the unit that ran it, if any."""
        what = f"{'restart' if restarting else 'start'} {self.spec.name}"
        self._check_complete(status, what)
        if state.running:
            return state
        # The unit that ran it before a stop stays its unit, whatever its name.
        unit = state.unit or owner
        if unit is not None:
            after, stdout = await self._unit("start", unit.name, status, what, settle=settle)
            state = after.daemon(self.spec.name)
            if not state.running:
                journal = _unhex((report_fields(stdout, "journal") or [""])[0])
                raise self._failed(
                    f"systemctl start {unit.name} left {self.spec.name} not running",
                    journal,
                    what,
                    after,
                    unit.name,
                    before=status,
                    restarting=restarting,
                )
            return state
        program = state.program
        if program is None:
            untrusted = [i.path for i in state.installed if not i.trusted]
            raise DaemonNotFoundError(
                self.spec.name,
                reason=(
                    f"{self.spec.name} is not installed (looked on PATH, /usr/sbin, "
                    f"/usr/lib/hyper-v/bin, /usr/libexec/hypervkvpd and "
                    f"/usr/lib/linux-tools/{status.kernel or '<kernel>'})"
                    if not untrusted
                    else f"{self.spec.name} is installed only where others than root could "
                    f"have written it ({', '.join(untrusted)}); it is never started"
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
        after = parse_status(done.stdout, target=self.guest.target)
        state = after.daemon(self.spec.name)
        if not state.running:
            launcher = report_fields(done.stdout, "launcher")
            log = _unhex((report_fields(done.stdout, "log") or [""])[0])
            how = f" with status {launcher[1]}" if launcher[:1] == ["exited"] else ""
            raise self._failed(
                f"{program} exited{how} right after starting",
                log,
                what,
                after,
                None,
                before=status,
                restarting=restarting,
            )
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
        self._check_stop("restart", force=force, grace=grace)
        # The stop ends with a fresh status; the start needs no other.
        status, state, owner = await self._stop(grace=grace, kill=kill)
        return await self._start(status, state, settle=0.5, owner=owner, restarting=True)

    def _check_stop(self, verb: str, *, force: bool, grace: float) -> None:
        """Refuse a stop (or restart) before anything is sent."""
        if grace < 0:
            raise ValueError("grace must not be negative")
        if self.spec.service.critical and not force:
            raise UnsafeChangeError(
                [self.spec.service.name],
                target=self.guest.target,
                operation=f"{verb} {self.spec.name}",
            )

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

    def _failed(
        self,
        message: str,
        log: str,
        what: str,
        after: LinuxStatus,
        unit: str | None,
        *,
        before: LinuxStatus | None = None,
        restarting: bool = False,
    ) -> DaemonControlError:
        """An error that leads with the daemon's own words and names the likely cause."""
        lines = [line.strip() for line in log.splitlines() if line.strip()]
        parts = []
        if lines:
            # The daemon's (or the wrapper's) first line says what went wrong;
            # the lines after it are usually hints.
            parts.append(lines[0])
        parts.append(message)
        unit_state = next((u for u in after.units if u.name == unit), None)
        if unit_state is not None:
            if unit_state.condition_result == "no":
                parts.append(f"{unit} did not start: its start conditions (Condition...=) failed")
            elif unit_state.result and unit_state.result != "success":
                status = unit_state.exec_main_status
                parts.append(
                    f"{unit}: result {unit_state.result}"
                    + (f", exit status {status}" if status else "")
                )
        if len(lines) > 1:
            parts.append("last output: " + " | ".join(lines[-5:]))
        missing = _missing_interface(self.spec, before or after)
        if missing:
            parts.append(f"{missing}: is this VM running on Hyper-V?")
        if restarting and self._fedora(after, unit):
            parts.append(
                "Fedora's packaging says hypervkvpd does not support restarting; the "
                "driver may accept the daemon again only after a reboot"
            )
        return DaemonControlError(
            "; ".join(parts),
            daemon=self.spec.name,
            remote_message=log,
            target=self.guest.target,
            operation=what,
        )

    def _fedora(self, status: LinuxStatus, unit: str | None) -> bool:
        # Only Fedora and RHEL's hypervkvpd (unit or program) has the note.
        if unit in NO_RESTART_UNITS:
            return True
        state = status.daemon(self.spec.name)
        return any(
            i.path.rsplit("/", 1)[-1] + ".service" in NO_RESTART_UNITS for i in state.installed[:1]
        )


def _units(owner: UnitState | None) -> tuple[str, ...]:
    return (*UNITS, owner.name) if owner is not None and owner.name not in UNITS else UNITS


def _unhex(text: str) -> str:
    try:
        return bytes.fromhex(text).decode("utf-8", "replace").strip()
    except ValueError:
        return ""


_NODES = {"hv_kvp_daemon": "hv_kvp", "hv_vss_daemon": "hv_vss", "hv_fcopy_uio_daemon": "hv_fcopy"}


def _missing_interface(spec: DaemonSpec, status: LinuxStatus) -> str:
    """What of the kernel's side is missing for this daemon, as a phrase; empty when nothing."""
    node = _NODES.get(spec.name, "")
    missing = []
    has_node = any(n.name == node for n in status.nodes)
    if spec.name == "hv_fcopy_uio_daemon":
        if not has_node and not status.uio_driver:
            missing.append("neither /dev/vmbus/hv_fcopy nor the uio_hv_generic driver is there")
    elif node and not has_node:
        missing.append(f"/dev/vmbus/{node} is missing")
    if not status.driver.loaded:
        missing.append("the hv_utils driver is not loaded")
    return " and ".join(missing)
