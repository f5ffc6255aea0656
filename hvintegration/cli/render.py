"""Turn records into what the command line prints: tables or JSON."""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

from hvintegration._table import Tabular, text_table
from hvintegration.catalogue import ServiceSpec

__all__ = ["to_json", "render"]


def _plain(value: Any) -> Any:
    if isinstance(value, ServiceSpec):
        return value.key
    if attrs.has(type(value)):
        return {
            field.name: _plain(getattr(value, field.name)) for field in attrs.fields(type(value))
        }
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def to_json(records: Sequence[object]) -> str:
    """Records as a JSON array: attrs fields by name, ids as text, catalogue
    entries by their key.

    Example:
        >>> import uuid
        >>> from hvintegration.records import VMSummary
        >>> print(to_json([VMSummary("demovm", uuid.UUID(int=0), "Off", 2, "", "HV01")]))
        [
          {
            "name": "demovm",
            "id": "00000000-0000-0000-0000-000000000000",
            "state": "Off",
            "generation": 2,
            "integration_services_version": "",
            "host": "HV01"
          }
        ]
    """
    return json.dumps([_plain(record) for record in records], indent=2, ensure_ascii=False)


def render(records: Sequence[Tabular], *, as_json: bool) -> str:
    """The text a command prints for its records."""
    if as_json:
        return to_json(records)
    return text_table(records)
