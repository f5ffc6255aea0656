"""Fleets: many Hyper-V hosts and guests at once, inventories, and a desired-state policy.

A :class:`Fleet` reads or changes every target concurrently, with a bound on
open connections and a per-target timeout; each target's outcome is its own
:class:`TargetResult`, and the rows of all of them form one table (HTML in a
notebook, text, JSON, a pandas DataFrame). See ``docs/fleets.md``.

Example:
    >>> import asyncio
    >>> from hvintegration.fleet import Fleet
    >>> async def main():
    ...     fleet = Fleet(["sim://HV01?vms=1", "sim://HV02"])
    ...     result = await fleet.integration_services()
    ...     return sorted({(row.target, row.vm) for row in result.rows})
    >>> asyncio.run(main())
    [('sim://HV01?vms=1', 'demovm'), ('sim://HV01?vms=1', 'vm001'), ('sim://HV02', 'demovm')]
"""

from hvintegration.fleet.fleet import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TARGET_TIMEOUT,
    Fleet,
    FleetTarget,
    ProgressCallback,
    TargetSpec,
    Work,
    infer_kind,
)
from hvintegration.fleet.inventory import (
    CredentialRef,
    Inventory,
    InventoryEntry,
    InventoryError,
    load_ansible_inventory,
    load_inventory,
    load_toml_inventory,
)
from hvintegration.fleet.policy import Policy, PolicyError, Rule, load_policy
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

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "CredentialRef",
    "Inventory",
    "InventoryEntry",
    "InventoryError",
    "load_ansible_inventory",
    "load_inventory",
    "load_toml_inventory",
    "DEFAULT_TARGET_TIMEOUT",
    "KINDS",
    "DaemonRow",
    "DiagnosisRow",
    "Fleet",
    "FleetProgress",
    "FleetResult",
    "FleetTarget",
    "GuestServiceRow",
    "PlanItem",
    "Policy",
    "PolicyError",
    "Rule",
    "ProgressCallback",
    "ServiceRow",
    "TargetResult",
    "TargetSpec",
    "Work",
    "infer_kind",
    "load_policy",
]
