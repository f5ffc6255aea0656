"""The transport contract, checked on every transport against real peers.

For each transport (sim://, sim-linux://, local:// shell and PowerShell,
ssh:// shell and PowerShell, psrp:// over a child process and over SSH, and
PowerShell Direct) a cancelled ``aclose()`` leaves nothing behind (no child
or remote process, no SSH connection as the server's sockets show it), a
second ``aclose()`` is harmless, every call after closing raises
``TransportClosedError``, and a misspelt parameter, a bad argv or a bad
timeout is refused before anything is sent. Then the connects that can fail
half-way (a PSRP pool whose child or SSH channel started, an SSH PowerShell
channel whose process id never came, an SSH login that never finished)
release what they opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from hvintegration.errors import (
    AuthenticationError,
    InvalidParameterError,
    OperationTimeoutError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
)
from hvintegration.host import HyperVHost
from hvintegration.operations import GET_GUEST_SERVICES, LIST_VMS
from hvintegration.simulator.guest_state import DEFAULT_CREDENTIAL
from hvintegration.testing.conformance import InProcessPeer, StateFilePeer
from hvintegration.testing.powershell_peers import LocalStandInPeer, SSHStandInPeer, standin_sshd
from hvintegration.testing.processes import processes_mentioning
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.transport import parse_target
from hvintegration.transport._outofproc import GuardedSSHInfo
from hvintegration.transport.base import PowerShellTransport, ShellTransport, Transport
from hvintegration.transport.local import LocalTransport
from hvintegration.transport.psrp import PSRPTarget
from hvintegration.transport.ssh import SSHTarget
from hvintegration.windows.direct import Credential

PSRP_SERVER = (sys.executable, "-m", "hvintegration.testing.psrp_server")
SSH_CASES = {"ssh-shell", "ssh-powershell", "psrp-ssh"}


# -- what is left ---------------------------------------------------------------


def established(port: int) -> int:
    """TCP connections to or from ``port`` on this machine that are still established.

    Both ends of a loopback connection are listed, so the server's side of
    a connection the client dropped is gone (or closing) once sshd saw it.
    """
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                ports = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
                if state == "01" and port in ports:
                    count += 1
    return count


async def settled(leftovers: Callable[[], list[str]], within: float = 10.0) -> list[str]:
    """``leftovers()`` once it is empty, or as it is after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    left = leftovers()
    while left and loop.time() < deadline:
        await asyncio.sleep(0.05)
        left = leftovers()
    return left


# -- the transports ---------------------------------------------------------------


@attrs.define
class Case:
    """One transport to check, with a peer that can tell what the transport left.

    Attributes:
        open: A new transport, not yet connected.
        warm: A call that makes the transport hold what it holds (a process,
            a connection).
        leftovers: What of the transport's is still alive, described; empty
            when nothing is.
        holds: Whether a warm transport holds something ``leftovers`` sees.
        requests: How many requests the peer has received so far.
        after: Checks once the transport is closed (PowerShell Direct: the
            host's transport still works).
        busy: For a shell on a real machine, a command line that runs until
            it is killed; ``leftovers`` sees it by its ``BUSY`` argument.
    """

    open: Callable[[], Transport]
    warm: Callable[[Transport], Awaitable[object]]
    leftovers: Callable[[], list[str]] = lambda: []
    holds: bool = False
    requests: Callable[[], int] | None = None
    after: Callable[[], Awaitable[None]] | None = None
    busy: bool = False


BUSY = f"contract-busy-{uuid.uuid4().hex}"
# Writes until it is killed, or until its stdout is gone (SIGPIPE): so it
# ends both when its process group is killed and when its channel closes.
BUSY_ARGV = ["sh", "-c", "while :; do echo x; sleep 0.1; done", BUSY]


def _busy_processes() -> list[str]:
    return [f"busy command {pid}" for pid in processes_mentioning(BUSY)]


async def _list_vms(transport: Transport) -> object:
    assert isinstance(transport, PowerShellTransport)
    return await transport.run_operation(LIST_VMS, {"VM": None}, timeout=20)


async def _true(transport: Transport) -> object:
    assert isinstance(transport, ShellTransport)
    return await transport.run_command(["true"], timeout=20)


def _round_trips(peer: Any) -> Callable[[], int]:
    def count() -> int:
        with peer.edit() as host:
            return int(host.round_trips)

    return count


@pytest.fixture(scope="module")
def ssh_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("contract-sshd")


