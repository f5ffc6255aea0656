"""Read the reports the guest-side scripts write into records.

A report that is malformed, truncated or from another version is never
turned into a partial status: it raises
:class:`~hvintegration.errors.ProtocolError` with the line at fault.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator

import attrs

from hvintegration import catalogue
from hvintegration.errors import ProtocolError
from hvintegration.linux.names import DAEMONS, DaemonSpec, match_program
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

__all__ = ["decode_pool", "parse_kvp_report", "parse_status", "report_lines"]

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
        ProtocolError: The output is not UTF-8 or was cut short.
    """
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
                if values != ["1"]:
                    raise ValueError(f"report version {values} is not 1")
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
                path, real, on_path, script = values
                if real in seen_real:
                    # /sbin and /usr/sbin are one directory on merged-/usr systems.
                    continue
                seen_real.add(real)
                raw.installed.append(
                    InstalledProgram(
                        path,
                        real,
                        match_program(path) or match_program(real),
                        on_path == "1",
                        script == "1",
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
                if len(values) != 7:
                    raise ValueError("a proc line needs 7 fields")
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


def _processes(raw: _Raw) -> list[DaemonProcess]:
    btime = _int(raw.fields.get("btime"))
    ticks_per_second = _int(raw.fields.get("clk_tck")) or 100
    found = []
    for pid, uid, user, start, exe_hex, comm_hex, args_hex in raw.procs:
        exe = _text(_unhex(exe_hex))
        comm = _text(_unhex(comm_hex))
        args = tuple(_text(a) for a in _unhex(args_hex).split(b"\0"))
        if args and args[-1] == "":
            args = args[:-1]
        spec, program = _identify(exe, comm, args)
        if spec is None:
            continue
        ticks = _int(start)
        started = None
        if btime is not None and ticks is not None:
            started = datetime.datetime.fromtimestamp(
                btime + ticks / ticks_per_second, tz=datetime.timezone.utc
            ).replace(microsecond=0)
        found.append(
            DaemonProcess(int(pid), spec, program, exe, args, _int(uid), user, started, ticks)
        )
    return found


def _identify(exe: str, comm: str, args: tuple[str, ...]) -> tuple[DaemonSpec | None, str]:
    # By program name, wherever it runs from: the command's first word, the
    # executable, or (for a script run by an interpreter) the script, which
    # the kernel names the process after.
    for candidate in args[:1]:
        spec = match_program(candidate)
        if spec is not None:
            return spec, candidate
    if exe:
        spec = match_program(exe.removesuffix(" (deleted)"))
        if spec is not None:
            return spec, exe
    for candidate in args[1:]:
        if candidate.rsplit("/", 1)[-1][:15] == comm:
            spec = match_program(candidate)
            if spec is not None:
                return spec, candidate
    return None, ""


def _units(raw: _Raw) -> dict[str, UnitState]:
    units = {}
    for props in raw.units:
        name = props.get("Id", "")
        if not name:
            continue
        units[name] = UnitState(
            name,
            props.get("LoadState", ""),
            props.get("ActiveState", ""),
            props.get("SubState", ""),
            _int(props.get("MainPID")) or 0,
            props.get("UnitFileState", ""),
        )
    return units


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
    processes = _processes(raw)
    units = _units(raw)
    systemd = f.get("systemd") == "1"
    daemons = []
    for spec in DAEMONS:
        installed = sorted(
            (p for p in raw.installed if p.daemon is spec),
            key=lambda p: (spec.programs.index(_program_of(spec, p.path)), not p.on_path),
        )
        unit = next((units[u] for u in spec.units if u in units and units[u].exists), None)
        daemons.append(
            DaemonState(
                spec,
                tuple(installed),
                tuple(p for p in processes if p.daemon is spec),
                unit if systemd else None,
            )
        )
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
    )


def _program_of(spec: DaemonSpec, path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    # Longest first, so hv_fcopy_uio_daemon is never taken for hv_fcopy_daemon.
    for program in sorted(spec.programs, key=len, reverse=True):
        if base.startswith(program):
            return program
    return spec.programs[-1]


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


def parse_kvp_report(
    stdout: bytes, pools: tuple[int, ...], *, target: str, operation: str = "linux_kvp"
) -> list[KvpItem]:
    """Turn the KVP script's report into items of the pools asked for.

    Raises:
        ProtocolError: The report is malformed.
    """
    items: list[KvpItem] = []
    try:
        text = stdout.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            "the guest's KVP report is not ASCII", target=target, operation=operation
        ) from exc
    seen = set()
    for line in text.splitlines():
        fields = line.split("\t")
        try:
            if fields[0] != "pool":
                raise ValueError("expected a pool line")
            pool = int(fields[1])
            seen.add(pool)
            if fields[2] == "data" and pool in pools:
                items.extend(decode_pool(pool, bytes.fromhex(fields[3])))
        except (ValueError, IndexError) as exc:
            raise ProtocolError(
                f"unreadable line in the guest's KVP report: {line[:80]!r}",
                target=target,
                operation=operation,
            ) from exc
    if seen != set(range(5)):
        raise ProtocolError(
            "the guest's KVP report was cut short", target=target, operation=operation
        )
    return items
