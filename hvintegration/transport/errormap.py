"""Turn PowerShell error records into the library's exceptions.

Every PowerShell transport reports remote failures as
:class:`~hvintegration.transport.base.ErrorRecord`; this module is the one
place that decides which exception each record becomes, so the mapping is the
same on every transport.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from hvintegration.errors import (
    AmbiguousVMError,
    AuthenticationError,
    DestinationExistsError,
    FileCopyUnavailableError,
    GuestNotReadyError,
    HvIntegrationError,
    HyperVModuleMissingError,
    InvalidTargetError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    PowerShellDirectError,
    RemoteCommandError,
    ServiceNotFoundError,
    UnsupportedPowerShellError,
    VMNotFoundError,
    VMNotRunningError,
)
from hvintegration.transport.base import ErrorRecord

__all__ = ["error_from_record", "is_powershell_direct_failure"]

_PERMISSION_TYPES = ("System.UnauthorizedAccessException",)
# The cmdlets the scripts call that only the Hyper-V module provides; a
# CommandNotFoundException for one of them means the module is missing.
_HYPERV_COMMAND = re.compile(r"^(Hyper-V\\)?(Get|Enable|Disable|Copy)-VM[A-Za-z]*$", re.IGNORECASE)
# How PowerShell refuses a script outside FullLanguage mode, by error id:
# NoLanguage (JEA endpoints) refuses any script ("ScriptsNotAllowed",
# Command.CreateCommandProcessor in PowerShell's
# src/System.Management.Automation/engine/hostifaces/Command.cs);
# RestrictedLanguage reports the first construct it does not allow
# (RestrictedLanguageChecker in engine/parser/SemanticChecks.cs, ids ending
# in "InDataSection"); Constrained Language refuses .NET calls at run time
# (ids naming ConstrainedLanguage). The scripts' own check reports
# HvIntegration.LanguageModeUnsupported.
_LANGUAGE_MODE_IDS = re.compile(
    r"^(HvIntegration\.LanguageModeUnsupported|ScriptsNotAllowed|\w*InDataSection"
    r"|CmdletNotInAllowedListForDataSection|DataSectionAllowedCommandDisallowed"
    r"|\w*ConstrainedLanguage\w*)$"
)
_FULL_LANGUAGE_HINT = (
    "the library needs a session in FullLanguage mode; connect to an endpoint that is not "
    "constrained, such as WinRM's default configuration Microsoft.PowerShell (not a JEA endpoint), "
    "or run where no WDAC/AppLocker lockdown applies"
)


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line for line in text.splitlines() if line)


def _names(text: str) -> tuple[str, ...]:
    # VM names, one a line, with '%', CR and LF inside a name
    # percent-encoded by the scripts (Resolve-HvVM in _prelude.ps1): a name
    # holding a line break is one name, not two invented ones.
    return tuple(urllib.parse.unquote(line) for line in text.split("\n") if line)


_HOST_HINT = "run as a member of Administrators or Hyper-V Administrators on the host"
_GUEST_HINT = "run as a member of Administrators in the guest"
_FILE_EXISTS = "0x80070050"


def _permission_hint(operation: str) -> str:
    from hvintegration.operations import OPERATIONS

    known = OPERATIONS.get(operation)
    return _GUEST_HINT if known is not None and known.side == "guest" else _HOST_HINT


# How a PowerShell Direct session that cannot be opened is reported, from
# PowerShell's source (src/System.Management.Automation/...):
# * Invoke-Command -VMId opens the session in the background; a session that
#   fails to open breaks its runspace, and the job reports the runspace's
#   reason as "PSSessionStateBroken", category OpenError
#   (PSRemotingChildJob.ProcessJobFailure, engine/remoting/client/Job.cs);
# * creating the runspace synchronously fails as "CreateRemoteRunspaceForVMFailed"
#   (InvokeCommandCommand, EnterPSSessionCommand), category InvalidOperation
#   or InvalidArgument;
# * a VM socket that connects to nothing throws VMSessionConnectFailed,
#   "A failure occurred while attempting to connect to the target virtual
#   machine." (VMHyperVSocketClientSessionTransportManager.CreateAsync,
#   engine/remoting/fanin/OutOfProcTransportManager.cs);
# * a refused credential is a PSDirectException, "The credential is invalid."
#   (RemotingErrorIdStrings.InvalidCredential), and an empty user name
#   likewise, "The input username cannot be empty."
#   (RemoteSessionHyperVSocketClient.Connect,
#   engine/remoting/common/RemoteSessionHyperVSocket.cs).
_DIRECT_IDS = frozenset(
    {"PSSessionStateBroken", "CreateRemoteRunspaceForVMFailed", "VMSessionConnectFailed"}
)
_DIRECT_UNSUPPORTED = "HvIntegration.PowerShellDirectUnsupported"
_GUEST_HINT_NOT_READY = (
    "the guest may still be booting (wait and retry), run a Windows older than Windows 10 / "
    "Windows Server 2016 (which has no PowerShell Direct), or have its vmicvmsession service "
    "disabled"
)


def _error_ids(record: ErrorRecord) -> tuple[str, ...]:
    return tuple(part.strip() for part in record.error_id.split(","))


def is_powershell_direct_failure(record: ErrorRecord) -> bool:
    """Whether a record says PowerShell Direct could not reach the guest.

    ``Invoke-Command -VMId`` reports a session it could not open as
    ``PSSessionStateBroken`` (category ``OpenError``), or, when the session
    could not even be created, as ``CreateRemoteRunspaceForVMFailed``; the
    exception is a ``PSDirectException`` for a refused credential. The
    library's own check for a host too old for PowerShell Direct has its own
    id.
    """
    ids = _error_ids(record)
    return (
        any(part in _DIRECT_IDS for part in ids)
        or record.base_id == _DIRECT_UNSUPPORTED
        or record.exception_type.endswith("PSDirectException")
    )


def _direct_error(record: ErrorRecord, remote: dict[str, Any]) -> HvIntegrationError:
    where = {"target": remote["target"], "operation": remote["operation"]}
    if record.exception_type.endswith("PSDirectException"):
        # Only the credential checks throw PSDirectException on a VM
        # session (the other one is for containers).
        return AuthenticationError(f"the guest refused the credential: {record.message}", **where)
    if record.base_id == _DIRECT_UNSUPPORTED:
        return PowerShellDirectError(f"PowerShell Direct failed: {record.message}", **remote)
    return GuestNotReadyError(
        f"the guest did not accept a PowerShell Direct session: {record.message} "
        f"({_GUEST_HINT_NOT_READY})",
        **remote,
    )


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
    where = {"target": target, "operation": operation}
    remote = {
        "error_id": record.error_id,
        "category": record.category,
        "remote_message": record.message,
        **where,
    }
    if _LANGUAGE_MODE_IDS.match(base_id):
        return UnsupportedPowerShellError(
            f"the target's PowerShell refused the library's script: {record.message} "
            f"({_FULL_LANGUAGE_HINT})",
            **remote,
        )
    if base_id == "HvIntegration.PowerShellCoreWithoutHyperV":
        return UnsupportedPowerShellError(record.message, **remote)
    if base_id == "HvIntegration.HyperVModuleMissing":
        return HyperVModuleMissingError(
            "Hyper-V\\Get-VM",
            error_id=record.error_id,
            remote_message=record.message,
            **where,
        )
    if base_id == "HvIntegration.WrongSide":
        # A guest operation sent to a host (or the reverse): the target is
        # the wrong kind for the command, as sim-linux:// is for a host.
        return InvalidTargetError(record.message, **where)
    if base_id == "HvIntegration.VMNotFound":
        return VMNotFoundError(item, choices=_names(record.details), **where)
    if base_id == "HvIntegration.AmbiguousVMName":
        return AmbiguousVMError(item, ids=_lines(record.details), **where)
    if base_id == "HvIntegration.ServiceNotFound":
        offered = _lines(record.details)
        reason = record.message
        if offered:
            reason += f" (it offers: {', '.join(offered)})"
        return ServiceNotFoundError(item, choices=offered, reason=reason, **where)
    if base_id == "HvIntegration.GuestServiceNotFound":
        return ServiceNotFoundError(item, reason=record.message, **where)
    if base_id == "HvIntegration.GuestServiceStuck":
        return OperationTimeoutError(record.message, target=target, operation=operation)
    if base_id == "HvIntegration.VMNotRunning":
        return VMNotRunningError(record.message, **remote)
    if is_powershell_direct_failure(record):
        return _direct_error(record, remote)
    if base_id == "HvIntegration.GuestServiceInterfaceDisabled":
        return FileCopyUnavailableError(
            f"{record.message} Enable it first, e.g. "
            "host.vm(...).integration_service('Guest Service Interface').enable() "
            "or: hvintegration host enable VM 'Guest Service Interface'",
            side="host",
            **remote,
        )
    if base_id == "HvIntegration.GuestServiceNotRunning":
        return FileCopyUnavailableError(
            f"{record.message} Start the guest side: the vmicguestinterface service in a "
            "Windows guest, hv_fcopy_daemon or hv_fcopy_uio_daemon in a Linux guest",
            side="guest",
            **remote,
        )
    if base_id == "HvIntegration.SourceNotFound":
        return NotFoundError(record.message, name=item, **where)
    if base_id == "CommandNotFoundException" and _HYPERV_COMMAND.match(
        str(record.target_object or "")
    ):
        return HyperVModuleMissingError(
            str(record.target_object),
            error_id=record.error_id,
            remote_message=record.message,
            **where,
        )
    if record.category == "AuthenticationError":
        return AuthenticationError(f"authentication failed: {record.message}", **where)
    if (
        base_id == "HvIntegration.AccessDenied"
        or record.category == "PermissionDenied"
        or record.exception_type in _PERMISSION_TYPES
    ):
        return PermissionDeniedError(
            f"permission denied: {_permission_hint(operation)} ({record.message})",
            remote_message=record.message,
            **where,
        )
    if _FILE_EXISTS in record.message:
        return DestinationExistsError(
            f"the destination exists in the guest; pass overwrite=True to replace it "
            f"({record.message})",
            **remote,
        )
    return RemoteCommandError(
        f"remote command failed: {record.message}"
        + (f" ({record.error_id})" if record.error_id else ""),
        **remote,
    )
