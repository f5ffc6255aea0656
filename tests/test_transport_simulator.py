"""The simulator transport passes the transport conformance suite, in memory
and with its host kept in a state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvintegration.simulator.targets import HostStateFile
from hvintegration.testing.conformance import InProcessPeer, StateFilePeer, TransportConformance
from hvintegration.transport.base import Transport


class TestInMemory(TransportConformance):
    @pytest.fixture
    def peer(self) -> InProcessPeer:
        return InProcessPeer()


class _FileBackedSimulator(StateFilePeer):
    def open_transport(self) -> Transport:
        return HostStateFile(self.path).open()


class TestStateFile(TransportConformance):
    @pytest.fixture
    def peer(self, tmp_path: Path) -> _FileBackedSimulator:
        return _FileBackedSimulator(tmp_path / "host.json")
