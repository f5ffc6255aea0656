"""Read the reports the guest-side scripts write into records.

A report that is malformed, truncated or from another version is never
turned into a partial status: it raises
:class:`~hvintegration.errors.ProtocolError` with the line at fault.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Iterator

import attrs

from hvintegration import catalogue
from hvintegration.errors import ProtocolError
from hvintegration.linux._shell import ACTIVE_STATES
from hvintegration.linux.names import DAEMONS, DaemonSpec, program_name
from hvintegration.linux.records import (
    DaemonProcess,
    DaemonState,
    DeviceNode,
    DriverState,
    InstalledProgram,
    KvpItem,
    LinuxStatus,
    UnitState,
    VMBusDevice,
)

__all__ = ["MAX_REPORT_BYTES", "decode_pool", "parse_status", "report_lines"]

MAX_REPORT_BYTES = 2 * 1024 * 1024
"""The largest status report read. The guest-side script bounds what it
lists (:data:`~hvintegration.linux.scripts.MAX_LISTED` processes and
programs, :data:`~hvintegration.linux.scripts.MAX_ARGS_BYTES` of each command
line), so a larger report is not the library's script talking."""

# Interpreters that run a daemon written as a script: the kernel names the
# process after the script (comm) while /proc/PID/exe is the interpreter.
_INTERPRETER = re.compile(r"sh|bash|dash|ash|zsh|ksh|mksh|busybox|python[0-9.]*|perl[0-9.]*")

RECORD_SIZE = 2560
KEY_SIZE = 512
VALUE_SIZE = RECORD_SIZE - KEY_SIZE

_BY_CLASS: dict[uuid.UUID, catalogue.ServiceSpec] = {
    spec.linux.vmbus_class_id: spec
    for spec in catalogue.ALL_SERVICES
    if spec.linux is not None and spec.linux.vmbus_class_id is not None
}


def report_lines(stdout: bytes, *, target: str, operation: str) -> Iterator[list[str]]:
    """Split a report into fields, checking that it ends with its ``end`` line.

    Raises:
        ProtocolError: The output is larger than :data:`MAX_REPORT_BYTES`,
            not UTF-8, or was cut short.
    """
    if len(stdout) > MAX_REPORT_BYTES:
        raise ProtocolError(
            f"the guest's report is {len(stdout):,} bytes, over the {MAX_REPORT_BYTES:,}-byte "
            "bound of a status report; refusing to read it",
            target=target,
            operation=operation,
        )
    try:
        text = stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"the guest's report is not UTF-8: {exc}", target=target, operation=operation
        ) from exc
    lines = text.splitlines()
    if not lines or lines[-1] != "end":
        raise ProtocolError(
            "the guest's report was cut short (no end line)", target=target, operation=operation
        )
    for line in lines[:-1]:
        yield line.split("\t")


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


@attrs.define
class _Raw:
    fields: dict[str, str] = attrs.field(factory=dict)
    holders: list[str] = attrs.field(factory=list)
    devices: list[VMBusDevice] = attrs.field(factory=list)
    nodes: list[DeviceNode] = attrs.field(factory=list)
    installed: list[InstalledProgram] = attrs.field(factory=list)
    units: list[dict[str, str]] = attrs.field(factory=list)
    procs: list[list[str]] = attrs.field(factory=list)
    omitted: list[str] = attrs.field(factory=list)
    root_listed: bool = False
    modules_line: list[str] | None = None
    modules_source: str = ""


