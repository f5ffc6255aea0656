"""The controller may be Windows: its code paths, run here with the POSIX functions taken away.

Windows has no ``os.killpg``, no ``signal.SIGKILL`` and no ``fcntl``. Each
test removes them (from the modules, or from ``sys.modules`` in a child
Python) and checks that the Windows branch does the right thing against real
processes: the whole process tree of a timed-out PowerShell is killed, the
package imports and ``sim://`` runs, state files are locked with
``msvcrt.locking``, and the default PowerShell is the 64-bit one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import psutil
import pytest

from hvintegration.errors import OperationTimeoutError
from hvintegration.operations import LIST_VMS
from hvintegration.simulator.state import edit_state
from hvintegration.testing.powershell_peers import LocalStandInPeer
from hvintegration.transport import _process, local


@pytest.fixture
def no_process_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take away what Windows lacks: ``os.killpg`` and, for our code, ``signal.SIGKILL``."""
    monkeypatch.delattr(os, "killpg")
    # psutil itself still kills with the platform's own means (on Windows,
    # TerminateProcess); only the library's modules lose SIGKILL.
    without_sigkill = types.SimpleNamespace(
        **{name: getattr(signal, name) for name in dir(signal) if name != "SIGKILL"}
    )
    monkeypatch.setattr(_process, "signal", without_sigkill)


def _gone(pid: int, deadline: float = 20.0) -> bool:
    """Whether ``pid`` has ended (or is a zombie nobody reaped yet), waiting a while."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


_TREE = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print(child.pid, flush=True)
    time.sleep(300)
    """
)


async def _start_tree() -> tuple[asyncio.subprocess.Process, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _TREE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    grandchild = int((await process.stdout.readline()).decode())
    return process, grandchild


@pytest.mark.usefixtures("no_process_groups")
async def test_kill_process_group_ends_the_whole_tree_without_killpg() -> None:
    process, grandchild = await _start_tree()
    # The grandchild must not survive as a child of init either.
    await _process.kill_process_group(process)
    assert process.returncode is not None
    assert _gone(grandchild)


@pytest.mark.usefixtures("no_process_groups")
async def test_abort_process_ends_the_whole_tree_without_killpg() -> None:
    process, grandchild = await _start_tree()
    _process.abort_process(process)
    await asyncio.wait_for(process.wait(), 20)
    assert _gone(grandchild)


@pytest.mark.usefixtures("no_process_groups")
async def test_a_timed_out_local_operation_leaves_no_powershell(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    with edit_state(peer.path) as host:
        host.inject_fault("hang", operation="list_vms")
    async with peer.open_transport() as transport:
        with pytest.raises(OperationTimeoutError):
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=2)
    starts = [
        json.loads(line)["pid"] for line in peer.log.read_text().splitlines() if '"pid"' in line
    ]
    assert starts
    assert all(_gone(pid) for pid in starts)


def test_the_default_powershell_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("SystemRoot", "C:\\Windows")
    # A 32-bit Python on 64-bit Windows: WOW64 sets PROCESSOR_ARCHITEW6432.
    monkeypatch.setattr(local.platform, "architecture", lambda: ("32bit", "WindowsPE"))
    monkeypatch.setenv("PROCESSOR_ARCHITEW6432", "AMD64")
    assert local.default_powershell() == (
        "C:\\Windows\\Sysnative\\WindowsPowerShell\\v1.0\\powershell.exe"
    )
    assert local.LocalTarget().executable == local.default_powershell()
    assert local.LocalTarget().url == "local://"
    # 32-bit Windows, and 64-bit Python: powershell.exe is the right one.
    monkeypatch.delenv("PROCESSOR_ARCHITEW6432")
    assert local.default_powershell() == "powershell.exe"
    monkeypatch.setattr(local.platform, "architecture", lambda: ("64bit", "WindowsPE"))
    assert local.default_powershell() == "powershell.exe"


# A Python that has what Windows has: no fcntl, but msvcrt.locking. The
# stand-in msvcrt locks byte ranges with POSIX record locks, which, like
# msvcrt.locking, exclude other processes from the same bytes.
_WINDOWS_PRELUDE = textwrap.dedent(
    """
    # The standard library picks its Windows code by finding msvcrt; load
    # it first with the real platform's code, then hand out the stand-in.
    import asyncio, getpass, platform, shutil, subprocess, tempfile, uuid
    import errno, fcntl as _posix_fcntl, os, sys, types
    def locking(fd, mode, nbytes):
        if mode == msvcrt.LK_UNLCK:
            _posix_fcntl.lockf(fd, _posix_fcntl.LOCK_UN, nbytes, 0, os.SEEK_CUR)
            return
        assert mode == msvcrt.LK_NBLCK, mode
        try:
            exclusive = _posix_fcntl.LOCK_EX | _posix_fcntl.LOCK_NB
            _posix_fcntl.lockf(fd, exclusive, nbytes, 0, os.SEEK_CUR)
        except OSError:
            raise PermissionError(errno.EACCES, "Permission denied") from None
        msvcrt.calls += 1
    msvcrt = types.ModuleType("msvcrt")
    msvcrt.LK_UNLCK, msvcrt.LK_LOCK, msvcrt.LK_NBLCK = 0, 1, 2
    msvcrt.locking, msvcrt.calls = locking, 0
    sys.modules["msvcrt"] = msvcrt
    sys.modules["fcntl"] = None
    """
)


def _windows_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WINDOWS_PRELUDE + textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_package_imports_and_sim_runs_without_fcntl(tmp_path: Path) -> None:
    done = _windows_python(
        """
        import importlib, pkgutil, hvintegration
        skipped = {"hvintegration.testing.linux_guest", "hvintegration.testing._guest_setup",
                   "hvintegration.testing.sshd", "hvintegration.testing.powershell_peers",
                   "hvintegration.testing.standin_powershell"}
        for info in pkgutil.walk_packages(hvintegration.__path__, "hvintegration."):
            if info.name not in skipped:
                importlib.import_module(info.name)
        from hvintegration.cli import run
        status = run(["--target", "sim://", "host", "services", "demovm"])
        state = os.path.join(os.getcwd(), "lab.json")
        status2 = run(["--target", "sim://?state=" + state, "host", "services", "demovm"])
        print("STATUS", status, status2, "LOCKS", msvcrt.calls)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Guest Service Interface" in done.stdout
    assert "STATUS 0 0" in done.stdout
    locks = int(done.stdout.rsplit("LOCKS", 1)[1])
    assert locks >= 1


def test_state_file_locking_with_msvcrt_across_processes(tmp_path: Path) -> None:
    from hvintegration.simulator.model import SimulatedHost
    from hvintegration.simulator.state import save_host

    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    code = f"""
        from hvintegration.simulator.state import edit_state
        for _ in range(40):
            with edit_state({str(state)!r}) as host:
                host.files["count"] = str(int(host.files.get("count", b"0")) + 1).encode()
        print("LOCKS", msvcrt.calls)
        """
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WINDOWS_PRELUDE + textwrap.dedent(code)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [writer.communicate(timeout=300) for writer in writers]
    assert all(writer.returncode == 0 for writer in writers), outputs
    assert all("LOCKS 40" in out for out, _ in outputs)
    with edit_state(state) as host:
        # No writer lost another's change: every increment is there.
        assert host.files["count"] == b"120"
