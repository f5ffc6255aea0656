"""``LinuxDaemon``: start, stop and restart one integration daemon of a guest.

Where systemd runs the guest and has a unit for the daemon, ``systemctl``;
otherwise signals and a detached start, as the seed document does by hand.
Every change reads the status first and ends with a fresh one (the guest
scripts end with the status report), so a change is two round trips and
returns the state afterwards.

Changes of one daemon on one guest take turns there: each change script
takes the daemon's lock (:data:`LOCK_DIRECTORY`) for its check and its
change, so two starts at once, over two connections or two tasks, start one
instance.

Which unit and program are the daemon's is decided by
:func:`~hvintegration.linux.report.parse_status` (see
:attr:`~hvintegration.linux.records.DaemonState.unit`); this module only acts
on it, and never starts a daemon outside systemd while a unit owns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hvintegration._seconds import check_seconds
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

__all__ = ["LOCK_DIRECTORY", "LOCK_TIMEOUT", "LinuxDaemon"]

LOCK_DIRECTORY = "/run/hvintegration"
"""Where the change scripts keep each daemon's lock on the guest.

A start, stop or restart of one daemon holds that daemon's lock on the guest
for its check and its change (not for the status report after them), so
changes of one daemon from several connections or tasks take turns, and a
start finds an instance another change started a moment before. ``/run`` is
a tmpfs that every boot starts empty, writable by root alone; the script
creates the directory (mode 0755) and refuses one that is not owned by root
or that others could write. With ``flock`` (util-linux, or BusyBox) the lock
is ``NAME.flock``, which the kernel releases when its holder dies, however;
without it, the directory ``NAME.lock`` made by ``mkdir``, holding the
holder's pid and start time, which the next change removes once that
process is gone (see :mod:`hvintegration.linux.scripts`). ``NAME`` is the
daemon's name and the number of the PID namespace the script runs in, e.g.
``hv_kvp_daemon.4026531836``: the check under the lock sees that
namespace's processes only, and a holder's pid means something only there.
"""

LOCK_TIMEOUT = 30.0
"""Seconds a change waits by default for another change of the same daemon.