def _collect(lines: Iterator[list[str]], target: str, operation: str) -> _Raw:
    raw = _Raw()
    unit: dict[str, str] = {}
    seen_real: set[str] = set()
    for fields in lines:
        key, values = fields[0], fields[1:]
        try:
            if key == "version":
                if values != ["2"]:
                    raise ValueError(f"report version {values} is not 2")
            elif key == "more":
                raw.omitted.append(f"{int(values[1])} more {values[0]}")
            elif key == "rootlisted":
                raw.root_listed = values == ["1"]
            elif key in ("procmodules", "lsmod"):
                raw.modules_line = values
                raw.modules_source = "/proc/modules" if key == "procmodules" else "lsmod"
            elif key == "module_holder":
                raw.holders.append(values[0])
            elif key == "device":
                name, cls, driver = values
                class_id = uuid.UUID(cls) if cls else None
                service = _BY_CLASS.get(class_id) if class_id else None
                raw.devices.append(VMBusDevice(name, class_id, service, driver))
            elif key == "node":
                raw.nodes.append(DeviceNode(values[0], values[1]))
            elif key == "installed":
                path, real, on_path, script, facts = values
                if real in seen_real:
                    # /sbin and /usr/sbin are one directory on merged-/usr systems.
                    continue
                seen_real.add(real)
                found = program_name(path) or program_name(real)
                raw.installed.append(
                    InstalledProgram(
                        path,
                        real,
                        found[0] if found else None,
                        on_path == "1",
                        script == "1",
                        _trusted(facts),
                    )
                )
            elif key == "unit":
                line = values[0] if values else ""
                if not line:
                    if unit:
                        raw.units.append(unit)
                    unit = {}
                else:
                    name, _, value = line.partition("=")
                    unit[name] = value
            elif key == "proc":
                if len(values) != 11:
                    raise ValueError("a proc line needs 11 fields")
                raw.procs.append(values)
            else:
                raw.fields[key] = values[0] if values else ""
        except (ValueError, IndexError) as exc:
            raise ProtocolError(
                f"unreadable line in the guest's report: {chr(9).join(fields)!r} ({exc})",
                target=target,
                operation=operation,
            ) from exc
    if unit:
        raw.units.append(unit)
    return raw


def _int(text: str | None) -> int | None:
    if text is None or not text.strip().lstrip("-").isdigit():
        return None
    return int(text)


def _driver(raw: _Raw) -> DriverState:
    f = raw.fields
    bound = f.get("driver_bound") == "1"
    used_by = tuple(raw.holders)
    size = _int(f.get("module_coresize"))
    refcount = _int(f.get("module_refcnt"))
    source = "sysfs" if bound or "module_dir" in f else ""
    if raw.modules_line is not None:
        m_size, m_used, *m_by = (*raw.modules_line, "")
        size = size if size is not None else _int(m_size)
        refcount = refcount if refcount is not None else _int(m_used)
        if not used_by and m_by[0] not in ("", "-"):
            used_by = tuple(x for x in m_by[0].split(",") if x)
        source = source or raw.modules_source
    if "module_initstate" in f or (raw.modules_line is not None and "module_dir" not in f):
        state = "module"
    elif bound or "module_dir" in f:
        # sysfs has /sys/module/NAME for a built-in driver too, but only a
        # loadable module has an initstate there.
        state = "built-in"
    else:
        state = "absent"
    if state == "built-in":
        size = None
    return DriverState("hv_utils", state, bound, size, used_by, refcount, source)


def _trusted(facts: str) -> bool:
    """Whether ``UID MODE DIRUID DIRMODE`` describe a file only root could have written."""
    fields = facts.split()
    if len(fields) != 4 or not all(f.isdigit() for f in fields):
        return False
    uid, mode, dir_uid, dir_mode = fields
    return (
        uid == "0"
        and dir_uid == "0"
        and int(mode, 8) & 0o022 == 0
        and int(dir_mode, 8) & 0o022 == 0
    )


def _processes(raw: _Raw) -> tuple[list[DaemonProcess], list[DaemonProcess]]:
    """The daemon instances, and the processes named like one that are not."""
    btime = _int(raw.fields.get("btime"))
    ticks_per_second = _int(raw.fields.get("clk_tck")) or 100
    found: list[DaemonProcess] = []
    unrecognised: list[DaemonProcess] = []
    for fields in raw.procs:
        pid, uid, user, start, exe_hex, comm_hex, args_hex, cut, f_exe, f_a0, f_a1 = fields
        exe = _text(_unhex(exe_hex))
        comm = _text(_unhex(comm_hex))
        args = tuple(_text(a) for a in _unhex(args_hex).split(b"\0"))
        if args and args[-1] == "":
            args = args[:-1]
        spec, program, problem = _identify(exe, comm, args, _int(uid), f_exe, f_a0, f_a1)
        if spec is None:
            continue
        ticks = _int(start)
        started = None
        if btime is not None and ticks is not None:
            started = datetime.datetime.fromtimestamp(
                btime + ticks / ticks_per_second, tz=datetime.timezone.utc
            ).replace(microsecond=0)
        process = DaemonProcess(
            int(pid),
            spec,
            program,
            exe,
            args,
            _int(uid),
            user,
            started,
            ticks,
            problem,
            cut == "1",
        )
        (unrecognised if problem else found).append(process)
    return found, unrecognised


