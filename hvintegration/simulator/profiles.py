"""Host and guest operating systems the simulator can play, and host locales.

Each profile records one documented fact about which integration services a
host offers or a guest runs; the comments say where the fact comes from.
"""

from __future__ import annotations

import uuid
from types import MappingProxyType

import attrs

from hvintegration import catalogue

__all__ = [
    "GUEST_OSES",
    "HOST_OSES",
    "LOCALES",
    "GuestOS",
    "HostOS",
]

_ALL_HOST = frozenset(
    spec.component_id for spec in catalogue.HOST_SERVICES if spec.component_id is not None
)
_NO_GSI = _ALL_HOST - {catalogue.GUEST_SERVICE_INTERFACE.component_id}
_KERNEL_ONLY = frozenset(
    spec.component_id
    for spec in (catalogue.HEARTBEAT, catalogue.SHUTDOWN, catalogue.TIME_SYNCHRONIZATION)
    if spec.component_id is not None
)


@attrs.frozen
class HostOS:
    """A Hyper-V host release.

    Attributes:
        key: Short identifier used in ``sim://?os=KEY``.
        name: The product name.
        services: Component ids of the integration services it offers.
        powershell_direct: Whether it can run PowerShell in a guest over the
            VMBus (``Invoke-Command -VMName``/``-VMId``).
        integration_services_version: The host's own integration services
            version (:meth:`~hvintegration.HyperVHost.integration_services_version`).
        guest_installer: Whether it ships the integration services disk,
            whose version that is (Windows Server 2012 R2 and older); newer
            hosts report their Windows version.
    """

    key: str
    name: str
    services: frozenset[uuid.UUID] = attrs.field(repr=False)
    powershell_direct: bool = True
    integration_services_version: str = ""
    guest_installer: bool = False


@attrs.frozen
class GuestOS:
    """A guest operating system and the integration services it runs.

    Attributes:
        key: Short identifier.
        name: The product name.
        family: ``windows``, ``linux`` or ``other``.
        services: Component ids of the services the guest answers on.
        integration_services_version: What ``Get-VM`` reports for it.
        outdated: Whether its integration components are older than the
            host's, which the host reports as a protocol mismatch.
        windows_services: The ``vmic*`` services installed in a Windows
            guest; empty for other families.
        intrinsic: The KVP intrinsic items its integration components
            report (``OSName``, ``OSVersion``...), with the names
            ``Msvm_KvpExchangeDataItem`` documents
            (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangedataitem).
    """

    key: str
    name: str
    family: str
    services: frozenset[uuid.UUID] = attrs.field(repr=False)
    integration_services_version: str = ""
    outdated: bool = False
    windows_services: tuple[str, ...] = attrs.field(default=(), repr=False)
    intrinsic: MappingProxyType[str, str] = attrs.field(
        factory=lambda: MappingProxyType({}), repr=False
    )


# Guest Service Interface (Copy-VMFile) arrived with Windows Server 2012 R2
# and Windows 8.1 ("What's new in Hyper-V in Windows Server 2012 R2"); the
# Hyper-V PowerShell module itself arrived with Windows Server 2012, so no
# older host is modelled. PowerShell Direct needs a Windows 10 or Windows
# Server 2016 host and guest ("Manage Windows virtual machines with
# PowerShell Direct").
HOST_OSES = MappingProxyType(
    {
        host.key: host
        for host in (
            # The disk's version: the build's integration components
            # (6.2.9200.16433 on 2012, 6.3.9600.16384 on 2012 R2).
            HostOS(
                "windows-server-2012", "Windows Server 2012", _NO_GSI, False, "6.2.9200.16433", True
            ),
            HostOS("windows-8", "Windows 8", _NO_GSI, False, "6.2.9200.16433", True),
            HostOS(
                "windows-server-2012-r2",
                "Windows Server 2012 R2",
                _ALL_HOST,
                False,
                "6.3.9600.16384",
                True,
            ),
            HostOS("windows-8.1", "Windows 8.1", _ALL_HOST, False, "6.3.9600.16384", True),
            HostOS("windows-10", "Windows 10", _ALL_HOST, True, "10.0.19045"),
            HostOS("windows-server-2016", "Windows Server 2016", _ALL_HOST, True, "10.0.14393"),
            HostOS("windows-server-2019", "Windows Server 2019", _ALL_HOST, True, "10.0.17763"),
            HostOS("windows-11", "Windows 11", _ALL_HOST, True, "10.0.22631"),
            HostOS("windows-server-2022", "Windows Server 2022", _ALL_HOST, True, "10.0.20348"),
            HostOS("windows-server-2025", "Windows Server 2025", _ALL_HOST, True, "10.0.26100"),
        )
    }
)
"""Every simulated host release by key."""


