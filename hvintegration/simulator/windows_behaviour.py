"""Windows guests in the simulator: guest services, PowerShell Direct, file copy.

Like :mod:`hvintegration.simulator.behaviour`, each handler keeps the
contract of the shipped script of the same name, and the comments cite the
documented behaviour each rule copies. Guest handlers act on one VM's inside;
host handlers (``invoke_in_vm``, ``copy_vm_file``) act on the host.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from types import MappingProxyType

from hvintegration import catalogue
from hvintegration.operations import OPERATIONS
from hvintegration.simulator.behaviour import JsonObject, SimulatedScriptError, _resolve
from hvintegration.simulator.guest_state import SimulatedService, WindowsGuestState
from hvintegration.simulator.session import GUEST_PREFLIGHT_HANDLERS, _names
from hvintegration.simulator.world import HostModel, SimulatedVM
from hvintegration.transport.base import ErrorRecord, JsonValue, OperationResult

__all__ = ["GUEST_HANDLERS", "HOST_HANDLERS", "GuestHandler", "run_guest_operation"]

GuestHandler = Callable[[SimulatedVM, Mapping[str, JsonValue], bool], OperationResult]
"""A guest operation: the VM, the parameters, whether the caller is an
administrator of the guest."""

_VMSESSION = catalogue.POWERSHELL_DIRECT.windows_service
# Invoke-Command -VMId opens the session in the background: a session that
# cannot be opened breaks the runspace, and the job reports the runspace's
# reason under this id, category OpenError, with the VM's name as the target
# object (PSRemotingChildJob.ProcessJobFailure in PowerShell's
# src/System.Management.Automation/engine/remoting/client/Job.cs). The
# script passes -ErrorAction Continue, so it arrives as a non-terminating
# error.
_SESSION_BROKEN = "PSSessionStateBroken"
_DISPLAY_NAMES = {
    spec.windows_service: spec.windows_display_name for spec in catalogue.ALL_SERVICES
}


def _error(message: str, error_id: str, category: str, target: JsonValue = None) -> ErrorRecord:
    return ErrorRecord(
        message,
        error_id=error_id,
        category=category,
        exception_type="System.Exception",
        target_object=target,
    )


def _windows(vm: SimulatedVM) -> WindowsGuestState:
    if vm.windows is None:
        raise SimulatedScriptError(
            ErrorRecord(
                "The term 'Get-Service' is not recognized as a cmdlet on this system.",
                error_id="CommandNotFoundException",
                category="ObjectNotFound",
            )
        )
    return vm.windows


def _check_name(name: JsonValue) -> str:
    # Mirrors Assert-HvGuestServiceName: exact vmic* names only.
    text = str(name)
    if not (text.startswith("vmic") and text[4:].isalpha() and text[4:].islower()):
        raise SimulatedScriptError(
            ErrorRecord(
                f"'{text}' is not a Hyper-V guest service name.",
                error_id="System.ArgumentException",
                category="InvalidArgument",
                exception_type="System.ArgumentException",
            )
        )
    return text


def _service_object(state: WindowsGuestState, name: str, service: SimulatedService) -> JsonObject:
    return {
        "Name": name,
        "Present": True,
        "DisplayName": _DISPLAY_NAMES.get(name, name),
        "Status": service.status,
        "StartType": service.start_type,
        "ComputerName": state.computer_name,
    }


def get_guest_services(
    vm: SimulatedVM, parameters: Mapping[str, JsonValue], administrator: bool
) -> OperationResult:
    """The get_guest_services operation (Get-Service vmic*)."""
    state = _windows(vm)
    output: list[JsonObject] = []
    for raw in _names(parameters):
        name = _check_name(raw)
        service = state.services.get(name)
        if service is None:
            # Older guests lack newer services (no vmicvmsession before
            # Windows 10 / Server 2016): absent, not an error.
            output.append(
                {
                    "Name": name,
                    "Present": False,
                    "DisplayName": "",
                    "Status": "",
                    "StartType": "",
                    "ComputerName": state.computer_name,
                }
            )
        else:
            output.append(_service_object(state, name, service))
    return OperationResult(tuple(output))


def _would_change(service: SimulatedService, action: str) -> bool:
    changes = {
        "start": service.status != "Running",
        "stop": service.status != "Stopped",
        "restart": True,
        "enable": service.start_type == "Disabled",
        "disable": service.start_type != "Disabled",
    }
    if action not in changes:
        raise SimulatedScriptError(
            ErrorRecord(
                f"Unknown action '{action}'.",
                error_id="System.ArgumentException",
                category="InvalidArgument",
            )
        )
    return changes[action]


def _apply_action(
    name: str, service: SimulatedService, action: str, wait: int
) -> tuple[bool, ErrorRecord | None]:
    if action in ("start", "restart") and service.start_type == "Disabled":
        # A disabled service cannot start; restart checks this before
        # stopping, so it never leaves the service stopped.
        if action == "start" and service.status == "Running":
            return False, None
        return False, _error(
            f"The service '{name}' is disabled; enable it before {action}ing it.",
            "HvIntegration.GuestServiceDisabled",
            "InvalidOperation",
            name,
        )
    if action == "start":
        if service.status == "Running":
            return False, None
        service.status = "Running"
        return True, None
    if action in ("stop", "restart"):
        if service.status != "Stopped":
            if service.stuck:
                # A service whose stop never completes stays in StopPending;
                # WaitForStatus then times out.
                service.status = "StopPending"
                return False, _error(
                    f"The service '{name}' is still StopPending after {wait} seconds.",
                    "HvIntegration.GuestServiceStuck",
                    "OperationTimeout",
                    name,
                )
            service.status = "Stopped"
            if action == "stop":
                return True, None
        if action == "stop":
            return False, None
        service.status = "Running"
        return True, None
    if action == "enable":
        if service.start_type != "Disabled":
            return False, None
        service.start_type = "Manual"
        return True, None
    if action == "disable":
        if service.start_type == "Disabled":
            return False, None
        service.start_type = "Disabled"
        return True, None
    raise SimulatedScriptError(
        ErrorRecord(
            f"Unknown action '{action}'.",
            error_id="System.ArgumentException",
            category="InvalidArgument",
        )
    )


def set_guest_service(
    vm: SimulatedVM, parameters: Mapping[str, JsonValue], administrator: bool
) -> OperationResult:
    """The set_guest_service operation (Start-/Stop-/Set-Service)."""
    state = _windows(vm)
    name = _check_name(parameters.get("Name"))
    action = str(parameters.get("Action"))
    wait_value = parameters.get("WaitSeconds", 30)
    wait = wait_value if isinstance(wait_value, int) else 30
    service = state.services.get(name)
    if service is None:
        return OperationResult(
            (),
            (
                _error(
                    f"The guest has no service named '{name}'.",
                    "HvIntegration.GuestServiceNotFound",
                    "ObjectNotFound",
                    name,
                ),
            ),
        )
    if not _would_change(service, action):
        # Asking for what already is needs no rights and changes nothing.
        unchanged: JsonObject = {"Changed": False, "Service": _service_object(state, name, service)}
        return OperationResult((unchanged,))
    if not administrator:
        # Service control needs administrative rights in the guest.
        return OperationResult(
            (),
            (
                _error(
                    f"Access is denied: changing '{name}' needs a member of "
                    "Administrators in the guest.",
                    "HvIntegration.AccessDenied",
                    "PermissionDenied",
                    name,
                ),
            ),
        )
    changed, failure = _apply_action(name, service, action, wait)
    if failure is not None:
        return OperationResult((), (failure,))
    result: JsonObject = {"Changed": changed, "Service": _service_object(state, name, service)}
    return OperationResult((result,))


GUEST_HANDLERS: Mapping[str, GuestHandler] = MappingProxyType(
    {
        "get_guest_services": get_guest_services,
        "set_guest_service": set_guest_service,
        **GUEST_PREFLIGHT_HANDLERS,
    }
)
"""The simulated implementation of every guest operation, by name."""


def run_guest_operation(
    vm: SimulatedVM, name: str, parameters: Mapping[str, JsonValue], administrator: bool
) -> OperationResult:
    """Run a guest operation, named by the caller that already checked its script, inside ``vm``.

    Args:
        vm: The VM whose inside runs it.
        name: The operation's name.
        parameters: Its parameters.
        administrator: Whether the caller is an administrator of the guest.

    Raises:
        SimulatedScriptError: The name is no guest operation, or it failed
            terminally.
    """
    handler = GUEST_HANDLERS.get(name)
    if handler is None:
        raise SimulatedScriptError(_unknown_guest_script())
    return handler(vm, parameters, administrator)


def run_guest_script(
    vm: SimulatedVM, script: str, parameters: Mapping[str, JsonValue], administrator: bool
) -> OperationResult:
    """Run a guest operation given by its full script text, as PowerShell Direct carries it.

    The text must be exactly a shipped guest operation's script: a bare
    operation name, or any other text, is refused as real PowerShell would
    fail to run it.

    Raises:
        SimulatedScriptError: The script is not a shipped guest operation,
            or it failed terminally.
    """
    for operation in OPERATIONS.values():
        if operation.side == "guest" and operation.script == script:
            return run_guest_operation(vm, operation.name, parameters, administrator)
    raise SimulatedScriptError(_unknown_guest_script())


def _unknown_guest_script() -> ErrorRecord:
    return ErrorRecord(
        "The simulator runs only the library's shipped guest operation scripts, unchanged.",
        error_id="HvIntegration.Simulator.UnknownScript",
        category="InvalidData",
    )


def _text(parameters: Mapping[str, JsonValue], key: str) -> str:
    value = parameters.get(key)
    return "" if value is None else str(value)


def invoke_in_vm(host: HostModel, parameters: Mapping[str, JsonValue]) -> OperationResult:
    """The invoke_in_vm operation (PowerShell Direct, Invoke-Command -VMId)."""
    ref = parameters.get("VM")
    target = None
    if isinstance(ref, Mapping):
        target = str(ref.get("Id") or ref.get("Name") or "")
    if not host.os.powershell_direct:
        # PowerShell Direct needs a Windows 10 / Server 2016 host or newer.
        return OperationResult(
            (),
            (
                _error(
                    "PowerShell Direct needs a Windows 10 or Windows Server 2016 host or newer.",
                    "HvIntegration.PowerShellDirectUnsupported",
                    "NotImplemented",
                    target,
                ),
            ),
        )
    errors: list[ErrorRecord] = []
    vm = _resolve(host, ref, target, errors)
    if vm is None:
        return OperationResult((), tuple(errors))
    if vm.state != "Running":
        return OperationResult(
            (),
            (
                _error(
                    f"The virtual machine '{vm.name}' is {vm.state}; PowerShell Direct "
                    "needs it running.",
                    "HvIntegration.VMNotRunning",
                    "ResourceUnavailable",
                    target,
                ),
            ),
        )
    state = vm.windows
    session = None if state is None else state.services.get(_VMSESSION)
    if state is None or session is None or session.start_type == "Disabled" or state.booting:
        return OperationResult((), (_session_broken(vm, state),))
    user = _text(parameters, "UserName")
    if not user or state.credentials.get(user) != _text(parameters, "Password"):
        return OperationResult((), (_credential_refused(vm, user),))
    # vmicvmsession is trigger-started: a session starts it.
    session.status = "Running"
    inner = parameters.get("Parameters") or {}
    if not isinstance(inner, Mapping):
        inner = {}
    result = run_guest_script(vm, _text(parameters, "Script"), inner, user in state.administrators)
    # Invoke-Command tags every object it returns with the computer it came from.
    output = tuple({**obj, "PSComputerName": state.computer_name} for obj in result.output)
    return OperationResult(output, result.errors)


def _session_broken(vm: SimulatedVM, state: WindowsGuestState | None) -> ErrorRecord:
    """What Invoke-Command -VMId reports when nothing in the guest takes the session.

    The client connects a Hyper-V socket to the guest's vmicvmsession
    service (RemoteSessionHyperVSocketClient.Connect, PowerShell's
    engine/remoting/common/RemoteSessionHyperVSocket.cs). A guest that is
    still booting does not answer yet: the transport manager fails with
    VMSessionConnectFailed (VMHyperVSocketClientSessionTransportManager in
    engine/remoting/fanin/OutOfProcTransportManager.cs). A guest older than
    Windows 10 / Server 2016 has no vmicvmsession at all, and a disabled one
    never starts; Windows PowerShell then reports the remoting error a
    public report shows for such a guest.
    """
    if state is not None and state.booting:
        return ErrorRecord(
            "A failure occurred while attempting to connect to the target virtual machine.",
            error_id=_SESSION_BROKEN,
            category="OpenError",
            exception_type="System.Management.Automation.PSInvalidOperationException",
            target_object=vm.name,
        )
    return ErrorRecord(
        "An error has occurred which Windows PowerShell cannot handle. A remote session "
        "might have ended.",
        error_id=_SESSION_BROKEN,
        category="OpenError",
        exception_type="System.Management.Automation.Remoting.PSRemotingDataStructureException",
        target_object=vm.name,
    )


def _credential_refused(vm: SimulatedVM, user: str) -> ErrorRecord:
    """A refused credential: the guest answers FAIL and the client throws
    PSDirectException (RemoteSessionHyperVSocketClient.Connect; the messages
    are RemotingErrorIdStrings InvalidCredential and InvalidUsername)."""
    message = "The credential is invalid." if user else "The input username cannot be empty."
    return ErrorRecord(
        message,
        error_id=_SESSION_BROKEN,
        category="OpenError",
        exception_type="System.Management.Automation.Remoting.PSDirectException",
        target_object=vm.name,
    )


def _copy_error(message: str, code: str) -> SimulatedScriptError:
    return SimulatedScriptError(
        ErrorRecord(
            message + f" ({code})",
            error_id="OperationFailed,Microsoft.HyperV.PowerShell.Commands.CopyVMFile",
            category="NotSpecified",
            exception_type="Microsoft.HyperV.PowerShell.VirtualizationException",
        )
    )


def copy_vm_file(host: HostModel, parameters: Mapping[str, JsonValue]) -> OperationResult:
    """The copy_vm_file operation (Copy-VMFile -FileSource Host)."""
    ref = parameters.get("VM")
    target = str(ref.get("Id") or ref.get("Name") or "") if isinstance(ref, Mapping) else None
    errors: list[ErrorRecord] = []
    vm = _resolve(host, ref, target, errors)
    if vm is None:
        return OperationResult((), tuple(errors))
    gsi = catalogue.GUEST_SERVICE_INTERFACE.component_id
    assert isinstance(gsi, uuid.UUID)
    failure = None
    if gsi not in vm.enabled:
        failure = _error(
            "This host has no Guest Service Interface (it arrived with Windows Server 2012 R2).",
            "HvIntegration.ServiceNotFound",
            "ObjectNotFound",
            target,
        )
    elif not vm.enabled[gsi]:
        failure = _error(
            f"Guest Service Interface is disabled for '{vm.name}' on the host.",
            "HvIntegration.GuestServiceInterfaceDisabled",
            "InvalidOperation",
            target,
        )
    elif vm.state != "Running":
        failure = _error(
            f"The virtual machine '{vm.name}' is {vm.state}; file copy needs it running.",
            "HvIntegration.VMNotRunning",
            "ResourceUnavailable",
            target,
        )
    elif not vm.runs(gsi):
        failure = _error(
            "The guest side of Guest Service Interface does not answer (No Contact).",
            "HvIntegration.GuestServiceNotRunning",
            "ResourceUnavailable",
            target,
        )
    source = _text(parameters, "SourcePath")
    if failure is None and source.casefold() not in host.files:
        failure = _error(
            f"The host has no file '{source}'.",
            "HvIntegration.SourceNotFound",
            "ObjectNotFound",
            target,
        )
    if failure is not None:
        return OperationResult((), (failure,))
    files = vm.files
    assert files is not None
    destination = _text(parameters, "DestinationPath")
    where = (
        f"Failed to copy the source file '{source}' to the destination "
        f"'{destination}' in the guest."
    )
    if not files.is_absolute(destination):
        raise _copy_error(where + " The path must be absolute.", "0x80070057")
    path = files.normalise(destination)
    if path in files.directories:
        raise _copy_error(where + " The destination is a directory.", "0x80070005")
    parent = files.parent(path)
    if parent not in files.directories:
        if not parameters.get("CreateFullPath"):
            # Without -CreateFullPath, Copy-VMFile needs the folder to exist.
            raise _copy_error(where + " The system cannot find the path specified.", "0x80070003")
        files.make_directories(parent)
    if path in files.files and not parameters.get("Overwrite"):
        # Without -Force an existing destination is an error.
        raise _copy_error(where + " The file exists.", "0x80070050")
    data = host.files[source.casefold()]
    files.files[path] = data
    result: JsonObject = {
        "VMName": vm.name,
        "VMId": str(vm.id),
        "SourcePath": source,
        "DestinationPath": destination,
        "Size": len(data),
    }
    return OperationResult((result,))


HOST_HANDLERS: Mapping[str, Callable[[HostModel, Mapping[str, JsonValue]], OperationResult]] = (
    MappingProxyType({"invoke_in_vm": invoke_in_vm, "copy_vm_file": copy_vm_file})
)
"""Host operations that reach into guests, by name."""