def _identify(
    exe: str,
    comm: str,
    args: tuple[str, ...],
    uid: int | None,
    f_exe: str,
    f_a0: str,
    f_a1: str,
) -> tuple[DaemonSpec | None, str, str]:
    """Which daemon a process runs, its program path, and why it does not count (or "").

    By what the process runs, not what it is called: its executable
    (``/proc/PID/exe``; a makeWrapper ``.NAME-wrapped`` file counts as NAME),
    or the script an interpreter runs. The command's first word stands in
    for the executable only where the login may not read it (another
    user's process); then only a root process counts, since no other user
    can start one. The program must be trusted: it and its directory owned
    by root and writable by no one else.
    """
    a0 = args[0] if args else ""
    a1 = args[1] if len(args) > 1 else ""
    named = program_name(a0)
    exe_base = exe.rsplit("/", 1)[-1].removesuffix(" (deleted)")
    # Only a real interpreter runs a script that counts: a known name,
    # exactly, installed where only root could have written it.
    interpreter = _INTERPRETER.fullmatch(exe_base) is not None and _trusted(f_exe)
    script = program_name(a1) if a1.rsplit("/", 1)[-1][:15] == comm else None
    if exe and not interpreter:
        by_exe = program_name(exe)
        if by_exe is None:
            if named is None:
                return None, "", ""
            return named[0], a0, f"its executable {exe} is not a daemon program"
        # The command's own name where it is the same daemon (a wrapper's
        # exec -a "$0" keeps the name users know), else the executable.
        program = a0 if named is not None and named[0] is by_exe[0] else exe
        if not _trusted(f_exe) or uid != 0:
            return by_exe[0], program, _untrusted(exe)
        return by_exe[0], program, ""
    if script is not None:
        # A script run by an interpreter: the script is the program.
        if not a1.startswith("/") or not _trusted(f_a1) or uid != 0:
            return script[0], a1, _untrusted(a1)
        return script[0], a1, ""
    if named is None:
        return None, "", ""
    if exe:
        # An interpreter whose first word claims to be a daemon.
        return named[0], a0, f"its executable {exe} is not a daemon program"
    if uid != 0 or not a0.startswith("/") or not _trusted(f_a0):
        return named[0], a0, _untrusted(a0)
    return named[0], a0, ""


def _untrusted(path: str) -> str:
    return (
        f"{path} is not a trusted installed program (it and its directory must be owned "
        "by root and writable by no one else, and the process run by root)"
    )


def _units(raw: _Raw) -> dict[str, UnitState]:
    units = {}
    for props in raw.units:
        name = props.get("Id", "")
        if not name:
            continue
        exec_start = props.get("ExecStart", "")
        # "{ path=/usr/sbin/hv_kvp_daemon ; argv[]=/usr/sbin/hv_kvp_daemon -n ; ... }"
        path = exec_start.partition("path=")[2].split(" ", 1)[0] if "path=" in exec_start else ""
        units[name] = UnitState(
            name,
            props.get("LoadState", ""),
            props.get("ActiveState", ""),
            props.get("SubState", ""),
            _int(props.get("MainPID")) or 0,
            props.get("UnitFileState", ""),
            props.get("Result", ""),
            _int(props.get("ExecMainStatus")),
            props.get("ConditionResult", ""),
            path,
        )
    return units


def _interface_programs(spec: DaemonSpec, raw: _Raw) -> tuple[str, ...]:
    """The program names the kernel's interface calls for, most fitting first.

    File copy has two: ``/dev/vmbus/hv_fcopy`` (kernels before 6.10) is
    served by hv_fcopy_daemon, the ``uio_hv_generic`` driver by
    hv_fcopy_uio_daemon, as SUSE's units' ConditionPathExists= say.
    """
    if "hv_fcopy_daemon" not in spec.programs:
        return ()
    old = ("hv_fcopy_daemon", "hypervfcopyd")
    if any(n.name == "hv_fcopy" for n in raw.nodes):
        return old
    if raw.fields.get("uio_driver") == "1":
        return ("hv_fcopy_uio_daemon",)
    return ()


def _program_rank(spec: DaemonSpec, path: str, preferred: tuple[str, ...]) -> int:
    found = program_name(path)
    name = found[1] if found and found[0] is spec else ""
    if name in preferred:
        return preferred.index(name)
    return len(preferred) + (spec.programs.index(name) if name else len(spec.programs))


