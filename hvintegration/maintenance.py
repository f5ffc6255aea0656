"""Maintenance advice: how a guest's integration services are kept current.

The vendor's how-to ends with three tables: for each guest operating system on
a Windows 10, Windows 8.1 or Windows 8 host, the update mechanism (Windows
Update, or the Integration Services disk), and which guests need the Data
Exchange integration service before Windows Update offers them anything.
:func:`advise` answers from those tables, extended from vendor documentation to
later hosts and to Linux guests (:mod:`hvintegration.maintenance_data` holds
the rows and cites a source next to each).

Names are accepted in their common spellings, including the ``OSName`` a guest
reports through Key-Value Pair Exchange::

    >>> from hvintegration.maintenance import advise
    >>> advice = advise(host_os="Windows 10", guest_os="Microsoft Windows 7 Enterprise")
    >>> advice.mechanism.value, advice.data_exchange
    ('Windows Update', True)
    >>> advise(host_os="win8.1", guest_os="2008r2").mechanism.value
    'Integration Services disk'
"""

from __future__ import annotations

import re
from typing import ClassVar

import attrs

from hvintegration._table import Column, JsonRecord, RecordList, html_table, record_list
from hvintegration.errors import NotFoundError
from hvintegration.maintenance_data import (
    GUESTS,
    HOSTS,
    LINUX_DISTRIBUTIONS,
    LINUX_FOOTNOTE,
    LINUX_GUESTS,
    LINUX_MECHANISM_NOTE,
    LINUX_ROW_NOTE,
    ROWS,
    SEED_HOWTO,
    WS_HOWTO,
    WS_HOWTO_GENERAL,
    Mechanism,
    OSInfo,
    Row,
    Source,
)

__all__ = [
    "Advice",
    "Mechanism",
    "Source",
    "advise",
    "known_guest_oses",
    "known_host_oses",
    "normalise",
    "resolve_guest_os",
    "resolve_host_os",
]


@attrs.frozen
class Advice(JsonRecord):
    """How to keep one guest's integration services current on one host.

    Attributes:
        host_os: The host release, as the vendor's tables name it.
        guest_os: The guest, as the vendor's tables name it.
        mechanism: :class:`Mechanism`: Windows Update, the Integration
            Services disk, the distribution's package manager, or unknown
            where no vendor document says.
        data_exchange: Whether the guest must have the Data Exchange
            (Key-Value Pair Exchange) integration service enabled to be
            offered updates; if it cannot be, the KB3071740 cab is the
            offline way.
        notes: The notes and footnotes that go with the answer.
        packages: For Linux guests, the distribution packages that install
            the KVP, VSS and file copy daemons; empty when unknown.
        sources: The documents the answer rests on (a :class:`RecordList`,
            a table in a notebook).
        seed: Whether the answer is a row of the how-to's own three tables.

    Example:
        >>> a = advise(host_os="Windows 8", guest_os="Windows Server 2012 R2 Datacenter")
        >>> a
        <Advice Windows 8 / Windows Server 2012 R2: Windows Update>
    """

    host_os: str
    guest_os: str
    mechanism: Mechanism
    data_exchange: bool
    notes: tuple[str, ...]
    packages: tuple[str, ...]
    sources: RecordList[Source] = attrs.field(converter=record_list)
    seed: bool

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("HostOS", lambda r: r.host_os),
        ("GuestOS", lambda r: r.guest_os),
        ("UpdateMechanism", lambda r: r.mechanism.value),
        ("DataExchangeRequired", lambda r: r.data_exchange),
        ("Packages", lambda r: r.packages),
    )

    def __repr__(self) -> str:
        extra = " (Data Exchange required)" if self.data_exchange else ""
        return f"<Advice {self.host_os} / {self.guest_os}: {self.mechanism.value}{extra}>"

    def _repr_html_(self) -> str:
        import html

        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.notes)
        sources = "".join(
            f'<li><a href="{html.escape(s.url)}">{html.escape(s.title)}</a></li>'
            for s in self.sources
        )
        return (
            html_table([self])
            + (f"<p>Notes</p><ul>{notes}</ul>" if notes else "")
            + (f"<p>Sources</p><ul>{sources}</ul>" if sources else "")
        )


