"""Every exit status of the command line, each from a real failure, and the
one table that maps error classes to them."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest

from hvintegration import errors
from hvintegration.cli import EXIT_CODES, EXIT_STATUSES, exit_status, run
from hvintegration.cli._command import UsageError
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import edit_state
from hvintegration.testing.sshd import free_loopback_port

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def _lab(tmp_path: Path, *faults: str) -> str:
    state = tmp_path / "lab.json"
    with edit_state(state, create=SimulatedHost()) as sim:
        for fault in faults:
            sim.inject_fault(fault)
    return f"sim://?state={state}"


def test_0_done() -> None:
    assert _run("-t", "sim://", "host", "vms")[0] == 0


def test_1_another_failure_the_target_reported() -> None:
    status, _, err = _run("-t", "sim://", "host", "copy-file", "demovm", "C:\\a", "C:\\b")
    assert status == EXIT_CODES["error"] == 1
    assert "Guest Service Interface is disabled" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-t", "sim-linux://", "host", "vms"], "needs a PowerShell target"),
        (["-t", "sim://", "linux", "status"], "a Linux guest needs a shell target"),
        (["-t", "sim-linux://", "windows", "services"], "needs a PowerShell target"),
        (["-t", "sim://", "--timeout", "0", "host", "vms"], "timeout must be a finite"),
        (["-t", "sim://", "host", "disable", "demovm", "Heartbeat"], "--force"),
        (["-t", "sim://", "host", "vms", "--bogus"], "unknown option --bogus"),
        (["host", "vms"], "no target"),
        (["-t", "ssh://admin:12345/x@host", "host", "vms"], "ambiguous"),
    ],
)
def test_2_usage(monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str) -> None:
    monkeypatch.delenv("HVINTEGRATION_TARGET", raising=False)
    status, out, err = _run(*argv)
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert status == 2
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-t", "sim://?guest=nosuch", "windows", "services"], "no virtual machine named 'nosuch'"),
        (["-t", "sim://", "host", "services", "ghost"], "no virtual machine named 'ghost'"),
        (["-t", "sim://", "host", "enable", "demovm", "Guest Servce"], "unknown integration"),
        (["-t", "sim-linux://", "linux", "start", "telepathy"], "unknown integration daemon"),
    ],
)
def test_3_not_found(argv: list[str], message: str) -> None:
    status, out, err = _run(*argv)
    assert (status, out) == (EXIT_CODES["not_found"], "")
    assert status == 3
    assert message in err


def test_the_missing_simulated_guest_names_the_vms_there() -> None:
    _, _, err = _run("-t", "sim://?guest=demovn", "windows", "services")
    assert "(known: demovm); did you mean 'demovm'?" in err


def test_4_permission_denied(tmp_path: Path) -> None:
    status, _, err = _run("-t", _lab(tmp_path, "error"), "host", "vms")
    assert status == EXIT_CODES["permission"] == 4
    assert "permission denied" in err


def test_5_timeout(tmp_path: Path) -> None:
    status, _, _ = _run("-t", _lab(tmp_path, "hang"), "--timeout", "0.2", "host", "vms")
    assert status == EXIT_CODES["timeout"] == 5


def test_6_connection(tmp_path: Path) -> None:
    status, _, _ = _run("-t", _lab(tmp_path, "disconnect"), "host", "vms")
    assert status == EXIT_CODES["connection"] == 6
    # Nothing listens on the port: a real refused connection.
    port = free_loopback_port()
    url = f"ssh://root@127.0.0.1:{port}?known_hosts={tmp_path / 'none'}&connect_timeout=5"
    (tmp_path / "none").write_text("")
    status, _, err = _run("-t", url, "linux", "status")
    assert status == 6, err


def test_130_interrupted(tmp_path: Path) -> None:
    target = _lab(tmp_path, "hang")
    # On a terminal, so the spinner says when the command is running; then
    # Ctrl+C as a user types it.
    pid, fd = pty.fork()
    if pid == 0:
        argv = ["-m", "hvintegration", "-t", target, "--timeout", "60", "host", "vms"]
        os.execv(sys.executable, [sys.executable, *argv])
    seen, interrupted = b"", False
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
        if not interrupted and b"connecting to sim://" in seen:
            time.sleep(0.5)
            os.write(fd, b"\x03")
            interrupted = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert interrupted, seen
    assert os.waitstatus_to_exitcode(status) == EXIT_CODES["interrupted"] == 130, seen
    assert b"hvintegration: interrupted" in seen
    assert b"Traceback" not in seen


def test_a_batch_with_mixed_failures_exits_1() -> None:
    batch = errors.BatchError(
        "2 failed",
        errors={"a": errors.VMNotFoundError("a"), "b": errors.OperationTimeoutError("slow")},
        result=(),
    )
    assert exit_status(batch) == 1
    same = errors.BatchError("1 failed", errors={"a": errors.VMNotFoundError("a")}, result=())
    assert exit_status(same) == 3


def test_the_table_covers_every_error_class_and_orders_subclasses_first() -> None:
    classes = [error_class for error_class, _ in EXIT_STATUSES]
    for index, error_class in enumerate(classes):
        for later in classes[index + 1 :]:
            assert not issubclass(later, error_class), f"{later} is shadowed by {error_class}"
    for name in errors.__all__:
        error_class = getattr(errors, name)
        assert any(issubclass(error_class, known) for known in classes), name
    assert exit_status(UsageError("x")) == 2
    assert exit_status(errors.AuthenticationError("no")) == 6
    assert exit_status(errors.AmbiguousVMError("x", ids=["1", "2"])) == 3
    assert exit_status(errors.DestinationExistsError("x")) == 1


def test_docs_cli_md_lists_every_status() -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Exit statuses") :]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)}
    assert documented == set(EXIT_CODES.values())
