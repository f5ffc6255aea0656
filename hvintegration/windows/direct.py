"""PowerShell Direct: reach a Windows guest through its host, with no network path.

:class:`PowerShellDirectTransport` is a transport like any other for guest
operations: each one travels to the host inside the ``invoke_in_vm``
operation, which runs it in the VM with ``Invoke-Command -VMId ...
-Credential``. The credential is a parameter of that operation, never part of
any script text, and never shown in ``repr``, errors or logs. Over
``psrp://`` it travels as a plain string parameter, like every other
parameter (a PSRP SecureString needs a session key exchange the other
transports have no counterpart for); psrpcore's DEBUG log of each PSRP
message is therefore kept without the message body.

It needs a Windows 10 or Windows Server 2016 host or newer, a guest of the
same age or newer, the VM running, and the guest's ``vmicvmsession`` service
not disabled; each missing requirement gives its own clear error.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Protocol

import attrs

from hvintegration._host_wire import VMHandle, vm_key
from hvintegration.errors import TransportError
from hvintegration.operations import INVOKE_IN_VM, Operation
from hvintegration.transport.base import JsonValue, OperationResult, PowerShellTransport
from hvintegration.transport.errormap import error_from_record, is_powershell_direct_failure

__all__ = ["Credential", "HostConnection", "PowerShellDirectTransport"]


class HostConnection(Protocol):
    """A connected Hyper-V host, as PowerShell Direct uses it: a
    :class:`~hvintegration.HyperVHost`. (A protocol, so that this package
    and the host's need not import each other.)"""

    @property
    def transport(self) -> PowerShellTransport:
        """The host's transport, which carries every PowerShell Direct call."""

    @property
    def target(self) -> str:
        """The host's URL."""

    @property
    def timeout(self) -> float:
        """Seconds each operation on the host may take."""


@attrs.frozen
class Credential:
    """An account in a guest.

    Attributes:
        user: The user name, e.g. ``Administrator`` or ``DOMAIN\\\\admin``.
        password: The password; never shown.

    Example:
        >>> Credential("Administrator", "s3cret")
        Credential(user='Administrator')
    """

    user: str
    password: str = attrs.field(repr=False)


class PowerShellDirectTransport(PowerShellTransport):
    """Runs guest operations inside one VM through its host.

    The host's transport carries every call; closing this transport leaves
    the host's open.

    Args:
        host: The connected host.
        vm: The VM's name or id (a GUID string is the id), or the
            :class:`~hvintegration.VirtualMachine` itself.
        credential: An account in the guest.
    """

    def __init__(
        self, host: HostConnection, vm: str | uuid.UUID | VMHandle, credential: Credential
    ) -> None:
        self.host = host
        # A GUID string is the VM's id, as everywhere a VM is named.
        self.vm = vm_key(vm)
        self.credential = credential

    @property
    def target(self) -> str:
        """The host's URL with the VM, e.g. ``sim://HV01#vm=demovm``."""
        return f"{self.host.target}#vm={self.vm}"

    def __repr__(self) -> str:
        return f"<PowerShellDirectTransport {self.target} as {self.credential.user}>"

    async def _run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        # Raises TransportError for a host operation; VMNotFoundError,
        # VMNotRunningError, PowerShellDirectError or AuthenticationError
        # when the VM cannot be reached this way.
        if operation.side != "guest":
            raise TransportError(
                f"{operation.name} runs on a Hyper-V host, not inside a guest",
                target=self.target,
                operation=operation.name,
            )
        reference: dict[str, JsonValue] = (
            {"Id": str(self.vm)} if isinstance(self.vm, uuid.UUID) else {"Name": self.vm}
        )
        result = await self.host.transport.run_operation(
            INVOKE_IN_VM,
            {
                "VM": reference,
                "UserName": self.credential.user,
                "Password": self.credential.password,
                "Script": operation.script,
                "Parameters": dict(parameters),
            },
            timeout=timeout,
        )
        # Errors about reaching the VM come back untagged by the guest
        # script; they fail the whole call.
        for record in result.errors:
            if is_powershell_direct_failure(record) or record.base_id in (
                "HvIntegration.VMNotFound",
                "HvIntegration.AmbiguousVMName",
                "HvIntegration.VMNotRunning",
            ):
                raise error_from_record(
                    record, target=self.target, operation=operation.name, name=str(self.vm)
                )
        return result

    async def _aclose(self) -> None:
        """Stop using the VM; the host's transport stays open."""