def _windows(
    key: str,
    name: str,
    version: str,
    *,
    gsi: bool,
    direct: bool,
    outdated: bool = False,
    edition: str = "Datacenter",
    service_pack: str = "",
) -> GuestOS:
    # vmicguestinterface came with 8.1 / 2012 R2 and vmicvmsession (PowerShell
    # Direct) with Windows 10 / 2016; the other six exist on every guest the
    # simulator models. The seed lists all eight on a current guest.
    names = [
        spec.windows_service
        for spec in catalogue.ALL_SERVICES
        if (gsi or spec is not catalogue.GUEST_SERVICE_INTERFACE)
        and (direct or spec is not catalogue.POWERSHELL_DIRECT)
    ]
    major, minor, build = version.split(".")[:3]
    # The intrinsic items a Windows guest reports: ProductType 1 is a
    # workstation, 3 a server; ProcessorArchitecture 9 is x64
    # (Msvm_KvpExchangeDataItem, "Name").
    intrinsic = {
        "OSName": f"{name} {edition}",
        "OSVersion": f"{major}.{minor}.{build}",
        "OSBuildNumber": build,
        "OSMajorVersion": major,
        "OSMinorVersion": minor,
        "CSDVersion": service_pack,
        "ProductType": "3" if "Server" in name else "1",
        "ProcessorArchitecture": "9",
        "NetworkAddressIPv6": "",
    }
    return GuestOS(
        key,
        name,
        "windows",
        _ALL_HOST if gsi else _NO_GSI,
        version,
        outdated,
        windows_services=tuple(names),
        intrinsic=MappingProxyType(intrinsic),
    )


def _linux(key: str, name: str, services: frozenset[uuid.UUID], release: str) -> GuestOS:
    # What hv_kvp_daemon answers (kvp_get_os_info in the kernel's
    # tools/hv/hv_kvp_daemon.c): NAME and VERSION_ID of /etc/os-release, the
    # kernel release (OSVersion up to its first "-"), and the fixed
    # lic_version "Unknown version".
    os_name, _, version_id = name.partition(" ")
    intrinsic = {
        "OSName": os_name,
        "OSMajorVersion": version_id.split(" ", 1)[0] if version_id[:1].isdigit() else "",
        "OSMinorVersion": "",
        "OSVersion": release.split("-", 1)[0],
        "OSBuildNumber": release,
        "ProcessorArchitecture": "x86_64",
        "IntegrationServicesVersion": "Unknown version",
        "NetworkAddressIPv6": "",
    }
    return GuestOS(key, name, "linux", services, intrinsic=MappingProxyType(intrinsic))


