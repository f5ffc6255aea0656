"""The catalogue of Hyper-V integration services, keyed by locale-free identity.

A host names its integration services in its own display language, so the
library never identifies a service by the name it reads back. Each service has
a fixed integration component GUID: the part of the ``Id`` property of
``Get-VMIntegrationService`` after the backslash
(``Microsoft:<VMId>\\<GUID>``). This module maps each GUID to everything else
a service is called on the three sides: its English name and older names on
the host, its Windows guest service, and its Linux driver, daemons and systemd
units.

Look a service up by any of its names::

    >>> from hvintegration import catalogue
    >>> catalogue.resolve("Data Exchange") is catalogue.KEY_VALUE_PAIR_EXCHANGE
    True
    >>> catalogue.resolve("6c09bb55-d683-4da0-8931-c9bf705f6480").name
    'Guest Service Interface'
    >>> catalogue.resolve("vmicvss").name
    'VSS'
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import ClassVar, Union

import attrs

from hvintegration._table import Column, JsonRecord, RecordList, html_table
from hvintegration.errors import ServiceNotFoundError

__all__ = [
    "ALL_SERVICES",
    "GUEST_SERVICE_INTERFACE",
    "HEARTBEAT",
    "HOST_SERVICES",
    "KEY_VALUE_PAIR_EXCHANGE",
    "POWERSHELL_DIRECT",
    "REMOTE_DESKTOP_VIRTUALIZATION",
    "SHUTDOWN",
    "TIME_SYNCHRONIZATION",
    "VSS",
    "LinuxSide",
    "ServiceRef",
    "ServiceSpec",
    "by_component_id",
    "fold_name",
    "lookup_host",
    "resolve",
    "resolve_host",
    "valid_names",
]


@attrs.frozen
class LinuxSide(JsonRecord):
    """How a Linux guest provides one integration service.

    Attributes:
        driver: The kernel driver that carries the channel (``hv_utils`` for
            every integration service).
        daemons: User-space daemons that serve it, newest name first; empty
            when the kernel does all the work (heartbeat, shutdown, time
            synchronisation).
        debian_units: systemd units on Debian and Ubuntu, current names
            first (Debian 11 and later), then Debian 9 and 10's.
        redhat_units: systemd units on RHEL, CentOS, Fedora and Azure Linux.
        suse_units: systemd units on SUSE, Arch Linux, Gentoo and Photon.
        vmbus_class_id: The VMBus device class id the kernel matches the
            channel by, as listed under ``/sys/bus/vmbus/devices/*/class_id``.
        other_units: systemd units of other distributions (NixOS).

    A unit name no distribution here uses is still found: the status asks
    systemd which unit runs each daemon instance.

    Its JSON form (``to_dict()``) has every attribute and ``units``.
    """

    __json_properties__: ClassVar[tuple[str, ...]] = ("units",)

    driver: str
    daemons: tuple[str, ...]
    debian_units: tuple[str, ...]
    redhat_units: tuple[str, ...]
    suse_units: tuple[str, ...]
    vmbus_class_id: uuid.UUID | None
    other_units: tuple[str, ...] = ()

    @property
    def units(self) -> tuple[str, ...]:
        """Every systemd unit name any supported distribution uses."""
        return self.debian_units + self.redhat_units + self.suse_units + self.other_units


@attrs.frozen
class ServiceSpec(JsonRecord):
    """One integration service, as every side of Hyper-V knows it.

    Attributes:
        key: A stable Python-style identifier, e.g. ``"guest_service_interface"``.
        name: The English name ``Get-VMIntegrationService`` shows on current
            hosts.
        component_id: The integration component GUID, the locale-free
            identity of the service on the host. ``None`` for guest-only
            services that have no host toggle.
        aliases: Older and alternative names: Hyper-V Manager captions and
            the names of earlier releases.
        windows_service: The service name inside a Windows guest.
        windows_display_name: That service's English display name.
        linux: How a Linux guest provides it; ``None`` where Linux has no
            counterpart.
        host_toggle: Whether the host can enable or disable it per VM.
        critical: Whether turning it off hurts the host's ability to manage
            the VM (the vendor warns about this); such changes need
            ``force=True`` where the library guards them.
        description: One sentence on what the service does.

    Its JSON form (``to_dict()``, what ``hvintegration catalogue --json``
    prints) has every attribute, the GUID as text and ``linux`` as an
    object; inside another record's JSON a service is just its ``key``.

    Example:
        >>> from hvintegration import catalogue
        >>> catalogue.VSS.windows_service
        'vmicvss'
        >>> catalogue.VSS.to_dict()["linux"]["units"][:2]
        ['hv-vss-daemon.service', 'hyperv-daemons.hv-vss-daemon.service']
    """

    key: str
    name: str
    component_id: uuid.UUID | None
    aliases: tuple[str, ...]
    windows_service: str
    windows_display_name: str
    linux: LinuxSide | None
    host_toggle: bool
    critical: bool
    description: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Name", lambda s: s.name),
        ("ComponentId", lambda s: s.component_id or "(guest only)"),
        ("Windows", lambda s: s.windows_service),
        ("Linux", lambda s: ", ".join(s.linux.daemons) or s.linux.driver if s.linux else "-"),
        ("AlsoKnownAs", lambda s: ", ".join(s.aliases)),
    )

    def __repr__(self) -> str:
        return f"<ServiceSpec {self.name}>"

    def __json_ref__(self) -> str:
        # Inside another record's JSON a service is its key, one schema on
        # every side (host, Windows, Linux); alone it is written in full.
        return self.key

    def _repr_html_(self) -> str:
        return html_table([self])

    @property
    def names(self) -> tuple[str, ...]:
        """Every name this service answers to, English name first.

        Its English name, older names, the Windows guest service and the
        English display name ``Get-Service`` prints for it (so a name the
        command line shows for a guest service is one it takes), and its key.
        """
        return (
            self.name,
            *self.aliases,
            self.windows_service,
            self.windows_display_name,
            self.key,
        )


def _id(text: str) -> uuid.UUID:
    return uuid.UUID(text)


def _kernel_only(class_id: str) -> LinuxSide:
    # Heartbeat, shutdown and time synchronisation live wholly in hv_utils:
    # no daemon, no unit.
    return LinuxSide("hv_utils", (), (), (), (), _id(class_id))


# Component GUIDs are the suffix of the Id property Hyper-V reports for each
# integration service; class ids are the VMBus device classes in the Linux
# kernel's include/linux/hyperv.h.
#
# Unit names, from each distribution's packaging:
# - Debian 11 and 12 (hyperv-daemons 5.10, 6.1): hv-kvp-daemon.service etc.,
#   which declare Conflicts=hyperv-daemons.hv-kvp-daemon.service, the name
#   Debian 9 and 10 (hyperv-daemons 4.9, 4.19) used; Ubuntu's
#   linux-cloud-tools-common ships the same hv-*-daemon.service names.
# - Fedora, RHEL, CentOS and Azure Linux (hyperv-daemons.spec:
#   r0x0d/fedora-rpm-specs specs/hyperv-daemons.spec, microsoft/azurelinux
#   SPECS/hyperv-daemons/hyperv-daemons.spec): hypervkvpd.service,
#   hypervvssd.service, hypervfcopyd.service, programs /usr/sbin/hyperv*d.
# - openSUSE and SLES (hyper-v.spec, 2024): hv_kvp_daemon.service,
#   hv_vss_daemon.service, hv_fcopy_daemon.service (ConditionPathExists=
#   /dev/vmbus/hv_fcopy) and hv_fcopy_uio_daemon.service (ConditionPathExists=
#   /sys/bus/vmbus/drivers/uio_hv_generic/new_id and !/dev/vmbus/hv_fcopy),
#   programs in /usr/lib/hyper-v/bin; Arch's hyperv, Gentoo's hyperv-daemons
#   and Photon's hyper-v (vmware/photon SPECS/hyper-v/hyper-v.spec) use the
#   same hv_*_daemon.service names.
# - NixOS (nixpkgs pkgs/os-specific/linux/hyperv-daemons/default.nix):
#   hv-kvp.service, hv-vss.service, hv-fcopy.service, running
#   /nix/store/...-hyperv-daemons-bin/bin/hv_*_daemon, where hv_kvp_daemon
#   is a makeWrapper script (exec -a "$0" .../.hv_kvp_daemon-wrapped).
GUEST_SERVICE_INTERFACE = ServiceSpec(
    key="guest_service_interface",
    name="Guest Service Interface",
    component_id=_id("6C09BB55-D683-4DA0-8931-C9BF705F6480"),
    aliases=("Guest services",),
    windows_service="vmicguestinterface",
    windows_display_name="Hyper-V Guest Service Interface",
    linux=LinuxSide(
        driver="hv_utils",
        daemons=("hv_fcopy_uio_daemon", "hv_fcopy_daemon"),
        debian_units=("hv-fcopy-daemon.service", "hyperv-daemons.hv-fcopy-daemon.service"),
        redhat_units=("hypervfcopyd.service",),
        suse_units=("hv_fcopy_uio_daemon.service", "hv_fcopy_daemon.service"),
        vmbus_class_id=_id("34D14BE3-DEE4-41C8-9AE7-6B174977C192"),
        other_units=("hv-fcopy.service",),
    ),
    host_toggle=True,
    critical=False,
    description="Lets the host copy files into the guest (Copy-VMFile).",
)

HEARTBEAT = ServiceSpec(
    key="heartbeat",
    name="Heartbeat",
    component_id=_id("84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47"),
    aliases=(),
    windows_service="vmicheartbeat",
    windows_display_name="Hyper-V Heartbeat Service",
    linux=_kernel_only("57164F39-9115-4E78-AB55-382F3BD5422D"),
    host_toggle=True,
    critical=True,
    description="Reports that the guest is up and responding.",
)

KEY_VALUE_PAIR_EXCHANGE = ServiceSpec(
    key="key_value_pair_exchange",
    name="Key-Value Pair Exchange",
    component_id=_id("2A34B1C2-FD73-4043-8A5B-DD2159BC743F"),
    aliases=("Data Exchange", "KVP", "KVP Exchange"),
    windows_service="vmickvpexchange",
    windows_display_name="Hyper-V Data Exchange Service",
    linux=LinuxSide(
        driver="hv_utils",
        daemons=("hv_kvp_daemon",),
        debian_units=("hv-kvp-daemon.service", "hyperv-daemons.hv-kvp-daemon.service"),
        redhat_units=("hypervkvpd.service",),
        suse_units=("hv_kvp_daemon.service",),
        vmbus_class_id=_id("A9A0F4E7-5A45-4D96-B827-8A841E8C03E6"),
        other_units=("hv-kvp.service",),
    ),
    host_toggle=True,
    critical=True,
    description="Exchanges key-value data, including the guest's IP addresses.",
)

SHUTDOWN = ServiceSpec(
    key="shutdown",
    name="Shutdown",
    component_id=_id("9F8233AC-BE49-4C79-8EE3-E7E1985B2077"),
    aliases=("Operating system shutdown",),
    windows_service="vmicshutdown",
    windows_display_name="Hyper-V Guest Shutdown Service",
    linux=_kernel_only("0E0B6031-5213-4934-818B-38D90CED39DB"),
    host_toggle=True,
    critical=True,
    description="Lets the host shut the guest down cleanly.",
)

TIME_SYNCHRONIZATION = ServiceSpec(
    key="time_synchronization",
    name="Time Synchronization",
    component_id=_id("2497F4DE-E9FA-4204-80E4-4B75C46419C0"),
    aliases=("Time Sync",),
    windows_service="vmictimesync",
    windows_display_name="Hyper-V Time Synchronization Service",
    linux=_kernel_only("9527E630-D0AE-497B-ADCE-E80AB0175CAF"),
    host_toggle=True,
    critical=False,
    description="Keeps the guest clock in step with the host.",
)

VSS = ServiceSpec(
    key="vss",
    name="VSS",
    component_id=_id("5CED1297-4598-4915-A5FC-AD21BB4D02A4"),
    aliases=("Backup (volume shadow copy)", "Backup", "Volume Shadow Copy"),
    windows_service="vmicvss",
    windows_display_name="Hyper-V Volume Shadow Copy Requestor",
    linux=LinuxSide(
        driver="hv_utils",
        daemons=("hv_vss_daemon",),
        debian_units=("hv-vss-daemon.service", "hyperv-daemons.hv-vss-daemon.service"),
        redhat_units=("hypervvssd.service",),
        suse_units=("hv_vss_daemon.service",),
        vmbus_class_id=_id("35FA2E29-EA23-4236-96AE-3A6EBACBA440"),
        other_units=("hv-vss.service",),
    ),
    host_toggle=True,
    critical=False,
    description="Freezes the guest's file systems for live backups.",
)

REMOTE_DESKTOP_VIRTUALIZATION = ServiceSpec(
    key="remote_desktop_virtualization",
    name="Remote Desktop Virtualization",
    component_id=None,
    aliases=(),
    windows_service="vmicrdv",
    windows_display_name="Hyper-V Remote Desktop Virtualization Service",
    linux=None,
    host_toggle=False,
    critical=False,
    description="Carries enhanced-session connections into a Windows guest.",
)

POWERSHELL_DIRECT = ServiceSpec(
    key="powershell_direct",
    name="PowerShell Direct",
    component_id=None,
    aliases=("VM Session", "PowerShell Direct Service"),
    windows_service="vmicvmsession",
    windows_display_name="Hyper-V PowerShell Direct Service",
    linux=None,
    host_toggle=False,
    critical=True,
    description="Lets the host run PowerShell in the guest with no network path.",
)

HOST_SERVICES: RecordList[ServiceSpec] = RecordList(
    (
        GUEST_SERVICE_INTERFACE,
        HEARTBEAT,
        KEY_VALUE_PAIR_EXCHANGE,
        SHUTDOWN,
        TIME_SYNCHRONIZATION,
        VSS,
    )
)
"""The six services a host can enable or disable per VM, in the host's order."""

ALL_SERVICES: RecordList[ServiceSpec] = RecordList(
    (*HOST_SERVICES, REMOTE_DESKTOP_VIRTUALIZATION, POWERSHELL_DIRECT)
)
"""Every catalogued service, the guest-only ones last."""

ServiceRef = Union[str, uuid.UUID, ServiceSpec]
"""How a caller may name a service: a catalogue constant, its component GUID
(as :class:`uuid.UUID` or text), its English name, an older name, its Windows
service name or its key."""


def fold_name(text: str) -> str:
    """A service name as names are compared: spelling differences folded.

    Compatibility normalisation (NFKC, https://unicode.org/reports/tr15/)
    makes decomposed and composed accents one (``u`` + U+0308 and ``ü``)
    and full-width forms their ordinary ones (U+FF0F and ``/``); runs of
    whitespace, the ideographic space U+3000 included, become one space;
    then case is folded. A name a host prints and the same name typed or
    pasted from another program therefore match.

    Example:
        >>> fold_name("ゲスト\u3000サービス") == fold_name("ゲスト サービス")
        True
        >>> fold_name("Schlu\u0308ssel") == fold_name("SCHLÜSSEL")
        True
    """
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


_BY_ID: dict[uuid.UUID, ServiceSpec] = {
    spec.component_id: spec for spec in ALL_SERVICES if spec.component_id is not None
}
_BY_WINDOWS_SERVICE: dict[str, ServiceSpec] = {
    spec.windows_service.casefold(): spec for spec in ALL_SERVICES
}
_BY_NAME: dict[str, ServiceSpec] = {
    fold_name(name): spec for spec in ALL_SERVICES for name in spec.names
}


def valid_names() -> tuple[str, ...]:
    """The English name of every catalogued service.

    Returns:
        The names, in catalogue order.
    """
    return tuple(spec.name for spec in ALL_SERVICES)


def by_component_id(component_id: uuid.UUID | str) -> ServiceSpec | None:
    """The service with this integration component GUID, if catalogued.

    Args:
        component_id: The GUID, or the whole ``Id`` property a host reports
            (``Microsoft:<VMId>\\<GUID>``), whose suffix is used.

    Returns:
        The catalogue entry, or ``None`` for a GUID the catalogue does not
        know (a newer host may add services).

    Example:
        >>> vm_id = "AAAAAAAA-0000-0000-0000-000000000000"
        >>> by_component_id(f"Microsoft:{vm_id}\\\\84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47").name
        'Heartbeat'
    """
    if isinstance(component_id, uuid.UUID):
        return _BY_ID.get(component_id)
    suffix = component_id.rsplit("\\", 1)[-1]
    try:
        return _BY_ID.get(uuid.UUID(suffix))
    except ValueError:
        return None


def resolve(service: ServiceRef) -> ServiceSpec:
    """Find the catalogue entry a caller means.

    Names compare without regard to case. A component GUID may be given with
    or without braces.

    Args:
        service: A :data:`ServiceRef`.

    Returns:
        The matching :class:`ServiceSpec`.

    Raises:
        ServiceNotFoundError: Nothing in the catalogue matches; the message
            lists the valid names.
        TypeError: ``service`` is not a string, UUID or ServiceSpec.
    """
    if isinstance(service, ServiceSpec):
        # Always the catalogue's own entry: a caller's copy (attrs.evolve)
        # must not be able to change facts such as ``critical``.
        known = _BY_WINDOWS_SERVICE.get(service.windows_service.casefold())
        if known is None or known.component_id != service.component_id:
            raise ServiceNotFoundError(service.name, choices=valid_names())
        return known
    if isinstance(service, uuid.UUID):
        spec = _BY_ID.get(service)
        if spec is None:
            raise ServiceNotFoundError(str(service), choices=valid_names())
        return spec
    if not isinstance(service, str):
        raise TypeError(
            f"a service is named by str, uuid.UUID or ServiceSpec, not {type(service).__name__}"
        )
    text = service.strip()
    spec = _BY_NAME.get(fold_name(text))
    if spec is not None:
        return spec
    spec = by_component_id(text.strip("{}"))
    if spec is not None:
        return spec
    raise ServiceNotFoundError(service, choices=valid_names())


def resolve_host(service: ServiceRef) -> ServiceSpec:
    """Find a service the host can switch on or off per VM.

    Args:
        service: A :data:`ServiceRef`.

    Returns:
        The catalogue entry; its ``component_id`` is set.

    Raises:
        ServiceNotFoundError: The name is unknown (the message lists the six
            host services), or it names a guest-only service such as
            PowerShell Direct (the message says so).

    Example:
        >>> resolve_host("Data Exchange").name
        'Key-Value Pair Exchange'
    """
    host_names = [spec.name for spec in HOST_SERVICES]
    try:
        spec = resolve(service)
    except ServiceNotFoundError as exc:
        raise ServiceNotFoundError(exc.name, choices=host_names) from None
    if spec.component_id is None:
        raise ServiceNotFoundError(
            spec.name,
            choices=host_names,
            reason=(
                f"{spec.name} ({spec.windows_service}) runs only inside the guest and "
                "has no host-side switch"
            ),
        )
    return spec


def lookup_host(service: ServiceRef) -> ServiceSpec | None:
    """Find a host service by a name the catalogue may not know.

    Like :func:`resolve_host`, except that text the catalogue does not know
    at all gives ``None`` instead of an error: it may be the display name of
    a localised host (``Gastdienstschnittstelle``, ``客體服務介面``), which
    only that host can translate, through the component GUIDs it reports.
    :meth:`hvintegration.VirtualMachine.apply` does exactly that.

    Args:
        service: A :data:`ServiceRef`.

    Returns:
        The catalogue entry, or ``None`` for unknown text that is not a GUID.

    Raises:
        ServiceNotFoundError: A guest-only service, or a GUID, UUID or
            :class:`ServiceSpec` the catalogue does not know (a host never
            names a service by a GUID).
        TypeError: ``service`` is not a string, UUID or ServiceSpec.

    Example:
        >>> lookup_host("vss").name, lookup_host("Gastdienstschnittstelle")
        ('VSS', None)
    """
    if isinstance(service, str):
        text = service.strip()
        if fold_name(text) not in _BY_NAME and by_component_id(text.strip("{}")) is None:
            try:
                uuid.UUID(text.strip("{}"))
            except ValueError:
                return None
    return resolve_host(service)
