"""Read operation output objects into records, refusing anything malformed.

A transport hands over JSON objects with the property names the scripts use.
Anything missing or of the wrong type is a :class:`ProtocolError`, never a
guessed or partial record.

One answer repeats the same ids many times: every service of a VM carries
the VM's id, and every VM has the same six component GUIDs. A
:class:`Decoder` parses each distinct id text once and reuses the parsed
value (``uuid.UUID`` is immutable) and the catalogue entry found for it;
``benchmarks/powershell_session.py`` prints the cost per record with and
without that reuse, side by side.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from hvintegration import catalogue
from hvintegration.errors import ProtocolError
from hvintegration.records import IntegrationServiceState, VMSummary
from hvintegration.transport.base import JsonValue

__all__ = ["Decoder"]

# Distinct id texts one decoder remembers; beyond it ids are parsed anew,
# so a peer sending millions of distinct ids cannot grow the cache forever.
_CACHE_LIMIT = 1 << 16


class Decoder:
    """Decodes output objects of one operation on one target.

    Args:
        target: The target URL, for error messages.
        operation: The operation name, for error messages.
    """

    def __init__(self, target: str, operation: str) -> None:
        self.target = target
        self.operation = operation
        self._guids: dict[str, uuid.UUID] = {}
        self._components: dict[str, tuple[uuid.UUID, catalogue.ServiceSpec | None]] = {}

    def fail(self, message: str) -> ProtocolError:
        """A protocol error about this operation's output."""
        return ProtocolError(
            f"unreadable output: {message}", target=self.target, operation=self.operation
        )

    def object(self, value: JsonValue, what: str) -> Mapping[str, JsonValue]:
        """``value`` as a JSON object."""
        if not isinstance(value, Mapping):
            raise self.fail(f"{what} is {type(value).__name__}, not an object")
        return value

    def text(self, obj: Mapping[str, JsonValue], key: str, *, allow_null: bool = True) -> str:
        """A string property; PowerShell's ``$null`` reads as empty text."""
        value = obj.get(key)
        if value is None and allow_null and key in obj:
            return ""
        if not isinstance(value, str):
            raise self.fail(f"property {key} is {type(value).__name__}, not a string")
        return value

    def flag(self, obj: Mapping[str, JsonValue], key: str) -> bool:
        """A boolean property."""
        value = obj.get(key)
        if not isinstance(value, bool):
            raise self.fail(f"property {key} is {type(value).__name__}, not a boolean")
        return value

    def integer(self, obj: Mapping[str, JsonValue], key: str) -> int:
        """An integer property."""
        value = obj.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"property {key} is {type(value).__name__}, not an integer")
        return value

    def guid(self, obj: Mapping[str, JsonValue], key: str) -> uuid.UUID:
        """A GUID property."""
        text = self.text(obj, key, allow_null=False)
        known = self._guids.get(text)
        if known is not None:
            return known
        try:
            value = uuid.UUID(text)
        except ValueError:
            raise self.fail(f"property {key} is not a GUID: {text[:60]!r}") from None
        if len(self._guids) < _CACHE_LIMIT:
            self._guids[text] = value
        return value

    def _component(self, full_id: str) -> tuple[uuid.UUID, catalogue.ServiceSpec | None]:
        """The component GUID after the last backslash of a service Id, and its entry."""
        suffix = full_id.rsplit("\\", 1)[-1]
        known = self._components.get(suffix)
        if known is not None:
            return known
        try:
            component_id = uuid.UUID(suffix)
        except ValueError:
            raise self.fail(f"integration service Id {full_id[:80]!r} ends in no GUID") from None
        found = (component_id, catalogue.by_component_id(component_id))
        if len(self._components) < _CACHE_LIMIT:
            self._components[suffix] = found
        return found

    def strings(self, obj: Mapping[str, JsonValue], key: str) -> tuple[str, ...]:
        """A list of strings; one string alone or ``$null`` are accepted too,
        because ConvertTo-Json unwraps one-element arrays and drops empty ones."""
        value = obj.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f"property {key} is not a list of strings")
        return tuple(str(v) for v in value)

    def vm_summary(self, value: JsonValue) -> VMSummary:
        """One ``list_vms`` output object."""
        obj = self.object(value, "a VM")
        generation = obj.get("Generation")
        return VMSummary(
            name=self.text(obj, "Name", allow_null=False),
            id=self.guid(obj, "Id"),
            state=self.text(obj, "State"),
            generation=None if generation is None else self.integer(obj, "Generation"),
            integration_services_version=self.text(obj, "IntegrationServicesVersion"),
            host=self.text(obj, "ComputerName"),
            # Empty or absent (a peer that predates the property): unknown.
            integration_services_state=(
                self.text(obj, "IntegrationServicesState") or None
                if obj.get("IntegrationServicesState") is not None
                else None
            ),
        )

    def service_state(self, value: JsonValue) -> IntegrationServiceState:
        """One ``ConvertTo-HvService`` output object."""
        obj = self.object(value, "an integration service")
        component_id, spec = self._component(self.text(obj, "Id", allow_null=False))
        return IntegrationServiceState(
            vm_name=self.text(obj, "VMName", allow_null=False),
            vm_id=self.guid(obj, "VMId"),
            name=self.text(obj, "Name"),
            component_id=component_id,
            service=spec,
            enabled=self.flag(obj, "Enabled"),
            primary_status=self.text(obj, "PrimaryStatusDescription"),
            secondary_status=self.text(obj, "SecondaryStatusDescription"),
            operational_status=self.strings(obj, "OperationalStatus"),
        )
