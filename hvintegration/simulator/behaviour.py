"""What each operation does on a simulated host.

Every handler follows the contract of the shipped script of the same name
(``hvintegration/operations/scripts``): the same parameters, the same output
objects and property names, the same error ids, categories and targets. The
comments cite the Hyper-V behaviour each rule copies.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from hvintegration import catalogue
from hvintegration.simulator.profiles import LOCALES
from hvintegration.simulator.world import HostModel, SimulatedVM
from hvintegration.transport.base import ErrorRecord, JsonValue, OperationResult

__all__ = [
    "HANDLERS",
    "Handler",
    "SimulatedScriptError",
    "known_vm_names",
    "outdated",
    "service_object",
]

JsonObject = dict[str, JsonValue]
Handler = Callable[[HostModel, Mapping[str, JsonValue]], OperationResult]

# The full SecondaryStatusDescription of a protocol mismatch. Hosts print it
# cut to the column ("...does not match the version expected by t..." in the
# report quoted below); the German host's text in
# https://github.com/neutrinolabs/xrdp/issues/1403 ("...nicht der vom
# Hostsystem erwarteten Version") says how it ends.
_PROTOCOL_MISMATCH = (
    "The protocol version of the component installed in the virtual machine does not match "
    "the version expected by the hosting system."
)


def _id(spec: catalogue.ServiceSpec) -> uuid.UUID:
    assert spec.component_id is not None  # every host service has one
    return spec.component_id


_HEARTBEAT = _id(catalogue.HEARTBEAT)
_KVP = _id(catalogue.KEY_VALUE_PAIR_EXCHANGE)
_VSS = _id(catalogue.VSS)


class SimulatedScriptError(Exception):
    """A terminating error inside a simulated script.

    Args:
        record: The error record the script failed with.
    """

    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record


def known_vm_names(vms: Sequence[SimulatedVM]) -> str:
    """The VM names of a VMNotFound record's details, as the host scripts write them.

    One name per line; ``%``, CR and LF inside a name are percent-encoded,
    so a name holding a line break stays one name (the error mapping
    decodes them).

    Example:
        >>> from hvintegration.simulator.world import SimulatedVM
        >>> known_vm_names([SimulatedVM("a\\nb"), SimulatedVM("50%")])
        'a%0Ab\\n50%25'
    """
    return "\n".join(
        vm.name.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A") for vm in vms
    )


def _ref_text(ref: Mapping[str, JsonValue]) -> str:
    if ref.get("Id"):
        return str(ref["Id"])
    return str(ref.get("Name", ""))


class _VMIndex:
    """Mirror of New-HvVMIndex: the host's VMs by id and by lower-cased name,
    built once per call so that resolving a reference is one lookup."""

    def __init__(self, host: HostModel) -> None:
        self.host = host
        self.by_id: dict[uuid.UUID, SimulatedVM] = {}
        self.by_name: dict[str, list[SimulatedVM]] = {}
        for vm in host.vms:
            self.by_id[vm.id] = vm
            self.by_name.setdefault(vm.name.lower(), []).append(vm)


def _resolve(
    host: HostModel, ref: JsonValue, target: JsonValue, errors: list[ErrorRecord]
) -> SimulatedVM | None:
    """One reference resolved through an index of its own (the scripts that
    take one VM build the index once, too)."""
    return _resolve_in(_VMIndex(host), ref, target, errors)


def _resolve_in(
    index: _VMIndex, ref: JsonValue, target: JsonValue, errors: list[ErrorRecord]
) -> SimulatedVM | None:
    """Mirror of Resolve-HvVM: exactly one match by id, or by exact name."""
    host = index.host
    if not isinstance(ref, Mapping):
        raise SimulatedScriptError(
            ErrorRecord(
                "A VM reference must be an object with Name or Id.",
                error_id="ParameterArgumentTransformationError",
                category="InvalidArgument",
            )
        )
    if ref.get("Id"):
        try:
            wanted = uuid.UUID(str(ref["Id"]))
        except ValueError as exc:
            raise SimulatedScriptError(
                ErrorRecord(
                    f'Cannot convert value "{ref["Id"]}" to type "System.Guid".',
                    error_id="InvalidCastParseTargetInvocation",
                    category="InvalidArgument",
                    exception_type="System.Management.Automation.RuntimeException",
                )
            ) from exc
        match = index.by_id.get(wanted)
        found = [] if match is None else [match]
    else:
        # Exact but case-insensitive, as the script's lower-cased index.
        found = list(index.by_name.get(str(ref.get("Name", "")).lower(), ()))
    if len(found) == 1:
        return found[0]
    text = _ref_text(ref)
    if not found:
        errors.append(
            ErrorRecord(
                f"Hyper-V was unable to find a virtual machine with name or id '{text}'.",
                error_id="HvIntegration.VMNotFound",
                category="ObjectNotFound",
                exception_type="System.Exception",
                target_object=target,
                details=known_vm_names(host.vms[:50]),
            )
        )
    else:
        errors.append(
            ErrorRecord(
                f"More than one virtual machine is named '{text}'.",
                error_id="HvIntegration.AmbiguousVMName",
                category="InvalidArgument",
                exception_type="System.Exception",
                target_object=target,
                details="\n".join(str(vm.id) for vm in found),
            )
        )
    return None


def _linux_status(vm: SimulatedVM, component_id: uuid.UUID) -> tuple[str, str, list[str]]:
    """The statuses a Linux guest gets, as real hosts report them.

    A Windows 11 host with an Ubuntu 24.04 guest running no KVP or VSS
    daemon reported (Get-VMIntegrationService):

        Guest Service Interface False OK
        Heartbeat               True  OK
        Key-Value Pair Exchange True  No Contact
        Shutdown                True  OK
        Time Synchronization    True  OK
        VSS                     True  OK  The protocol version of the component
                                          installed in the virtual machine does
                                          not match the version expected by t...

    and Guest Service Interface, once enabled, No Contact. A German Windows
    host with an Ubuntu 24.04 guest whose KVP daemon runs
    (https://github.com/neutrinolabs/xrdp/issues/1403) reported Heartbeat
    OK with no secondary text, Key-Value Pair Exchange OK with the protocol
    mismatch text, and Guest Service Interface No Contact (no file copy
    daemon); the KVP version warning of a Linux guest is also in
    https://github.com/LIS/lis-next/issues/593. So: the kernel's channels
    (heartbeat, shutdown, time sync) answer with OK and nothing more, since
    Linux reports no application health; VSS answers from the kernel, daemon
    or not, with the mismatch; KVP answers with the mismatch only while
    hv_kvp_daemon runs; file copy only while its daemon runs.
    """
    driver = vm.linux.driver != "absent" if vm.linux is not None else vm.runs(_HEARTBEAT)
    if not driver:
        return "No Contact", "", ["NoContact"]
    if component_id == _VSS:
        return "OK", _PROTOCOL_MISMATCH, ["Ok", "ProtocolMismatch"]
    if not vm.runs(component_id):
        return "No Contact", "", ["NoContact"]
    if component_id == _KVP:
        return "OK", _PROTOCOL_MISMATCH, ["Ok", "ProtocolMismatch"]
    return "OK", "", ["Ok"]


def _status(
    host: HostModel, vm: SimulatedVM, component_id: uuid.UUID
) -> tuple[str, str, list[str]]:
    """PrimaryStatusDescription, SecondaryStatusDescription, OperationalStatus."""
    if vm.state != "Running":
        # A VM that is off reports no status for any integration service.
        return "", "", []
    if not vm.enabled[component_id]:
        # A disabled service still reports OK: the seed's demovm shows
        # Guest Service Interface False with PrimaryStatusDescription OK, and
        # so do the reports quoted in _linux_status (VSS False OK).
        return "OK", "", ["Ok"]
    if vm.linux is not None or vm.guest.family == "linux":
        return _linux_status(vm, component_id)
    if not vm.runs(component_id):
        # Enabled on the host, not running in the guest: Hyper-V shows
        # "No Contact" (the service works only when both sides enable it).
        return "No Contact", "", ["NoContact"]
    if outdated(host, vm):
        # Older guest components: Get-VMIntegrationService documents
        # SecondaryOperationalStatus ProtocolMismatch for out-of-date ones;
        # https://github.com/centreon/centreon-plugins/issues/4603 shows a
        # Windows guest's VSS "OK" with this text beside a current Heartbeat.
        return "OK", _PROTOCOL_MISMATCH, ["Ok", "ProtocolMismatch"]
    if component_id == _HEARTBEAT:
        # A Windows guest's Heartbeat carries a second status, its
        # application health; the seed (and centreon-plugins#4603) show it as
        # SecondaryStatusDescription OK.
        return "OK", "OK", ["Ok", "Ok"]
    return "OK", "", ["Ok"]


def service_object(host: HostModel, vm: SimulatedVM, component_id: uuid.UUID) -> JsonObject:
    """One integration service as ConvertTo-HvService in the prelude shapes it.

    Args:
        host: The host, whose locale decides the name.
        vm: The VM.
        component_id: The service's component GUID.

    Returns:
        The output object, with the same property names the script uses.
    """
    primary, secondary, operational = _status(host, vm, component_id)
    # The Id is "Microsoft:<VMId>\<component GUID>" with upper-case GUIDs.
    vm_id = str(vm.id).upper()
    return {
        "VMName": vm.name,
        "VMId": str(vm.id),
        "Name": LOCALES[host.locale][component_id],
        "Id": f"Microsoft:{vm_id}\\{str(component_id).upper()}",
        "Enabled": vm.enabled[component_id],
        "PrimaryStatusDescription": primary,
        "SecondaryStatusDescription": secondary,
        "OperationalStatus": list(operational),
    }


def _services_of(host: HostModel, vm: SimulatedVM) -> list[JsonObject]:
    # Get-VMIntegrationService lists services in the host's fixed order.
    return [
        service_object(host, vm, spec.component_id)
        for spec in catalogue.HOST_SERVICES
        if spec.component_id is not None and spec.component_id in vm.enabled
    ]


def _vm_refs(parameters: Mapping[str, JsonValue]) -> Sequence[JsonValue] | None:
    refs = parameters.get("VM")
    if refs is None:
        return None
    if isinstance(refs, (str, bytes)) or not isinstance(refs, Sequence):
        return [refs]
    return refs


def _selected_vms(
    host: HostModel, parameters: Mapping[str, JsonValue], errors: list[ErrorRecord]
) -> list[SimulatedVM]:
    refs = _vm_refs(parameters)
    if refs is None:
        return list(host.vms)
    machines = []
    index = _VMIndex(host)
    for ref in refs:
        target = _ref_text(ref) if isinstance(ref, Mapping) else None
        vm = _resolve_in(index, ref, target, errors)
        if vm is not None:
            machines.append(vm)
    return machines


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()


def outdated(host: HostModel, vm: SimulatedVM) -> bool:
    """Whether ``vm``'s guest integration components are older than ``host``'s.

    Integration services state is "Update required" when the guest's
    integration components are older than the host's; equal versions need
    no update ("Hyper-V Integration Services", Get-VM's
    IntegrationServicesState,
    https://learn.microsoft.com/en-us/virtualization/hyper-v-on-windows/reference/integration-services).
    On a host that ships the integration services disk (Windows Server
    2012 R2 and older, whose version is the disk's) the simulator compares
    the version the guest reports with the host's own. Newer hosts deliver
    the components through Windows Update and report their Windows build,
    so there, and wherever a version is missing, the guest profile's
    ``outdated`` flag decides.
    """
    guest = _version(vm.guest.integration_services_version)
    mine = _version(host.os.integration_services_version)
    if not host.os.guest_installer or not guest or not mine:
        return vm.guest.outdated
    return guest < mine


def _integration_services_state(host: HostModel, vm: SimulatedVM) -> str:
    # Get-VM's IntegrationServicesState: "Up to date" or "Update required"
    # once the guest reported a version, empty when the host cannot tell (a
    # VM that is off, a guest that reports none, such as a Linux guest).
    if vm.state != "Running" or not vm.guest.integration_services_version:
        return ""
    return "Update required" if outdated(host, vm) else "Up to date"


def list_vms(host: HostModel, parameters: Mapping[str, JsonValue]) -> OperationResult:
    """The list_vms operation (Get-VM)."""
    errors: list[ErrorRecord] = []
    output: list[JsonObject] = [
        {
            "Name": vm.name,
            "Id": str(vm.id),
            "State": vm.state,
            "Generation": vm.generation,
            # A guest that is off or has no integration components reports
            # no version.
            "IntegrationServicesVersion": (
                vm.guest.integration_services_version if vm.state == "Running" else ""
            ),
            "IntegrationServicesState": _integration_services_state(host, vm),
            "ComputerName": host.name,
        }
        for vm in _selected_vms(host, parameters, errors)
    ]
    return OperationResult(tuple(output), tuple(errors))


def get_integration_services(
    host: HostModel, parameters: Mapping[str, JsonValue]
) -> OperationResult:
    """The get_integration_services operation (Get-VMIntegrationService)."""
    errors: list[ErrorRecord] = []
    output: list[JsonObject] = []
    for vm in _selected_vms(host, parameters, errors):
        output.extend(_services_of(host, vm))
    return OperationResult(tuple(output), tuple(errors))


def _component_id(change: Mapping[str, JsonValue]) -> uuid.UUID:
    try:
        return uuid.UUID(str(change.get("ServiceId")))
    except ValueError as exc:
        raise SimulatedScriptError(
            ErrorRecord(
                f'Cannot convert value "{change.get("ServiceId")}" to type "System.Guid".',
                error_id="InvalidCastParseTargetInvocation",
                category="InvalidArgument",
                exception_type="System.Management.Automation.RuntimeException",
            )
        ) from exc


def set_integration_services(
    host: HostModel, parameters: Mapping[str, JsonValue]
) -> OperationResult:
    """The set_integration_services operation (Enable-/Disable-VMIntegrationService)."""
    changes = parameters.get("Changes") or []
    if not isinstance(changes, Sequence) or isinstance(changes, str):
        changes = [changes]
    errors: list[ErrorRecord] = []
    output: list[JsonObject] = []
    done: set[tuple[uuid.UUID, uuid.UUID]] = set()
    vms = _VMIndex(host)
    for index, change in enumerate(changes):
        if not isinstance(change, Mapping):
            raise SimulatedScriptError(
                ErrorRecord("A change must be an object.", category="InvalidArgument")
            )
        vm = _resolve_in(vms, change.get("VM"), index, errors)
        if vm is None:
            continue
        component_id = _component_id(change)
        if (vm.id, component_id) in done:
            errors.append(
                ErrorRecord(
                    f"The virtual machine '{vm.name}' is asked to change integration service "
                    f"'{component_id}' twice.",
                    error_id="HvIntegration.DuplicateChange",
                    category="InvalidArgument",
                    exception_type="System.Exception",
                    target_object=index,
                )
            )
            continue
        done.add((vm.id, component_id))
        if component_id not in vm.enabled:
            offered = "\n".join(str(s["Name"]) for s in _services_of(host, vm))
            errors.append(
                ErrorRecord(
                    f"The virtual machine '{vm.name}' has no integration service "
                    f"with id '{component_id}'.",
                    error_id="HvIntegration.ServiceNotFound",
                    category="ObjectNotFound",
                    exception_type="System.Exception",
                    target_object=index,
                    details=offered,
                )
            )
            continue
        wanted = bool(change.get("Enabled"))
        changed = vm.enabled[component_id] != wanted
        # Enable-/Disable-VMIntegrationService work whether the VM is running
        # or off; the setting is per VM and takes effect in the guest when
        # it next talks to the host.
        vm.enabled[component_id] = wanted
        output.append(
            {
                "Index": index,
                "Changed": changed,
                "Service": service_object(host, vm, component_id),
            }
        )
    return OperationResult(tuple(output), tuple(errors))


HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        "list_vms": list_vms,
        "get_integration_services": get_integration_services,
        "set_integration_services": set_integration_services,
    }
)
"""The simulated implementation of every operation, by operation name."""