# Linux guests get heartbeat, shutdown and time sync from the hv_utils driver
# alone; KVP, VSS and file copy also need the user-space daemons (the seed
# document's Linux section).
GUEST_OSES = MappingProxyType(
    {
        guest.key: guest
        for guest in (
            _windows(
                "windows-server-2022", "Windows Server 2022", "10.0.20348", gsi=True, direct=True
            ),
            _windows(
                "windows-server-2019", "Windows Server 2019", "10.0.17763", gsi=True, direct=True
            ),
            _windows(
                "windows-11",
                "Windows 11",
                "10.0.22631",
                gsi=True,
                direct=True,
                edition="Enterprise",
            ),
            _windows(
                "windows-10",
                "Windows 10",
                "10.0.19045",
                gsi=True,
                direct=True,
                edition="Enterprise",
            ),
            _windows(
                "windows-server-2012-r2",
                "Windows Server 2012 R2",
                "6.3.9600.18080",
                gsi=True,
                direct=False,
            ),
            _windows(
                "windows-server-2012",
                "Windows Server 2012",
                "6.2.9200.16433",
                gsi=False,
                direct=False,
                outdated=True,
            ),
            _windows(
                "windows-7",
                "Windows 7",
                "6.1.7601.17514",
                gsi=False,
                direct=False,
                outdated=True,
                edition="Enterprise",
                service_pack="Service Pack 1",
            ),
            _linux(
                "ubuntu-22.04", "Ubuntu 22.04 with hyperv-daemons", _ALL_HOST, "5.15.0-91-generic"
            ),
            _linux(
                "linux-kernel-only",
                "Linux without the hv_* daemons",
                _KERNEL_ONLY,
                "6.8.0-31-generic",
            ),
            GuestOS(
                "no-integration-services",
                "A guest with no integration services",
                "other",
                frozenset(),
            ),
        )
    }
)
"""Every simulated guest operating system by key."""


def _names(*names: str) -> MappingProxyType[uuid.UUID, str]:
    return MappingProxyType(
        {
            spec.component_id: name
            for spec, name in zip(catalogue.HOST_SERVICES, names, strict=True)
            if spec.component_id is not None
        }
    )


# Get-VMIntegrationService reports Name in the host's display language while
# the Id suffix stays the same (the reason the catalogue keys on GUIDs): the
# name is the localised Caption of the service's Msvm_*ComponentSettingData
# class, which scripts read to learn a host's names ("Get an Array of
# Localized Hyper-V Integration Service Names",
# https://gist.github.com/PlagueHO/2281e18279d78aceb7db283681ebd95b).
# Sources of the names below:
# - zh-TW 客體服務介面: the vendor's Traditional Chinese how-to (the seed,
#   https://learn.microsoft.com/zh-tw/virtualization/hyper-v-on-windows/user-guide/managing-integration-services);
#   索引鍵/值組 for key-value pairs: the vendor's zh-TW "資料交換" page
#   (https://learn.microsoft.com/zh-tw/windows-server/virtualization/hyper-v/integration-services-data-exchange).
# - de-DE Takt (Heartbeat), Herunterfahren, Zeitsynchronisierung: the vendor's
#   German "Integrationsdienste" page (https://technet.microsoft.com/de-de/library/dn798297).
# The other names, and the exact German compound for Guest Service
# Interface, follow the vendor's terms without a captured German host's
# output: what the simulator must show is that names change and ids do not.
LOCALES = MappingProxyType(
    {
        "en-US": _names(
            "Guest Service Interface",
            "Heartbeat",
            "Key-Value Pair Exchange",
            "Shutdown",
            "Time Synchronization",
            "VSS",
        ),
        "de-DE": _names(
            "Gastdienstschnittstelle",
            "Takt",
            "Austausch von Schlüssel-Wert-Paaren",
            "Herunterfahren",
            "Zeitsynchronisierung",
            "VSS",
        ),
        "zh-TW": _names(
            "客體服務介面",
            "活動訊號",
            "索引鍵/值組交換",
            "關機",
            "時間同步處理",
            "VSS",
        ),
        "ja-JP": _names(
            "ゲスト サービス インターフェイス",
            "ハートビート",
            "キー値ペア交換",
            "シャットダウン",
            "時刻の同期",
            "VSS",
        ),
    }
)
"""Integration service display names per host locale."""
