"""What keeps a Linux guest's status cheap under load, against real peers.

* The status script leaves other runs of the library's own scripts out of
  its candidates: they name units such as ``hypervkvpd.service`` in their
  arguments, and with many calls at once each run would otherwise read every
  other one. A process with the same arguments that is not one of the
  scripts is still read, so the test can fail.
* A real ``sshd`` with a low ``MaxStartups`` drops connections that are
  still logging in; the library tries again within its connect timeout, and
  when the server keeps dropping them, says so quickly, naming
  ``MaxStartups``.

No test here asserts a wall-clock time; ``benchmarks/linux_status.py``
measures the speed.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
import urllib.parse

import pytest

from hvintegration.errors import TransportError
from hvintegration.linux import LinuxGuest
from hvintegration.linux._shell import UNITS, sh
from hvintegration.linux.scripts import STATUS_SCRIPT
from hvintegration.testing.linux_guest import GuestSandbox, sandbox_unavailable_reason
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason

needs_sandbox = pytest.mark.skipif(
    sandbox_unavailable_reason() is not None, reason=str(sandbox_unavailable_reason())
)
needs_sshd = pytest.mark.skipif(
    sshd_unavailable_reason() is not None, reason=str(sshd_unavailable_reason())
)


def _proc_pids(stdout: bytes) -> set[int]:
    pids = set()
    for line in stdout.decode().splitlines():
        fields = line.split("\t")
        if fields[0] == "proc":
            pids.add(int(fields[1]))
    return pids


@needs_sandbox
async def test_status_leaves_out_other_runs_of_its_own_scripts() -> None:
    # Two long-lived shells with the unit names as arguments, as a status
    # call running at the same time has them: one whose program is one of
    # the library's scripts (its first line), one whose program is not.
    ours = "# hvintegration linux status v2; arguments: systemd unit names\nsleep 60\n"
    other = "# some other program\nsleep 60\n"
    spawn = (
        'setsid sh -c "$1" hvintegration "$3" </dev/null >/dev/null 2>&1 & echo $!; '
        'setsid sh -c "$2" hvintegration "$3" </dev/null >/dev/null 2>&1 & echo $!'
    )
    with GuestSandbox() as sandbox:
        async with LinuxGuest.connect(sandbox.url()) as guest:
            started = await guest.transport.run_command(
                ["sh", "-c", spawn, "spawn", ours, other, "hypervkvpd.service"], timeout=30
            )
            started.check()
            ours_pid, other_pid = (int(p) for p in started.stdout.split())
            raw = await guest.transport.run_command(sh(STATUS_SCRIPT, *UNITS), timeout=60)
            raw.check()
            listed = _proc_pids(raw.stdout)
            status = await guest.status()
    assert other_pid in listed
    assert ours_pid not in listed
    # Neither is a daemon, whichever way it was read.
    assert all(ours_pid != p.pid and other_pid != p.pid for p in status.processes)


@needs_sandbox
async def test_concurrent_status_calls_agree() -> None:
    # Eight calls at once on one connection (the transport's channel bound):
    # each sees the real hv_kvp_daemon and none sees another call's script.
    with GuestSandbox() as sandbox:
        async with LinuxGuest.connect(sandbox.url()) as guest:
            await guest.daemon("kvp").start()
            raws = await asyncio.gather(
                *(guest.transport.run_command(sh(STATUS_SCRIPT, *UNITS), timeout=120)
                  for _ in range(8))
            )  # fmt: skip
            status = await guest.status()
    kvp = {p.pid for p in status.daemon("kvp").processes}
    assert len(kvp) == 1
    for raw in raws:
        raw.check()
        assert _proc_pids(raw.stdout) == kvp


def _url(server: OpenSSHServer, **extra: str) -> str:
    query = urllib.parse.urlencode(
        {"known_hosts": str(server.known_hosts), "key": str(server.client_key), **extra}
    )
    return f"ssh://root@127.0.0.1:{server.port}?{query}"


@needs_sshd
async def test_connections_dropped_by_max_startups_are_tried_again() -> None:
    # MaxStartups 2: sshd drops every connection beyond two still logging
    # in. Twelve at once: without a new attempt, most would fail at once.
    with OpenSSHServer(extra_config=["MaxStartups 2"]) as server:
        url = _url(server, connect_timeout="60")

        async def one() -> str:
            async with LinuxGuest.connect(url) as guest:
                done = await guest.transport.run_command(["echo", "in"], timeout=60)
                return done.stdout.decode().strip()

        answers = await asyncio.gather(*(one() for _ in range(12)))
        log = server.log_file.read_text(errors="replace")
    assert answers == ["in"] * 12
    # The server did drop some: the retry was exercised, not bypassed.
    assert "drop connection" in log or "beginning MaxStartups throttling" in log


def _hog(port: int) -> socket.socket:
    """A connection that holds sshd's only startup slot: it got the banner and never logs in."""
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", port))
        # The server may still count its own readiness probe, and then
        # drops this one with "Exceeded MaxStartups": try again.
        if sock.recv(256).startswith(b"SSH-"):
            return sock
        sock.close()
        time.sleep(0.2)
    raise AssertionError("sshd never gave a connection its startup slot")


@needs_sshd
async def test_a_server_that_keeps_dropping_is_reported_within_the_connect_timeout() -> None:
    # MaxStartups 1 and one connection that never logs in (a bare TCP
    # socket): sshd drops every other connection until LoginGraceTime.
    with OpenSSHServer(extra_config=["MaxStartups 1", "LoginGraceTime 120"]) as server:
        port = server.port
        with _hog(port), pytest.raises(TransportError, match="MaxStartups") as caught:
            await asyncio.wait_for(LinuxGuest.connect(_url(server, connect_timeout="2")), 30)
    message = str(caught.value)
    assert "dropped the SSH connection before the login" in message
    assert "in 2 s" in message
    assert caught.value.target is not None
    assert f":{port}" in caught.value.target


