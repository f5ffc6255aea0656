"""The data of a simulated Linux guest: driver, programs, processes, KVP pools.

:class:`LinuxGuestModel` models what the library reads and changes on a real
guest: the ``hv_utils`` driver, the VMBus integration devices and their
``/dev/vmbus`` nodes, the installed ``hv_*`` programs, a process table of
daemon instances, systemd units where the distribution has systemd, the
account (root, passwordless sudo or neither) and the KVP pool files.
:mod:`~hvintegration.simulator.linux_behaviour` answers commands from it;
:class:`~hvintegration.simulator.linux.SimulatedLinuxGuest` makes it a target.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import attrs

from hvintegration import catalogue
from hvintegration.linux.names import DaemonSpec, match_program, resolve_daemon
from hvintegration.simulator.distros import DISTROS, Distro
from hvintegration.simulator.faults import SimulatedPeer

__all__ = ["POOL_KEY_BYTES", "POOL_RECORD_BYTES", "LinuxGuestModel", "SimulatedProcess"]

POOL_KEY_BYTES = 512
"""Bytes of the key field of one KVP pool record (``HV_KVP_EXCHANGE_MAX_KEY_SIZE``)."""

POOL_RECORD_BYTES = 512 + 2048
"""Bytes of one KVP pool record: the key, then the value (``HV_KVP_EXCHANGE_MAX_VALUE_SIZE``)."""


@attrs.define
class SimulatedProcess:
    """One process in the simulated guest.

    Attributes:
        pid: Its id.
        program: The path it runs from.
        args: Its command line.
        uid: Its user id.
        start_ticks: Clock ticks after boot when it started.
        ignores_term: Whether it survives ``SIGTERM``.
        unit: The systemd unit that started it, if any.
        exe: Its executable when that is not ``program`` (a makeWrapper
            script's ``.NAME-wrapped``).
        owner_uid: The owner of the executable file; a file someone other
            than root owns is not a trusted daemon.
    """

    pid: int
    program: str
    args: tuple[str, ...]
    uid: int = 0
    start_ticks: int = 100
    ignores_term: bool = False
    unit: str | None = None
    exe: str = ""
    owner_uid: int = 0


def utf8_cut(text: str, limit: int) -> bytes:
    """``text`` in UTF-8 as the guest's kernel converts it: at most ``limit`` bytes.

    ``kvp_send_key`` in ``drivers/hv/hv_kvp.c`` converts what the host sends
    with ``utf16s_to_utf8s(..., HV_KVP_EXCHANGE_MAX_KEY_SIZE - 1)`` (and
    ``HV_KVP_EXCHANGE_MAX_VALUE_SIZE - 1`` for a value); that function
    (``fs/nls/nls_base.c``) skips a character whose UTF-8 form no longer
    fits and goes on with the next, and skips a lone surrogate.

    Example:
        >>> utf8_cut("ab\u9375", 4), utf8_cut("\u9375\u9375a", 4)
        (b'ab', b'\xe9\x8d\xb5a')
    """
    out = bytearray()
    for ch in text:
        if ch == "\0":
            break
        if 0xD800 <= ord(ch) <= 0xDFFF:
            continue
        encoded = ch.encode("utf-8")
        if len(out) + len(encoded) <= limit:
            out += encoded
    return bytes(out)


def pool_records(*items: tuple[str, str]) -> bytes:
    """KVP pool file bytes holding ``(key, value)`` records.

    Each record is :data:`POOL_RECORD_BYTES` long whatever the text: the key
    and the value are cut as the guest's kernel cuts them (:func:`utf8_cut`,
    511 and 2,047 bytes) and padded with NULs.
    """
    value_bytes = POOL_RECORD_BYTES - POOL_KEY_BYTES
    return b"".join(
        utf8_cut(k, POOL_KEY_BYTES - 1).ljust(POOL_KEY_BYTES, b"\0")
        + utf8_cut(v, value_bytes - 1).ljust(value_bytes, b"\0")
        for k, v in items
    )


class LinuxGuestModel(SimulatedPeer):
    """The data of a simulated Linux guest, seeded per distribution.

    By default every installed daemon runs once (the ``ubuntu-14.04``
    profile copies the seed document: two ``hv_kvp_daemon`` instances and one
    ``hv_vss_daemon``), and pool 3 carries the host's facts.

    Args:
        name: The guest's host name, used in its URL.
        distro: A key of :data:`~hvintegration.simulator.distros.DISTROS` or
            a :class:`~hvintegration.simulator.distros.Distro`.
        user: The login name; ``root`` has uid 0, anyone else 1000.
        sudo: Whether that user has passwordless sudo.
        latency: Seconds each command takes.

    Attributes:
        driver: ``module``, ``built-in`` or ``absent``.
        processes: The process table.
        pools: KVP pool number to file bytes; a pool not here has no file.
        pending_host_items: The host's items (``HostExchangeItems``) sent
            while no ``hv_kvp_daemon`` ran, else ``None``. The kernel's
            ``hv_kvp_onchannelcallback`` leaves a host message in the VMBus
            channel while no daemon is registered (``kvp_transaction.state <
            HVUTIL_READY``), and a daemon's registration polls the channel
            (``kvp_register_done`` calls ``hv_poll_channel``), both in
            ``drivers/hv/hv_kvp.c``: so when ``hv_kvp_daemon`` starts again
            these items are written to pool 0.
        kvp_directory: Where the pool files are: ``/var/lib/hyperv``, or
            ``/var/opt/hyperv`` for a Linux 3.x daemon.
        unreadable_pools: Pools the login may not read (root reads them).
        kvp_free_bytes: Free space for pool 1 to grow into; ``None`` for
            plenty. A write that needs more fails with ``ENOSPC`` and
            changes nothing, as the real script does.
        fail_start: Daemon names that exit at once when started, as a
            daemon does without its device node.
        ignore_term: Daemon names whose instances survive ``SIGTERM``.
        missing_tools: Ubuntu's wrappers find no per-kernel tools
            (``linux-cloud-tools-<kernel>`` not installed): they print
            their warning and exit 2.
        unit_results: Unit name to how its last run ended
            (``Result``, ``ExecMainStatus``, ``ConditionResult``).
        journal: Unit name to what its last run printed.

    Raises:
        ValueError: An unknown distribution key.
    """

    def __init__(
        self,
        name: str = "linuxvm",
        *,
        distro: str | Distro = "debian-12",
        user: str = "root",
        sudo: bool = True,
        latency: float = 0.0,
    ) -> None:
        if isinstance(distro, str):
            if distro not in DISTROS:
                raise ValueError(f"unknown distro {distro!r}; choose from {', '.join(DISTROS)}")
            distro = DISTROS[distro]
        super().__init__(latency=latency)
        self.name = name
        self.distro = distro
        self.user = user
        self.uid = 0 if user == "root" else 1000
        self.sudo = sudo
        self.driver = distro.driver
        self.processes: list[SimulatedProcess] = []
        self.pools: dict[int, bytes] = {}
        self.pending_host_items: dict[str, str] | None = None
        self.kvp_directory = "/var/lib/hyperv"
        self.unreadable_pools: set[int] = set()
        self.kvp_free_bytes: int | None = None
        self.fail_start: set[str] = set()
        self.ignore_term: set[str] = set()
        self.missing_tools = False
        self.unit_results: dict[str, tuple[str, int, str]] = {}
        self.journal: dict[str, str] = {}
        self.boot_time = 1_700_000_000
        self.ticks = 5000
        self.next_pid = 1000
        if distro.key == "ubuntu-14.04":
            tools = f"/usr/lib/linux-tools/{distro.kernel}"
            for pid, program in (
                (1286, f"{tools}/hv_kvp_daemon"),
                (9333, f"{tools}/hv_kvp_daemon"),
                (9365, f"{tools}/hv_vss_daemon"),
            ):
                self.processes.append(SimulatedProcess(pid, program, (program,)))
        else:
            for program in distro.programs:
                unit = distro.units.get(program)
                if self.condition(program):
                    self.start(program, unit=unit)
        self.pools[3] = pool_records(
            ("HostName", "HV01"),
            ("VirtualMachineName", name),
            ("VirtualMachineId", str(uuid.uuid5(uuid.NAMESPACE_DNS, name)).upper()),
        )
        self.pools[2] = pool_records(("FullyQualifiedDomainName", name), ("OSName", distro.name))
        for pool in (0, 1, 4):
            self.pools[pool] = b""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.distro.key} user={self.user}>"

    def installed(self) -> dict[str, str]:
        """Installed path to daemon program name, including wrapper targets."""
        found = {path: program for program, path in self.distro.programs.items()}
        if self.distro.wrappers:
            tools = f"/usr/lib/linux-tools/{self.distro.kernel}"
            for program in self.distro.programs:
                found[f"{tools}/{program}"] = program
        return found

    def condition(self, program: str) -> bool:
        """Whether the kernel offers what a daemon program needs (its unit's condition).

        ``hv_fcopy_daemon`` needs ``/dev/vmbus/hv_fcopy``; ``hv_fcopy_uio_daemon``
        the ``uio_hv_generic`` driver and no ``/dev/vmbus/hv_fcopy``, as
        SUSE's units say; every daemon needs the driver.
        """
        if self.driver == "absent":
            return False
        name = program.rsplit("/", 1)[-1]
        if name in ("hv_fcopy_daemon", "hypervfcopyd"):
            return self.distro.fcopy_interface == "node"
        if name == "hv_fcopy_uio_daemon":
            return self.distro.fcopy_interface == "uio"
        return True

    def failure(self, program: str) -> tuple[int, str] | None:
        """How starting a program in the foreground fails: exit status and output, or ``None``."""
        path = self.distro.programs.get(program, program)
        name = path.rsplit("/", 1)[-1]
        if path in self.distro.wrappers and self.missing_tools:
            # Ubuntu's wrapper (debian/tools/generic in the kernel package).
            flavour = self.distro.kernel.rsplit("-", 1)[-1]
            return 2, (
                f"WARNING: {name} not found for kernel {self.distro.kernel}\n\n"
                "  You may need to install the following packages for this specific kernel:\n"
                f"    linux-tools-{self.distro.kernel}\n"
                f"    linux-cloud-tools-{self.distro.kernel}\n\n"
                "  You may also want to install one of the following packages to keep up to "
                "date:\n"
                f"    linux-tools-{flavour}\n"
                f"    linux-cloud-tools-{flavour}\n"
            )
        spec = match_program(path)
        if self._listed(self.fail_start, spec) or self.driver == "absent":
            node = "hv_" + (spec.short if spec else "kvp")
            return 1, f"open /dev/vmbus/{node} failed; error: 2 No such file or directory\n"
        return None

    def _listed(self, names: set[str], spec: DaemonSpec | None) -> bool:
        return spec is not None and any(resolve_daemon(n) is spec for n in names)

    def start(self, program: str, *, unit: str | None = None) -> SimulatedProcess | None:
        """Start one instance of a daemon program (by name or path).

        Returns:
            The new process, or ``None`` when it exits at once.
        """
        path = self.distro.programs.get(program, program)
        spec = match_program(path)
        if self.failure(path) is not None:
            return None
        # Ubuntu's wrapper execs the binary for the running kernel.
        if path in self.distro.wrappers:
            path = f"/usr/lib/linux-tools/{self.distro.kernel}/{path.rsplit('/', 1)[-1]}"
        exe = ""
        if self.distro.wrapped:
            # makeWrapper: exec -a "$0" /nix/store/.../.NAME-wrapped "$@".
            directory, _, name = path.rpartition("/")
            exe = f"{directory}/.{name}-wrapped"
        self.next_pid += 7
        self.ticks += 50
        process = SimulatedProcess(
            self.next_pid,
            path,
            (path, "-n"),
            start_ticks=self.ticks,
            ignores_term=self._listed(self.ignore_term, spec),
            unit=unit,
            exe=exe,
        )
        self.processes.append(process)
        if spec is not None and spec.short == "kvp" and self.pending_host_items is not None:
            # The host's message waited in the VMBus channel while no daemon
            # was registered; the daemon's registration polls the channel and
            # the items reach pool 0 (see pending_host_items).
            self.pools[0] = pool_records(*self.pending_host_items.items())
            self.pending_host_items = None
        return process

    def signal(self, pid: int, signal: str) -> bool:
        """Deliver ``TERM`` or ``KILL`` to a process.

        Returns:
            Whether the process existed.
        """
        for process in self.processes:
            if process.pid == pid:
                if signal == "KILL" or not process.ignores_term:
                    self.processes.remove(process)
                return True
        return False

    def vmbus_class_ids(self) -> Iterable[uuid.UUID]:
        """The class ids of the integration devices the host offers it."""
        for spec in catalogue.HOST_SERVICES:
            if spec.linux is not None and spec.linux.vmbus_class_id is not None:
                yield spec.linux.vmbus_class_id
