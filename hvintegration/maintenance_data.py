"""The data behind :func:`hvintegration.maintenance.advise`: which update
mechanism keeps a guest's integration services current on a given host.

Three kinds of rows live here, each with the sources it rests on:

* the vendor how-to's three tables, for Windows 10, Windows 8.1 and Windows 8
  hosts, translated row by row with their footnotes (``seed=True``);
* the tables of the later Windows Server edition of that how-to, for Windows
  Server 2012, 2012 R2, 2016 and 2019 hosts (and the guests it adds to the
  Windows 10 host);
* hosts no vendor table covers (Windows 11, Windows Server 2022 and 2025),
  built from the list of supported guests and the how-to's general sentence;
  where neither says how, the mechanism is ``unknown``.

Linux guests get their integration services from the kernel; the distribution's
daemon package (KVP, VSS, file copy) is listed per distribution with its source.

Nothing here is generated at import time from anything but the literal tables
below, and nothing does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from types import MappingProxyType

import attrs

from hvintegration._table import JsonRecord

__all__ = [
    "GUESTS",
    "HOSTS",
    "LINUX_DISTRIBUTIONS",
    "ROWS",
    "LinuxDistribution",
    "Mechanism",
    "OSInfo",
    "Row",
    "Source",
]


class Mechanism(enum.Enum):
    """How a guest's integration services are brought up to date."""

    WINDOWS_UPDATE = "Windows Update"
    INTEGRATION_SERVICES_DISK = "Integration Services disk"
    PACKAGE_MANAGER = "package manager"
    UNKNOWN = "unknown"


@attrs.frozen
class Source(JsonRecord):
    """A document a row rests on.

    Attributes:
        title: The document's title.
        url: Where to read it.
        detail: Which part of it (a table, a note, a revision).
    """

    title: str
    url: str
    detail: str = ""

    def __str__(self) -> str:
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.title}{tail} <{self.url}>"


@attrs.frozen
class OSInfo:
    """An operating system the advice knows.

    Attributes:
        key: Stable identifier (``windows-server-2012-r2``).
        name: Display name, as the vendor's tables spell it.
        family: ``windows`` or ``linux``.
        aliases: Other spellings, matched after normalisation (see
            :func:`hvintegration.maintenance.normalise`).
    """

    key: str
    name: str
    family: str
    aliases: tuple[str, ...] = ()


@attrs.frozen
class LinuxDistribution:
    """Where a Linux distribution's Hyper-V daemons come from.

    Attributes:
        packages: Packages that install ``hv_kvp_daemon``, ``hv_vss_daemon``
            and ``hv_fcopy_daemon``; empty when no source we cite names one.
        note: What the sources say, in a sentence or two.
        sources: The documents the packages and note come from.
    """

    packages: tuple[str, ...]
    note: str
    sources: tuple[Source, ...]


@attrs.frozen
class Row:
    """One (host, guest) answer.

    Attributes:
        host: Host key.
        guest: Guest key.
        mechanism: The update mechanism.
        data_exchange: Whether the guest needs the Data Exchange (Key-Value
            Pair Exchange) integration service to be offered updates.
        notes: The row's notes, footnotes included.
        sources: Documents the row rests on.
        seed: Whether the row is one of the how-to's three tables.
    """

    host: str
    guest: str
    mechanism: Mechanism
    data_exchange: bool
    notes: tuple[str, ...]
    sources: tuple[Source, ...]
    seed: bool = False


# -- Sources ----------------------------------------------------------------

