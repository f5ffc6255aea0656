"""The psrp:// transport passes the conformance suite against a real PSRP peer.

The peer is :mod:`hvintegration.testing.psrp_server`: psrpcore's server
classes behind the simulator, reached as a child process (``ProcessInfo``)
and as the ``powershell`` subsystem of a real OpenSSH sshd on loopback
(``SSHInfo``). Each conversation is real PSRP: handshake, fragments, CLIXML.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from hvintegration.errors import HostKeyError, TransportBrokenError
from hvintegration.host import HyperVHost
from hvintegration.operations import LIST_VMS
from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.conformance import StateFilePeer, TransportConformance
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.transport._outofproc import psrp
from hvintegration.transport.base import PowerShellTransport
from hvintegration.transport.psrp import PSRPTarget, PSRPTransport

SERVER = ("-m", "hvintegration.testing.psrp_server")


def server_target(state: str | os.PathLike[str], *extra: str) -> PSRPTarget:
    """A target that runs the test server as a child process."""
    arguments = (*SERVER, "--state", os.fspath(state), *extra)
    return PSRPTarget("localhost", via="process", executable=sys.executable, arguments=arguments)


class ProcessPeer(StateFilePeer):
    """The PSRP test server as a child process of this one."""

    def open_transport(self) -> PowerShellTransport:
        return server_target(self.path).open()


class TestOverAChildProcess(TransportConformance):
    @pytest.fixture
    def peer(self, tmp_path: Path) -> ProcessPeer:
        return ProcessPeer(tmp_path / "host.json")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenSSHServer, Path]]:
    reason = sshd_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("psrp-ssh") / "host.json"
    command = " ".join([sys.executable, *SERVER, "--state", str(state)])
    subsystems = [
        f"Subsystem powershell {command}",
        # The same server, writing to stderr before it answers list_vms.
        f"Subsystem noisy {command} --stderr-on list_vms",
    ]
    with OpenSSHServer(extra_config=subsystems) as server:
        yield server, state


class SSHPeer(StateFilePeer):
    """The PSRP test server as sshd's ``powershell`` subsystem."""

    def __init__(self, server: OpenSSHServer, path: Path) -> None:
        # sshd serves one state file for the whole module: start each test
        # from a fresh default host.
        save_host(SimulatedHost(), path)
        super().__init__(path)
        self.server = server

    def target(self, subsystem: str = "powershell") -> PSRPTarget:
        return PSRPTarget(
            "127.0.0.1",
            via="ssh",
            port=self.server.port,
            user=self.server.user,
            known_hosts=str(self.server.known_hosts),
            client_keys=(str(self.server.client_key),),
            subsystem=subsystem,
        )

    def open_transport(self) -> PowerShellTransport:
        return self.target().open()


class TestOverSSH(TransportConformance):
    @pytest.fixture
    def peer(self, sshd: tuple[OpenSSHServer, Path]) -> SSHPeer:
        server, state = sshd
        return SSHPeer(server, state)


@pytest.fixture
def ssh_peer(sshd: tuple[OpenSSHServer, Path]) -> SSHPeer:
    server, state = sshd
    return SSHPeer(server, state)


def subsystem_pids(state: Path) -> list[int]:
    """Processes (sshd's subsystem children) serving ``state``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                status = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(state).encode() in cmdline and b"--state" in cmdline and status != "Z":
                found.append(int(entry))
    return found


async def test_ssh_stderr_of_the_subsystem_stays_out_of_the_stream(ssh_peer: SSHPeer) -> None:
    async with ssh_peer.target("noisy").open() as transport:
        result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=10)
        again = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=10)
    assert len(result.output) == len(again.output) == 1


async def test_ssh_subsystem_killed_mid_pipeline(ssh_peer: SSHPeer) -> None:
    with ssh_peer.edit() as host:
        host.inject_fault("hang", operation="list_vms")
    async with ssh_peer.open_transport() as transport:
        assert isinstance(transport, PSRPTransport)
        [server] = subsystem_pids(Path(ssh_peer.path))
        call = asyncio.ensure_future(transport.run_operation(LIST_VMS, {"VM": None}, timeout=30))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        os.kill(server, signal.SIGKILL)
        with pytest.raises(TransportBrokenError, match="SSH channel"):
            await call
        assert time.monotonic() - started < 5
        result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=10)
        assert len(result.output) == 1
        assert transport.pools_opened == 2
    # sshd ends the subsystem when the channel closes; give it a moment.
    for _ in range(100):
        if not subsystem_pids(Path(ssh_peer.path)):
            break
        await asyncio.sleep(0.05)
    assert subsystem_pids(Path(ssh_peer.path)) == []


async def test_ssh_host_key_is_verified(ssh_peer: SSHPeer, tmp_path: Path) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(
        f"[127.0.0.1]:{ssh_peer.server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIBu0V0w6dT0VhZpHqCkBQpmWyqxkGmxuUAXrUv0JrG4c\n"
    )
    target = attrs.evolve(ssh_peer.target(), known_hosts=str(other))
    transport = target.open()
    with pytest.raises(HostKeyError, match="not trusted"):
        await transport.open()
    await transport.aclose()


async def test_a_psrp_url_reaches_the_server_end_to_end(tmp_path: Path) -> None:
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    query = urllib.parse.urlencode(
        [
            ("via", "process"),
            ("executable", sys.executable),
            *(("arg", arg) for arg in (*SERVER, "--state", str(state))),
        ]
    )
    async with HyperVHost.connect(f"psrp://localhost?{query}", timeout=10) as host:
        vms = await host.list_vms()
        gsi = await host.vm("demovm").integration_service("Guest Service Interface").enable()
    assert [vm.name for vm in vms] == ["demovm"]
    assert gsi.enabled is True


async def _two_calls(state: Path) -> tuple[Any, Any]:
    async with server_target(state).open() as transport:
        first = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=10)
        second = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=10)
    return first, second


async def test_an_operation_runs_in_a_local_scope_so_the_next_sees_none_of_its_variables(
    tmp_path: Path,
) -> None:
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    first, second = await _two_calls(state)
    assert first.errors == second.errors == ()
    assert len(second.output) == 1


async def test_the_server_sees_variables_a_dot_sourced_operation_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check above proves something only if the server notices a leak.
    add_script = psrp.AsyncPowerShell.add_script

    def dot_sourced(self: Any, script: str, use_local_scope: bool | None = None) -> Any:
        return add_script(self, script)

    monkeypatch.setattr(psrp.AsyncPowerShell, "add_script", dot_sourced)
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    first, second = await _two_calls(state)
    assert first.errors == ()
    assert [e.base_id for e in second.errors] == ["HvIntegrationTest.VariableFromEarlierOperation"]
