"""PowerShell Direct fails the way PowerShell reports it, and each shape has its error.

``Invoke-Command -VMId`` opens the VM session in the background; when it
cannot, PowerShell reports the broken runspace as ``PSSessionStateBroken``
(category ``OpenError``) with the reason's exception, not only as
``CreateRemoteRunspaceForVMFailed``. A refused credential is a
``PSDirectException``; a guest that takes no session (still booting, older
than Windows 10 / Server 2016, vmicvmsession disabled) is a
:class:`GuestNotReadyError`. The simulator and the stand-in PowerShell play
these shapes; the mapping is checked on the records PowerShell's own source
builds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hvintegration import (
    AuthenticationError,
    Credential,
    GuestNotReadyError,
    HyperVHost,
    PowerShellDirectError,
)
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import edit_state
from hvintegration.testing.powershell_peers import LocalStandInPeer
from hvintegration.transport.base import ErrorRecord
from hvintegration.transport.errormap import error_from_record, is_powershell_direct_failure

ADMIN = Credential("Administrator", "hvintegration")
BROKEN = "PSSessionStateBroken"


def _record(message: str, error_id: str, category: str, exception: str) -> ErrorRecord:
    return ErrorRecord(
        message, error_id=error_id, category=category, exception_type=exception, target_object="vm"
    )


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        # A wrong password: PSDirectException InvalidCredential, reported by
        # Invoke-Command's job as the broken session's reason.
        (
            _record(
                "The credential is invalid.",
                BROKEN,
                "OpenError",
                "System.Management.Automation.Remoting.PSDirectException",
            ),
            AuthenticationError,
        ),
        (
            _record(
                "The input username cannot be empty.",
                BROKEN,
                "OpenError",
                "System.Management.Automation.Remoting.PSDirectException",
            ),
            AuthenticationError,
        ),
        # The same refusal when the runspace is created synchronously
        # (Enter-PSSession; the public report's shape).
        (
            _record(
                "The credential is invalid.",
                "CreateRemoteRunspaceForVMFailed,Microsoft.PowerShell.Commands.EnterPSSessionCommand",
                "InvalidArgument",
                "System.Management.Automation.Remoting.PSDirectException",
            ),
            AuthenticationError,
        ),
        # A booting guest: the socket connects to nothing.
        (
            _record(
                "A failure occurred while attempting to connect to the target virtual machine.",
                BROKEN,
                "OpenError",
                "System.Management.Automation.PSInvalidOperationException",
            ),
            GuestNotReadyError,
        ),
        (
            _record(
                "A failure occurred while attempting to connect to the target virtual machine.",
                "VMSessionConnectFailed",
                "InvalidOperation",
                "System.Management.Automation.PSInvalidOperationException",
            ),
            GuestNotReadyError,
        ),
        # An old guest, as a public Enter-PSSession report shows it.
        (
            _record(
                "An error has occurred which Windows PowerShell cannot handle. A remote "
                "session might have ended.",
                "CreateRemoteRunspaceForVMFailed,Microsoft.PowerShell.Commands.EnterPSSessionCommand",
                "InvalidOperation",
                "System.Management.Automation.Remoting.PSRemotingDataStructureException",
            ),
            GuestNotReadyError,
        ),
        (
            _record(
                "No connection could be made because the target machine actively refused it.",
                f"10061,{BROKEN}",
                "OpenError",
                "System.Net.Sockets.SocketException",
            ),
            GuestNotReadyError,
        ),
    ],
)
def test_powershell_direct_records_map_to_their_errors(
    record: ErrorRecord, expected: type[Exception]
) -> None:
    assert is_powershell_direct_failure(record)
    error = error_from_record(record, target="local://#vm=vm", operation="get_guest_services")
    assert type(error) is expected


def test_a_host_too_old_for_powershell_direct_is_not_a_guest_problem() -> None:
    record = ErrorRecord(
        "PowerShell Direct needs a Windows 10 or Windows Server 2016 host or newer.",
        error_id="HvIntegration.PowerShellDirectUnsupported",
        category="NotImplemented",
    )
    error = error_from_record(record, target="local://", operation="get_guest_services")
    assert type(error) is PowerShellDirectError


async def test_a_booting_guest_is_not_ready_in_the_simulator() -> None:
    sim = SimulatedHost()
    windows = sim.vm("demovm").windows
    assert windows is not None
    windows.booting = True
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(GuestNotReadyError, match="still be booting") as caught:
            await host.vm("demovm").windows(ADMIN).services()
        assert caught.value.error_id == BROKEN
        assert caught.value.category == "OpenError"
        windows.booting = False
        assert len(await host.vm("demovm").windows(ADMIN).services()) == 8


async def test_the_stand_in_plays_the_broken_session_shapes(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    with edit_state(peer.path) as lab:
        lab.add_vm("legacy", guest="windows-server-2012-r2")

    def booting(value: bool) -> None:
        with edit_state(peer.path) as lab:
            windows = lab.vm("demovm").windows
            assert windows is not None
            windows.booting = value

    async with HyperVHost.connect(peer.target()) as host:
        with pytest.raises(AuthenticationError, match="credential is invalid") as refused:
            await host.vm("demovm").windows(Credential("Administrator", "wrong")).services()
        assert "wrong" not in str(refused.value)
        with pytest.raises(GuestNotReadyError, match="Windows 10"):
            await host.vm("legacy").windows(ADMIN).services()
        # The socket is tried before the credential: a booting guest says
        # nothing about the password.
        booting(True)
        with pytest.raises(GuestNotReadyError, match="connect to the target virtual machine"):
            await host.vm("demovm").windows(Credential("Administrator", "wrong")).services()
        booting(False)
        assert len(await host.vm("demovm").windows(ADMIN).services()) == 8
