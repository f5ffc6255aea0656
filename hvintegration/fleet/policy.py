"""A desired-state policy for a fleet: plan what differs, then apply only that.

A policy file (TOML) is a list of rules. Each rule says which targets and
VMs it is for and what it wants: host integration services on or off per VM,
and for Linux guests which daemons run::

    [[rule]]                          # every VM of every host
    services = { "Guest Service Interface" = true, "VSS" = true }

    [[rule]]
    group = "prod"                    # only targets in this inventory group
    targets = "hv*"                   # target names matching this pattern
    vms = "web-*"                     # VMs whose names match (hosts only)
    services = { "Time Synchronization" = false }

    [[rule]]
    kind = "linux"
    daemons = { kvp = true, vss = true, fcopy = false }

A rule's filters (``group``, ``targets``, ``vms``, ``kind``) are all
optional, and every one given must match; the patterns are shell-style
(``*``, ``?``, ``[...]``) and case-insensitive, as Hyper-V VM names are. When
several rules set the same service of the same VM, the later rule wins.
Service names are any the catalogue knows (English, older names, ``vmic*``
names, GUIDs); daemons any name of :func:`hvintegration.linux.resolve_daemon`.

:meth:`Policy.plan` reads every host (one round trip each) and Linux guest
(one status each) and reports each difference as a
:class:`~hvintegration.fleet.records.PlanItem`; :meth:`Policy.apply` sends
each host's differences in one round trip and starts or stops the guests'
daemons. Turning off Heartbeat, Shutdown or Key-Value Pair Exchange, or
stopping the KVP daemon, needs ``force=True``, as it does one VM at a time.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from hvintegration import catalogue
from hvintegration._table import RecordList
from hvintegration.errors import (
    BatchError,
    HvIntegrationError,
    InvalidParameterError,
    NotFoundError,
    UnsafeChangeError,
)
from hvintegration.fleet.fleet import Fleet, FleetTarget
from hvintegration.fleet.records import KINDS, FleetResult, PlanItem
from hvintegration.host import HyperVHost
from hvintegration.linux import LinuxGuest, LinuxStatus, resolve_daemon
from hvintegration.linux.names import DaemonSpec
from hvintegration.records import ApplyResult, IntegrationServiceState

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

__all__ = ["Policy", "PolicyError", "Rule", "load_policy"]

_log = logging.getLogger(__name__)


class PolicyError(InvalidParameterError):
    """A policy cannot be used: the message names the file, the rule and the fault."""


def _match(pattern: str | None, value: str) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _vm_match(pattern: str | None, name: str, vm_id: uuid.UUID | None) -> bool:
    if pattern is None:
        return True
    if vm_id is not None:
        try:
            # A VM's id names it whatever it is called: identity by GUID.
            return uuid.UUID(pattern.strip("{}")) == vm_id
        except ValueError:
            pass
    return _match(pattern, name)


@attrs.frozen
class Rule:
    """One rule of a policy.

    Attributes:
        services: Host integration services and whether they must be on.
        daemons: Linux daemons and whether they must run.
        group: Only targets in this inventory group.
        targets: Only targets whose name matches this pattern.
        vms: Only VMs whose name matches this pattern, or the VM whose id
            this GUID is (host services only).
        kind: Only targets of this kind.

    Example:
        >>> rule = Rule(services=((catalogue.VSS, True),), vms="web-*")
        >>> rule.applies_to(FleetTarget("sim://HV01")), rule.wants_vm("WEB-01")
        (True, True)
    """

    services: tuple[tuple[catalogue.ServiceSpec, bool], ...] = ()
    daemons: tuple[tuple[DaemonSpec, bool], ...] = ()
    group: str | None = None
    targets: str | None = None
    vms: str | None = None
    kind: str | None = None

    def applies_to(self, member: FleetTarget) -> bool:
        """Whether the rule's target filters match ``member``."""
        return (
            (self.group is None or self.group in member.groups)
            and _match(self.targets, member.name)
            and (self.kind is None or self.kind == member.kind)
        )

    def wants_vm(self, name: str, vm_id: uuid.UUID | None = None) -> bool:
        """Whether the rule's VM pattern matches the VM ``name``, or its
        GUID is the VM's ``vm_id``."""
        return _vm_match(self.vms, name, vm_id)


