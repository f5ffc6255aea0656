"""``diagnose``: one verdict per integration service, from both ends at once.

An integration service works only when it is on at both ends: enabled on the
host for the VM, and running inside the guest. :func:`diagnose_vm` (called as
:meth:`hvintegration.VirtualMachine.diagnose`) reads the host side (the VM's
state, its services and their statuses, and where the host offers them its
Key-Value Pair Exchange items and integration services state) and, when a
guest connection is given, the guest side (the ``vmic*`` services of a
:class:`~hvintegration.WindowsGuest`; the ``hv_utils`` driver and the daemons
of a :class:`~hvintegration.LinuxGuest`), then decides. :func:`diagnose_host`
decides several VMs, or all, from the host's side in three round trips.

Without a guest it decides from the host's status codes. The host reports, per
service, ``PrimaryStatusDescription`` and ``OperationalStatus`` (the
component's ``OperationalStatus`` of ``Msvm_HeartbeatComponent`` and its
siblings, https://learn.microsoft.com/en-us/windows/win32/hyperv_v2/msvm-heartbeatcomponent)
with the CIM meanings
(https://learn.microsoft.com/en-us/windows/win32/hyperv_v2/cim-managedsystemelement):
``OK``; ``No Contact``, the host knows the component but has never reached
it (the guest side is not running); ``Lost Communication``, it was reached
before and no longer is; ``Degraded`` and the error states. Out-of-date guest
components show ``ProtocolMismatch`` as the secondary operational status
(``Get-VMIntegrationService`` help, example 1,
https://learn.microsoft.com/en-us/powershell/module/hyper-v/get-vmintegrationservice).

The rules, per service, first match wins:

1. The host could not be read: ``unknown``, with its error.
2. The VM is not running: ``disabled on host`` for a service the host has
   disabled (it keeps the switch while the VM is off), else ``VM not
   running``; a VM that is off reports no status, so nothing else can be
   told. The remedy starts an off or saved VM and resumes a paused one.
3. A service with no host switch (PowerShell Direct, Remote Desktop
   Virtualization) is decided by the guest alone: Linux has no side for it;
   a Windows ``vmic*`` service that runs, or is stopped but not disabled
   (they are trigger-started), is ``working``; without a guest, ``unknown``,
   which asks for no action.
4. The host does not offer it (Guest Service Interface before Windows Server
   2012 R2), or the guest has no side for it: ``not supported``. Without a
   guest connection its OS (``guest_os`` or the KVP ``OSName``) tells: a
   Windows guest older than 8.1 / Server 2012 R2 whose components are older
   than 6.3 has no Guest Service Interface, one older than Windows 10 /
   Server 2016 no PowerShell Direct.
5. Disabled on the host: ``disabled on host``, with the guest side's state
   when a guest was asked.
6. A guest was asked and could not be read: ``unknown``, with its error; the
   host's facts stay in the record.
7. A guest was asked and its side is not running: ``guest side not
   running``.
8. The host reports ``Lost Communication``, or ``No Contact`` while the guest
   says its side runs: ``lost communication``.
9. The host reports ``No Contact``: ``guest side not running``.
10. The host reports a protocol mismatch: ``protocol mismatch``, with the
    update path from :func:`~hvintegration.maintenance.advise` when the host
    and guest OS are known. For a guest known to be Linux, real hosts show
    this text for Key-Value Pair Exchange while ``hv_kvp_daemon`` runs and
    for VSS whether or not ``hv_vss_daemon`` runs, so there it means
    ``working`` (VSS: ``unknown`` without the guest's word). A guest that
    publishes no OS name is taken for Linux when ``Get-VM`` reports no
    integration services version while the heartbeat answers ``OK`` without
    a secondary status (a Windows guest's heartbeat reports its application
    health there).
11. The host reports ``OK``: ``working``. Any other status (``Degraded``,
    ``Error``...) is ``unknown``, quoting it.

Remedies name a VM by its name where the name is its own, else by its id
(``Get-VM -Id ... |`` by hand); a step several services share is listed once
by :attr:`~hvintegration.diagnosis_records.Diagnosis.remedies`. Without a
guest, an error of the host propagates as the host raised it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, Union

from hvintegration import catalogue
from hvintegration._diagnosis_remedies import (
    KERNEL_ONLY,
    RemedyContext,
    enable_on_host,
    power_on,
    update_steps,
)
from hvintegration._diagnosis_remedies import guest_steps as _steps_in_guest
from hvintegration._table import RecordList
from hvintegration.diagnosis_records import (
    Diagnosis,
    DiagnosisVerdict,
    GuestSide,
    Remedy,
    ServiceDiagnosis,
)
from hvintegration.errors import BatchError, HvIntegrationError, NotFoundError
from hvintegration.linux.guest import LinuxGuest
from hvintegration.linux.records import LinuxStatus
from hvintegration.maintenance import (
    Advice,
    advise,
    resolve_guest_os,
    resolve_host_os,
)
from hvintegration.maintenance_data import LINUX_DISTRIBUTIONS
from hvintegration.records import IntegrationServiceState, VMSummary
from hvintegration.windows.guest import WindowsGuest
from hvintegration.windows.records import GuestServiceState

__all__ = ["GuestConnection", "HostLike", "VirtualMachineLike", "diagnose_host", "diagnose_vm"]

GuestConnection = Union[WindowsGuest, LinuxGuest]
"""A connected guest :func:`diagnose_vm` reads the guest side from."""

_V = DiagnosisVerdict
_LINUX_MISMATCH = (catalogue.KEY_VALUE_PAIR_EXCHANGE, catalogue.VSS)

# PowerShell Direct needs Windows 10 or Windows Server 2016 at both ends
# ("Manage Windows virtual machines with PowerShell Direct", Requirements,
# https://learn.microsoft.com/en-us/virtualization/hyper-v-on-windows/user-guide/powershell-direct).
_BEFORE_DIRECT = frozenset(
    {
        "windows-xp",
        "windows-vista",
        "windows-7",
        "windows-8",
        "windows-8.1",
        "windows-server-2003",
        "windows-server-2003-r2",
        "windows-server-2008",
        "windows-server-2008-r2",
        "windows-server-2012",
        "windows-server-2012-r2",
        "windows-home-server-2011",
        "windows-sbs-2011",
    }
)
# The guest side of Guest Service Interface (vmicguestinterface) came with
# the Windows Server 2012 R2 / Windows 8.1 integration components ("What's
# new in Hyper-V in Windows Server 2012 R2", Guest services,
# https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2012-r2-and-2012/dn282278(v=ws.11)):
# an older Windows guest has it only once its components are 6.3 or newer.
_BEFORE_GSI = _BEFORE_DIRECT - {"windows-8.1", "windows-server-2012-r2"}


def _described(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class _HostLike(Protocol):
    @property
    def target(self) -> str: ...


class VirtualMachineLike(Protocol):
    """What :func:`diagnose_vm` needs of a VM: :class:`hvintegration.VirtualMachine`."""

    @property
    def host(self) -> _HostLike:
        """The host, whose ``target`` names it in remedies and errors."""

    @property
    def ref(self) -> object:
        """The VM's name or id, as the caller gave it."""

    async def summary(self) -> VMSummary:
        """The VM as ``Get-VM`` shows it."""

    async def integration_services(self) -> RecordList[IntegrationServiceState]:
        """Its services as ``Get-VMIntegrationService`` shows them."""


