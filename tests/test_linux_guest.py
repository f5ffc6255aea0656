"""LinuxGuest against real sshd and Debian's real hyperv-daemons, in a guest sandbox.

Each test gets its own sandbox (see hvintegration.testing.linux_guest): sshd
on loopback inside a private mount namespace with a fake /sys/bus/vmbus, a
/dev/vmbus whose nodes let the real hv_kvp_daemon and hv_vss_daemon run, and
users with and without passwordless sudo.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration.errors import (
    DaemonControlError,
    DaemonNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    TransportError,
)
from hvintegration.linux import LinuxGuest
from hvintegration.linux.guest import _kvp_argv
from hvintegration.linux.kvp import KVP_DIRECTORIES
from hvintegration.testing import CommandRequest, MockTransport, Request
from hvintegration.testing.linux_guest import (
    GuestLayout,
    GuestSandbox,
    sandbox_unavailable_reason,
)
from hvintegration.transport import parse_target
from hvintegration.transport.base import CompletedCommand, ShellTransport

KVP = "/usr/sbin/hv_kvp_daemon"
VSS = "/usr/sbin/hv_vss_daemon"


def record(key: bytes, value: bytes) -> bytes:
    return key.ljust(512, b"\0") + value.ljust(2048, b"\0")


@pytest.fixture
def layout() -> GuestLayout:
    return GuestLayout()


@pytest.fixture
def sandbox(layout: GuestLayout) -> Iterator[GuestSandbox]:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with GuestSandbox(layout) as running:
        yield running
    # Nothing outlives the sandbox: no sshd, no daemon.


async def test_full_status_is_one_round_trip(sandbox: GuestSandbox) -> None:
    inner = parse_target(sandbox.url()).open()
    assert isinstance(inner, ShellTransport)

    async def forward(request: Request) -> CompletedCommand:
        assert isinstance(request, CommandRequest)
        return await inner.run_command(request.argv, input=request.input, timeout=request.timeout)

    counting = MockTransport(forward, target=inner.target)
    async with inner, LinuxGuest.connect(counting) as guest:
        status = await guest.status()
    assert len(counting.requests) == 1
    assert (status.uid, status.user, status.systemd) == (0, "root", False)
    assert (status.driver.state, status.driver.bound, status.driver.size) == ("module", True, 20480)
    assert status.driver.source == "sysfs"
    services = {d.service.name for d in status.devices if d.service}
    assert services == {
        "Guest Service Interface", "Heartbeat", "Key-Value Pair Exchange",
        "Shutdown", "Time Synchronization", "VSS",
    }  # fmt: skip
    assert {(n.name, n.kind) for n in status.nodes} == {
        ("hv_kvp", "fifo"), ("hv_vss", "char"), ("hv_fcopy", "fifo"),
    }  # fmt: skip
    on_path = {p.path for p in status.installed if p.on_path and p.daemon}
    assert {KVP, VSS, "/usr/sbin/hv_fcopy_daemon"} <= on_path
    assert not status.processes
    assert [d.name for d in status.daemons] == ["hv_fcopy_daemon", "hv_kvp_daemon", "hv_vss_daemon"]


async def test_start_stop_restart_the_real_daemons(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        for name in ("kvp", "hv_vss_daemon", "Guest Service Interface"):
            daemon = guest.daemon(name)
            started = await daemon.start()
            assert started.running, name
            assert [p.user for p in started.processes] == ["root"]
            again = await daemon.start()
            assert again.processes == started.processes  # start of a running one: no-op
            restarted = await daemon.restart(force=True)
            assert restarted.running
            assert {p.pid for p in restarted.processes}.isdisjoint(p.pid for p in started.processes)
            assert not (await daemon.stop(force=True)).running
            # Stop of a stopped one: a no-op.
            assert not (await daemon.stop(force=True)).running
    # The real hv_kvp_daemon created its real pool files.
    assert sorted(p.name for p in sandbox.kvp_dir.iterdir()) == [f".kvp_pool_{n}" for n in range(5)]


async def test_two_instances_are_listed_and_both_stopped(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        await guest.daemon("kvp").start()
        # A second instance, started by hand as in the seed document.
        (await guest.transport.run_command([KVP], timeout=10)).check()
        state = await guest.daemon("kvp").state()
        assert len(state.processes) == 2
        # The library starts it in the foreground (-n); by hand it forked.
        assert sorted(p.args for p in state.processes) == [(KVP,), (KVP, "-n")]
        assert all(p.program == KVP for p in state.processes)
        assert all(p.started is not None and p.start_ticks for p in state.processes)
        assert not (await guest.daemon("kvp").stop(force=True)).running


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            path_daemons=False,
            programs={
                f"/usr/lib/linux-tools/{platform.release()}/hv_kvp_daemon": KVP,
                "/opt/hyperv/6.1.0/hv_vss_daemon-6.1.0": VSS,
            },
        )
    ],
)
async def test_daemons_in_versioned_paths(sandbox: GuestSandbox) -> None:
    tools = f"/usr/lib/linux-tools/{platform.release()}/hv_kvp_daemon"
    versioned = "/opt/hyperv/6.1.0/hv_vss_daemon-6.1.0"
    async with LinuxGuest.connect(sandbox.url()) as guest:
        status = await guest.status()
        kvp = status.daemon("kvp")
        assert [(p.path, p.on_path) for p in kvp.installed] == [(tools, False)]
        started = await guest.daemon("kvp").start()
        assert [p.program for p in started.processes] == [tools]
        (await guest.transport.run_command([versioned], timeout=10)).check()
        vss = await guest.daemon("vss").state()
        assert [p.program for p in vss.processes] == [versioned]
        assert vss.processes[0].exe.endswith("hv_vss_daemon-6.1.0")
        assert not (await guest.daemon("vss").stop()).running


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            path_daemons=False,
            # A kernel of 6.10 or later: file copy through the uio driver.
            fcopy_node=False,
            uio=True,
            programs={
                "/usr/lib/hyper-v/bin/hv_kvp_daemon": KVP,
                "/usr/lib/hyper-v/bin/hv_vss_daemon": VSS,
                "/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon": "fake:hv_fcopy_uio_daemon",
            },
        )
    ],
)
async def test_daemons_only_in_usr_lib_hyper_v_bin(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        status = await guest.status()
        assert not any(p.on_path for p in status.installed if p.daemon)
        fcopy = status.daemon("fcopy")
        assert fcopy.name == "hv_fcopy_uio_daemon"
        assert fcopy.program == "/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon"
        for name in ("kvp", "vss", "fcopy"):
            state = await guest.daemon(name).start()
            assert state.processes[0].program.startswith("/usr/lib/hyper-v/bin/"), state
        assert len((await guest.status()).processes) == 3


@pytest.mark.parametrize("layout", [GuestLayout(path_daemons=False)])
async def test_no_daemons_installed(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        status = await guest.status()
        assert not [p for p in status.installed if p.daemon]
        assert all(d.program is None for d in status.daemons)
        assert not (await guest.daemon("kvp").stop(force=True)).running
        with pytest.raises(DaemonNotFoundError, match="not installed"):
            await guest.daemon("kvp").start()


@pytest.mark.parametrize(
    ("layout", "state", "bound"),
    [
        (GuestLayout(driver="module"), "module", True),
        (GuestLayout(driver="built-in"), "built-in", True),
        (GuestLayout(driver="absent"), "absent", False),
    ],
)
async def test_driver_built_in_module_or_absent(
    sandbox: GuestSandbox, state: str, bound: bool
) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        driver = await guest.driver()
        status = await guest.status()
    assert (driver.state, driver.bound, driver.loaded) == (state, bound, state != "absent")
    assert {d.driver for d in status.devices} == {"hv_utils" if bound else ""}


@pytest.mark.parametrize("layout", [GuestLayout(systemd=True)])
async def test_systemd_guest_uses_the_real_unit_files(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url(sandbox.sudo_user)) as guest:
        status = await guest.status()
        assert status.systemd
        units = {d.name: d.unit.name if d.unit else None for d in status.daemons}
        assert units == {
            "hv_kvp_daemon": "hv-kvp-daemon.service",
            "hv_vss_daemon": "hv-vss-daemon.service",
            "hv_fcopy_daemon": "hv-fcopy-daemon.service",
        }
        started = await guest.daemon("kvp").start()
        assert started.unit is not None
        assert started.unit.active_state == "active"
        # Started by the unit: ExecStart=/usr/sbin/hv_kvp_daemon -n.
        assert [(p.pid, p.args) for p in started.processes] == [
            (started.unit.main_pid, (KVP, "-n"))
        ]
        # An instance started by hand beside the unit is stopped too.
        done = await guest.transport.run_command(["sudo", "-n", KVP], timeout=10)
        done.check()
        assert len((await guest.daemon("kvp").state()).processes) == 2
        stopped = await guest.daemon("kvp").stop(force=True)
        assert not stopped.running
        assert stopped.unit is not None
        assert stopped.unit.active_state == "inactive"
        assert (await guest.daemon("vss").restart()).unit.active_state == "active"  # type: ignore[union-attr]


async def test_non_root_user_with_passwordless_sudo(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url(sandbox.sudo_user)) as guest:
        state = await guest.daemon("kvp").start()
        assert state.running
        status = await guest.status()
        assert status.user == sandbox.sudo_user
        assert status.uid != 0
        # Not root: /proc/PID/exe of a root process is unreadable, the
        # command line still names the program.
        assert [(p.user, p.program, p.exe) for p in status.processes] == [("root", KVP, "")]
        items = await guest.set_kvp({"Owner": "sudo user"})
        assert [(i.key, i.value) for i in items] == [("Owner", "sudo user")]
        assert not (await guest.daemon("kvp").stop(force=True)).running


async def test_non_root_user_without_sudo_changes_nothing(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as root:
        await root.daemon("kvp").start()
        async with LinuxGuest.connect(sandbox.url(sandbox.plain_user)) as guest:
            with pytest.raises(PermissionDeniedError) as caught:
                await guest.daemon("kvp").stop(force=True)
            assert "needs root" in str(caught.value)
            assert sandbox.plain_user in str(caught.value)
            assert "password is required" in str(caught.value)
            with pytest.raises(PermissionDeniedError):
                await guest.daemon("vss").start()
            with pytest.raises(PermissionDeniedError):
                await guest.set_kvp({"a": "b"})
            # Reading needs no privilege; a no-op needs none either.
            assert (await guest.daemon("fcopy").stop()).running is False
            status = await guest.status()
        assert [d.name for d in status.daemons if d.running] == ["hv_kvp_daemon"]
        assert not (sandbox.kvp_dir / ".kvp_pool_1").read_bytes()


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            path_daemons=False,
            programs={"/usr/lib/hyper-v/bin/hv_vss_daemon": "fake-stubborn:hv_vss_daemon"},
        )
    ],
)
async def test_a_daemon_that_ignores_sigterm(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        started = await guest.daemon("vss").start()
        pid = started.processes[0].pid
        with pytest.raises(DaemonControlError) as caught:
            await guest.daemon("vss").stop(grace=0.5)
        assert caught.value.pids == (pid,)
        assert "kill=True" in str(caught.value)
        assert (await guest.daemon("vss").state()).running
        assert not (await guest.daemon("vss").stop(grace=0.5, kill=True)).running


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            path_daemons=False,
            programs={"/usr/lib/hyper-v/bin/hv_vss_daemon": "fake-stubborn:hv_vss_daemon"},
        )
    ],
)
async def test_sshd_going_away_mid_command(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        await guest.daemon("vss").start()
        stopping = asyncio.ensure_future(guest.daemon("vss").stop(grace=30))
        await asyncio.sleep(1.0)
        assert not stopping.done()
        sandbox.kill_sshd()
        with pytest.raises(TransportError):
            await asyncio.wait_for(stopping, 20)


async def test_a_daemon_that_exits_at_once_is_reported(sandbox: GuestSandbox) -> None:
    # Without /dev/vmbus/hv_vss the real hv_vss_daemon exits right away.
    async with LinuxGuest.connect(sandbox.url()) as guest:
        (await guest.transport.run_command(["rm", "/dev/vmbus/hv_vss"], timeout=10)).check()
        with pytest.raises(DaemonControlError, match="exited with status 1 right after starting"):
            await guest.daemon("vss").start()


POOLS = {
    0: b"",
    1: record(b"Existing", b"kept"),
    2: record(b"k" * 512, b"v" * 2048) * 3,
    3: record(b"VirtualMachineName", b"demovm") + record("Schlüssel".encode(), "値".encode()),
    4: record(b"\xff\xfebad", b"ok") + record(b"ok", b"\xc3") + record(b"cut", b"x")[:700],
}


@pytest.mark.parametrize("layout", [GuestLayout(pools=POOLS)])
async def test_kvp_pools_empty_full_truncated_and_not_utf8(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        items = await guest.kvp()
        pool3 = await guest.kvp(pool=3)
    assert [(i.key, i.value) for i in pool3] == [
        ("VirtualMachineName", "demovm"),
        ("Schlüssel", "値"),
    ]
    by_pool: dict[int, list[object]] = {}
    for item in items:
        by_pool.setdefault(item.pool, []).append(item)
    assert 0 not in by_pool
    assert [(i.key, i.value, i.ok) for i in by_pool[2]] == [("k" * 512, "v" * 2048, True)] * 3  # type: ignore[attr-defined]
    problems = [i.problem for i in by_pool[4]]  # type: ignore[attr-defined]
    assert problems == ["key is not UTF-8", "value is not UTF-8", "truncated record of 700 bytes"]


@pytest.mark.parametrize("layout", [GuestLayout(pools={1: record(b"Existing", b"old")})])
async def test_kvp_write_waits_for_the_daemons_lock(sandbox: GuestSandbox) -> None:
    hostile = "$(touch /tmp/hvintegration-pwned)'\";"
    pool1 = sandbox.kvp_dir / ".kvp_pool_1"
    async with LinuxGuest.connect(sandbox.url()) as guest:
        with pool1.open("r+b") as held:
            # The same fcntl record lock hv_kvp_daemon takes, held from outside.
            fcntl.lockf(held, fcntl.LOCK_EX)
            writing = asyncio.ensure_future(guest.set_kvp({"Existing": "new", hostile: "x"}))
            await asyncio.sleep(1.0)
            assert not writing.done()
            fcntl.lockf(held, fcntl.LOCK_UN)
        items = await asyncio.wait_for(writing, 20)
        assert [(i.key, i.value) for i in items] == [("Existing", "new"), (hostile, "x")]
        after = await guest.delete_kvp(["Existing"])
        assert [i.key for i in after] == [hostile]
        # The perl path takes the same lock and writes the same format.
        done = await guest.transport.run_command(
            _kvp_argv("write", "perl"),
            input=f"set\t{b'perl'.hex()}\t{b'yes'.hex()}\n".encode(),
            timeout=20,
        )
        done.check()
        perl_read = await guest.transport.run_command(_kvp_argv("read", "perl"), timeout=20)
        assert b"pool\t1\tdata\t" in perl_read.stdout
        assert [(i.key, i.value) for i in await guest.kvp(1)] == [(hostile, "x"), ("perl", "yes")]
        # The guest's /tmp is its own: look there.
        pwned = ["test", "-e", "/tmp/hvintegration-pwned"]
        assert (await guest.transport.run_command(pwned, timeout=10)).exit_status == 1
    assert len(pool1.read_bytes()) == 2 * 2560


@pytest.mark.skipif(not os.access(KVP, os.X_OK), reason="hyperv-daemons is not installed")
async def test_local_transport_reads_this_machine() -> None:
    # Read-only: whatever this machine is, the status matches its sysfs.
    bound = Path("/sys/bus/vmbus/drivers/hv_utils").is_dir()  # noqa: ASYNC240
    # A machine whose hv_kvp_daemon never ran has no pool files: an error,
    # not an empty list.
    pools = any(Path(d, ".kvp_pool_0").exists() for d in KVP_DIRECTORIES)  # noqa: ASYNC240
    async with LinuxGuest.connect("local://") as guest:
        status = await guest.status()
        if pools:
            assert isinstance(await guest.kvp(), tuple)
        else:
            with pytest.raises(NotFoundError, match="has it ever run"):
                await guest.kvp()
    assert status.driver.bound == bound
    assert KVP in {p.real_path for p in status.installed}
    assert status.uid == os.getuid()
