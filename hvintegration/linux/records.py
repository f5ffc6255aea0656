"""Immutable records of a Linux guest's integration state.

What ``lsmod``, ``ps -ef``, ``compgen -c hv_`` and ``systemctl`` would tell a
person, as typed fields. Records never do I/O; an action returns a new record.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, ClassVar

import attrs

from hvintegration import catalogue
from hvintegration._table import Column, JsonRecord, RecordList, Tabular, html_table, record_list
from hvintegration.linux.names import DaemonSpec, program_name

__all__ = [
    "DaemonProcess",
    "DaemonState",
    "DeviceNode",
    "DriverState",
    "InstalledProgram",
    "KvpItem",
    "LinuxStatus",
    "UnitState",
    "VMBusDevice",
]

JsonDict = dict[str, object]


@attrs.frozen
class DriverState(JsonRecord):
    """The ``hv_utils`` driver: built in, a loaded module, or absent.

    Attributes:
        name: ``hv_utils``.
        state: ``"built-in"``, ``"module"`` or ``"absent"``.
        bound: Whether the driver is registered on the VMBus
            (``/sys/bus/vmbus/drivers/hv_utils`` exists).
        size: The module's size in bytes, as ``lsmod`` shows it; ``None``
            for a built-in driver or where unknown.
        used_by: The modules that use it.
        refcount: The module's use count, where known.
        source: Where the facts came from: ``sysfs``, ``/proc/modules`` or
            ``lsmod``; empty when nothing was found.

    Example:
        >>> DriverState("hv_utils", "module", True, 20480, (), 0, "sysfs").loaded
        True
    """

    name: str
    state: str
    bound: bool
    size: int | None
    used_by: tuple[str, ...]
    refcount: int | None
    source: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Driver", lambda r: r.name),
        ("State", lambda r: r.state),
        ("Bound", lambda r: r.bound),
        ("Size", lambda r: r.size),
        ("UsedBy", lambda r: r.used_by),
    )

    @property
    def loaded(self) -> bool:
        """Whether the driver is present, built in or as a module."""
        return self.state != "absent"

    def __repr__(self) -> str:
        return f"<DriverState {self.name} {self.state} bound={self.bound}>"

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen
class VMBusDevice(JsonRecord):
    """One VMBus device under ``/sys/bus/vmbus/devices``.

    Attributes:
        id: The device's directory name (its instance GUID).
        class_id: Its class id, which says which channel it is.
        service: The integration service of that class, or ``None`` for
            devices that are not integration services (disks, network...).
        driver: The driver bound to it, empty when none is.
    """

    id: str
    class_id: uuid.UUID | None
    service: catalogue.ServiceSpec | None
    driver: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Service", lambda r: r.service.name if r.service else ""),
        ("ClassId", lambda r: r.class_id),
        ("Driver", lambda r: r.driver),
        ("Device", lambda r: r.id),
    )

    def __repr__(self) -> str:
        what = self.service.name if self.service else str(self.class_id)
        return f"<VMBusDevice {what} driver={self.driver or '-'}>"


@attrs.frozen
class DeviceNode(JsonRecord):
    """A node under ``/dev/vmbus`` through which a daemon talks to the driver.

    Attributes:
        name: ``hv_kvp``, ``hv_vss`` or ``hv_fcopy``.
        kind: ``char`` on a real guest; ``fifo``, ``file`` or ``other``
            otherwise.
    """

    name: str
    kind: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Node", lambda r: f"/dev/vmbus/{r.name}"),
        ("Kind", lambda r: r.kind),
    )


@attrs.frozen
class InstalledProgram(JsonRecord):
    """An ``hv_*`` program found on the guest.

    Attributes:
        path: Where it was found.
        real_path: The file after resolving symbolic links.
        daemon: The daemon it is, ``None`` for helper scripts such as
            ``hv_get_dhcp_info``.
        on_path: Whether it was found through ``PATH`` (what
            ``compgen -c hv_`` shows) rather than in a distribution's
            private directory such as ``/usr/lib/hyper-v/bin``.
        script: Whether it is a script, such as Ubuntu's wrapper that runs
            the binary for the running kernel.
        trusted: Whether only root could have written it: the file it
            resolves to and that file's directory are owned by root and
            writable by no one else. An untrusted program is listed but
            never started.
    """

    path: str
    real_path: str
    daemon: DaemonSpec | None
    on_path: bool
    script: bool
    trusted: bool = True

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Program", lambda r: r.path.rsplit("/", 1)[-1]),
        ("Daemon", lambda r: r.name),
        ("OnPath", lambda r: r.on_path),
        ("Trusted", lambda r: r.trusted),
        ("Path", lambda r: r.path),
    )

    @property
    def name(self) -> str:
        """The daemon program it is (``hv_fcopy_daemon``), empty for helpers."""
        found = program_name(self.path) or program_name(self.real_path)
        return found[1] if found else ""

    def to_dict(self) -> dict[str, Any]:
        """Its attributes as plain data, ``daemon`` as the program name
        (:attr:`name`, ``None`` for a helper) rather than the daemon record."""
        return super().to_dict() | {"daemon": self.name or None}

    def __repr__(self) -> str:
        return f"<InstalledProgram {self.path}>"


@attrs.frozen
class DaemonProcess(JsonRecord):
    """One running instance of an integration daemon, read from ``/proc``.

    Attributes:
        pid: Its process id.
        daemon: Which daemon it is.
        program: The program path it runs from (the matching argument, or
            the executable).
        exe: ``/proc/PID/exe``; empty when the account may not read it.
        args: Its command line.
        uid: Its real user id.
        user: Its user name.
        started: When it started, in UTC.
        start_ticks: Its start time in clock ticks since boot, which with
            the pid identifies it even if the pid is reused.
        problem: Empty for a daemon instance; for a process listed in
            :attr:`LinuxStatus.unrecognised`, why it does not count (its
            executable is not a trusted installed program).
        args_cut: Whether the command line was longer than the status lists.
    """

    pid: int
    daemon: DaemonSpec
    program: str
    exe: str
    args: tuple[str, ...]
    uid: int | None
    user: str
    started: datetime.datetime | None
    start_ticks: int | None
    problem: str = ""
    args_cut: bool = False

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("PID", lambda r: r.pid),
        ("User", lambda r: r.user),
        ("Started", lambda r: r.started.strftime("%Y-%m-%d %H:%M:%S") if r.started else ""),
        ("Daemon", lambda r: r.name),
        ("Command", lambda r: " ".join(r.args) + (" ..." if r.args_cut else "")),
    )

    @property
    def name(self) -> str:
        """The daemon program it runs (``hv_fcopy_daemon``), by its program path."""
        found = program_name(self.program) or program_name(self.exe)
        return found[1] if found else self.daemon.name

    def to_dict(self) -> dict[str, Any]:
        """Its attributes as plain data, ``daemon`` as the program it runs
        (:attr:`name`) and ``started`` in ISO 8601."""
        return super().to_dict() | {"daemon": self.name}

    def __repr__(self) -> str:
        return f"<DaemonProcess {self.pid} {self.program} user={self.user}>"


@attrs.frozen
class UnitState(JsonRecord):
    """A systemd unit, as ``systemctl show`` reports it.

    Attributes:
        name: The unit name.
        load_state: ``loaded``, ``not-found``...
        active_state: ``active``, ``inactive``, ``failed``...
        sub_state: ``running``, ``dead``...
        main_pid: The main process, 0 when none.
        unit_file_state: ``enabled``, ``disabled``, ``static``...
        result: How its last run ended: ``success``, ``exit-code``,
            ``signal``...; empty where unknown.
        exec_main_status: The main process's exit status, where known.
        condition_result: ``yes`` or ``no``: whether its start conditions
            (``ConditionPathExists=``...) held when last checked.
        exec_start: The program its ``ExecStart=`` runs, where known.
    """

    name: str
    load_state: str
    active_state: str
    sub_state: str
    main_pid: int
    unit_file_state: str
    result: str = ""
    exec_main_status: int | None = None
    condition_result: str = ""
    exec_start: str = ""

    @property
    def exists(self) -> bool:
        """Whether systemd knows the unit."""
        return self.load_state == "loaded"


@attrs.frozen
class DaemonState(JsonRecord):
    """One integration daemon on one guest: installed where, running how.

    Attributes:
        daemon: Which daemon.
        installed: Its programs found on the guest, the one a start runs
            first: trusted before untrusted, then the program the kernel's
            interface needs (``/dev/vmbus/hv_fcopy``: ``hv_fcopy_daemon``;
            the ``uio_hv_generic`` driver: ``hv_fcopy_uio_daemon``).
        processes: Every running instance.
        unit: Its systemd unit where the guest runs systemd and has one: the
            unit whose main process is an instance, else an active one,
            else the one whose program matches the kernel's interface.

    Example:
        >>> from hvintegration.linux import resolve_daemon
        >>> DaemonState(resolve_daemon("kvp"), (), (), None).running
        False
    """

    daemon: DaemonSpec
    installed: tuple[InstalledProgram, ...] = attrs.field(converter=record_list)
    processes: tuple[DaemonProcess, ...] = attrs.field(converter=record_list)
    unit: UnitState | None

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Daemon", lambda r: r.name),
        ("Service", lambda r: r.daemon.service.name),
        ("Running", lambda r: r.running),
        ("PIDs", lambda r: tuple(p.pid for p in r.processes)),
        ("Unit", lambda r: r.unit.name if r.unit else ""),
        ("Program", lambda r: r.program or "(not installed)"),
    )

    @property
    def running(self) -> bool:
        """Whether at least one instance runs."""
        return bool(self.processes)

    @property
    def name(self) -> str:
        """The program name this guest uses: installed or running, else upstream's newest."""
        for path in [*(i.path for i in self.installed), *(p.program for p in self.processes)]:
            base = path.rsplit("/", 1)[-1]
            for program in sorted(self.daemon.programs, key=len, reverse=True):
                if base.startswith(program):
                    return program
        return self.daemon.name

    @property
    def program(self) -> str | None:
        """The program a start would run, ``None`` when no trusted one is installed."""
        return next((i.path for i in self.installed if i.trusted), None)

    def as_dict(self) -> JsonDict:
        """The same as :meth:`to_dict` (kept for earlier callers)."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The state as JSON-ready data (what ``linux start|stop|restart --json`` prints).

        Returns:
            ``daemon`` (the program name this guest uses), ``service`` (the
            catalogue key, as in host and Windows JSON), ``running``,
            ``program``, ``unit``, ``processes`` and ``installed``; times in
            ISO 8601.

        Example:
            >>> from hvintegration.linux import resolve_daemon
            >>> data = DaemonState(resolve_daemon("vss"), (), (), None).to_dict()
            >>> data["service"], data["running"]
            ('vss', False)
        """
        return {
            "daemon": self.name,
            "service": self.daemon.service.key,
            "running": self.running,
            "program": self.program,
            "unit": None if self.unit is None else self.unit.to_dict(),
            "processes": [p.to_dict() for p in self.processes],
            "installed": [i.to_dict() for i in self.installed],
        }

    def __repr__(self) -> str:
        pids = ",".join(str(p.pid) for p in self.processes) or "-"
        return f"<DaemonState {self.name} running={self.running} pids={pids}>"

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen
class KvpItem(JsonRecord):
    """One record of a KVP pool file.

    Attributes:
        pool: The pool number: 0 host-to-guest, 1 guest-to-host, 2 the
            guest's intrinsic items, 3 host facts such as
            ``VirtualMachineName``, 4 the guest's internal items.
        index: The record's position in the file.
        key: The key, decoded as UTF-8 (undecodable bytes replaced).
        value: The value, decoded the same way.
        problem: Empty for a well-formed record; else what is wrong with it
            (``"key is not UTF-8"``, ``"truncated record of 100 bytes"``...).

    Example:
        >>> KvpItem(3, 0, "VirtualMachineName", "demovm").ok
        True
    """

    pool: int
    index: int
    key: str
    value: str
    problem: str = ""

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Pool", lambda r: r.pool),
        ("Key", lambda r: r.key),
        ("Value", lambda r: r.value),
        ("Problem", lambda r: r.problem),
    )

    @property
    def ok(self) -> bool:
        """Whether the record was read without a problem."""
        return not self.problem

    def __repr__(self) -> str:
        extra = f" problem={self.problem!r}" if self.problem else ""
        return f"<KvpItem pool={self.pool} {self.key!r}={self.value!r}{extra}>"