@pytest.fixture(scope="module")
def sshd(ssh_directory: Path) -> Iterator[OpenSSHServer]:
    """One sshd for every SSH case: a POSIX shell, the stand-in PowerShell on
    its PATH, and the PSRP test server as its ``powershell`` subsystem, all on
    ``ssh_directory/host.json``."""
    reason = sshd_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    state = ssh_directory / "host.json"
    psrp = " ".join([*PSRP_SERVER, "--state", str(state)])
    silent = f"{sys.executable} -c 'import sys; sys.stdin.buffer.read()' contract-silent-subsystem"
    subsystems = (f"Subsystem powershell {psrp}", f"Subsystem silent {silent}")
    with standin_sshd(ssh_directory, extra_config=subsystems) as server:
        yield server


def _ssh_settings(server: OpenSSHServer, **overrides: object) -> dict[str, object]:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "known_hosts": str(server.known_hosts),
        "client_keys": (str(server.client_key),),
    }
    settings.update(overrides)
    return settings


def _psrp_ssh_target(server: OpenSSHServer, **overrides: object) -> PSRPTarget:
    return PSRPTarget(via="ssh", **_ssh_settings(server, **overrides))  # type: ignore[arg-type]


def _case(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    if name == "sim":
        peer = InProcessPeer()
        return Case(peer.open_transport, _list_vms, requests=lambda: int(peer.host.round_trips))
    if name == "sim-linux":
        return Case(lambda: parse_target("sim-linux://contract").open(), _true)
    if name == "local-shell":
        return Case(LocalTransport, _true, _busy_processes, busy=True)
    if name == "local-powershell":
        local = LocalStandInPeer(tmp_path)
        return Case(
            local.open_transport,
            _list_vms,
            lambda: [f"process {pid}" for pid in processes_mentioning(local.path)],
            holds=True,
            requests=_round_trips(local),
        )
    if name == "psrp-process":
        state = tmp_path / "host.json"
        process = StateFilePeer(state)
        target = PSRPTarget(
            "localhost",
            via="process",
            executable=sys.executable,
            arguments=(*PSRP_SERVER[1:], "--state", str(state)),
        )
        return Case(
            target.open,
            _list_vms,
            lambda: [f"process {pid}" for pid in processes_mentioning(f"--state\0{state}")],
            holds=True,
            requests=_round_trips(process),
        )
    if name == "powershell-direct":
        host_peer = InProcessPeer()
        host = HyperVHost(host_peer.open_transport(), timeout=20)
        admin = Credential(*DEFAULT_CREDENTIAL)

        async def guest_call(transport: Transport) -> object:
            assert isinstance(transport, PowerShellTransport)
            return await transport.run_operation(GET_GUEST_SERVICES, {"Name": None}, timeout=20)

        async def host_still_open() -> None:
            assert (
                len((await host.transport.run_operation(LIST_VMS, {"VM": None}, timeout=20)).output)
                == 1
            )

        return Case(
            lambda: host.vm("demovm").windows(admin).transport,
            guest_call,
            requests=lambda: int(host_peer.host.round_trips),
            after=host_still_open,
        )
    server: OpenSSHServer = request.getfixturevalue("sshd")
    directory: Path = request.getfixturevalue("ssh_directory")

    def connections() -> list[str]:
        return [f"connection to port {server.port}"] * established(server.port)

    if name == "ssh-shell":
        shell = SSHTarget(**_ssh_settings(server))  # type: ignore[arg-type]
        return Case(
            shell.open,
            _true,
            lambda: connections() + _busy_processes(),
            holds=True,
            busy=True,
        )
    standin = SSHStandInPeer(server, directory, shell="posix")
    served = standin.path
    if name == "ssh-powershell":

        def ssh_leftovers() -> list[str]:
            return connections() + [f"process {p}" for p in processes_mentioning(served)]

        return Case(
            standin.open_transport,
            _list_vms,
            ssh_leftovers,
            holds=True,
            requests=_round_trips(standin),
        )
    assert name == "psrp-ssh"

    def psrp_leftovers() -> list[str]:
        return connections() + [f"process {p}" for p in processes_mentioning(f"--state\0{served}")]

    return Case(
        _psrp_ssh_target(server).open,
        _list_vms,
        psrp_leftovers,
        holds=True,
        requests=_round_trips(standin),
    )


needs_sshd = pytest.mark.skipif(
    sshd_unavailable_reason() is not None, reason=str(sshd_unavailable_reason())
)
CASES = [
    "sim",
    "sim-linux",
    "local-shell",
    "local-powershell",
    pytest.param("ssh-shell", marks=needs_sshd),
    pytest.param("ssh-powershell", marks=needs_sshd),
    "psrp-process",
    pytest.param("psrp-ssh", marks=needs_sshd),
    "powershell-direct",
]


@pytest.fixture(params=CASES)
async def case(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Case]:
    made = _case(request.param, request, tmp_path)
    yield made
    # Whatever a failed check left must not leak into the next one.
    assert await settled(made.leftovers) == []


# -- the contract ---------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 4, 16, 64])
async def test_a_cancelled_close_leaves_nothing(case: Case, steps: int) -> None:
    transport = case.open()
    await transport.open()
    await case.warm(transport)
    running = None
    if case.busy:
        # Close while a command runs: closing must kill it too.
        assert isinstance(transport, ShellTransport)
        running = asyncio.ensure_future(transport.run_command(BUSY_ARGV, timeout=60))
        assert await settled(lambda: [] if _busy_processes() else ["not started"]) == []
        # Give the transport time to learn the remote process id, so that
        # closing has a round trip to make (killing it) and can be cancelled.
        await asyncio.sleep(0.5)
    if case.holds or case.busy:
        # The check below would see what the transport holds.
        assert case.leftovers() != []
    closing = asyncio.ensure_future(transport.aclose())
    # Let the close start (a task cancelled before its first step never
    # runs at all), get ``steps`` turns of the loop, then cancel it.
    for _ in range(steps):
        await asyncio.sleep(0)
    closing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await closing
    assert transport.closed
    assert await settled(case.leftovers) == []
    if running is not None:
        with pytest.raises(TransportClosedError):
            await running
    await transport.aclose()
    with pytest.raises(TransportClosedError):
        await case.warm(transport)
    if case.after is not None:
        await case.after()


async def test_close_twice_and_calls_after_close_are_refused(case: Case) -> None:
    transport = case.open()
    async with transport:
        await case.warm(transport)
    await transport.aclose()
    assert transport.closed
    assert await settled(case.leftovers) == []
    with pytest.raises(TransportClosedError):
        await case.warm(transport)
    with pytest.raises(TransportClosedError):
        await transport.open()
    if isinstance(transport, PowerShellTransport):
        with pytest.raises(TransportClosedError):
            await transport.run_operation(LIST_VMS, {"VMName": None}, timeout=-1)
    if isinstance(transport, ShellTransport):
        with pytest.raises(TransportClosedError):
            await transport.run_command([], timeout=-1)
    if case.after is not None:
        await case.after()


async def _refused_before_sending(
    case: Case, call: Callable[[Transport], Awaitable[object]]
) -> None:
    before = case.requests() if case.requests is not None else 0
    transport = case.open()
    try:
        with pytest.raises(InvalidParameterError):
            await call(transport)
        # Nothing was started for it: no process, no connection, no request.
        assert case.leftovers() == []
        if case.requests is not None:
            assert case.requests() == before
        # The transport still works.
        await case.warm(transport)
    finally:
        await transport.aclose()


async def test_a_misspelt_parameter_or_a_bad_argv_is_refused_before_anything_is_sent(
    case: Case,
) -> None:
    async def misspelt(transport: Transport) -> object:
        if isinstance(transport, PowerShellTransport):
            operation = GET_GUEST_SERVICES if case.after is not None else LIST_VMS
            return await transport.run_operation(operation, {"VMName": "demovm"}, timeout=20)
        assert isinstance(transport, ShellTransport)
        return await transport.run_command(["echo", "nul\0inside"], timeout=20)

    await _refused_before_sending(case, misspelt)


@pytest.mark.parametrize("timeout", [0, -1, math.nan, "5", True], ids=repr)
async def test_a_bad_timeout_is_refused_before_anything_is_sent(case: Case, timeout: Any) -> None:
    async def bad_timeout(transport: Transport) -> object:
        if isinstance(transport, PowerShellTransport):
            operation = GET_GUEST_SERVICES if case.after is not None else LIST_VMS
            parameters = {"Name": None} if case.after is not None else {"VM": None}
            return await transport.run_operation(operation, parameters, timeout=timeout)
        assert isinstance(transport, ShellTransport)
        return await transport.run_command(["true"], timeout=timeout)

    await _refused_before_sending(case, bad_timeout)


# -- a failed connect closes what it opened -----------------------------------------


def _silent_peer(marker: str, **settings: Any) -> PSRPTarget:
    """A child that starts, reads and never answers: the pool never opens."""
    code = "import sys; sys.stdin.buffer.read()"
    return PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=("-c", code, marker),
        **settings,
    )


