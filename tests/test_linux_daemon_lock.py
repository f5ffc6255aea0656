"""Changes of one Linux daemon take turns under a lock on the guest.

Against real sshd and Debian's real hv_kvp_daemon in the guest sandbox
(hvintegration.testing.linux_guest), with the lock directory moved into a
directory the test can reach from outside the namespace (the sandbox's own
/run/hvintegration is private to it).
The mkdir fallback runs the same scripts over the same sshd with a PATH
that has every program of /usr/bin but flock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration.errors import DaemonControlError, HvIntegrationError
from hvintegration.linux import LinuxGuest
from hvintegration.linux import daemon as daemon_module
from hvintegration.linux.scripts import START_SCRIPT, STOP_SCRIPT
from hvintegration.testing import CommandRequest, MockTransport, Request
from hvintegration.testing.linux_guest import (
    GuestLayout,
    GuestSandbox,
    fake_daemon_script,
    sandbox_unavailable_reason,
)
from hvintegration.transport import parse_target
from hvintegration.transport.base import CompletedCommand, ShellTransport
from hvintegration.transport.local import LocalTransport

KVP = "/usr/sbin/hv_kvp_daemon"
VSS = "/usr/lib/hyper-v/bin/hv_vss_daemon"
STUBBORN_VSS = GuestLayout(
    path_daemons=False, programs={VSS: "fake-stubborn:hv_vss_daemon"}
)  # a vss daemon that ignores SIGTERM: a stop of it holds the lock for its grace


@pytest.fixture
def layout() -> GuestLayout:
    return GuestLayout()


@pytest.fixture
def sandbox(layout: GuestLayout, monkeypatch: pytest.MonkeyPatch) -> Iterator[GuestSandbox]:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with GuestSandbox(layout) as running:
        # Seen at the same path inside the namespace and here.
        monkeypatch.setattr(daemon_module, "LOCK_DIRECTORY", str(running.root / "run-lock"))
        yield running


def lock_dir(sandbox: GuestSandbox) -> Path:
    return sandbox.root / "run-lock"


def lock_file(sandbox: GuestSandbox, daemon: str, kind: str) -> Path:
    """The lock of a daemon in the sandbox: one per PID namespace, NAME.NS.flock or .lock."""
    for pid in sandbox.processes():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                ns = os.readlink(f"/proc/{pid}/ns/pid").removeprefix("pid:[").removesuffix("]")
                return lock_dir(sandbox) / f"{daemon}.{ns}.{kind}"
    raise AssertionError("no sshd in the sandbox")


def scripts_running(sandbox: GuestSandbox, header: bytes) -> list[int]:
    """Host pids of the sandbox's shells running the script whose first line starts with header."""
    found = []
    for pid in sandbox.processes():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"sh\0-c\0" + header):
            found.append(pid)
    return found