class HostLike(Protocol):
    """What :func:`diagnose_host` needs of a host: :class:`hvintegration.HyperVHost`."""

    @property
    def target(self) -> str:
        """The host's URL, for remedies and errors."""

    async def list_vms(self) -> RecordList[VMSummary]:
        """Every VM, as ``Get-VM`` lists them."""

    async def integration_services(
        self, vms: Iterable[Any] | None = None
    ) -> RecordList[IntegrationServiceState]:
        """The services of several VMs, or of all, in one round trip."""


# -- the guest side ---------------------------------------------------------


def _windows_side(
    spec: catalogue.ServiceSpec, services: Mapping[str, GuestServiceState]
) -> GuestSide:
    state = services.get(spec.windows_service)
    if state is None or not state.present:
        return GuestSide("windows", spec.windows_service, False, False, "not present")
    return GuestSide(
        "windows",
        spec.windows_service,
        True,
        state.running,
        f"{state.status} ({state.start_type})" if state.start_type else state.status,
    )


def _linux_side(spec: catalogue.ServiceSpec, status: LinuxStatus) -> GuestSide | None:
    side = spec.linux
    if side is None:
        return None
    driver = status.driver
    if spec in KERNEL_ONLY or not side.daemons:
        state = driver.state + (", bound" if driver.bound else ", not bound")
        return GuestSide("linux", driver.name, driver.loaded, driver.loaded and driver.bound, state)
    daemon = next(d for d in status.daemons if d.daemon.service is spec)
    if daemon.running:
        pids = ", ".join(str(p.pid) for p in daemon.processes)
        what = f"running, pid {pids}"
    elif daemon.program is None:
        what = "not installed"
    else:
        what = f"stopped ({daemon.program})"
    if not driver.loaded:
        what += f"; {driver.name} {driver.state}"
    return GuestSide("linux", daemon.name, daemon.program is not None, daemon.running, what)