@attrs.frozen
class Policy:
    """Rules for what a fleet's services and daemons must be.

    Attributes:
        rules: In file order; later rules win.
        source: The file it came from, if any.

    Example:
        >>> import asyncio
        >>> policy = Policy((Rule(services=((catalogue.GUEST_SERVICE_INTERFACE, True),)),))
        >>> fleet = Fleet(["sim://HV01?vms=1"])
        >>> plan = asyncio.run(policy.plan(fleet))
        >>> [item.diff_line for item in plan.rows]
        ['~ sim://HV01?vms=1 demovm Guest Service Interface: disabled -> enabled', \
'~ sim://HV01?vms=1 vm001 Guest Service Interface: disabled -> enabled']
    """

    rules: tuple[Rule, ...]
    source: str = ""

    def services_for(
        self, member: FleetTarget, vm: str, vm_id: uuid.UUID | None = None
    ) -> dict[catalogue.ServiceSpec, bool]:
        """What the policy wants for one VM of a host target."""
        wanted: dict[catalogue.ServiceSpec, bool] = {}
        for rule in self.rules:
            if rule.services and rule.applies_to(member) and rule.wants_vm(vm, vm_id):
                wanted.update(rule.services)
        return wanted

    def daemons_for(self, member: FleetTarget) -> dict[DaemonSpec, bool]:
        """What the policy wants for a Linux guest target."""
        wanted: dict[DaemonSpec, bool] = {}
        for rule in self.rules:
            if rule.daemons and rule.applies_to(member):
                wanted.update(rule.daemons)
        return wanted

    def _host_plan(
        self, member: FleetTarget, states: Iterable[IntegrationServiceState]
    ) -> tuple[PlanItem, ...]:
        items = []
        # By VM id: two VMs may share a name, and each is planned alone.
        offered: dict[uuid.UUID, tuple[str, set[catalogue.ServiceSpec]]] = {}
        for state in states:
            name, present = offered.setdefault(state.vm_id, (state.vm_name, set()))
            if state.service is None:
                continue
            present.add(state.service)
            desired = self.services_for(member, name, state.vm_id).get(state.service)
            if desired is None or desired == state.enabled:
                continue
            items.append(
                PlanItem(
                    member.name,
                    name,
                    state.service.name,
                    state.enabled,
                    desired,
                    "enable" if desired else "disable",
                    state.service.critical and not desired,
                    vm_id=state.vm_id,
                    service=state.service,
                )
            )
        for vm_id, (name, present) in offered.items():
            for spec, desired in self.services_for(member, name, vm_id).items():
                if spec not in present:
                    # Not compliant, and no apply can make it so: say so.
                    items.append(
                        PlanItem(
                            member.name,
                            name,
                            spec.name,
                            False,
                            desired,
                            "unavailable",
                            False,
                            vm_id=vm_id,
                            note="the host offers no such service to this VM",
                            service=spec,
                        )
                    )
        names = [name for name, _ in offered.values()]
        shared = {name for name in names if names.count(name) > 1}
        # Two VMs of one name: say which is which.
        return tuple(
            attrs.evolve(item, note=f"VM {item.vm_id}" + (f"; {item.note}" if item.note else ""))
            if item.vm in shared
            else item
            for item in items
        )

    def _linux_plan(self, member: FleetTarget, status: LinuxStatus) -> tuple[PlanItem, ...]:
        items = []
        for spec, desired in self.daemons_for(member).items():
            daemon = status.daemon(spec.name)
            if daemon.running == desired:
                continue
            note = ""
            if desired and not daemon.program:
                note = "no program for it is installed on the guest; a start will fail"
            items.append(
                PlanItem(
                    member.name,
                    "",
                    daemon.name,  # the guest's own program name
                    daemon.running,
                    desired,
                    "start" if desired else "stop",
                    spec.service.critical and not desired,
                    note=note,
                )
            )
        return tuple(items)

    async def plan(self, fleet: Fleet) -> FleetResult[PlanItem]:
        """What would change, target by target. Reads only.

        One round trip per host (every VM's services) and one status per
        Linux guest; targets no rule is for are not contacted.

        Returns:
            One :class:`PlanItem` row per difference (``changed`` is
            ``None``); each target's value is its tuple of items.
        """

        async def host(resource: HyperVHost, member: FleetTarget) -> tuple[PlanItem, ...]:
            return self._host_plan(member, await resource.integration_services())

        async def linux(guest: LinuxGuest, member: FleetTarget) -> tuple[PlanItem, ...]:
            return self._linux_plan(member, await guest.status())

        chosen = self.scope(fleet)
        for warning in self.unmatched(fleet):
            _log.warning("%s: %s", self.source or "policy", warning)
        return await chosen.run({"host": host, "linux": linux}, rows=_items)

    async def apply(
        self,
        fleet: Fleet,
        *,
        force: bool = False,
        plan: FleetResult[PlanItem] | None = None,
    ) -> FleetResult[PlanItem]:
        """Change what differs from the policy, and report what changed.

        Each host's changes go in one round trip (``HyperVHost.apply``,
        which changes only what still differs); each Linux daemon is
        started or stopped as :class:`~hvintegration.LinuxDaemon` does it.

        Args:
            fleet: The targets.
            force: Allow turning off Heartbeat, Shutdown or Key-Value Pair
                Exchange, and stopping the KVP daemon. Without it a target
                with such a change fails with ``UnsafeChangeError`` before
                anything is sent to it; the other targets go ahead.
            plan: A plan from :meth:`plan` to carry out, so each host takes
                exactly one round trip; without one, each target is read
                first (one more round trip). A target that failed in the
                plan is not contacted, and keeps its error.

        Returns:
            One row per item acted on, with ``changed`` set; a target that
            had nothing to change is not contacted again and gives no rows.
        """
        chosen = self.scope(fleet)
        planned = plan if plan is not None else await self.plan(chosen)
        todo: dict[str, tuple[PlanItem, ...]] = {
            result.target: tuple(result.value or ())
            for result in planned.targets
            if result.ok and any(i.action != "unavailable" for i in result.value or ())
        }
        # What each target has done so far, kept should it fail or time out.
        progress: dict[str, list[PlanItem]] = {}

        def _outcome(items: Iterable[PlanItem], done: Mapping[Any, bool]) -> tuple[PlanItem, ...]:
            return tuple(
                attrs.evolve(item, changed=done.get((item.vm_id, item.item), False))
                for item in items
            )

        async def host(resource: HyperVHost, member: FleetTarget) -> tuple[PlanItem, ...]:
            items = todo[member.name]
            _check_force(items, force, member)
            desired: dict[uuid.UUID, dict[catalogue.ServiceSpec, bool]] = {}
            for item in items:
                if item.action != "unavailable" and item.vm_id is not None:
                    spec = catalogue.resolve_host(item.item)
                    desired.setdefault(item.vm_id, {})[spec] = item.desired
            try:
                result = await resource.apply(desired, force=force)
            except BatchError as exc:
                partial = exc.result if isinstance(exc.result, ApplyResult) else None
                exc.result = _outcome(items, _changes(partial))
                raise
            return _outcome(items, _changes(result))

        async def linux(guest: LinuxGuest, member: FleetTarget) -> tuple[PlanItem, ...]:
            items = todo[member.name]
            _check_force(items, force, member)
            done = progress.setdefault(member.name, [])
            errors: dict[str, HvIntegrationError] = {}
            # Read again: the guest may have changed since the plan.
            now = await guest.status()
            for item in items:
                if item.action == "unavailable":
                    continue
                if now.daemon(item.item).running == item.desired:
                    done.append(attrs.evolve(item, changed=False))
                    continue
                daemon = guest.daemon(item.item)
                # Until it returns, its outcome is unknown: so it is kept.
                done.append(attrs.evolve(item, note=_UNKNOWN))
                try:
                    if item.desired:
                        state = await daemon.start()
                    else:
                        state = await daemon.stop(force=force)
                except HvIntegrationError as exc:
                    errors[item.item] = exc
                    done[-1] = attrs.evolve(item, changed=False)
                    continue
                done[-1] = attrs.evolve(item, changed=state.running == item.desired)
            if errors:
                raise BatchError(
                    "some daemons could not be changed",
                    result=tuple(done),
                    errors=errors,
                    target=member.url,
                    operation="fleet_apply",
                )
            return tuple(done)

        work = chosen.select(names=list(todo))
        applied = await work.run({"host": host, "linux": linux}, rows=_items, exclusive=True)
        targets = list(applied.targets)
        rows = list(applied.rows)
        for n, result in enumerate(targets):
            kept = progress.get(result.target)
            if not result.ok and result.value is None and kept:
                # Timed out or cancelled after some changes: report them.
                targets[n] = attrs.evolve(result, value=tuple(kept))
                rows.extend(kept)
        failed_in_plan = [r for r in planned.targets if not r.ok]
        order = {member.name: n for n, member in enumerate(chosen)}
        targets = sorted([*targets, *failed_in_plan], key=lambda r: order[r.target])
        rows.sort(key=lambda item: order[item.target])
        return FleetResult(RecordList(targets), RecordList(rows), applied.peak_connections)

    def unmatched(self, fleet: Fleet) -> list[str]:
        """Warnings for rules whose ``targets`` pattern or ``group`` matches
        no member of ``fleet`` (often a misspelling). :meth:`plan` logs
        them (logger ``hvintegration.fleet.policy``, level WARNING).

        Example:
            >>> policy = Policy((Rule(services=((catalogue.VSS, True),), targets="hv9*"),))
            >>> policy.unmatched(Fleet(["sim://HV01"]))
            ["rule 1: targets = 'hv9*' matches no target"]
        """
        found = []
        for number, rule in enumerate(self.rules, 1):
            if rule.targets is not None and not any(_match(rule.targets, m.name) for m in fleet):
                found.append(f"rule {number}: targets = {rule.targets!r} matches no target")
            if rule.group is not None and not any(rule.group in m.groups for m in fleet):
                found.append(f"rule {number}: group = {rule.group!r} has no target here")
        return found

    def check_groups(self, groups: Iterable[str]) -> None:
        """Refuse a rule naming a group the inventory does not define.

        Args:
            groups: The inventory's group names (``Inventory.groups``).

        Raises:
            PolicyError: A rule's ``group`` is not one of them.
        """
        known = set(groups)
        for number, rule in enumerate(self.rules, 1):
            if rule.group is not None and rule.group not in known:
                names = ", ".join(sorted(known)) or "none"
                raise PolicyError(
                    f"{self.source or 'policy'}: rule {number}: no group {rule.group!r} "
                    f"in the inventory (groups: {names})"
                )

    def scope(self, fleet: Fleet) -> Fleet:
        """The members of ``fleet`` that some rule is for: hosts with a
        ``services`` rule, Linux guests with a ``daemons`` rule."""
        names = [
            member.name
            for member in fleet
            if member.kind in ("host", "linux")
            and any(
                rule.applies_to(member)
                and (rule.services if member.kind == "host" else rule.daemons)
                for rule in self.rules
            )
        ]
        return fleet.select(names=names)


