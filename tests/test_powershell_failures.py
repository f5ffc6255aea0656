"""PowerShell transports against misbehaving peers, missing programs, bad
credentials, timeouts and cancellation: every failure is a clear error, no
call hangs, and no process is left behind."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hvintegration.errors import (
    AuthenticationError,
    HostKeyError,
    HyperVModuleMissingError,
    OperationTimeoutError,
    PowerShellNotFoundError,
    ProtocolError,
    TransportBrokenError,
    TransportClosedError,
)
from hvintegration.operations import COPY_VM_FILE, LIST_VMS
from hvintegration.testing.powershell_peers import (
    LocalStandInPeer,
    SSHStandInPeer,
    standin_sshd,
)
from hvintegration.testing.processes import processes_mentioning
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.testing.standin_powershell import STATE_VARIABLE
from hvintegration.transport import parse_target
from hvintegration.transport._powershell_wire import RUNNER_LINE, powershell_argv
from hvintegration.transport.base import ErrorRecord, Transport
from hvintegration.transport.local import LocalTarget

ALL = {"VM": None}

# A fake PowerShell: it checks nothing, reads the loop and one request, then
# answers in the way its first argument names.
_FAKE = r"""#!{python}
import json, os, sys, time
mode = {mode!r}
sys.stdin.buffer.readline()
request = json.loads(sys.stdin.buffer.readline())
good = ('#hvi1:' + json.dumps({{"v": 1, "id": request["id"], "output": [{{"Name": "demovm"}}],
        "errors": [], "error": None}})).encode() + b"\n"
out = sys.stdout.buffer
if mode == "noise":
    sys.stderr.write("#< CLIXML\n<Objs Version=\"1.1.0.1\">progress</Objs>\n" * 50)
    sys.stderr.flush()
    out.write(b"WARNING: Write-Host text\r\n\x1b[32mcolour\x1b[0m\nnot an envelope\n" + good)
elif mode == "malformed":
    out.write(b"#hvi1:{{this is not json}}\n")
elif mode == "truncated":
    out.write(good[:40] + b"\n")
elif mode == "non-utf8":
    out.write(good.replace(b"demovm", b"demo\xff\xfevm"))
elif mode == "huge":
    chunk = b"x" * 65536
    for _ in range(64):
        out.write(chunk)
elif mode == "huge-noise":
    for _ in range(40000):
        out.write(b"noise noise noise noise noise noise noise noise\n")
elif mode == "mid-envelope":
    out.write(good[:30])
    out.flush()
    os._exit(0)
elif mode == "wrong-id":
    out.write(good.replace(b'"id": ' + str(request["id"]).encode(), b'"id": 999'))
elif mode == "silent-exit":
    sys.stderr.write("fatal: something broke\n")
    sys.exit(5)
elif mode == "hang":
    time.sleep(3600)
elif mode in ("slow-exit", "one-then-die"):
    out.write(good)
out.flush()
if mode == "one-then-die":
    sys.stdin.buffer.readline()
    os._exit(3)
sys.stdin.buffer.read()
if mode == "slow-exit":
    time.sleep(1.5)
