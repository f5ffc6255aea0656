"""Mistakes a first-time user makes, and the one clear error each gets."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hvintegration.cli import EXIT_CODES


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["host", "--help"]])
def test_help_into_a_full_disk_is_one_line_and_status_1(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "hvintegration", *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == EXIT_CODES["error"]
    assert done.stderr == "hvintegration: error: cannot write the output: No space left on device\n"
