"""One call against a simulated host or guest, as any simulated peer performs it.

The in-process ``sim://`` transport, the stand-in PowerShell executable and
the PSRP test server all answer a host call the same way: count the round
trip, let a waiting fault take it, else run the operation's handler. A
simulated Linux guest answers a shell command the same way. This module is
that one place; each peer only turns the outcome into its own wire format
(:func:`deliver_operation` and :func:`deliver_command` do it for peers in
this process).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import attrs

from hvintegration.errors import ProtocolError, TransportBrokenError, parse_vm_id
from hvintegration.operations import OPERATIONS
from hvintegration.simulator.behaviour import HANDLERS, SimulatedScriptError, known_vm_names
from hvintegration.simulator.faults import FaultKind
from hvintegration.simulator.kvp import KVP_HANDLERS
from hvintegration.simulator.linux_behaviour import answer_command, command_name
from hvintegration.simulator.session import (
    PREFLIGHT_HANDLERS,
    access_denied_record,
    session_refusal,
)
from hvintegration.simulator.windows_behaviour import (
    GUEST_HANDLERS,
    HOST_HANDLERS,
    run_guest_operation,
)
from hvintegration.transport.base import CompletedCommand, ErrorRecord, JsonValue, OperationResult
from hvintegration.transport.errormap import error_from_record

if TYPE_CHECKING:
    from hvintegration.operations import Operation
    from hvintegration.simulator.linux_model import LinuxGuestModel
    from hvintegration.simulator.world import HostModel, SimulatedVM

__all__ = [
    "CallOutcome",
    "CommandOutcome",
    "access_denied_record",
    "deliver_command",
    "deliver_operation",
    "powercli_get_vm_record",
    "run_simulated_call",
    "run_simulated_command",
    "unshipped_script_record",
]


def unshipped_script_record(operation: Operation) -> ErrorRecord | None:
    """Why the simulator refuses an operation whose script is not the shipped one.

    The stand-in PowerShell and the PSRP test server compare the script text
    they receive with the shipped scripts; the in-process simulator does the
    same, so a caller value spliced into script text fails every test that
    runs on the simulator, not only those that cross a process.

    Returns:
        The error record to fail with, or ``None`` when ``operation`` is
        exactly one of :data:`hvintegration.operations.OPERATIONS`.
    """
    shipped = OPERATIONS.get(operation.name)
    # The whole record, not only the script: an operation built by hand with
    # the shipped text but more parameter names would let unchecked names in.
    if shipped is not None and operation == shipped:
        return None
    return ErrorRecord(
        f"The simulator runs only the library's shipped operation scripts, unchanged; "
        f"the script sent as {operation.name!r} is not the shipped one.",
        error_id="HvIntegration.Simulator.UnknownScript",
        category="InvalidData",
    )


@attrs.frozen
class CallOutcome:
    """How a simulated PowerShell call ends.

    Exactly one of ``result``, ``error`` and ``fault`` is set.

    Attributes:
        result: The operation's output and non-terminating errors.
        error: A terminating error record: the script failed.
        fault: :attr:`FaultKind.HANG` (never answer) or
            :attr:`FaultKind.DISCONNECT` (drop the connection).
        latency: Seconds the peer should wait before answering.
    """

    result: OperationResult | None = None
    error: ErrorRecord | None = None
    fault: FaultKind | None = None
    latency: float = 0.0


@attrs.frozen
class CommandOutcome:
    """How a simulated shell command ends.

    Exactly one of ``result`` and ``fault`` is set.

    Attributes:
        result: The completed command, whatever its exit status.
        fault: :attr:`FaultKind.HANG` or :attr:`FaultKind.DISCONNECT`.
        latency: Seconds the peer should wait before answering.
    """

    result: CompletedCommand | None = None
    fault: FaultKind | None = None
    latency: float = 0.0


def _guest_vm(host: HostModel, guest: str) -> SimulatedVM | None:
    """The VM a guest connection names, read as the host reads a VM
    reference: a GUID (braces or not) is the id, other text an exact name
    without case; a name several VMs share is refused as the host refuses
    it (the AmbiguousVMName record lists their ids)."""
    vm_id = parse_vm_id(guest)
    if vm_id is not None:
        found = [vm for vm in host.vms if vm.id == vm_id]
    else:
        found = [vm for vm in host.vms if vm.name.casefold() == guest.strip().casefold()]
    if len(found) > 1:
        raise SimulatedScriptError(
            ErrorRecord(
                f"More than one virtual machine is named '{guest}'.",
                error_id="HvIntegration.AmbiguousVMName",
                category="InvalidArgument",
                exception_type="System.Exception",
                target_object=guest,
                details="\n".join(str(vm.id) for vm in found),
            )
        )
    return found[0] if found else None


def _dispatch(
    host: HostModel, operation: str, parameters: Mapping[str, JsonValue], guest: str | None
) -> OperationResult:
    if guest is None:
        handler = (
            HANDLERS.get(operation)
            or KVP_HANDLERS.get(operation)
            or HOST_HANDLERS.get(operation)
            or PREFLIGHT_HANDLERS.get(operation)
        )
        if handler is not None:
            return handler(host, parameters)
        if operation in GUEST_HANDLERS:
            raise SimulatedScriptError(
                ErrorRecord(
                    f"'{operation}' runs inside a Windows guest, and this target is the "
                    "Hyper-V host: connect to the guest, or use PowerShell Direct.",
                    error_id="HvIntegration.WrongSide",
                    category="InvalidOperation",
                )
            )
    else:
        vm = _guest_vm(host, guest)
        if vm is None:
            # The same record the host scripts give for an unknown VM, so the
            # caller gets VMNotFoundError with the names it could use.
            raise SimulatedScriptError(
                ErrorRecord(
                    f"The simulated guest '{guest}' does not exist on this host.",
                    error_id="HvIntegration.VMNotFound",
                    category="ObjectNotFound",
                    target_object=guest,
                    details=known_vm_names(host.vms),
                )
            )
        if operation in GUEST_HANDLERS:
            return run_guest_operation(vm, operation, parameters, True)
        if (
            operation in HANDLERS
            or operation in KVP_HANDLERS
            or operation in HOST_HANDLERS
            or operation in PREFLIGHT_HANDLERS
        ):
            # The URL names a guest, so the simulator knows the target is
            # the wrong kind for a host operation: the same record as the
            # opposite mistake, which the caller gets as InvalidTargetError.
            # (A real guest fails in the scripts' prelude, whose import of
            # the Hyper-V module finds none: HyperVModuleMissingError.)
            raise SimulatedScriptError(
                ErrorRecord(
                    f"'{operation}' runs on the Hyper-V host, and this target is a Windows "
                    f"guest ({guest}), not a Hyper-V host: connect to the host (a sim:// "
                    "URL without guest=), or use a command for the guest.",
                    error_id="HvIntegration.WrongSide",
                    category="InvalidOperation",
                )
            )
    raise SimulatedScriptError(
        ErrorRecord(
            f"The simulator has no operation named '{operation}'.",
            error_id="CommandNotFoundException",
            category="ObjectNotFound",
            exception_type="System.Management.Automation.CommandNotFoundException",
        )
    )


# VMware PowerCLI exports Get-VM too; on a host where it is installed an
# unqualified Get-VM may run PowerCLI's cmdlet, which fails until
# Connect-VIServer has run (issue 11's field report). A qualified
# Hyper-V\Get-VM always runs Hyper-V's.
# (A name in quotes is a string, such as Get-Command's -Name, not a call.)
_UNQUALIFIED_GET_VM = re.compile(r"(?<![\\\w'\"-])Get-VM(?![\w'\"-])", re.IGNORECASE)


def _unqualified_get_vm(script: str) -> bool:
    """Whether a script calls ``Get-VM`` without its module, outside comments."""
    return any(
        _UNQUALIFIED_GET_VM.search(line)
        for line in script.splitlines()
        if not line.lstrip().startswith("#")
    )


def powercli_get_vm_record() -> ErrorRecord:
    """What VMware PowerCLI's ``Get-VM`` answers when no vCenter is connected."""
    return ErrorRecord(
        "You are not currently connected to any servers. Please connect first using a "
        "Connect cmdlet.",
        error_id="Core_BaseCmdlet_NotConnectedError,"
        "VMware.VimAutomation.ViCore.Cmdlets.Commands.GetVM",
        category="ResourceUnavailable",
        exception_type="VMware.VimAutomation.ViCore.Types.V1.ErrorHandling.VimException."
        "ViServerConnectionException",
    )