SEED_HOWTO = Source(
    "Managing Hyper-V Integration Services (Traditional Chinese edition)",
    "https://learn.microsoft.com/virtualization/hyper-v-on-windows/user-guide/managing-integration-services",
    "section 'Integration service maintenance' and its three tables; English source "
    "MicrosoftDocs/Virtualization-Documentation "
    "virtualization/hyper-v-on-windows/user-guide/managing-integration-services.md",
)
WS_HOWTO = Source(
    "Manage Hyper-V Integration Services (Windows Server)",
    "https://learn.microsoft.com/windows-server/virtualization/hyper-v/manage/manage-hyper-v-integration-services",
    "section 'Keep integration services up to date', tables for Windows 10/Windows Server "
    "2016/2019, Windows 8.1/Windows Server 2012R2 and Windows 8/Windows Server 2012 hosts; "
    "MicrosoftDocs/windowsserverdocs revision 047dddc6",
)
WS_HOWTO_GENERAL = attrs.evolve(
    WS_HOWTO,
    detail="section 'Keep integration services up to date': 'This happens for most Windows "
    "guests by default if they are set up to get important updates from Windows Update. "
    "Linux guests using current kernels will receive the latest integration components "
    "when you update the kernel.'",
)
WS_GUESTS = Source(
    "Supported Windows guest operating systems for Hyper-V on Windows, Windows Server, "
    "and Azure Local",
    "https://learn.microsoft.com/windows-server/virtualization/hyper-v/supported-windows-guest-operating-systems-for-hyper-v-on-windows",
    "column 'Integration Services'; revision of 03/04/2025",
)
KB3071740 = Source(
    "Microsoft Support KB3071740: integration components as a cabinet (cab) file",
    "https://support.microsoft.com/kb/3071740",
    "the offline package for guests whose Data Exchange service cannot be enabled",
)
CAB_BLOG = Source(
    "Integration components available for virtual machines not connected to Windows Update",
    "https://techcommunity.microsoft.com/t5/virtualization/integration-components-available-for-virtual-machines-not/ba-p/382247",
    "Hyper-V team blog, 24 July 2015: how to apply the cab",
)
IS_DISK_STEPS = Source(
    "Install or update integration services (Integration Services disk)",
    "https://technet.microsoft.com/en-us/library/hh846766.aspx#BKMK_step4",
)
LINUX_GUESTS = Source(
    "Supported Linux and FreeBSD virtual machines for Hyper-V on Windows",
    "https://learn.microsoft.com/windows-server/virtualization/hyper-v/supported-linux-and-freebsd-virtual-machines-for-hyper-v-on-windows",
    "formerly technet dn531030",
)
UBUNTU_DOC = Source(
    "Supported Ubuntu virtual machines on Hyper-V",
    "https://learn.microsoft.com/windows-server/virtualization/hyper-v/supported-ubuntu-virtual-machines-on-hyper-v",
    "'install the appropriate linux-tools and linux-cloud-tools packages to install tools "
    "and daemons'; note 5: linux-azure",
)
DEBIAN_DOC = Source(
    "Supported Debian virtual machines on Hyper-V",
    "https://learn.microsoft.com/windows-server/virtualization/hyper-v/supported-debian-virtual-machines-on-hyper-v",
    "note 2: the hyperv-daemons package holds the KVP, fcopy and VSS daemons",
)
RHEL_DOC = Source(
    "Supported CentOS and Red Hat Enterprise Linux virtual machines on Hyper-V",
    "https://learn.microsoft.com/windows-server/virtualization/hyper-v/supported-centos-and-red-hat-enterprise-linux-virtual-machines-on-hyper-v",
    "built-in drivers since RHEL 6.4; LIS download packages for older releases",
)
SHIELDED_TEMPLATE_DOC = Source(
    "Create a Linux shielded VM template disk",
    "https://learn.microsoft.com/windows-server/security/guarded-fabric-shielded-vm/guarded-fabric-create-a-linux-shielded-vm-template",
    "Ubuntu: linux-tools-virtual linux-cloud-tools-virtual; RHEL: hyperv-daemons; SLES: hyper-v",
)
FEDORA_SPEC = Source(
    "Fedora package hyperv-daemons (hyperv-daemons.spec)",
    "https://src.fedoraproject.org/rpms/hyperv-daemons",
    "subpackages hypervkvpd, hypervvssd, hypervfcopyd; hyperv-tools holds tools and scripts, "
    "not the daemons",
)
DEBIAN_PACKAGE = Source(
    "Debian package hyperv-daemons (built from the linux source package)",
    "https://packages.debian.org/hyperv-daemons",
)

