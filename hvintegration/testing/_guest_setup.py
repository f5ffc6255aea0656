"""Inside a fresh private mount namespace: build a Linux guest, then run a command.

Run by :class:`hvintegration.testing.linux_guest.GuestSandbox` as
``unshare -m --propagation private --pid --fork --mount-proc python -m
hvintegration.testing._guest_setup LAYOUT.json -- COMMAND...``: it is PID 1
of its own PID namespace, so the guest sees only its own processes (none of
the machine's stray ``hv_*``), it reaps every orphan, and when it exits the
kernel kills whatever is left. Every mount made here exists only in this
namespace, so the real machine's ``/dev``, ``/sys``, ``/var/lib`` and
``/usr`` are never changed. Then it:

* runs COMMAND (sshd) as a child;
* plays the host side of ``/dev/vmbus/hv_vss``: a pseudo-terminal whose far
  end answers the daemon's registration with a version number, as the
  kernel's hv_utils driver does, so the real ``hv_vss_daemon`` stays up;
* on SIGTERM, kills every process left in this mount namespace (daemons
  started detached included) and exits.

Linux only; needs root.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import sys
import tempfile
import time
import tty
from typing import Any

_MS_BIND = 4096
_MS_REC = 16384
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None = None, flags: int = 0) -> None:
    data = b"mode=755" if fstype == "tmpfs" else None
    result = _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None, flags, data
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def _rebuild(parent: str, scratch: str, add: dict[str, str], remove: set[str]) -> None:
    """Make PARENT show its own entries minus REMOVE plus ADD (name to source).

    A tmpfs copy of PARENT whose entries are bind mounts of the originals is
    mounted over PARENT; bind mounts need an existing mount point, and this
    gives one for names PARENT does not have, without touching PARENT.
    """
    copy = tempfile.mkdtemp(dir=scratch)
    _mount("tmpfs", copy, "tmpfs")
    os.chmod(copy, os.stat(parent).st_mode & 0o7777)
    for entry in os.listdir(parent):
        if entry in remove or entry in add:
            continue
        _place(os.path.join(parent, entry), os.path.join(copy, entry))
    for name, source in add.items():
        _place(source, os.path.join(copy, name))
    _mount(copy, parent, None, _MS_BIND | _MS_REC)


def _place(source: str, target: str) -> None:
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        os.mkdir(target)
        _mount(source, target, None, _MS_BIND | _MS_REC)
    else:
        with open(target, "w"):
            pass
        _mount(source, target, None, _MS_BIND)


def _private_tmp(keep: list[str]) -> None:
    """A tmpfs of its own over ``/tmp``, with ``keep`` (the sandbox's own
    directories, which sshd and the test read) bound back at their paths.

    Guest files written to ``/tmp`` then stay in the namespace and go with it.
    """
    # Held open: once the tmpfs covers /tmp, no path reaches them.
    held = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in keep]
    _mount("tmpfs", "/tmp", "tmpfs")
    os.chmod("/tmp", 0o1777)
    for path, fd in held:
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC)
        os.close(fd)


def _namespace() -> str:
    return os.readlink("/proc/self/ns/mnt")


def _kill_namespace(me: int) -> None:
    mine = _namespace()
    for _ in range(50):
        others = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/mnt") == mine:
                    others.append(int(entry))
        if not others:
            return
        for pid in others:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.05)


def _serve(vss_master: int | None, child: int) -> None:
    stop = False

    def on_term(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    pending = b""
    while not stop:
        with contextlib.suppress(ChildProcessError):
            while True:
                pid, _ = os.waitpid(-1, os.WNOHANG)
                if pid == 0:
                    break
                if pid == child:
                    stop = True
        readable = [vss_master] if vss_master is not None else []
        try:
            ready, _, _ = select.select(readable, [], [], 0.2)
        except InterruptedError:
            continue
        if ready and vss_master is not None:
            try:
                pending += os.read(vss_master, 4096)
            except OSError:
                continue
            # hv_vss_daemon registers with a 12-byte hv_vss_msg whose first
            # byte is VSS_OP_REGISTER (128) or VSS_OP_REGISTER1 (129); the
            # driver answers with its version as a 4-byte integer.
            while len(pending) >= 12:
                message, pending = pending[:12], pending[12:]
                if message[0] in (128, 129):
                    os.write(vss_master, (0x70000).to_bytes(4, "little"))
    _kill_namespace(os.getpid())
    sys.exit(0)


def main(argv: list[str]) -> None:
    """Apply the layout file, then run the command after ``--``."""
    layout_path, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: _guest_setup LAYOUT.json -- COMMAND...")
    with open(layout_path) as handle:
        layout: dict[str, Any] = json.load(handle)
    # Mount points for the rebuilt directories; on the host they are empty
    # directories inside the sandbox's own, removed with it.
    scratch = layout["scratch"]
    vss_master = None
    vmbus = layout.get("vmbus_dev")
    if layout.get("vss_standin") and vmbus:
        master, slave = os.openpty()
        tty.setraw(slave)
        # The slave stays open here so that the master never sees a hang-up
        # while no daemon has the node open.
        os.symlink(os.ttyname(slave), os.path.join(vmbus, "hv_vss"))
        vss_master = master
    # The machine's own daemon directories: empty here (a layout may then
    # install into them).
    for hidden in layout.get("mask", []):
        _mount("tmpfs", hidden, "tmpfs")
    for parent, change in layout["rebuild"].items():
        _rebuild(parent, scratch, change.get("add", {}), set(change.get("remove", [])))
    for target, source in layout.get("bind", {}).items():
        _mount(source, target, None, _MS_BIND)
    if layout.get("private_tmp") is not None:
        _private_tmp(layout["private_tmp"])
    with open(layout["namespace_file"], "w") as handle:
        handle.write(_namespace())
    child = os.fork()
    if child == 0:
        os.execvp(command[0], command)
    _serve(vss_master, child)


if __name__ == "__main__":
    main(sys.argv[1:])