Longer than a stop with the default ``grace`` (10 s, then up to 3 s after
``SIGKILL``) holds the lock.
"""

# The change scripts' exit status when the wait for the lock ran out
# (EX_TEMPFAIL in sysexits.h); they then write "locked PID PATH".
_LOCKED = 75


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
        self,
        *,
        force: bool = False,
        grace: float = 10.0,
        kill: bool = False,
        lock_timeout: float = LOCK_TIMEOUT,
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
            lock_timeout: Seconds to wait while another change of this
                daemon on the guest holds its lock (:data:`LOCK_DIRECTORY`).
                Under the lock the stop also signals any instance started
                since the status was read.

        Returns:
            The state afterwards.

        Raises:
            ValueError: ``grace`` or ``lock_timeout`` is negative or not finite.
            UnsafeChangeError: A critical service's daemon without ``force``.
            PermissionDeniedError: Neither root nor passwordless sudo;
                nothing was signalled.
            DaemonControlError: Instances outlived ``grace`` (and ``kill``
                was off), systemctl failed, or another change held the
                daemon's lock for more than ``lock_timeout`` seconds
                (nothing was changed; ``pids`` holds the holder's pid when
                known).
        """
        self._check_stop("stop", force=force, grace=grace, lock_timeout=lock_timeout)
        _, state, _ = await self._stop(grace=grace, kill=kill, lock_timeout=lock_timeout)
        return state

    async def _stop(
        self, *, grace: float, kill: bool, lock_timeout: float
    ) -> tuple[LinuxStatus, DaemonState, UnitState | None]:
        """Stop it; returns the status afterwards (a restart reuses it) and the unit before."""
        status, state = await self._state_of()
        owner = state.unit
        what = f"stop {self.spec.name}"
        self._check_complete(status, what)
        if state.unit is not None and state.unit.active_state in ACTIVE_STATES:
            status, _ = await self._unit(
                "stop", state.unit.name, status, what, lock_timeout=lock_timeout
            )
            state = status.daemon(self.spec.name)
        if state.processes:
            items = [f"{p.pid}:{p.start_ticks}" for p in state.processes]
            done = await self.guest._privileged(
                status,
                sh(
                    STOP_SCRIPT,
                    str(round(grace * 10)),
                    "1" if kill else "0",
                    *self._lock_args(lock_timeout),
                    str(len(items)),
                    *items,
                    *_counted(_programs(state)),
                    *_units(owner),
                ),
                what,
                timeout=self.guest.timeout + grace + 5 + lock_timeout,
            )
            self._check_locked(done, what, lock_timeout)
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
        self,
        verb: str,
        unit: str,
        status: LinuxStatus,
        what: str,
        *,
        settle: float = 0.0,
        lock_timeout: float,
    ) -> tuple[LinuxStatus, bytes]:
        """``systemctl VERB UNIT`` under the daemon's lock, then the status, in one round trip."""
        done = await self.guest._privileged(
            status,
            sh(
                UNIT_SCRIPT,
                verb,
                str(max(0, round(settle * 10))),
                *self._lock_args(lock_timeout),
                unit,
                *UNITS,
                unit,
            ),
            what,
            timeout=self.guest.timeout + settle + lock_timeout,
        )
        self._check_locked(done, what, lock_timeout)
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

    async def start(
        self, *, settle: float = 0.5, lock_timeout: float = LOCK_TIMEOUT
    ) -> DaemonState:
        """Start it; a no-op when an instance already runs.

        The start script checks again under the daemon's lock on the guest
        (:data:`LOCK_DIRECTORY`) before it starts anything, so two starts
        at the same moment, over two connections to one guest or two tasks
        on one, start one instance: the second finds the first one's.

        Args:
            settle: Seconds to watch a directly started daemon before
                judging whether it stayed up.
            lock_timeout: Seconds to wait while another change of this
                daemon on the guest holds its lock.

        Returns:
            The state afterwards.

        Raises:
            ValueError: ``lock_timeout`` is negative or not finite.
            DaemonNotFoundError: It is not installed on the guest.
            PermissionDeniedError: Neither root nor passwordless sudo.
            DaemonControlError: It exited at once (the message carries its
                output), systemctl failed, or another change held the
                daemon's lock for more than ``lock_timeout`` seconds
                (nothing was started).
        """
        _check_lock_timeout(lock_timeout)
        check_seconds(settle, "settle", zero=True, target=self.guest.target, operation="start")
        status, state = await self._state_of()
        return await self._start(status, state, settle=settle, lock_timeout=lock_timeout)

    async def _start(
        self,
        status: LinuxStatus,
        state: DaemonState,
        *,
        settle: float,
        lock_timeout: float,
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
            after, stdout = await self._unit(
                "start", unit.name, status, what, settle=settle, lock_timeout=lock_timeout
            )
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
            sh(
                START_SCRIPT,
                str(max(1, round(settle * 10))),
                program,
                *self._lock_args(lock_timeout),
                *_counted(_programs(state)),
                *UNITS,
            ),
            what,
            timeout=self.guest.timeout + settle + lock_timeout,
        )
        self._check_locked(done, what, lock_timeout)
        self._check(done, what)
        # The start script ends with a fresh status: no extra round trip.
        after = parse_status(done.stdout, target=self.guest.target)
        state = after.daemon(self.spec.name)
        already = report_fields(done.stdout, "already")
        if already and not state.running:
            # The check under the lock found an instance the status does
            # not count as the daemon; nothing was started.
            raise DaemonControlError(
                f"{self.spec.name} was not started: under its lock the guest found "
                f"{', '.join(already)} (pid:start) running {program}, which the status "
                "does not count as an instance",
                daemon=self.spec.name,
                pids=[int(i.split(":")[0]) for i in already if i.split(":")[0].isdigit()],
                target=self.guest.target,
                operation=what,
            )
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
        self,
        *,
        force: bool = False,
        grace: float = 10.0,
        kill: bool = False,
        lock_timeout: float = LOCK_TIMEOUT,
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
            lock_timeout: As for :meth:`stop`, for each half. The lock is
                held by each half, not between them: a start from elsewhere
                may come in between, and the start half then finds its
                instance.

        Returns:
            The state afterwards, with new process ids.

        Raises:
            UnsafeChangeError: A critical service's daemon without ``force``.
        """
        self._check_stop("restart", force=force, grace=grace, lock_timeout=lock_timeout)
        # The stop ends with a fresh status; the start needs no other.
        status, state, owner = await self._stop(grace=grace, kill=kill, lock_timeout=lock_timeout)
        return await self._start(
            status,
            state,
            settle=0.5,
            lock_timeout=lock_timeout,
            owner=owner,
            restarting=True,
        )

    def _lock_args(self, lock_timeout: float) -> tuple[str, str, str]:
        """The change scripts' LOCK_DIR LOCK_NAME LOCK_WAIT_TENTHS arguments."""
        return LOCK_DIRECTORY, self.spec.name, str(round(lock_timeout * 10))

    def _check_locked(self, done: CompletedCommand, what: str, lock_timeout: float) -> None:
        """Raise when the wait for the daemon's lock ran out (nothing was changed)."""
        locked = report_fields(done.stdout, "locked")
        if done.exit_status != _LOCKED or not locked:
            return
        holder, path = (*locked, "", "")[:2]
        # A restart's start half comes after its stop half was done.
        outcome = (
            "it was stopped and is not started again"
            if what.startswith("restart ")
            else "nothing was changed"
        )
        raise DaemonControlError(
            f"another change of {self.spec.name} on this guest"
            + (f" (pid {holder})" if holder.isdigit() else "")
            + f" held its lock {path} for more than {lock_timeout:g} s; {outcome}",
            daemon=self.spec.name,
            pids=[int(holder)] if holder.isdigit() else [],
            target=self.guest.target,
            operation=what,
        )

    def _check_stop(self, verb: str, *, force: bool, grace: float, lock_timeout: float) -> None:
        """Refuse a stop (or restart) before anything is sent."""
        check_seconds(grace, "grace", zero=True, target=self.guest.target, operation=verb)
        _check_lock_timeout(lock_timeout)
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


def _check_lock_timeout(lock_timeout: float) -> None:
    check_seconds(lock_timeout, "lock_timeout", zero=True)


def _programs(state: DaemonState) -> list[str]:
    """The daemon's trusted installed programs, by every name the status gave them.

    The change scripts count a root process running one of them as an
    instance when they check again under the lock.
    """
    paths = [p for i in state.installed if i.trusted for p in (i.path, i.real_path)]
    if state.program is not None:
        paths.insert(0, state.program)
    return list(dict.fromkeys(p for p in paths if p.startswith("/")))


def _counted(items: Sequence[str]) -> tuple[str, ...]:
    return (str(len(items)), *items)


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