# -- the verdicts ------------------------------------------------------------


def _has(state: IntegrationServiceState, status: str, text: str) -> bool:
    return status in state.operational_status or state.primary_status == text


def _mismatch(state: IntegrationServiceState) -> bool:
    return "ProtocolMismatch" in state.operational_status or (
        "protocol version" in state.secondary_status.casefold()
    )


class _Facts:
    """Everything read, from both ends, before any verdict is decided."""

    def __init__(self) -> None:
        self.summary: VMSummary | None = None
        self.states: dict[catalogue.ServiceSpec, IntegrationServiceState] = {}
        self.host_error = ""
        self.host_exception: HvIntegrationError | None = None
        self.kvp: Any = None
        self.guest_family = ""  # what the guest connection itself is
        self.guest_kvp: dict[str, str] = {}  # its pools 2 and 3, where readable
        self.is_state: str | None = None
        self.family = ""  # "windows", "linux" or "" when unknown
        self.windows: dict[str, GuestServiceState] | None = None
        self.linux: LinuxStatus | None = None
        self.guest_error = ""
        self.guest_os = ""
        self.host_os = ""
        self.advice: Advice | None = None
        self.notes: list[str] = []

    def side(self, spec: catalogue.ServiceSpec) -> GuestSide | None:
        if self.windows is not None:
            return _windows_side(spec, self.windows)
        if self.linux is not None:
            return _linux_side(spec, self.linux)
        return None

    def packages(self) -> tuple[str, ...]:
        """The guest distribution's daemon packages, where its OS is known."""
        if self.advice is not None:
            return self.advice.packages
        try:
            info = resolve_guest_os(self.guest_os) if self.guest_os else None
        except NotFoundError:
            return ()
        if info is None or info.key not in LINUX_DISTRIBUTIONS:
            return ()
        return LINUX_DISTRIBUTIONS[info.key].packages


_Make = Callable[..., ServiceDiagnosis]
_Steps = Callable[..., list[Remedy]]