# Words that name an edition, a service pack or a bitness rather than a
# release: "Microsoft Windows Server 2012 R2 Datacenter", "Windows 7 SP1",
# "Windows 10 Pro for Workstations", "Windows Server 2022 Datacenter: Azure
# Edition", "Windows Server(R) 2008 Standard".
_NOISE = frozenset(
    [
        "microsoft",
        "datacenter",
        "standard",
        "enterprise",
        "professional",
        "pro",
        "home",
        "ultimate",
        "business",
        "education",
        "essentials",
        "foundation",
        "web",
        "starter",
        "premium",
        "evaluation",
        "edition",
        "core",
        "azure",
        "for",
        "workstations",
        "with",
        "service",
        "pack",
        "sp",
        "x64",
        "x86",
        "amd64",
        "arm64",
        "n",
        "kn",
        "ltsc",
        "ltsb",
        "lts",
    ]
)
_BITNESS = re.compile(r"\b(?:32|64)[- ]?bit\b")
# A parenthesised remark without a digit names an installation option, a
# code name or an edition, never the release: "(Desktop Experience)",
# "(Noble Numbat)", "(bookworm)", "(Server Edition)", "(Plow)".
_REMARK = re.compile(r"\([^()0-9]*\)")
# A Windows Server release by year, however it is prefixed or abbreviated:
# "Server 2016", "Windows 2012 R2", "Win2k8r2", "Windows Server 2k8 R2".
_SERVER_YEAR = re.compile(r"^(?:windows|win|ws|w)?(?:server)?(20[0-9]{2}|2k[0-9]{1,2})(r2)?$")
# Words after a Linux distribution's name that name a flavour, not a release:
# "Ubuntu Server 22.04", "Fedora Workstation 40".
_LINUX_NOISE = frozenset(["server", "desktop", "workstation", "cloud", "minimal"])
_SERVICE_PACK = re.compile(r"\b(?:sp|service pack)\s*\d\b")
_VERSION_TAIL = re.compile(r"^[0-9]*(?:sp[0-9]+)?$")
# A Windows client feature update or LTSC year after the release: "Windows 10
# 22H2", "Windows 10 Enterprise LTSC 2019", "Windows 11 version 24H2".
_FEATURE_UPDATE = re.compile(r"^(windows1[01])(?:version)?(?:[0-9]{2}h[0-9]|[0-9]{4})$")


def normalise(name: str) -> str:
    """Reduce an OS name to the form the lookup compares.

    Lower case; trademark signs, ``Microsoft``, editions, service packs,
    bitness and parenthesised remarks without a digit (``(Desktop
    Experience)``, ``(bookworm)``) dropped; everything that is not a letter
    or digit removed. A Windows Server release named by its year alone or
    abbreviated (``Server 2016``, ``Windows 2012 R2``, ``Win2k8r2``) becomes
    ``windowsserver`` and the year.

    Args:
        name: Any spelling of an OS name.

    Returns:
        The comparison key.

    Raises:
        TypeError: ``name`` is not a str.

    Example:
        >>> normalise("Microsoft Windows Server® 2008 R2 Enterprise SP1 (64-bit)")
        'windowsserver2008r2'
        >>> normalise("Windows 8.1")
        'windows81'
        >>> normalise("Win2k8r2"), normalise("Server 2016")
        ('windowsserver2008r2', 'windowsserver2016')
    """
    return "".join(_tokens(name, _NOISE, "name"))