def run_simulated_call(
    host: HostModel,
    operation: str,
    parameters: Mapping[str, JsonValue],
    *,
    guest: str | None = None,
) -> CallOutcome:
    """Perform one call on ``host``; the host records it as one round trip.

    Args:
        host: The simulated host, changed in place.
        operation: The operation name.
        parameters: Its parameters, already decoded from the wire.
        guest: When set, the call runs inside this VM (a name or id) rather
            than on the host, as a connection straight to a guest would.

    Returns:
        The outcome; output objects have made a JSON round trip.
    """
    host.record_call(operation)
    latency = host.latency
    fault = host.take_fault(operation)
    if fault is not None:
        if fault.kind is FaultKind.ERROR:
            record = fault.record or access_denied_record(host.name)
            return CallOutcome(error=record, latency=latency)
        return CallOutcome(fault=fault.kind, latency=latency)
    known = OPERATIONS.get(operation)
    if guest is None and host.powercli and known and _unqualified_get_vm(known.script):
        return CallOutcome(error=powercli_get_vm_record(), latency=latency)
    refusal = session_refusal(host, operation, guest=guest is not None)
    if refusal is not None:
        return CallOutcome(error=refusal, latency=latency)
    try:
        result = _dispatch(host, operation, parameters, guest)
    except SimulatedScriptError as exc:
        return CallOutcome(error=exc.record, latency=latency)
    output = json.loads(json.dumps(list(result.output), allow_nan=False))
    return CallOutcome(result=OperationResult(tuple(output), result.errors), latency=latency)


