"""Immutable records of Hyper-V host state, and of the checks ``doctor`` makes.

Records are what ``Get-VM`` and ``Get-VMIntegrationService`` would show a
person, as typed fields. They never do I/O; an action returns a new record
instead of changing an old one (use :func:`attrs.evolve` for a changed copy).
Each converts to plain JSON data with ``to_dict()`` and to text with
``to_json()`` (one schema, documented in docs/cli.md under "JSON").
"""

from __future__ import annotations

import enum
import sys
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from hvintegration._table import Column, JsonRecord, RecordList, html_table, plain, record_list
from hvintegration.catalogue import ServiceSpec

__all__ = [
    "ApplyResult",
    "Check",
    "FileCopy",
    "IntegrationServiceState",
    "KvpChange",
    "KvpExchange",
    "KvpItemRow",
    "KvpWriteResult",
    "PreflightReport",
    "ServiceChange",
    "VMSummary",
    "Verdict",
]


@attrs.frozen
class VMSummary(JsonRecord):
    """A virtual machine as ``Get-VM`` lists it.

    Attributes:
        name: The VM name.
        id: The VM id (``VMId``), which stays the same across renames.
        state: ``Running``, ``Off``, ``Saved``, ``Paused``...
        generation: 1 or 2, ``None`` where the host did not say.
        integration_services_version: The version the guest reported, empty
            when the guest never reported one.
        host: The host's computer name.
        integration_services_state: ``Get-VM``'s ``IntegrationServicesState``:
            ``"Up to date"``, ``"Update required"``, or ``None`` when the host
            does not know (the VM is off, the guest never reported a
            version, or the host predates the property). The host compares
            the guest's version with its own; see
            :meth:`~hvintegration.HyperVHost.integration_services_version`.

    Example:
        >>> import uuid
        >>> vm = VMSummary("demovm", uuid.UUID(int=1), "Running", 2, "10.0.20348.1", "HV01",
        ...                "Up to date")
        >>> vm.state, vm.integration_services_state
        ('Running', 'Up to date')
    """

    name: str
    id: uuid.UUID
    state: str
    generation: int | None
    integration_services_version: str
    host: str
    integration_services_state: str | None = None

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Name", lambda r: r.name),
        ("State", lambda r: r.state),
        ("Generation", lambda r: r.generation),
        ("IntegrationServicesVersion", lambda r: r.integration_services_version),
        ("IntegrationServicesState", lambda r: r.integration_services_state),
        ("Id", lambda r: r.id),
    )

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen
class IntegrationServiceState(JsonRecord):
    """One integration service of one VM, as ``Get-VMIntegrationService`` reports it.

    Attributes:
        vm_name: The VM's name.
        vm_id: The VM's id.
        name: The service name exactly as the host reported it; on a
            localised host this is in the host's language.
        component_id: The integration component GUID, the locale-free
            identity of the service.
        service: The catalogue entry for ``component_id``, or ``None`` for a
            service newer than the catalogue.
        enabled: Whether the host offers the service to this VM.
        primary_status: ``PrimaryStatusDescription``: ``OK``, ``No Contact``,
            ``Lost Communication``..., empty while the VM is off.
        secondary_status: ``SecondaryStatusDescription``, often empty.
        operational_status: The ``OperationalStatus`` values by name, such as
            ``("Ok",)`` or ``("NoContact",)``.

    Example:
        >>> from hvintegration import catalogue
        >>> import uuid
        >>> s = IntegrationServiceState("demovm", uuid.UUID(int=1), "VSS",
        ...     catalogue.VSS.component_id, catalogue.VSS, True, "OK", "", ("Ok",))
        >>> s.display_name, s.enabled
        ('VSS', True)
    """

    vm_name: str
    vm_id: uuid.UUID
    name: str
    component_id: uuid.UUID
    service: ServiceSpec | None
    enabled: bool
    primary_status: str
    secondary_status: str
    operational_status: tuple[str, ...]

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("VMName", lambda r: r.vm_name),
        ("Name", lambda r: r.name),
        ("Enabled", lambda r: r.enabled),
        ("PrimaryStatusDescription", lambda r: r.primary_status),
        ("SecondaryStatusDescription", lambda r: r.secondary_status),
    )

    @property
    def display_name(self) -> str:
        """The English catalogue name when known, else the host's own name."""
        return self.service.name if self.service is not None else self.name

    @property
    def healthy(self) -> bool:
        """Whether the service is enabled and the guest answers (status ``OK``)."""
        return self.enabled and "Ok" in self.operational_status

    def __repr__(self) -> str:
        status = self.primary_status or "-"
        return (
            f"<IntegrationServiceState {self.vm_name}/{self.display_name} "
            f"enabled={self.enabled} status={status!r}>"
        )

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen
class ServiceChange(JsonRecord):
    """What ``apply`` found and did for one service of one VM.

    Attributes:
        state: The service's state after the call.
        requested: The enabled state the caller asked for.
        changed: Whether the call changed it; ``False`` when it already was
            as asked.
    """

    state: IntegrationServiceState
    requested: bool
    changed: bool

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("VMName", lambda r: r.state.vm_name),
        ("Name", lambda r: r.state.name),
        ("Enabled", lambda r: r.state.enabled),
        ("Changed", lambda r: r.changed),
    )

    def __repr__(self) -> str:
        verb = "changed" if self.changed else "unchanged"
        return (
            f"<ServiceChange {self.state.vm_name}/{self.state.display_name} "
            f"enabled={self.state.enabled} {verb}>"
        )

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen
class ApplyResult(JsonRecord):
    """The outcome of applying a desired state.

    Attributes:
        items: One :class:`ServiceChange` per service the caller named, in
            the caller's order (a :class:`~hvintegration.RecordList`, so it
            shows as a table).

    Example:
        >>> ApplyResult(()).changed == ()
        True
    """

    items: tuple[ServiceChange, ...] = attrs.field(converter=record_list)

    @property
    def changed(self) -> RecordList[ServiceChange]:
        """The items the call actually changed."""
        return RecordList(item for item in self.items if item.changed)

    @property
    def unchanged(self) -> RecordList[ServiceChange]:
        """The items that were already as requested."""
        return RecordList(item for item in self.items if not item.changed)

    def __repr__(self) -> str:
        return f"<ApplyResult {len(self.changed)} changed, {len(self.unchanged)} unchanged>"

    def _repr_html_(self) -> str:
        if not self.items:
            return "<p>(nothing requested)</p>"
        return html_table(self.items)


