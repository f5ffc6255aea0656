"""Which daemon a caller means, and which program names and units it has.

A daemon may be named as its program (``hv_kvp_daemon``), its short name
(``kvp``), its Red Hat program name (``hypervkvpd``) or any name of its
catalogue service (``Key-Value Pair Exchange``, ``Data Exchange``...). The
facts come from :mod:`hvintegration.catalogue`; this module only indexes them.
"""

from __future__ import annotations

import re

import attrs

from hvintegration import catalogue
from hvintegration._table import JsonRecord
from hvintegration.errors import DaemonNotFoundError, ServiceNotFoundError

__all__ = ["DAEMONS", "DaemonSpec", "match_program", "program_name", "resolve_daemon"]

# Fedora's hyperv-daemons packaging never restarts hypervkvpd on upgrade: its
# spec says the daemon does not support restarting (older hv_utils drivers
# refuse a second registration while the first is being torn down). A
# restart of that unit is done as a stop, a wait until the process is gone,
# then a start.
NO_RESTART_UNITS = frozenset({"hypervkvpd.service"})


@attrs.frozen
class DaemonSpec(JsonRecord):
    """One user-space integration daemon, as every distribution names it.

    Attributes:
        name: The program name upstream uses, newest first in the catalogue
            (``hv_kvp_daemon``, ``hv_fcopy_uio_daemon``...).
        short: The short name (``kvp``, ``vss``, ``fcopy``).
        service: The integration service it serves.
        programs: Every program name it runs as: the upstream names (newest
            first) and the Red Hat name (``hypervkvpd``).
        units: Every systemd unit name a distribution gives it.

    Example:
        >>> resolve_daemon("kvp").programs
        ('hv_kvp_daemon', 'hypervkvpd')
    """

    name: str
    short: str
    service: catalogue.ServiceSpec = attrs.field(repr=False)
    programs: tuple[str, ...]
    units: tuple[str, ...]

    def __repr__(self) -> str:
        return f"<DaemonSpec {self.name} ({self.service.name})>"


def _build() -> tuple[DaemonSpec, ...]:
    specs = []
    for service in catalogue.ALL_SERVICES:
        side = service.linux
        if side is None or not side.daemons:
            continue
        # Red Hat installs the daemons as /usr/sbin/hypervkvpd etc.: the
        # program name is the unit name without ".service".
        redhat = tuple(unit.removesuffix(".service") for unit in side.redhat_units)
        short = side.daemons[-1].removeprefix("hv_").removesuffix("_daemon")
        specs.append(
            DaemonSpec(
                name=side.daemons[0],
                short=short,
                service=service,
                programs=(*side.daemons, *redhat),
                units=side.units,
            )
        )
    return tuple(specs)


DAEMONS: tuple[DaemonSpec, ...] = _build()
"""Every integration daemon the catalogue knows (KVP, VSS, file copy)."""

_BY_NAME: dict[str, DaemonSpec] = {}
for _spec in DAEMONS:
    for _name in (*_spec.programs, _spec.short, *(u.removesuffix(".service") for u in _spec.units)):
        _BY_NAME.setdefault(_name.casefold(), _spec)

# A program matches when its file name is the daemon's name, possibly with a
# version after it (hv_kvp_daemon-6.1.0, hv_kvp_daemon.5.15); the directory
# may be versioned too (/usr/lib/linux-tools/3.13.0-32-generic/).
_VERSION_SUFFIX = re.compile(r"(?:[-_.]v?[0-9][0-9A-Za-z.+~_-]*)?")


def _base(path: str) -> str:
    base = path.rsplit("/", 1)[-1].removesuffix(" (deleted)")
    # makeWrapper (NixOS) renames the real program .NAME-wrapped and installs
    # a script NAME that runs it with exec -a "$0".
    if base.startswith(".") and base.endswith("-wrapped"):
        base = base[1 : -len("-wrapped")]
    return base


def program_name(path: str) -> tuple[DaemonSpec, str] | None:
    """The daemon a program file is, and which of its program names, by file name.

    Args:
        path: A path or file name.

    Returns:
        The daemon and the program name (``hv_fcopy_daemon``, never taken
        for ``hv_fcopy_uio_daemon``), or ``None``.

    Example:
        >>> program_name("/usr/sbin/hv_fcopy_daemon")[1]
        'hv_fcopy_daemon'
        >>> program_name("/nix/store/x-hyperv-daemons-bin/bin/.hv_kvp_daemon-wrapped")[1]
        'hv_kvp_daemon'
    """
    base = _base(path)
    for spec in DAEMONS:
        # Longest first, so hv_fcopy_uio_daemon is never taken for hv_fcopy_daemon.
        for program in sorted(spec.programs, key=len, reverse=True):
            if base.startswith(program) and _VERSION_SUFFIX.fullmatch(base[len(program) :]):
                return spec, program
    return None


def match_program(path: str) -> DaemonSpec | None:
    """The daemon a program file is, judged by its file name.

    Args:
        path: A path or file name, such as
            ``/usr/lib/linux-tools/3.13.0-32-generic/hv_kvp_daemon``.

    Returns:
        The daemon, or ``None`` for anything else (helper scripts such as
        ``hv_get_dhcp_info`` included).

    Example:
        >>> match_program("/opt/hv/hv_vss_daemon-6.1.0").name
        'hv_vss_daemon'
        >>> match_program("/usr/sbin/hv_get_dns_info") is None
        True
    """
    found = program_name(path)
    return found[0] if found else None


def resolve_daemon(ref: str | DaemonSpec | catalogue.ServiceSpec) -> DaemonSpec:
    """Find the daemon a caller means.

    Args:
        ref: A program name (``hv_kvp_daemon``, ``hypervkvpd``), a short name
            (``kvp``), a unit name, a catalogue service or any of its names.

    Returns:
        The daemon.

    Raises:
        DaemonNotFoundError: Nothing matches, or the service has no daemon
            (heartbeat, shutdown and time sync live in the kernel alone).

    Example:
        >>> resolve_daemon("Data Exchange").name
        'hv_kvp_daemon'
        >>> resolve_daemon("Guest Service Interface").programs
        ('hv_fcopy_uio_daemon', 'hv_fcopy_daemon', 'hypervfcopyd')
    """
    if isinstance(ref, DaemonSpec):
        return ref
    # Every name it accepts: each program name (hv_fcopy_daemon as well as
    # hv_fcopy_uio_daemon, Red Hat's hypervkvpd...) and each short name.
    valid = [*dict.fromkeys(p for spec in DAEMONS for p in (*spec.programs, spec.short))]
    if isinstance(ref, str):
        text = ref.strip().removesuffix(".service")
        found = _BY_NAME.get(text.casefold())
        if found is not None:
            return found
        try:
            service = catalogue.resolve(text)
        except ServiceNotFoundError:
            raise DaemonNotFoundError(ref, choices=valid) from None
    elif isinstance(ref, catalogue.ServiceSpec):
        service = ref
    else:
        raise TypeError(f"a daemon is named by str or ServiceSpec, not {type(ref).__name__}")
    for spec in DAEMONS:
        if spec.service is service:
            return spec
    if service.linux is None:
        reason = (
            f"{service.name} ({service.windows_service}) exists in Windows guests only; "
            "a Linux guest has no daemon or driver for it"
        )
    else:
        reason = (
            f"{service.name} has no user-space daemon on Linux; "
            f"the {service.linux.driver} driver serves it"
        )
    raise DaemonNotFoundError(service.name, choices=valid, reason=reason)
