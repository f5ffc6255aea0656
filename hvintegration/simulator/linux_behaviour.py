"""What a simulated Linux guest answers: the library's guest scripts and ``systemctl``.

The guest recognises the library's fixed scripts (status, stop, start, KVP)
by their exact text and writes the same reports a real guest's ``sh`` would,
so everything above the transport runs unchanged. Each command runs whole
before the next, so the change scripts' lock (start, stop and restart of one
daemon take turns) always comes free at once; the start and stop scripts'
check under it (an instance started since the status was read) is answered
as the real scripts answer it. ``sudo -n`` succeeds only
for root or a user with passwordless sudo, and fails the way sudo does
otherwise. Any other command exits with status 127: there is no shell.
"""

from __future__ import annotations

import errno
import os

from hvintegration.linux.kvp import edit_pool
from hvintegration.linux.scripts import (
    KVP_SCRIPT,
    START_SCRIPT,
    STATUS_SCRIPT,
    STOP_SCRIPT,
    UNIT_SCRIPT,
)
from hvintegration.simulator.linux_model import LinuxGuestModel

__all__ = ["Answer", "answer_command", "command_name"]

Answer = tuple[int, bytes, bytes]
"""Exit status, stdout, stderr."""

_SCRIPTS = {
    STATUS_SCRIPT: "status",
    STOP_SCRIPT: "stop",
    START_SCRIPT: "start",
    UNIT_SCRIPT: "unit",
    KVP_SCRIPT: "kvp",
}


def command_name(argv: tuple[str, ...]) -> str:
    """The name a command counts and matches faults under.

    ``status``, ``stop``, ``start``, ``unit`` or ``kvp`` for the library's scripts
    (also under ``sudo -n --``), ``systemctl``, else the program's name.

    Example:
        >>> command_name(("sudo", "-n", "--", "systemctl", "stop", "--", "x.service"))
        'systemctl'
    """
    if argv[:3] == ("sudo", "-n", "--") and len(argv) > 3:
        argv = argv[3:]
    if argv[:2] == ("sh", "-c") and len(argv) >= 3 and argv[2] in _SCRIPTS:
        return _SCRIPTS[argv[2]]
    return argv[0].rsplit("/", 1)[-1]


def _hex(text: str | bytes) -> str:
    return (text.encode() if isinstance(text, str) else text).hex()