def _choose_unit(
    spec: DaemonSpec,
    units: dict[str, UnitState],
    processes: list[DaemonProcess],
    preferred: tuple[str, ...],
) -> UnitState | None:
    """The unit that is the daemon's: see :attr:`DaemonState.unit`."""
    pids = {p.pid for p in processes}
    candidates = [
        u
        for u in units.values()
        if u.exists
        and (
            u.name in spec.units
            or (u.main_pid and u.main_pid in pids)
            or (u.exec_start and (program_name(u.exec_start) or (None,))[0] is spec)
        )
    ]
    if not candidates:
        return None
    for unit in candidates:
        if unit.main_pid and unit.main_pid in pids:
            return unit
    for unit in candidates:
        if unit.active_state in ACTIVE_STATES:
            return unit

    def rank(unit: UnitState) -> tuple[int, int]:
        order = spec.units.index(unit.name) if unit.name in spec.units else len(spec.units)
        if unit.exec_start:
            return _program_rank(spec, unit.exec_start, preferred), order
        # No ExecStart known: judge by the name (hv_fcopy_uio_daemon.service).
        return _program_rank(spec, unit.name.removesuffix(".service"), preferred), order

    return min(candidates, key=rank)


def parse_status(stdout: bytes, *, target: str, operation: str = "linux_status") -> LinuxStatus:
    """Turn the status script's report into a :class:`LinuxStatus`.

    Args:
        stdout: What the status script wrote.
        target: The guest URL, for errors and the record.
        operation: The operation name, for errors.

    Returns:
        The status.

    Raises:
        ProtocolError: The report is malformed or incomplete.
    """
    raw = _collect(report_lines(stdout, target=target, operation=operation), target, operation)
    f = raw.fields
    if "uid" not in f or _int(f["uid"]) is None:
        raise ProtocolError("the guest's report has no user id", target=target, operation=operation)
    processes, unrecognised = _processes(raw)
    units = _units(raw)
    systemd = f.get("systemd") == "1"
    daemons = []
    for spec in DAEMONS:
        preferred = _interface_programs(spec, raw)
        installed = sorted(
            (p for p in raw.installed if p.daemon is spec),
            key=lambda p: (
                not p.trusted,
                _program_rank(spec, p.path, preferred),
                not p.on_path,
            ),
        )
        mine = [p for p in processes if p.daemon is spec]
        unit = _choose_unit(spec, units, mine, preferred) if systemd else None
        daemons.append(DaemonState(spec, tuple(installed), tuple(mine), unit))
    return LinuxStatus(
        target=target,
        kernel=f.get("kernel", ""),
        user=f.get("user", ""),
        uid=int(f["uid"]),
        systemd=systemd,
        driver=_driver(raw),
        devices=tuple(raw.devices),
        nodes=tuple(raw.nodes),
        installed=tuple(raw.installed),
        daemons=tuple(daemons),
        units=tuple(units.values()) if systemd else (),
        unrecognised=tuple(unrecognised),
        omitted=tuple(raw.omitted),
        processes_complete=raw.root_listed
        or not any(o.endswith(" more processes") for o in raw.omitted),
        uio_driver=f.get("uio_driver") == "1",
    )


def decode_pool(pool: int, data: bytes) -> list[KvpItem]:
    """Decode one KVP pool file.

    Each record is a 512-byte key and a 2,048-byte value, both UTF-8 padded
    with NUL bytes. A file whose size is not a multiple of the record size
    ends in a truncated record, reported as an item with a problem rather
    than dropped or guessed.

    Args:
        pool: The pool number.
        data: The file's bytes.

    Returns:
        One item per record, in file order.

    Example:
        >>> record = b"Name".ljust(512, b"\\0") + b"demovm".ljust(2048, b"\\0")
        >>> decode_pool(3, record)
        [<KvpItem pool=3 'Name'='demovm'>]
    """
    items = []
    whole = len(data) - len(data) % RECORD_SIZE
    for index, at in enumerate(range(0, whole, RECORD_SIZE)):
        key_bytes = data[at : at + KEY_SIZE].split(b"\0", 1)[0]
        value_bytes = data[at + KEY_SIZE : at + RECORD_SIZE].split(b"\0", 1)[0]
        problems = []
        for what, raw in (("key", key_bytes), ("value", value_bytes)):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(f"{what} is not UTF-8")
        items.append(
            KvpItem(pool, index, _text(key_bytes), _text(value_bytes), "; ".join(problems))
        )
    if whole != len(data):
        tail = data[whole:]
        key = _text(tail[:KEY_SIZE].split(b"\0", 1)[0])
        items.append(KvpItem(pool, len(items), key, "", f"truncated record of {len(tail)} bytes"))
    return items
