"""A Linux guest you can touch: real sshd and real hyperv-daemons in a sandbox.

:class:`GuestSandbox` starts a real OpenSSH ``sshd`` on loopback, with
OpenSSH's default settings (``MaxSessions`` 10), inside a private mount and
PID namespace (``unshare -m --propagation private --pid --fork
--mount-proc``) in which the machine looks like a Hyper-V guest:

* only the sandbox's own processes are visible (no stray ``hv_*`` of the
  machine), and every place the library looks for daemon programs shows
  only what the layout installs: the machine's ``hv_*``/``hyperv*`` in the
  ``PATH`` directories and its ``/usr/lib/hyper-v``,
  ``/usr/libexec/hypervkvpd`` and ``/usr/lib/linux-tools`` are hidden;

* ``/dev/vmbus/hv_kvp`` is a FIFO: Debian's real ``hv_kvp_daemon`` registers
  into it, reads its own registration back as the driver's answer, then
  sleeps and keeps the real pool files in ``/var/lib/hyperv``;
* ``/dev/vmbus/hv_vss`` is a pseudo-terminal whose far end answers the
  registration with a version number as the driver does, so the real
  ``hv_vss_daemon`` stays up;
* ``hv_fcopy_daemon`` reads its device with ``pread``, which neither a FIFO
  nor a terminal supports (it spins); it is replaced by a clearly named fake
  daemon (:func:`fake_daemon_script`), as are daemons a case needs to
  misbehave (one that ignores ``SIGTERM``);
* ``/sys/bus/vmbus`` and ``/sys/module/hv_utils`` describe the driver
  (module, built in, or absent) and the VMBus integration devices;
* users exist only in the namespace: ``hvsudo`` (passwordless sudo, login
  shell ``/bin/sh``, which is dash on Debian), ``hvplain`` (no sudo, dash),
  and ``hvbash``, ``hvzsh``, ``hvtcsh`` (passwordless sudo, those login
  shells, where installed); sudo has Debian 12's defaults (``use_pty``);
  each has a home of its own in the sandbox's directory, root an empty one;
* ``/tmp`` is a private tmpfs (the sandbox's and sshd's own directories
  bound back at their paths): what the guest writes there stays in the
  namespace and goes with it;
* ``/run/hvintegration``, where daemon changes take their locks, is the
  sandbox's own directory.

Nothing outside the namespace changes; stopping the sandbox kills sshd and
every process left in the namespace, detached daemons included.

Needs Linux, root, ``unshare``, ``sshd`` and Debian's ``hyperv-daemons``;
:func:`sandbox_unavailable_reason` says why a test must be skipped.

Example::

    with GuestSandbox(GuestLayout(driver="built-in")) as sandbox:
        async with LinuxGuest.connect(sandbox.url()) as guest:
            print(await guest.status())
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import attrs

from hvintegration import catalogue
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason

__all__ = [
    "FAKE_JOURNALCTL",
    "FAKE_SYSTEMCTL",
    "REAL_DAEMONS",
    "GuestLayout",
    "GuestSandbox",
    "fake_daemon_script",
    "sandbox_unavailable_reason",
]

REAL_DAEMONS = {
    "hv_kvp_daemon": "/usr/sbin/hv_kvp_daemon",
    "hv_vss_daemon": "/usr/sbin/hv_vss_daemon",
    "hv_fcopy_daemon": "/usr/sbin/hv_fcopy_daemon",
}
"""Debian's hyperv-daemons programs."""

_SUDO_USER = "hvsudo"
_PLAIN_USER = "hvplain"
# Users with passwordless sudo whose login shell is another one; dash is
# the sudo user's (/bin/sh, Debian's default for new users).
_SHELL_USERS = {"bash": ("hvbash", 2903), "zsh": ("hvzsh", 2904), "tcsh": ("hvtcsh", 2905)}

# Where the library looks for daemon programs (linux/scripts.py): the
# directories on any login's PATH, and the private ones of SUSE, Red Hat
# and Ubuntu. The sandbox hides every hv_*/hyperv* program the machine has
# there, and the private directories whole, so only what a layout installs
# is seen.
_SEARCHED_PATH_DIRS = (
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
    "/usr/games",
    "/usr/local/games",
)
_SEARCHED_PRIVATE_DIRS = ("/usr/lib/hyper-v", "/usr/libexec/hypervkvpd", "/usr/lib/linux-tools")
_UNSHARE = ["unshare", "-m", "--propagation", "private", "--pid", "--fork", "--kill-child"]
_UNSHARE += ["--mount-proc"]