@attrs.frozen
class FileCopy(JsonRecord):
    """A file copied from the host into a guest (``Copy-VMFile``).

    Attributes:
        vm_name: The VM's name.
        vm_id: The VM's id.
        source: The file's path on the host.
        destination: Its path in the guest.
        size: Bytes copied.
    """

    vm_name: str
    vm_id: uuid.UUID
    source: str
    destination: str
    size: int

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("VMName", lambda r: r.vm_name),
        ("SourcePath", lambda r: r.source),
        ("DestinationPath", lambda r: r.destination),
        ("Size", lambda r: r.size),
    )

    def _repr_html_(self) -> str:
        return html_table([self])


class Verdict(enum.Enum):
    """How one check came out."""

    OK = "ok"
    """Nothing to do."""
    WARNING = "warning"
    """Works, or works in part; the remedy says what would be better."""
    FAIL = "fail"
    """The library cannot work here until the remedy is applied."""
    SKIPPED = "skipped"
    """Not checked, because an earlier failure hid it."""


@attrs.frozen
class Check(JsonRecord):
    """One check's outcome.

    Attributes:
        name: The check, e.g. ``rights`` or ``read:list_vms``.
        verdict: How it came out.
        found: What was found, in one line.
        remedy: What to do; empty when there is nothing to do.

    Example:
        >>> Check("rights", Verdict.OK, "HV01\\\\admin is an administrator")
        <Check rights: ok>
    """

    name: str
    verdict: Verdict
    found: str
    remedy: str = ""

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Check", lambda r: r.name),
        ("Verdict", lambda r: r.verdict.value),
        ("Found", lambda r: r.found),
        ("Remedy", lambda r: r.remedy),
    )

    def __repr__(self) -> str:
        return f"<Check {self.name}: {self.verdict.value}>"

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen(eq=False)
class PreflightReport(JsonRecord):
    """Every check of one target.

    Attributes:
        target: The target URL (never with a password).
        side: ``host`` or ``guest``.
        checks: The checks, in the order of
            :data:`hvintegration.preflight.HOST_CHECKS` or ``GUEST_CHECKS``.
        facts: What the target said about itself (the preflight script's
            output object), empty when it could not be asked.

    Example:
        >>> report = PreflightReport("sim://", "host", (Check("connection", Verdict.OK, "up"),))
        >>> report.ok, [c.name for c in report.failed]
        (True, [])
    """

    target: str
    side: str
    checks: tuple[Check, ...] = attrs.field(converter=record_list)
    facts: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def ok(self) -> bool:
        """Whether no check failed (warnings and skipped checks allowed)."""
        return not self.failed

    @property
    def failed(self) -> RecordList[Check]:
        """The checks whose verdict is ``fail`` (a table in a notebook)."""
        return RecordList(check for check in self.checks if check.verdict is Verdict.FAIL)

    def check(self, name: str) -> Check:
        """One check by name.

        Raises:
            KeyError: No check of that name.
        """
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """The same as :meth:`to_dict` (kept for earlier callers)."""
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON data, with the library and Python versions.

        What ``doctor --json`` prints; unlike other records it adds ``ok``
        and ``client`` (to paste into a bug report; it holds no secret).

        Returns:
            ``target``, ``side``, ``ok``, ``client``, ``checks`` (name,
            verdict, found, remedy) and ``facts``.
        """
        from importlib import metadata

        try:
            version = metadata.version("hvintegration")
        except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
            version = "unknown"
        return {
            "target": self.target,
            "side": self.side,
            "ok": self.ok,
            "client": {
                "hvintegration": version,
                "python": sys.version.split()[0],
                "platform": sys.platform,
            },
            "checks": [check.to_dict() for check in self.checks],
            "facts": plain(self.facts),
        }

    def __repr__(self) -> str:
        counts = {verdict: 0 for verdict in Verdict}
        for check in self.checks:
            counts[check.verdict] += 1
        summary = ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
        return f"<PreflightReport {self.side} {self.target}: {summary}>"

    def _repr_html_(self) -> str:
        return html_table(self.checks)


def _first_line(text: str | None, limit: int = 60) -> str:
    text = (text or "").replace("\r", " ").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _frozen_map(items: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(items))


def _addresses(text: str | None) -> tuple[str, ...]:
    # The guest lists its addresses separated by semicolons (the
    # NetworkAddressIPv4/IPv6 items of Msvm_KvpExchangeDataItem, and
    # hv_kvp_daemon's kvp_process_ipconfig_file), often with a trailing one.
    return tuple(part.strip() for part in (text or "").split(";") if part.strip())


@attrs.frozen
class KvpExchange(JsonRecord):
    """The Key-Value Pair Exchange (Data Exchange) items of one VM, read on the host.

    Three sets, as ``root\\virtualization\\v2`` keeps them
    (https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangecomponent and
    https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangecomponentsettingdata):

    Attributes:
        vm_name: The VM's name.
        vm_id: The VM's id.
        intrinsic: ``GuestIntrinsicExchangeItems``: what the guest's
            integration components report about it (``OSName``,
            ``FullyQualifiedDomainName``, ``NetworkAddressIPv4``...). Empty
            while the VM is off or nothing in the guest answers (a Linux
            guest without ``hv_kvp_daemon``).
        guest: ``GuestExchangeItems``: items programs in the guest published
            (the registry key ``Virtual Machine\\Guest`` in Windows, KVP pool 1
            in Linux).
        host: ``HostExchangeItems`` of the component's setting data: the items
            the host sends the guest (``Virtual Machine\\External`` in
            Windows, pool 0 in Linux); they stay set while the VM is off.

    Example:
        >>> import uuid
        >>> kvp = KvpExchange("web01", uuid.UUID(int=1),
        ...     {"OSName": "Ubuntu", "NetworkAddressIPv4": "10.0.0.5;10.0.0.6;"}, {}, {})
        >>> kvp.os_name, kvp.ipv4_addresses, kvp.fqdn
        ('Ubuntu', ('10.0.0.5', '10.0.0.6'), None)
    """

    __json_properties__: ClassVar[tuple[str, ...]] = (
        "os_name",
        "os_version",
        "integration_services_version",
        "fqdn",
        "ipv4_addresses",
        "ipv6_addresses",
    )

    vm_name: str
    vm_id: uuid.UUID
    intrinsic: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    guest: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    host: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("VMName", lambda r: r.vm_name),
        ("OSName", lambda r: r.os_name),
        ("IntegrationServicesVersion", lambda r: r.integration_services_version),
        ("IPv4", lambda r: r.ipv4_addresses),
        ("Intrinsic", lambda r: len(r.intrinsic)),
        ("Guest", lambda r: len(r.guest)),
        ("Host", lambda r: len(r.host)),
    )

    @property
    def os_name(self) -> str | None:
        """``OSName`` (``Windows Server 2022 Datacenter``; ``NAME`` of os-release in Linux)."""
        return self.intrinsic.get("OSName")

    @property
    def os_version(self) -> str | None:
        """``OSVersion`` (``10.0.20348``; the kernel release before its ``-`` in Linux)."""
        return self.intrinsic.get("OSVersion")

    @property
    def integration_services_version(self) -> str | None:
        """``IntegrationServicesVersion`` as the guest reports it."""
        return self.intrinsic.get("IntegrationServicesVersion")

    @property
    def fqdn(self) -> str | None:
        """``FullyQualifiedDomainName``."""
        return self.intrinsic.get("FullyQualifiedDomainName")

    @property
    def ipv4_addresses(self) -> tuple[str, ...]:
        """``NetworkAddressIPv4`` split at ``;``; empty when absent."""
        return _addresses(self.intrinsic.get("NetworkAddressIPv4"))

    @property
    def ipv6_addresses(self) -> tuple[str, ...]:
        """``NetworkAddressIPv6`` split at ``;``; empty when absent."""
        return _addresses(self.intrinsic.get("NetworkAddressIPv6"))

    def items(self, source: str) -> RecordList[KvpItemRow]:
        """One set of items as table rows, sorted by key.

        Args:
            source: ``intrinsic``, ``guest`` or ``host``.

        Raises:
            ValueError: Another source.
        """
        sets = {"intrinsic": self.intrinsic, "guest": self.guest, "host": self.host}
        if source not in sets:
            raise ValueError(f"a KVP source is intrinsic, guest or host, not {source!r}")
        return RecordList(
            KvpItemRow(self.vm_name, source, key, value)
            for key, value in sorted(sets[source].items())
        )

    def __repr__(self) -> str:
        return (
            f"<KvpExchange {self.vm_name} os={self.os_name!r} intrinsic={len(self.intrinsic)} "
            f"guest={len(self.guest)} host={len(self.host)}>"
        )

    def _repr_html_(self) -> str:
        # One VM in a notebook: its summary row, then every item.
        rows = [row for source in ("intrinsic", "guest", "host") for row in self.items(source)]
        return html_table([self]) + (html_table(rows) if rows else "")


@attrs.frozen
class KvpItemRow(JsonRecord):
    """One KVP item as a table row (see :meth:`KvpExchange.items`).

    Attributes:
        vm_name: The VM's name.
        source: ``intrinsic``, ``guest`` or ``host``.
        key: The item's name.
        value: Its data.
    """

    vm_name: str
    source: str
    key: str
    value: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("VMName", lambda r: r.vm_name),
        ("Source", lambda r: r.source),
        ("Key", lambda r: r.key),
        ("Value", lambda r: _first_line(r.value)),
    )

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen
class KvpChange(JsonRecord):
    """What a KVP write did to one host-to-guest item.

    Attributes:
        key: The item's name.
        action: ``added`` (AddKvpItems), ``modified`` (ModifyKvpItems),
            ``removed`` (RemoveKvpItems), ``unchanged`` (it already held this
            value: nothing sent), ``absent`` (asked to remove an item the
            host does not have: nothing sent); and only in
            :attr:`KvpWriteError.result <hvintegration.errors.KvpWriteError.result>`:
            ``pending`` (its method's job was still running when the wait
            ran out: it may yet complete), ``failed`` (its method or job
            failed) or ``not-sent`` (an earlier method failed, so this one
            was not called).
        value: The value asked for; ``None`` for a removal.
    """

    __json_properties__: ClassVar[tuple[str, ...]] = ("changed",)

    key: str
    action: str
    value: str | None = None

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Key", lambda r: r.key),
        ("Action", lambda r: r.action),
        ("Value", lambda r: _first_line(r.value)),
    )

    @property
    def changed(self) -> bool:
        """Whether the host changed the item."""
        return self.action in ("added", "modified", "removed")


@attrs.frozen
class KvpWriteResult(JsonRecord):
    """The outcome of :meth:`~hvintegration.VirtualMachine.set_kvp_items` or
    :meth:`~hvintegration.VirtualMachine.remove_kvp_items`.

    Attributes:
        vm_name: The VM's name.
        vm_id: The VM's id.
        changes: One :class:`KvpChange` per key asked for, in request order.
        host: The VM's host-to-guest items after the write, read back in the
            same round trip.

    Example:
        >>> import uuid
        >>> done = KvpWriteResult("web01", uuid.UUID(int=1),
        ...     (KvpChange("Role", "added", "web"), KvpChange("Env", "unchanged", "prod")),
        ...     {"Role": "web", "Env": "prod"})
        >>> [c.key for c in done.changed]
        ['Role']
    """

    vm_name: str
    vm_id: uuid.UUID
    changes: tuple[KvpChange, ...] = attrs.field(converter=record_list)
    host: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)

    @property
    def changed(self) -> RecordList[KvpChange]:
        """The items the host changed (a table in a notebook)."""
        return RecordList(change for change in self.changes if change.changed)

    def __repr__(self) -> str:
        return (
            f"<KvpWriteResult {self.vm_name}: {len(self.changed)} of {len(self.changes)} changed>"
        )

    def _repr_html_(self) -> str:
        if not self.changes:
            return "<p>(nothing requested)</p>"
        return html_table(self.changes)
