"""Logging under the ``hvintegration`` logger: connects, operations with their
round trip and duration, retries; never a password or a parameter value."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import psutil
import pytest

from hvintegration import HvIntegrationError, HyperVHost, LinuxGuest
from hvintegration.testing.powershell_peers import LocalStandInPeer
from hvintegration.windows import Credential

SECRET = "S3cret-pw-7d1f"


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def _assert_no_secret(caplog: pytest.LogCaptureFixture, secret: str = SECRET) -> None:
    # Every record of every logger (ours and the backends'), formatted and raw.
    for record in caplog.records:
        assert secret not in record.getMessage(), record.getMessage()
        assert secret not in repr(record.args)
    assert secret not in caplog.text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_connect_each_operation_and_close_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="hvintegration")
    async with HyperVHost.connect("sim://") as host:
        await host.list_vms()
        await host.vm("demovm").apply({"VSS": False, "Guest Service Interface": True})
    messages = _messages(caplog)
    connected = [r for r in caplog.records if r.getMessage().startswith("connected to sim://HV01")]
    assert [r.levelno for r in connected] == [logging.INFO]
    assert connected[0].name.startswith("hvintegration.")
    assert "list_vms on sim://HV01: round trip 1, parameters: VM" in messages
    assert "set_integration_services on sim://HV01: round trip 2, parameters: Changes" in messages
    done = [m for m in messages if "round trip 2 done in" in m]
    assert len(done) == 1
    assert done[0].endswith("ms, 2 objects, 0 errors")
    assert any(
        m.startswith("closed sim://HV01 in") and m.endswith("after 2 round trips") for m in messages
    )
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "round trip" in r.getMessage())


async def test_a_failed_operation_is_logged_with_its_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="hvintegration")
    async with HyperVHost.connect("sim://?rights=none") as host:
        with pytest.raises(HvIntegrationError):
            await host.list_vms()
    failed = [m for m in _messages(caplog) if "round trip 1 failed after" in m]
    assert len(failed) == 1
    assert "PermissionDeniedError" in failed[0]


async def test_a_guest_password_never_reaches_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with HyperVHost.connect("sim://") as host:
        guest = host.vm("demovm").windows(Credential("Administrator", SECRET))
        with pytest.raises(HvIntegrationError):
            await guest.services()  # the simulated guest refuses this password
    assert any("invoke_in_vm on sim://HV01" in m for m in _messages(caplog))
    _assert_no_secret(caplog)


@pytest.mark.parametrize("scheme", ["ssh", "psrp"])
async def test_a_password_in_the_url_never_reaches_the_log(
    caplog: pytest.LogCaptureFixture, scheme: str
) -> None:
    caplog.set_level(logging.DEBUG)
    port = _free_port()  # nothing listens: the connection is refused
    url = f"{scheme}://admin:{SECRET}@127.0.0.1:{port}"
    if scheme == "psrp":
        url += "?auth=ntlm"
    with pytest.raises(HvIntegrationError) as caught:
        async with HyperVHost.connect(url, timeout=5) as host:
            await host.list_vms()
    assert SECRET not in str(caught.value)
    failed = [m for m in _messages(caplog) if m.startswith("connecting to ")]
    assert failed, (caught.value, _messages(caplog))
    assert f"admin@127.0.0.1:{port}" in failed[0]
    _assert_no_secret(caplog)


async def test_shell_commands_log_the_program_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="hvintegration")
    async with LinuxGuest.connect("sim-linux://") as guest:
        await guest.set_kvp({"ApiToken": SECRET})
    commands = [m for m in _messages(caplog) if m.startswith("run_command on sim-linux://")]
    assert any("program " in m and "arguments" in m for m in commands), commands
    _assert_no_secret(caplog)


async def test_a_retry_is_logged(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG, logger="hvintegration")
    peer = LocalStandInPeer(tmp_path, mode="persistent")
    async with HyperVHost(peer.open_transport()) as host:
        await host.list_vms()
        # The kept PowerShell process dies while idle; the next read is
        # repeatable, so it is sent again to a fresh process.
        kept = [
            child
            for child in psutil.Process().children(recursive=True)
            if str(peer.executable) in " ".join(child.cmdline())
            or "standin_powershell" in " ".join(child.cmdline())
        ]
        assert kept
        for child in kept:
            child.kill()
        psutil.wait_procs(kept, timeout=5)
        assert [vm.name for vm in await host.list_vms()] == ["demovm"]
    retries = [m for m in _messages(caplog) if "retrying (attempt 2)" in m]
    expected = f"list_vms on {host.target}: retrying (attempt 2): the kept process had ended"
    assert retries == [expected]


def _cli(*argv: str) -> tuple[int, str]:
    import io

    from hvintegration.cli import run

    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, err.getvalue()


def test_the_command_line_logs_to_stderr_only_when_asked() -> None:
    status, quiet = _cli("-t", "sim://", "host", "vms")
    assert (status, quiet) == (0, "")
    status, verbose = _cli("-t", "sim://", "host", "vms", "-v")
    assert status == 0
    assert verbose.startswith("hvintegration: INFO: connected to sim://HV01 in ")
    assert "round trip" not in verbose
    for flags in (["--debug"], ["-vv"]):
        status, debug = _cli("-t", "sim://", *flags, "host", "vms")
        assert status == 0
        assert "hvintegration: DEBUG: list_vms on sim://HV01: round trip 1, parameters: VM" in debug
    # The handler is gone once the command ended.
    assert not logging.getLogger("hvintegration").handlers


def test_the_command_line_debug_log_holds_no_password() -> None:
    port = _free_port()
    status, err = _cli("-t", f"ssh://admin:{SECRET}@127.0.0.1:{port}", "--debug", "host", "vms")
    assert status == 6
    assert f"connecting to ssh://admin@127.0.0.1:{port} failed" in err
    assert SECRET not in err


async def test_a_reconnect_after_a_broken_pool_is_logged(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import sys

    from hvintegration.simulator import SimulatedHost
    from hvintegration.simulator.state import save_host
    from hvintegration.transport.psrp import PSRPTarget

    caplog.set_level(logging.INFO, logger="hvintegration")
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    target = PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=("-m", "hvintegration.testing.psrp_server", "--state", str(state)),
    )
    async with HyperVHost.connect(target) as host:
        await host.list_vms()
        peers = [
            child
            for child in psutil.Process().children()
            if str(state) in " ".join(child.cmdline())
        ]
        assert len(peers) == 1
        peers[0].kill()
        psutil.wait_procs(peers, timeout=5)
        await asyncio.sleep(0.3)  # the pool notices its peer is gone
        assert [vm.name for vm in await host.list_vms()] == ["demovm"]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos[0].startswith(f"connected to {host.target} in ")
    assert infos[1:] == [f"reconnecting to {host.target} for list_vms: the runspace pool broke"]


async def test_a_powershell_direct_password_never_reaches_a_debug_log_over_psrp(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import sys

    from hvintegration import WindowsGuest
    from hvintegration.simulator import SimulatedHost
    from hvintegration.simulator.state import save_host
    from hvintegration.transport.psrp import PSRPTarget

    # The root logger at DEBUG, as a user debugging anything would set it:
    # psrpcore then logs every PSRP message it queues.
    caplog.set_level(logging.DEBUG)
    lab = SimulatedHost()
    windows = lab.vm("demovm").windows
    assert windows is not None
    windows.credentials["Administrator"] = SECRET
    state = tmp_path / "host.json"
    save_host(lab, state)
    target = PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=("-m", "hvintegration.testing.psrp_server", "--state", str(state)),
    )
    async with HyperVHost.connect(target) as host:
        guest = WindowsGuest.direct(host, "demovm", Credential("Administrator", SECRET))
        assert len(await guest.services()) == 8
    queued = [r for r in caplog.records if r.getMessage().startswith("Queuing PSRP Message")]
    assert queued, "psrpcore logged no message: the check below would prove nothing"
    assert any("characters not logged" in r.getMessage() for r in queued)
    _assert_no_secret(caplog)


async def test_the_powershell_stand_in_logs_a_digest_of_a_password(tmp_path: Path) -> None:
    import json

    from hvintegration.testing.powershell_peers import LocalStandInPeer
    from hvintegration.testing.standin_powershell import password_digest

    peer = LocalStandInPeer(tmp_path)
    async with HyperVHost.connect(peer.target()) as host:
        guest = host.vm("demovm").windows(Credential("Administrator", SECRET))
        with pytest.raises(HvIntegrationError):
            await guest.services()
    text = peer.log.read_text()
    assert SECRET not in text
    requests = [json.loads(line) for line in text.splitlines() if '"parameters"' in line]
    assert [r["parameters"]["Password"] for r in requests] == [password_digest(SECRET)]


async def test_remote_control_characters_are_escaped_in_log_records(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from hvintegration import WindowsGuest
    from hvintegration.simulator import SimulatedHost

    caplog.set_level(logging.DEBUG, logger="hvintegration")
    evil = "evil\x1b]0;PWNED\x07\r\nforged\u202e"
    lab = SimulatedHost()
    lab.add_vm("other\x1b[2J")
    with pytest.raises(HvIntegrationError) as caught:
        async with WindowsGuest.connect(lab.inside(evil)) as guest:
            await guest.services()
    failed = [m for m in _messages(caplog) if "failed after" in m]
    assert failed, "nothing was logged for the failed call: the check below would prove nothing"
    for message in _messages(caplog):
        for raw in ("\x1b", "\x07", "\r", "\n", "\u202e"):
            assert raw not in message
    assert "evil\\x1b]0;PWNED\\x07" in failed[0]
    assert caught.value.name == evil  # type: ignore[attr-defined]
