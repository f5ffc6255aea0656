"""The ``sim://`` transport: operations run against a simulated host, in process.

It keeps the wire contract of the real transports: parameters and results
make a JSON round trip (so a value no transport could carry fails here too),
each call is one counted round trip, and injected latency, hangs, errors and
disconnects behave as they would on a wire.

URL form::

    sim://[HOSTNAME][?os=KEY&locale=LOCALE&vms=N&latency=SECONDS&state=PATH&guest=VM]

``os`` is a key of :data:`hvintegration.simulator.HOST_OSES`, ``locale`` a key
of :data:`hvintegration.simulator.LOCALES`; ``vms=N`` adds ``vm001`` ...
``vmN`` beside ``demovm``; ``state=PATH`` keeps the host in a JSON file so
that changes outlive the process (each CLI run otherwise starts afresh);
``guest=VM`` connects inside that VM, as a connection straight to a Windows
guest would.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

import attrs

from hvintegration.errors import (
    InvalidTargetError,
    ProtocolError,
    TransportBrokenError,
)
from hvintegration.simulator.engine import CallOutcome, run_simulated_call
from hvintegration.simulator.model import FaultKind, SimulatedHost
from hvintegration.simulator.profiles import HOST_OSES, LOCALES
from hvintegration.simulator.state import edit_state
from hvintegration.transport._url import check_options, parse_options
from hvintegration.transport.base import JsonValue, OperationResult, PowerShellTransport
from hvintegration.transport.errormap import error_from_record

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = ["SimulatorTarget", "SimulatorTransport"]


def _json_round_trip(value: object, what: str, *, target: str, operation: str) -> JsonValue:
    try:
        result: JsonValue = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ProtocolError(
            f"{what} cannot travel as JSON: {exc}", target=target, operation=operation
        ) from exc
    return result


class SimulatorTransport(PowerShellTransport):
    """Runs operations against one :class:`~hvintegration.simulator.SimulatedHost`.

    Args:
        host: The simulated host; a fresh default host when omitted.
        state_path: Keep the host in this state file instead of in memory
            (see :mod:`hvintegration.simulator.state`); ``host`` then seeds
            the file when it does not exist yet.

    Example:
        >>> import asyncio
        >>> from hvintegration.simulator import SimulatedHost
        >>> from hvintegration.operations import LIST_VMS
        >>> sim = SimulatedHost()
        >>> async def main():
        ...     async with sim.transport() as transport:
        ...         result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=5)
        ...     return [vm["Name"] for vm in result.output]
        >>> asyncio.run(main())
        ['demovm']
        >>> sim.round_trips
        1
    """

    def __init__(
        self,
        host: SimulatedHost | None = None,
        *,
        state_path: str | os.PathLike[str] | None = None,
        guest: str | None = None,
    ) -> None:
        self.host = host if host is not None else SimulatedHost()
        self.state_path = None if state_path is None else os.fspath(state_path)
        self.guest = guest

    @property
    def target(self) -> str:
        """``sim://HOSTNAME``, with ``?guest=VM`` when connected inside a VM."""
        suffix = f"?{urllib.parse.urlencode({'guest': self.guest})}" if self.guest else ""
        return f"sim://{self.host.name}{suffix}"

    def _call(self, operation: str, parameters: Mapping[str, JsonValue]) -> CallOutcome:
        if self.state_path is None:
            return run_simulated_call(self.host, operation, parameters, guest=self.guest)
        with edit_state(self.state_path, create=self.host) as host:
            return run_simulated_call(host, operation, parameters, guest=self.guest)

    async def _run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        sent = _json_round_trip(
            parameters, "the parameters", target=self.target, operation=operation.name
        )
        assert isinstance(sent, dict)
        outcome = self._call(operation.name, sent)
        if outcome.latency:
            await asyncio.sleep(outcome.latency)
        if outcome.fault is FaultKind.HANG:
            await asyncio.Event().wait()
        if outcome.fault is FaultKind.DISCONNECT:
            raise TransportBrokenError(
                "the simulated connection dropped", target=self.target, operation=operation.name
            )
        if outcome.error is not None:
            raise error_from_record(outcome.error, target=self.target, operation=operation.name)
        assert outcome.result is not None
        return outcome.result

    async def _aclose(self) -> None:
        """Nothing to release; the simulated host lives on."""


