"""``hvintegration fleet ...`` from an inventory, in process and as a real child process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from hvintegration.cli import run
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.sshd import free_loopback_port


def _files(tmp_path: Path, *, unreachable: bool = False) -> tuple[Path, Path]:
    inventory = tmp_path / "fleet.toml"
    text = f"""
        [targets.hv01]
        url = "sim://HV01?vms=1&state={tmp_path / "hv01.json"}"
        [targets.hv02]
        url = "sim://HV02?state={tmp_path / "hv02.json"}"
        [targets.web]
        url = "sim-linux://web?state={tmp_path / "web.json"}"
        [targets.win]
        url = "sim://?guest=demovm"
    """
    if unreachable:
        text += f"""
        [targets.gone]
        url = "ssh://root@127.0.0.1:{free_loopback_port()}?shell=powershell"
        """
    inventory.write_text(textwrap.dedent(text))
    policy = tmp_path / "policy.toml"
    policy.write_text(
        textwrap.dedent(
            """
            [[rule]]
            services = { "Guest Service Interface" = true }
            [[rule]]
            targets = "hv02"
            services = { Heartbeat = false }
            [[rule]]
            daemons = { vss = false }
            """
        )
    )
    return inventory, policy


def _run(*argv: str, console: Console | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err, progress=console)
    return status, out.getvalue(), err.getvalue()


def test_services_lists_every_host_and_a_failure_sets_the_status(tmp_path: Path) -> None:
    inventory, _ = _files(tmp_path, unreachable=True)
    status, out, err = _run("fleet", "services", "--inventory", str(inventory))
    assert status == 6  # the one failure is a connection failure
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["Target", "VMName", "Name"]
    assert sum(line.startswith("hv01 ") for line in lines) == 12
    assert sum(line.startswith("hv02 ") for line in lines) == 6
    # Each failure is said once, on stderr, not again under the table.
    assert "gone" not in out
    assert err.count("gone:") == 1
    assert err.startswith("hvintegration: error: gone: cannot reach 127.0.0.1")


def test_json_has_rows_and_targets(tmp_path: Path) -> None:
    inventory, _ = _files(tmp_path)
    status, out, _ = _run("fleet", "linux", "--inventory", str(inventory), "--json")
    assert status == 0
    data = json.loads(out)
    assert [t["target"] for t in data["targets"]] == ["web"]
    assert {row["daemon"] for row in data["rows"]} == {
        "hv_kvp_daemon",
        "hv_vss_daemon",
        "hv_fcopy_daemon",
    }
    status, out, _ = _run("fleet", "windows", "-i", str(inventory), "--json")
    assert status == 0
    assert {row["name"] for row in json.loads(out)["rows"]} >= {"vmicheartbeat"}


def test_plan_then_apply_then_nothing_left(tmp_path: Path) -> None:
    inventory, policy = _files(tmp_path)
    status, out, _ = _run("fleet", "plan", str(policy), "--inventory", str(inventory))
    assert status == 0
    assert out.splitlines() == [
        "~ hv01 demovm Guest Service Interface: disabled -> enabled",
        "~ hv01 vm001 Guest Service Interface: disabled -> enabled",
        "~ hv02 demovm Guest Service Interface: disabled -> enabled",
        "~ hv02 demovm Heartbeat: enabled -> disabled (needs --force)",
        "~ web hv_vss_daemon: running -> stopped",
        "5 to change on 3 targets; 0 failed",
    ]
    # Without --force the host with a critical change is refused whole; the rest go ahead.
    status, out, err = _run("fleet", "apply", str(policy), "--inventory", str(inventory))
    assert status == 2
    assert "changed: hv01 vm001 Guest Service Interface: disabled -> enabled" in out
    assert "changed: web hv_vss_daemon: running -> stopped" in out
    assert "hv02: refusing to turn off Heartbeat" in err
    assert "--force" in err
    status, out, _ = _run("fleet", "apply", str(policy), "-i", str(inventory), "--force")
    assert status == 0
    assert out.splitlines()[-1] == "2 changed on 1 target; 0 failed"
    status, out, _ = _run("fleet", "plan", str(policy), "-i", str(inventory))
    assert (status, out) == (0, "0 to change on 0 targets; 0 failed\n")


def test_group_and_bad_input(tmp_path: Path) -> None:
    inventory, _ = _files(tmp_path)
    status, _, err = _run("fleet", "services", "-i", str(inventory), "--group", "nope")
    assert status == 2
    assert "no group 'nope'" in err
    status, _, err = _run("-t", "sim://", "fleet", "services", "-i", str(inventory))
    assert status == 2
    assert "fleet takes --inventory FILE, not --target" in err
    status, _, err = _run("fleet", "services", "-i", str(inventory), "--ask-password")
    assert status == 2
    assert "password from the inventory" in err
    status, _, err = _run("fleet", "services")
    assert status == 2
    assert "--inventory" in err
    status, _, err = _run("fleet", "plan", str(tmp_path / "none.toml"), "-i", str(inventory))
    assert status == 2
    assert "none.toml: No such file" in err


def test_a_progress_bar_on_a_terminal_and_none_with_json(tmp_path: Path) -> None:
    inventory, _ = _files(tmp_path)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    status, _, _ = _run("fleet", "services", "-i", str(inventory), console=console)
    assert status == 0
    assert "reading hosts" in screen.getvalue()
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    status, _, _ = _run("fleet", "services", "-i", str(inventory), "--json", console=console)
    assert status == 0
    assert screen.getvalue() == ""


def test_a_real_child_process_through_pipes_prints_only_the_result(tmp_path: Path) -> None:
    inventory, policy = _files(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "hvintegration", "fleet", "plan", str(policy), "-i", str(inventory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines()[-1] == "5 to change on 3 targets; 0 failed"


def test_diagnose_exits_1_on_a_problem(tmp_path: Path) -> None:
    inventory, _ = _files(tmp_path)
    status, out, _ = _run("fleet", "diagnose", "-i", str(inventory))
    assert status == 1
    assert out.splitlines()[0].split() == [
        "Target",
        "VMName",
        "VMId",
        "Service",
        "Verdict",
        "Problem",
        "Why",
        "Remedy",
    ]
    assert any(
        line.startswith("hv01 ")
        and "disabled on host" in line
        and line.endswith("host enable demovm 'Guest Service Interface'")
        for line in out.splitlines()
    )


def test_diagnose_tells_twins_apart_and_takes_the_host_os(tmp_path: Path) -> None:
    lab = SimulatedHost(os="windows-10")
    first = lab.add_vm("twin", guest="windows-7")
    second = lab.add_vm("twin", guest="windows-7", id=uuid.uuid4(), enabled={"VSS": False})
    save_host(lab, tmp_path / "lab.json")
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(f'[targets.lab]\nurl = "sim://HV01?state={tmp_path / "lab.json"}"\n')
    status, out, _ = _run("fleet", "diagnose", "-i", str(inventory), "--json")
    assert status == 1
    rows = [r for r in json.loads(out)["rows"] if r["vm"] == "twin" and r["service"] == "vss"]
    assert {(r["vm_id"], r["verdict"]) for r in rows} == {
        (str(first.id), "protocol mismatch"),
        (str(second.id), "disabled on host"),
    }
    [disabled] = [r for r in rows if r["vm_id"] == str(second.id)]
    # The VM is named by id: its name is not its own.
    assert disabled["remedies"][0]["cli"].endswith(f" host enable {second.id} VSS")
    status, out, _ = _run(
        "fleet", "diagnose", "-i", str(inventory), "--json", "--host-os", "Windows 10"
    )
    actions = [
        step["action"]
        for r in json.loads(out)["rows"]
        if r["vm_id"] == str(first.id) and r["service"] == "vss"
        for step in r["remedies"]
    ]
    assert actions == ["update the guest's integration services: Windows Update"]
    status, _, err = _run("fleet", "diagnose", "-i", str(inventory), "--host-os", "Windows 95")
    assert status != 0
    assert "Windows 95" in err
    assert "Windows Server 2022" in err  # the known ones


@pytest.mark.parametrize("action", ["services", "diagnose", "plan"])
def test_fleet_help_shows_no_single_target_options(action: str) -> None:
    status, out, _ = _run("fleet", action, "--help")
    assert status == 0
    for option in ("--target", "--password-file", "--ask-password"):
        assert option not in out
    # Every other command keeps them.
    status, out, _ = _run("host", "vms", "--help")
    assert "--target" in out
    assert "--password-file" in out


@pytest.mark.parametrize("action", ["services", "windows", "linux", "diagnose", "plan", "apply"])
def test_every_command_has_help(action: str) -> None:
    status, out, _ = _run("fleet", action, "--help")
    assert status == 0
    assert "--inventory" in out


def test_command_line_timeout_wins_over_the_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "slow.toml"
    inventory.write_text(
        textwrap.dedent(
            """
            [defaults]
            operation_timeout = 30
            [targets.slow]
            url = "sim://S?latency=4"
            operation_timeout = 20
            """
        )
    )
    status, _, err = _run("fleet", "services", "-i", str(inventory), "--timeout", "0.5")
    assert status != 0
    assert "slow:" in err
    assert "0.5" in err  # the operation gave up after --timeout, not 20 or 30 s


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_connections_below_one_is_a_usage_error(tmp_path: Path, value: str) -> None:
    inventory, _ = _files(tmp_path)
    status, _, err = _run("fleet", "services", "-i", str(inventory), "--max-connections", value)
    assert status == 2
    assert "must be at least 1" in err


def test_policy_faults_are_refused_or_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inventory, _ = _files(tmp_path)
    inventory.write_text(inventory.read_text() + '[groups.prod]\ntargets = ["hv01"]\n')
    misspelt = tmp_path / "misspelt.toml"
    misspelt.write_text('[[rule]]\ngroup = "prdo"\nservices = { VSS = false }\n')
    status, _, err = _run("fleet", "plan", str(misspelt), "-i", str(inventory))
    assert status == 2
    assert "no group 'prdo' in the inventory (groups: prod)" in err
    nowhere = tmp_path / "nowhere.toml"
    nowhere.write_text('[[rule]]\ntargets = "hv9*"\nservices = { VSS = false }\n')
    status, out, err = _run("fleet", "plan", str(nowhere), "-i", str(inventory))
    assert status == 0
    # A warning, on stderr (pytest's log capture takes it here).
    assert "rule 1: targets = 'hv9*' matches no target" in err + caplog.text
    assert out == "0 to change on 0 targets; 0 failed\n"


def test_a_host_without_the_service_cannot_comply(tmp_path: Path) -> None:
    inventory = tmp_path / "old.toml"
    inventory.write_text('[targets.old]\nurl = "sim://OLD?os=windows-server-2012"\n')
    policy = tmp_path / "gsi.toml"
    policy.write_text('[[rule]]\nservices = { "Guest Service Interface" = true }\n')
    status, out, _ = _run("fleet", "plan", str(policy), "-i", str(inventory))
    assert status == 0
    assert out.splitlines() == [
        "! old demovm Guest Service Interface: cannot comply: "
        "the host offers no such service to this VM",
        "0 to change on 0 targets; 0 failed; 1 cannot comply",
    ]


# --- credentials are read only for the targets a command contacts ---------------------


def _mixed_inventory(tmp_path: Path) -> Path:
    # An SSH host and an SSH Linux guest whose passwords cannot be read (a
    # prompt with no terminal, a missing file), beside simulated targets.
    inventory = tmp_path / "fleet.toml"
    port = free_loopback_port()
    inventory.write_text(
        textwrap.dedent(
            f"""
            [targets.hv01]
            url = "sim://HV01?state={tmp_path / "hv01.json"}"
            [targets.hv03]
            url = "ssh://admin@127.0.0.1:{port}?shell=powershell"
            kind = "host"
            password = {{ prompt = true }}
            [targets.web]
            url = "sim-linux://web?state={tmp_path / "web.json"}"
            [targets.db]
            url = "ssh://root@127.0.0.1:{port}"
            kind = "linux"
            password = {{ file = "{tmp_path / "missing.txt"}" }}
            """
        )
    )
    return inventory


def test_a_command_reads_only_the_passwords_of_the_targets_it_contacts(tmp_path: Path) -> None:
    inventory = _mixed_inventory(tmp_path)
    # fleet linux contacts db, whose password file is missing, never hv03.
    status, _, err = _run("fleet", "linux", "-i", str(inventory))
    assert status == 2
    assert "missing.txt" in err
    assert "hv03" not in err
    # fleet services and diagnose contact hosts only: hv03's prompt fails
    # (no terminal), never db's file.
    for action in ("services", "diagnose"):
        status, _, err = _run("fleet", action, "-i", str(inventory))
        assert status == 2, err
        assert "the password of hv03 must be typed" in err
        assert "missing.txt" not in err


def test_a_command_that_needs_no_password_reads_none(tmp_path: Path) -> None:
    inventory = _mixed_inventory(tmp_path)
    text = inventory.read_text()
    inventory.write_text(text + '[targets.win]\nurl = "sim://?guest=demovm"\n')
    status, out, err = _run("fleet", "windows", "-i", str(inventory))
    assert status == 0, err
    assert "vmicvss" in out


def test_a_policy_reads_the_passwords_of_its_scope_only(tmp_path: Path) -> None:
    inventory = _mixed_inventory(tmp_path)
    policy = tmp_path / "policy.toml"
    policy.write_text('[[rule]]\ntargets = "hv01"\nservices = { VSS = false }\n')
    status, out, err = _run("fleet", "plan", str(policy), "-i", str(inventory))
    assert status == 0, err
    assert "hv01 demovm VSS: enabled -> disabled" in out
    assert err == ""