"""


def _fake(tmp_path: Path, mode: str) -> str:
    path = tmp_path / f"fake-pwsh-{mode}"
    path.write_text(_FAKE.format(python=sys.executable, mode=mode))
    path.chmod(0o755)
    return str(path)


async def _poll(condition: Callable[[], bool], within: float = 10.0) -> bool:
    """Whether ``condition`` came true within ``within`` seconds."""
    deadline = time.monotonic() + within
    for _ in itertools.count():
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    raise AssertionError("unreachable")


async def _none_left(marker: str, within: float = 5.0) -> list[int]:
    await _poll(lambda: not processes_mentioning(marker), within)
    return processes_mentioning(marker)


@pytest.mark.parametrize("mode", ["persistent", "oneshot"])
async def test_noise_on_stdout_and_stderr_is_skipped(tmp_path: Path, mode: str) -> None:
    target = LocalTarget(executable=_fake(tmp_path, "noise"), mode=mode)
    async with target.open() as transport:
        result = await transport.run_operation(LIST_VMS, ALL, timeout=10)
    assert result.output == ({"Name": "demovm"},)
    assert await _none_left(str(tmp_path)) == []


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("malformed", ProtocolError, "malformed envelope"),
        ("truncated", ProtocolError, "malformed envelope"),
        ("non-utf8", ProtocolError, "not UTF-8"),
        ("wrong-id", ProtocolError, "answers request 999"),
        ("huge", ProtocolError, "more than 1048576 bytes"),
        ("huge-noise", ProtocolError, "more than 1048576 bytes"),
        ("mid-envelope", TransportBrokenError, "exited in the middle of its answer"),
        ("silent-exit", TransportBrokenError, "exit status 5): fatal: something broke"),
    ],
)
async def test_bad_output_is_a_clear_error_and_the_process_is_gone(
    tmp_path: Path, mode: str, error: type[Exception], text: str
) -> None:
    target = LocalTarget(executable=_fake(tmp_path, mode), max_output=1 << 20)
    async with target.open() as transport:
        with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
            await transport.run_operation(LIST_VMS, ALL, timeout=20)
        # Whatever the peer did, it is stopped before the error is raised.
        assert await _none_left(str(tmp_path), within=0.5) == []
        with pytest.raises(error):
            await transport.run_operation(LIST_VMS, ALL, timeout=20)
    assert await _none_left(str(tmp_path)) == []


async def test_a_silent_peer_times_out_and_is_killed(tmp_path: Path) -> None:
    async with LocalTarget(executable=_fake(tmp_path, "hang")).open() as transport:
        with pytest.raises(OperationTimeoutError) as caught:
            await transport.run_operation(LIST_VMS, ALL, timeout=0.5)
        assert caught.value.timeout == 0.5
        assert await _none_left(str(tmp_path), within=0.5) == []


@pytest.mark.parametrize("executable", ["/nonexistent/pwsh", "hvintegration-no-such-powershell"])
async def test_a_missing_powershell_is_reported(executable: str) -> None:
    async with LocalTarget(executable=executable).open() as transport:
        with pytest.raises(PowerShellNotFoundError) as caught:
            await transport.run_operation(LIST_VMS, ALL, timeout=5)
    assert isinstance(caught.value, FileNotFoundError)
    assert executable in str(caught.value)
    assert caught.value.operation == "list_vms"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        # What cmd.exe and PowerShell say when the login shell cannot find
        # the program (a Windows OpenSSH target).
        (9009, "'pwsh' is not recognized as an internal or external command,"),
        (1, "pwsh : The term 'pwsh' is not recognized as the name of a cmdlet, function"),
    ],
)
async def test_a_shell_that_cannot_find_powershell_is_understood(
    tmp_path: Path, status: int, message: str
) -> None:
    shell = tmp_path / "login-shell"
    shell.write_text(f'#!/bin/sh\necho "{message}" >&2\nexit {status}\n')
    shell.chmod(0o755)
    async with LocalTarget(executable=str(shell)).open() as transport:
        with pytest.raises(PowerShellNotFoundError, match="could not be started"):
            await transport.run_operation(LIST_VMS, ALL, timeout=10)


async def test_a_powershell_that_cannot_be_run_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "pwsh"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o644)
    async with LocalTarget(executable=str(path)).open() as transport:
        with pytest.raises(PowerShellNotFoundError, match="cannot be run"):
            await transport.run_operation(LIST_VMS, ALL, timeout=5)


async def test_a_missing_hyperv_module_is_reported(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    missing = ErrorRecord(
        "The term 'Get-VM' is not recognized as the name of a cmdlet, function, script "
        "file, or operable program.",
        error_id="CommandNotFoundException",
        category="ObjectNotFound",
        exception_type="System.Management.Automation.CommandNotFoundException",
        target_object="Get-VM",
    )
    with peer.edit() as sim:
        sim.inject_fault("error", record=missing)
    async with peer.open_transport() as transport:
        with pytest.raises(HyperVModuleMissingError, match="no command 'Get-VM'") as caught:
            await transport.run_operation(LIST_VMS, ALL, timeout=10)
    assert "is not recognized" in caught.value.remote_message


async def test_the_standin_receives_exactly_the_fixed_argv(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path, mode="oneshot")
    url = f"local://?executable={urllib.parse.quote(str(peer.executable))}&mode=oneshot"
    async with parse_target(url).open() as transport:
        for _ in range(2):
            await transport.run_operation(LIST_VMS, {"VM": [{"Name": "demovm"}]}, timeout=10)
    entries = [json.loads(line) for line in peer.log.read_text().splitlines()]
    starts = [entry["argv"] for entry in entries if "argv" in entry]
    assert starts == [list(powershell_argv("x")[1:])] * 2
    requests = [entry for entry in entries if "operation" in entry]
    assert requests == [{"operation": "list_vms", "parameters": {"VM": [{"Name": "demovm"}]}}] * 2


@pytest.mark.parametrize(
    ("argv", "first_line"),
    [
        (["-NoProfile", "-EncodedCommand", "VwByAGkAdABlAC0ASABvAHMAdAAgAHgA"], RUNNER_LINE),
        (list(powershell_argv("x")[1:]), b"V3JpdGUtSG9zdCB4\n"),
        (["-Command", "Get-VM"], RUNNER_LINE),
        (list(powershell_argv("x")[1:-1]), RUNNER_LINE),
    ],
)
async def test_the_standin_refuses_anything_but_the_shipped_bootstrap(
    tmp_path: Path, argv: list[str], first_line: bytes
) -> None:
    peer = LocalStandInPeer(tmp_path)
    process = await asyncio.create_subprocess_exec(
        str(peer.executable),
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(first_line), 10)
    assert process.returncode != 0
    assert stdout == b""
    assert b"stand-in PowerShell" in stderr


@pytest.mark.parametrize("mode", ["persistent", "oneshot"])
async def test_cancelling_a_local_call_leaves_no_process(tmp_path: Path, mode: str) -> None:
    peer = LocalStandInPeer(tmp_path, mode=mode)
    with peer.edit() as sim:
        sim.inject_fault("hang")
    async with peer.open_transport() as transport:
        task = asyncio.ensure_future(transport.run_operation(LIST_VMS, ALL, timeout=30))
        assert await _poll(lambda: bool(processes_mentioning(f"{STATE_VARIABLE}={peer.path}")))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Killed and reaped before the cancellation finished.
        assert processes_mentioning(f"{STATE_VARIABLE}={peer.path}") == []


async def test_closing_a_persistent_transport_stops_its_process(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    transport = peer.open_transport()
    await transport.run_operation(LIST_VMS, ALL, timeout=10)
    assert len(processes_mentioning(f"{STATE_VARIABLE}={peer.path}")) == 1
    await transport.aclose()
    assert processes_mentioning(f"{STATE_VARIABLE}={peer.path}") == []
    with pytest.raises(TransportClosedError):
        await transport.run_operation(LIST_VMS, ALL, timeout=10)


async def test_a_persistent_session_reuses_one_process_and_restarts_a_dead_one(
    tmp_path: Path,
) -> None:
    peer = LocalStandInPeer(tmp_path)
    marker = f"{STATE_VARIABLE}={peer.path}"
    async with peer.open_transport() as transport:
        for _ in range(3):
            await transport.run_operation(LIST_VMS, ALL, timeout=10)
        (first,) = processes_mentioning(marker)
        os.kill(first, 9)
        assert await _poll(lambda: not processes_mentioning(marker))
        result = await transport.run_operation(LIST_VMS, ALL, timeout=10)
        (second,) = processes_mentioning(marker)
    assert len(result.output) == 1
    assert second != first
    starts = [line for line in peer.log.read_text().splitlines() if '"argv"' in line]
    assert len(starts) == 2


def test_urls_choose_the_executable_and_mode() -> None:
    local = parse_target("local://?executable=/opt/pwsh&mode=oneshot")
    assert local == LocalTarget(executable="/opt/pwsh", mode="oneshot")
    assert parse_target(local.url) == local
    ssh = parse_target("ssh://admin@hv1?shell=cmd&executable=pwsh&mode=oneshot")
    assert (ssh.powershell, ssh.mode, ssh.shell) == ("pwsh", "oneshot", "cmd")  # type: ignore[attr-defined]
    assert parse_target("ssh://admin@hv1?shell=powershell").powershell == "powershell"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "local://?mode=sometimes",
        "ssh://hv1?mode=sometimes",
        "ssh://hv1?shell=cmd&executable=pwsh%20%26%20calc",
        "ssh://hv1?executable=%24(id)",
    ],
)
def test_bad_modes_and_executables_are_refused(url: str) -> None:
    with pytest.raises(Exception, match=r"mode|executable") as caught:
        parse_target(url)
    assert isinstance(caught.value, ValueError)


# --- over a real sshd -------------------------------------------------------


@pytest.fixture(scope="module")
def ssh_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("failures-sshd")


@pytest.fixture(scope="module")
def sshd(ssh_directory: Path) -> Iterator[OpenSSHServer]:
    if sshd_unavailable_reason() is not None:
        pytest.skip(str(sshd_unavailable_reason()))
    with standin_sshd(ssh_directory) as server:
        yield server


@pytest.mark.parametrize(
    ("shell", "mode"), [("powershell", "persistent"), ("cmd", "oneshot"), ("posix", "persistent")]
)
async def test_cancelling_an_ssh_call_leaves_no_remote_process(
    sshd: OpenSSHServer, ssh_directory: Path, shell: str, mode: str
) -> None:
    peer = SSHStandInPeer(sshd, ssh_directory, shell=shell, mode=mode)
    marker = f"{STATE_VARIABLE}={peer.path}"
    with peer.edit() as sim:
        sim.inject_fault("hang")
    async with peer.open_transport() as transport:
        task = asyncio.ensure_future(transport.run_operation(LIST_VMS, ALL, timeout=30))
        assert await _poll(lambda: bool(processes_mentioning(marker)))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _none_left(marker) == []
        # The connection survives; the next call opens a new channel.
        result = await transport.run_operation(LIST_VMS, ALL, timeout=10)
    assert len(result.output) == 1
    assert await _none_left(marker) == []


async def test_an_ssh_timeout_leaves_no_remote_process(
    sshd: OpenSSHServer, ssh_directory: Path
) -> None:
    peer = SSHStandInPeer(sshd, ssh_directory, shell="cmd")
    with peer.edit() as sim:
        sim.inject_fault("hang")
    async with peer.open_transport() as transport:
        with pytest.raises(OperationTimeoutError):
            await transport.run_operation(LIST_VMS, ALL, timeout=0.8)
        assert await _none_left(f"{STATE_VARIABLE}={peer.path}") == []


@pytest.mark.parametrize("shell", ["cmd", "powershell", "posix"])
async def test_a_missing_remote_powershell_is_reported(
    sshd: OpenSSHServer, ssh_directory: Path, shell: str
) -> None:
    peer = SSHStandInPeer(sshd, ssh_directory, shell=shell)
    transport: Transport = peer.target(executable="hvintegration-no-such-pwsh").open()
    async with transport:
        with pytest.raises(PowerShellNotFoundError, match="hvintegration-no-such-pwsh"):
            await transport.run_operation(LIST_VMS, ALL, timeout=10)


async def test_ssh_authentication_failure_is_reported(
    sshd: OpenSSHServer, ssh_directory: Path, tmp_path: Path
) -> None:
    other_key = tmp_path / "other_key"
    await (
        await asyncio.create_subprocess_exec(
            "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)
        )
    ).wait()
    peer = SSHStandInPeer(sshd, ssh_directory)
    transport = peer.target(client_keys=(str(other_key),)).open()
    try:
        with pytest.raises(AuthenticationError) as caught:
            await transport.run_operation(LIST_VMS, ALL, timeout=10)
    finally:
        await transport.aclose()
    assert str(other_key) not in str(caught.value)
    assert caught.value.operation == "list_vms"


async def test_ssh_host_key_mismatch_is_reported(
    sshd: OpenSSHServer, ssh_directory: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other_host"
    await (
        await asyncio.create_subprocess_exec(
            "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)
        )
    ).wait()
    algorithm, key = (tmp_path / "other_host.pub").read_text().split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {algorithm} {key}\n")
    peer = SSHStandInPeer(sshd, ssh_directory)
    transport = peer.target(known_hosts=str(known_hosts)).open()
    try:
        for _ in range(2):
            with pytest.raises(HostKeyError):
                await transport.run_operation(LIST_VMS, ALL, timeout=10)
    finally:
        await transport.aclose()


@pytest.mark.parametrize(
    ("shell", "mode", "starts"), [("cmd", "persistent", 1), ("powershell", "oneshot", 3)]
)
async def test_the_remote_command_line_is_the_fixed_bootstrap_only(
    sshd: OpenSSHServer, ssh_directory: Path, shell: str, mode: str, starts: int
) -> None:
    peer = SSHStandInPeer(sshd, ssh_directory, shell=shell, mode=mode)
    peer.log.write_text("")
    secret = "$(Stop-Computer) 'it\u2019s' \"quoted\""
    async with peer.open_transport() as transport:
        for _ in range(3):
            await transport.run_operation(LIST_VMS, {"VM": [{"Name": secret}]}, timeout=10)
    entries = [json.loads(line) for line in peer.log.read_text().splitlines()]
    argvs = [entry["argv"] for entry in entries if "argv" in entry]
    # The login shell handed the stand-in exactly the fixed words: nothing
    # of the request is on the command line, and a persistent transport
    # starts one remote PowerShell for every call.
    assert argvs == [list(powershell_argv("powershell")[1:])] * starts
    received = [entry["parameters"] for entry in entries if "parameters" in entry]
    assert received == [{"VM": [{"Name": secret}]}] * 3


async def test_closing_during_a_call_fails_it_as_closed_and_starts_nothing(
    tmp_path: Path,
) -> None:
    peer = LocalStandInPeer(tmp_path)
    marker = f"{STATE_VARIABLE}={peer.path}"
    transport = peer.open_transport()
    await transport.run_operation(LIST_VMS, ALL, timeout=10)
    with peer.edit() as sim:
        sim.inject_fault("hang")
    task = asyncio.ensure_future(transport.run_operation(LIST_VMS, ALL, timeout=30))
    assert await _poll(lambda: _fault_taken(peer))
    await transport.aclose()
    with pytest.raises(TransportClosedError):
        await task
    assert await _none_left(marker) == []
    starts = [line for line in peer.log.read_text().splitlines() if '"argv"' in line]
    assert len(starts) == 1


def _fault_taken(peer: LocalStandInPeer) -> bool:
    with peer.edit() as sim:
        return not sim.faults


async def test_a_one_shot_answer_is_not_lost_to_a_slow_exit(tmp_path: Path) -> None:
    # The peer answers at once, then takes 1.5 s to exit: the call must
    # return its answer, not time out while the process winds down.
    target = LocalTarget(executable=_fake(tmp_path, "slow-exit"), mode="oneshot")
    transport = target.open()
    result = await transport.run_operation(LIST_VMS, ALL, timeout=1.0)
    assert result.output == ({"Name": "demovm"},)
    await transport.aclose()
    assert await _none_left(str(tmp_path)) == []


async def test_a_lost_request_is_resent_only_when_repeating_it_is_harmless(tmp_path: Path) -> None:
    # Each fake process answers one request, then dies on reading the next:
    # the library cannot tell whether that request ran.
    target = LocalTarget(executable=_fake(tmp_path, "one-then-die"), mode="persistent")
    async with target.open() as transport:
        await transport.run_operation(LIST_VMS, ALL, timeout=10)
        again = await transport.run_operation(LIST_VMS, ALL, timeout=10)
        assert again.output == ({"Name": "demovm"},)
        copy = {
            "VM": {"Name": "demovm"},
            "SourcePath": "C:\\a",
            "DestinationPath": "C:\\b",
            "CreateFullPath": False,
            "Overwrite": False,
        }
        with pytest.raises(TransportBrokenError):
            await transport.run_operation(COPY_VM_FILE, copy, timeout=10)
    assert await _none_left(str(tmp_path)) == []
