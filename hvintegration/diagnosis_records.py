"""Records of a diagnosis: one verdict per integration service, with its remedy.

:meth:`hvintegration.VirtualMachine.diagnose` fills them
(:mod:`hvintegration.diagnosis` holds the rules). Like every record they do
no I/O; they render as a text table for the command line and as an HTML table
whose verdict column is coloured for a notebook.
"""

from __future__ import annotations

import enum
import html
from typing import Any, ClassVar

import attrs

from hvintegration._table import Column, JsonRecord, RecordList, html_table, record_list
from hvintegration.catalogue import ServiceSpec
from hvintegration.maintenance import Advice
from hvintegration.records import IntegrationServiceState, VMSummary

__all__ = [
    "Diagnosis",
    "DiagnosisVerdict",
    "GuestSide",
    "Remedy",
    "ServiceDiagnosis",
]


class DiagnosisVerdict(enum.Enum):
    """How one integration service of one VM is doing, seen from both ends.

    A service works only when it is on at both ends: enabled on the host for
    the VM, and running inside the guest.
    """

    WORKING = "working"
    """Enabled on the host, and the guest side answers (or runs)."""
    GUEST_NOT_RUNNING = "guest side not running"
    """Enabled on the host, but the guest side is stopped, disabled, not
    installed or never answered (the host reports ``No Contact``)."""
    HOST_DISABLED = "disabled on host"
    """Disabled on the host for this VM, whether or not the guest side runs."""
    NOT_SUPPORTED = "not supported"
    """This host does not offer it, or this guest has no side for it."""
    PROTOCOL_MISMATCH = "protocol mismatch"
    """The guest's components are older than the host's: update them."""
    LOST_COMMUNICATION = "lost communication"
    """The host reached the guest side once and no longer does, or has no
    contact with a guest side that runs."""
    VM_NOT_RUNNING = "VM not running"
    """The VM is off, saved or paused: the host cannot tell."""
    UNKNOWN = "unknown"
    """One side could not be read (the error says why), or only the guest
    can tell and no guest connection was given."""

    @property
    def problem(self) -> bool:
        """Whether this verdict asks for action.

        ``working`` and ``not supported`` do not; ``unknown`` does only when
        a side failed, which :attr:`ServiceDiagnosis.problem` knows.
        """
        return self not in (
            DiagnosisVerdict.WORKING,
            DiagnosisVerdict.NOT_SUPPORTED,
            DiagnosisVerdict.UNKNOWN,
        )


@attrs.frozen
class Remedy(JsonRecord):
    """One step that fixes a verdict, in three spellings.

    The texts are for a person to read and copy; the library never runs them.
    Names in them are quoted for the shell they are meant for.

    Attributes:
        side: ``host`` or ``guest``: where the step acts.
        action: What the step does, in words.
        python: The library call, e.g.
            ``await vm.integration_service('VSS').enable()``; empty when the
            library has none.
        cli: The ``hvintegration`` command; empty when there is none.
        manual: The vendor's manual way: the PowerShell cmdlet, or for a
            Linux guest the command run as root (the daemon itself, or
            ``systemctl`` where systemd runs it).

    Example:
        >>> Remedy("host", "start the VM", "", "", "Hyper-V\\\\Start-VM -Name 'demovm'").manual
        "Hyper-V\\\\Start-VM -Name 'demovm'"
    """

    side: str
    action: str
    python: str
    cli: str
    manual: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Side", lambda r: r.side),
        ("Action", lambda r: r.action),
        ("Python", lambda r: r.python),
        ("CLI", lambda r: r.cli),
        ("Manual", lambda r: r.manual),
    )

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen
class GuestSide(JsonRecord):
    """What the guest said about one service.

    Attributes:
        system: ``windows`` or ``linux``.
        name: What provides the service in the guest: the ``vmic*``
            service, the daemon (``hv_kvp_daemon``), or the ``hv_utils``
            driver for the services the Linux kernel serves alone.
        present: Whether the guest has it at all: the service exists, the
            daemon is installed, the driver is loaded.
        running: Whether it runs now (a trigger-started Windows service that
            is not disabled counts as able to run only for the guest-only
            services; see :attr:`state`).
        state: What was found, in a few words: ``Running (Manual)``,
            ``running, pid 812``, ``stopped (/usr/sbin/hv_vss_daemon)``,
            ``not installed``, ``module, bound``.

    Example:
        >>> GuestSide("windows", "vmicvss", True, True, "Running (Manual)").running
        True
    """

    system: str
    name: str
    present: bool
    running: bool
    state: str