def _marked(marker: str) -> Callable[[], list[str]]:
    return lambda: [f"process {pid}" for pid in processes_mentioning(marker)]


async def test_a_psrp_pool_that_never_opens_leaves_no_child() -> None:
    marker = f"contract-silent-{uuid.uuid4().hex}"
    transport = _silent_peer(marker, connect_timeout=1).open()
    with pytest.raises(OperationTimeoutError):
        await transport.open()
    assert await settled(_marked(marker)) == []
    await transport.aclose()


async def test_a_psrp_peer_that_answers_garbage_leaves_no_child() -> None:
    marker = f"contract-garbage-{uuid.uuid4().hex}"
    code = "import sys; print('not PSRP', flush=True); sys.stdin.buffer.read()"
    target = PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=("-c", code, marker),
        connect_timeout=10,
    )
    transport = target.open()
    with pytest.raises(TransportError):
        await transport.open()
    assert await settled(_marked(marker)) == []
    await transport.aclose()


async def test_a_cancelled_psrp_open_leaves_no_child() -> None:
    marker = f"contract-cancelled-{uuid.uuid4().hex}"
    transport = _silent_peer(marker).open()
    opening = asyncio.ensure_future(transport.open())
    assert await settled(lambda: [] if processes_mentioning(marker) else ["not started"]) == []
    opening.cancel()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert await settled(_marked(marker)) == []
    await transport.aclose()