# -- Operating systems --------------------------------------------------------


def _os(key: str, name: str, *aliases: str, family: str = "windows") -> OSInfo:
    return OSInfo(key, name, family, aliases)


HOSTS = MappingProxyType(
    {
        info.key: info
        for info in (
            _os("windows-8", "Windows 8", "win8", "w8"),
            _os("windows-8.1", "Windows 8.1", "win8.1", "win81", "w81"),
            _os("windows-10", "Windows 10", "win10", "w10"),
            _os("windows-11", "Windows 11", "win11", "w11"),
            _os(
                "windows-server-2012",
                "Windows Server 2012",
                "2012",
                "ws2012",
                "win2012",
                "w2k12",
                "Hyper-V Server 2012",
            ),
            _os(
                "windows-server-2012-r2",
                "Windows Server 2012 R2",
                "2012r2",
                "ws2012r2",
                "win2012r2",
                "w2k12r2",
                "Hyper-V Server 2012 R2",
            ),
            _os(
                "windows-server-2016",
                "Windows Server 2016",
                "2016",
                "ws2016",
                "win2016",
                "w2k16",
                "Hyper-V Server 2016",
            ),
            _os(
                "windows-server-2019",
                "Windows Server 2019",
                "2019",
                "ws2019",
                "win2019",
                "w2k19",
                "Hyper-V Server 2019",
            ),
            _os("windows-server-2022", "Windows Server 2022", "2022", "ws2022", "win2022"),
            _os("windows-server-2025", "Windows Server 2025", "2025", "ws2025", "win2025"),
        )
    }
)
"""Every Hyper-V host release the advice knows, by key."""

_WINDOWS_GUESTS = (
    _os("windows-xp", "Windows XP (SP 2, SP 3)", "Windows XP", "winxp", "xp"),
    _os("windows-vista", "Windows Vista (SP 2)", "Windows Vista", "vista"),
    _os("windows-7", "Windows 7", "win7", "w7"),
    _os("windows-8", "Windows 8", "win8", "w8"),
    _os("windows-8.1", "Windows 8.1", "win8.1", "win81", "w81"),
    _os("windows-10", "Windows 10", "win10", "w10"),
    _os("windows-11", "Windows 11", "win11", "w11"),
    _os(
        "windows-server-2003",
        "Windows Server 2003 (SP 2)",
        "Windows Server 2003",
        "2003",
        "ws2003",
        "win2003",
        "w2k3",
    ),
    _os(
        "windows-server-2003-r2",
        "Windows Server 2003 R2 (SP 2)",
        "Windows Server 2003 R2",
        "2003r2",
        "ws2003r2",
        "win2003r2",
        "w2k3r2",
    ),
    _os(
        "windows-server-2008",
        "Windows Server 2008 (SP 2)",
        "Windows Server 2008",
        "2008",
        "ws2008",
        "win2008",
        "w2k8",
    ),
    _os(
        "windows-server-2008-r2",
        "Windows Server 2008 R2",
        "2008r2",
        "ws2008r2",
        "win2008r2",
        "w2k8r2",
    ),
    _os("windows-server-2012", "Windows Server 2012", "2012", "ws2012", "win2012", "w2k12"),
    _os(
        "windows-server-2012-r2",
        "Windows Server 2012 R2",
        "2012r2",
        "ws2012r2",
        "win2012r2",
        "w2k12r2",
    ),
    _os("windows-server-2016", "Windows Server 2016", "2016", "ws2016", "win2016", "w2k16"),
    _os("windows-server-2019", "Windows Server 2019", "2019", "ws2019", "win2019", "w2k19"),
    _os("windows-server-2022", "Windows Server 2022", "2022", "ws2022", "win2022"),
    _os("windows-server-2025", "Windows Server 2025", "2025", "ws2025", "win2025"),
    _os(
        "windows-server-sac",
        "Windows Server Semi-Annual Channel",
        "Windows Server, Semi-Annual Channel",
        "Windows Server SAC",
    ),
    _os("windows-home-server-2011", "Windows Home Server 2011", "whs2011"),
    _os(
        "windows-sbs-2011",
        "Windows Small Business Server 2011",
        "Windows SBS 2011",
        "sbs2011",
    ),
)

