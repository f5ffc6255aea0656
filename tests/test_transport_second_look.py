"""Transports after a second look: an answer over ``max_output`` names the
setting and is not an "unreachable" failure; URL options are given once and a
path only where the scheme reads one; SSH user names are checked when the URL
is read."""

from __future__ import annotations

import io
import urllib.parse
from pathlib import Path

import pytest

from hvintegration.cli import EXIT_CODES, exit_status, run
from hvintegration.errors import AnswerTooLargeError, InvalidTargetError, ProtocolError
from hvintegration.operations import LIST_VMS
from hvintegration.testing.powershell_peers import LocalStandInPeer
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