def _decide(ctx: RemedyContext, facts: _Facts, spec: catalogue.ServiceSpec) -> ServiceDiagnosis:
    state = facts.states.get(spec)
    side = facts.side(spec)
    family = facts.family

    def make(verdict: DiagnosisVerdict, reason: str, steps: list[Remedy] | None = None,
             error: str = "") -> ServiceDiagnosis:  # fmt: skip
        return ServiceDiagnosis(spec, verdict, reason, state, side, error, tuple(steps or ()))

    def guest_steps(restart: bool = False) -> list[Remedy]:
        return _steps_in_guest(
            ctx, spec, side, family, facts.linux, facts.packages(), restart=restart
        )

    if facts.host_error and spec.component_id is not None:
        return make(_V.UNKNOWN, "the host could not be read", error=facts.host_error)
    summary = facts.summary
    if summary is not None and summary.state != "Running":
        # The host keeps each service's switch while the VM is off: a
        # service disabled there stays disabled whatever the guest does.
        if state is not None and spec.component_id is not None and not state.enabled:
            return make(
                _V.HOST_DISABLED,
                f"disabled on the host (the VM is {summary.state}: the guest side cannot be told)",
                [enable_on_host(ctx, spec)],
            )
        power = power_on(ctx, summary.state)
        wait = "" if power else "; wait for it to settle"
        return make(
            _V.VM_NOT_RUNNING,
            f"the VM is {summary.state}: a VM that is not running reports no status{wait}",
            power,
        )
    if spec.component_id is None:
        return _decide_guest_only(spec, facts, side, make, guest_steps)
    if state is None:
        return make(_V.NOT_SUPPORTED, f"the host does not offer {spec.name} to this VM")
    if facts.linux is not None and side is None:
        return make(_V.NOT_SUPPORTED, f"a Linux guest has no side for {spec.name}")
    if side is not None and not side.present and side.system == "windows":
        return make(_V.NOT_SUPPORTED, f"the guest has no {side.name} service (an older guest)")
    if side is None and spec is catalogue.GUEST_SERVICE_INTERFACE and _before_gsi(facts):
        return make(
            _V.NOT_SUPPORTED,
            f"{facts.guest_os} has no {spec.windows_service} service before the Windows Server "
            "2012 R2 integration components (version 6.3)",
        )
    if not state.enabled:
        if side is None:
            seen = "could not be read" if facts.guest_error else "was not asked"
            reason = f"disabled on the host; the guest side {seen}"
        elif side.running:
            reason = f"running in the guest ({side.name}) but disabled on the host"
        else:
            reason = f"disabled on the host, and {side.name} is not running in the guest either"
        steps = [enable_on_host(ctx, spec)]
        if side is not None and not side.running:
            steps += guest_steps()
        return make(_V.HOST_DISABLED, reason, steps, error=facts.guest_error)
    if facts.guest_error:
        return make(
            _V.UNKNOWN,
            f"the host reports {state.primary_status or 'no status'}; "
            "the guest side could not be read",
            error=facts.guest_error,
        )
    if side is not None and not side.running:
        return make(
            _V.GUEST_NOT_RUNNING,
            f"enabled on the host (which reports {state.primary_status or 'no status'}), "
            f"but in the guest {side.name} is {side.state}",
            guest_steps(),
        )
    no_contact = _has(state, "NoContact", "No Contact")
    if _has(state, "LostCommunication", "Lost Communication") or (no_contact and side is not None):
        where = f"{side.name} runs in the guest, but " if side is not None else ""
        return make(
            _V.LOST_COMMUNICATION,
            f"{where}the host reports {state.primary_status or 'no contact'}",
            # Reached once and lost: restart what may still be running.
            guest_steps(restart=side is None or side.running),
        )
    if no_contact:
        return make(
            _V.GUEST_NOT_RUNNING,
            "enabled on the host, which reports No Contact: the guest side is not running",
            guest_steps(),
        )
    if _mismatch(state) and family == "linux" and spec in _LINUX_MISMATCH:
        return _linux_mismatch(spec, side, make)
    if _mismatch(state):
        reason = "the guest's components are older than the host's (ProtocolMismatch)"
        kvp = facts.states.get(catalogue.KEY_VALUE_PAIR_EXCHANGE)
        return make(
            _V.PROTOCOL_MISMATCH,
            reason,
            update_steps(
                ctx,
                facts.advice,
                family=facts.family,
                host_os=facts.host_os,
                guest_os=facts.guest_os,
                kvp_enabled=kvp is not None and kvp.enabled,
            ),
        )
    if "Ok" in state.operational_status or state.primary_status == "OK":
        return make(_V.WORKING, "enabled on the host, which reports OK")
    return make(
        _V.UNKNOWN,
        f"the host reports {state.primary_status or 'no status'!s} "
        f"({', '.join(state.operational_status) or 'no operational status'})",
    )


def _linux_mismatch(
    spec: catalogue.ServiceSpec, side: GuestSide | None, make: _Make
) -> ServiceDiagnosis:
    # Real hosts report Key-Value Pair Exchange "OK" with the protocol
    # mismatch text while a Linux guest's hv_kvp_daemon runs (and No Contact
    # when it does not), and VSS "OK" with that text whether or not
    # hv_vss_daemon runs: a Windows 11 host with an Ubuntu 24.04 guest, a
    # German host in https://github.com/neutrinolabs/xrdp/issues/1403, and
    # https://github.com/LIS/lis-next/issues/593. For a Linux guest the text
    # is no fault; only the guest can tell whether the VSS daemon runs.
    if side is not None:
        return make(
            _V.WORKING,
            f"{side.name} runs in the guest; the host's protocol mismatch is what every "
            "Linux guest shows for it",
        )
    if spec is catalogue.KEY_VALUE_PAIR_EXCHANGE:
        return make(
            _V.WORKING,
            "the host reports OK with the protocol mismatch a Linux guest's hv_kvp_daemon "
            "shows while it runs",
        )
    return make(
        _V.UNKNOWN,
        "a Linux guest's VSS shows a protocol mismatch whether or not hv_vss_daemon runs: "
        "only the guest can tell",
    )


