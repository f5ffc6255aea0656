"""The command line, run in process and once as a real child process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hvintegration.cli import EXIT_CODES, run

SEED_TABLE = """\
VMName Name                    Enabled PrimaryStatusDescription SecondaryStatusDescription
------ ----------------------- ------- ------------------------ --------------------------
demovm Guest Service Interface False   OK
demovm Heartbeat               True    OK                       OK
demovm Key-Value Pair Exchange True    OK
demovm Shutdown                True    OK
demovm Time Synchronization    True    OK
demovm VSS                     True    OK
"""


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_services_table_looks_like_the_seed() -> None:
    status, out, err = _run("--target", "sim://", "host", "services", "demovm")
    assert (status, out, err) == (0, SEED_TABLE, "")


def test_options_may_follow_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HVINTEGRATION_TARGET", raising=False)
    status, out, _ = _run("host", "services", "demovm", "--json", "--target", "sim://")
    assert status == 0
    records = json.loads(out)
    assert [r["service"] for r in records][:2] == ["guest_service_interface", "heartbeat"]
    assert records[0]["enabled"] is False


def test_target_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVINTEGRATION_TARGET", "sim://LAB?locale=de-DE")
    status, out, err = _run("host", "services", "demovm")
    assert status == 0
    assert "Gastdienstschnittstelle" in out
    assert err == ""


def test_enable_and_disable_report_what_changed() -> None:
    status, out, _ = _run(
        "-t", "sim://", "host", "enable", "demovm", "guest service interface", "VSS"
    )
    assert status == 0
    assert out.splitlines()[2:] == [
        "demovm Guest Service Interface True    True",
        "demovm VSS                     True    False",
    ]
    status, out, _ = _run("-t", "sim://", "--json", "host", "disable", "demovm", "Backup")
    assert json.loads(out)[0]["changed"] is True


def test_state_file_keeps_changes_between_runs(tmp_path: Path) -> None:
    target = f"sim://?state={tmp_path / 'lab.json'}"
    assert _run("-t", target, "host", "enable", "demovm", "Guest Service Interface")[0] == 0
    status, out, _ = _run("-t", target, "--json", "host", "services", "demovm")
    assert status == 0
    assert json.loads(out)[0]["enabled"] is True


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["host", "services", "ghost"], "not_found", "no virtual machine named 'ghost'"),
        (["host", "enable", "demovm", "Guest Servce"], "not_found", "unknown integration service"),
        (["host", "enable", "demovm", "vmicvmsession"], "not_found", "only inside the guest"),
        (["host", "enable", "", "VSS"], "usage", "must not be empty"),
    ],
)
def test_bad_input_is_one_line_and_a_status(argv: list[str], status: str, message: str) -> None:
    code, out, err = _run("-t", "sim://", *argv)
    assert code == EXIT_CODES[status]
    assert out == ""
    assert message in err
    assert err.count("\n") == 1
    assert err.startswith("hvintegration: error: ")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nonsense", "a target is a URL"),
        ("gopher://x", "unknown target scheme"),
        ("sim://?vms=lots", "malformed sim:// vms 'lots': give a whole number"),
        ("ssh://admin:topsecret@host:99999", "port"),
    ],
)
def test_bad_targets_are_usage_errors_without_secrets(target: str, message: str) -> None:
    code, _, err = _run("-t", target, "host", "vms")
    assert code == EXIT_CODES["usage"]
    assert message in err
    assert "topsecret" not in err


def test_faults_give_their_status(tmp_path: Path) -> None:
    from hvintegration.simulator import SimulatedHost
    from hvintegration.simulator.state import edit_state

    state = tmp_path / "lab.json"
    with edit_state(state, create=SimulatedHost()) as sim:
        sim.inject_fault("error")
        sim.inject_fault("hang")
    target = f"sim://?state={state}"
    assert _run("-t", target, "host", "vms")[0] == EXIT_CODES["permission"]
    assert _run("-t", target, "--timeout", "0.2", "host", "vms")[0] == EXIT_CODES["timeout"]
    assert _run("-t", target, "host", "vms")[0] == EXIT_CODES["ok"]


def test_argparse_errors_exit_2() -> None:
    code, _, _ = _run("host", "frobnicate")
    assert code == 2
    code, _, _ = _run("--version")
    assert code == 0


def test_catalogue_lists_every_service() -> None:
    code, out, _ = _run("catalogue")
    assert code == 0
    assert "vmicvmsession" in out
    assert "hv_kvp_daemon" in out


def test_module_entry_point_runs_as_a_child_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hvintegration", "--target", "sim://", "host", "services", "demovm"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, SEED_TABLE, "")
    failed = subprocess.run(
        [sys.executable, "-m", "hvintegration", "-t", "sim://", "host", "services", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert failed.returncode == EXIT_CODES["not_found"]
    assert "Traceback" not in failed.stderr


# --- windows and file copy -----------------------------------------------------


def test_windows_services_through_powershell_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVINTEGRATION_GUEST_PASSWORD", "hvintegration")
    status, out, err = _run("-t", "sim://", "windows", "--vm", "demovm", "services")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["Status", "Name", "DisplayName", "StartType"]
    assert lines[2].split()[:2] == ["Running", "vmicguestinterface"]
    assert len(lines) == 10


def test_windows_direct_connection_and_force(tmp_path: Path) -> None:
    target = f"sim://?state={tmp_path / 'lab.json'}&guest=demovm"
    status, out, err = _run("-t", target, "windows", "stop", "vmicheartbeat")
    assert status == EXIT_CODES["usage"]
    assert "--force" in err
    status, out, _ = _run("-t", target, "--json", "windows", "stop", "vmicheartbeat", "--force")
    assert status == 0
    assert json.loads(out)[0]["status"] == "Stopped"
    status, out, _ = _run("-t", target, "--json", "windows", "services")
    assert {r["name"]: r["status"] for r in json.loads(out)}["vmicheartbeat"] == "Stopped"


def test_windows_wrong_password_and_missing_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVINTEGRATION_GUEST_PASSWORD", "nope")
    status, _, err = _run("-t", "sim://", "windows", "--vm", "demovm", "services")
    assert status == EXIT_CODES["connection"]
    assert "credential" in err
    assert "nope" not in err
    monkeypatch.delenv("HVINTEGRATION_GUEST_PASSWORD")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status, _, err = _run("-t", "sim://", "windows", "--vm", "demovm", "services")
    assert status == EXIT_CODES["usage"]
    assert "HVINTEGRATION_GUEST_PASSWORD" in err


def test_host_disable_needs_force_for_critical_services() -> None:
    status, _, err = _run("-t", "sim://", "host", "disable", "demovm", "Shutdown")
    assert status == EXIT_CODES["usage"]
    assert "--force" in err
    status, out, _ = _run("-t", "sim://", "host", "disable", "demovm", "Shutdown", "--force")
    assert status == 0
    assert "Shutdown" in out


def test_copy_file_reports_the_side_that_is_off(tmp_path: Path) -> None:
    from hvintegration.simulator import SimulatedHost
    from hvintegration.simulator.state import edit_state

    state = tmp_path / "lab.json"
    with edit_state(state, create=SimulatedHost()) as sim:
        sim.add_host_file("C:\\a.txt", b"hello")
    target = f"sim://?state={state}"
    status, _, err = _run(
        "-t", target, "host", "copy-file", "demovm", "C:\\a.txt", "C:\\Temp\\a.txt"
    )
    assert status == EXIT_CODES["error"]
    assert "Guest Service Interface is disabled" in err
    assert _run("-t", target, "host", "enable", "demovm", "Guest Service Interface")[0] == 0
    status, out, _ = _run(
        "-t", target, "--json", "host", "copy-file", "demovm", "C:\\a.txt", "C:\\Temp\\a.txt"
    )
    assert status == 0
    assert json.loads(out)[0]["size"] == 5


# --- linux ---------------------------------------------------------------------


def test_linux_status_tables_and_json() -> None:
    status, out, err = _run("-t", "sim-linux://?distro=ubuntu-14.04", "linux", "status")
    assert (status, err) == (0, "")
    titles = [line for line in out.splitlines() if line and " " not in line.strip()]
    assert "Driver" in titles
    assert out.count("/usr/lib/linux-tools/3.13.0-32-generic/hv_kvp_daemon") >= 2
    status, out, _ = _run("-t", "sim-linux://", "--json", "linux", "status")
    data = json.loads(out)
    assert data["driver"]["name"] == "hv_utils"
    assert {d["daemon"] for d in data["daemons"]} >= {"hv_kvp_daemon", "hv_vss_daemon"}


def test_linux_daemon_control() -> None:
    target = "sim-linux://?distro=ubuntu-14.04"
    status, _, err = _run("-t", target, "linux", "stop", "kvp")
    assert status == EXIT_CODES["usage"]
    assert "--force" in err
    status, out, _ = _run("-t", target, "--json", "linux", "stop", "vss")
    assert status == 0
    assert json.loads(out)[0]["running"] is False
    status, _, err = _run("-t", target, "linux", "restart", "hv_kvp_daemon")
    assert status == EXIT_CODES["usage"]
    assert "--force" in err
    status, out, _ = _run("-t", target, "--json", "linux", "restart", "hv_kvp_daemon", "--force")
    assert status == 0
    assert json.loads(out)[0]["running"] is True
    status, _, err = _run("-t", target, "linux", "start", "telepathy")
    assert status == EXIT_CODES["not_found"]
    assert "hv_kvp_daemon" in err


def test_linux_kvp_pool() -> None:
    status, out, _ = _run("-t", "sim-linux://", "--json", "linux", "kvp", "--pool", "3")
    assert status == 0
    items = {item["key"]: item["value"] for item in json.loads(out)}
    assert "VirtualMachineName" in items
    assert _run("-t", "sim-linux://", "linux", "kvp", "--pool", "9")[0] == 2


@pytest.mark.parametrize(
    ("argv", "simulator"),
    [
        (["host", "vms"], "--target sim:// host vms"),
        (["host", "disable", "demovm", "VSS"], "--target sim:// host disable demovm VSS"),
        (["windows", "services"], "--target 'sim://?guest=demovm' windows services"),
        (["windows", "--vm", "demovm", "services"], "--target sim:// windows --vm demovm"),
        (["linux", "status"], "--target sim-linux:// linux status"),
        (["doctor", "--guest"], "--target 'sim://?guest=demovm' doctor --guest"),
    ],
)
@pytest.mark.parametrize("given", [None, "", "   "])
def test_no_target_is_a_usage_error_that_shows_the_simulator(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], simulator: str, given: str | None
) -> None:
    monkeypatch.delenv("HVINTEGRATION_TARGET", raising=False)
    monkeypatch.setenv("HVINTEGRATION_GUEST_PASSWORD", "hvintegration")
    words = argv if given is None else ["--target", given, *argv]
    status, out, err = _run(*words)
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert err.startswith("hvintegration: error: no target: give --target URL")
    assert f"hvintegration {simulator}" in err
    assert err.count("\n") == 1


def test_an_empty_environment_target_is_no_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVINTEGRATION_TARGET", "")
    status, _, err = _run("host", "disable", "demovm", "VSS")
    assert status == EXIT_CODES["usage"]
    assert "--target sim://" in err


def test_commands_without_a_target_need_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HVINTEGRATION_TARGET", raising=False)
    assert _run("catalogue")[0] == 0
    assert _run("advise", "--host-os", "2019", "--guest-os", "win7")[0] == 0


def test_a_partly_failed_read_shows_what_was_read() -> None:
    status, out, err = _run("-t", "sim://", "host", "services", "demovm", "ghost")
    assert status == EXIT_CODES["not_found"]
    assert out == SEED_TABLE
    assert err.startswith("hvintegration: error: ghost: no virtual machine named 'ghost'")
