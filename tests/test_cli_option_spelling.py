"""Options are matched whole: a guessed ``--password`` is refused, not taken as
``--password-file``, and no error repeats the value given to it."""

from __future__ import annotations

import io

import pytest

from hvintegration.cli import EXIT_CODES, run

SECRET = "hunter2"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ("-t", "ssh://admin@127.0.0.1:1", "--password", SECRET, "host", "vms"),
        ("-t", "ssh://admin@127.0.0.1:1", "host", "vms", f"--pass={SECRET}"),
        ("-t", "ssh://admin@127.0.0.1:1", "--passwd", SECRET, "host", "vms"),
        ("-t", "sim://", "windows", "--vm", "demovm", "--password", SECRET, "services"),
        ("-t", "sim://", "host", "services", "demovm", "--password", SECRET),
    ],
)
def test_a_guessed_password_option_is_refused_without_its_value(argv: tuple[str, ...]) -> None:
    status, out, err = _run(*argv)
    assert status == EXIT_CODES["usage"]
    assert "unknown option --pass" in err
    assert SECRET not in out + err
    assert "password file" not in err


def test_an_unknown_option_suggests_the_real_ones() -> None:
    status, _, err = _run("-t", "sim://", "--password", SECRET, "host", "vms")
    assert status == EXIT_CODES["usage"]
    assert "'--password-file'" in err
    assert "'--ask-password'" in err


def test_a_prefix_of_a_real_option_is_not_taken_for_it() -> None:
    status, _, err = _run("-t", "sim://", "--tim", "5", "host", "vms")
    assert status == EXIT_CODES["usage"]
    assert "unknown option --tim; did you mean '--timeout'?" in err


def test_a_word_typed_after_ask_password_is_not_repeated() -> None:
    status, _, err = _run("-t", "sim://", "host", "vms", "--ask-password", SECRET)
    assert status == EXIT_CODES["usage"]
    assert SECRET not in err
    assert "1 unexpected argument after the command: 1 not shown" in err
    status, _, err = _run("-t", "sim://", "--ask-password", SECRET, "host", "vms")
    assert status == EXIT_CODES["usage"]
    assert SECRET not in err
    assert "--ask-password takes no value" in err


def test_stray_words_are_named_escaped() -> None:
    status, _, err = _run("-t", "sim://", "host", "vms", "extra", "\x1b[2J")
    assert status == EXIT_CODES["usage"]
    assert "hvintegration host vms: error: 2 unexpected arguments after the command:" in err
    assert "'extra', '\\x1b[2J'" in err
    assert "\x1b" not in err


def test_an_unknown_command_is_still_named() -> None:
    status, _, err = _run("hots", "--vm", "x")
    assert status == EXIT_CODES["usage"]
    assert "unknown command 'hots'; did you mean 'host'?" in err