@needs_sshd
@pytest.mark.parametrize("subsystem", ["silent", "nosuchsubsystem"])
async def test_a_psrp_pool_over_ssh_that_never_opens_closes_the_connection(
    sshd: OpenSSHServer, subsystem: str
) -> None:
    transport = _psrp_ssh_target(sshd, subsystem=subsystem, connect_timeout=2).open()
    with pytest.raises(TransportError):
        await transport.open()

    def left() -> list[str]:
        connections = [f"connection to port {sshd.port}"] * established(sshd.port)
        return connections + _marked("contract-silent-subsystem")()

    assert await settled(left) == []
    await transport.aclose()


@pytest.fixture
def stranger_key(tmp_path: Path) -> Path:
    """A private key no server here trusts."""
    key = tmp_path / "stranger"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return key


@needs_sshd
async def test_an_ssh_login_that_fails_leaves_no_connection(
    sshd: OpenSSHServer, stranger_key: Path
) -> None:
    key = stranger_key
    for target in (
        SSHTarget(**_ssh_settings(sshd, client_keys=(str(key),))),  # type: ignore[arg-type]
        _psrp_ssh_target(sshd, client_keys=(str(key),)),
    ):
        transport = target.open()
        with pytest.raises(AuthenticationError):
            await transport.open()
        assert await settled(lambda: ["connection"] * established(sshd.port)) == []
        await transport.aclose()


@needs_sshd
async def test_an_ssh_powershell_channel_that_never_reports_its_process_is_closed(
    tmp_path: Path,
) -> None:
    marker = f"contract-no-pid-{uuid.uuid4().hex}"
    # The login runs this instead of the command line: it never prints the
    # process id marker, and ends only when its channel closes.
    silent = f"{sys.executable} -c 'import sys; sys.stdin.buffer.read()' {marker}"
    with OpenSSHServer(extra_config=[f"ForceCommand {silent}"]) as server:
        target = SSHTarget(**_ssh_settings(server, shell="posix", connect_timeout=1.5))  # type: ignore[arg-type]
        async with target.open() as transport:
            with pytest.raises(TransportBrokenError, match="did not start PowerShell"):
                await transport.run_operation(LIST_VMS, {"VM": None}, timeout=20)
            assert await settled(_marked(marker)) == []
        assert await settled(lambda: ["connection"] * established(server.port)) == []


# -- one SSH connect, one mapping ------------------------------------------------------


@contextlib.asynccontextmanager
async def _mute_listener() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_an_ssh_connect_timeout_is_an_operation_timeout_on_every_ssh_path(
    tmp_path: Path,
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    common: dict[str, Any] = {
        "host": "127.0.0.1",
        "known_hosts": str(known_hosts),
        "connect_timeout": 0.5,
    }
    async with _mute_listener() as port:
        ssh = SSHTarget(port=port, **common).open()
        with pytest.raises(OperationTimeoutError):
            await ssh.open()
        await ssh.aclose()
        psrp_target = PSRPTarget(via="ssh", port=port, **common)
        psrp_transport = psrp_target.open()
        with pytest.raises(OperationTimeoutError):
            await psrp_transport.open()
        await psrp_transport.aclose()
        # The PSRP carrier's own connect, below the pool's deadline, maps
        # the timeout the same way.
        info = psrp_target.connection_info()
        assert isinstance(info, GuardedSSHInfo)
        with pytest.raises(OperationTimeoutError) as caught:
            await info.create_async(None, None)
        assert caught.value.target == psrp_target.url
