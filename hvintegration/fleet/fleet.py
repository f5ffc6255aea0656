"""``Fleet``: many hosts and guests at once, with a bound on open connections.

A fleet is a list of targets (URLs, target settings, or an inventory's
entries), each a Hyper-V ``host``, a ``windows`` guest or a ``linux`` guest.
A run opens one connection per target, does the target's work (one round
trip per host for a read or an apply), closes it, and reports per target.
At most ``max_connections`` targets are open at once; each target has
``timeout`` seconds for all of its work, connecting included.

A target that cannot be reached, answers too slowly, fails, or refuses the
credentials fails alone: its error is in its :class:`TargetResult`, and the
others' results are all kept. Cancelling the run (``Ctrl-C``, a task's
``cancel()``) closes every open connection before the cancellation
propagates, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, Union

import attrs

from hvintegration._connect import powershell_transport_for, shell_transport_for
from hvintegration._resource import DEFAULT_TIMEOUT
from hvintegration._table import RecordList
from hvintegration.diagnosis import diagnose_host
from hvintegration.diagnosis_records import Diagnosis
from hvintegration.errors import BatchError, HvIntegrationError, OperationTimeoutError
from hvintegration.fleet.records import (
    KINDS,
    DaemonRow,
    DiagnosisRow,
    FleetProgress,
    FleetResult,
    GuestServiceRow,
    PlanItem,
    ServiceRow,
    TargetResult,
)
from hvintegration.host import DesiredStates, HyperVHost
from hvintegration.linux import LinuxGuest, LinuxStatus
from hvintegration.maintenance import resolve_host_os
from hvintegration.records import ApplyResult, IntegrationServiceState
from hvintegration.transport import Target
from hvintegration.windows import GuestServiceState, WindowsGuest

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TARGET_TIMEOUT",
    "Fleet",
    "FleetTarget",
    "ProgressCallback",
    "TargetSpec",
    "Work",
    "infer_kind",
]

DEFAULT_MAX_CONNECTIONS = 32
"""Targets a fleet run keeps open at once, unless set otherwise."""

DEFAULT_TARGET_TIMEOUT = 300.0
"""Seconds one target's whole work may take (connecting included), unless
set otherwise."""

TargetSpec = Union[str, Target, "FleetTarget"]
"""A fleet member: a URL, target settings (or a simulated host or guest), or
a :class:`FleetTarget`."""

ProgressCallback = Callable[[FleetProgress], None]
"""Called after each target finishes, with how far the run is."""

Work = Callable[[Any, "FleetTarget"], Awaitable[Any]]
"""A coroutine function run on one target: given the connected resource and
the :class:`FleetTarget`, it returns the target's value."""

_log = logging.getLogger(__name__)

Resource = Union[HyperVHost, WindowsGuest, LinuxGuest]

_V = TypeVar("_V")
_R = TypeVar("_R")
_Res = TypeVar("_Res", HyperVHost, WindowsGuest, LinuxGuest)


def infer_kind(target: str | Target) -> str:
    """Whether a target is a ``host``, a ``windows`` guest or a ``linux`` guest.

    ``sim-linux://`` and ``ssh://`` with a POSIX login shell (the default)
    are Linux guests; ``sim://?guest=VM`` is a Windows guest; everything
    else (``sim://``, ``psrp://``, ``local://``, ``ssh://`` with
    ``shell=powershell`` or ``cmd``) is a Hyper-V host. Name the kind
    explicitly (:class:`FleetTarget`) when this guess is wrong, such as a
    Windows guest over ``psrp://``. A target object is read through its
    URL, the same as its URL string, unless it has a ``kind`` attribute
    naming one of the kinds.

    Args:
        target: A URL or target settings.

    Returns:
        One of :data:`~hvintegration.fleet.records.KINDS`.

    Example:
        >>> infer_kind("sim-linux://web1"), infer_kind("sim://?guest=demovm"), infer_kind("sim://")
        ('linux', 'windows', 'host')
    """
    if not isinstance(target, str):
        # A target object says what it is in its URL, which every target
        # has (a simulated guest's ``lab.inside(VM)`` is ``sim://HV01?guest=VM``),
        # unless it names its kind itself.
        declared = getattr(target, "kind", None)
        if isinstance(declared, str) and declared in KINDS:
            return declared
        target = target.url
    parts = urllib.parse.urlsplit(target.strip())
    scheme = parts.scheme.lower()
    query = urllib.parse.parse_qs(parts.query)
    shell = query.get("shell", ["posix"])[-1]
    guest = bool(query.get("guest"))
    if scheme == "sim-linux" or (scheme == "ssh" and shell == "posix"):
        return "linux"
    if scheme == "sim" and guest:
        return "windows"
    return "host"