def _tokens(name: object, noise: frozenset[str], what: str) -> list[str]:
    if not isinstance(name, str):
        raise TypeError(f"an OS {what} is a str, not {type(name).__name__}")
    text = name.casefold().replace("®", " ").replace("™", " ")
    text = text.replace("(r)", " ").replace("(tm)", " ")
    text = _REMARK.sub(" ", text)
    text = _BITNESS.sub(" ", text)
    text = _SERVICE_PACK.sub(" ", text)
    tokens = re.split(r"[^0-9a-z]+", text.replace(".", ""))
    key = [token for token in tokens if token and token not in noise]
    year = _SERVER_YEAR.match("".join(key))
    if year is not None:
        release, r2 = year.groups()
        if release.startswith("2k"):
            release = f"20{int(release[2:]):02d}"
        return ["windowsserver", release, r2 or ""]
    return key


def _linux_key(name: str) -> str:
    return "".join(_tokens(name, _NOISE | _LINUX_NOISE, "name"))


def _index(infos: list[OSInfo]) -> dict[str, OSInfo]:
    index: dict[str, OSInfo] = {}
    for info in infos:
        for spelling in (info.key, info.name, *info.aliases):
            index.setdefault(normalise(spelling), info)
    return index


_HOST_INDEX = _index(list(HOSTS.values()))
_GENERIC_LINUX = GUESTS["linux"]
_GUEST_INDEX = _index([info for info in GUESTS.values() if info.family == "windows"])
# Longest first, so "Red Hat Enterprise Linux" wins over "Red Hat".
_LINUX_PREFIXES = sorted(
    (
        (_linux_key(spelling), info)
        for info in GUESTS.values()
        if info.family == "linux"
        for spelling in (info.name, *info.aliases)
    ),
    key=lambda item: -len(item[0]),
)


def known_host_oses() -> tuple[str, ...]:
    """The host releases :func:`advise` knows, by display name.

    Example:
        >>> "Windows Server 2025" in known_host_oses()
        True
    """
    return tuple(info.name for info in HOSTS.values())


def known_guest_oses() -> tuple[str, ...]:
    """The guest operating systems :func:`advise` knows, by display name.

    Example:
        >>> "Ubuntu" in known_guest_oses()
        True
    """
    return tuple(info.name for info in GUESTS.values())


def _unknown(kind: str, name: str, choices: tuple[str, ...]) -> NotFoundError:
    return NotFoundError(
        f"unknown {kind} {name!r} (known: {', '.join(choices)})",
        name=name,
        choices=choices,
        operation="advise",
    )


def resolve_host_os(name: str) -> OSInfo:
    """Find a Hyper-V host release by any common spelling.

    Args:
        name: ``Windows Server 2019``, ``2019``, ``ws2019``, ``win10``,
            ``Microsoft Windows Server 2022 Datacenter``...

    Returns:
        The host's entry.

    Raises:
        NotFoundError: The name matches no known host release; the message
            and ``choices`` list the known ones.
        TypeError: ``name`` is not a str.

    Example:
        >>> resolve_host_os("Microsoft Windows Server 2022 Datacenter").key
        'windows-server-2022'
    """
    key = normalise(name)
    info = _HOST_INDEX.get(key)
    if info is None and (feature := _FEATURE_UPDATE.match(key)) is not None:
        info = _HOST_INDEX.get(feature.group(1))
    if info is None:
        raise _unknown("Hyper-V host OS", name, known_host_oses())
    return info