@needs_sshd
async def test_a_refused_port_is_not_retried() -> None:
    # Nothing listens: that is not a drop, and fails at once with the OS's reason.
    from hvintegration.testing.sshd import free_loopback_port

    with OpenSSHServer() as server:
        url = _url(server, connect_timeout="30").replace(
            f":{server.port}?", f":{free_loopback_port()}?"
        )
        with pytest.raises(TransportError, match="cannot reach") as caught:
            await asyncio.wait_for(LinuxGuest.connect(url), 20)
    assert "MaxStartups" not in str(caught.value)


@needs_sandbox
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
async def test_the_status_script_starts_few_programs() -> None:
    # Counted, not timed: every program the script starts, under strace -f,
    # on a guest with its daemon running and its programs reachable under
    # two names (/sbin and /usr/sbin). Before the script read each file and
    # owner once it started 97 programs here; today 25. The bound leaves
    # room for a distribution's differences, not for a program per process.
    trace = "/tmp/status.strace"
    with GuestSandbox() as sandbox:
        async with LinuxGuest.connect(sandbox.url()) as guest:
            await guest.daemon("kvp").start()
            argv = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", trace]
            traced = await guest.transport.run_command(
                [*argv, *sh(STATUS_SCRIPT, *UNITS)], timeout=120
            )
            traced.check()
            listed = _proc_pids(traced.stdout)
            done = await guest.transport.run_command(["cat", trace], timeout=30)
            status = await guest.status()
    lines = done.stdout.decode().splitlines()
    # With -f a call may be split into "execve(... <unfinished ...>" and
    # "<... execve resumed>) = 0"; failed tries along PATH end "= -1".
    started = [
        line
        for line in lines
        if ("execve(" in line or "execve resumed" in line) and line.rstrip().endswith("= 0")
    ]
    # The first is the shell running the script itself.
    assert 5 < len(started) <= 45, started
    # And the report is the same: the daemon, nothing else.
    assert listed == {p.pid for p in status.daemon("kvp").processes}


@needs_sandbox
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
async def test_a_devices_driver_is_read_from_the_drivers_directory() -> None:
    # The sandbox's sysfs has only each device's "driver" link; a real one
    # also lists every bound device in its driver's directory. With those
    # links added, the same drivers are reported and no readlink runs for
    # the devices.
    trace = "/tmp/devices.strace"
    argv = ["strace", "-f", "-qq", "-e", "trace=execve", "-o", trace, *sh(STATUS_SCRIPT, *UNITS)]
    with GuestSandbox() as sandbox:
        async with LinuxGuest.connect(sandbox.url()) as guest:
            (await guest.transport.run_command(argv, timeout=120)).check()
            before = (await guest.transport.run_command(["cat", trace], timeout=30)).stdout
            plain = await guest.status()
            tree = sandbox.root / "sys-vmbus"
            for device in (tree / "devices").iterdir():
                driver = (device / "driver").resolve().name
                (tree / "drivers" / driver / device.name).symlink_to(f"../../devices/{device.name}")
            (await guest.transport.run_command(argv, timeout=120)).check()
            after = (await guest.transport.run_command(["cat", trace], timeout=30)).stdout
            linked = await guest.status()
    assert plain.devices
    assert linked.devices == plain.devices
    assert all(d.driver == "hv_utils" for d in linked.devices)
    device_reads = [
        line
        for line in before.decode().splitlines()
        if "readlink" in line and "/sys/bus/vmbus" in line
    ]
    assert len(device_reads) == len(plain.devices)
    assert "/sys/bus/vmbus" not in "".join(
        line for line in after.decode().splitlines() if "readlink" in line
    )


@needs_sandbox
async def test_a_candidates_first_argument_is_read_byte_for_byte() -> None:
    # The script turns a candidate's first arguments back from od's bytes
    # with printf: a program path with blanks, %, a backslash and UTF-8 must
    # come back as the file it names, whose owner and mode are then read.
    path = "/tmp/hv_odd %b\\x é"
    start = (
        'cp /bin/sleep "$1" && chmod 755 "$1" || exit 1; '
        "setsid python3 -c 'import os, sys; os.execv(sys.argv[1], [sys.argv[1], \"60\"])' "
        '"$1" </dev/null >/dev/null 2>&1 & echo $!; '
        'stat -L -c "%u %a" -- "$1" /tmp/'
    )
    with GuestSandbox() as sandbox:
        async with LinuxGuest.connect(sandbox.url()) as guest:
            done = await guest.transport.run_command(["sh", "-c", start, "start", path], timeout=30)
            done.check()
            pid_line, *facts = done.stdout.decode().splitlines()
            await asyncio.sleep(0.5)  # let python3 become the program
            raw = await guest.transport.run_command(sh(STATUS_SCRIPT, *UNITS), timeout=60)
            raw.check()
    lines = [
        line.split("\t")
        for line in raw.stdout.decode().splitlines()
        if line.startswith(f"proc\t{pid_line}\t")
    ]
    assert len(lines) == 1
    fields = lines[0]
    assert bytes.fromhex(fields[5]).decode() == path  # the executable
    assert bytes.fromhex(fields[7]) == path.encode() + b"\x0060\x00"  # the command line
    assert fields[10] == " ".join(facts)  # the first argument's facts
