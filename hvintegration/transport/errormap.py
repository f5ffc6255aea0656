"""Turn PowerShell error records into the library's exceptions.

Every PowerShell transport reports remote failures as
:class:`~hvintegration.transport.base.ErrorRecord`; this module is the one
place that decides which exception each record becomes, so the mapping is the
same on every transport.
"""

from __future__ import annotations

from hvintegration.errors import (
    AmbiguousVMError,
    HvIntegrationError,
    PermissionDeniedError,
    RemoteCommandError,
    ServiceNotFoundError,
    VMNotFoundError,
)
from hvintegration.transport.base import ErrorRecord

__all__ = ["error_from_record"]

_PERMISSION_TYPES = ("System.UnauthorizedAccessException",)


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.splitlines() if line)


def error_from_record(
    record: ErrorRecord,
    *,
    target: str,
    operation: str,
    name: str | None = None,
) -> HvIntegrationError:
    """The exception one error record stands for.

    Args:
        record: The remote error record.
        target: The target URL (no secrets), for the message.
        operation: The operation that produced it.
        name: What the caller called the failed item (a VM or service
            name), where the record's own target object is less readable.

    Returns:
        A specific error where one fits (VM not found, permission denied...),
        else a :class:`~hvintegration.errors.RemoteCommandError` with the
        record's id, category and message.
    """
    base_id = record.base_id
    item = name if name is not None else str(record.target_object or "")
    if base_id == "HvIntegration.VMNotFound":
        return VMNotFoundError(
            item, choices=_lines(record.details), target=target, operation=operation
        )
    if base_id == "HvIntegration.AmbiguousVMName":
        return AmbiguousVMError(
            item, ids=_lines(record.details), target=target, operation=operation
        )
    if base_id == "HvIntegration.ServiceNotFound":
        offered = _lines(record.details)
        reason = f"{record.message} (it offers: {', '.join(offered) or 'none'})"
        return ServiceNotFoundError(
            item, choices=offered, reason=reason, target=target, operation=operation
        )
    if record.category == "PermissionDenied" or record.exception_type in _PERMISSION_TYPES:
        return PermissionDeniedError(
            "permission denied: run as a member of Administrators or Hyper-V "
            f"Administrators on the host ({record.message})",
            remote_message=record.message,
            target=target,
            operation=operation,
        )
    return RemoteCommandError(
        f"remote command failed: {record.message}"
        + (f" ({record.error_id})" if record.error_id else ""),
        error_id=record.error_id,
        category=record.category,
        remote_message=record.message,
        target=target,
        operation=operation,
    )
