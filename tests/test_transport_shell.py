"""Shell commands over local:// and ssh:// (real child processes, real sshd)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hvintegration.errors import (
    AuthenticationError,
    HostKeyError,
    InvalidTargetError,
    OperationTimeoutError,
    RemoteCommandError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.testing.sshd import OpenSSHServer, free_loopback_port, sshd_unavailable_reason
from hvintegration.transport import parse_target
from hvintegration.transport.base import Transport
from hvintegration.transport.local import LocalTarget, LocalTransport
from hvintegration.transport.ssh import SSHTarget, SSHTransport

HOSTILE_ARGS = [
    "plain",
    "it's",
    'dq"uote',
    "$(touch /tmp/hvintegration-pwned)",
    "`id`",
    "a; rm -rf /",
    "new\nline",
    "*",
    "",
    "--option",
    "\u2019curly\u2018",
]

needs_sshd = pytest.mark.skipif(
    sshd_unavailable_reason() is not None, reason=str(sshd_unavailable_reason())
)


@pytest.fixture(scope="module")
def sshd() -> Iterator[OpenSSHServer]:
    if sshd_unavailable_reason() is not None:
        pytest.skip(str(sshd_unavailable_reason()))
    with OpenSSHServer() as server:
        yield server


def _ssh_target(server: OpenSSHServer, **overrides: object) -> SSHTarget:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "known_hosts": str(server.known_hosts),
        "client_keys": (str(server.client_key),),
    }
    settings.update(overrides)
    return SSHTarget(**settings)  # type: ignore[arg-type]


@pytest.fixture(params=["local", pytest.param("ssh", marks=needs_sshd)])
async def shell(request: pytest.FixtureRequest) -> AsyncIterator[Transport]:
    if request.param == "local":
        transport: Transport = LocalTransport()
    else:
        transport = _ssh_target(request.getfixturevalue("sshd")).open()
    async with transport:
        yield transport


def _pwned() -> bool:
    return os.path.exists("/tmp/hvintegration-pwned")


def _group_alive(marker: str) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            return True
    return False


async def test_argv_arrives_word_for_word(shell: Transport) -> None:
    done = await shell.run_command(["printf", "%s\\0", *HOSTILE_ARGS], timeout=10)
    assert done.exit_status == 0
    assert done.stdout.split(b"\0")[:-1] == [a.encode() for a in HOSTILE_ARGS]
    assert not _pwned()


async def test_stdin_reaches_the_command(shell: Transport) -> None:
    done = await shell.run_command(["cat"], input=b"\x00binary\xff", timeout=10)
    assert done.stdout == b"\x00binary\xff"


async def test_exit_status_and_stderr_are_reported(shell: Transport) -> None:
    done = await shell.run_command(["sh", "-c", "echo oops >&2; exit 3"], timeout=10)
    assert (done.exit_status, done.stderr) == (3, b"oops\n")
    with pytest.raises(RemoteCommandError) as caught:
        done.check(target=shell.target)
    assert caught.value.error_id == "exit:3"
    assert "oops" in str(caught.value)


async def test_missing_program_is_status_127(shell: Transport) -> None:
    done = await shell.run_command(["hvintegration-no-such-program"], timeout=10)
    assert done.exit_status == 127


async def test_timeout_kills_the_command_and_the_next_call_works(shell: Transport) -> None:
    marker = f"hvtest-{uuid.uuid4().hex}"
    with pytest.raises(OperationTimeoutError):
        await shell.run_command(["sh", "-c", f"sleep 30; echo {marker}"], timeout=0.5)
    for _ in range(50):
        if not _group_alive(marker):
            break
        await asyncio.sleep(0.1)
    assert not _group_alive(marker)
    done = await shell.run_command(["echo", "again"], timeout=10)
    assert done.stdout == b"again\n"


async def test_cancelling_kills_the_command(shell: Transport) -> None:
    marker = f"hvtest-{uuid.uuid4().hex}"
    task = asyncio.ensure_future(
        shell.run_command(["sh", "-c", f"sleep 30; echo {marker}"], timeout=60)
    )
    await asyncio.sleep(0.5)
    assert _group_alive(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not _group_alive(marker):
            break
        await asyncio.sleep(0.1)
    assert not _group_alive(marker)


async def test_concurrent_commands(shell: Transport) -> None:
    results = await asyncio.gather(
        *(shell.run_command(["echo", str(n)], timeout=10) for n in range(10))
    )
    assert [r.stdout for r in results] == [f"{n}\n".encode() for n in range(10)]


async def test_closed_transport_refuses_commands(shell: Transport) -> None:
    await shell.aclose()
    await shell.aclose()
    with pytest.raises(TransportClosedError):
        await shell.run_command(["true"], timeout=5)


# --- ssh:// specifics --------------------------------------------------------


@needs_sshd
async def test_ssh_reuses_one_connection(sshd: OpenSSHServer) -> None:
    async with _ssh_target(sshd).open() as transport:
        first = await transport.run_command(["sh", "-c", "echo $PPID"], timeout=10)
        second = await transport.run_command(["sh", "-c", "echo $PPID"], timeout=10)
        assert isinstance(transport, SSHTransport)
        assert transport._connection is not None
    # Each command has its own session process, on one connection.
    assert sshd.log.count("Accepted publickey") >= 1
    assert first.exit_status == second.exit_status == 0


@needs_sshd
async def test_ssh_unknown_host_key_is_refused(sshd: OpenSSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    transport = _ssh_target(sshd, known_hosts=str(empty)).open()
    with pytest.raises(HostKeyError) as caught:
        await transport.open()
    assert "127.0.0.1" in str(caught.value)
    await transport.aclose()


@needs_sshd
async def test_ssh_wrong_key_is_an_authentication_error(
    sshd: OpenSSHServer, tmp_path: Path
) -> None:
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(tmp_path / "other"))
    target = _ssh_target(sshd, client_keys=(str(tmp_path / "other"),), password="hunter2")
    transport = target.open()
    with pytest.raises(AuthenticationError) as caught:
        await transport.run_command(["true"], timeout=5)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(transport)
    await transport.aclose()


async def test_ssh_connection_refused_is_a_transport_error() -> None:
    transport = SSHTarget("127.0.0.1", port=free_loopback_port(), connect_timeout=5).open()
    with pytest.raises(TransportError):
        await transport.open()
    await transport.aclose()


@needs_sshd
async def test_ssh_reconnects_after_the_server_drops_the_connection(sshd: OpenSSHServer) -> None:
    async with _ssh_target(sshd).open() as transport:
        await transport.run_command(["true"], timeout=10)
        # Kill this connection's sshd session process from the remote side.
        with pytest.raises((TransportBrokenError, OperationTimeoutError)):
            await transport.run_command(["sh", "-c", "kill -9 $PPID"], timeout=10)
        done = await transport.run_command(["echo", "back"], timeout=10)
    assert done.stdout == b"back\n"


def test_ssh_url_parsing() -> None:
    target = parse_target("ssh://admin:pa%40ss@guest.example:2222?known_hosts=/k&key=/a&key=/b")
    assert isinstance(target, SSHTarget)
    assert (target.host, target.port, target.user, target.password) == (
        "guest.example",
        2222,
        "admin",
        "pa@ss",
    )
    assert target.client_keys == ("/a", "/b")
    assert target.url == "ssh://admin@guest.example:2222?known_hosts=%2Fk&key=%2Fa&key=%2Fb"
    assert "pa@ss" not in repr(target)


@needs_sshd
async def test_ssh_never_follows_a_config_that_turns_host_keys_off(
    sshd: OpenSSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # UserKnownHostsFile none in ~/.ssh/config would make asyncssh accept
    # any host key if the library let it choose the trust store.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n    UserKnownHostsFile none\n")
    monkeypatch.setenv("HOME", str(home))
    transport = _ssh_target(sshd, known_hosts=None).open()
    with pytest.raises(HostKeyError):
        await transport.open()
    await transport.aclose()


@needs_sshd
async def test_ssh_unreadable_keys_are_settings_errors(sshd: OpenSSHServer, tmp_path: Path) -> None:
    not_a_key = tmp_path / "not-a-key"
    not_a_key.write_text("hello\n")
    for keys in ((str(not_a_key),), (str(tmp_path / "missing"),)):
        transport = _ssh_target(sshd, client_keys=keys).open()
        with pytest.raises(InvalidTargetError, match="cannot read an SSH key"):
            await transport.run_command(["true"], timeout=5)
        await transport.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "ssh://admin:2024?Winter-pass@hv01",
        "psrp://admin:2024?Winter-pass@hv01",
        "ssh://hv01?Winter-pass@x=1",
    ],
)
def test_a_password_cut_by_a_question_mark_is_never_echoed(url: str) -> None:
    with pytest.raises(InvalidTargetError, match="percent-encode") as caught:
        parse_target(url)
    assert "Winter" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ssh://", "needs a host"),
        ("ssh://user:secret@host:99999", "port"),
        ("ssh://host?colour=blue", "unknown ssh:// option colour"),
        ("ssh://host?shell=fish", "unknown remote shell"),
        ("local://otherhost", "takes no host"),
        ("local://?executable=", "must not be empty"),
        ("local://?x=1", "unknown local:// option"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidTargetError) as caught:
        parse_target(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_local_url_round_trip() -> None:
    target = parse_target("local://?executable=/opt/pwsh/pwsh")
    assert isinstance(target, LocalTarget)
    assert target.executable == "/opt/pwsh/pwsh"
    assert parse_target(target.url) == target


def _write_noisy_profile(directory: Path) -> Path:
    noisy = directory / "noisy.sh"
    noisy.write_text("echo 'welcome to the guest' >&2\n")
    noisy.chmod(0o644)
    directory.chmod(0o755)
    return noisy


@needs_sshd
async def test_ssh_login_shell_noise_on_stderr_is_kept_and_kill_still_works(
    tmp_path: Path,
) -> None:
    # A login shell that prints before running anything, as a chatty
    # .bashrc does: BASH_ENV is read by every non-interactive bash.
    noisy = _write_noisy_profile(tmp_path)
    with OpenSSHServer(extra_config=[f"SetEnv BASH_ENV={noisy}"]) as server:
        async with _ssh_target(server).open() as transport:
            done = await transport.run_command(["sh", "-c", "echo out; echo err >&2"], timeout=10)
            assert done.stdout == b"out\n"
            assert done.stderr.startswith(b"welcome to the guest\n")
            assert done.stderr.endswith(b"\nerr\n")
            assert b"hvintegration-pid" not in done.stderr
            marker = f"hvtest-{uuid.uuid4().hex}"
            with pytest.raises(OperationTimeoutError):
                await transport.run_command(["sh", "-c", f"sleep 30; echo {marker}"], timeout=0.5)
            for _ in range(50):
                if not _group_alive(marker):
                    break
                await asyncio.sleep(0.1)
            assert not _group_alive(marker)
