"""Mistakes a first-time user makes, and the one clear error each gets."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from hvintegration.cli import EXIT_CODES, run


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


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


# --- a target of the wrong kind ---------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["host", "vms"],
        ["host", "services", "demovm"],
        ["diagnose", "demovm"],
        ["doctor"],
    ],
)
def test_a_windows_guest_given_to_host_commands_is_a_usage_error(argv: list[str]) -> None:
    status, out, err = _run("-t", "sim://?guest=demovm", *argv)
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert "this target is a Windows guest (demovm), not a Hyper-V host" in err
    assert "bug report" not in err


def test_a_target_without_the_hyperv_module_may_be_a_guest() -> None:
    status, _, err = _run("-t", "sim://?hyperv=false", "host", "vms")
    assert status == EXIT_CODES["error"]
    assert "the target may be a Windows guest, or a host without the Hyper-V" in err
    status, out, _ = _run("-t", "sim://?hyperv=false", "doctor")
    assert "If this target is a Windows guest, check its Hyper-V host instead" in out
