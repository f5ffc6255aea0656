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
from hvintegration.simulator.model import FaultKind, SimulatedHost
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


def run_simulated_call(
    host: SimulatedHost, operation: str, parameters: Mapping[str, JsonValue]
) -> CallOutcome:
    """Perform one call on ``host``; the host records it as one round trip.

    Args:
        host: The simulated host, changed in place.
        operation: The operation name.
        parameters: Its parameters, already decoded from the wire.

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
    handler = HANDLERS.get(operation)
    if handler is None:
        record = ErrorRecord(
            f"The simulator has no operation named '{operation}'.",
            error_id="CommandNotFoundException",
            category="ObjectNotFound",
            exception_type="System.Management.Automation.CommandNotFoundException",
        )
        return CallOutcome(error=record, latency=latency)
    try:
        result = handler(host, parameters)
    except SimulatedScriptError as exc:
        return CallOutcome(error=exc.record, latency=latency)
    output = json.loads(json.dumps(list(result.output), allow_nan=False))
    return CallOutcome(result=OperationResult(tuple(output), result.errors), latency=latency)
