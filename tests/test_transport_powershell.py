"""The PowerShell transports pass the conformance suite against the stand-in
PowerShell, run as a real child process: locally through ``local://`` and
behind a real sshd through ``ssh://`` (shell=powershell and shell=cmd), each
with a persistent process and with one process per operation."""

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
