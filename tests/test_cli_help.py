"""Help, messages and completion: the command line speaks of commands, suggests
what was meant, shows examples that work, and completes in the shell."""

from __future__ import annotations

import argparse
import io
import shlex
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from hvintegration.cli import EXIT_CODES, run
from hvintegration.cli._command import CommandParser, add_command, did_you_mean
from hvintegration.cli.parser import build_parser


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "a command is required: host, windows, linux, doctor, catalogue, advise"),
        (["host"], "a command is required: vms, services, enable, disable, copy-file"),
        (["windows"], "a command is required: services, start, stop"),
        (["linux"], "a command is required: status, start, stop, restart, kvp"),
        (["hots"], "unknown command 'hots'; did you mean 'host'?"),
        (["host", "servces"], "unknown command 'servces'; did you mean 'services'?"),
        (["linux", "stauts"], "did you mean 'status'?"),
        (["frobnicate"], "unknown command 'frobnicate' (commands: host, windows"),
    ],
)
def test_usage_errors_name_commands_not_internals(argv: list[str], message: str) -> None:
    status, out, err = _run(*argv)
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert message in err
    for internal in ("side", "action", "invalid choice", "{host"):
        assert internal not in err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["host", "enable", "demovm", "hartbeat"], "did you mean 'Heartbeat'?"),
        (["host", "disable", "demovm", "Time Synchronisation"], "'Time Synchronization'"),
        (["host", "services", "demovn"], "did you mean 'demovm'?"),
        (["windows", "--vm", "demovm", "start", "vmicheartbeet"], "did you mean 'vmicheartbeat'?"),
        (["linux", "start", "hv_kvp_deamon"], "did you mean 'hv_kvp_daemon'?"),
    ],
)
def test_mistyped_names_get_a_suggestion(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], hint: str
) -> None:
    monkeypatch.setenv("HVINTEGRATION_GUEST_PASSWORD", "hvintegration")
    target = "sim-linux://" if argv[0] == "linux" else "sim://"
    status, _, err = _run("-t", target, *argv)
    assert status == EXIT_CODES["not_found"]
    assert hint in err
    assert err.count("\n") == 1


def test_nothing_close_gets_no_suggestion() -> None:
    _, _, err = _run("-t", "sim://", "host", "enable", "demovm", "zzzzzz")
    assert "did you mean" not in err
    assert did_you_mean("zzzzzz", ["host"]) == ""


def test_every_command_shows_examples_that_parse() -> None:
    parser = build_parser()
    assert "examples:" in parser.format_help()
    seen = 0
    for path, sub in _commands(parser):
        text = sub.format_help()
        assert "examples:\n  " in text, " ".join(path)
        examples = text.split("examples:\n", 1)[1].splitlines()
        for example in examples:
            words = shlex.split(example.strip())
            while words and "=" in words[0]:
                words.pop(0)  # VAR=value before the command
            if words[:1] != ["hvintegration"] or ">" in words:
                continue
            args = parser.parse_args(words[1:])
            assert args.side == path[0], example
            seen += 1
    assert seen >= 30


def test_a_command_without_examples_is_refused() -> None:
    commands = CommandParser(prog="demo").add_subparsers(dest="side")

    async def nothing(*_: object) -> None:
        return None

    with pytest.raises(ValueError, match="at least one example"):
        add_command(commands, "x", help="x", examples=[], run=nothing)


@pytest.mark.parametrize("shell", ["bash", "zsh", "tcsh"])
def test_completion_prints_a_script_naming_the_commands(shell: str) -> None:
    status, out, err = _run("completion", shell)
    assert (status, err) == (0, "")
    for word in ("host", "windows", "linux", "doctor", "catalogue", "services", "copy-file"):
        assert word in out, word
    if shell != "tcsh":
        assert "--target" in out


def test_the_bash_script_defines_the_completion_in_a_real_bash() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    _, script, _ = _run("completion", "bash")
    probe = script + "\ncomplete -p hvintegration\n"
    done = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", probe],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "hvintegration" in done.stdout
    # Ask the completion function itself what follows "hvintegration ho".
    ask = (
        script
        + "\nCOMP_WORDS=(hvintegration ho); COMP_CWORD=1; COMP_LINE='hvintegration ho';"
        + " COMP_POINT=${#COMP_LINE}; func=$(complete -p hvintegration | sed -E"
        + " 's/.*-F ([^ ]+).*/\\1/'); $func hvintegration ho hvintegration;"
        + ' printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", ask],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "host" in done.stdout.split(), (done.stdout, done.stderr)


def test_the_zsh_script_is_valid_zsh() -> None:
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh is not installed")
    _, script, _ = _run("completion", "zsh")
    done = subprocess.run(
        [zsh, "-n", "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr


def test_completion_takes_a_known_shell_only() -> None:
    status, _, err = _run("completion", "fish")
    assert status == EXIT_CODES["usage"]
    assert "fish" in err