_UNKNOWN = "under way when the target failed: read the guest to know its state"


def _items(_target: str, items: Sequence[PlanItem]) -> Sequence[PlanItem]:
    return items


def _changes(result: ApplyResult | None) -> dict[Any, bool]:
    if result is None:
        return {}
    return {(c.state.vm_id, c.state.display_name): c.changed for c in result.items} | {
        (c.state.vm_id, c.state.service.name): c.changed
        for c in result.items
        if c.state.service is not None
    }


def _check_force(items: Iterable[PlanItem], force: bool, member: FleetTarget) -> None:
    critical = sorted({item.item for item in items if item.needs_force})
    if critical and not force:
        raise UnsafeChangeError(critical, target=member.url, operation="fleet_apply")


# -- reading a policy file -------------------------------------------------------

_RULE_KEYS = {"services", "daemons", "group", "targets", "vms", "kind"}


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read a policy file (TOML; the format is in this module's description).

    Raises:
        PolicyError: The file is missing or not TOML, a rule has an unknown
            key, a malformed value, an unknown service or daemon, or no
            ``services`` or ``daemons``.
    """
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{file}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{file}: not TOML: {exc}") from None
    unknown = sorted(set(data) - {"rule"})
    if unknown:
        raise PolicyError(f"{file}: unknown key {unknown[0]!r}: a policy is a list of [[rule]]")
    rules = data.get("rule", [])
    if not isinstance(rules, list) or not rules:
        raise PolicyError(f"{file}: a policy needs at least one [[rule]]")
    return Policy(tuple(_rule(file, n, raw) for n, raw in enumerate(rules, 1)), source=str(file))


def _rule(file: Path, number: int, raw: Any) -> Rule:
    def fail(message: str) -> PolicyError:
        return PolicyError(f"{file}: rule {number}: {message}")

    if not isinstance(raw, dict):
        raise fail("must be a table")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (valid: {', '.join(sorted(_RULE_KEYS))})")
    texts: dict[str, str | None] = {}
    for key in ("services", "daemons"):
        if key in raw and not isinstance(raw[key], dict):
            raise fail(f"{key} must be a table of name = true or false")
    for key in ("group", "targets", "vms", "kind"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise fail(f"{key} must be a non-empty string")
        texts[key] = value
    if texts["kind"] is not None and texts["kind"] not in KINDS:
        raise fail(f"kind must be one of {', '.join(KINDS)}")
    services = _switches(raw.get("services", {}), "services", fail)
    daemons = _switches(raw.get("daemons", {}), "daemons", fail)
    if not services and not daemons:
        raise fail("says nothing: give services = {...} or daemons = {...}")
    if services and texts["kind"] in ("windows", "linux"):
        raise fail(
            f'services are a host\'s; kind = "{texts["kind"]}" selects no host '
            '(use kind = "host", or no kind)'
        )
    if daemons and texts["kind"] in ("host", "windows"):
        raise fail(
            f'daemons run on Linux guests; kind = "{texts["kind"]}" selects none '
            '(use kind = "linux", or no kind)'
        )
    if daemons and texts["vms"] is not None:
        raise fail(
            "vms selects a host's VMs, and daemons are a Linux guest's; pick guests "
            "with targets or group, in a rule of their own"
        )
    try:
        host_side = _unique(
            [(catalogue.resolve_host(name), on) for name, on in services.items()], "services", fail
        )
    except NotFoundError as exc:
        hint = ""
        if exc.message.startswith("unknown integration service"):
            hint = (
                "; name a service in English, by an older or vmic* name, or by GUID "
                "(a host's localised names are known only once it is read)"
            )
        raise fail(exc.message + hint) from None
    try:
        guest_side = _unique(
            [(resolve_daemon(name), on) for name, on in daemons.items()], "daemons", fail
        )
    except NotFoundError as exc:
        raise fail(exc.message) from None
    return Rule(
        host_side, guest_side, texts["group"], texts["targets"], texts["vms"], texts["kind"]
    )


def _unique(pairs: list[tuple[Any, bool]], key: str, fail: Any) -> tuple[tuple[Any, bool], ...]:
    seen: dict[Any, bool] = {}
    for spec, on in pairs:
        if spec in seen:
            raise fail(f"{key} names {spec.name} twice (under two of its names)")
        seen[spec] = on
    return tuple(pairs)


def _switches(value: Any, key: str, fail: Any) -> Mapping[str, bool]:
    if not isinstance(value, dict):
        raise fail(f"{key} must be a table of name = true or false")
    for name, on in value.items():
        if not isinstance(on, bool):
            raise fail(f"{key}.{name!r} must be true or false, not {on!r}")
    return value