def resolve_guest_os(name: str) -> OSInfo:
    """Find a guest operating system by any common spelling.

    Windows guests by release (``Windows Server 2008 R2``, ``2008r2``,
    ``win7``, ``Windows 7 SP1``, a KVP ``OSName``); Linux guests by
    distribution, with or without a version, a flavour or a code name
    (``Ubuntu 24.04``, ``Ubuntu Server 22.04``, ``Debian GNU/Linux 12
    (bookworm)``, ``Red Hat Enterprise Linux 9``, ``rhel9``). Any other
    name with ``Linux`` in it (``Rocky Linux 9``, ``AlmaLinux 9``) is the
    generic ``Linux (other distribution)``, whose daemon package is unknown.

    Args:
        name: The guest OS name.

    Returns:
        The guest's entry.

    Raises:
        NotFoundError: The name matches no known guest; the message and
            ``choices`` list the known ones.
        TypeError: ``name`` is not a str.

    Example:
        >>> resolve_guest_os("Ubuntu 24.04 LTS").key
        'ubuntu'
    """
    key = normalise(name)
    info = _GUEST_INDEX.get(key)
    if info is None and (feature := _FEATURE_UPDATE.match(key)) is not None:
        info = _GUEST_INDEX.get(feature.group(1))
    if info is not None:
        return info
    linux_key = _linux_key(name)
    for prefix, linux in _LINUX_PREFIXES:
        if linux_key.startswith(prefix) and _VERSION_TAIL.match(linux_key[len(prefix) :]):
            return linux
    if "linux" in linux_key:
        # A distribution the tables do not name (Rocky Linux, AlmaLinux):
        # its kernel carries the drivers, its daemon package is unknown.
        return _GENERIC_LINUX
    raise _unknown("guest OS", name, known_guest_oses())


_ROWS: dict[tuple[str, str], Row] = {(row.host, row.guest): row for row in ROWS}


def _linux(host: OSInfo, guest: OSInfo) -> Advice:
    distribution = LINUX_DISTRIBUTIONS[guest.key]
    in_table = host.key in ("windows-10", "windows-8.1", "windows-8") or host.key in (
        "windows-server-2012",
        "windows-server-2012-r2",
        "windows-server-2016",
        "windows-server-2019",
    )
    notes = [LINUX_MECHANISM_NOTE]
    if in_table:
        notes.append(LINUX_ROW_NOTE)
    notes.append(distribution.note)
    if in_table:
        notes.append(LINUX_FOOTNOTE)
    sources = [WS_HOWTO if in_table else WS_HOWTO_GENERAL, LINUX_GUESTS, *distribution.sources]
    if host.key in ("windows-10", "windows-8.1", "windows-8"):
        sources.insert(0, SEED_HOWTO)
    return Advice(
        host.name,
        guest.name,
        Mechanism.PACKAGE_MANAGER,
        False,
        tuple(notes),
        distribution.packages,
        tuple(sources),
        False,
    )


def advise(*, host_os: str, guest_os: str) -> Advice:
    """How to keep a guest's integration services current on a host.

    Reads nothing from any host: the answer comes from the vendor's tables
    (see :mod:`hvintegration.maintenance_data` for every row and its source).

    Args:
        host_os: The Hyper-V host's release, in any common spelling.
        guest_os: The guest's operating system, in any common spelling,
            including the ``OSName`` the guest reports through KVP.

    Returns:
        The :class:`Advice`. A combination no vendor document covers
        (Windows 10 on a Windows 8 host, say) gets ``Mechanism.UNKNOWN``
        and a note that says so.

    Raises:
        NotFoundError: ``host_os`` or ``guest_os`` is not a known name; the
            message lists the known ones.
        TypeError: ``host_os`` or ``guest_os`` is not a str.

    Example:
        >>> a = advise(host_os="Windows 10", guest_os="Windows Server 2012")
        >>> a.mechanism.value, a.data_exchange, a.seed
        ('Windows Update', True, True)
        >>> advise(host_os="Windows Server 2022", guest_os="Ubuntu 24.04").packages
        ('linux-tools-virtual', 'linux-cloud-tools-virtual')
    """
    host = resolve_host_os(host_os)
    guest = resolve_guest_os(guest_os)
    if guest.family == "linux":
        return _linux(host, guest)
    row = _ROWS.get((host.key, guest.key))
    if row is None:
        return Advice(
            host.name,
            guest.name,
            Mechanism.UNKNOWN,
            False,
            (
                f"No vendor table or supported-guests list we cite has {guest.name} "
                f"on a {host.name} host.",
            ),
            (),
            (),
            False,
        )
    return Advice(
        host.name,
        guest.name,
        row.mechanism,
        row.data_exchange,
        row.notes,
        (),
        row.sources,
        row.seed,
    )
