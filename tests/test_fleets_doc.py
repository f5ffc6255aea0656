"""docs/fleets.md's inventory, policy and lab work together as the page says.

The page shows an inventory of real hosts, a policy, and the same inventory
on the simulators (``lab.toml``) with a ``fleet plan`` command and its
output. Here the blocks are taken from the page as written: the policy's
groups must be the inventory's, and the command must print what the page
shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hvintegration.fleet import PolicyError, load_inventory, load_policy

PAGE = Path(__file__).resolve().parent.parent / "docs" / "fleets.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def page_blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(PAGE.read_text(encoding="utf-8"))]


def toml_block(first_line: str) -> str:
    """The page's TOML block whose first non-blank line starts with ``first_line``."""
    found = [s for lang, s in page_blocks() if lang == "toml" and s.startswith(first_line)]
    assert len(found) == 1, first_line
    return found[0]


INVENTORY = toml_block("[defaults]")
POLICY = toml_block("# policy.toml")
LAB = toml_block("# lab.toml")


def test_the_policy_names_only_groups_of_the_inventory(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text(INVENTORY)
    (tmp_path / "policy.toml").write_text(POLICY)
    inventory = load_inventory(tmp_path / "fleet.toml")
    policy = load_policy(tmp_path / "policy.toml")
    policy.check_groups(inventory.groups)  # raises PolicyError for a group it lacks
    assert "hyperv" in POLICY
    # The check can fail: a group the inventory lacks is refused.
    (tmp_path / "other.toml").write_text(POLICY.replace('"hyperv"', '"prod"'))
    with pytest.raises(PolicyError, match="no group 'prod'"):
        load_policy(tmp_path / "other.toml").check_groups(inventory.groups)


def test_the_lab_is_the_inventory_on_the_simulators(tmp_path: Path) -> None:
    (tmp_path / "fleet.toml").write_text(INVENTORY)
    (tmp_path / "lab.toml").write_text(LAB)
    real = load_inventory(tmp_path / "fleet.toml")
    lab = load_inventory(tmp_path / "lab.toml")
    assert sorted(real.groups) == sorted(lab.groups)


def test_the_lab_command_prints_what_the_page_shows(tmp_path: Path) -> None:
    (tmp_path / "lab.toml").write_text(LAB)
    (tmp_path / "policy.toml").write_text(POLICY)
    blocks = page_blocks()
    (index,) = [
        i
        for i, (lang, source) in enumerate(blocks)
        if lang == "sh" and "--inventory lab.toml" in source
    ]
    command = blocks[index][1].split()
    assert command[0] == "hvintegration"
    lang, shown = blocks[index + 1]
    assert lang == "text"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVINTEGRATION_")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "hvintegration"), *command[1:]],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == shown.splitlines()
    # Apply makes the same changes, then nothing is left to do on a kept lab.
    kept = LAB.replace('"sim://HV01?vms=2"', '"sim://HV01?vms=2&state=hv01.json"')
    (tmp_path / "lab.toml").write_text(kept)
    for action, status in (("apply", 0), ("plan", 0)):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "hvintegration"), "fleet", action, *command[3:]],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == status, done.stderr
    assert "~ hv01" not in done.stdout
