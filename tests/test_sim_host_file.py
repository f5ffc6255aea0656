"""`sim://?host_file=PATH`: a file on the simulated host, for `host copy-file` from the CLI."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from hvintegration import HyperVHost, InvalidTargetError
from hvintegration.simulator.state import load_host
from hvintegration.transport import parse_target

CLI = str(Path(sys.executable).parent / "hvintegration")


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVINTEGRATION_")}
    return subprocess.run(
        [CLI, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_option_puts_a_file_on_the_host_and_keeps_it_in_the_url() -> None:
    target = parse_target(r"sim://HV02?host_file=C:\Tools\agent.msi")
    host = target.build_host()  # type: ignore[attr-defined]
    assert host.files == {r"c:\tools\agent.msi": b"A file on the simulated Hyper-V host.\r\n"}
    again = parse_target(target.url)
    assert again == target


async def test_the_file_copies_into_the_guest() -> None:
    url = r"sim://?host_file=C:\Tools\agent.msi"
    async with HyperVHost.connect(url) as host:
        vm = host.vm("demovm")
        await vm.integration_service("Guest Service Interface").enable()
        copied = await vm.copy_file(
            r"C:\Tools\agent.msi", r"C:\Temp\agent.msi", create_full_path=True
        )
        assert copied.size == 39


@pytest.mark.parametrize("path", ["/tmp/agent.msi", "agent.msi", "C:", "C:\\a\nb"])
def test_a_path_that_is_not_a_windows_path_is_refused(path: str) -> None:
    with pytest.raises(InvalidTargetError, match=r"host_file .*give a Windows path"):
        parse_target("sim://?" + urllib.parse.urlencode({"host_file": path}))


def test_the_help_examples_run_in_order(tmp_path: Path) -> None:
    # The copy-file help shows the whole way on the simulator; run it as shown.
    help_text = _run("host", "copy-file", "--help", cwd=tmp_path).stdout
    examples = [
        line.strip()
        for line in help_text.split("examples:\n", 1)[1].splitlines()
        if "sim://" in line
    ]
    assert len(examples) == 2
    for example in examples:
        done = _run(*shlex.split(example)[1:], cwd=tmp_path)
        assert done.returncode == 0, (example, done.stderr)
    assert "C:\\Temp\\agent.msi" in done.stdout
    lab = load_host(tmp_path / "lab.json")
    assert lab.vm("demovm").files is not None
    assert lab.vm("demovm").files.files[r"c:\temp\agent.msi"] == lab.files[r"c:\tools\agent.msi"]


def test_without_the_file_the_copy_fails_with_not_found(tmp_path: Path) -> None:
    # The file really comes from the option: a lab without it has nothing to copy.
    assert (
        _run(
            "-t",
            "sim://?state=lab.json",
            "host",
            "enable",
            "demovm",
            "vmicguestinterface",
            cwd=tmp_path,
        ).returncode
        == 0
    )
    done = _run(
        "-t",
        "sim://?state=lab.json",
        "host",
        "copy-file",
        "demovm",
        r"C:\Tools\agent.msi",
        r"C:\Temp\agent.msi",
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "agent.msi" in done.stderr