# Linux guests are named by distribution; a version after the name is accepted
# and does not change the answer (the kernel carries the drivers on every
# release the vendor pages list as "Built in").
_LINUX_GUESTS = (
    _os("ubuntu", "Ubuntu", family="linux"),
    _os("debian", "Debian", "Debian GNU/Linux", family="linux"),
    _os(
        "rhel",
        "Red Hat Enterprise Linux",
        "RHEL",
        "Red Hat Enterprise Linux Server",
        "Red Hat",
        family="linux",
    ),
    _os("centos", "CentOS", "CentOS Linux", "CentOS Stream", family="linux"),
    _os("fedora", "Fedora", "Fedora Linux", family="linux"),
    _os(
        "sles",
        "SUSE Linux Enterprise Server",
        "SLES",
        "SUSE Linux Enterprise",
        "SUSE",
        family="linux",
    ),
    _os("opensuse", "openSUSE", "openSUSE Leap", "openSUSE Tumbleweed", family="linux"),
    _os("oracle-linux", "Oracle Linux", "Oracle Linux Server", family="linux"),
    _os("linux", "Linux (other distribution)", "Linux", "GNU/Linux", family="linux"),
)

GUESTS = MappingProxyType({info.key: info for info in (*_WINDOWS_GUESTS, *_LINUX_GUESTS)})
"""Every guest operating system the advice knows, by key."""

# -- Notes ------------------------------------------------------------------

# The how-to's notes, translated from the Traditional Chinese tables.
DATA_EXCHANGE_NOTE = "Requires the Data Exchange integration service.*"
CAB_FOOTNOTE = (
    "* If the Data Exchange integration service cannot be enabled, the integration "
    "components for these guests are available from the Download Center as a cabinet "
    "(cab) file (KB3071740): https://support.microsoft.com/en-us/kb/3071740 . Instructions "
    "for applying the cab: http://blogs.technet.com/b/virtualization/archive/2015/07/24/"
    "integration-components-available-for-virtual-machines-not-connected-to-windows-update.aspx"
)
DISK_INSTRUCTIONS = (
    "Instructions for updating Windows 8 and Windows 8.1 through the Integration Services "
    "disk: https://technet.microsoft.com/en-us/library/hh846766.aspx#BKMK_step4"
)
LINUX_FOOTNOTE = (
    "** More information about Linux guests: "
    "https://technet.microsoft.com/en-us/library/dn531030.aspx"
)
LINUX_ROW_NOTE = (
    "Integration services for Linux are built into the distro but there may be optional "
    "updates available. **"
)
NO_ISO_NOTE = (
    "The image file vmguest.iso isn't included with Hyper-V on this host because it's no "
    "longer needed."
)


def _later_revision(text: str) -> str:
    return f"The Windows Server edition of the how-to (revision 047dddc6) differs here: {text}"


# -- The how-to's three tables (seed=True) ---------------------------------------

_SEED_SOURCES = (SEED_HOWTO,)
_SEED_DE_SOURCES = (SEED_HOWTO, KB3071740, CAB_BLOG)
_SEED_DISK_SOURCES = (SEED_HOWTO, IS_DISK_STEPS)

WU = Mechanism.WINDOWS_UPDATE
DISK = Mechanism.INTEGRATION_SERVICES_DISK