_DEFAULT_HOST = "HV01"
_DEFAULT_OS = "windows-server-2022"
_DEFAULT_LOCALE = "en-US"


@attrs.frozen
class SimulatorTarget:
    """Settings for a ``sim://`` target: a fresh simulated host per connection.

    Attributes:
        host_name: The simulated host's name.
        os: A host OS key.
        locale: A locale key.
        extra_vms: How many ``vmNNN`` VMs to add beside ``demovm``.
        latency: Seconds per round trip.
        state: A state file that keeps the host between connections and
            processes; created from the other settings when missing.
        guest: Connect inside this VM (name or id) instead of to the host,
            as a connection straight to a Windows guest would.
    """

    host_name: str = _DEFAULT_HOST
    os: str = _DEFAULT_OS
    locale: str = _DEFAULT_LOCALE
    extra_vms: int = 0
    latency: float = 0.0
    state: str | None = None
    guest: str | None = None

    @property
    def url(self) -> str:
        """The target as a URL."""
        query = {}
        if self.os != _DEFAULT_OS:
            query["os"] = self.os
        if self.locale != _DEFAULT_LOCALE:
            query["locale"] = self.locale
        if self.extra_vms:
            query["vms"] = str(self.extra_vms)
        if self.latency:
            query["latency"] = f"{self.latency:g}"
        if self.state:
            query["state"] = self.state
        if self.guest:
            query["guest"] = self.guest
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"sim://{self.host_name}{suffix}"

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> SimulatorTarget:
        """Parse ``sim://`` URL parts.

        Raises:
            InvalidTargetError: An option is unknown or malformed.
        """
        options, single = parse_options(url)
        text = f"sim://{url.netloc}"
        allowed = {"os", "locale", "vms", "latency", "state", "guest"}
        check_options(url, options, allowed, scheme="sim", target=text)
        os_key = single.get("os", _DEFAULT_OS)
        if os_key not in HOST_OSES:
            raise InvalidTargetError(
                f"unknown simulated host OS {os_key!r} (valid: {', '.join(HOST_OSES)})",
                target=text,
            )
        locale = single.get("locale", _DEFAULT_LOCALE)
        if locale not in LOCALES:
            raise InvalidTargetError(
                f"unknown simulated locale {locale!r} (valid: {', '.join(LOCALES)})", target=text
            )
        try:
            extra_vms = int(single.get("vms", "0"))
            latency = float(single.get("latency", "0"))
        except ValueError as exc:
            raise InvalidTargetError(f"malformed sim:// option: {exc}", target=text) from exc
        if not 0 <= extra_vms <= 10_000 or not 0 <= latency <= 60:
            raise InvalidTargetError(
                "sim:// takes vms from 0 to 10000 and latency from 0 to 60 seconds", target=text
            )
        return cls(
            host_name=url.netloc or _DEFAULT_HOST,
            os=os_key,
            locale=locale,
            extra_vms=extra_vms,
            latency=latency,
            state=single.get("state") or None,
            guest=single.get("guest") or None,
        )

    def build_host(self) -> SimulatedHost:
        """A new simulated host with these settings."""
        host = SimulatedHost(self.host_name, os=self.os, locale=self.locale, latency=self.latency)
        width = max(3, len(str(self.extra_vms)))
        for number in range(1, self.extra_vms + 1):
            host.add_vm(f"vm{number:0{width}d}")
        return host

    def open(self) -> SimulatorTransport:
        """A transport to a new simulated host, or to the one in the state file."""
        return SimulatorTransport(self.build_host(), state_path=self.state, guest=self.guest)