def _decide_guest_only(
    spec: catalogue.ServiceSpec,
    facts: _Facts,
    side: GuestSide | None,
    make: _Make,
    guest_steps: _Steps,
) -> ServiceDiagnosis:
    # PowerShell Direct and Remote Desktop Virtualization have no host
    # switch: only the guest can tell. Their vmic* services are trigger-
    # started (Manual), so "Stopped" and not Disabled means ready to run.
    if facts.linux is not None or facts.family == "linux":
        return make(_V.NOT_SUPPORTED, f"{spec.name} exists only in Windows guests")
    if facts.guest_error:
        return make(_V.UNKNOWN, "the guest side could not be read", error=facts.guest_error)
    if side is None and spec is catalogue.POWERSHELL_DIRECT and _guest_key(facts) in _BEFORE_DIRECT:
        return make(
            _V.NOT_SUPPORTED,
            f"{facts.guest_os} has no PowerShell Direct (Windows 10 and Windows Server 2016 on)",
        )
    if side is None:
        return make(_V.UNKNOWN, "only the guest can tell; no guest connection was given")
    if not side.present:
        return make(_V.NOT_SUPPORTED, f"the guest has no {side.name} service (an older guest)")
    if side.running or "Disabled" not in side.state:
        return make(_V.WORKING, f"{side.name} is {side.state}: it starts when it is needed")
    return make(_V.GUEST_NOT_RUNNING, f"{side.name} is {side.state} in the guest", guest_steps())


# -- reading -----------------------------------------------------------------


async def _read_host(vm: VirtualMachineLike, facts: _Facts) -> None:
    try:
        facts.summary = await vm.summary()
    except NotFoundError:
        raise
    except HvIntegrationError as exc:
        facts.host_error = _described(exc)
        facts.host_exception = exc
        return
    facts.is_state = getattr(facts.summary, "integration_services_state", None)
    try:
        states = await vm.integration_services()
    except NotFoundError:
        raise
    except HvIntegrationError as exc:
        facts.host_error = _described(exc)
        facts.host_exception = exc
        return
    for state in states:
        if state.service is not None:
            facts.states[state.service] = state
    reader = getattr(vm, "key_value_pairs", None)
    if reader is None or facts.summary.state != "Running":
        return
    try:
        facts.kvp = await reader()
    except HvIntegrationError as exc:
        facts.notes.append(f"Key-Value Pair Exchange items could not be read: {_described(exc)}")


async def _read_guest(guest: GuestConnection, facts: _Facts) -> None:
    facts.guest_family = "windows" if isinstance(guest, WindowsGuest) else "linux"
    try:
        if isinstance(guest, WindowsGuest):
            services = await guest.services()
            facts.windows = {s.name.casefold(): s for s in services}
            facts.family = "windows"
        else:
            facts.linux = await guest.status()
            facts.family = "linux"
    except (HvIntegrationError, OSError) as exc:
        facts.guest_error = _described(exc)
        facts.family = facts.guest_family
        facts.notes.append(f"the guest {guest.target} could not be read: {facts.guest_error}")
        return
    if isinstance(guest, LinuxGuest):
        # Pool 3 holds what the host told this guest about its VM
        # (VirtualMachineId, VirtualMachineName): who the guest is inside.
        # Only for the identity note; a guest whose pools cannot be read
        # (no daemon yet, no root) just goes without it.
        try:
            items = await guest.kvp()
        except (HvIntegrationError, OSError):
            return
        facts.guest_kvp = {item.key: item.value for item in items if item.pool in (2, 3)}


def _family_of(os_name: str) -> str:
    # Which guest's remedies apply: by the advice's own OS index, so that an
    # OS it does not know (FreeBSD) is neither Windows nor Linux.
    if "windows" in os_name.casefold():
        return "windows"
    try:
        return resolve_guest_os(os_name).family
    except NotFoundError:
        return ""