def _seed_wu(host: str, guest: str, *, de: bool = False, extra: Iterable[str] = ()) -> Row:
    notes = (DATA_EXCHANGE_NOTE, CAB_FOOTNOTE) if de else ()
    sources = _SEED_DE_SOURCES if de else _SEED_SOURCES
    extra = tuple(extra)
    if extra:
        sources = (*sources, WS_HOWTO)
    return Row(host, guest, WU, de, (*notes, *extra), sources, seed=True)


def _seed_disk(host: str, guest: str) -> Row:
    return Row(host, guest, DISK, False, (DISK_INSTRUCTIONS,), _SEED_DISK_SOURCES, seed=True)


_WINDOWS_10_HOST = (
    _seed_wu("windows-10", "windows-10"),
    _seed_wu("windows-10", "windows-8.1"),
    _seed_wu("windows-10", "windows-8", de=True),
    _seed_wu("windows-10", "windows-7", de=True),
    _seed_wu("windows-10", "windows-vista", de=True),
    _seed_wu("windows-10", "windows-server-2012-r2"),
    _seed_wu("windows-10", "windows-server-2012", de=True),
    _seed_wu("windows-10", "windows-server-2008-r2", de=True),
    _seed_wu(
        "windows-10",
        "windows-server-2008",
        de=True,
        extra=[
            _later_revision(
                "no Data Exchange note; 'Extended support only in Windows Server 2016'."
            )
        ],
    ),
    _seed_wu(
        "windows-10",
        "windows-home-server-2011",
        de=True,
        extra=[
            _later_revision(
                "no Data Exchange note; 'Will not be supported in Windows Server 2016'."
            )
        ],
    ),
    _seed_wu(
        "windows-10",
        "windows-sbs-2011",
        de=True,
        extra=[_later_revision("no Data Exchange note; 'Not under mainstream support'.")],
    ),
)

_DISK_LATER = _later_revision(
    "its table for Windows 8.1/Windows Server 2012R2 hosts (and for Windows 8/Windows "
    "Server 2012 hosts) gives the Integration Services disk for this guest."
)

_WINDOWS_8_1_HOST = (
    _seed_wu("windows-8.1", "windows-10"),
    _seed_wu("windows-8.1", "windows-8.1", extra=[_DISK_LATER]),
    _seed_disk("windows-8.1", "windows-8"),
    _seed_disk("windows-8.1", "windows-7"),
    _seed_disk("windows-8.1", "windows-vista"),
    _seed_disk("windows-8.1", "windows-xp"),
    _seed_wu("windows-8.1", "windows-server-2012-r2", extra=[_DISK_LATER]),
    _seed_disk("windows-8.1", "windows-server-2012"),
    _seed_disk("windows-8.1", "windows-server-2008-r2"),
    _seed_disk("windows-8.1", "windows-server-2008"),
    _seed_disk("windows-8.1", "windows-home-server-2011"),
    _seed_disk("windows-8.1", "windows-sbs-2011"),
    _seed_disk("windows-8.1", "windows-server-2003-r2"),
    _seed_disk("windows-8.1", "windows-server-2003"),
)

_WINDOWS_8_HOST = (
    _seed_wu("windows-8", "windows-8.1", extra=[_DISK_LATER]),
    _seed_disk("windows-8", "windows-8"),
    _seed_disk("windows-8", "windows-7"),
    _seed_disk("windows-8", "windows-vista"),
    _seed_disk("windows-8", "windows-xp"),
    _seed_wu("windows-8", "windows-server-2012-r2", extra=[_DISK_LATER]),
    _seed_disk("windows-8", "windows-server-2012"),
    _seed_disk("windows-8", "windows-server-2008-r2"),
    _seed_disk("windows-8", "windows-server-2008"),
    _seed_disk("windows-8", "windows-home-server-2011"),
    _seed_disk("windows-8", "windows-sbs-2011"),
    _seed_disk("windows-8", "windows-server-2003-r2"),
    _seed_disk("windows-8", "windows-server-2003"),
)

