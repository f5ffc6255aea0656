"""Transports after a second look: an answer over ``max_output`` names the
setting and is not an "unreachable" failure; URL options are given once and a
path only where the scheme reads one; SSH user names are checked when the URL
is read."""

from __future__ import annotations

import io
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from hvintegration.cli import EXIT_CODES, exit_status, run
from hvintegration.errors import AnswerTooLargeError, InvalidTargetError, ProtocolError
from hvintegration.operations import (
    GET_GUEST_SERVICES,
    INVOKE_IN_VM,
    LIST_VMS,
    OPERATIONS,
    SET_GUEST_SERVICE,
    SET_INTEGRATION_SERVICES,
    SET_KVP_ITEMS,
    Operation,
)
from hvintegration.testing.powershell_peers import LocalStandInPeer
from hvintegration.testing.processes import processes_mentioning
from hvintegration.transport import parse_target
from hvintegration.transport.local import LocalTarget


def _big_peer(tmp_path: Path) -> LocalStandInPeer:
    peer = LocalStandInPeer(tmp_path)
    with peer.edit() as host:
        for number in range(30):
            host.add_vm(f"vm{number:02d}-" + "n" * 40)
    return peer


async def test_an_answer_over_max_output_names_the_setting(tmp_path: Path) -> None:
    peer = _big_peer(tmp_path)
    target = LocalTarget(executable=str(peer.executable), max_output=1024)
    async with target.open() as transport:
        with pytest.raises(AnswerTooLargeError, match="max_output") as caught:
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=30)
    assert isinstance(caught.value, ProtocolError)
    assert caught.value.max_output == 1024
    assert exit_status(caught.value) == EXIT_CODES["error"]


def test_the_command_line_exits_1_not_unreachable_over_max_output(tmp_path: Path) -> None:
    peer = _big_peer(tmp_path)
    url = "local://?" + urllib.parse.urlencode(
        {"executable": str(peer.executable), "max_output": "1024"}
    )
    out, err = io.StringIO(), io.StringIO()
    status = run(["-t", url, "host", "vms"], out=out, err=err)
    assert status == EXIT_CODES["error"]
    assert "(the target's max_output setting)" in err.getvalue()


@pytest.mark.parametrize(
    "url",
    [
        "local://?max_output=1024&max_output=99999",
        "local://?sessions=2&sessions=3",
        "ssh://admin@hv01?shell=cmd&shell=posix",
        "psrp://admin@hv01?ssl=true&ssl=false",
        "sim://?vms=2&vms=3",
        "sim-linux://?distro=ubuntu&distro=rhel",
    ],
)
def test_an_option_given_twice_is_refused(url: str) -> None:
    with pytest.raises(InvalidTargetError, match="more than once; give each once"):
        parse_target(url)


def test_an_option_given_twice_beside_a_password_is_named_without_the_url() -> None:
    with pytest.raises(InvalidTargetError) as caught:
        parse_target("ssh://admin:S3cret@hv01?shell=cmd&shell=posix")
    assert "S3cret" not in str(caught.value)
    assert "twice" in str(caught.value)


def test_repeatable_options_still_repeat() -> None:
    target = parse_target("ssh://admin@hv01?key=/a&key=/b")
    assert target.client_keys == ("/a", "/b")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("local:///x/y", "local:// takes no path: nothing may follow local:// but ?options"),
        ("sim://HV01/anything", "sim:// takes no path: nothing may follow the host name"),
        ("sim-linux://web1/x", "sim-linux:// takes no path"),
        ("sim://HV01#lab", "sim:// takes no '#' part"),
        ("ssh://admin@hv01/x", "ssh:// takes no path"),
    ],
)
def test_a_path_is_refused_by_every_scheme(url: str, message: str) -> None:
    with pytest.raises(InvalidTargetError, match=re.escape(message)):
        parse_target(url)