class _Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def out(self, *fields: object) -> None:
        self.lines.append("\t".join(str(f) for f in fields))

    def data(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


def answer_command(guest: LinuxGuestModel, argv: tuple[str, ...], stdin: bytes) -> Answer:
    """Run one command on the simulated guest.

    Args:
        guest: The guest, changed in place.
        argv: The command.
        stdin: Its input.

    Returns:
        Exit status, stdout and stderr.
    """
    return _answer(guest, argv, stdin, root=guest.uid == 0)


def _answer(guest: LinuxGuestModel, argv: tuple[str, ...], stdin: bytes, *, root: bool) -> Answer:
    if argv[:3] == ("sudo", "-n", "--"):
        if not (root or guest.sudo):
            return 1, b"", b"sudo: a password is required\n"
        return _answer(guest, argv[3:], stdin, root=True)
    if argv[:2] == ("sh", "-c") and len(argv) >= 4:
        script, args = argv[2], list(argv[4:])
        if script == STATUS_SCRIPT:
            return 0, _status(guest), b""
        if script == STOP_SCRIPT:
            return _stop(guest, args, root)
        if script == START_SCRIPT:
            return _start(guest, args, root)
        if script == UNIT_SCRIPT:
            return _unit_script(guest, args, root)
        if script == KVP_SCRIPT:
            return _kvp(guest, args, stdin, root)
    if argv[:1] == ("systemctl",) and len(argv) == 4 and argv[2] == "--":
        return _systemctl(guest, argv[1], argv[3], root)
    return 127, b"", f"sh: {argv[0]}: not found\n".encode()


def _on_path(path: str) -> int:
    return int(not path.startswith(("/usr/lib/", "/usr/libexec/")))


_TRUSTED = "0 755 0 755"


def _status(g: LinuxGuestModel) -> bytes:
    r = _Report()
    r.out("version", 2)
    r.out("uid", g.uid)
    r.out("user", g.user)
    r.out("kernel", g.distro.kernel)
    r.out("pid1", "systemd" if g.distro.systemd else "init")
    r.out("btime", g.boot_time)
    r.out("clk_tck", 100)
    if g.driver != "absent":
        r.out("driver_bound", 1)
        if g.distro.fcopy_interface == "uio":
            r.out("uio_driver", 1)
        r.out("module_dir", 1)
        if g.driver == "module":
            r.out("module_initstate", "live")
            r.out("module_refcnt", 0)
            r.out("module_coresize", 20480)
        for n, class_id in enumerate(g.vmbus_class_ids()):
            r.out("device", f"{n:08x}-0000-0000-0000-000000000000", class_id, "hv_utils")
        nodes = ["hv_kvp", "hv_vss"]
        if g.distro.fcopy_interface == "node":
            nodes.append("hv_fcopy")
        for node in nodes:
            r.out("node", node, "char")
    # The Nix store is outside every scanned directory: its programs are
    # found through the units' ExecStart below, as on a real guest.
    for path in sorted(p for p in g.installed() if not p.startswith("/nix/")):
        r.out("installed", path, path, _on_path(path), int(path in g.distro.wrappers), _TRUSTED)
    for path in g.distro.helpers:
        r.out("installed", path, path, _on_path(path), 1, _TRUSTED)
    for p in g.processes:
        name = (p.exe or p.program).rsplit("/", 1)[-1][:15]
        visible = g.uid == 0 or p.uid == g.uid
        exe = (p.exe or p.program) if visible else ""
        owner = p.owner_uid
        facts = f"{owner} 755 {owner} {'755' if owner == 0 else '1777'}"
        args = b"".join(a.encode() + b"\0" for a in p.args)
        r.out(
            "proc",
            p.pid,
            p.uid,
            "root" if p.uid == 0 else g.user,
            p.start_ticks,
            _hex(exe),
            _hex(name),
            args.hex(),
            0,
            facts if exe else "- - - -",
            facts if p.args[0].startswith("/") else "- - - -",
            "- - - -",
        )
    if g.distro.systemd:
        r.out("systemd", 1)
        for program, unit in g.distro.units.items():
            main = next((p for p in g.processes if p.unit == unit), None)
            result, status, condition = g.unit_results.get(unit, ("success", 0, "yes"))
            path = g.distro.programs[program]
            # systemd lists a service's own properties before the unit's.
            r.out("unit", f"MainPID={main.pid if main else 0}")
            r.out("unit", f"ExecMainStatus={status}")
            r.out(
                "unit",
                f"ExecStart={{ path={path} ; argv[]={path} -n ; ignore_errors=no ; "
                "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }",
            )
            r.out("unit", f"Result={result}")
            r.out("unit", f"Id={unit}")
            r.out("unit", "LoadState=loaded")
            active = "active" if main else ("failed" if result != "success" else "inactive")
            r.out("unit", f"ActiveState={active}")
            r.out(
                "unit",
                f"SubState={'running' if main else ('failed' if active == 'failed' else 'dead')}",
            )
            r.out("unit", "UnitFileState=enabled")
            r.out("unit", f"ConditionResult={condition}")
            r.out("unit", "")
            if path.startswith("/nix/"):
                r.out("installed", path, path, 0, 1, _TRUSTED)
    r.out("end")
    return r.data()


def _counted(args: list[str], at: int) -> tuple[list[str], int]:
    """The COUNT ITEM... run of a change script's arguments at ``at``, and where it ends."""
    count = int(args[at])
    return args[at + 1 : at + 1 + count], at + 1 + count


def _instances(g: LinuxGuestModel, programs: list[str]) -> list[str]:
    """``PID:START`` of root's processes running one of ``programs``, as the scripts' check."""
    return [
        f"{p.pid}:{p.start_ticks}"
        for p in g.processes
        if p.uid == 0 and ({p.program, p.exe, *p.args[:2]} & set(programs))
    ]


def _stop(g: LinuxGuestModel, args: list[str], root: bool) -> Answer:
    # GRACE FORCE LOCK_DIR LOCK_NAME LOCK_WAIT COUNT PID:START... COUNT PROGRAM... UNIT...
    force = args[1] == "1"
    items, end = _counted(args, 5)
    programs, _ = _counted(args, end)
    # Under the lock, the script adds the instances started since the status.
    items += [i for i in _instances(g, programs) if i not in items]
    r = _Report()
    left = []
    for item in items:
        pid, _, start = item.partition(":")
        process = next((p for p in g.processes if str(p.pid) == pid), None)
        if process is None or str(process.start_ticks) != start:
            continue
        if not root and process.uid != g.uid:
            left.append(process.pid)
            continue
        g.signal(process.pid, "TERM")
        if any(p.pid == process.pid for p in g.processes):
            if force:
                g.signal(process.pid, "KILL")
            else:
                left.append(process.pid)
    # Like the real script, end with a fresh status report.
    if left:
        r.out("alive", *left)
        return 3, r.data() + _status(g), b""
    r.out("stopped")
    return 0, r.data() + _status(g), b""


def _start(g: LinuxGuestModel, args: list[str], root: bool) -> Answer:
    # SETTLE PROGRAM LOCK_DIR LOCK_NAME LOCK_WAIT COUNT PROGRAM... UNIT...
    program = args[1]
    programs, _ = _counted(args, 5)
    r = _Report()
    if not root:
        r.out("launcher", "exited", 1)
        r.out("log", _hex(f"{program}: must run as root\n"))
        return 0, r.data() + _status(g), b""
    # The check again, under the lock: an instance started since the status.
    already = _instances(g, [program, *programs])
    if already:
        r.out("already", *already)
        return 0, r.data() + _status(g), b""
    # Started in the foreground (-n): the exit status is the daemon's own.
    failure = g.failure(program)
    if failure is not None:
        r.out("launcher", "exited", failure[0])
        r.out("log", _hex(failure[1]))
    elif g.start(program) is None:
        r.out("launcher", "exited", 1)
        r.out("log", "")
    else:
        r.out("launcher", "running")
        r.out("log", "")
    return 0, r.data() + _status(g), b""


def _unit_script(g: LinuxGuestModel, args: list[str], root: bool) -> Answer:
    # VERB SETTLE LOCK_DIR LOCK_NAME LOCK_WAIT UNIT UNIT...
    verb, unit = args[0], args[5]
    r = _Report()
    status, _, err = _systemctl(g, verb, unit, root)
    r.out("systemctl", status, err.strip().hex())
    if verb == "start":
        r.out("journal", _hex(g.journal.get(unit, "")))
    return 0, r.data() + _status(g), b""


def _systemctl(g: LinuxGuestModel, verb: str, unit: str, root: bool) -> Answer:
    if not g.distro.systemd:
        return 1, b"", b"System has not been booted with systemd as init system (PID 1).\n"
    programs = [p for p, u in g.distro.units.items() if u == unit]
    if not programs:
        return 5, b"", f"Failed to {verb} {unit}: Unit {unit} not found.\n".encode()
    if not root:
        return 1, b"", b"Failed to stop unit: Access denied\n"
    if verb in ("stop", "restart"):
        for p in [p for p in g.processes if p.unit == unit]:
            # systemd sends SIGTERM, then SIGKILL after TimeoutStopSec.
            g.signal(p.pid, "KILL")
        g.unit_results[unit] = ("success", 0, g.unit_results.get(unit, ("", 0, "yes"))[2])
    idle = not [p for p in g.processes if p.unit == unit]
    if verb in ("start", "restart") and idle:
        path = g.distro.programs[programs[0]]
        if not g.condition(path):
            # A failed condition skips the unit; systemctl start still succeeds.
            g.unit_results[unit] = ("success", 0, "no")
            return 0, b"", b""
        failure = g.failure(path)
        if failure is not None:
            # A simple service: systemctl returns once it forked; the daemon
            # then exits and the unit fails, its output in the journal.
            g.unit_results[unit] = ("exit-code", failure[0], "yes")
            g.journal[unit] = failure[1]
            return 0, b"", b""
        g.start(programs[0], unit=unit)
        g.unit_results[unit] = ("success", 0, "yes")
    return 0, b"", b""


def _kvp(g: LinuxGuestModel, args: list[str], stdin: bytes, root: bool) -> Answer:
    # Arguments: MODE PYTHON PERL INTERPRETER DIRECTORY... (see KVP_SCRIPT).
    mode, directories = args[0], args[4:]
    # Like the script: the first directory holding a pool file, else the first.
    found = g.kvp_directory in directories and bool(g.pools)
    directory = g.kvp_directory if found else directories[0]
    r = _Report()
    if mode == "read":
        r.out("dir", _hex(directory))
        for pool in range(5):
            if not found or pool not in g.pools:
                r.out("pool", pool, "missing")
            elif pool in g.unreadable_pools and g.uid != 0:
                r.out("pool", pool, "unreadable", errno.EACCES, _hex(os.strerror(errno.EACCES)))
            else:
                r.out("pool", pool, "data", g.pools[pool].hex())
        return 0, r.data(), b""
    if not root:
        return 1, b"", b"PermissionError: [Errno 13] Permission denied\n"
    old = g.pools.get(1, b"") if found else b""
    new = edit_pool(old, stdin.decode().splitlines())
    growth = len(new) - len(old)
    if g.kvp_free_bytes is not None and growth > g.kvp_free_bytes:
        # The script claims the new tail first; ENOSPC there changes nothing.
        r.out("failed", "unchanged", _hex(os.strerror(errno.ENOSPC)), old.hex())
        return 75, r.data(), b""
    if g.kvp_free_bytes is not None:
        g.kvp_free_bytes -= growth
    if not found:
        g.kvp_directory = directory
    g.pools[1] = new
    r.out("dir", _hex(directory))
    r.out("pool", 1, "data", new.hex())
    return 0, r.data(), b""