SEED_ROWS = (*_WINDOWS_10_HOST, *_WINDOWS_8_1_HOST, *_WINDOWS_8_HOST)
"""The how-to's three tables, row by row, in the order it prints them."""

# -- The Windows Server edition's tables ---------------------------------------

_WS_DE_NOTE = "Requires the Data Exchange integration service.*"
_WS_CAB_FOOTNOTE = (
    "* If the Data Exchange integration service can't be enabled, the integration services "
    "for these guests are available from the Download Center (KB3071740) as a cabinet (cab) "
    "file; instructions for applying a cab are in the Hyper-V team blog post of 24 July 2015."
)
_WS_DISK_NOTE = (
    "For hosts earlier than Windows Server 2016 and Windows 10, manually install or update "
    "the integration services: Virtual Machine Connection, Action, Insert Integration "
    "Services Setup Disk."
)


def _ws_wu(host: str, guest: str, *, de: bool = False, note: str = "") -> Row:
    notes: tuple[str, ...] = (_WS_DE_NOTE, _WS_CAB_FOOTNOTE) if de else ()
    if note:
        notes += (note,)
    if host in ("windows-server-2016", "windows-server-2019", "windows-10"):
        notes += (NO_ISO_NOTE,)
    sources = (WS_HOWTO, KB3071740, CAB_BLOG) if de else (WS_HOWTO,)
    return Row(host, guest, WU, de, notes, sources)


def _ws_disk(host: str, guest: str) -> Row:
    return Row(host, guest, DISK, False, (_WS_DISK_NOTE,), (WS_HOWTO,))


def _ws_2016_table(host: str) -> tuple[Row, ...]:
    return (
        _ws_wu(host, "windows-10"),
        _ws_wu(host, "windows-8.1"),
        _ws_wu(host, "windows-8", de=True),
        _ws_wu(host, "windows-7", de=True),
        _ws_wu(host, "windows-vista", de=True),
        _ws_wu(host, "windows-server-2016"),
        _ws_wu(host, "windows-server-sac"),
        _ws_wu(host, "windows-server-2012-r2"),
        _ws_wu(host, "windows-server-2012", de=True),
        _ws_wu(
            host, "windows-server-2008-r2", de=True, note="Listed as Windows Server 2008 R2 (SP 1)."
        ),
        _ws_wu(host, "windows-server-2008", note="Extended support only in Windows Server 2016."),
        _ws_wu(
            host, "windows-home-server-2011", note="Will not be supported in Windows Server 2016."
        ),
        _ws_wu(host, "windows-sbs-2011", note="Not under mainstream support."),
    )


_WS_2012_R2_HOST = (
    _ws_wu("windows-server-2012-r2", "windows-10"),
    _ws_disk("windows-server-2012-r2", "windows-8.1"),
    _ws_disk("windows-server-2012-r2", "windows-8"),
    _ws_disk("windows-server-2012-r2", "windows-7"),
    _ws_disk("windows-server-2012-r2", "windows-vista"),
    _ws_disk("windows-server-2012-r2", "windows-xp"),
    _ws_wu("windows-server-2012-r2", "windows-server-2016"),
    _ws_wu("windows-server-2012-r2", "windows-server-sac"),
    _ws_disk("windows-server-2012-r2", "windows-server-2012-r2"),
    _ws_disk("windows-server-2012-r2", "windows-server-2012"),
    _ws_disk("windows-server-2012-r2", "windows-server-2008-r2"),
    _ws_disk("windows-server-2012-r2", "windows-server-2008"),
    _ws_disk("windows-server-2012-r2", "windows-home-server-2011"),
    _ws_disk("windows-server-2012-r2", "windows-sbs-2011"),
    _ws_disk("windows-server-2012-r2", "windows-server-2003-r2"),
    _ws_disk("windows-server-2012-r2", "windows-server-2003"),
)

