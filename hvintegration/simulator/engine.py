"""One call against a simulated host, as any simulated peer performs it.

The in-process ``sim://`` transport, the stand-in PowerShell executable and
the PSRP test server all answer a call the same way: count the round trip,
let a waiting fault take it, else run the operation's handler. This module is
that one place; each peer only turns the outcome into its own wire format.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import attrs

from hvintegration.simulator.behaviour import HANDLERS, SimulatedScriptError
from hvintegration.simulator.model import FaultKind, SimulatedHost, SimulatedVM
from hvintegration.simulator.windows_behaviour import (
    GUEST_HANDLERS,
    HOST_HANDLERS,
    run_guest_operation,
)
from hvintegration.transport.base import ErrorRecord, JsonValue, OperationResult

__all__ = ["CallOutcome", "access_denied_record", "run_simulated_call"]


def access_denied_record(host_name: str) -> ErrorRecord:
    """What Hyper-V answers a user who is neither an administrator nor a
    member of Hyper-V Administrators."""
    return ErrorRecord(
        "You do not have the required permission to complete this task. Contact the "
        f"administrator of the authorization policy for the computer '{host_name}'.",
        error_id="InvalidOperation,Microsoft.HyperV.PowerShell.Commands.GetVM",
        category="PermissionDenied",
        exception_type="Microsoft.HyperV.PowerShell.VirtualizationException",
    )


@attrs.frozen
class CallOutcome:
    """How a simulated call ends.

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


def _guest_vm(host: SimulatedHost, guest: str) -> SimulatedVM | None:
    for vm in host.vms:
        if vm.name.casefold() == guest.casefold() or str(vm.id) == guest.lower():
            return vm
    return None


def _dispatch(
    host: SimulatedHost, operation: str, parameters: Mapping[str, JsonValue], guest: str | None
) -> OperationResult:
    if guest is None:
        handler = HANDLERS.get(operation) or HOST_HANDLERS.get(operation)
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
            raise SimulatedScriptError(
                ErrorRecord(
                    f"The simulated guest '{guest}' does not exist on this host.",
                    error_id="HvIntegration.NoSuchGuest",
                    category="ResourceUnavailable",
                )
            )
        if operation in GUEST_HANDLERS:
            return run_guest_operation(vm, operation, parameters, True)
        if operation in HANDLERS or operation in HOST_HANDLERS:
            # Inside a guest the Hyper-V module is not there.
            raise SimulatedScriptError(
                ErrorRecord(
                    "The term 'Get-VM' is not recognized as the name of a cmdlet, "
                    "function, script file, or operable program.",
                    error_id="CommandNotFoundException",
                    category="ObjectNotFound",
                    exception_type="System.Management.Automation.CommandNotFoundException",
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


def run_simulated_call(
    host: SimulatedHost,
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
    host.round_trips += 1
    host.calls.append(operation)
    latency = host.latency
    fault = host.take_fault(operation)
    if fault is not None:
        if fault.kind is FaultKind.ERROR:
            record = fault.record or access_denied_record(host.name)
            return CallOutcome(error=record, latency=latency)
        return CallOutcome(fault=fault.kind, latency=latency)
    try:
        result = _dispatch(host, operation, parameters, guest)
    except SimulatedScriptError as exc:
        return CallOutcome(error=exc.record, latency=latency)
    output = json.loads(json.dumps(list(result.output), allow_nan=False))
    return CallOutcome(result=OperationResult(tuple(output), result.errors), latency=latency)
