"""Mistakes a first-time user makes, and the one clear error each gets."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hvintegration.cli import EXIT_CODES, run
from hvintegration.cli.parser import build_parser
from hvintegration.operations import (
    GET_GUEST_SERVICES,
    INVOKE_IN_VM,
    LIST_VMS,
    OPERATIONS,
    SET_GUEST_SERVICE,
)
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import edit_state
from hvintegration.testing.sshd import free_loopback_port
from hvintegration.transport import parse_target


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


# --- a timed-out change ---------------------------------------------------------


def _lab(tmp_path: Path, *faults: str) -> str:
    state = tmp_path / "lab.json"
    with edit_state(state, create=SimulatedHost()) as sim:
        for fault in faults:
            sim.inject_fault(fault)
    return f"sim://?state={state}"


def test_a_timed_out_change_says_it_may_have_been_made(tmp_path: Path) -> None:
    url = _lab(tmp_path, "hang")
    argv = ["-t", url, "--timeout", "0.2", "host", "disable", "demovm", "VSS"]
    status, _, err = _run(*argv)
    assert status == EXIT_CODES["timeout"]
    assert "no answer within 0.2 s; the change may have been made" in err
    assert "hvintegration host services VM" in err


def test_a_timed_out_read_says_nothing_of_a_change(tmp_path: Path) -> None:
    status, _, err = _run("-t", _lab(tmp_path, "hang"), "--timeout", "0.2", "host", "vms")
    assert status == EXIT_CODES["timeout"]
    assert "no answer within 0.2 s" in err
    assert "change" not in err


def test_an_operation_declares_whether_it_changes_the_target() -> None:
    changing = {op.name for op in OPERATIONS.values() if op.changes}
    assert changing == {
        "set_integration_services",
        "copy_vm_file",
        "set_guest_service",
        "set_kvp_items",
    }
    carried = {"Script": SET_GUEST_SERVICE.script, "VM": "demovm"}
    assert INVOKE_IN_VM.may_change(carried)
    assert not INVOKE_IN_VM.may_change({"Script": GET_GUEST_SERVICES.script})
    assert not LIST_VMS.may_change({})


# --- messages that name what was tried -------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_a_psrp_connection_failure_names_the_port(host: str) -> None:
    port = free_loopback_port()
    status, _, err = _run("-t", f"psrp://admin:pw@{host}:{port}", "host", "vms")
    assert status == EXIT_CODES["connection"]
    assert f"cannot connect to {host}:{port}" in err


# --- URLs whose parts would be dropped or misread ---------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ssh://user@::1", "put an IPv6 address in brackets: ssh://user@[::1]"),
        ("psrp://admin@fe80::1", "put an IPv6 address in brackets: psrp://user@[::1]"),
        ("ssh://admin:pw@host/path", "ssh:// takes no path"),
        ("psrp://admin@hv01/wsman?ssl=true", "psrp:// takes no path"),
        ("ssh://admin:pw@host#frag", "ssh:// takes no '#' part"),
        ("psrp://u@h?ssl=false&cert_validation=false", "cert_validation= applies to WinRM"),
        ("psrp://u@h?via=ssh&cert_validation=false", "unknown psrp:// option cert_validation"),
    ],
)
def test_a_url_part_that_would_be_dropped_is_refused(url: str, message: str) -> None:
    status, out, err = _run("-t", url, "host", "vms")
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert message in err
    assert "pw" not in err.replace("psrp", "")


@pytest.mark.parametrize(
    "url",
    [
        "ssh://user@[::1]:2222",
        "ssh://admin@hv01/",
        "psrp://u@h?ssl=true&cert_validation=false",
        "ssh://u@h?shell=posix&sessions=2&executable=pwsh",  # PowerShell over a POSIX login
    ],
)
def test_what_applies_is_still_taken(url: str) -> None:
    assert parse_target(url).url


# --- diagnose's guest options ---------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--windows"], "--windows says what the --guest URL reaches; give --guest URL too"),
        (["--linux"], "--linux says what the --guest URL reaches; give --guest URL too"),
        (["--linux", "--direct", "admin"], "--direct USER reaches a Windows guest"),
        (["--guest", "sim://"], "--guest sim:// is a simulated Hyper-V host, not a guest"),
        (["--guest", "SIM://HV01?vms=2"], "is a simulated Hyper-V host, not a guest"),
    ],
)
def test_diagnose_refuses_guest_options_it_would_ignore(options: list[str], message: str) -> None:
    status, out, err = _run("-t", "sim://", "diagnose", "demovm", *options)
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert message in err


def test_diagnose_takes_a_guest_kind_with_its_url() -> None:
    status, out, err = _run(
        "-t", "sim://", "diagnose", "demovm", "--guest", "sim://?guest=demovm", "--windows"
    )
    assert status in (0, 1), err
    assert "Guest Service Interface" in out


# --- help that reads right capitalised ------------------------------------------------


def _command_helps() -> list[str]:
    parser = build_parser()
    found: list[str] = []
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                found += [choice.help or "" for choice in action._choices_actions]
                pending += list(action.choices.values())
    return found


def test_every_command_help_reads_right_with_its_first_letter_capitalised() -> None:
    # Each command's description, and shell completion's (shtab), capitalise
    # the help's first letter: "hv_utils ..." would become "Hv_utils ...".
    helps = _command_helps()
    assert len(helps) > 10
    for text in helps:
        first = text.split()[0]
        # A program or file name (hv_utils, vmic*) must not come first.
        assert not set(first) & set("_*./"), text


# --- JSON: a missing value is null ------------------------------------------------------


def test_diagnose_json_writes_missing_values_as_null() -> None:
    status, out, _ = _run("-t", "sim://", "--json", "diagnose", "demovm")
    assert status == 1  # Guest Service Interface is off on the simulated host
    data = json.loads(out)
    assert (data["guest_target"], data["host_os"], data["advice"]) == (None, None, None)
    assert {item["error"] for item in data["services"]} == {None}
    status, out, _ = _run(
        "-t", "sim://", "--json", "diagnose", "demovm", "--guest", "sim://?guest=demovm"
    )
    data = json.loads(out)
    assert data["guest_target"] == "sim://HV01?guest=demovm"
    assert data["guest_os"]
