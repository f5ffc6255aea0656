"""The fixed PowerShell operations the library can run on a host or guest.

Every script the library sends is a file shipped in this package
(``operations/scripts/<name>.ps1``), prefixed by the shared helpers in
``_prelude.ps1``. None is ever assembled from caller values: parameters
travel out of band, as PSRP parameters or as JSON on stdin, and the script
reads them from its ``param()`` block.

Each operation documents its parameters and its output objects in its script
header; the simulator implements the same contract in Python
(:mod:`hvintegration.simulator`).

Example:
    >>> from hvintegration.operations import GET_INTEGRATION_SERVICES
    >>> GET_INTEGRATION_SERVICES.parameters
    ('VM',)
    >>> "param(" in GET_INTEGRATION_SERVICES.script
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from types import MappingProxyType

import attrs

__all__ = [
    "COPY_VM_FILE",
    "GET_GUEST_SERVICES",
    "GET_HOST_VERSION",
    "GET_INTEGRATION_SERVICES",
    "GET_KVP_ITEMS",
    "GUEST_PREFLIGHT",
    "INVOKE_IN_VM",
    "LIST_VMS",
    "OPERATIONS",
    "PREFLIGHT",
    "SET_GUEST_SERVICE",
    "SET_INTEGRATION_SERVICES",
    "SET_KVP_ITEMS",
    "Operation",
    "script_text",
]

_PARAM_BLOCK = re.compile(r"^param\(\s*(?P<body>.*?)^\)", re.MULTILINE | re.DOTALL)
_PARAM_NAME = re.compile(r"\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


def script_text(filename: str) -> str:
    """The text of one shipped script file, its includes expanded.

    A line that is exactly ``#include NAME.ps1`` is replaced by that file's
    text, so two scripts that must behave alike (the session loop and the
    psrp:// output command) share one copy. To PowerShell the line is a
    comment: the file alone still parses.

    Args:
        filename: A file name under ``operations/scripts``.

    Returns:
        The file's text.
    """
    text = resources.files(__name__).joinpath("scripts").joinpath(filename).read_text("utf-8")
    return _INCLUDE.sub(lambda match: script_text(match.group(1)).rstrip("\n"), text)


_INCLUDE = re.compile(r"^#include ([A-Za-z0-9_]+\.ps1)$", re.MULTILINE)


@attrs.frozen
class Operation:
    """One fixed PowerShell operation.

    Attributes:
        name: The operation's name, also its script's file name stem.
        script: The whole script sent to the target: the parameter block
            first (PowerShell requires it), then the shared prelude, then the
            body.
        parameters: The parameter names the script's ``param()`` block
            declares; a transport passes exactly these.
        side: ``host`` for operations that run on a Hyper-V host,
            ``guest`` for those that run inside a Windows guest.
        repeatable: Whether running it twice does no more than running it
            once, so a transport may resend it when it cannot tell whether
            a lost request ran. Reads and desired-state changes are; a file
            copy and a PowerShell Direct call (which may carry a restart)
            are not.
        changes: Whether it may change the target's state (enable a
            service, copy a file, write a KVP item); a call that times out
            then says the change may have been made.
        check: For a changing operation, the command that reads back what
            it changes (``hvintegration host kvp VM`` after a KVP write); a
            call that times out names it, so that the state is read before
            the change is tried again. Empty for a read.
    """

    name: str
    script: str = attrs.field(repr=False)
    parameters: tuple[str, ...]
    side: str = "host"
    repeatable: bool = True
    changes: bool = False
    check: str = ""

    def change_check(self, parameters: Mapping[str, object]) -> str | None:
        """How to read back what this call may change, or ``None`` for a read.

        A PowerShell Direct call is checked as the guest operation it
        carries.

        Args:
            parameters: The call's parameters.

        Returns:
            The operation's :attr:`check` (or the carried operation's), a
            generic hint when it names none, ``None`` when the call changes
            nothing.

        Example:
            >>> SET_KVP_ITEMS.change_check({})
            'hvintegration host kvp VM'
            >>> LIST_VMS.change_check({}) is None
            True
        """
        if not self.may_change(parameters):
            return None
        if self.check:
            return self.check
        script = parameters.get("Script") if self.name == "invoke_in_vm" else None
        carried = [op.check for op in OPERATIONS.values() if op.script == script and op.check]
        return carried[0] if carried else "a read of the same state"

    def may_change(self, parameters: Mapping[str, object]) -> bool:
        """Whether this call may change the target's state.

        A PowerShell Direct call changes what the guest operation it
        carries (its ``Script`` parameter) changes.

        Args:
            parameters: The call's parameters.

        Returns:
            ``True`` for a changing operation, or one carrying such.
        """
        if self.changes:
            return True
        script = parameters.get("Script") if self.name == "invoke_in_vm" else None
        return any(op.changes and op.script == script for op in OPERATIONS.values())

    def check_parameters(self, names: Iterable[str]) -> None:
        """Refuse parameter names the script does not declare.

        Args:
            names: The names a caller wants to pass.

        Raises:
            ValueError: An unknown parameter name.
        """
        names = list(names)
        odd = [name for name in names if not isinstance(name, str)]
        if odd:
            raise ValueError(
                f"operation {self.name} takes parameters named by strings, not {odd[0]!r}"
            )
        unknown = set(names) - set(self.parameters)
        if unknown:
            raise ValueError(
                f"operation {self.name} takes no parameter {', '.join(sorted(unknown))}"
            )

    @classmethod
    def load(
        cls,
        name: str,
        side: str = "host",
        *,
        repeatable: bool = True,
        changes: bool = False,
        check: str = "",
    ) -> Operation:
        """Load a shipped operation by name.

        Args:
            name: The script's file name stem.
            side: Where it runs, ``host`` or ``guest``.
            repeatable: Whether resending it is harmless.
            changes: Whether it may change the target's state.
            check: The command that reads back what it changes.

        Returns:
            The operation, with the prelude placed after its ``param()`` block.

        Raises:
            ValueError: The script has no ``param()`` block.
        """
        body = script_text(f"{name}.ps1")
        match = _PARAM_BLOCK.search(body)
        if match is None:
            raise ValueError(f"operation script {name}.ps1 has no param() block")
        # A default value (`$Flag = $false`) is not a parameter: look left of `=` only.
        declarations = "\n".join(line.split("=", 1)[0] for line in match.group("body").splitlines())
        parameters = tuple(m.group("name") for m in _PARAM_NAME.finditer(declarations))
        head = body[: match.end()]
        tail = body[match.end() :]
        script = f"{head}\n{script_text('_prelude.ps1')}\n{tail}"
        return cls(
            name=name,
            script=script,
            parameters=parameters,
            side=side,
            repeatable=repeatable,
            changes=changes,
            check=check,
        )


LIST_VMS = Operation.load("list_vms")
"""``Get-VM`` summaries. Parameter ``VM``: list of ``{Name}``/``{Id}`` or null for all."""

GET_INTEGRATION_SERVICES = Operation.load("get_integration_services")
"""``Get-VMIntegrationService`` for many VMs. Parameter ``VM`` as for :data:`LIST_VMS`."""

SET_INTEGRATION_SERVICES = Operation.load(
    "set_integration_services", changes=True, check="hvintegration host services VM"
)
"""Enable/disable what differs. Parameter ``Changes``: ``{VM, ServiceId, Enabled}`` items."""

COPY_VM_FILE = Operation.load(
    "copy_vm_file",
    repeatable=False,
    changes=True,
    check="Get-Item on the destination, in the guest",
)
"""``Copy-VMFile -FileSource Host`` after checking what it needs. Parameters
``VM``, ``SourcePath``, ``DestinationPath``, ``CreateFullPath``, ``Overwrite``."""

INVOKE_IN_VM = Operation.load("invoke_in_vm", repeatable=False)
"""PowerShell Direct: run a guest operation's ``Script`` with ``Parameters``
inside ``VM`` as ``UserName``/``Password`` (``Invoke-Command -VMId``)."""

GET_GUEST_SERVICES = Operation.load("get_guest_services", side="guest")
"""``Get-Service`` for the named ``vmic*`` services (parameter ``Name``) in a Windows guest."""

SET_GUEST_SERVICE = Operation.load(
    "set_guest_service", side="guest", changes=True, check="hvintegration windows services"
)
"""Start, stop, restart, enable or disable one ``vmic*`` service: ``Name``,
``Action``, ``WaitSeconds``."""

PREFLIGHT = Operation.load("preflight")
"""Read-only facts about a host for ``doctor``: session, rights, the Hyper-V
module, PowerShell Direct, and a dry read of each host operation. No parameters."""

GUEST_PREFLIGHT = Operation.load("guest_preflight", side="guest")
"""Read-only facts about a Windows guest for ``doctor``: session, rights, and a
dry read of the named ``vmic*`` services (parameter ``Name``)."""

GET_KVP_ITEMS = Operation.load("get_kvp_items")
"""Key-Value Pair Exchange items (intrinsic, guest, host) of many VMs, from
``root\\virtualization\\v2``. Parameter ``VM`` as for :data:`LIST_VMS`."""

SET_KVP_ITEMS = Operation.load("set_kvp_items", changes=True, check="hvintegration host kvp VM")
"""Add, modify and remove one VM's host-to-guest KVP items (AddKvpItems,
ModifyKvpItems, RemoveKvpItems, waiting for each job): ``VM``, ``Set`` (a list
of ``{Name, Data}``), ``Remove`` (names), ``WaitSeconds`` (one budget for every
job, below the caller's timeout). Repeatable: what it
sends depends on what the host already holds."""

GET_HOST_VERSION = Operation.load("get_host_version")
"""The host's own integration services version. No parameters."""

OPERATIONS = MappingProxyType(
    {
        op.name: op
        for op in (
            LIST_VMS,
            GET_INTEGRATION_SERVICES,
            SET_INTEGRATION_SERVICES,
            COPY_VM_FILE,
            INVOKE_IN_VM,
            GET_GUEST_SERVICES,
            SET_GUEST_SERVICE,
            PREFLIGHT,
            GUEST_PREFLIGHT,
            GET_KVP_ITEMS,
            SET_KVP_ITEMS,
            GET_HOST_VERSION,
        )
    }
)
"""Every operation by name."""
