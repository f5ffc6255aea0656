"""The Linux scripts may run as root: nothing the caller's surroundings plant
may run in their place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hvintegration.linux.guest import _kvp_argv, _sh
from hvintegration.linux.scripts import START_SCRIPT
from hvintegration.transport.local import LocalTransport


async def test_kvp_helper_ignores_modules_planted_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = tmp_path / "planted"
    planted.mkdir()
    marker = tmp_path / "pwned"
    (planted / "fcntl.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit(0)\n")
    monkeypatch.chdir(planted)
    monkeypatch.setenv("PYTHONPATH", str(planted))
    async with LocalTransport() as local:
        done = await local.run_command(_kvp_argv("read"), timeout=30)
    assert not marker.exists(), done.stderr
    assert b"fcntl" not in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the check is about root-owned programs")
@pytest.mark.parametrize("mode", [0o775, 0o757])
async def test_start_refuses_a_program_others_could_replace(tmp_path: Path, mode: int) -> None:
    program = tmp_path / "hv_kvp_daemon"
    marker = tmp_path / "ran"
    program.write_text(f"#!/bin/sh\ntouch {marker}\n")
    program.chmod(mode)
    async with LocalTransport() as local:
        done = await local.run_command(_sh(START_SCRIPT, "1", str(program)), timeout=30)
    assert done.exit_status == 77
    assert b"owned by root and writable by no one else" in done.stderr
    assert not marker.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
async def test_start_refuses_a_program_owned_by_another_user(tmp_path: Path) -> None:
    program = tmp_path / "hv_kvp_daemon"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    os.chown(program, 65534, 65534)
    async with LocalTransport() as local:
        done = await local.run_command(_sh(START_SCRIPT, "1", str(program)), timeout=30)
    assert done.exit_status == 77
