"""scripts/smoke-extras: each extra installed alone works, and the check can fail.

CI runs the whole script (a fresh virtualenv per extra). Here its checks run
in this environment, which has every extra, and with one extra's package
hidden, which is how an environment without that extra looks to Python: the
checks must tell the difference, or a broken extra would pass CI unseen.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "smoke-extras"


def run_checks(
    extras: str, tmp_path: Path, *, hide: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the script's checks here, with the packages in ``hide`` made unimportable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVINTEGRATION_")}
    if hide:
        blocked = tmp_path / "blocked"
        for package in hide:
            (blocked / package).mkdir(parents=True)
            (blocked / package / "__init__.py").write_text(
                f"raise ModuleNotFoundError({f'No module named {package!r}'!r}, name={package!r})\n"
            )
        env["PYTHONPATH"] = str(blocked)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check-here", extras],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_extra_together_passes(tmp_path: Path) -> None:
    done = run_checks("ssh,psrp", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout
    # Each target was really tried against the closed port.
    assert done.stdout.count("to a closed port") == 3


def test_a_missing_extra_fails_the_check(tmp_path: Path) -> None:
    # Claiming the ssh extra where asyncssh cannot be imported must fail.
    done = run_checks("ssh,psrp", tmp_path, hide=("asyncssh",))
    assert done.returncode == 1
    assert "FAIL hvintegration[ssh,psrp]: ssh:// to a closed port" in done.stdout


@pytest.mark.parametrize(
    ("extras", "hide"), [("psrp", ("asyncssh",)), ("ssh", ("psrp", "psrpcore"))]
)
def test_one_extra_alone(extras: str, hide: tuple[str, ...], tmp_path: Path) -> None:
    # pypsrp without asyncssh is how `pip install 'hvintegration[psrp]'` looks.
    done = run_checks(extras, tmp_path, hide=hide)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout


def test_ci_runs_the_smoke_test_and_counts_its_status() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    calls = [line for line in lines if "scripts/smoke-extras" in line and not line.startswith("#")]
    assert calls == ["scripts/smoke-extras || status=1"]
