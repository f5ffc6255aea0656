"""What every simulated peer has: latency, injected faults, counted round trips.

A simulated Hyper-V host and a simulated Linux guest both derive from
:class:`SimulatedPeer`, so faults, latency and round-trip counting work and
read the same on both sides.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from hvintegration._seconds import check_seconds

if TYPE_CHECKING:
    from hvintegration.transport.base import ErrorRecord

__all__ = ["Fault", "FaultKind", "SimulatedPeer"]


class FaultKind(enum.Enum):
    """What an injected fault does to the next matching round trip."""

    ERROR = "error"
    """The call fails: a PowerShell operation with a terminating error
    record, a shell command with exit status 1 and the record's message on
    stderr."""
    HANG = "hang"
    """The target never answers; the caller's timeout ends the call."""
    DISCONNECT = "disconnect"
    """The connection breaks mid-call."""


@attrs.define
class Fault:
    """A fault waiting for a round trip.

    Attributes:
        kind: What happens.
        operation: The operation name it waits for, or ``None`` for any. On
            a Linux guest the names are those of
            :func:`hvintegration.simulator.linux_behaviour.command_name`
            (``status``, ``stop``, ``start``, ``kvp``, ``systemctl``, or the
            program of any other command).
        record: For :attr:`FaultKind.ERROR`, the error record (on a Linux
            guest only its message is used, as stderr); a default per side
            when ``None``.
        times: How many more round trips it affects.
    """

    kind: FaultKind
    operation: str | None = None
    record: ErrorRecord | None = None
    times: int = 1


class SimulatedPeer:
    """The part every simulated host and guest shares.

    Args:
        latency: Seconds each round trip takes.

    Attributes:
        latency: Seconds each round trip takes.
        faults: Faults waiting for round trips, first match first.
        round_trips: Calls answered so far (including faulted ones).
        calls: The operation name of each call, in order.
    """

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = check_seconds(latency, "latency", zero=True)
        self.faults: list[Fault] = []
        self.round_trips = 0
        self.calls: list[str] = []

    def inject_fault(
        self,
        kind: FaultKind | str,
        *,
        operation: str | None = None,
        record: ErrorRecord | None = None,
        times: int = 1,
    ) -> Fault:
        """Make the next matching round trips fail.

        Args:
            kind: A :class:`FaultKind` or its value (``"error"``, ``"hang"``,
                ``"disconnect"``).
            operation: Only this operation; any when ``None``.
            record: For ``error``, the error record the call fails with; by
                default, on a host, the access-denied record Hyper-V gives a
                user who is not a Hyper-V administrator, and on a Linux
                guest an input/output error.
            times: How many round trips it affects.

        Returns:
            The fault, which the caller may inspect or remove from
            :attr:`faults`.

        Raises:
            ValueError: An unknown kind.
        """
        fault = Fault(FaultKind(kind), operation=operation, record=record, times=times)
        self.faults.append(fault)
        return fault

    def take_fault(self, operation: str) -> Fault | None:
        """Consume one use of the first fault matching ``operation``, if any."""
        for fault in self.faults:
            if fault.operation in (None, operation):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def record_call(self, operation: str) -> None:
        """Count one round trip of ``operation``."""
        self.round_trips += 1
        self.calls.append(operation)