def _check_identity(facts: _Facts) -> None:
    # Signs that the guest connection reaches another machine than this VM:
    # say so, decide anyway. The host learns the guest's name and OS through
    # KVP; a Windows guest names itself in every service record, a Linux
    # guest's pool 3 holds the VM id and name the host told it.
    if not facts.guest_family:
        return
    fqdn = str(getattr(facts.kvp, "fqdn", "") or "")
    kvp_os = str(getattr(facts.kvp, "os_name", "") or "")
    kvp_family = _family_of(kvp_os) if kvp_os else ""
    if kvp_family and kvp_family != facts.guest_family:
        facts.notes.append(
            f"the VM's Key-Value Pair Exchange says its guest runs {kvp_os}, but the guest "
            f"connection reaches a {facts.guest_family.capitalize()} guest: is it the guest "
            "inside this VM?"
        )
        return
    if fqdn and facts.windows:
        names = {s.computer_name.casefold() for s in facts.windows.values() if s.computer_name}
        host_name = fqdn.split(".", 1)[0].casefold()
        if names and host_name not in names:
            facts.notes.append(
                f"the guest connection reports computer name {', '.join(sorted(names))}, but "
                f"the VM's Key-Value Pair Exchange says {fqdn}: is it the guest inside this VM?"
            )
    summary = facts.summary
    told_id = facts.guest_kvp.get("VirtualMachineId", "")
    told_name = facts.guest_kvp.get("VirtualMachineName", "")
    if summary is None or not (told_id or told_name):
        return
    same_id = told_id.strip("{}").casefold() == str(summary.id).casefold()
    same_name = told_name.casefold() == summary.name.casefold()
    if not (same_id or same_name):
        facts.notes.append(
            f"the Linux guest's KVP pool 3 says it runs in VM {told_name or told_id}, not "
            f"{summary.name}: is it the guest inside this VM?"
        )


def _looks_linux(facts: _Facts) -> bool:
    # Without a guest and without its KVP items (no hv_kvp_daemon), the host
    # still shows a Linux guest: Get-VM reports no integration services
    # version (a Windows guest's components report theirs), and the
    # heartbeat answers with no secondary status (a Windows guest's heartbeat
    # adds its application health, "OK").
    summary = facts.summary
    heartbeat = facts.states.get(catalogue.HEARTBEAT)
    if summary is None or summary.state != "Running" or heartbeat is None:
        return False
    return (
        summary.integration_services_version in ("", "0.0")
        and heartbeat.enabled
        and heartbeat.primary_status == "OK"
        and not heartbeat.secondary_status
    )


def _guest_key(facts: _Facts) -> str:
    # The advice's key of the guest's OS, where it names one it knows.
    if not facts.guest_os:
        return ""
    try:
        return resolve_guest_os(facts.guest_os).key
    except NotFoundError:
        return ""


def _before_gsi(facts: _Facts) -> bool:
    # A Windows guest older than 8.1 / 2012 R2 whose components Get-VM does
    # not report as 6.3 or newer (an update from a 2012 R2 host's disk
    # brings vmicguestinterface to Windows 7 and Server 2012 too).
    if _guest_key(facts) not in _BEFORE_GSI:
        return False
    version = facts.summary.integration_services_version if facts.summary else ""
    try:
        parts = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        parts = ()
    return not parts or parts < (6, 3)


def _direct(facts: _Facts) -> bool:
    # Whether PowerShell Direct can reach this guest, as far as the OS
    # names tell: both ends Windows 10 / Server 2016 or newer.
    if facts.family == "windows" and _guest_key(facts) in _BEFORE_DIRECT:
        return False
    try:
        host = resolve_host_os(facts.host_os).key if facts.host_os else ""
    except NotFoundError:
        host = ""
    return host not in _BEFORE_DIRECT


def _settle_os(facts: _Facts, host_os: str | None, guest_os: str | None) -> None:
    kvp_os = str(getattr(facts.kvp, "os_name", "") or "")
    facts.guest_os = guest_os or kvp_os
    if guest_os is None and kvp_os:
        facts.notes.append(f"guest OS from Key-Value Pair Exchange: {kvp_os}")
    facts.host_os = host_os or ""
    if not facts.family and facts.guest_os:
        facts.family = _family_of(facts.guest_os)
    if not facts.family and not facts.guest_os and _looks_linux(facts):
        facts.family = "linux"
        facts.notes.append(
            "taken for a Linux guest: the host reports no integration services version and a "
            "heartbeat without application status"
        )
    # A Linux guest's KVP and VSS always show the mismatch text (see
    # _linux_mismatch): no update follows from them.
    wants_update = facts.is_state == "Update required" or any(
        _mismatch(state)
        for spec, state in facts.states.items()
        if state.enabled and not (facts.family == "linux" and spec in _LINUX_MISMATCH)
    )
    if not wants_update:
        return
    if not (facts.host_os and facts.guest_os):
        missing = " and ".join(
            word for word, have in (("host", facts.host_os), ("guest", facts.guest_os)) if not have
        )
        facts.notes.append(f"an update is needed; give the {missing} OS for the update path")
        return
    try:
        facts.advice = advise(host_os=facts.host_os, guest_os=facts.guest_os)
    except NotFoundError as exc:
        facts.notes.append(f"no update path: {exc}")


