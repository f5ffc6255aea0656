"""What the command line prints: tables by display width, and nothing a
terminal would act on, whatever the remote side sends."""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from hvintegration.cli import EXIT_CODES, run
from hvintegration.cli.render import SafeWriter, dumps

README = Path(__file__).resolve().parent.parent / "README.md"

# Everything a terminal could act on: C0 and C1 controls, DEL, the line
# separators and the bidirectional controls.
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)

EVIL = "evil\x1b]0;owned\x07\r\nforged row\u202eMV\x9b2J\x00"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def _width(text: str) -> int:
    """Display width by the Unicode East Asian Width property (UAX #11)."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def _readme_first_command() -> tuple[list[str], str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```sh\n(.*?)\n```\s*```text\n(.*?)```", text, re.DOTALL)
    assert match is not None, "README.md has no command followed by its output"
    command = match.group(1).split("&&")[-1].split()
    assert command[0].endswith("hvintegration")
    return command[1:], match.group(2)


def test_the_readme_table_is_what_its_first_command_prints() -> None:
    argv, shown = _readme_first_command()
    status, out, err = _run(*argv)
    assert (status, err) == (0, "")
    assert out == shown


@pytest.mark.parametrize(
    ("locale", "name", "widest"),
    [
        ("zh-TW", "客體服務介面", "索引鍵/值組交換"),
        ("ja-JP", "ゲスト サービス インターフェイス", "ゲスト サービス インターフェイス"),
    ],
)
def test_cjk_names_keep_the_columns_aligned(locale: str, name: str, widest: str) -> None:
    status, out, _ = _run("-t", f"sim://?locale={locale}", "host", "services", "demovm")
    assert status == 0
    lines = out.splitlines()
    assert name in out
    header, rule, rows = lines[0], lines[1], lines[2:]
    # Each column starts where its header starts, counted in terminal cells.
    enabled_at = _width(header[: header.index("Enabled")])
    segments = rule.split(" ")
    assert segments[2] == "-" * _width("Enabled")
    assert len(segments[0]) + len(segments[1]) + 2 == enabled_at
    # The name column is as wide as the widest name on a terminal.
    assert len(segments[1]) == _width(widest)
    for row in rows:
        state = re.search(r" (True|False) ", row)
        assert state is not None
        assert _width(row[: state.start() + 1]) == enabled_at, row


def _lab_with(tmp_path: Path, vm_name: str) -> str:
    from hvintegration.simulator import SimulatedHost
    from hvintegration.simulator.state import edit_state

    state = tmp_path / "lab.json"
    with edit_state(state, create=SimulatedHost()) as sim:
        sim.add_vm(vm_name)
    return f"sim://?state={state}"


def test_a_remote_name_cannot_reach_the_terminal_raw(tmp_path: Path) -> None:
    target = _lab_with(tmp_path, EVIL)
    status, out, err = _run("-t", target, "host", "vms")
    assert (status, err) == (0, "")
    assert not UNSAFE.search(out)
    lines = out.splitlines()
    # Header, rule, demovm and the evil VM: no forged row.
    assert len(lines) == 4
    assert "evil\\x1b]0;owned\\x07\\x0d\\x0aforged row\\u202eMV\\x9b2J\\x00" in lines[3]


def test_json_escapes_every_control_character_and_keeps_the_value(tmp_path: Path) -> None:
    target = _lab_with(tmp_path, EVIL)
    status, out, _ = _run("-t", target, "--json", "host", "vms")
    assert status == 0
    assert not UNSAFE.search(out)
    assert EVIL in [vm["name"] for vm in json.loads(out)]
    assert json.loads(dumps({"x": "\x85\u2028\u202e\x7f"})) == {"x": "\x85\u2028\u202e\x7f"}


def test_errors_escape_what_the_remote_side_said(tmp_path: Path) -> None:
    target = f"sim://?state={tmp_path / 'lab.json'}"
    assert _run("-t", target, "host", "enable", "demovm", "Guest Service Interface")[0] == 0
    # The simulated host's error text repeats the path as given, as the
    # real Copy-VMFile does.
    source = "C:\\no\x1b[2Jsuch\nforged row"
    status, out, err = _run("-t", target, "host", "copy-file", "demovm", source, "C:\\x")
    assert status == EXIT_CODES["not_found"]
    assert out == ""
    assert err.count("\n") == 1
    assert not UNSAFE.search(err)
    assert "no\\x1b[2Jsuch\\x0aforged row" in err


def test_argparse_messages_are_escaped_too() -> None:
    status, _, err = _run("\x1b]0;x\x07")
    assert status == EXIT_CODES["usage"]
    assert not UNSAFE.search(err)
    assert "\\x1b]0;x\\x07" in err


def test_plain_lines_go_through_the_safe_writer() -> None:
    buffer = io.StringIO()
    print("a\x1b[31mred\u202e\nnext\r", file=SafeWriter(buffer))
    assert buffer.getvalue() == "a\\x1b[31mred\\u202e\nnext\\x0d\n"


def test_a_child_process_writes_no_control_bytes(tmp_path: Path) -> None:
    target = _lab_with(tmp_path, EVIL)
    for argv in (["host", "vms"], ["host", "services", EVIL.replace("\x00", "")]):
        done = subprocess.run(
            [sys.executable, "-m", "hvintegration", "-t", target, *argv],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode in (0, EXIT_CODES["not_found"]), done.stderr
        for stream in (done.stdout.decode(), done.stderr.decode()):
            assert not UNSAFE.search(stream), stream
        assert b"Traceback" not in done.stderr


def test_the_readme_command_parses_as_a_shell_would() -> None:
    argv, _ = _readme_first_command()
    assert shlex.split(" ".join(argv)) == argv
    assert "--target" in argv