@attrs.frozen
class LinuxStatus(JsonRecord):
    """Everything about a Linux guest's integration services, read at once.

    Attributes:
        target: The guest's URL.
        kernel: ``uname -r``.
        user: The account the library logged in as.
        uid: Its user id.
        systemd: Whether systemd runs the guest (``/run/systemd/system``).
        driver: The ``hv_utils`` driver.
        devices: The VMBus devices.
        nodes: The ``/dev/vmbus/hv_*`` nodes.
        installed: Every ``hv_*`` program found.
        daemons: One state per integration daemon, in catalogue order.
        units: Every systemd unit the status read (the catalogue's names
            and the units running a daemon instance).
        unrecognised: Processes named like a daemon whose executable is not
            a trusted installed program; they never count as the daemon.
        omitted: What the status left out to stay within its size bound
            (``"12 more processes"``); empty when nothing was.
        processes_complete: Whether every process that could be a daemon
            instance (a root process named like one) is listed, whatever
            the bound left out. When it is not, ``start`` and ``stop``
            refuse to act.
        uio_driver: Whether the ``uio_hv_generic`` driver is present.

    Example:
        >>> import asyncio
        >>> from hvintegration.linux import LinuxGuest
        >>> async def main():
        ...     async with LinuxGuest.connect("sim-linux://") as guest:
        ...         status = await guest.status()
        ...     return status.driver.state, [d.running for d in status.daemons]
        >>> asyncio.run(main())
        ('module', [True, True, True])
    """

    target: str
    kernel: str
    user: str
    uid: int
    systemd: bool
    driver: DriverState
    devices: tuple[VMBusDevice, ...] = attrs.field(converter=record_list)
    nodes: tuple[DeviceNode, ...] = attrs.field(converter=record_list)
    installed: tuple[InstalledProgram, ...] = attrs.field(converter=record_list)
    daemons: tuple[DaemonState, ...] = attrs.field(converter=record_list)
    units: tuple[UnitState, ...] = attrs.field(default=(), converter=record_list)
    unrecognised: tuple[DaemonProcess, ...] = attrs.field(default=(), converter=record_list)
    omitted: tuple[str, ...] = ()
    uio_driver: bool = False
    processes_complete: bool = True

    @property
    def processes(self) -> RecordList[DaemonProcess]:
        """Every running daemon instance, as ``ps -ef | grep hv`` would list them."""
        return RecordList(p for d in self.daemons for p in d.processes)

    def daemon(self, name: str) -> DaemonState:
        """The state of one daemon.

        Args:
            name: Any name :func:`~hvintegration.linux.resolve_daemon` takes.

        Raises:
            DaemonNotFoundError: The name is unknown.
        """
        from hvintegration.linux.names import resolve_daemon

        spec = resolve_daemon(name)
        return next(d for d in self.daemons if d.daemon is spec)

    def as_dict(self) -> JsonDict:
        """The same as :meth:`to_dict` (kept for earlier callers)."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON-ready data (what ``linux status --json`` prints).

        Returns:
            Every attribute by name, each nested record as its own
            ``to_dict()``: services as catalogue keys (``"vss"``), the
            daemons' ``daemon`` as the program name the guest uses.

        Example:
            >>> import asyncio
            >>> from hvintegration.linux import LinuxGuest
            >>> async def main():
            ...     async with LinuxGuest.connect("sim-linux://") as guest:
            ...         return (await guest.status()).to_dict()
            >>> data = asyncio.run(main())
            >>> [d["service"] for d in data["daemons"]]
            ['guest_service_interface', 'key_value_pair_exchange', 'vss']
        """
        return super().to_dict()

    def sections(self) -> tuple[tuple[str, RecordList[Tabular]], ...]:
        """The status as titled tables, in the order a terminal shows them.

        Returns:
            ``(title, records)`` pairs: the driver, the daemons, the running
            processes, the installed programs, the VMBus devices and the
            device nodes; render each with ``text_table``.

        Example:
            >>> import asyncio
            >>> from hvintegration.linux import LinuxGuest
            >>> async def main():
            ...     async with LinuxGuest.connect("sim-linux://") as guest:
            ...         return [title for title, _ in (await guest.status()).sections()]
            >>> asyncio.run(main())
            ['Driver', 'Daemons', 'Running', 'Installed', 'VMBus devices', 'Device nodes']
        """
        sections: tuple[tuple[str, RecordList[Tabular]], ...] = (
            ("Driver", RecordList([self.driver])),
            ("Daemons", RecordList(self.daemons)),
            ("Running", RecordList(self.processes)),
            ("Installed", RecordList(self.installed)),
            ("VMBus devices", RecordList(self.devices)),
            ("Device nodes", RecordList(self.nodes)),
        )
        if self.unrecognised:
            # Listed apart: named like a daemon, but not a trusted program.
            sections += (("Unrecognised", RecordList(self.unrecognised)),)
        return sections

    def __repr__(self) -> str:
        running = ", ".join(d.daemon.name for d in self.daemons if d.running) or "none"
        return f"<LinuxStatus {self.target} hv_utils={self.driver.state} running: {running}>"

    def _repr_html_(self) -> str:
        return html_table([self.driver]) + html_table(self.daemons)
