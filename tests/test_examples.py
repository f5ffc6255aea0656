"""The examples run as documented, as real child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.sshd import free_loopback_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def _environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k != "HVINTEGRATION_TARGET"}
    return {**environment, **extra}


@pytest.mark.parametrize(
    "script",
    ["seed_walkthrough.py", "compliance_report.py", "diagnose_host.py", "guest_inventory.py"],
)
def test_an_example_without_a_target_stops_and_shows_the_simulator(script: str) -> None:
    done = _run(str(EXAMPLES / script), env=_environment())
    assert done.returncode != 0
    assert done.stdout == ""
    assert "HVINTEGRATION_TARGET" in done.stderr
    assert "sim://" in done.stderr


def test_an_example_takes_its_target_from_the_environment(tmp_path: Path) -> None:
    # The target named in the environment is the one used: an unreachable
    # host fails, where a silent simulator would report "fixed 6 services".
    port = free_loopback_port()
    target = f"ssh://admin@127.0.0.1:{port}"
    done = _run(
        str(EXAMPLES / "compliance_report.py"),
        "--fix",
        env=_environment(HVINTEGRATION_TARGET=target),
    )
    assert done.returncode != 0
    assert "fixed" not in done.stdout
    assert "127.0.0.1" in done.stderr
    state = tmp_path / "lab.json"
    save_host(SimulatedHost(), state)
    done = _run(
        str(EXAMPLES / "seed_walkthrough.py"),
        env=_environment(HVINTEGRATION_TARGET=f"sim://?state={state}"),
    )
    assert done.returncode == 0, done.stderr
    assert "enabled = True" in done.stdout


def test_seed_walkthrough() -> None:
    done = _run(str(EXAMPLES / "seed_walkthrough.py"), "sim://")
    assert done.returncode == 0, done.stderr
    assert "Guest Service Interface   False  OK" in done.stdout
    assert "enabled = True" in done.stdout


@pytest.mark.parametrize(("fix", "status"), [(False, 1), (True, 0)])
def test_compliance_report(fix: bool, status: int) -> None:
    done = _run(str(EXAMPLES / "compliance_report.py"), "sim://?vms=3", *(["--fix"] if fix else []))
    assert done.returncode == status, done.stderr
    assert done.stdout.count("Guest Service Interface is off") == 4
    if fix:
        assert "fixed 4 services" in done.stdout


@pytest.mark.parametrize(
    ("target", "status", "problems"),
    [("sim://?vms=2", 1, 3), ("sim://?os=windows-server-2012", 0, 0)],
)
def test_diagnose_host(target: str, status: int, problems: int) -> None:
    done = _run(str(EXAMPLES / "diagnose_host.py"), target)
    assert done.returncode == status, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert header == ["VMName", "State", "OK", "Working", "NeedsAction"]
    assert done.stdout.count("(disabled on host): hvintegration --target") == problems


def test_guest_inventory() -> None:
    done = _run(str(EXAMPLES / "guest_inventory.py"), "sim://?vms=2")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [(row[0], row[-1]) for row in rows] == [
        ("demovm", "192.0.2.10"),
        ("vm001", "192.0.2.11"),
        ("vm002", "192.0.2.12"),
    ]
    assert all("Up to date" in line for line in done.stdout.splitlines()[1:])


def test_audit_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(
        "[targets.hv01]\n"
        'url = "sim://HV01?vms=2"\n'
        "[targets.hv02]\n"
        'url = "sim://HV02"\n'
        "[targets.down]\n"
        f'url = "ssh://root@127.0.0.1:{free_loopback_port()}?shell=powershell"\n'
    )
    rows = tmp_path / "rows.csv"
    done = _run(str(EXAMPLES / "audit_inventory.py"), str(inventory), "--csv", str(rows))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == [
        "hv01 demovm: Guest Service Interface off",
        "hv01 vm001: Guest Service Interface off",
        "hv01 vm002: Guest Service Interface off",
        "hv02 demovm: Guest Service Interface off",
    ]
    assert lines[4].startswith("down: not read: cannot reach 127.0.0.1")
    assert lines[5] == "4 VMs on 2 hosts audited, 4 need a look, 1 hosts not read"
    assert "[3/3]" in done.stderr
    assert len(rows.read_text().splitlines()) == 1 + 4 * 6


def test_audit_inventory_tells_vms_of_one_name_apart_and_refuses_a_bad_inventory(
    tmp_path: Path,
) -> None:
    state = tmp_path / "hv01.json"
    host = SimulatedHost("HV01")
    host.add_vm("demovm", id=uuid.UUID(int=7))
    save_host(host, state)
    inventory = tmp_path / "fleet.toml"
    inventory.write_text(f'[targets.hv01]\nurl = "sim://HV01?state={state}"\n')
    done = _run(str(EXAMPLES / "audit_inventory.py"), str(inventory))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert sum(line.startswith("hv01 demovm (") for line in lines) == 2
    assert lines[-1] == "2 VMs on 1 hosts audited, 2 need a look, 0 hosts not read"
    bad = tmp_path / "bad.toml"
    bad.write_text("[targets.x]\n")
    done = _run(str(EXAMPLES / "audit_inventory.py"), str(bad))
    assert done.returncode == 2
    assert done.stderr.startswith("audit_inventory: error: ")
    assert "Traceback" not in done.stderr
