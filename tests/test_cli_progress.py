"""Long waits show a spinner on a terminal, and nothing in JSON, pipes or files."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
from rich.console import Console

from hvintegration.cli import run
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import save_host

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run_on_terminal(*argv: str) -> tuple[int, str, str, str]:
    """Run with a console that believes it draws on a terminal."""
    out, err, drawn = io.StringIO(), io.StringIO(), io.StringIO()
    console = Console(file=drawn, force_terminal=True, width=120)
    status = run(list(argv), out=out, err=err, progress=console)
    return status, out.getvalue(), err.getvalue(), ANSI.sub("", drawn.getvalue())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["-t", "sim-linux://?latency=0.3", "linux", "stop", "vss"],
            "stopping vss (up to 10 s after SIGTERM)",
        ),
        (
            [
                "-t",
                "sim-linux://?latency=0.3",
                "linux",
                "restart",
                "kvp",
                "--force",
                "--grace",
                "3",
                "--kill",
            ],
            "restarting kvp (up to 3 s after SIGTERM, then SIGKILL)",
        ),
        (
            ["-t", "sim://?guest=demovm&latency=0.3", "windows", "stop", "vmicguestinterface"],
            "stopping vmicguestinterface (waits while it is StopPending)",
        ),
        (["-t", "sim://?latency=0.3", "host", "vms"], "connecting to sim://"),
    ],
)
def test_a_terminal_sees_what_is_awaited(argv: list[str], message: str) -> None:
    status, out, err, drawn = _run_on_terminal(*argv)
    assert (status, err) == (0, ""), err
    assert message in drawn
    assert out  # the result itself still goes to stdout, unchanged
    assert message not in out


def test_opening_a_psrp_pool_shows_progress(tmp_path: Path) -> None:
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    query = urllib.parse.urlencode(
        [
            ("via", "process"),
            ("executable", sys.executable),
            *(
                ("arg", arg)
                for arg in ("-m", "hvintegration.testing.psrp_server", "--state", str(state))
            ),
        ]
    )
    status, out, err, drawn = _run_on_terminal("-t", f"psrp://localhost?{query}", "host", "vms")
    assert (status, err) == (0, ""), err
    assert "connecting to psrp://localhost" in drawn
    assert "demovm" in out


def test_progress_never_shows_a_password(tmp_path: Path) -> None:
    from hvintegration.testing.sshd import free_loopback_port

    port = free_loopback_port()
    url = f"ssh://root:Zq9wx@127.0.0.1:{port}?known_hosts={tmp_path / 'k'}&connect_timeout=5"
    (tmp_path / "k").write_text("")
    status, _, err, drawn = _run_on_terminal("-t", url, "linux", "status")
    assert status == 6
    assert f"connecting to ssh://127.0.0.1:{port}" in drawn
    assert "Zq9wx" not in drawn
    assert "Zq9wx" not in err


def test_json_is_silent_even_on_a_terminal() -> None:
    status, out, err, drawn = _run_on_terminal(
        "-t", "sim-linux://?latency=0.2", "--json", "linux", "stop", "vss"
    )
    assert (status, err, drawn) == (0, "", "")
    assert out.lstrip().startswith("[")


def test_streams_that_are_not_terminals_get_no_progress() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run(["-t", "sim-linux://?latency=0.2", "linux", "stop", "vss"], out=out, err=err) == 0
    assert err.getvalue() == ""
    assert "stopping" not in out.getvalue()


def test_a_real_pipe_gets_no_progress() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hvintegration",
            "-t",
            "sim-linux://?latency=0.3",
            "linux",
            "stop",
            "vss",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "stopping" not in done.stdout


def _on_a_pty(argv: list[str]) -> tuple[int, str]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command line on a real terminal
        os.execv(sys.executable, [sys.executable, "-m", "hvintegration", *argv])
    seen = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break  # the child closed the terminal
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), ANSI.sub("", seen.decode(errors="replace"))


def test_a_real_terminal_shows_the_spinner_and_then_the_result() -> None:
    status, seen = _on_a_pty(["-t", "sim-linux://?latency=0.5", "linux", "stop", "vss"])
    assert status == 0, seen
    assert "stopping vss (up to 10 s after SIGTERM)" in seen
    assert "hv_vss_daemon" in seen


def test_a_real_terminal_with_json_shows_only_json() -> None:
    status, seen = _on_a_pty(["-t", "sim-linux://?latency=0.5", "--json", "linux", "stop", "vss"])
    assert status == 0, seen
    assert "stopping" not in seen
    assert seen.lstrip().startswith("[")
