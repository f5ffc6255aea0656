"""Simulated Linux guests: explore ``LinuxGuest`` with no VM.

A :class:`SimulatedLinuxGuest` models what the library reads and changes on
a real guest: the ``hv_utils`` driver, the VMBus integration devices and
their ``/dev/vmbus`` nodes, the installed ``hv_*`` programs, a process table
of daemon instances, systemd units where the distribution has systemd, the
account (root, passwordless sudo or neither) and the KVP pool files.

What it does not model: a shell. Its transport answers only the library's
own fixed guest scripts (recognised by their exact text) and ``systemctl``;
any other command exits with status 127. The distribution profiles record
documented packaging facts, cited beside each.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

from hvintegration import catalogue
from hvintegration.linux.names import DaemonSpec, resolve_daemon

if TYPE_CHECKING:
    from hvintegration.transport.simlinux import SimulatedLinuxTransport

__all__ = ["DISTROS", "Distro", "SimulatedLinuxGuest", "SimulatedProcess"]

_HELPERS = ("hv_get_dhcp_info", "hv_get_dns_info", "hv_set_ifconfig")


@attrs.frozen
class Distro:
    """How one distribution packages the Hyper-V daemons.

    Attributes:
        key: Short identifier used in ``sim-linux://?distro=KEY``.
        name: The product name.
        kernel: ``uname -r``.
        systemd: Whether systemd is PID 1.
        programs: Daemon program name to installed path.
        helpers: Helper script paths.
        units: Daemon program name to systemd unit.
        wrappers: Paths that are scripts running another path.
        driver: ``module`` or ``built-in``.
    """

    key: str
    name: str
    kernel: str
    systemd: bool
    programs: MappingProxyType[str, str]
    helpers: tuple[str, ...]
    units: MappingProxyType[str, str]
    wrappers: frozenset[str] = frozenset()
    driver: str = "module"


def _map(**items: str) -> MappingProxyType[str, str]:
    return MappingProxyType(items)


DISTROS = MappingProxyType(
    {
        d.key: d
        for d in (
            # Debian's hyperv-daemons: /usr/sbin/hv_*_daemon, helpers in
            # /usr/libexec/hypervkvpd, units hv-*-daemon.service.
            Distro(
                "debian-12",
                "Debian 12 with hyperv-daemons",
                "6.1.0-27-amd64",
                True,
                _map(
                    hv_kvp_daemon="/usr/sbin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/sbin/hv_vss_daemon",
                    hv_fcopy_daemon="/usr/sbin/hv_fcopy_daemon",
                ),
                tuple(f"/usr/libexec/hypervkvpd/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hv-kvp-daemon.service",
                    hv_vss_daemon="hv-vss-daemon.service",
                    hv_fcopy_daemon="hv-fcopy-daemon.service",
                ),
            ),
            # The seed's guest: Ubuntu 14.04 (upstart, no systemd), where
            # /usr/sbin/hv_kvp_daemon is a wrapper for the binary under
            # /usr/lib/linux-tools/<kernel>/.
            Distro(
                "ubuntu-14.04",
                "Ubuntu 14.04 with linux-cloud-tools",
                "3.13.0-32-generic",
                False,
                _map(
                    hv_kvp_daemon="/usr/sbin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/sbin/hv_vss_daemon",
                    hv_fcopy_daemon="/usr/sbin/hv_fcopy_daemon",
                ),
                tuple(f"/usr/sbin/{h}" for h in _HELPERS),
                _map(),
                frozenset(
                    {
                        "/usr/sbin/hv_kvp_daemon",
                        "/usr/sbin/hv_vss_daemon",
                        "/usr/sbin/hv_fcopy_daemon",
                    }
                ),
            ),
            # RHEL and Fedora: hypervkvpd, hypervvssd, hypervfcopyd.
            Distro(
                "rhel-9",
                "Red Hat Enterprise Linux 9 with hyperv-daemons",
                "5.14.0-427.el9.x86_64",
                True,
                _map(
                    hv_kvp_daemon="/usr/sbin/hypervkvpd",
                    hv_vss_daemon="/usr/sbin/hypervvssd",
                    hv_fcopy_daemon="/usr/sbin/hypervfcopyd",
                ),
                tuple(f"/usr/libexec/hypervkvpd/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hypervkvpd.service",
                    hv_vss_daemon="hypervvssd.service",
                    hv_fcopy_daemon="hypervfcopyd.service",
                ),
            ),
            # SUSE: daemons outside PATH in /usr/lib/hyper-v/bin; kernels
            # from 6.10 replace hv_fcopy_daemon by hv_fcopy_uio_daemon.
            Distro(
                "sles-15",
                "SUSE Linux Enterprise Server 15 SP6",
                "6.4.0-150600.23-default",
                True,
                _map(
                    hv_kvp_daemon="/usr/lib/hyper-v/bin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/lib/hyper-v/bin/hv_vss_daemon",
                    hv_fcopy_uio_daemon="/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon",
                ),
                tuple(f"/usr/lib/hyper-v/bin/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hv_kvp_daemon.service",
                    hv_vss_daemon="hv_vss_daemon.service",
                    hv_fcopy_uio_daemon="hv_fcopy_uio_daemon.service",
                ),
            ),
            Distro(
                "minimal",
                "A minimal image: hv_utils built in, no daemons installed",
                "6.6.0",
                False,
                _map(),
                (),
                _map(),
                driver="built-in",
            ),
        )
    }
)
"""Every simulated distribution by key."""


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
    """

    pid: int
    program: str
    args: tuple[str, ...]
    uid: int = 0
    start_ticks: int = 100
    ignores_term: bool = False
    unit: str | None = None


