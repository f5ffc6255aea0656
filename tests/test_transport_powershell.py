"""The PowerShell transports pass the conformance suite against the stand-in
PowerShell, run as a real child process: locally through ``local://`` and
behind a real sshd through ``ssh://`` (shell=powershell and shell=cmd), each
with a persistent process and with one process per operation. The Windows
guest API runs over the same transport to a stand-in inside a guest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration.testing.conformance import TransportConformance
from hvintegration.testing.powershell_peers import (
    LocalStandInPeer,
    SSHStandInPeer,
    standin_sshd,
)
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.testing.standin_powershell import install_standin
from hvintegration.windows import WindowsGuest


@pytest.fixture(scope="module")
def sshd_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standin-sshd")


@pytest.fixture(scope="module")
def sshd(sshd_directory: Path) -> Iterator[OpenSSHServer]:
    if sshd_unavailable_reason() is not None:
        pytest.skip(str(sshd_unavailable_reason()))
    with standin_sshd(sshd_directory) as server:
        yield server


class _ChildProcessConformance(TransportConformance):
    # A child-process peer on a busy machine may need more than a second to
    # start; a hang must be reached before the call gives up.
    hang_timeout = 1.5


class TestLocalPersistent(_ChildProcessConformance):
    @pytest.fixture
    def peer(self, tmp_path: Path) -> LocalStandInPeer:
        return LocalStandInPeer(tmp_path, mode="persistent")


class TestLocalOneShot(_ChildProcessConformance):
    @pytest.fixture
    def peer(self, tmp_path: Path) -> LocalStandInPeer:
        return LocalStandInPeer(tmp_path, mode="oneshot")


class TestSSHPersistent(_ChildProcessConformance):
    @pytest.fixture
    def peer(self, sshd: OpenSSHServer, sshd_directory: Path) -> SSHStandInPeer:
        return SSHStandInPeer(sshd, sshd_directory, shell="powershell", mode="persistent")


class TestSSHOneShot(_ChildProcessConformance):
    @pytest.fixture
    def peer(self, sshd: OpenSSHServer, sshd_directory: Path) -> SSHStandInPeer:
        return SSHStandInPeer(sshd, sshd_directory, shell="cmd", mode="oneshot")


async def test_a_windows_guest_is_managed_over_ssh_with_shell_powershell(tmp_path: Path) -> None:
    if sshd_unavailable_reason() is not None:
        pytest.skip(str(sshd_unavailable_reason()))
    bin_directory = tmp_path / "bin"
    install_standin(bin_directory, tmp_path / "host.json", guest="demovm")
    path = f"SetEnv PATH={bin_directory}:/usr/local/bin:/usr/bin:/bin"
    with OpenSSHServer(extra_config=[path]) as server:
        peer = SSHStandInPeer(server, tmp_path, shell="powershell")
        async with WindowsGuest.connect(peer.target()) as guest:
            before = {s.name: s.status for s in await guest.services()}
            stopped = await guest.service("vmicguestinterface").stop()
            after = await guest.service("vmicguestinterface").refresh()
    assert before["vmicheartbeat"] == "Running"
    assert stopped.status == after.status == "Stopped"
