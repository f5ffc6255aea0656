"""scripts/smoke-extras: each extra installed alone works, and the check can fail.

CI runs the whole script (a fresh virtualenv per extra, installed by pip).
Here its checks run in this environment, which has every extra, and in
copies of it without one extra's packages: the checks must tell the
difference, or a broken extra would pass CI unseen.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "smoke-extras"


def environment_without(hidden: tuple[str, ...], where: Path) -> Path:
    """A virtualenv with this one's packages, less those whose names start with ``hidden``.

    Each top-level entry of this environment's site-packages is linked into
    the new one's, except the hidden packages and their ``.dist-info``: to
    Python (``import``, ``importlib.util.find_spec``, ``importlib.metadata``)
    they are then not installed, as without their extra.
    """
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (source,) = Path(sys.executable).parent.parent.glob("lib/python*/site-packages")
    (target,) = venv.glob("lib/python*/site-packages")
    for entry in source.iterdir():
        if not entry.name.lower().startswith(hidden):
            (target / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    # The console script, for this environment's Python.
    script = (Path(sys.executable).parent / "hvintegration").read_text().splitlines()
    (venv / "bin" / "hvintegration").write_text("\n".join([f"#!{python}", *script[1:]]) + "\n")
    (venv / "bin" / "hvintegration").chmod(0o755)
    return python


def run_checks(
    extras: str, tmp_path: Path, *, hide: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the script's checks, in an environment without the packages in ``hide``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVINTEGRATION_")}
    python = environment_without(hide, tmp_path) if hide else Path(sys.executable)
    return subprocess.run(
        [str(python), str(SCRIPT), "--check-here", extras],
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


@pytest.mark.parametrize(("extras", "hide"), [("psrp", ("asyncssh",)), ("ssh", ("psrp", "pypsrp"))])
def test_one_extra_alone(extras: str, hide: tuple[str, ...], tmp_path: Path) -> None:
    # pypsrp without asyncssh is how `pip install 'hvintegration[psrp]'` looks.
    done = run_checks(extras, tmp_path, hide=hide)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAIL" not in done.stdout


def test_ci_runs_the_smoke_test_and_counts_its_status() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    calls = [line for line in lines if "scripts/smoke-extras" in line and not line.startswith("#")]
    assert calls == [".venv/bin/python scripts/smoke-extras || status=1"]