def _positive(name: str) -> Callable[[Any, Any, float | None], None]:
    def check(_instance: Any, _attribute: Any, value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")

    return check


def _names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("groups is a list of group names, not one string")
    return tuple(value)


def _kind(_instance: Any, _attribute: Any, value: str) -> None:
    if value and value not in KINDS:
        raise ValueError(f"unknown target kind {value!r} (valid: {', '.join(KINDS)})")


@attrs.frozen
class FleetTarget:
    """One member of a fleet: where it is, what it is, and its own settings.

    Attributes:
        target: A URL or target settings (``SSHTarget``, ``PSRPTarget``, a
            simulated host...); settings carry credentials, a URL need not.
        name: The name rows and results use; the URL when empty.
        kind: ``host``, ``windows`` or ``linux``; guessed from the target
            (:func:`infer_kind`) when empty.
        groups: The inventory groups it belongs to.
        timeout: Seconds for all its work in one run; the fleet's when
            ``None``.
        operation_timeout: Seconds per operation; the fleet's when ``None``.

    Raises:
        ValueError: An unknown kind or a timeout that is not positive.

    Example:
        >>> FleetTarget("sim-linux://web1").kind
        'linux'
        >>> FleetTarget("sim://HV02", name="hv02").name
        'hv02'
    """

    target: str | Target = attrs.field(repr=lambda t: repr(_url_of(t)))
    name: str = ""
    kind: str = attrs.field(default="", validator=_kind)
    groups: tuple[str, ...] = attrs.field(default=(), converter=_names)
    timeout: float | None = attrs.field(default=None, validator=_positive("timeout"))
    operation_timeout: float | None = attrs.field(
        default=None, validator=_positive("operation_timeout")
    )

    def __attrs_post_init__(self) -> None:
        if isinstance(self.target, str) and "://" not in self.target:
            raise ValueError(
                f"a fleet target is a URL such as sim:// or ssh://user@host, not {self.target!r}"
            )
        if not self.name:
            object.__setattr__(self, "name", self.url)
        if not self.kind:
            object.__setattr__(self, "kind", infer_kind(self.target))

    @property
    def url(self) -> str:
        """The target's URL, with no secret in it."""
        return _url_of(self.target)


def _url_of(target: str | Target) -> str:
    if isinstance(target, str):
        return _without_password(target)
    return target.url


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url.strip())
    if parts.password is None:
        return url.strip()
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def _as_member(spec: TargetSpec) -> FleetTarget:
    if isinstance(spec, FleetTarget):
        return spec
    return FleetTarget(spec)