_WS_2012_HOST = tuple(
    _ws_disk("windows-server-2012", guest)
    for guest in (
        "windows-8.1",
        "windows-8",
        "windows-7",
        "windows-vista",
        "windows-xp",
        "windows-server-2012-r2",
        "windows-server-2012",
        "windows-server-2008-r2",
        "windows-server-2008",
        "windows-home-server-2011",
        "windows-sbs-2011",
        "windows-server-2003-r2",
        "windows-server-2003",
    )
)

# The Windows Server edition adds these guests to the Windows 10 host's table;
# the how-to's own table (above) has no row for them.
_WINDOWS_10_HOST_ADDED = (
    _ws_wu("windows-10", "windows-server-2016"),
    _ws_wu("windows-10", "windows-server-sac"),
)
_WINDOWS_8_1_HOST_ADDED = (
    Row(
        "windows-8.1",
        "windows-server-2016",
        WU,
        False,
        ("Row from the table for Windows 8.1/Windows Server 2012R2 hosts.",),
        (WS_HOWTO,),
    ),
    Row(
        "windows-8.1",
        "windows-server-sac",
        WU,
        False,
        ("Row from the table for Windows 8.1/Windows Server 2012R2 hosts.",),
        (WS_HOWTO,),
    ),
)

# -- Hosts without a vendor table ----------------------------------------------

_NO_TABLE = (
    "No vendor table covers this host. The guest's integration services are built in "
    "(supported-guests list), and the how-to says they are kept current for most Windows "
    "guests set up to get important updates from Windows Update."
)
_BUILT_IN = (
    "windows-11",
    "windows-10",
    "windows-8.1",
    "windows-server-2025",
    "windows-server-2022",
    "windows-server-2019",
    "windows-server-2016",
    "windows-server-2012-r2",
    "windows-server-2012",
)
# Host requirements the supported-guests list states in its Notes column.
_HOSTED_ON = {
    "windows-server-2025": (
        "Hosted on Windows Server 2022 and later.",
        {"windows-server-2022", "windows-server-2025"},
    ),
    "windows-server-2022": (
        "Hosted on Windows Server 2019 and later.",
        {"windows-server-2019", "windows-server-2022", "windows-server-2025"},
    ),
    "windows-11": (
        "Generation 2 virtual machine hosted on Windows Server 2019 or above.",
        {"windows-server-2019", "windows-server-2022", "windows-server-2025"},
    ),
}


def _modern_host(host: str) -> tuple[Row, ...]:
    rows = []
    for guest in _BUILT_IN:
        requirement = _HOSTED_ON.get(guest)
        if (
            requirement is not None
            and host.startswith("windows-server")
            and (host not in requirement[1])
        ):
            rows.append(
                Row(
                    host,
                    guest,
                    Mechanism.UNKNOWN,
                    False,
                    (f"Not a supported combination: {requirement[0]}",),
                    (WS_GUESTS,),
                )
            )
            continue
        notes: tuple[str, ...] = (_NO_TABLE,)
        if requirement is not None:
            notes += (requirement[0],)
        rows.append(Row(host, guest, WU, False, notes, (WS_GUESTS, WS_HOWTO_GENERAL)))
    critical = (
        "The supported-guests list says: 'Install all critical Windows updates after you set "
        "up the guest operating system.' Whether Windows Update needs the Data Exchange "
        "service on this host, no vendor page says."
    )
    rows.append(Row(host, "windows-server-2008-r2", WU, False, (critical,), (WS_GUESTS,)))
    rows.append(Row(host, "windows-server-2008", WU, False, (critical,), (WS_GUESTS,)))
    rows.append(
        Row(
            host,
            "windows-7",
            Mechanism.UNKNOWN,
            False,
            (
                "The supported-guests list says: 'Upgrade the integration services after you "
                "set up the guest operating system.' It does not say how on this host.",
            ),
            (WS_GUESTS,),
        )
    )
    return tuple(rows)


