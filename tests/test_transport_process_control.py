"""Remote and local process control: kills, channel limits, bad calls, timeouts, output caps.

Against real peers: a guest sandbox (own PID namespace, sshd with OpenSSH's
default MaxSessions, users whose login shells are dash, bash, zsh and tcsh,
with and without sudo), plain loopback sshd instances with stricter
MaxSessions, and local child processes.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hvintegration import LinuxGuest
from hvintegration.errors import (
    InvalidParameterError,
    OperationTimeoutError,
    PermissionDeniedError,
    RemoteCommandError,
    TransportClosedError,
)
from hvintegration.testing import linux_guest
from hvintegration.testing.linux_guest import GuestLayout, GuestSandbox, sandbox_unavailable_reason
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.transport import parse_target
from hvintegration.transport.base import ShellTransport
from hvintegration.transport.local import LocalTarget, LocalTransport
from hvintegration.transport.ssh import SSHTarget, SSHTransport

needs_sshd = pytest.mark.skipif(
    sshd_unavailable_reason() is not None, reason=str(sshd_unavailable_reason())
)

# What a call that hangs would cost: every bound below is far from it.
HANG = 30


@pytest.fixture(scope="module")
def guest() -> Iterator[GuestSandbox]:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with GuestSandbox(GuestLayout()) as sandbox:
        yield sandbox


def _shell(sandbox: GuestSandbox, user: str, **options: str) -> ShellTransport:
    url = sandbox.url(user)
    if options:
        url += "&" + "&".join(f"{k}={v}" for k, v in options.items())
    transport = parse_target(url).open()
    assert isinstance(transport, ShellTransport)
    return transport


def _with_marker(sandbox: GuestSandbox | None, marker: str) -> list[int]:
    """Processes (in the sandbox, or anywhere) whose command line holds ``marker``."""
    pids = (
        sandbox.processes()
        if sandbox is not None
        else [int(p) for p in os.listdir("/proc") if p.isdigit()]
    )
    found = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(pid)
    return found


async def _gone(sandbox: GuestSandbox | None, marker: str) -> bool:
    # The call has returned: a survivor would be there now. A short wait
    # only lets the kernel finish tearing down what was SIGKILLed.
    for _ in range(20):
        if not _with_marker(sandbox, marker):
            return True
        await asyncio.sleep(0.05)
    return False


def _sleeper() -> tuple[str, str]:
    """A unique ``sleep`` duration to find the processes by, and the marker."""
    marker = f"{HANG}.{secrets.randbelow(10**9):09d}"
    return marker, marker


# --- 6. nothing keeps running after a timeout or a cancel -------------------

SHELLS = ["dash", "bash", "zsh", "tcsh"]


def _tree(seconds: str) -> list[str]:
    # A child in the session, a grandchild that leaves the session, one
    # that leaves it and is orphaned at once (found by the call's token
    # alone, also through sudo), and the command itself: all must go.
    script = (
        'sleep "$1" & setsid sleep "$1" > /dev/null 2>&1 & '
        '(setsid sleep "$1" > /dev/null 2>&1 &); sleep "$1"; echo never'
    )
    return ["sh", "-c", script, "tree", seconds]


@pytest.mark.parametrize("sudo", [False, True], ids=["user", "sudo"])
@pytest.mark.parametrize("shell", SHELLS)
async def test_a_timed_out_command_leaves_nothing_running(
    guest: GuestSandbox, shell: str, sudo: bool
) -> None:
    user = guest.shell_users.get(shell)
    if user is None:
        pytest.skip(f"{shell} is not installed (scripts/setup installs it)")
    seconds, marker = _sleeper()
    argv = ["sudo", "-n", "--", *_tree(seconds)] if sudo else _tree(seconds)
    async with _shell(guest, user) as transport:
        # The login shell really is the one named.
        login = await transport.run_command(["getent", "passwd", user], timeout=10)
        assert login.stdout.decode().strip().endswith("/" + shell) or shell == "dash"
        started = time.monotonic()
        with pytest.raises(OperationTimeoutError) as caught:
            await transport.run_command(argv, timeout=1.5)
        assert time.monotonic() - started < HANG / 2
        assert "it was killed with everything it started" in str(caught.value)
        assert "may have made its change" in str(caught.value)
        assert await _gone(guest, marker)
        # The connection serves the next call.
        assert (await transport.run_command(["echo", "ok"], timeout=10)).stdout == b"ok\n"


@pytest.mark.parametrize("sudo", [False, True], ids=["user", "sudo"])
async def test_a_cancelled_command_leaves_nothing_running(guest: GuestSandbox, sudo: bool) -> None:
    seconds, marker = _sleeper()
    argv = ["sudo", "-n", "--", *_tree(seconds)] if sudo else _tree(seconds)
    async with _shell(guest, guest.sudo_user) as transport:
        task = asyncio.ensure_future(transport.run_command(argv, timeout=60))
        for _ in range(100):
            if len(_with_marker(guest, marker)) >= 3:
                break
            await asyncio.sleep(0.05)
        assert _with_marker(guest, marker)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _gone(guest, marker)


async def test_closing_the_transport_kills_root_commands(guest: GuestSandbox) -> None:
    seconds, marker = _sleeper()
    transport = _shell(guest, guest.sudo_user)
    await transport.open()
    task = asyncio.ensure_future(
        transport.run_command(["sudo", "-n", "--", *_tree(seconds)], timeout=60)
    )
    for _ in range(100):
        if len(_with_marker(guest, marker)) >= 3:
            break
        await asyncio.sleep(0.05)
    await transport.aclose()
    with pytest.raises(TransportClosedError):
        await task
    assert await _gone(guest, marker)


# --- 7. sshd's channel limit ------------------------------------------------


async def test_two_hundred_concurrent_status_calls_on_default_maxsessions(
    guest: GuestSandbox,
) -> None:
    async with LinuxGuest.connect(guest.url()) as linux:
        results = await asyncio.gather(*(linux.status() for _ in range(200)))
    assert len(results) == 200
    assert all(r.driver.state == "module" for r in results)


@needs_sshd
# 200 at once against the default limit; fewer against the strictest, where
# they go through two channels and the count only adds time.
@pytest.mark.parametrize(("max_sessions", "count"), [(2, 40), (10, 200)])
async def test_concurrent_commands_under_a_strict_maxsessions(
    max_sessions: int, count: int
) -> None:
    with OpenSSHServer(max_sessions=max_sessions) as server:
        url = server.url(query=f"known_hosts={server.known_hosts}&key={server.client_key}")
        transport = parse_target(url).open()
        assert isinstance(transport, SSHTransport)
        async with transport:
            first = await transport.run_command(["true"], timeout=10)
            connection = transport._connection
            # Twelve slow ones (more than MaxSessions 10), then many at once.
            slow = await asyncio.gather(
                *(transport.run_command(["sh", "-c", "sleep 0.3; echo $1", "x", str(n)],
                                        timeout=60) for n in range(12))
            )  # fmt: skip
            many = await asyncio.gather(
                *(transport.run_command(["echo", str(n)], timeout=60) for n in range(count))
            )
            assert first.exit_status == 0
            assert [r.stdout for r in slow] == [f"{n}\n".encode() for n in range(12)]
            assert [r.stdout for r in many] == [f"{n}\n".encode() for n in range(count)]
            # No refusal ever dropped the connection.
            assert transport._connection is connection


@needs_sshd
async def test_a_refused_channel_only_requeues_its_own_call() -> None:
    # A bound set above the server's limit: the server refuses channels,
    # the transport learns its limit, and every call still succeeds.
    with OpenSSHServer(max_sessions=3) as server:
        target = SSHTarget(
            "127.0.0.1",
            port=server.port,
            user=server.user,
            known_hosts=str(server.known_hosts),
            client_keys=(str(server.client_key),),
            max_channels=20,
        )
        async with target.open() as transport:
            await transport.run_command(["true"], timeout=10)
            connection = transport._connection
            done = await asyncio.gather(
                *(transport.run_command(["sh", "-c", "sleep 0.2; echo $1", "x", str(n)],
                                        timeout=60) for n in range(30))
            )  # fmt: skip
            assert [d.stdout for d in done] == [f"{n}\n".encode() for n in range(30)]
            assert transport._connection is connection
            assert transport._slots.limit < 3
            # And a timeout under that limit still kills (the kill needs a channel).
            seconds, marker = _sleeper()
            with pytest.raises(OperationTimeoutError) as caught:
                await transport.run_command(_tree(seconds), timeout=1)
            assert "it was killed" in str(caught.value)
            assert await _gone(None, marker)


async def test_a_root_process_the_kill_cannot_reach_is_not_called_killed(
    guest: GuestSandbox,
) -> None:
    # sudo inside a shell: the kill runs as the user, who cannot kill root.
    seconds, marker = _sleeper()
    script = 'sudo -n -- sleep "$1"'
    async with _shell(guest, guest.sudo_user) as transport:
        with pytest.raises(OperationTimeoutError) as caught:
            await transport.run_command(["sh", "-c", script, "hidden", seconds], timeout=1)
        assert "could not be killed" in str(caught.value)
    for pid in _with_marker(guest, marker):
        os.kill(pid, 9)


@needs_sshd
@pytest.mark.parametrize(("max_sessions", "max_channels"), [(2, 8), (10, 20)])
async def test_commands_that_fill_every_session_are_still_killed(
    max_sessions: int, max_channels: int
) -> None:
    # More commands than the server serves, all still running at their
    # timeout, with the limit not yet learned: the kill must find a way.
    with OpenSSHServer(max_sessions=max_sessions) as server:
        query = f"known_hosts={server.known_hosts}&key={server.client_key}"
        url = server.url(query=f"{query}&max_channels={max_channels}")
        transport = parse_target(url).open()
        assert isinstance(transport, SSHTransport)
        seconds, marker = _sleeper()
        async with transport:

            async def one() -> str:
                try:
                    await transport.run_command(_tree(seconds), timeout=1.5)
                except OperationTimeoutError as exc:
                    return str(exc)
                return "finished"

            outcomes = await asyncio.gather(*(one() for _ in range(max_sessions + 4)))
            assert sum("it was killed" in o for o in outcomes) >= max_sessions - 1
            assert not [o for o in outcomes if "could not be killed" in o]
            assert await _gone(None, marker)
            assert (await transport.run_command(["echo", "ok"], timeout=10)).stdout == b"ok\n"


def test_max_channels_url_option() -> None:
    target = parse_target("ssh://root@host?max_channels=2&max_output=4096")
    assert isinstance(target, SSHTarget)
    assert (target.max_channels, target.max_output) == (2, 4096)
    assert SSHTarget("host").max_channels == 8


# --- 8. one bad call never breaks the others -------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        ["echo", "a\0b"],
        ["echo", "x" * (3 * 1024 * 1024)],
        ["echo", "lone \udc80 surrogate"],
    ],
    ids=["nul", "3MB", "surrogate"],
)
async def test_a_bad_argument_is_refused_and_the_other_calls_carry_on(
    guest: GuestSandbox, bad: list[str]
) -> None:
    async with _shell(guest, guest.sudo_user) as transport:
        assert isinstance(transport, SSHTransport)
        await transport.run_command(["true"], timeout=10)
        connection = transport._connection
        others = [
            asyncio.ensure_future(
                transport.run_command(["sh", "-c", "sleep 0.5; echo $1", "x", str(n)], timeout=30)
            )
            for n in range(3)
        ]
        await asyncio.sleep(0.1)
        with pytest.raises(InvalidParameterError):
            await transport.run_command(bad, timeout=10)
        assert [(await o).stdout for o in others] == [b"0\n", b"1\n", b"2\n"]
        assert transport._connection is connection


async def test_large_input_and_a_hostile_environment_do_not_drop_the_connection(
    guest: GuestSandbox,
) -> None:
    big = os.urandom(3 * 1024 * 1024)
    async with _shell(guest, guest.sudo_user) as transport:
        assert isinstance(transport, SSHTransport)
        await transport.run_command(["true"], timeout=10)
        connection = transport._connection
        done, other = await asyncio.gather(
            transport.run_command(["cat"], input=big, timeout=60),
            transport.run_command(["echo", "other"], timeout=60),
        )
        assert done.stdout == big
        assert other.stdout == b"other\n"
        # Nothing is sent as environment: what the caller's process has
        # never reaches the guest.
        os.environ["HVINTEGRATION_TEST_LEAK"] = "x" * 100_000
        try:
            env = await transport.run_command(["env"], timeout=10)
        finally:
            del os.environ["HVINTEGRATION_TEST_LEAK"]
        assert b"HVINTEGRATION_TEST_LEAK" not in env.stdout
        assert transport._connection is connection


# --- 9. timeouts hold -------------------------------------------------------

DETACHED_HOLDS_STDOUT = ["sh", "-c", 'setsid sleep "$1" & echo started', "held"]
DETACHED_AND_SLOW = ["sh", "-c", 'setsid sleep "$1" & sleep "$1"', "held"]


@pytest.fixture(params=["local", "ssh"])
async def shell(request: pytest.FixtureRequest) -> AsyncIterator[ShellTransport]:
    if request.param == "local":
        transport: ShellTransport = LocalTransport()
        sandbox = None
    else:
        sandbox = request.getfixturevalue("guest")
        transport = _shell(sandbox, sandbox.sudo_user)
    transport.sandbox = sandbox  # type: ignore[attr-defined]
    async with transport:
        yield transport


async def test_a_detached_descendant_holding_stdout_does_not_hold_the_call(
    shell: ShellTransport,
) -> None:
    sandbox = shell.sandbox  # type: ignore[attr-defined]
    seconds, marker = _sleeper()
    started = time.monotonic()
    done = await shell.run_command([*DETACHED_HOLDS_STDOUT, seconds], timeout=HANG * 2)
    assert time.monotonic() - started < HANG / 2
    assert done.exit_status == 0
    assert done.stdout == b"started\n"
    # Left running on purpose by the command, as a daemon would be: not ours
    # to kill after a normal exit. Clean it up here.
    for pid in _with_marker(sandbox, marker):
        os.kill(pid, 9)


async def test_an_exited_command_leaves_no_child_of_its_session(shell: ShellTransport) -> None:
    # `sleep &` stays in the command's session: it goes when the command
    # has exited. A daemon that left the session with setsid stays.
    sandbox = shell.sandbox  # type: ignore[attr-defined]
    seconds, marker = _sleeper()
    daemon, daemon_marker = _sleeper()
    script = 'sleep "$1" & setsid sleep "$2" > /dev/null 2>&1 & echo started'
    argv = ["sh", "-c", script, "leave", seconds, daemon]
    calls = [argv]
    if isinstance(shell, SSHTransport):
        calls.append(["sudo", "-n", "--", *argv])
    for call in calls:
        done = await shell.run_command(call, timeout=HANG)
        assert done.stdout == b"started\n"
        assert await _gone(sandbox, marker)
        survivors = _with_marker(sandbox, daemon_marker)
        assert survivors
        for pid in survivors:
            os.kill(pid, 9)


async def test_a_timeout_holds_and_reaps_a_detached_descendant(shell: ShellTransport) -> None:
    sandbox = shell.sandbox  # type: ignore[attr-defined]
    seconds, marker = _sleeper()
    started = time.monotonic()
    with pytest.raises(OperationTimeoutError) as caught:
        await shell.run_command([*DETACHED_AND_SLOW, seconds], timeout=1)
    assert time.monotonic() - started < HANG / 2
    assert "killed" in str(caught.value)
    assert await _gone(sandbox, marker)


async def test_the_connect_counts_towards_the_timeout() -> None:
    # A server that accepts and never says a word.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        target = SSHTarget("127.0.0.1", port=port, connect_timeout=HANG, verify_host_key=False)
        transport = target.open()  # connects on the first call, within its timeout
        try:
            started = time.monotonic()
            with pytest.raises(OperationTimeoutError):
                await transport.run_command(["true"], timeout=1)
            assert time.monotonic() - started < HANG / 2
        finally:
            await transport.aclose()
    finally:
        server.close()


# --- 10. output is bounded --------------------------------------------------


async def test_output_past_max_output_is_refused(guest: GuestSandbox) -> None:
    local = LocalTransport(LocalTarget(max_output=1024 * 1024))
    remote = _shell(guest, guest.sudo_user, max_output=str(1024 * 1024))
    for transport in (local, remote):
        async with transport:
            with pytest.raises(RemoteCommandError) as caught:
                await transport.run_command(["head", "-c", "50000000", "/dev/zero"], timeout=60)
            assert caught.value.error_id == "output-limit"
            assert "max_output" in str(caught.value)
            under = await transport.run_command(["head", "-c", "1000000", "/dev/zero"], timeout=60)
            assert len(under.stdout) == 1000000


def test_local_max_output_url_option() -> None:
    target = parse_target("local://?max_output=2048")
    assert isinstance(target, LocalTarget)
    assert target.max_output == 2048
    assert parse_target(target.url) == target


# --- 16. the sandbox is sealed ----------------------------------------------


async def test_the_sandbox_sees_no_stray_daemon_of_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    # A stray process named like a daemon, and daemon programs in a private
    # directory and a PATH directory of "the machine".
    stray_program = tmp_path / "hv_kvp_daemon"
    shutil.copy("/bin/sleep", stray_program)
    private = tmp_path / "hyper-v"
    (private / "bin").mkdir(parents=True)
    (private / "bin" / "hv_fcopy_uio_daemon").write_text("#!/bin/sh\nexit 0\n")
    (private / "bin" / "hv_fcopy_uio_daemon").chmod(0o755)
    on_path = tmp_path / "sbin"
    on_path.mkdir()
    (on_path / "hv_stray").write_text("#!/bin/sh\nexit 0\n")
    (on_path / "hv_stray").chmod(0o755)
    tmp_path.chmod(0o755)  # noqa: ASYNC240 - test setup
    monkeypatch.setattr(linux_guest, "_SEARCHED_PRIVATE_DIRS", (str(private),))
    monkeypatch.setattr(
        linux_guest, "_SEARCHED_PATH_DIRS", (*linux_guest._SEARCHED_PATH_DIRS, str(on_path))
    )
    stray = subprocess.Popen([str(stray_program), "60"])  # noqa: ASYNC220 - a stray on the machine
    try:
        with GuestSandbox(GuestLayout()) as sandbox:
            async with LinuxGuest.connect(sandbox.url()) as linux:
                status = await linux.status()
                seen = await linux.transport.run_command(
                    [
                        "sh",
                        "-c",
                        'ls -A "$1" "$2"; cat /proc/1/comm',
                        "x",
                        str(private),
                        str(on_path),
                    ],
                    timeout=10,
                )
    finally:
        stray.kill()
        stray.wait()
    assert stray.pid not in [p.pid for p in status.processes]
    assert not status.processes
    listing = seen.stdout.decode()
    assert "hv_fcopy_uio_daemon" not in listing
    assert "hv_stray" not in listing
    # PID 1 of the guest is the sandbox's own.
    assert listing.strip().splitlines()[-1] == "python"


async def test_guest_files_stay_out_of_the_machine_tmp(guest: GuestSandbox) -> None:
    # The guest has a /tmp and homes of its own: what a call writes there
    # never lands in the machine's /tmp.
    name = f"hvintegration-leak-{secrets.token_hex(6)}"
    for user in ("root", guest.sudo_user, guest.plain_user):
        async with _shell(guest, user) as transport:
            script = 'touch "/tmp/$1" "$HOME/$1" && echo "$HOME"'
            mine = f"{name}-{user}"
            done = await transport.run_command(["sh", "-c", script, "leak", mine], timeout=10)
            assert done.exit_status == 0, done.stderr
            home = done.stdout.decode().strip()
            assert home not in ("/tmp", "/tmp/", "/")
            seen = await transport.run_command(["ls", f"/tmp/{mine}"], timeout=10)
            assert seen.exit_status == 0
    # Neither in the machine's /tmp nor in a home that is the machine's.
    assert not list(Path("/tmp").glob(f"{name}-*"))  # noqa: ASYNC240
    assert not list(Path("/tmp").glob(f"*/{name}-*"))  # noqa: ASYNC240


async def test_the_machine_hypervkvpd_directory_is_hidden(guest: GuestSandbox) -> None:
    if not os.path.isdir("/usr/libexec/hypervkvpd"):  # noqa: ASYNC240
        pytest.skip("this machine has no /usr/libexec/hypervkvpd to hide")
    async with _shell(guest, guest.sudo_user) as transport:
        done = await transport.run_command(["ls", "-A", "/usr/libexec/hypervkvpd"], timeout=10)
    assert done.stdout == b""


# --- 17. the guest's users and their login shells ---------------------------


@pytest.mark.parametrize("shell", [*SHELLS, "plain"])
async def test_linux_guest_reads_over_every_login_shell(guest: GuestSandbox, shell: str) -> None:
    user = guest.plain_user if shell == "plain" else guest.shell_users.get(shell)
    if user is None:
        pytest.skip(f"{shell} is not installed (scripts/setup installs it)")
    async with LinuxGuest.connect(guest.url(user)) as linux:
        status = await linux.status()
        assert status.user == user
        assert status.driver.state == "module"
        if shell == "plain":
            with pytest.raises(PermissionDeniedError):
                await linux.daemon("kvp").start()
            return
        # Through sudo -n from this login shell: start, read, stop.
        started = await linux.daemon("kvp").start()
        assert started.running
        assert await linux.kvp(0) is not None
        assert not (await linux.daemon("kvp").stop(force=True)).running
