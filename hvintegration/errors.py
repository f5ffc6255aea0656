"""The exceptions hvintegration raises.

Every error the library raises derives from :class:`HvIntegrationError`, and
each one also subclasses the builtin exception that fits it, so callers can
catch either::

    HvIntegrationError
     ├── NotFoundError (LookupError)
     │    ├── VMNotFoundError
     │    ├── ServiceNotFoundError
     │    ├── DaemonNotFoundError
     │    └── AmbiguousVMError
     ├── InvalidTargetError (ValueError)
     ├── InvalidParameterError (ValueError)  a value the library will not send
     ├── UnsafeChangeError (ValueError)  needs force=True, and says why
     ├── PermissionDeniedError (PermissionError)
     ├── OperationTimeoutError (TimeoutError, asyncio.TimeoutError)
     ├── RemoteCommandError
     │    ├── VMNotRunningError
     │    ├── PowerShellDirectError
     │    │    └── GuestNotReadyError  the guest takes no session (booting, too old)
     │    ├── FileCopyUnavailableError  Guest Service Interface off on a side
     │    ├── DestinationExistsError (FileExistsError)
     │    ├── HyperVModuleMissingError  the host has no Hyper-V PowerShell module
     │    ├── UnsupportedPowerShellError  a constrained language mode, or no native Hyper-V
     │    ├── OperationStoppedError     the remote side stopped it midway
     │    ├── DaemonControlError        a Linux daemon would not stop or start
     │    └── KvpWriteError             a host KVP method or its job failed
     ├── TransportError (ConnectionError)
     │    ├── TransportClosedError      you closed it
     │    ├── TransportBrokenError      the peer or the channel broke it
     │    ├── ProtocolError             the peer answered something unreadable
     │    │    └── AnswerTooLargeError   larger than the max_output setting
     │    ├── AuthenticationError
     │    ├── HostKeyError
     │    └── PowerShellNotFoundError (FileNotFoundError)
     └── BatchError                     some targets of a batch failed

Each error carries the *target* (a URL with no secret in it), the *operation*
that failed and, where the remote side said something, the remote text. The
message joins them so that one line in a log says what happened where::

    >>> err = VMNotFoundError("demovm2", choices=["demovm"], target="sim://")
    >>> str(err)
    "no virtual machine named 'demovm2' (known: demovm) [target sim://]"
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from hvintegration._table import printable

__all__ = [
    "AmbiguousVMError",
    "AnswerTooLargeError",
    "AuthenticationError",
    "BatchError",
    "DaemonControlError",
    "DaemonNotFoundError",
    "DestinationExistsError",
    "FileCopyUnavailableError",
    "GuestNotReadyError",
    "HostKeyError",
    "HvIntegrationError",
    "HyperVModuleMissingError",
    "InvalidParameterError",
    "InvalidTargetError",
    "KvpWriteError",
    "NotFoundError",
    "OperationStoppedError",
    "OperationTimeoutError",
    "PermissionDeniedError",
    "PowerShellDirectError",
    "PowerShellNotFoundError",
    "ProtocolError",
    "RemoteCommandError",
    "ServiceNotFoundError",
    "TransportBrokenError",
    "TransportClosedError",
    "TransportError",
    "UnsafeChangeError",
    "UnsupportedPowerShellError",
    "VMNotFoundError",
    "VMNotRunningError",
]

_MAX_CHOICES_SHOWN = 12


def parse_vm_id(text: str) -> uuid.UUID | None:
    """The VM id a text names, or None when the text is a name.

    Text in the form Hyper-V prints a VMId in (``Get-VM``, the
    ambiguous-name error) is an id: 8-4-4-4-12 hexadecimal digits, any case,
    optionally in a pair of braces, surrounding blanks ignored. The looser
    forms :class:`uuid.UUID` also takes (32 bare digits, ``urn:uuid:``, one
    brace) are names. This one definition serves the host, the simulator
    and the messages that say "with id".

    Example:
        >>> parse_vm_id(" {6C09BB55-D683-4DA0-8931-C9BF705F6480} ")
        UUID('6c09bb55-d683-4da0-8931-c9bf705f6480')
        >>> parse_vm_id("urn:uuid:6c09bb55-d683-4da0-8931-c9bf705f6480") is None
        True
    """
    stripped = text.strip()
    match = _VM_ID.fullmatch(stripped)
    if match is None or stripped.startswith("{") != stripped.endswith("}"):
        return None
    return uuid.UUID(match.group(1))


_VM_ID = re.compile(
    r"\{?([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\}?", re.IGNORECASE
)


class HvIntegrationError(Exception):
    """Root of every error hvintegration raises.

    Args:
        message: What went wrong, in one sentence.
        target: The target the failure happened on, as a URL without secrets.
        operation: The library operation that failed, such as
            ``get_integration_services``.

    Example:
        >>> try:
        ...     raise HvIntegrationError("boom", target="sim://", operation="x")
        ... except HvIntegrationError as exc:
        ...     print(exc)
        boom [target sim://, operation x]
    """

    def __init__(
        self,
        message: str,
        *,
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.operation = operation

    def __str__(self) -> str:
        where = []
        if self.target:
            where.append(f"target {self.target}")
        if self.operation:
            where.append(f"operation {self.operation}")
        # Messages are built from names and error texts the remote side
        # chose: controls and bidirectional characters show as escapes
        # (the raw values stay in the attributes). Lines of a remote error
        # text stay lines.
        message = printable(self.message, newlines=True)
        if not where:
            return message
        return f"{message} [{printable(', '.join(where))}]"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not survive pickling by default; a
        # notebook that ships errors between processes should still work.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[HvIntegrationError], state: dict[str, Any]) -> HvIntegrationError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


def _choices_text(choices: Iterable[str]) -> str:
    names = sorted(set(choices), key=str.casefold)
    if not names:
        return "none"
    shown = ", ".join(printable(name) for name in names[:_MAX_CHOICES_SHOWN])
    if len(names) > _MAX_CHOICES_SHOWN:
        shown += f", ... ({len(names) - _MAX_CHOICES_SHOWN} more)"
    return shown


class NotFoundError(HvIntegrationError, LookupError):
    """Something named by the caller does not exist on the target.

    Attributes:
        name: The name or id the caller gave.
        choices: The valid names, where the library knows them.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        choices: Iterable[str] = (),
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, target=target, operation=operation)
        self.name = name
        self.choices = tuple(choices)