# Windows Server 2016 and 2019 hosts have a vendor table; the list of
# supported guests adds the guests released after that table.
def _after_table(host: str) -> tuple[Row, ...]:
    return tuple(
        row
        for row in _modern_host(host)
        if row.guest
        in ("windows-11", "windows-server-2019", "windows-server-2022", "windows-server-2025")
    )


ROWS: tuple[Row, ...] = (
    *SEED_ROWS,
    *_WINDOWS_10_HOST_ADDED,
    *_WINDOWS_8_1_HOST_ADDED,
    *_WS_2012_R2_HOST,
    *_WS_2012_HOST,
    *_ws_2016_table("windows-server-2016"),
    *_after_table("windows-server-2016"),
    *_ws_2016_table("windows-server-2019"),
    *_after_table("windows-server-2019"),
    *_modern_host("windows-11"),
    *_modern_host("windows-server-2022"),
    *_modern_host("windows-server-2025"),
)
"""Every Windows (host, guest) row; Linux guests are answered per distribution."""

# -- Linux guests -----------------------------------------------------------

LINUX_MECHANISM_NOTE = (
    "Linux integration services are provided by the kernel (Linux Integration Services "
    "built in): updating the kernel through the distribution's package manager updates "
    "them. The user-space daemons (hv_kvp_daemon, hv_vss_daemon, hv_fcopy_daemon) come "
    "from the distribution's package."
)

LINUX_DISTRIBUTIONS = MappingProxyType(
    {
        "ubuntu": LinuxDistribution(
            ("linux-tools-virtual", "linux-cloud-tools-virtual"),
            "Install the linux-tools and linux-cloud-tools packages of the running kernel "
            "flavour (linux-tools-<flavour>, linux-cloud-tools-<flavour>; with the "
            "linux-virtual kernel: linux-tools-virtual and linux-cloud-tools-virtual). On "
            "LTS releases use the latest virtual HWE kernel, or linux-azure, for up-to-date "
            "Linux Integration Services.",
            (UBUNTU_DOC, SHIELDED_TEMPLATE_DOC),
        ),
        "debian": LinuxDistribution(
            ("hyperv-daemons",),
            "Starting with Debian 8.3 the hyperv-daemons package holds the KVP, fcopy and "
            "VSS daemons; on Debian 7.x and 8.0-8.2 it comes from Debian backports.",
            (DEBIAN_DOC, DEBIAN_PACKAGE),
        ),
        "rhel": LinuxDistribution(
            ("hyperv-daemons",),
            "The built-in drivers (since RHEL 6.4) are certified by Red Hat; the daemons come "
            "from hyperv-daemons. Older releases could use Microsoft's LIS download package "
            "instead; see the vendor page before mixing the two.",
            (RHEL_DOC, SHIELDED_TEMPLATE_DOC),
        ),
        "centos": LinuxDistribution(
            ("hyperv-daemons",),
            "As for Red Hat Enterprise Linux (one vendor page covers both).",
            (RHEL_DOC,),
        ),
        "fedora": LinuxDistribution(
            ("hyperv-daemons",),
            "hyperv-daemons pulls in hypervkvpd, hypervvssd and hypervfcopyd; the separate "
            "hyperv-tools package holds tools and scripts, not the daemons.",
            (FEDORA_SPEC,),
        ),
        "sles": LinuxDistribution(
            ("hyper-v",),
            "SLES installs the daemons with the hyper-v package.",
            (SHIELDED_TEMPLATE_DOC,),
        ),
        "opensuse": LinuxDistribution(
            (),
            "No source we cite names openSUSE's package (SLES uses hyper-v): unknown.",
            (),
        ),
        "oracle-linux": LinuxDistribution(
            (),
            "The vendor page lists Oracle Linux's built-in drivers but not its daemon "
            "package: unknown.",
            (),
        ),
        "linux": LinuxDistribution(
            (),
            "The daemon package depends on the distribution: unknown.",
            (),
        ),
    }
)
"""Each Linux guest key's daemon packages, with sources."""
