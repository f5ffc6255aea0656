"""Records of a fleet run: one result per target, and rows that say their target.

A fleet run gives a :class:`FleetResult`: one :class:`TargetResult` per
target (ok or the error, and the value the target gave) and one table of
rows across every target that answered. Every row class lists its columns
once (``__columns__``), so the same rows render as a notebook table, plain
text, JSON and a pandas DataFrame.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from hvintegration import catalogue
from hvintegration._table import Column, JsonRecord, RecordList, html_table, text_table
from hvintegration._table import plain as table_plain
from hvintegration.diagnosis_records import Remedy
from hvintegration.errors import BatchError, HvIntegrationError

__all__ = [
    "KINDS",
    "DaemonRow",
    "DiagnosisRow",
    "FleetProgress",
    "FleetResult",
    "GuestServiceRow",
    "PlanItem",
    "ServiceRow",
    "TargetResult",
    "plain",
]

KINDS = ("host", "windows", "linux")
"""What a fleet target is: a Hyper-V ``host``, a ``windows`` guest reached
directly, or a ``linux`` guest."""

_T = TypeVar("_T")
_R = TypeVar("_R")


def plain(value: Any) -> Any:
    """A record or value as JSON-ready data: attrs fields by name, ids as
    text, catalogue entries by key, errors as ``{"type", "message"}``
    (the one converter, :func:`hvintegration._table.plain`, writes them).

    Example:
        >>> row = ServiceRow("sim://HV01", "demovm", uuid.UUID(int=0), "vss", True, "OK")
        >>> plain(row)["service"], plain(ValueError("bad"))
        ('vss', {'type': 'ValueError', 'message': 'bad'})
    """
    if attrs.has(type(value)) and not hasattr(value, "to_dict"):
        # A fleet record: its fields, each in the form below.
        return {f.name: plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    # Everything else as every record writes it (hvintegration._table.plain):
    # a host, Windows or Linux record in the schema of its own to_dict().
    return table_plain(value)


@attrs.frozen(eq=False)
class TargetResult(Generic[_T]):
    """What one target of a fleet run gave: a value, or the error it failed with.

    Attributes:
        target: The target's name (its inventory name, else its URL).
        url: The target's URL, with no secret in it.
        kind: ``host``, ``windows`` or ``linux``.
        value: What the target gave; when it failed, ``None``, or what it
            did before failing when the error is a
            :class:`~hvintegration.errors.BatchError` (its ``result``).
        error: Why it failed, ``None`` when it did not. Library failures
            are :class:`~hvintegration.errors.HvIntegrationError` (a target
            that did not finish within the fleet's per-target timeout is an
            :class:`~hvintegration.errors.OperationTimeoutError`); a bad
            request, such as an invalid VM name, keeps its own type
            (``ValueError``...).
        seconds: Wall time spent on the target, connecting included.

    Example:
        >>> TargetResult("hv01", "sim://hv01", "host", 3, None, 0.01).ok
        True
    """

    target: str
    url: str
    kind: str
    value: _T | None
    error: Exception | None
    seconds: float

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Target", lambda r: r.target),
        ("Kind", lambda r: r.kind),
        ("OK", lambda r: r.ok),
        ("Error", lambda r: "" if r.error is None else f"{type(r.error).__name__}: {r.error}"),
        ("Seconds", lambda r: f"{r.seconds:.2f}"),
    )

    @property
    def ok(self) -> bool:
        """Whether the target did its work."""
        return self.error is None

    def __repr__(self) -> str:
        outcome = "ok" if self.error is None else f"{type(self.error).__name__}"
        return f"<TargetResult {self.target} {outcome}>"

    def _repr_html_(self) -> str:
        return html_table([self])


@attrs.frozen
class FleetProgress:
    """How far a fleet run is, given to the progress callback after each target.

    Attributes:
        done: Targets finished so far (ok or failed).
        total: Targets in the run.
        failed: How many of those finished failed.
        last: The result of the target that just finished.
    """

    done: int
    total: int
    failed: int
    last: TargetResult[Any]


@attrs.frozen
class ServiceRow(JsonRecord):
    """One integration service of one VM on one host, as a fleet table row.

    Attributes:
        target: The host's name in the fleet.
        vm: The VM's name.
        vm_id: The VM's id.
        service: The catalogue key (``guest_service_interface``...), as
            every record's JSON names a service; the host's own name for a
            service the catalogue does not know. The table shows the
            English name.
        enabled: Whether the host offers the service to the VM.
        status: ``PrimaryStatusDescription`` (``OK``, ``No Contact``...),
            empty while the VM is off.
    """

    target: str
    vm: str
    vm_id: uuid.UUID
    service: str
    enabled: bool
    status: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Target", lambda r: r.target),
        ("VMName", lambda r: r.vm),
        ("Name", lambda r: _service_name(r.service)),
        ("Enabled", lambda r: r.enabled),
        ("PrimaryStatusDescription", lambda r: r.status),
    )


@attrs.frozen
class GuestServiceRow(JsonRecord):
    """One ``vmic*`` service of one Windows guest, as a fleet table row.

    Attributes:
        target: The guest's name in the fleet.
        name: The service name (``vmicheartbeat``...).
        service: The catalogue key, empty when unknown.
        present: Whether the guest has the service.
        status: ``Running``, ``Stopped``...; empty when absent.
        start_type: ``Manual``, ``Automatic`` or ``Disabled``.
    """

    target: str
    name: str
    service: str
    present: bool
    status: str
    start_type: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Target", lambda r: r.target),
        ("Name", lambda r: r.name),
        ("Service", lambda r: _service_name(r.service)),
        ("Status", lambda r: r.status if r.present else "(absent)"),
        ("StartType", lambda r: r.start_type),
    )


@attrs.frozen
class DaemonRow(JsonRecord):
    """One integration daemon of one Linux guest, as a fleet table row.

    Attributes:
        target: The guest's name in the fleet.
        daemon: The program name this guest uses (``hv_kvp_daemon``...).
        service: The catalogue key of the integration service it serves.
        running: Whether an instance runs.
        pids: The running instances' process ids.
        program: The program a start would run, empty when none is installed.
    """

    target: str
    daemon: str
    service: str
    running: bool
    pids: tuple[int, ...]
    program: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Target", lambda r: r.target),
        ("Daemon", lambda r: r.daemon),
        ("Service", lambda r: _service_name(r.service)),
        ("Running", lambda r: r.running),
        ("PIDs", lambda r: r.pids),
        ("Program", lambda r: r.program or "(not installed)"),
    )


@attrs.frozen
class DiagnosisRow(JsonRecord):
    """One integration service of one VM, diagnosed from its host, as a fleet table row.

    Attributes:
        target: The host's name in the fleet.
        vm: The VM's name.
        vm_id: The VM's id (VM names need not be unique on a host);
            ``None`` when the host could not say it.
        service: The catalogue key of the integration service.
        verdict: The verdict (``working``, ``disabled on host``...; see
            :mod:`hvintegration.diagnosis`).
        problem: Whether it asks for action.
        reason: Why, in one sentence.
        remedies: The steps that fix it
            (:class:`~hvintegration.diagnosis_records.Remedy`: the library
            call, the command and the manual way), host side first; empty
            when nothing is to be done. The table shows each step's command,
            else its manual way.
    """

    target: str
    vm: str
    vm_id: uuid.UUID | None
    service: str
    verdict: str
    problem: bool
    reason: str
    remedies: tuple[Remedy, ...] = ()

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Target", lambda r: r.target),
        ("VMName", lambda r: r.vm),
        ("VMId", lambda r: "" if r.vm_id is None else str(r.vm_id)),
        ("Service", lambda r: _service_name(r.service)),
        ("Verdict", lambda r: r.verdict),
        ("Problem", lambda r: r.problem),
        ("Why", lambda r: r.reason),
        ("Remedy", lambda r: "; ".join(step.cli or step.manual for step in r.remedies)),
    )


@attrs.frozen
class PlanItem(JsonRecord):
    """One difference between a policy and a target, and what applying it did.

    Attributes:
        target: The target's name in the fleet.
        vm: The VM on a host; empty for a guest.
        item: The integration service (host) or daemon (Linux guest).
        current: Its state now: enabled or running.
        desired: The state the policy asks for.
        action: ``enable``, ``disable``, ``start`` or ``stop``;
            ``unavailable`` when the target cannot comply at all.
        needs_force: The change turns off a service the host or guest needs
            (Heartbeat, Shutdown, Key-Value Pair Exchange); applying it
            needs ``force``.
        changed: After apply, whether the change was made; ``None`` in a
            plan.
        vm_id: The VM's id on a host (VM names need not be unique; the
            id is what apply changes); ``None`` for a guest.
        note: Why the item cannot be done as planned, or a warning: the
            host offers no such service to the VM (``action`` is
            ``unavailable``), or the guest has no program to start.
        service: The catalogue service of a host item; ``None`` for a
            daemon, or a service the catalogue does not know. JSON
            (:meth:`to_dict`) writes ``item`` as its key, as every record
            names a service; the table shows ``item``, the English (or the
            host's own) name.

    Example:
        >>> PlanItem("hv01", "demovm", "VSS", True, False, "disable", False).diff_line
        '~ hv01 demovm VSS: enabled -> disabled'
    """

    target: str
    vm: str
    item: str
    current: bool
    desired: bool
    action: str
    needs_force: bool
    changed: bool | None = None
    vm_id: uuid.UUID | None = None
    note: str = ""
    service: catalogue.ServiceSpec | None = None

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Target", lambda r: r.target),
        ("VMName", lambda r: r.vm),
        ("Item", lambda r: r.item),
        ("Action", lambda r: r.action),
        ("Force", lambda r: r.needs_force),
        ("Changed", lambda r: "" if r.changed is None else r.changed),
        ("Note", lambda r: r.note),
    )

    def to_dict(self) -> dict[str, Any]:
        """The item as plain JSON data: its fields, except that ``item`` is
        the catalogue key of a host service (``"guest_service_interface"``)
        and ``service`` is not repeated; a daemon keeps the guest's own
        program name.

        Example:
            >>> item = PlanItem("hv01", "demovm", "VSS", True, False, "disable", False,
            ...                 service=catalogue.VSS)
            >>> item.to_dict()["item"], "service" in item.to_dict()
            ('vss', False)
        """
        data = {f.name: table_plain(getattr(self, f.name)) for f in attrs.fields(PlanItem)}
        service = data.pop("service")
        if service is not None:
            data["item"] = service
        return data

    @property
    def diff_line(self) -> str:
        """The change as one line of a diff: ``~ target vm item: old -> new``."""
        on, off = (
            ("running", "stopped")
            if self.action in ("start", "stop")
            else (
                "enabled",
                "disabled",
            )
        )
        where = f"{self.target} {self.vm}".rstrip()
        if self.action == "unavailable":
            return f"! {where} {self.item}: cannot comply: {self.note}"
        before, after = (on if self.current else off), (on if self.desired else off)
        line = f"~ {where} {self.item}: {before} -> {after}"
        return f"{line} ({self.note})" if self.note else line


@attrs.frozen(eq=False)
class FleetResult(Generic[_R]):
    """A fleet run: every target's outcome and one table of rows across targets.

    A failed target never hides the others: its error is in
    :attr:`targets` and :attr:`errors`, and the rows of every other target
    are in :attr:`rows`. Renders as HTML in a notebook (the rows, then the
    failures), as text with ``str()``, and as JSON with :meth:`to_json`.

    Attributes:
        targets: One result per target, in the fleet's order.
        rows: The rows of every target that answered, in target order; each
            row says its target.
        peak_connections: The most connections the run held open at once.

    Example:
        >>> r = TargetResult("hv01", "sim://hv01", "host", 0, None, 0.1)
        >>> FleetResult(RecordList([r]), RecordList([]), 1).ok
        True
    """

    targets: RecordList[TargetResult[Any]]
    rows: RecordList[_R]
    peak_connections: int

    @property
    def ok(self) -> bool:
        """Whether every target did its work."""
        return all(result.ok for result in self.targets)

    @property
    def failed(self) -> RecordList[TargetResult[Any]]:
        """The targets that failed."""
        return RecordList(result for result in self.targets if not result.ok)

    @property
    def errors(self) -> dict[str, Exception]:
        """Each failed target's error, by target name."""
        return {r.target: r.error for r in self.targets if r.error is not None}

    @property
    def values(self) -> dict[str, Any]:
        """Each successful target's value, by target name."""
        return {r.target: r.value for r in self.targets if r.error is None}

    def raise_for_errors(self) -> FleetResult[_R]:
        """Raise when any target failed; else return the result itself.

        Raises:
            BatchError: Some targets failed; ``errors`` maps each to its
                error (non-library errors are wrapped in an
                ``HvIntegrationError`` with the original as ``__cause__``),
                and ``result`` is this whole result.
        """
        if self.ok:
            return self
        errors: dict[str, HvIntegrationError] = {}
        for name, error in self.errors.items():
            if isinstance(error, HvIntegrationError):
                errors[name] = error
            else:
                wrapped = HvIntegrationError(f"{type(error).__name__}: {error}", target=name)
                wrapped.__cause__ = error
                errors[name] = wrapped
        message = f"{len(errors)} of {len(self.targets)} targets failed"
        raise BatchError(message, result=self, errors=errors)

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data: ``ok``, ``rows``, ``targets`` and
        ``peak_connections``."""
        return {
            "ok": self.ok,
            "rows": [plain(row) for row in self.rows],
            "targets": [
                {
                    "target": r.target,
                    "url": r.url,
                    "kind": r.kind,
                    "ok": r.ok,
                    "error": None if r.error is None else plain(r.error),
                    "seconds": round(r.seconds, 3),
                }
                for r in self.targets
            ],
            "peak_connections": self.peak_connections,
        }

    def to_json(self) -> str:
        """The result as JSON text (see :meth:`as_dict`)."""
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    def to_dataframe(self) -> Any:
        """The rows as a pandas ``DataFrame``, as ``result.rows.to_dataframe()``.

        The columns are the rows' field names (``target``, ``vm``,
        ``vm_id``...), ids as text, booleans as booleans.

        Returns:
            A ``pandas.DataFrame``; empty, with no columns, when no row came.

        Raises:
            ModuleNotFoundError: pandas is not installed (the message names
                the ``hvintegration[pandas]`` extra).
        """
        return self.rows.to_dataframe()

    def text(self) -> str:
        """The rows as an aligned text table, then one line per failed target."""
        parts = []
        if self.rows:
            parts.append(text_table(self.rows))  # type: ignore[arg-type]
        parts.extend(
            f"{r.target}: failed: {type(r.error).__name__}: {r.error}" for r in self.failed
        )
        return "\n".join(parts) if parts else "(no rows)"

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return (
            f"<FleetResult {len(self.targets)} targets, {len(self.failed)} failed, "
            f"{len(self.rows)} rows>"
        )

    def _repr_html_(self) -> str:
        rows = self.rows._repr_html_()
        if not self.failed:
            return rows
        return f"{rows}<p>Failed targets:</p>{html_table(self.failed)}"


def _service_name(key: str) -> str:
    """The English name of a catalogue key, else the text itself (a host's
    own name for a service the catalogue does not know)."""
    if not key:
        return key
    try:
        spec = catalogue.resolve(key)
    except (LookupError, ValueError):
        return key
    return spec.name if spec.key == key else key