async def wait_for(predicate: object, what: str, timeout: float = 20.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_two_starts_over_two_connections_start_one_instance(
    sandbox: GuestSandbox,
) -> None:
    lock_dir(sandbox).mkdir(mode=0o755)
    held = lock_file(sandbox, "hv_kvp_daemon", "flock")
    async with LinuxGuest.connect(sandbox.url()) as one, LinuxGuest.connect(sandbox.url()) as two:
        assert not (await one.daemon("kvp").state()).running
        # Both read "not running" and send their start while the lock is
        # held here: they then take it in turn, with nothing of the race left
        # to chance.
        with held.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            starts = [
                asyncio.ensure_future(guest.daemon("kvp").start(lock_timeout=30))
                for guest in (one, two)
            ]
            await wait_for(
                lambda: len(scripts_running(sandbox, b"# hvintegration linux start")) == 2,
                "both start scripts to wait for the lock",
            )
            assert not any(s.done() for s in starts)
            fcntl.flock(handle, fcntl.LOCK_UN)
        first, second = await asyncio.gather(*starts)
        assert first.running
        assert second.running
        assert first.processes == second.processes
        after = await one.daemon("kvp").state()
    assert [p.program for p in after.processes] == [KVP]
    assert after.processes == first.processes


async def test_two_starts_from_two_tasks_on_one_connection(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url("hvsudo")) as guest:
        kvp = guest.daemon("kvp")
        states = await asyncio.gather(kvp.start(), kvp.start())
        assert states[0].processes == states[1].processes
        assert len((await kvp.state()).processes) == 1
        # A restart from elsewhere and a start at once: still one instance.
        await asyncio.gather(kvp.restart(force=True), kvp.start())
        assert len((await kvp.state()).processes) == 1


@pytest.mark.parametrize("layout", [STUBBORN_VSS])
async def test_a_held_lock_gives_a_clear_error_and_a_killed_holder_frees_it(
    sandbox: GuestSandbox,
) -> None:
    async with LinuxGuest.connect(sandbox.url()) as one, LinuxGuest.connect(sandbox.url()) as two:
        vss_one, vss_two = one.daemon("vss"), two.daemon("vss")
        started = await vss_one.start()
        # A stop of a daemon that ignores SIGTERM holds the lock for its grace.
        holding = asyncio.ensure_future(vss_one.stop(grace=60))
        flock = lock_file(sandbox, "hv_vss_daemon", "flock")
        await wait_for(lambda: flock.exists() and flock.read_text().strip(), "the holder")
        holder = int(flock.read_text().split()[0])
        began = time.monotonic()
        with pytest.raises(DaemonControlError) as caught:
            await vss_two.stop(grace=0.5, kill=True, lock_timeout=0.5)
        assert time.monotonic() - began < 15
        message = str(caught.value)
        assert f"another change of hv_vss_daemon on this guest (pid {holder})" in message
        assert f"held its lock {flock} for more than 0.5 s; nothing was changed" in message
        assert caught.value.pids == (holder,)
        assert caught.value.operation == "stop hv_vss_daemon"
        # Nothing was changed: the instance still runs (no SIGKILL was sent).
        assert (await vss_two.state()).processes == started.processes

        # The holder dies as a killed command does: SIGKILL, no trap runs.
        (shell,) = scripts_running(sandbox, b"# hvintegration linux stop")
        os.kill(shell, signal.SIGKILL)
        with pytest.raises(HvIntegrationError):
            await asyncio.wait_for(holding, 20)
        stopped = await vss_two.stop(grace=0.5, kill=True, lock_timeout=10)
        assert not stopped.running


async def test_negative_or_endless_lock_timeouts_are_refused_before_anything_is_sent() -> None:
    async with LinuxGuest.connect("sim-linux://") as guest:
        kvp = guest.daemon("kvp")
        before = await kvp.state()
        for bad in (-1.0, math.inf, math.nan):
            with pytest.raises(ValueError, match="lock_timeout must be a finite number"):
                await kvp.restart(force=True, lock_timeout=bad)
            with pytest.raises(ValueError, match="lock_timeout must be a finite number"):
                await kvp.start(lock_timeout=bad)
            with pytest.raises(ValueError, match="lock_timeout must be a finite number"):
                await kvp.stop(force=True, lock_timeout=bad)
        assert (await kvp.state()).processes == before.processes


async def test_the_simulator_answers_the_check_under_the_lock() -> None:
    async with LinuxGuest.connect("sim-linux://") as guest:
        kvp = guest.daemon("kvp")
        await kvp.stop(force=True)
        states = await asyncio.gather(kvp.start(), kvp.start(), kvp.start())
        assert len({s.processes for s in states}) == 1
        assert len((await kvp.state()).processes) == 1
        await asyncio.gather(kvp.restart(force=True), kvp.start())
        assert len((await kvp.state()).processes) == 1


# The mkdir lock, where the guest has no flock.


def no_flock_path(sandbox: GuestSandbox) -> str:
    """A directory with every program of /usr/bin but flock, for PATH."""
    farm = sandbox.root / "no-flock-bin"
    farm.mkdir(mode=0o755)
    for entry in os.listdir("/usr/bin"):
        if entry != "flock":
            (farm / entry).symlink_to(f"/usr/bin/{entry}")
    return str(farm)


async def run_script(
    guest: LinuxGuest, path: str, script: str, *args: str, timeout: float = 60
) -> CompletedCommand:
    argv = ["env", f"PATH={path}", "sh", "-c", script, "hvintegration", *args]
    return await guest.transport.run_command(argv, timeout=timeout)


def stop_args(
    locks: str, wait_tenths: int, item: str, *, grace_tenths: int, force: bool
) -> list[str]:
    # GRACE FORCE LOCK_DIR LOCK_NAME LOCK_WAIT COUNT PID:START... COUNT PROGRAM... UNIT...
    return [str(grace_tenths), "1" if force else "0", locks, "hv_vss_daemon", str(wait_tenths),
            "1", item, "1", VSS]  # fmt: skip


@pytest.mark.parametrize("layout", [STUBBORN_VSS])
async def test_mkdir_lock_held_stale_and_orphaned(sandbox: GuestSandbox) -> None:
    path = no_flock_path(sandbox)
    locks = str(lock_dir(sandbox))
    lock = lock_file(sandbox, "hv_vss_daemon", "lock")
    async with LinuxGuest.connect(sandbox.url()) as one, LinuxGuest.connect(sandbox.url()) as two:
        started = await one.daemon("vss").start()
        (process,) = started.processes
        item = f"{process.pid}:{process.start_ticks}"
        holding = asyncio.ensure_future(
            run_script(one, path, STOP_SCRIPT, *stop_args(locks, 10, item, grace_tenths=600,
                                                          force=False))
        )  # fmt: skip
        await wait_for(lambda: (lock / "owner").exists(), "the holder's mkdir lock")
        holder = (lock / "owner").read_text().split()[0]

        # Held: the wait runs out with exit status 75 and the holder's pid.
        busy = await run_script(
            two, path, STOP_SCRIPT, *stop_args(locks, 5, item, grace_tenths=5, force=True)
        )
        assert busy.exit_status == 75, busy.stderr
        assert busy.stdout.decode().splitlines() == [f"locked\t{holder}\t{lock}"]
        assert (await two.daemon("vss").state()).processes == started.processes

        # Stale: the holder is killed; its lock stays, and the next change
        # removes it because no process has that pid and start time.
        (shell,) = scripts_running(sandbox, b"# hvintegration linux stop")
        os.kill(shell, signal.SIGKILL)
        await asyncio.wait_for(holding, 20)
        assert (lock / "owner").read_text().split()[0] == holder
        done = await run_script(
            two, path, STOP_SCRIPT, *stop_args(locks, 100, item, grace_tenths=5, force=True)
        )
        assert done.exit_status == 0, done.stderr
        assert "stopped" in done.stdout.decode().splitlines()
        assert not lock.exists()
        assert not (await two.daemon("vss").state()).running

        # Orphaned: a lock directory whose maker died before writing its
        # owner is removed after 2 s; the start then runs.
        lock.mkdir(mode=0o700)
        began = time.monotonic()
        started_again = await run_script(
            two, path, START_SCRIPT, "5", VSS, locks, "hv_vss_daemon", "100", "0"
        )
        assert started_again.exit_status == 0, started_again.stderr
        assert time.monotonic() - began > 1.5
        assert "launcher\trunning" in started_again.stdout.decode().splitlines()
        assert not lock.exists()
        # And a second start under the lock finds the instance: "already".
        again = await run_script(
            two, path, START_SCRIPT, "5", VSS, locks, "hv_vss_daemon", "100", "0"
        )
        assert again.exit_status == 0, again.stderr
        assert again.stdout.decode().splitlines()[0].startswith("already\t")
        assert len((await two.daemon("vss").state()).processes) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the check is about root-owned directories")
@pytest.mark.parametrize("mode", [0o777, 0o775])
async def test_a_lock_directory_others_could_write_is_refused(tmp_path: Path, mode: int) -> None:
    program = tmp_path / "bin" / "hv_kvp_daemon"
    program.parent.mkdir(mode=0o755)
    marker = tmp_path / "ran"
    program.write_text(
        fake_daemon_script("hv_kvp_daemon", node=None).replace("\n", f"\ntouch {marker}\n", 1)
    )
    program.chmod(0o755)
    os.chmod(tmp_path, 0o755)
    locks = tmp_path / "locks"
    locks.mkdir()
    locks.chmod(mode)
    argv = ["sh", "-c", START_SCRIPT, "hvintegration", "1", str(program), str(locks),
            "hv_kvp_daemon", "10", "0"]  # fmt: skip
    async with LocalTransport() as local:
        done = await local.run_command(argv, timeout=30)
    assert done.exit_status == 78
    assert b"owned by root and writable by no one else" in done.stderr
    assert not marker.exists()
    assert not list(locks.iterdir())


async def test_a_restart_whose_start_half_finds_the_lock_held_says_it_stopped(
    sandbox: GuestSandbox,
) -> None:
    inner = parse_target(sandbox.url()).open()
    assert isinstance(inner, ShellTransport)
    held = lock_file(sandbox, "hv_kvp_daemon", "flock")
    armed = False
    with contextlib.ExitStack() as stack:

        async def forward(request: Request) -> CompletedCommand:
            assert isinstance(request, CommandRequest)
            if armed and START_SCRIPT in request.argv:
                # Another change takes the lock between the two halves.
                handle = stack.enter_context(held.open("a"))
                fcntl.flock(handle, fcntl.LOCK_EX)
            return await inner.run_command(
                request.argv, input=request.input, timeout=request.timeout
            )

        forwarding = MockTransport(forward, target=inner.target)
        async with inner, LinuxGuest.connect(forwarding) as guest:
            kvp = guest.daemon("kvp")
            assert (await kvp.start()).running
            armed = True
            with pytest.raises(DaemonControlError) as caught:
                await kvp.restart(force=True, lock_timeout=0.3)
            assert str(caught.value).startswith(
                f"another change of hv_kvp_daemon on this guest held its lock {held} "
                "for more than 0.3 s; it was stopped and is not started again"
            )
            assert caught.value.operation == "restart hv_kvp_daemon"
            assert not (await kvp.state()).running


async def test_a_stop_also_stops_an_instance_started_after_its_status(
    sandbox: GuestSandbox,
) -> None:
    inner = parse_target(sandbox.url()).open()
    assert isinstance(inner, ShellTransport)
    armed = False

    async def forward(request: Request) -> CompletedCommand:
        assert isinstance(request, CommandRequest)
        if armed and STOP_SCRIPT in request.argv:
            # Another instance comes up after the status the stop read, as
            # one started by hand (it forks and detaches) would.
            (await inner.run_command([KVP], timeout=10)).check()
        return await inner.run_command(request.argv, input=request.input, timeout=request.timeout)

    forwarding = MockTransport(forward, target=inner.target)
    async with inner, LinuxGuest.connect(forwarding) as guest:
        kvp = guest.daemon("kvp")
        assert len((await kvp.start()).processes) == 1
        armed = True
        stopped = await kvp.stop(force=True)
        assert not stopped.running
        armed = False
        assert not (await kvp.state()).processes


async def test_two_starts_at_once_under_the_mkdir_lock_start_one_instance(
    sandbox: GuestSandbox,
) -> None:
    path = no_flock_path(sandbox)
    locks = str(lock_dir(sandbox))
    args = ("5", KVP, locks, "hv_kvp_daemon", "100", "0")
    async with LinuxGuest.connect(sandbox.url()) as one, LinuxGuest.connect(sandbox.url()) as two:
        done = await asyncio.gather(
            run_script(one, path, START_SCRIPT, *args), run_script(two, path, START_SCRIPT, *args)
        )
        assert [d.exit_status for d in done] == [0, 0], [d.stderr for d in done]
        firsts = sorted(d.stdout.decode().splitlines()[0].split("\t")[0] for d in done)
        assert firsts == ["already", "launcher"]
        assert len((await one.daemon("kvp").state()).processes) == 1
    assert not lock_file(sandbox, "hv_kvp_daemon", "lock").exists()


def test_the_default_lock_directory_is_the_guests_own() -> None:
    # The sandbox gives the guest its own /run/hvintegration, so daemon
    # changes in it leave the machine's /run as they found it.
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    machine = Path(daemon_module.LOCK_DIRECTORY)
    before = sorted(p.name for p in machine.iterdir()) if machine.exists() else None

    async def restart() -> None:
        async with LinuxGuest.connect(sandbox.url()) as guest:
            await guest.daemon("hv_kvp_daemon").restart(force=True)
            assert (await guest.daemon("hv_kvp_daemon").state()).running

    with GuestSandbox(GuestLayout()) as sandbox:
        asyncio.run(restart())
        inside = sandbox.root / "run-hvintegration"
        assert any(inside.iterdir()), "the guest's change took no lock in its own /run"
    after = sorted(p.name for p in machine.iterdir()) if machine.exists() else None
    assert after == before