def run_simulated_command(
    guest: LinuxGuestModel, argv: tuple[str, ...], input: bytes | None = None
) -> CommandOutcome:
    """Perform one shell command on ``guest``; the guest records it as one round trip.

    Args:
        guest: The simulated Linux guest, changed in place.
        argv: The command.
        input: Its stdin.

    Returns:
        The outcome. An error fault completes the command with exit status
        1 and the fault record's message (an input/output error by default)
        on stderr.
    """
    name = command_name(argv)
    guest.record_call(name)
    latency = guest.latency
    fault = guest.take_fault(name)
    if fault is not None:
        if fault.kind is FaultKind.ERROR:
            message = fault.record.message if fault.record else f"{argv[0]}: Input/output error"
            failed = CompletedCommand(argv, 1, b"", (message + "\n").encode())
            return CommandOutcome(result=failed, latency=latency)
        return CommandOutcome(fault=fault.kind, latency=latency)
    status, stdout, stderr = answer_command(guest, argv, input or b"")
    return CommandOutcome(result=CompletedCommand(argv, status, stdout, stderr), latency=latency)


async def _wait_for_fault(
    latency: float, fault: FaultKind | None, *, target: str, operation: str
) -> None:
    if latency:
        await asyncio.sleep(latency)
    if fault is FaultKind.HANG:
        await asyncio.Event().wait()
    if fault is FaultKind.DISCONNECT:
        raise TransportBrokenError(
            "the simulated connection dropped", target=target, operation=operation
        )


async def deliver_operation(
    operation: Operation,
    parameters: Mapping[str, JsonValue],
    call: Callable[[str, Mapping[str, JsonValue]], CallOutcome],
    *,
    target: str,
) -> OperationResult:
    """Answer one operation for a peer in this process, as a wire would.

    Args:
        operation: The operation sent.
        parameters: Its parameters; they make a JSON round trip first, so a
            value no real transport could carry fails here too.
        call: Performs the call (usually :func:`run_simulated_call` on a
            host, or on one loaded from a state file).
        target: The peer's URL, for errors.

    Returns:
        The result.

    Raises:
        RemoteCommandError: The script is not the shipped one (nothing is
            counted), or the simulated script failed (mapped to a more
            specific error where one fits).
        ProtocolError: A parameter cannot travel as JSON.
        TransportBrokenError: A disconnect fault.
    """
    name = operation.name
    refused = unshipped_script_record(operation)
    if refused is not None:
        raise error_from_record(refused, target=target, operation=name)
    try:
        sent = json.loads(json.dumps(dict(parameters), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(
            f"the parameters cannot travel as JSON: {exc}", target=target, operation=name
        ) from exc
    outcome = call(name, sent)
    await _wait_for_fault(outcome.latency, outcome.fault, target=target, operation=name)
    if outcome.error is not None:
        raise error_from_record(outcome.error, target=target, operation=name)
    assert outcome.result is not None
    return outcome.result


async def deliver_command(outcome: CommandOutcome, *, target: str) -> CompletedCommand:
    """Answer one shell command for a peer in this process, as a wire would.

    Raises:
        TransportBrokenError: A disconnect fault.
    """
    await _wait_for_fault(outcome.latency, outcome.fault, target=target, operation="run_command")
    assert outcome.result is not None
    return outcome.result