class _Gauge:
    """Connections open now, and the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def up(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def down(self) -> None:
        self.now -= 1


class Fleet:
    """Many Hyper-V hosts, Windows guests and Linux guests, worked on concurrently.

    Args:
        targets: URLs, target settings or :class:`FleetTarget` entries (an
            inventory's :meth:`~hvintegration.fleet.Inventory.fleet` builds
            them with names, groups and credentials).
        max_connections: Targets open at once; the rest wait their turn.
        timeout: Seconds one target's whole work may take, connecting
            included; a target's own ``timeout`` wins.
        operation_timeout: Seconds each operation on a target may take.
        progress: Called after each target finishes (ok or not), in the
            event loop; an exception it raises is logged (logger
            ``hvintegration.fleet.fleet``), the callback is called no more,
            and the run goes on, so no result is lost to it.

    Raises:
        ValueError: Two targets share a name, ``max_connections`` is below 1,
            or a timeout is not positive.
        TypeError: ``targets`` is one string rather than a list.

    Example:
        >>> import asyncio
        >>> fleet = Fleet(["sim://HV01?vms=2", "sim://HV02", "sim-linux://web1"],
        ...               max_connections=2)
        >>> [t.kind for t in fleet]
        ['host', 'host', 'linux']
        >>> result = asyncio.run(fleet.integration_services())
        >>> len(result.rows), result.ok
        (24, True)
    """

    def __init__(
        self,
        targets: Iterable[TargetSpec],
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        timeout: float = DEFAULT_TARGET_TIMEOUT,
        operation_timeout: float = DEFAULT_TIMEOUT,
        progress: ProgressCallback | None = None,
    ) -> None:
        if isinstance(targets, str):
            raise TypeError("Fleet takes a list of targets; wrap one URL in a list")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise TypeError("max_connections must be a whole number")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        for name, value in (("timeout", timeout), ("operation_timeout", operation_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        self.targets: tuple[FleetTarget, ...] = tuple(_as_member(t) for t in targets)
        seen: set[str] = set()
        for member in self.targets:
            if member.name in seen:
                raise ValueError(f"two fleet targets are named {member.name!r}")
            seen.add(member.name)
        self.max_connections = max_connections
        self.timeout = timeout
        self.operation_timeout = operation_timeout
        self.progress = progress

    def __repr__(self) -> str:
        counts = {kind: sum(t.kind == kind for t in self.targets) for kind in KINDS}
        summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n) or "empty"
        return f"<Fleet {summary}, max_connections={self.max_connections}>"

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self) -> Iterator[FleetTarget]:
        return iter(self.targets)

    def select(
        self,
        *,
        kind: str | None = None,
        group: str | None = None,
        names: Iterable[str] | None = None,
    ) -> Fleet:
        """The members that match every filter given, as a fleet with the same settings.

        Args:
            kind: ``host``, ``windows`` or ``linux``.
            group: An inventory group.
            names: Target names; all when ``None`` (an empty list selects
                none).

        Raises:
            ValueError: An unknown kind, or a name no member has.
            TypeError: ``names`` is one string rather than a list.
        """
        if isinstance(names, str):
            raise TypeError("names is a list of target names; wrap one name in a list")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown target kind {kind!r} (valid: {', '.join(KINDS)})")
        wanted = None if names is None else set(names)
        missing = (wanted or set()) - {t.name for t in self.targets}
        if missing:
            raise ValueError(f"no fleet target named {', '.join(sorted(missing))}")
        chosen = [
            t
            for t in self.targets
            if (kind is None or t.kind == kind)
            and (group is None or group in t.groups)
            and (wanted is None or t.name in wanted)
        ]
        return Fleet(
            chosen,
            max_connections=self.max_connections,
            timeout=self.timeout,
            operation_timeout=self.operation_timeout,
            progress=self.progress,
        )

    # -- the reads and changes a fleet offers --------------------------------

    async def integration_services(
        self, vms: Iterable[str] | None = None
    ) -> FleetResult[ServiceRow]:
        """Every host's VMs' integration services: one round trip per host.

        Args:
            vms: VM names to read on every host; all VMs when ``None``. A
                host that lacks some of them fails with a ``BatchError``
                whose ``result`` keeps the services it did read.

        Returns:
            One row per service per VM per host; each host's value is its
            :class:`~hvintegration.records.IntegrationServiceState` list.
            Guests of the fleet are left out.

        Raises:
            TypeError: ``vms`` is one string rather than a list.
        """
        names = _vm_names(vms)

        async def read(host: HyperVHost, _: FleetTarget) -> RecordList[IntegrationServiceState]:
            return await host.integration_services(names)

        return await self.run({"host": read}, rows=_service_rows)

    async def diagnose(
        self, vms: Iterable[str] | None = None, *, host_os: str | None = None
    ) -> FleetResult[DiagnosisRow]:
        """Diagnose every host's VMs from the host's side: three round trips per host.

        Each host runs :func:`hvintegration.diagnosis.diagnose_host` (the
        VMs, their services and their KVP items, each read once for all).

        Args:
            vms: VM names to diagnose on every host; all VMs when ``None``.
            host_os: The hosts' release, for the update path of a protocol
                mismatch.

        Raises:
            NotFoundError: ``host_os`` is a name
                :func:`~hvintegration.maintenance.advise` does not know
                (checked before any host is contacted).

        Returns:
            One row per service per VM per host (with the VM's id and the
            remedies); each host's value is its
            :class:`~hvintegration.diagnosis_records.Diagnosis` list.

        Example:
            >>> import asyncio
            >>> result = asyncio.run(Fleet(["sim://HV01", "sim://HV02"]).diagnose())
            >>> sorted({(row.target, row.service) for row in result.rows if row.problem})
            [('sim://HV01', 'guest_service_interface'), ('sim://HV02', 'guest_service_interface')]
        """
        names = _vm_names(vms)
        if host_os is not None:
            # Checked once, before any host is contacted: a mistyped name
            # would otherwise fail every host alike.
            resolve_host_os(host_os)

        async def diagnose(host: HyperVHost, _: FleetTarget) -> RecordList[Diagnosis]:
            return await diagnose_host(host, names, host_os=host_os)

        return await self.run({"host": diagnose}, rows=_diagnosis_rows)

    async def windows_services(self) -> FleetResult[GuestServiceRow]:
        """Every Windows guest's ``vmic*`` services: one round trip per guest.

        Returns:
            One row per service per guest; hosts and Linux guests are left out.
        """

        async def read(guest: WindowsGuest, _: FleetTarget) -> RecordList[GuestServiceState]:
            return await guest.services()

        return await self.run({"windows": read}, rows=_guest_rows)

    async def linux_status(self) -> FleetResult[DaemonRow]:
        """Every Linux guest's status: one round trip per guest.

        Returns:
            One row per integration daemon per guest; each guest's value is
            its :class:`~hvintegration.linux.LinuxStatus`. Hosts and
            Windows guests are left out.
        """

        async def read(guest: LinuxGuest, _: FleetTarget) -> LinuxStatus:
            return await guest.status()

        return await self.run({"linux": read}, rows=_daemon_rows)

    async def apply(
        self, desired: Mapping[str, DesiredStates], *, force: bool = False
    ) -> FleetResult[PlanItem]:
        """Bring VMs' services to a desired state, host by host: one round trip per host.

        Only what differs changes (as :meth:`HyperVHost.apply`).

        Args:
            desired: Per target name, the host's desired states, e.g.
                ``{"hv01": {"demovm": {"VSS": True}}}``. Hosts not named are
                not contacted.
            force: Allow turning off Heartbeat, Shutdown or Key-Value Pair
                Exchange; without it such a host fails with
                ``UnsafeChangeError`` and nothing is sent to it.

        Returns:
            One row per requested service, with ``changed`` set; each host's
            value is its :class:`~hvintegration.records.ApplyResult`.

        Raises:
            ValueError: A name is not a host of this fleet.
        """
        hosts = {t.name for t in self.targets if t.kind == "host"}
        unknown = sorted(set(desired) - hosts)
        if unknown:
            raise ValueError(f"not a host of this fleet: {', '.join(unknown)}")
        chosen = self.select(kind="host", names=desired)

        async def change(host: HyperVHost, member: FleetTarget) -> ApplyResult:
            return await host.apply(desired[member.name], force=force)

        return await chosen.run({"host": change}, rows=_change_rows, exclusive=True)

    # -- your own work on every target ---------------------------------------

    async def run_hosts(
        self,
        work: Callable[[HyperVHost], Awaitable[_V]],
        *,
        rows: Callable[[str, _V], Iterable[_R]] | None = None,
    ) -> FleetResult[_R]:
        """Run your own coroutine on every host of the fleet, connected.

        Args:
            work: Given the connected :class:`~hvintegration.HyperVHost`;
                its return value becomes the target's ``value``.
            rows: Turns a target's name and value into table rows; no rows
                when ``None``.

        Returns:
            One result per host, and the rows.

        Example:
            >>> import asyncio
            >>> async def count(host):
            ...     return len(await host.list_vms())
            >>> result = asyncio.run(Fleet(["sim://A?vms=2", "sim://B"]).run_hosts(count))
            >>> result.values
            {'sim://A?vms=2': 3, 'sim://B': 1}
        """
        return await self.run({"host": _ignore_member(work)}, rows=rows)

    async def run_windows(
        self,
        work: Callable[[WindowsGuest], Awaitable[_V]],
        *,
        rows: Callable[[str, _V], Iterable[_R]] | None = None,
    ) -> FleetResult[_R]:
        """Run your own coroutine on every Windows guest of the fleet (see :meth:`run_hosts`)."""
        return await self.run({"windows": _ignore_member(work)}, rows=rows)

    async def run_linux(
        self,
        work: Callable[[LinuxGuest], Awaitable[_V]],
        *,
        rows: Callable[[str, _V], Iterable[_R]] | None = None,
    ) -> FleetResult[_R]:
        """Run your own coroutine on every Linux guest of the fleet (see :meth:`run_hosts`)."""
        return await self.run({"linux": _ignore_member(work)}, rows=rows)

    # -- the engine -----------------------------------------------------------

    async def run(
        self,
        works: Mapping[str, Work],
        *,
        rows: Callable[[str, Any], Iterable[_R]] | None = None,
        exclusive: bool = False,
    ) -> FleetResult[_R]:
        """Run a coroutine per kind of target on every target of those kinds.

        The engine under every other method: targets of the kinds named run
        concurrently, at most ``max_connections`` open at once, each within
        its timeout; the others are left out.

        Args:
            works: Per kind (``host``, ``windows``, ``linux``), a coroutine
                function given the connected resource
                (:class:`~hvintegration.HyperVHost`,
                :class:`~hvintegration.WindowsGuest` or
                :class:`~hvintegration.LinuxGuest`) and the
                :class:`FleetTarget`; what it returns is the target's value.
            rows: Turns a target's name and value into table rows; no rows
                when ``None``.
            exclusive: The work changes its target: members that are one
                machine under two names (same scheme, user, host, port and
                path) run one after the other, never at once.

        Returns:
            One result per target of those kinds, in fleet order, and the rows.

        Raises:
            ValueError: An unknown kind.
        """
        unknown = sorted(set(works) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown target kind {unknown[0]!r} (valid: {', '.join(KINDS)})")
        members = [t for t in self.targets if t.kind in works]
        limit = asyncio.Semaphore(self.max_connections)
        gauge = _Gauge()
        # One machine listed under two names takes its turns one after the
        # other when changed, so each change reads the state the last one left.
        same = {_identity(m.url, exclusive, m.name): asyncio.Lock() for m in members}

        async def one(member: FleetTarget) -> TargetResult[Any]:
            async with same[_identity(member.url, exclusive, member.name)], limit:
                started = time.monotonic()
                budget = member.timeout or self.timeout
                value: Any = None
                error: Exception | None = None
                try:
                    session = self._session(member, works[member.kind], gauge)
                    value = await asyncio.wait_for(session, budget)
                except BatchError as exc:
                    # Part was done before the failure: keep it as the value.
                    error = exc
                    value = exc.result
                except HvIntegrationError as exc:
                    error = exc
                except asyncio.TimeoutError:
                    error = OperationTimeoutError(
                        f"the target did not finish within the fleet's {budget:g} s",
                        timeout=budget,
                        target=member.url,
                        operation="fleet",
                    )
                except Exception as exc:
                    error = exc
                seconds = time.monotonic() - started
                return TargetResult(member.name, member.url, member.kind, value, error, seconds)

        tasks = [asyncio.ensure_future(one(member)) for member in members]
        by_task = dict(zip(tasks, range(len(tasks)), strict=True))
        results: list[TargetResult[Any] | None] = [None] * len(tasks)
        failed = 0
        report = self.progress is not None
        try:
            pending: set[asyncio.Future[TargetResult[Any]]] = set(tasks)
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(finished, key=by_task.__getitem__):
                    result = task.result()
                    results[by_task[task]] = result
                    failed += not result.ok
                    if report:
                        done = sum(r is not None for r in results)
                        report = self._report(FleetProgress(done, len(tasks), failed, result))
        finally:
            # Cancelled: every target closes before we go.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        complete = [r for r in results if r is not None]
        table: list[_R] = []
        if rows is not None:
            for result in complete:
                if result.ok:
                    table.extend(rows(result.target, result.value))
                elif isinstance(result.error, BatchError) and result.value is not None:
                    table.extend(_partial_rows(rows, result))
        return FleetResult(RecordList(complete), RecordList(table), gauge.peak)

    def _report(self, progress: FleetProgress) -> bool:
        assert self.progress is not None
        try:
            self.progress(progress)
        except Exception:
            # A broken progress display must not cost the results (and the
            # changes already made) of the run: say so once, call it no more.
            _log.warning("the fleet's progress callback failed; no more progress", exc_info=True)
            return False
        return True

    async def _session(self, member: FleetTarget, work: Work, gauge: _Gauge) -> Any:
        timeout = member.operation_timeout or self.operation_timeout
        # Any target: the *_transport_for functions refuse the wrong kind clearly.
        target: Any = member.target
        opened: Resource
        if member.kind == "linux":
            opened = LinuxGuest(shell_transport_for(target), timeout=timeout)
        elif member.kind == "windows":
            opened = WindowsGuest(powershell_transport_for(target), timeout=timeout)
        else:
            opened = HyperVHost(powershell_transport_for(target), timeout=timeout)
        gauge.up()
        try:
            try:
                await opened.transport.open()
                return await work(opened, member)
            finally:
                await opened.aclose()
        finally:
            gauge.down()


def _identity(url: str, exclusive: bool, name: str) -> str:
    if not exclusive:
        return name
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    where = (parts.username or "", (parts.hostname or "").lower(), port, parts.path.rstrip("/"))
    return f"{parts.scheme.lower()} {where!r}"


def _vm_names(vms: Iterable[str] | None) -> list[str] | None:
    if isinstance(vms, str):
        raise TypeError("vms is a list of VM names; wrap one name in a list")
    return None if vms is None else list(vms)


def _partial_rows(rows: Callable[[str, Any], Iterable[_R]], result: TargetResult[Any]) -> list[_R]:
    # A failed target whose BatchError kept what it did: the rows of that
    # part. A caller's own work may keep a result of another shape.
    try:
        return list(rows(result.target, result.value))
    except (TypeError, AttributeError):
        return []


def _ignore_member(
    work: Callable[[_Res], Awaitable[_V]],
) -> Callable[[_Res, FleetTarget], Awaitable[_V]]:
    async def call(resource: _Res, _: FleetTarget) -> _V:
        return await work(resource)

    return call


def _service_rows(target: str, states: Iterable[IntegrationServiceState]) -> Iterator[ServiceRow]:
    for s in states:
        service = s.service.key if s.service is not None else s.display_name
        yield ServiceRow(target, s.vm_name, s.vm_id, service, s.enabled, s.primary_status)


def _diagnosis_rows(target: str, diagnoses: Iterable[Diagnosis]) -> Iterator[DiagnosisRow]:
    for d in diagnoses:
        for s in d.services:
            yield DiagnosisRow(
                target,
                d.vm,
                None if d.summary is None else d.summary.id,
                s.service.key,
                s.verdict.value,
                s.problem,
                s.reason,
                s.remedies,
            )


def _guest_rows(target: str, states: Iterable[GuestServiceState]) -> Iterator[GuestServiceRow]:
    for s in states:
        service = s.service.key if s.service is not None else ""
        yield GuestServiceRow(target, s.name, service, s.present, s.status, s.start_type)


def _daemon_rows(target: str, status: LinuxStatus) -> Iterator[DaemonRow]:
    for d in status.daemons:
        pids = tuple(p.pid for p in d.processes)
        yield DaemonRow(target, d.name, d.daemon.service.key, d.running, pids, d.program or "")


def _change_rows(target: str, result: ApplyResult) -> Iterator[PlanItem]:
    for item in result.items:
        state = item.state
        before = state.enabled if not item.changed else not item.requested
        action = "enable" if item.requested else "disable"
        critical = state.service is not None and state.service.critical and not item.requested
        yield PlanItem(
            target,
            state.vm_name,
            state.display_name,
            before,
            item.requested,
            action,
            critical,
            item.changed,
            state.vm_id,
            service=state.service,
        )