class VMNotFoundError(NotFoundError):
    """No virtual machine of that name or id exists on the host.

    Text in GUID form is always read as an id; when a VM is *named* like the
    id asked for, the message says so and gives that VM's own id.

    Attributes:
        own_ids: The ids of the VMs named like the id asked for, where the
            host was asked for them.

    Example:
        >>> raise VMNotFoundError("nosuchvm", choices=["demovm"])
        Traceback (most recent call last):
        ...
        hvintegration.errors.VMNotFoundError: no virtual machine named 'nosuchvm' (known: demovm)
    """

    def __init__(
        self,
        name: str,
        *,
        choices: Iterable[str] = (),
        own_ids: Iterable[str] = (),
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        choices = tuple(choices)
        self.own_ids = tuple(own_ids)
        vm_id = parse_vm_id(name)
        named_so = [c for c in choices if vm_id is not None and parse_vm_id(c) == vm_id]
        if vm_id is not None and named_so:
            # A VM named like a GUID: the text was read as an id, and that
            # VM's own id is another one.
            where = ", ".join(self.own_ids) if self.own_ids else "list_vms() or 'host vms' shows it"
            message = (
                f"no virtual machine with id {name!r}; text in GUID form is read as an id, "
                f"so the VM named {named_so[0]!r} is reached by its own id ({where})"
            )
        elif vm_id is not None:
            # The library always reads a GUID as an id (see host.VMRef).
            message = f"no virtual machine with id {name!r}"
        else:
            message = f"no virtual machine named {name!r}"
        if choices:
            message += f" (known: {_choices_text(choices)})"
        super().__init__(message, name=name, choices=choices, target=target, operation=operation)


class _UnknownNameError(NotFoundError):
    """A name of some kind that matches nothing, or a ``reason`` it is unusable."""

    kind = "name"

    def __init__(
        self,
        name: str,
        *,
        choices: Iterable[str] = (),
        reason: str | None = None,
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        choices = tuple(choices)
        if reason is None:
            message = f"unknown {self.kind} {name!r}"
            if choices:
                message += f" (valid: {_choices_text(choices)})"
        else:
            message = reason
        super().__init__(message, name=name, choices=choices, target=target, operation=operation)


class ServiceNotFoundError(_UnknownNameError):
    """An integration service name is unknown, or the VM does not have it.

    Raised for a name that matches nothing in the catalogue (the message lists
    the valid names), and for a service the catalogue knows but the host does
    not offer, as on hosts older than the service.

    Example:
        >>> str(ServiceNotFoundError("Guest Servce", choices=["VSS", "Heartbeat"]))
        "unknown integration service 'Guest Servce' (valid: Heartbeat, VSS)"
    """

    kind = "integration service"


class DaemonNotFoundError(_UnknownNameError):
    """A Linux integration daemon name is unknown, the service has none, or it is not installed.

    Example:
        >>> str(DaemonNotFoundError("hv_foo", choices=["hv_kvp_daemon", "kvp"]))
        "unknown integration daemon 'hv_foo' (valid: hv_kvp_daemon, kvp)"
    """

    kind = "integration daemon"


class AmbiguousVMError(NotFoundError):
    """A VM name matches more than one VM; name it by id instead.

    Hyper-V allows two VMs with one name. The library never guesses which one
    was meant.

    Attributes:
        ids: The ids of the VMs that share the name.
    """

    def __init__(
        self,
        name: str,
        *,
        ids: Iterable[str],
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.ids = tuple(ids)
        message = (
            f"{len(self.ids)} virtual machines are named {name!r}; "
            f"name one by id ({', '.join(self.ids)})"
        )
        super().__init__(message, name=name, choices=self.ids, target=target, operation=operation)


class InvalidTargetError(HvIntegrationError, ValueError):
    """A target URL or target setting is malformed or names no known transport."""


class InvalidParameterError(HvIntegrationError, ValueError):
    """A value the library refuses to send, before anything is sent.

    Raised for an unknown operation parameter, a bad timeout, or a command
    word that no remote side could take whole (a NUL character, a lone
    surrogate, an argv over the size sshd and the kernel accept). The target
    is untouched.
    """


class PermissionDeniedError(HvIntegrationError, PermissionError):
    """The account lacks the rights the operation needs.

    On a Hyper-V host that means membership of Administrators or Hyper-V
    Administrators; in a Linux guest, root or passwordless ``sudo``.
    """

    def __init__(
        self,
        message: str,
        *,
        remote_message: str | None = None,
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, target=target, operation=operation)
        self.remote_message = remote_message


if sys.version_info >= (3, 11):

    class OperationTimeoutError(HvIntegrationError, TimeoutError):
        """An operation did not finish within its timeout.

        It is also a :class:`TimeoutError` (and so an
        :class:`asyncio.TimeoutError`); whatever the operation started was
        cancelled and cleaned up before this was raised.

        Attributes:
            timeout: The limit that was exceeded, in seconds.
        """

        def __init__(
            self,
            message: str,
            *,
            timeout: float | None = None,
            target: str | None = None,
            operation: str | None = None,
        ) -> None:
            super().__init__(message, target=target, operation=operation)
            self.timeout = timeout

else:  # pragma: no cover - exercised on Python 3.10 only

    class OperationTimeoutError(HvIntegrationError, TimeoutError, asyncio.TimeoutError):
        """An operation did not finish within its timeout.

        It is also a :class:`TimeoutError` and an :class:`asyncio.TimeoutError`;
        whatever the operation started was cancelled and cleaned up before
        this was raised.

        Attributes:
            timeout: The limit that was exceeded, in seconds.
        """

        def __init__(
            self,
            message: str,
            *,
            timeout: float | None = None,
            target: str | None = None,
            operation: str | None = None,
        ) -> None:
            super().__init__(message, target=target, operation=operation)
            self.timeout = timeout


class RemoteCommandError(HvIntegrationError):
    """The remote side ran the operation and reported a failure.

    Attributes:
        error_id: The remote error id (PowerShell's ``FullyQualifiedErrorId``,
            or ``exit:N`` for a shell command).
        category: The PowerShell error category (``ObjectNotFound``,
            ``PermissionDenied``...), empty for shell commands.
        remote_message: The error text the remote side produced.
    """

    def __init__(
        self,
        message: str,
        *,
        error_id: str = "",
        category: str = "",
        remote_message: str = "",
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, target=target, operation=operation)
        self.error_id = error_id
        self.category = category
        self.remote_message = remote_message


class VMNotRunningError(RemoteCommandError):
    """The operation needs the VM running (PowerShell Direct, file copy)."""


class PowerShellDirectError(RemoteCommandError):
    """PowerShell Direct cannot reach the guest.

    The host must run Windows 10 or Windows Server 2016 or newer, the guest
    likewise, and the guest's ``vmicvmsession`` service must not be disabled.
    """


class GuestNotReadyError(PowerShellDirectError):
    """The VM runs, but its guest took no PowerShell Direct session.

    PowerShell Direct connects over a Hyper-V socket to the guest's
    ``vmicvmsession`` service. Nothing answers there while the guest is
    still booting, in a guest older than Windows 10 / Windows Server 2016
    (which has no such service), or when the service is disabled; PowerShell
    then reports the session as broken (``PSSessionStateBroken``, category
    ``OpenError``) or as ``VMSessionConnectFailed``. Wait for the guest to
    finish booting and retry; an old guest needs another way in (a network
    transport such as ``ssh://`` or ``psrp://``).

    Example:
        >>> err = GuestNotReadyError("no session", target="sim://#vm=demovm")
        >>> isinstance(err, PowerShellDirectError)
        True
    """


class FileCopyUnavailableError(RemoteCommandError):
    """File copy into the guest cannot work until Guest Service Interface is on.

    Attributes:
        side: ``host`` when the VM's Guest Service Interface is disabled on
            the host, ``guest`` when the guest side (``vmicguestinterface``,
            or ``hv_fcopy_daemon`` / ``hv_fcopy_uio_daemon`` on Linux) does
            not answer.
    """

    def __init__(self, message: str, *, side: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.side = side


class DestinationExistsError(RemoteCommandError, FileExistsError):
    """The destination file exists in the guest; copy with ``overwrite=True``."""


class HyperVModuleMissingError(RemoteCommandError):
    """The target ran PowerShell, but it has no Hyper-V cmdlets.

    The Hyper-V PowerShell module is a Windows feature of its own
    (``Microsoft-Hyper-V-Management-PowerShell``); a machine without the
    Hyper-V role, or with the role but not the module, cannot run host
    operations.

    Attributes:
        command: The Hyper-V cmdlet PowerShell could not find.

    Example:
        >>> str(HyperVModuleMissingError("Get-VM", target="local://"))
        "the Hyper-V PowerShell module is not installed (no command 'Get-VM') [target local://]"
    """

    def __init__(
        self,
        command: str,
        *,
        error_id: str = "CommandNotFoundException",
        remote_message: str = "",
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(
            f"the Hyper-V PowerShell module is not installed (no command {command!r})",
            error_id=error_id,
            category="ObjectNotFound",
            remote_message=remote_message,
            target=target,
            operation=operation,
        )
        self.command = command


class UnsupportedPowerShellError(RemoteCommandError):
    """The target's PowerShell cannot run the library's scripts; the message says what to use.

    Two cases, told apart by :attr:`error_id`:

    * ``HvIntegration.LanguageModeUnsupported`` (and PowerShell's own
      refusals such as ``ScriptsNotAllowed``): the session runs in
      Constrained Language, RestrictedLanguage or NoLanguage mode (a WDAC or
      AppLocker lockdown, or a JEA endpoint). Connect to an endpoint in
      FullLanguage mode, such as WinRM's default ``Microsoft.PowerShell``.
    * ``HvIntegration.PowerShellCoreWithoutHyperV``: PowerShell 7 on a host
      older than Windows Server 2019 / Windows 10 1809, which has no native
      Hyper-V module. Use Windows PowerShell 5.1 (``executable=powershell``,
      or ``configuration=Microsoft.PowerShell`` over WinRM).

    Example:
        >>> err = UnsupportedPowerShellError("needs FullLanguage", target="psrp://hv01")
        >>> isinstance(err, RemoteCommandError)
        True
    """


class UnsafeChangeError(HvIntegrationError, ValueError):
    """A change that can cut the host off from the VM was asked for without ``force=True``.

    Disabling or stopping Heartbeat, Shutdown, Key-Value Pair Exchange or
    PowerShell Direct hurts the host's ability to manage the VM (Key-Value
    Pair Exchange is how the host learns the VM's IP addresses), so the
    library refuses unless the caller insists. Nothing was changed.

    Attributes:
        services: The English names of the services concerned.
    """

    def __init__(
        self,
        services: Iterable[str],
        *,
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        self.services = tuple(services)
        names = ", ".join(self.services)
        super().__init__(
            f"refusing to turn off {names} without force=True: the host needs "
            f"{'it' if len(self.services) == 1 else 'them'} to manage the VM "
            "(heartbeat, clean shutdown, IP addresses through Key-Value Pair Exchange, "
            "PowerShell Direct); nothing was changed",
            target=target,
            operation=operation,
        )


class OperationStoppedError(RemoteCommandError):
    """The remote side stopped the operation before it finished.

    PowerShell reports a pipeline stopped by someone other than the caller
    (an administrator, a host shutting down, the remoting service) as
    ``PipelineStopped``. The connection still works; whether the operation
    took effect is unknown, so read the state again before retrying.
    """


class DaemonControlError(RemoteCommandError):
    """A Linux daemon did not reach the state asked for.

    Raised when instances outlive ``SIGTERM`` and the bounded wait, when a
    started daemon exits at once, or when systemd refuses the change.

    Attributes:
        daemon: The daemon's program name.
        pids: The processes still running (stop) or empty (start).
    """

    def __init__(
        self,
        message: str,
        *,
        daemon: str,
        pids: Iterable[int] = (),
        remote_message: str = "",
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, remote_message=remote_message, target=target, operation=operation)
        self.daemon = daemon
        self.pids = tuple(pids)


class KvpWriteError(RemoteCommandError):
    """Writing a VM's host-to-guest KVP items failed on the host.

    ``AddKvpItems``, ``ModifyKvpItems`` and ``RemoveKvpItems`` of
    ``Msvm_VirtualSystemManagementService`` return a code, or 4096 and a job
    that ends in a state; the first failure stops the write, and the methods
    after it are not called.

    Attributes:
        method: The method that failed.
        return_value: What it returned (32768 Failed, 32773 Invalid
            parameter, 32775 Invalid state...), or 4096 when its job failed.
        job_state: The job's ``JobState`` (8 Terminated, 9 Killed, 10
            Exception; 4 Running when the wait for it ran out), or ``None``.
        job_error_code: The job's ``ErrorCode``, or ``None``.
        result: What was done before the failure (a
            :class:`~hvintegration.records.KvpWriteResult`, whose items read
            ``pending``, ``failed`` or ``not-sent`` where the write stopped),
            or ``None`` when the host said nothing.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        return_value: int | None = None,
        job_state: int | None = None,
        job_error_code: int | None = None,
        result: object = None,
        error_id: str = "",
        category: str = "",
        remote_message: str = "",
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(
            message,
            error_id=error_id,
            category=category,
            remote_message=remote_message,
            target=target,
            operation=operation,
        )
        self.method = method
        self.return_value = return_value
        self.job_state = job_state
        self.job_error_code = job_error_code
        self.result = result


class TransportError(HvIntegrationError, ConnectionError):
    """The connection to the target could not be made or did not hold."""


class TransportClosedError(TransportError):
    """The transport was used after the caller closed it."""


class TransportBrokenError(TransportError):
    """The peer went away or the channel broke; a new connection may work."""


class ProtocolError(TransportError):
    """The peer answered with something the library cannot read.

    Raised for malformed, truncated, oversized or wrongly encoded answers;
    never turned into a partial or guessed record.
    """


class AnswerTooLargeError(ProtocolError):
    """One operation's answer is larger than the target's ``max_output`` setting.

    The answer is refused whole, never cut; the connection itself is sound
    (the command line exits 1, not with the "unreachable" status). Raise the
    bound in the URL (``?max_output=BYTES``) or read fewer VMs per call.

    Attributes:
        max_output: The bound, in bytes.
    """

    def __init__(
        self,
        message: str,
        *,
        max_output: int,
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(message, target=target, operation=operation)
        self.max_output = max_output


class AuthenticationError(TransportError):
    """The target refused the credentials. The message never contains them."""


class HostKeyError(TransportError):
    """The target's host key or certificate could not be verified."""


class PowerShellNotFoundError(TransportError, FileNotFoundError):
    """The PowerShell executable does not exist or cannot be run on the target.

    Attributes:
        executable: The program that was looked for.

    Example:
        >>> err = PowerShellNotFoundError("pwsh", target="local://")
        >>> isinstance(err, FileNotFoundError), str(err)
        (True, "PowerShell executable 'pwsh' not found [target local://]")
    """

    def __init__(
        self,
        executable: str,
        *,
        reason: str = "not found",
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        super().__init__(
            f"PowerShell executable {executable!r} {reason}", target=target, operation=operation
        )
        self.executable = executable


class BatchError(HvIntegrationError):
    """Some targets of a batch operation failed; the others were done.

    Nothing that succeeded is rolled back or lost: ``result`` holds what was
    done, ``errors`` maps each failed item to its own error.

    Attributes:
        result: The operation's result for the items that succeeded.
        errors: One error per failed item, keyed by the item as the caller
            named it.
    """

    def __init__(
        self,
        message: str,
        *,
        result: object,
        errors: Mapping[str, HvIntegrationError],
        target: str | None = None,
        operation: str | None = None,
    ) -> None:
        details = "; ".join(f"{key}: {err.message}" for key, err in errors.items())
        super().__init__(f"{message}: {details}", target=target, operation=operation)
        self.result = result
        self.errors = dict(errors)

    def _repr_html_(self) -> str:
        """In a notebook: one row per failed item, then what was done as its own table."""
        # Imported on use: only a notebook renders an error as HTML.
        import html

        from hvintegration._table import html_table

        def text(value: str) -> str:
            # Remote names and texts: controls and bidirectional overrides
            # shown as escapes, as in the records' tables.
            return html.escape(printable(value, newlines=True))

        summary = self.message.split(": ", 1)[0]
        where = f" ({text(self.target)})" if self.target else ""
        rows = "".join(
            f"<tr><td>{text(str(item))}</td><td>{type(error).__name__}</td>"
            f"<td>{text(error.message)}</td></tr>"
            for item, error in self.errors.items()
        )
        parts = [
            f"<p><b>BatchError</b>{where}: {text(summary)}</p>",
            "<table><thead><tr><th>Item</th><th>Error</th><th>Message</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>",
        ]
        done = getattr(self.result, "items", self.result)
        if isinstance(done, (tuple, list)) and done and hasattr(type(done[0]), "__columns__"):
            parts += ["<p>Done:</p>", html_table(done)]
        return "".join(parts)