async def diagnose_vm(
    vm: VirtualMachineLike,
    guest: GuestConnection | None = None,
    *,
    host_os: str | None = None,
    guest_os: str | None = None,
) -> Diagnosis:
    """Diagnose every integration service of one VM, from both ends.

    The host side is read in two or three round trips (the VM, its services,
    and its Key-Value Pair Exchange items where the host offers them); the
    guest side at the same time, in one round trip for a Windows guest and
    two for a Linux guest (its status, then its KVP pools, whose pool 3
    tells which VM it is in).

    Args:
        vm: The VM.
        guest: A connected :class:`~hvintegration.WindowsGuest` or
            :class:`~hvintegration.LinuxGuest` inside that VM; ``None``
            decides from the host's statuses alone.
        host_os: The host's release (``"Windows Server 2022"``), for the
            update path of a protocol mismatch.
        guest_os: The guest's OS; by default the ``OSName`` the guest
            publishes through Key-Value Pair Exchange, where readable.

    Returns:
        The :class:`~hvintegration.diagnosis_records.Diagnosis`. A guest
        that cannot be read (unreachable, refused) makes its services
        ``unknown`` with the error; it never hides the host side.

    Raises:
        VMNotFoundError: No such VM.
        AmbiguousVMError: Several VMs have this name.
        HvIntegrationError: The host could not be read and no guest was
            given, so there is nothing to diagnose: the host's own error
            (``PermissionDeniedError``, ``OperationTimeoutError``...).
        TypeError: ``guest`` is neither a WindowsGuest nor a LinuxGuest.
        NotFoundError: ``host_os`` is a name
            :func:`~hvintegration.maintenance.advise` does not know (checked
            before anything is read; the message lists the known ones).
    """
    if guest is not None and not isinstance(guest, (WindowsGuest, LinuxGuest)):
        raise TypeError(
            f"guest is a connected WindowsGuest or LinuxGuest, not {type(guest).__name__}"
        )
    _check_host_os(host_os)
    facts = _Facts()
    guest_task = None if guest is None else asyncio.ensure_future(_read_guest(guest, facts))
    try:
        await _read_host(vm, facts)
    except BaseException:
        if guest_task is not None:
            guest_task.cancel()
            await asyncio.gather(guest_task, return_exceptions=True)
        raise
    if guest_task is not None:
        await guest_task
    if facts.host_exception is not None and guest is None:
        # Nothing to decide from: the host's own error, as the caller can
        # catch it (PermissionDeniedError, OperationTimeoutError...).
        raise facts.host_exception
    if facts.host_error:
        facts.notes.append(f"the host could not be read: {facts.host_error}")
    # A VM asked for by name resolved, so that name is its own; one asked
    # for by id may share its name with another VM.
    vm_id = facts.summary.id if isinstance(vm.ref, uuid.UUID) and facts.summary else None
    return _conclude(vm.host.target, str(vm.ref), facts, guest, host_os, guest_os, vm_id)


def _check_host_os(host_os: str | None) -> None:
    # The same names, and the same error, as advise(): a mistyped host OS
    # would otherwise be silently ignored and leave the update path unknown.
    # A guest OS may be one the advice does not know (FreeBSD): it is then
    # neither Windows nor Linux, which the verdicts handle.
    if host_os is not None:
        resolve_host_os(host_os)


def _conclude(
    host_target: str,
    ref: str,
    facts: _Facts,
    guest: GuestConnection | None,
    host_os: str | None,
    guest_os: str | None,
    vm_id: uuid.UUID | None = None,
) -> Diagnosis:
    _settle_os(facts, host_os, guest_os)
    _check_identity(facts)
    name = facts.summary.name if facts.summary is not None else ref
    ctx = RemedyContext(host_target, name, guest, vm_id, direct=_direct(facts))
    services = tuple(_decide(ctx, facts, spec) for spec in catalogue.ALL_SERVICES)
    return Diagnosis(
        vm=name,
        target=host_target,
        guest_target="" if guest is None else guest.target,
        summary=facts.summary,
        integration_services_state=facts.is_state,
        guest_os=facts.guest_os,
        host_os=facts.host_os,
        advice=facts.advice,
        services=services,
        notes=tuple(facts.notes),
    )