def sandbox_unavailable_reason() -> str | None:
    """Why :class:`GuestSandbox` cannot run here, or ``None`` when it can."""
    reason = sshd_unavailable_reason()
    if reason is not None:
        return reason
    if not sys.platform.startswith("linux"):
        return "the guest sandbox needs Linux mount namespaces"
    if shutil.which("unshare") is None:
        return "unshare is not installed (util-linux)"
    for path in REAL_DAEMONS.values():
        if not os.access(path, os.X_OK):
            return f"{path} is missing (Debian package hyperv-daemons)"
    probe = subprocess.run([*_UNSHARE, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"cannot create a mount and PID namespace: {probe.stderr.decode().strip()}"
    return None


def fake_daemon_script(name: str, *, node: str | None, ignore_term: bool = False) -> str:
    """The text of a fake integration daemon, a POSIX shell script.

    It behaves like the real daemon where the library can see it: it fails
    when its device node is missing, detaches unless given ``-n`` or
    ``--no-daemon`` (SUSE's units use the long form), and exits on
    ``SIGTERM`` (unless ``ignore_term``).

    Args:
        name: The daemon it stands in for, e.g. ``hv_fcopy_daemon``.
        node: The device node it needs, e.g. ``/dev/vmbus/hv_fcopy``.
        ignore_term: Survive ``SIGTERM`` (only ``SIGKILL`` ends it).

    Returns:
        The script.
    """
    check = (
        f'[ -e {node} ] || {{ echo "{name}: open {node} failed: No such file or directory" >&2; '
        "exit 1; }\n"
        if node
        else ""
    )
    trap = "trap '' TERM\n" if ignore_term else "trap 'kill $pid 2>/dev/null; exit 0' TERM\n"
    return (
        "#!/bin/sh\n"
        f"# FAKE {name} for hvintegration tests: stands in for the real daemon,\n"
        "# whose device protocol cannot be played on a machine without Hyper-V.\n"
        f"{check}"
        "case ${1:-} in -n|--no-daemon) ;; *)\n"
        '    setsid "$0" -n </dev/null >/dev/null 2>&1 &\n'
        "    exit 0 ;;\n"
        "esac\n"
        f"{trap}"
        "while :; do sleep 1 & pid=$!; wait $pid; done\n"
    )


FAKE_SYSTEMCTL = r"""#!/bin/sh
# FAKE systemctl for hvintegration tests: enough of `show`, `list-units`,
# `start` and `stop` to run real unit files (Debian's hyperv-daemons, and
# fixtures copied from other distributions' packaging) in a guest sandbox,
# where systemd is not PID 1. It prints what systemctl prints: `show` gives
# KEY=VALUE lines, a service's own properties (MainPID, ExecMainStatus,
# ExecStart, Result) before the unit's (Id, LoadState, ActiveState,
# SubState, UnitFileState, ConditionResult), one blank line between units
# (systemctl(1), org.freedesktop.systemd1(5)); `start` of a unit whose
# Condition...= fails succeeds and leaves it inactive; a simple service
# counts as started once forked, and when its process exits non-zero the unit
# is failed with Result=exit-code. What the service prints goes to the
# "journal", which the fake journalctl reads. State lives in $state.
state=/run/systemd/hvintegration-fake
mkdir -p "$state"
unitfile() {
    for d in /etc/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
        [ -f "$d/$1" ] && echo "$d/$1" && return 0
    done
    return 1
}
mainpid() {
    pid=$(cat "$state/$1.pid" 2>/dev/null) || pid=0
    [ -n "$pid" ] || pid=0
    # A zombie has exited; only its parent's wait is missing.
    read -r stat 2>/dev/null < "/proc/$pid/stat" || { echo 0; return; }
    case ${stat##*) } in Z*) echo 0 ;; *) echo "$pid" ;; esac
}
key() { sed -n "s/^$2=//p" "$1"; }
conditions() {
    # ConditionPathExists=[!]PATH, each of which must hold.
    for c in $(key "$1" ConditionPathExists); do
        case $c in
        !*) [ -e "${c#!}" ] && return 1 ;;
        *) [ -e "$c" ] || return 1 ;;
        esac
    done
    return 0
}
execstart() { key "$1" ExecStart | head -n 1 | sed 's/^[-@+!:]*//'; }
verb=$1
shift
case $verb in
show)
    while [ $# -gt 0 ] && [ "$1" != -- ]; do shift; done
    shift
    first=1
    for unit in "$@"; do
        [ "$first" = 1 ] || echo
        first=0
        if file=$(unitfile "$unit"); then
            pid=$(mainpid "$unit")
            status=$(cat "$state/$unit.status" 2>/dev/null) || status=0
            condition=$(cat "$state/$unit.condition" 2>/dev/null) || condition=yes
            set -f
            # shellcheck disable=SC2046
            set -- $(execstart "$file")
            set +f
            echo "MainPID=$pid"
            echo "ExecMainStatus=$status"
            printf 'ExecStart={ path=%s ; argv[]=%s ; ignore_errors=no ; ' "$1" "$*"
            echo 'start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }'
            if [ "$pid" != 0 ]; then result=success; active=active; sub=running
            elif [ "$status" != 0 ]; then result=exit-code; active=failed; sub=failed
            else result=success; active=inactive; sub=dead; fi
            echo "Result=$result"
            echo "Id=$unit"
            echo LoadState=loaded
            echo "ActiveState=$active"
            echo "SubState=$sub"
            echo UnitFileState=enabled
            echo "ConditionResult=$condition"
        else
            echo "Id=$unit"
            echo LoadState=not-found; echo ActiveState=inactive; echo SubState=dead
            echo UnitFileState=
        fi
    done
    ;;
list-units)
    # --type=service --state=running --no-legend --plain: "UNIT LOAD ACTIVE SUB DESCRIPTION".
    for f in "$state"/*.pid; do
        [ -e "$f" ] || continue
        unit=${f##*/}; unit=${unit%.pid}
        [ "$(mainpid "$unit")" != 0 ] && echo "$unit loaded active running $unit"
    done
    ;;
start|stop)
    [ "$1" = -- ] && shift
    unit=$1
    file=$(unitfile "$unit") || { echo "Failed to $verb $unit: Unit $unit not found." >&2; exit 5; }
    pid=$(mainpid "$unit")
    if [ "$verb" = stop ]; then
        if [ "$pid" != 0 ]; then
            kill -TERM "$pid"
            while [ "$(mainpid "$unit")" != 0 ]; do sleep 0.1; done
            # The waiter records the exit status; a stop leaves the unit
            # inactive, not failed.
            n=0
            while [ ! -e "$state/$unit.status" ] && [ "$n" -lt 30 ]; do
                sleep 0.1; n=$((n + 1))
            done
        fi
        rm -f "$state/$unit.pid" "$state/$unit.status"
        exit 0
    fi
    [ "$pid" != 0 ] && exit 0
    if ! conditions "$file"; then
        echo no > "$state/$unit.condition"
        exit 0
    fi
    echo yes > "$state/$unit.condition"
    rm -f "$state/$unit.status" "$state/$unit.pid"
    pre=$(key "$file" ExecStartPre | head -n 1 | sed 's/^[-@+!:]*//')
    if [ -n "$pre" ] && ! sh -c "$pre" >> "$state/$unit.log" 2>&1; then
        echo 1 > "$state/$unit.status"
        echo "Job for $unit failed because the control process exited with error code." >&2
        echo "See \"systemctl status $unit\" and \"journalctl -xeu $unit\" for details." >&2
        exit 1
    fi
    command=$(execstart "$file")
    : > "$state/$unit.log"
    # systemd forks the service and keeps its exit status: so does this
    # waiter, which writes the pid before the service can exit. Like
    # systemd, it is outside the caller's session.
    # shellcheck disable=SC2016
    setsid sh -c '
        # shellcheck disable=SC2086
        setsid $1 < /dev/null >> "$2.log" 2>&1 &
        echo $! > "$2.pid"
        wait $!
        echo $? > "$2.status"
    ' waiter "$command" "$state/$unit" > /dev/null 2>&1 &
    while [ ! -s "$state/$unit.pid" ]; do sleep 0.05; done
    ;;
*)
    echo "fake systemctl: $verb is not supported" >&2
    exit 1
    ;;
esac
"""
"""A fake ``systemctl`` for :attr:`GuestLayout.systemd`."""

FAKE_JOURNALCTL = r"""#!/bin/sh
# FAKE journalctl for hvintegration tests: `journalctl -u UNIT -n N -o cat`
# prints the last lines the fake systemctl's service wrote, message text
# only, as -o cat does.
unit=""; lines=10
while [ $# -gt 0 ]; do
    case $1 in
    -u) unit=$2; shift ;;
    -n) lines=$2; shift ;;
    esac
    shift
done
[ -n "$unit" ] || exit 0
tail -n "$lines" "/run/systemd/hvintegration-fake/$unit.log" 2>/dev/null
exit 0
"""
"""A fake ``journalctl`` beside :data:`FAKE_SYSTEMCTL`."""


@attrs.define
class GuestLayout:
    """What the sandboxed guest looks like.

    Attributes:
        driver: ``module``, ``built-in`` or ``absent``.
        devices: Whether the VMBus integration devices and ``/dev/vmbus``
            nodes exist.
        path_daemons: Whether Debian's ``/usr/sbin/hv_*`` daemons are
            visible; ``False`` hides them.
        fake_fcopy: Replace ``/usr/sbin/hv_fcopy_daemon`` by the fake.
        programs: More programs, absolute path in the guest to either a
            host file to copy (``/usr/sbin/hv_kvp_daemon``) or
            ``fake:NAME``, ``fake-stubborn:NAME`` for a fake daemon, or
            ``fake-systemctl``.
        pools: KVP pool number to the pool file's bytes at start.
        systemd: Make the guest look systemd-managed (``/run/systemd/system``
            exists) with :data:`FAKE_SYSTEMCTL` on ``PATH``, which runs the
            real unit files of Debian's hyperv-daemons.
        units: More unit files for ``/usr/lib/systemd/system``: name to
            text (fixtures copied from a distribution's packaging).
        debian_units: Whether Debian's own ``hv-*-daemon.service`` stay.
        fcopy_node: Whether ``/dev/vmbus/hv_fcopy`` exists (kernels before
            6.10); with ``devices`` only.
        uio: Whether the ``uio_hv_generic`` driver is there
            (``/sys/bus/vmbus/drivers/uio_hv_generic/new_id``), through which
            kernels from 6.10 offer file copy.
    """

    driver: str = "module"
    devices: bool = True
    path_daemons: bool = True
    fake_fcopy: bool = True
    programs: Mapping[str, str] = attrs.field(factory=dict)
    pools: Mapping[int, bytes] = attrs.field(factory=dict)
    systemd: bool = False
    units: Mapping[str, str] = attrs.field(factory=dict)
    debian_units: bool = True
    fcopy_node: bool = True
    uio: bool = False

    def __repr__(self) -> str:
        # Counts for the mappings: pool files and unit texts are long.
        return (
            f"<GuestLayout driver={self.driver} devices={self.devices} systemd={self.systemd} "
            f"programs={len(self.programs)} pools={len(self.pools)} units={len(self.units)}>"
        )


_NODES = {"hv_kvp_daemon": "hv_kvp", "hv_vss_daemon": "hv_vss", "hv_fcopy_daemon": "hv_fcopy"}


class GuestSandbox:
    """Real sshd in a private mount namespace dressed as a Hyper-V guest.

    Args:
        layout: What the guest looks like.

    Attributes:
        root: The host directory holding the sandbox's files.
        kvp_dir: The host directory the guest sees as ``/var/lib/hyperv``.
        server: The sshd, once started.
    """

    sudo_user = _SUDO_USER
    plain_user = _PLAIN_USER

    def __init__(self, layout: GuestLayout | None = None) -> None:
        self.layout = layout if layout is not None else GuestLayout()
        self.root = Path(tempfile.mkdtemp(prefix="hvintegration-guest-"))
        self.root.chmod(0o755)
        self.kvp_dir = self.root / "hyperv"
        self.server: OpenSSHServer | None = None
        self._namespace_file = self.root / "namespace"
        self._namespace = ""

    def __repr__(self) -> str:
        port = self.server.port if self.server else 0
        return f"<GuestSandbox 127.0.0.1:{port} driver={self.layout.driver}>"

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        return path

    def _layout(self) -> dict[str, object]:
        layout = self.layout
        rebuild: dict[str, dict[str, dict[str, str] | list[str]]] = {}
        bind: dict[str, str] = {}

        def add(parent: str, name: str, source: Path) -> None:
            entry = rebuild.setdefault(parent, {"add": {}, "remove": []})
            adds = entry["add"]
            assert isinstance(adds, dict)
            adds[name] = str(source)

        vmbus_dev = self._dir("dev-vmbus")
        if layout.devices:
            os.mkfifo(vmbus_dev / "hv_kvp")
            if layout.fcopy_node:
                os.mkfifo(vmbus_dev / "hv_fcopy")
        add("/dev", "vmbus", vmbus_dev)
        add("/sys/bus", "vmbus", self._sys_tree())
        if layout.driver != "absent":
            add("/sys/module", "hv_utils", self._module_tree())
        self.kvp_dir.mkdir(mode=0o755, exist_ok=True)
        for pool, data in layout.pools.items():
            (self.kvp_dir / f".kvp_pool_{pool}").write_bytes(data)
        add("/var/lib", "hyperv", self.kvp_dir)
        # The daemons' change locks live in /run/hvintegration: the guest's
        # own, so that a sandbox leaves the machine's /run as it found it.
        add("/run", "hvintegration", self._dir("run-hvintegration"))
        if not layout.path_daemons:
            entry = rebuild.setdefault("/usr/sbin", {"add": {}, "remove": []})
            removes = entry["remove"]
            assert isinstance(removes, list)
            removes.extend(REAL_DAEMONS)
        elif layout.fake_fcopy:
            fake = self._program("fake:hv_fcopy_daemon")
            bind[REAL_DAEMONS["hv_fcopy_daemon"]] = str(fake)
        programs = dict(layout.programs)
        if layout.systemd:
            # Over the real one too, which users without sbin on PATH would find.
            systemctl = shutil.which("systemctl") or "/usr/bin/systemctl"
            programs[systemctl] = "fake-systemctl"
            programs["/usr/local/sbin/systemctl"] = "fake-systemctl"
            programs[shutil.which("journalctl") or "/usr/bin/journalctl"] = "fake-journalctl"
            add("/run/systemd", "system", self._dir("run-systemd-system"))
        if layout.units or not layout.debian_units:
            units_dir = "/usr/lib/systemd/system"
            entry = rebuild.setdefault(units_dir, {"add": {}, "remove": []})
            if not layout.debian_units:
                removes = entry["remove"]
                assert isinstance(removes, list)
                removes.extend(f"hv-{n}-daemon.service" for n in ("kvp", "vss", "fcopy"))
            for name, text in layout.units.items():
                unit_file = self._dir("units") / name
                unit_file.write_text(text)
                unit_file.chmod(0o644)
                add(units_dir, name, unit_file)
        hidden = self._hide(rebuild, programs)
        for guest_path, source in programs.items():
            parent, name = os.path.split(guest_path)
            if parent in rebuild or os.path.realpath(parent) in rebuild:
                key = parent if parent in rebuild else os.path.realpath(parent)
                add(key, name, self._program(source))
            elif Path(guest_path).is_file() and not _under(guest_path, hidden):
                bind[guest_path] = str(self._program(source))
            else:
                self._install(guest_path, source, add, hidden)
        for name, text in self._accounts().items():
            path = self.root / "etc" / name
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            path.chmod(0o440 if name == "sudoers" else 0o644)
            bind[f"/etc/{name}"] = str(path)
        return {
            "mask": hidden,
            "rebuild": rebuild,
            "bind": bind,
            "vmbus_dev": str(vmbus_dev) if layout.devices else None,
            "vss_standin": layout.devices,
            "namespace_file": str(self._namespace_file),
            "scratch": str(self._dir("scratch")),
            # A private /tmp; the sandbox's files and sshd's stay reachable.
            "private_tmp": [
                path
                for path in (str(self.root), str(self.server.directory) if self.server else "")
                if path.startswith("/tmp/")
            ],
        }

    def _program(self, source: str) -> Path:
        self._counter = getattr(self, "_counter", 0) + 1
        target = self._dir("programs") / f"p{self._counter}"
        kind, _, name = source.partition(":")
        if kind == "fake-systemctl":
            target.write_text(FAKE_SYSTEMCTL)
        elif kind == "fake-journalctl":
            target.write_text(FAKE_JOURNALCTL)
        elif kind == "text":
            # text:SCRIPT, a program given as its whole text.
            target.write_text(name)
        elif kind in ("fake", "fake-stubborn"):
            node = _NODES.get(name, "hv_" + name.removeprefix("hv_").split("_")[0])
            # hv_fcopy_uio_daemon reaches the channel through the uio driver.
            path = (
                "/sys/bus/vmbus/drivers/uio_hv_generic/new_id"
                if name == "hv_fcopy_uio_daemon"
                else f"/dev/vmbus/{node}"
            )
            text = fake_daemon_script(name, node=path, ignore_term=kind == "fake-stubborn")
            target.write_text(text)
        else:
            shutil.copyfile(source, target)
        target.chmod(0o755)
        return target

    def _hide(
        self, rebuild: dict[str, dict[str, dict[str, str] | list[str]]], programs: Mapping[str, str]
    ) -> list[str]:
        """Hide the machine's own daemon programs; the private directories to mask whole."""
        keep = set(REAL_DAEMONS.values()) if self.layout.path_daemons else set()
        for directory in dict.fromkeys(os.path.realpath(d) for d in _SEARCHED_PATH_DIRS):
            if not os.path.isdir(directory):
                continue
            names = [
                entry
                for entry in os.listdir(directory)
                if entry.startswith(("hv_", "hyperv"))
                and os.path.join(directory, entry) not in keep
            ]
            if names:
                entry = rebuild.setdefault(directory, {"add": {}, "remove": []})
                removes = entry["remove"]
                assert isinstance(removes, list)
                removes.extend(n for n in names if n not in removes)
        return [d for d in _SEARCHED_PRIVATE_DIRS if os.path.isdir(d)]

    def _install(
        self, guest_path: str, source: str, add: object, hidden: list[str] | None = None
    ) -> None:
        assert callable(add)
        program = self._program(source)
        parts = Path(guest_path).parts
        # Find the deepest existing ancestor (a hidden directory is empty in
        # the guest); graft the first missing directory under it, built in
        # a host directory.
        for depth in range(len(parts) - 1, 0, -1):
            ancestor = Path(*parts[:depth])
            if ancestor.is_dir() and not _under(str(ancestor), hidden or [], strict=True):
                break
        rest = parts[depth:]
        if len(rest) == 1:
            add(str(ancestor), rest[0], program)
            return
        graft = self._dir("tree" + str(ancestor).replace("/", "_") + "_" + rest[0])
        leaf = graft.joinpath(*rest[1:-1])
        leaf.mkdir(parents=True, exist_ok=True)
        for directory in [leaf, *leaf.parents]:
            if directory == graft.parent:
                break
            directory.chmod(0o755)
        shutil.copy2(program, leaf / rest[-1])
        add(str(ancestor), rest[0], graft)

    def _sys_tree(self) -> Path:
        tree = self._dir("sys-vmbus")
        (tree / "devices").mkdir()
        drivers = tree / "drivers"
        drivers.mkdir()
        if self.layout.driver != "absent":
            (drivers / "hv_utils").mkdir()
        if self.layout.uio:
            (drivers / "uio_hv_generic").mkdir()
            (drivers / "uio_hv_generic" / "new_id").write_text("")
        if self.layout.devices:
            for number, spec in enumerate(catalogue.HOST_SERVICES):
                assert spec.linux is not None
                device = tree / "devices" / f"{number + 1:08x}-1111-2222-3333-444455556666"
                device.mkdir()
                (device / "class_id").write_text("{" + str(spec.linux.vmbus_class_id) + "}\n")
                if self.layout.driver != "absent":
                    os.symlink("../../drivers/hv_utils", device / "driver")
        return tree

    def _module_tree(self) -> Path:
        tree = self._dir("sys-module-hv_utils")
        if self.layout.driver == "module":
            (tree / "initstate").write_text("live\n")
            (tree / "refcnt").write_text("0\n")
            (tree / "coresize").write_text("20480\n")
            (tree / "holders").mkdir()
        else:
            (tree / "parameters").mkdir()
        return tree

    @property
    def shell_users(self) -> dict[str, str]:
        """Login shell to a user with passwordless sudo whose login shell it is.

        ``dash`` (the sudo user, whose shell is ``/bin/sh``) and ``bash``,
        ``zsh``, ``tcsh`` where installed.
        """
        users = {"dash": self.sudo_user}
        for shell, (name, _) in _SHELL_USERS.items():
            if shutil.which(shell):
                users[shell] = name
        return users

    def _accounts(self) -> dict[str, str]:
        users = [(self.sudo_user, 2901, "/bin/sh"), (self.plain_user, 2902, "/bin/sh")]
        for shell, (name, uid) in _SHELL_USERS.items():
            path = shutil.which(shell)
            if path:
                users.append((name, uid, path))
        # root gets an empty home in the namespace: the machine's own
        # ~/.bashrc (which bash sources for every SSH command) is not the
        # guest's, and can cost more than the command itself.
        home = self._dir("root-home")
        passwd = "".join(
            ":".join([*f[:5], str(home), *f[6:]]) + "\n" if f[0] == "root" else ":".join(f) + "\n"
            for f in (line.split(":") for line in Path("/etc/passwd").read_text().splitlines())
        )
        group = Path("/etc/group").read_text()
        shadow = Path("/etc/shadow").read_text() if Path("/etc/shadow").exists() else ""
        for name, uid, shell in users:
            # A home of its own, gone with the sandbox, not the machine's /tmp.
            user_home = self._dir("home") / name
            user_home.mkdir(mode=0o700, exist_ok=True)
            os.chown(user_home, uid, uid)
            passwd += f"{name}:x:{uid}:{uid}:hvintegration test:{user_home}:{shell}\n"
            group += f"{name}:x:{uid}:\n"
            shadow += f"{name}:*:19000:0:99999:7:::\n"
        # Debian 12's own defaults, use_pty included.
        sudoers = (
            "Defaults env_reset\n"
            "Defaults mail_badpass\n"
            'Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'
            "Defaults use_pty\n"
            "root ALL=(ALL:ALL) ALL\n"
            f"{self.sudo_user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
        )
        for name, _, _ in users[2:]:
            sudoers += f"{name} ALL=(ALL:ALL) NOPASSWD: ALL\n"
        return {"passwd": passwd, "group": group, "shadow": shadow, "sudoers": sudoers}

    def start(self) -> None:
        """Build the namespace and start sshd in it.

        Raises:
            RuntimeError: The sandbox cannot run here, or sshd did not start.
        """
        reason = sandbox_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        layout_file = self.root / "layout.json"
        wrapper = [
            *_UNSHARE,
            sys.executable, "-m", "hvintegration.testing._guest_setup", str(layout_file), "--",
        ]  # fmt: skip
        users = ["root", self.sudo_user, self.plain_user, *self.shell_users.values()]
        self.server = OpenSSHServer(
            user="root",
            extra_config=[f"AllowUsers {' '.join(dict.fromkeys(users))}"],
            wrapper=wrapper,
        )
        # OpenSSHServer keeps authorized_keys in a 0700 directory, which
        # only root can read; the test users log in with the same key.
        self.server.directory.chmod(0o711)
        try:
            layout_file.write_text(json.dumps(self._layout()))
            self.server.start()
            deadline = time.monotonic() + 10
            while not self._namespace_file.exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            self._namespace = self._namespace_file.read_text()
        except BaseException:
            self.stop()
            raise

    def processes(self) -> list[int]:
        """The processes running in the sandbox's namespace."""
        if not self._namespace:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry}/ns/mnt") == self._namespace:
                        found.append(int(entry))
        return found

    def kill_sshd(self) -> None:
        """Kill sshd and every session it runs at once, as a crashing server would."""
        for pid in self.processes():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                    os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop sshd, kill everything left in the namespace, remove the files."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()
        # The namespace's setup process kills what is left when sshd stops;
        # this is the second line, for a setup process that died first.
        for _ in range(100):
            left = self.processes()
            if not left:
                break
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, user: str = "root") -> str:
        """An ``ssh://`` URL for this guest that trusts its host key and uses the test key.

        Args:
            user: ``root``, :attr:`sudo_user` or :attr:`plain_user`.
        """
        assert self.server is not None, "the sandbox is not started"
        query = urllib.parse.urlencode(
            {"known_hosts": str(self.server.known_hosts), "key": str(self.server.client_key)}
        )
        return f"ssh://{user}@127.0.0.1:{self.server.port}?{query}"

    def __enter__(self) -> GuestSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _under(path: str, directories: list[str], *, strict: bool = False) -> bool:
    """Whether ``path`` lies inside one of ``directories`` (or is one, unless ``strict``)."""
    return any(path.startswith(d + "/") or (not strict and path == d) for d in directories)