class SimulatedLinuxGuest:
    """A simulated Linux guest with the Hyper-V daemons, seeded per distribution.

    By default every installed daemon runs once (the ``ubuntu-14.04``
    profile copies the seed document: two ``hv_kvp_daemon`` instances and one
    ``hv_vss_daemon``), and pool 3 carries the host's facts.

    Args:
        name: The guest's host name, used in its URL.
        distro: A key of :data:`DISTROS` or a :class:`Distro`.
        user: The login name; ``root`` has uid 0, anyone else 1000.
        sudo: Whether that user has passwordless sudo.
        latency: Seconds each command takes.

    Attributes:
        processes: The process table.
        pools: KVP pool number to file bytes.
        fail_start: Daemon names that exit at once when started, as a
            daemon does without its device node.
        ignore_term: Daemon names whose instances survive ``SIGTERM``.
        round_trips: Commands answered so far.

    Example:
        >>> guest = SimulatedLinuxGuest(distro="sles-15")
        >>> sorted(p.program for p in guest.processes)[:1]
        ['/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon']
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
        self.name = name
        self.distro = distro
        self.user = user
        self.uid = 0 if user == "root" else 1000
        self.sudo = sudo
        self.latency = latency
        self.driver = distro.driver
        self.processes: list[SimulatedProcess] = []
        self.pools: dict[int, bytes] = {}
        self.fail_start: set[str] = set()
        self.ignore_term: set[str] = set()
        self.round_trips = 0
        self.boot_time = 1_700_000_000
        self.ticks = 5000
        self._next_pid = 1000
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
                self.start(program, unit=distro.units.get(program))
        self.pools[3] = _records(
            ("HostName", "HV01"),
            ("VirtualMachineName", name),
            ("VirtualMachineId", str(uuid.uuid5(uuid.NAMESPACE_DNS, name)).upper()),
        )
        self.pools[2] = _records(("FullyQualifiedDomainName", name), ("OSName", distro.name))
        for pool in (0, 1, 4):
            self.pools[pool] = b""

    def __repr__(self) -> str:
        return f"<SimulatedLinuxGuest {self.name} {self.distro.key} user={self.user}>"

    @property
    def url(self) -> str:
        """The ``sim-linux://`` URL of a guest built like this one."""
        return f"sim-linux://{self.name}?distro={self.distro.key}"

    def installed(self) -> dict[str, str]:
        """Installed path to daemon program name, including wrapper targets."""
        found = {path: program for program, path in self.distro.programs.items()}
        if self.distro.wrappers:
            tools = f"/usr/lib/linux-tools/{self.distro.kernel}"
            for program in self.distro.programs:
                found[f"{tools}/{program}"] = program
        return found

    def program_of(self, spec: DaemonSpec) -> str | None:
        """The daemon's start program: its newest installed name first."""
        for name in spec.programs:
            if name in self.distro.programs:
                return self.distro.programs[name]
            for path, program in self.installed().items():
                if program == name and not path.startswith("/usr/lib/linux-tools"):
                    return path
        return None

    def start(self, program: str, *, unit: str | None = None) -> SimulatedProcess | None:
        """Start one instance of a daemon program (by name or path).

        Returns:
            The new process, or ``None`` when it exits at once.
        """
        path = self.distro.programs.get(program, program)
        spec = resolve_daemon_path(path)
        if spec is not None and any(resolve_daemon(n) is spec for n in self.fail_start):
            return None
        # Ubuntu's wrapper execs the binary for the running kernel.
        if path in self.distro.wrappers:
            path = f"/usr/lib/linux-tools/{self.distro.kernel}/{path.rsplit('/', 1)[-1]}"
        self._next_pid += 7
        self.ticks += 50
        process = SimulatedProcess(
            self._next_pid,
            path,
            (path, "-n") if unit else (path,),
            start_ticks=self.ticks,
            ignores_term=spec is not None
            and any(resolve_daemon(n) is spec for n in self.ignore_term),
            unit=unit,
        )
        self.processes.append(process)
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

    def running(self, spec: DaemonSpec) -> list[SimulatedProcess]:
        """The instances of one daemon."""
        return [p for p in self.processes if resolve_daemon_path(p.program) is spec]

    def transport(self) -> SimulatedLinuxTransport:
        """A transport whose commands this guest answers."""
        from hvintegration.transport.simlinux import SimulatedLinuxTransport

        return SimulatedLinuxTransport(self)

    def vmbus_class_ids(self) -> Iterable[uuid.UUID]:
        """The class ids of the integration devices the host offers it."""
        for spec in catalogue.HOST_SERVICES:
            if spec.linux is not None and spec.linux.vmbus_class_id is not None:
                yield spec.linux.vmbus_class_id


def resolve_daemon_path(path: str) -> DaemonSpec | None:
    """The daemon a program path is, if any (see :func:`~hvintegration.linux.match_program`)."""
    from hvintegration.linux.names import match_program

    return match_program(path)


def _records(*items: tuple[str, str]) -> bytes:
    return b"".join(k.encode().ljust(512, b"\0") + v.encode().ljust(2048, b"\0") for k, v in items)


# Resolve names eagerly so that a catalogue change that breaks the profiles
# fails at import, not in a user's notebook.
for _distro in DISTROS.values():
    for _program in _distro.programs:
        resolve_daemon(_program)