async def diagnose_host(
    host: HostLike,
    vms: Iterable[Any] | None = None,
    *,
    host_os: str | None = None,
) -> RecordList[Diagnosis]:
    """Diagnose several VMs of a host, or all, from the host's side, in three round trips.

    The VMs (``Get-VM``), every service of the VMs asked for, and their
    Key-Value Pair Exchange items where the host offers them are each read
    once for all VMs; each VM is then decided as :func:`diagnose_vm` decides
    one without a guest.

    Args:
        host: The connected :class:`~hvintegration.HyperVHost`.
        vms: The VMs, by name, id or :class:`~hvintegration.VirtualMachine`;
            every VM on the host when ``None``.
        host_os: The host's release, for the update path of a protocol
            mismatch.

    Returns:
        One :class:`~hvintegration.diagnosis_records.Diagnosis` per VM, in
        the host's order; a table in a notebook, one row per VM.

    Raises:
        VMNotFoundError: The one VM asked for does not exist.
        BatchError: Some of several VMs asked for could not be read; its
            ``result`` holds the diagnoses of the others, its ``errors``
            one error per VM that could not be read.
        TypeError: ``vms`` is one VM (a str, say), not a list of them.
        NotFoundError: ``host_os`` is a name
            :func:`~hvintegration.maintenance.advise` does not know.

    Example:
        >>> import asyncio
        >>> from hvintegration import HyperVHost
        >>> from hvintegration.diagnosis import diagnose_host
        >>> async def main():
        ...     async with HyperVHost.connect("sim://?vms=2") as host:
        ...         return [(d.vm, d.ok) for d in await diagnose_host(host)]
        >>> asyncio.run(main())
        [('demovm', False), ('vm001', False), ('vm002', False)]
    """
    if isinstance(vms, (str, bytes, uuid.UUID)) or not isinstance(vms, (Iterable, type(None))):
        raise TypeError(
            f"vms is a list of VMs (names, ids or VirtualMachine objects), not one "
            f"{type(vms).__name__}: pass [{vms!r}]"
        )
    _check_host_os(host_os)
    chosen = None if vms is None else list(vms)
    summaries = await host.list_vms()
    batch: BatchError | None = None
    try:
        states = await host.integration_services(chosen)
    except BatchError as exc:
        # Some VMs asked for could not be read: decide the others all the
        # same, and hand their diagnoses back in the error's result.
        batch = exc
        states = RecordList(exc.result) if isinstance(exc.result, Iterable) else RecordList()
    by_vm: dict[uuid.UUID, dict[catalogue.ServiceSpec, IntegrationServiceState]] = {}
    for state in states:
        found = by_vm.setdefault(state.vm_id, {})
        if state.service is not None:
            found[state.service] = state
    kvps: dict[uuid.UUID, Any] = {}
    note = ""
    reader = getattr(host, "key_value_pairs", None)
    if reader is not None:
        try:
            kvps = {kvp.vm_id: kvp for kvp in await reader(chosen)}
        except BatchError as exc:
            read = exc.result if isinstance(exc.result, Iterable) else ()
            kvps = {kvp.vm_id: kvp for kvp in read}
            if batch is None:
                note = f"Key-Value Pair Exchange items could not be read: {_described(exc)}"
        except HvIntegrationError as exc:
            note = f"Key-Value Pair Exchange items could not be read: {_described(exc)}"
    names: dict[str, int] = {}
    for summary in summaries:
        names[summary.name.casefold()] = names.get(summary.name.casefold(), 0) + 1
    results = []
    for summary in summaries:
        if summary.id not in by_vm:
            continue
        facts = _Facts()
        facts.summary = summary
        facts.is_state = getattr(summary, "integration_services_state", None)
        facts.states = by_vm[summary.id]
        if summary.state == "Running":
            facts.kvp = kvps.get(summary.id)
        if note:
            facts.notes.append(note)
        vm_id = summary.id if names[summary.name.casefold()] > 1 else None
        results.append(_conclude(host.target, summary.name, facts, None, host_os, None, vm_id))
    if batch is not None:
        raise BatchError(
            "could not diagnose every VM",
            result=RecordList(results),
            errors=batch.errors,
            target=host.target,
            operation="diagnose",
        ) from batch
    return RecordList(results)
