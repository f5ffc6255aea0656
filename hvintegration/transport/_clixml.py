"""Convert between the library's JSON values and psrpcore's CLIXML objects.

PSRP carries .NET objects serialised as CLIXML; psrpcore turns them into
Python objects (``PSCustomObject``, ``PSDict``, ``PSList``, ``PSInt``...).
The ``psrp://`` transport and the PSRP test server both need the same two
conversions, so that a value survives the trip exactly:

* JSON values to psrpcore objects, for parameters (client) and output
  (server);
* deserialised objects back to JSON values, and error records to
  :class:`~hvintegration.transport.base.ErrorRecord` and back.

Example:
    >>> from_wire(to_wire({"Name": "demovm", "Refs": [{"Id": None}], "Ratio": 0.5}))
    {'Name': 'demovm', 'Refs': [{'Id': None}], 'Ratio': 0.5}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psrpcore.types import (
    ErrorCategory,
    ErrorCategoryInfo,
    ErrorDetails,
    NETException,
    PSCustomObject,
    PSDouble,
    PSObject,
)
from psrpcore.types import ErrorRecord as PSErrorRecord

from hvintegration.transport.base import ErrorRecord, JsonValue

__all__ = [
    "category_to_ps",
    "details_to_ps",
    "error_from_ps",
    "error_to_ps",
    "exception_to_ps",
    "from_wire",
    "to_wire",
]

_INT64 = (-(2**63), 2**63 - 1)
_DESERIALIZED = "Deserialized."


def to_wire(value: object) -> Any:
    """A JSON value as a psrpcore object: JSON objects become PSCustomObjects.

    Floats become ``System.Double`` (psrpcore would pick ``Single`` and lose
    precision); the rest map to their natural CLIXML types.

    Args:
        value: A JSON value.

    Returns:
        The object psrpcore serialises.

    Raises:
        TypeError: ``value`` holds something that is not a JSON value, or
            an integer beyond 64 bits.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise TypeError(f"integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        return PSDouble(value)
    if isinstance(value, Mapping):
        items = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, not {type(key).__name__}")
            items[key] = to_wire(item)
        return PSCustomObject(**items)
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def from_wire(value: object) -> JsonValue:
    """A deserialised CLIXML value as a JSON value.

    Objects and hashtables become dicts with their property names, lists and
    arrays become lists, numbers and strings their plain Python types;
    anything else (a GUID, an enum, a date) becomes its string form.

    Args:
        value: What psrpcore deserialised.

    Returns:
        The JSON value.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(key): from_wire(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_wire(item) for item in value]
    if isinstance(value, PSObject):
        meta = value.PSObject
        properties = [*meta.adapted_properties, *meta.extended_properties]
        if properties:
            return {prop.name: from_wire(prop.get_value(value)) for prop in properties}
        if any(name.endswith("PSCustomObject") for name in getattr(value, "PSTypeNames", ())):
            # An object with no properties is still an object, as on every
            # other transport.
            return {}
    return str(value)


def _type_name(exception: object) -> str:
    names = getattr(exception, "PSTypeNames", None) or []
    name = str(names[0]) if names else ""
    return name[len(_DESERIALIZED) :] if name.startswith(_DESERIALIZED) else name


def error_from_ps(record: object) -> ErrorRecord:
    """A PowerShell error record, as psrpcore deserialised it, as an :class:`ErrorRecord`.

    Args:
        record: A ``psrpcore.types.ErrorRecord``.

    Returns:
        The message, ``FullyQualifiedErrorId``, category name, exception type,
        ``TargetObject`` and ``ErrorDetails.RecommendedAction``.
    """
    exception = getattr(record, "Exception", None)
    message = getattr(exception, "Message", None) or str(record)
    category_info = getattr(record, "CategoryInfo", None)
    category = getattr(category_info, "Category", None)
    details = getattr(record, "ErrorDetails", None)
    action = getattr(details, "RecommendedAction", None) if details is not None else None
    return ErrorRecord(
        str(message),
        error_id=str(getattr(record, "FullyQualifiedErrorId", None) or ""),
        category=category.name if isinstance(category, ErrorCategory) else str(category or ""),
        exception_type=_type_name(exception),
        target_object=from_wire(getattr(record, "TargetObject", None)),
        details=str(action or ""),
    )


def exception_to_ps(record: ErrorRecord) -> NETException:
    """The .NET exception of an error record, typed as the record says.

    Args:
        record: The error record.

    Returns:
        A ``NETException`` whose first type name is ``record.exception_type``.
    """
    exception = NETException(Message=record.message)
    if record.exception_type:
        names = [record.exception_type, *exception.PSTypeNames]
        exception.PSObject.type_names = list(dict.fromkeys(names))
    return exception


def category_to_ps(record: ErrorRecord) -> ErrorCategoryInfo:
    """The ``CategoryInfo`` of an error record (``NotSpecified`` for an unknown name)."""
    try:
        category = ErrorCategory[record.category]
    except KeyError:
        category = ErrorCategory.NotSpecified
    reason = record.exception_type.rsplit(".", 1)[-1] if record.exception_type else "Exception"
    return ErrorCategoryInfo(Category=category, Reason=reason)


def details_to_ps(record: ErrorRecord) -> ErrorDetails | None:
    """The ``ErrorDetails`` of an error record, or ``None`` when it has none."""
    if not record.details:
        return None
    return ErrorDetails(Message=record.message, RecommendedAction=record.details)


def error_to_ps(record: ErrorRecord) -> PSErrorRecord:
    """An :class:`ErrorRecord` as the PowerShell error record psrpcore serialises.

    Args:
        record: The error record.

    Returns:
        A ``psrpcore.types.ErrorRecord`` that :func:`error_from_ps` reads back
        unchanged.
    """
    return PSErrorRecord(
        Exception=exception_to_ps(record),
        CategoryInfo=category_to_ps(record),
        TargetObject=to_wire(record.target_object),
        FullyQualifiedErrorId=record.error_id or None,
        ErrorDetails=details_to_ps(record),
    )
