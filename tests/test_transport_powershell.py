"""The PowerShell transports pass the conformance suite against the stand-in
PowerShell, run as a real child process: locally through ``local://`` and
behind a real sshd through ``ssh://`` (shell=powershell and shell=cmd), each
with a persistent process and with one process per operation. The Windows
guest API runs over the same transport to a stand-in inside a guest."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration.catalogue import GUEST_SERVICE_INTERFACE, HEARTBEAT
from hvintegration.errors import HvIntegrationError
from hvintegration.operations import GET_INTEGRATION_SERVICES, LIST_VMS, SET_INTEGRATION_SERVICES
from hvintegration.simulator.state import append_call, load_host
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


async def test_the_standin_answers_reads_without_rewriting_its_state_file(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    with peer.edit() as host:
        for number in range(30):
            host.add_vm(f"vm{number:02d}")
    before = os.stat(peer.path)
    async with peer.open_transport() as transport:
        for _ in range(3):
            read = await transport.run_operation(GET_INTEGRATION_SERVICES, {"VM": None}, timeout=20)
        after_reads = os.stat(peer.path)
        # Another process changes the host: the next read sees it.
        with peer.edit() as host:
            host.vms[0].enabled[GUEST_SERVICE_INTERFACE.component_id] = True
        again = await transport.run_operation(
            GET_INTEGRATION_SERVICES, {"VM": [{"Name": "demovm"}]}, timeout=20
        )
        change = {
            "VM": {"Name": "vm00"},
            "ServiceId": str(HEARTBEAT.component_id),
            "Enabled": False,
        }
        await transport.run_operation(SET_INTEGRATION_SERVICES, {"Changes": [change]}, timeout=20)
    after_write = os.stat(peer.path)
    assert len(read.output) == 31 * 6
    assert (after_reads.st_ino, after_reads.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert after_write.st_ino != after_reads.st_ino
    guest_interface = [s for s in again.output if s["Name"] == "Guest Service Interface"]
    assert [s["Enabled"] for s in guest_interface] == [True]
    # Every call is counted: the reads through the journal, which the
    # write folded into the file.
    saved = load_host(peer.path)
    assert saved.calls[-5:] == ["get_integration_services"] * 4 + ["set_integration_services"]
    assert not (tmp_path / ".host.json.calls").exists()
    assert saved.vms[1].enabled[HEARTBEAT.component_id] is False


async def test_a_read_with_a_fault_pending_takes_the_fault(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    async with peer.open_transport() as transport:
        await transport.run_operation(LIST_VMS, {"VM": None}, timeout=20)
        with peer.edit() as host:
            host.inject_fault("error", operation="list_vms")
        with pytest.raises(HvIntegrationError):
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=20)
        result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=20)
    assert [vm["Name"] for vm in result.output] == ["demovm"]
    host = load_host(peer.path)
    assert host.faults == []
    assert host.calls == ["list_vms"] * 3


def test_a_journal_entry_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    LocalStandInPeer(tmp_path)
    append_call(path, "list_vms")
    with pytest.raises(ValueError, match="line end"):
        append_call(path, "list_vms\nset_integration_services")
    assert load_host(path).calls == ["list_vms"]