def _nulls(data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    # Empty text where a value is missing becomes JSON's null.
    for name in names:
        if data.get(name) == "":
            data[name] = None
    return data


def _mark(verdict: DiagnosisVerdict, problem: bool) -> str:
    if verdict is DiagnosisVerdict.WORKING:
        return "[ok]"
    return "[!!]" if problem else "[--]"


def _host_text(state: IntegrationServiceState | None) -> str:
    if state is None:
        return "-"
    words = "enabled" if state.enabled else "disabled"
    status = state.primary_status or "no status"
    return f"{words}, {status}"


@attrs.frozen
class ServiceDiagnosis(JsonRecord):
    """The verdict on one integration service of one VM.

    Attributes:
        service: The catalogue entry.
        verdict: The :class:`DiagnosisVerdict`.
        reason: Why, in one sentence that names the facts it rests on.
        host: The service as the host reports it; ``None`` when the host
            does not offer it, has no switch for it (PowerShell Direct,
            Remote Desktop Virtualization) or could not be read.
        guest: What the guest said; ``None`` when no guest was asked or it
            could not be read.
        error: The error of the side that could not be read, as
            ``ErrorClass: message``; empty when both sides answered.
        remedies: The steps that fix it, host side first; empty when there
            is nothing to do.

    Example:
        >>> from hvintegration import catalogue
        >>> d = ServiceDiagnosis(catalogue.VSS, DiagnosisVerdict.WORKING, "OK", None, None)
        >>> d.problem, d.mark
        (False, '[ok]')
    """

    service: ServiceSpec
    verdict: DiagnosisVerdict
    reason: str
    host: IntegrationServiceState | None
    guest: GuestSide | None
    error: str = ""
    remedies: tuple[Remedy, ...] = attrs.field(default=(), converter=record_list)

    __json_properties__: ClassVar[tuple[str, ...]] = ("problem",)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON data, with ``error`` ``null`` when empty.

        JSON writes a missing value as ``null``, as for ``host`` and
        ``guest``; the attribute itself stays text.
        """
        return _nulls(super().to_dict(), ("error",))

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Service", lambda r: r.service.name),
        ("Verdict", lambda r: f"{r.mark} {r.verdict.value}"),
        ("Host", lambda r: _host_text(r.host)),
        ("Guest", lambda r: "-" if r.guest is None else f"{r.guest.name}: {r.guest.state}"),
        ("Why", lambda r: r.reason),
    )

    @property
    def problem(self) -> bool:
        """Whether something here asks for action: a verdict that says so,
        or a side that could not be read."""
        return self.verdict.problem or bool(self.error)

    @property
    def mark(self) -> str:
        """``[ok]`` working, ``[!!]`` needs action, ``[--]`` nothing to do."""
        return _mark(self.verdict, self.problem)

    def __repr__(self) -> str:
        return f"<ServiceDiagnosis {self.service.name}: {self.verdict.value}>"

    def _repr_html_(self) -> str:
        return _html_services([self])


_COLOURS = {"[ok]": "#d4edda", "[!!]": "#f8d7da", "[--]": "#e2e3e5"}


def _html_services(items: list[ServiceDiagnosis] | tuple[ServiceDiagnosis, ...]) -> str:
    # The verdict cell is coloured (green works, red needs action, grey
    # nothing to do) so the table reads at a glance.
    headers = ["Service", "Verdict", "Host", "Guest", "Why", "Remedy"]
    head = "".join(f"<th>{h}</th>" for h in headers)
    rows = []
    for item in items:
        colour = _COLOURS[item.mark]
        remedy = "<br>".join(
            html.escape(step.cli or step.python or step.manual) for step in item.remedies
        )
        guest = "-" if item.guest is None else f"{item.guest.name}: {item.guest.state}"
        reason = item.reason + (f" ({item.error})" if item.error else "")
        cells = [
            f"<td>{html.escape(item.service.name)}</td>",
            f'<td style="background:{colour}"><b>{html.escape(item.verdict.value)}</b></td>',
            f"<td>{html.escape(_host_text(item.host))}</td>",
            f"<td>{html.escape(guest)}</td>",
            f"<td>{html.escape(reason)}</td>",
            f"<td><code>{remedy}</code></td>" if remedy else "<td></td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _needs_action(diagnosis: Diagnosis) -> str:
    return ", ".join(f"{s.service.name}: {s.verdict.value}" for s in diagnosis.problems)


@attrs.frozen
class Diagnosis(JsonRecord):
    """Both ends of every integration service of one VM.

    Attributes:
        vm: The VM's name, or its id as text when it was named by id and
            the host could not be read.
        target: The host's URL (never with a secret).
        guest_target: The guest connection's URL; empty without one.
        summary: The VM as ``Get-VM`` shows it; ``None`` when the host could
            not be read.
        integration_services_state: The host's ``IntegrationServicesState``
            for the VM (``Up to date``, ``Update required``), where the host
            reports it; ``None`` otherwise.
        guest_os: The guest's OS name: the caller's, or the ``OSName`` the
            guest published through Key-Value Pair Exchange; empty when
            unknown.
        host_os: The host's release as the caller gave it; empty when not.
        advice: How to update the guest's integration services
            (:func:`~hvintegration.maintenance.advise`) when a service
            reports a protocol mismatch or the host says an update is
            required, and both OS names are known.
        services: One :class:`ServiceDiagnosis` per catalogue service, in
            catalogue order.
        notes: What else was found: a side that could not be read, where
            the OS names came from, what was left unknown.

    Example:
        >>> import asyncio
        >>> from hvintegration import HyperVHost
        >>> async def main():
        ...     async with HyperVHost.connect("sim://") as host:
        ...         return await host.vm("demovm").diagnose()
        >>> d = asyncio.run(main())
        >>> d.verdict("Guest Service Interface").value, d.verdict("Heartbeat").value
        ('disabled on host', 'working')
    """

    vm: str
    target: str
    guest_target: str
    summary: VMSummary | None
    integration_services_state: str | None
    guest_os: str
    host_os: str
    advice: Advice | None
    services: tuple[ServiceDiagnosis, ...] = attrs.field(converter=record_list)
    notes: tuple[str, ...] = ()

    __json_properties__: ClassVar[tuple[str, ...]] = ("ok",)

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON data, with ``guest_target``, ``guest_os``
        and ``host_os`` ``null`` when empty.

        JSON writes a missing value as ``null``, as for ``summary`` and
        ``advice``; the attributes themselves stay text.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://") as host:
            ...         return await host.vm("demovm").diagnose()
            >>> data = asyncio.run(main()).to_dict()
            >>> data["guest_target"], data["host_os"], data["services"][0]["error"]
            (None, None, None)
        """
        return _nulls(super().to_dict(), ("guest_target", "guest_os", "host_os"))

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("VMName", lambda r: r.vm),
        ("State", lambda r: r.summary.state if r.summary else "?"),
        ("OK", lambda r: r.ok),
        ("Working", lambda r: len(r.by_verdict(DiagnosisVerdict.WORKING))),
        ("NeedsAction", _needs_action),
    )

    @property
    def ok(self) -> bool:
        """Whether nothing asks for action (every service is working, not
        supported, or unknown only because no guest was asked)."""
        return not self.problems

    @property
    def problems(self) -> RecordList[ServiceDiagnosis]:
        """The services that ask for action, in catalogue order."""
        return RecordList(item for item in self.services if item.problem)

    def by_verdict(self, verdict: DiagnosisVerdict) -> RecordList[ServiceDiagnosis]:
        """The services with one verdict."""
        return RecordList(item for item in self.services if item.verdict is verdict)

    def service(self, name: str) -> ServiceDiagnosis:
        """One service's diagnosis, by any name the catalogue knows.

        Raises:
            ServiceNotFoundError: The name is unknown.
        """
        from hvintegration.catalogue import resolve

        spec = resolve(name)
        return next(item for item in self.services if item.service is spec)

    def verdict(self, name: str) -> DiagnosisVerdict:
        """One service's verdict, by any name the catalogue knows."""
        return self.service(name).verdict

    @property
    def remedies(self) -> tuple[tuple[ServiceDiagnosis, Remedy], ...]:
        """Every remedy step once, with the first service that asks for it, in catalogue order.

        A step several services share (start the VM, update the guest's
        integration services) is listed once; :meth:`remedy_services` says
        which services it is for.
        """
        seen: set[Remedy] = set()
        steps = []
        for item in self.services:
            for step in item.remedies:
                if step not in seen:
                    seen.add(step)
                    steps.append((item, step))
        return tuple(steps)

    def remedy_services(self, step: Remedy) -> RecordList[ServiceDiagnosis]:
        """The services whose remedies include ``step``, in catalogue order."""
        return RecordList(item for item in self.services if step in item.remedies)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for item in self.services:
            counts[item.verdict.value] = counts.get(item.verdict.value, 0) + 1
        summary = ", ".join(f"{n} {v}" for v, n in counts.items())
        return f"<Diagnosis {self.vm}: {summary}>"

    def _repr_html_(self) -> str:
        state = self.summary.state if self.summary else "unknown"
        title = f"{self.vm} ({state})"
        parts = [f"<p><b>{html.escape(title)}</b></p>", _html_services(self.services)]
        if self.notes:
            notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.notes)
            parts.append(f"<ul>{notes}</ul>")
        return "".join(parts)