@pytest.mark.parametrize("url", ["local://", "local:///", "sim://HV01/", "sim://"])
def test_an_empty_path_is_still_fine(url: str) -> None:
    parse_target(url)


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ssh://ro%1Bot@127.0.0.1:1", "U+001B"),
        ("ssh://ro\x1bot@127.0.0.1:1", "U+001B"),
        ("ssh://ro%00ot@127.0.0.1:1", "U+0000"),
        ("psrp://ad%E2%80%8Bmin@hv01", "U+200B"),
    ],
)
def test_a_user_name_with_a_control_character_is_refused_when_read(url: str, code: str) -> None:
    with pytest.raises(
        InvalidTargetError, match=re.escape(f"the user name holds {code}")
    ) as caught:
        parse_target(url)
    assert "key" not in str(caught.value)


def test_the_command_line_says_what_is_wrong_with_the_user_name() -> None:
    out, err = io.StringIO(), io.StringIO()
    status = run(["-t", "ssh://ro\x1bot@127.0.0.1:1", "host", "vms"], out=out, err=err)
    assert status == EXIT_CODES["usage"]
    assert "the user name holds U+001B" in err.getvalue()
    assert "known_hosts" not in err.getvalue()


@pytest.mark.parametrize(
    ("operation", "parameters", "check"),
    [
        (SET_KVP_ITEMS, {}, "hvintegration host kvp VM"),
        (SET_INTEGRATION_SERVICES, {}, "hvintegration host services VM"),
        (SET_GUEST_SERVICE, {}, "hvintegration windows services"),
        (INVOKE_IN_VM, {"Script": SET_GUEST_SERVICE.script}, "hvintegration windows services"),
        (INVOKE_IN_VM, {"Script": GET_GUEST_SERVICES.script}, None),
        (LIST_VMS, {}, None),
    ],
)
def test_each_change_names_its_own_check(
    operation: Operation, parameters: dict[str, object], check: str | None
) -> None:
    assert operation.change_check(parameters) == check


def test_every_changing_operation_names_a_check() -> None:
    for operation in OPERATIONS.values():
        assert bool(operation.check) == operation.changes, operation.name


def test_a_kvp_write_that_times_out_points_at_host_kvp(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    with peer.edit() as host:
        host.latency = 3.0
    url = "local://?" + urllib.parse.urlencode({"executable": str(peer.executable)})
    out, err = io.StringIO(), io.StringIO()
    status = run(
        ["--timeout", "1", "-t", url, "host", "kvp", "demovm", "--set", "a=b"], out=out, err=err
    )
    assert status == EXIT_CODES["timeout"]
    assert "read the state again (hvintegration host kvp VM)" in err.getvalue()
    assert "host services" not in err.getvalue()


_BURST = """
import asyncio, sys
from hvintegration import HyperVHost

async def main(url):
    async with HyperVHost.connect(url, timeout=60) as host:
        print("start", flush=True)
        await asyncio.gather(*[host.integration_services(["demovm"]) for _ in range(20)])

asyncio.run(main(sys.argv[1]))
"""


def test_ctrl_c_during_a_burst_closes_every_process_before_the_loop(tmp_path: Path) -> None:
    # asyncio.gather hands the cancellation back at its first cancelled
    # call; the transport's close then cancels the others again while they
    # stop their PowerShell processes. Every process must still be reaped
    # before asyncio.run() closes the loop: no "Event loop is closed" noise.
    peer = LocalStandInPeer(tmp_path)
    with peer.edit() as host:
        host.latency = 5.0
    url = "local://?" + urllib.parse.urlencode(
        {"executable": str(peer.executable), "sessions": "8"}
    )
    child = subprocess.Popen(
        [sys.executable, "-c", _BURST, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "start\n"
    time.sleep(1.5)  # the eight sessions are busy, twelve calls wait
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert "KeyboardInterrupt" in stderr
    assert "Event loop is closed" not in stderr
    assert "Exception ignored" not in stderr
    assert "that handles pid" not in stderr
    assert processes_mentioning(str(peer.executable)) == []
