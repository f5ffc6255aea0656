"""The psrp:// transport passes the conformance suite against a real PSRP peer.

The peer is :mod:`hvintegration.testing.psrp_server`: psrpcore's server
classes behind the simulator, reached as a child process (``ProcessInfo``)
and as the ``powershell`` subsystem of a real OpenSSH sshd on loopback
(``SSHInfo``). Each conversation is real PSRP: handshake, fragments, CLIXML.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.conformance import StateFilePeer, TransportConformance
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.transport.base import Transport
from hvintegration.transport.psrp import PSRPTarget

SERVER = ("-m", "hvintegration.testing.psrp_server")


def server_target(state: str | os.PathLike[str], *extra: str) -> PSRPTarget:
    """A target that runs the test server as a child process."""
    arguments = (*SERVER, "--state", os.fspath(state), *extra)
    return PSRPTarget("localhost", via="process", executable=sys.executable, arguments=arguments)


class ProcessPeer(StateFilePeer):
    """The PSRP test server as a child process of this one."""

    def open_transport(self) -> Transport:
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
    with OpenSSHServer(extra_config=[f"Subsystem powershell {command}"]) as server:
        yield server, state


class SSHPeer(StateFilePeer):
    """The PSRP test server as sshd's ``powershell`` subsystem."""

    def __init__(self, server: OpenSSHServer, path: Path) -> None:
        # sshd serves one state file for the whole module: start each test
        # from a fresh default host.
        save_host(SimulatedHost(), path)
        super().__init__(path)
        self.server = server

    def open_transport(self) -> Transport:
        target = PSRPTarget(
            "127.0.0.1",
            via="ssh",
            port=self.server.port,
            user=self.server.user,
            known_hosts=str(self.server.known_hosts),
            client_keys=(str(self.server.client_key),),
        )
        return target.open()


class TestOverSSH(TransportConformance):
    @pytest.fixture
    def peer(self, sshd: tuple[OpenSSHServer, Path]) -> SSHPeer:
        server, state = sshd
        return SSHPeer(server, state)
