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
from importlib import resources
from types import MappingProxyType

import attrs

__all__ = [
    "GET_INTEGRATION_SERVICES",
    "LIST_VMS",
    "OPERATIONS",
    "SET_INTEGRATION_SERVICES",
    "Operation",
    "script_text",
]

_PARAM_BLOCK = re.compile(r"^param\(\s*(?P<body>.*?)^\)", re.MULTILINE | re.DOTALL)
_PARAM_NAME = re.compile(r"\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


def script_text(filename: str) -> str:
    """The text of one shipped script file.

    Args:
        filename: A file name under ``operations/scripts``.

    Returns:
        The file's text.
    """
    return resources.files(__name__).joinpath("scripts").joinpath(filename).read_text("utf-8")


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
    """

    name: str
    script: str = attrs.field(repr=False)
    parameters: tuple[str, ...]

    @classmethod
    def load(cls, name: str) -> Operation:
        """Load a shipped operation by name.

        Args:
            name: The script's file name stem.

        Returns:
            The operation, with the prelude placed after its ``param()`` block.

        Raises:
            ValueError: The script has no ``param()`` block.
        """
        body = script_text(f"{name}.ps1")
        match = _PARAM_BLOCK.search(body)
        if match is None:
            raise ValueError(f"operation script {name}.ps1 has no param() block")
        parameters = tuple(m.group("name") for m in _PARAM_NAME.finditer(match.group("body")))
        head = body[: match.end()]
        tail = body[match.end() :]
        script = f"{head}\n{script_text('_prelude.ps1')}\n{tail}"
        return cls(name=name, script=script, parameters=parameters)


LIST_VMS = Operation.load("list_vms")
"""``Get-VM`` summaries. Parameter ``VM``: list of ``{Name}``/``{Id}`` or null for all."""

GET_INTEGRATION_SERVICES = Operation.load("get_integration_services")
"""``Get-VMIntegrationService`` for many VMs. Parameter ``VM`` as for :data:`LIST_VMS`."""

SET_INTEGRATION_SERVICES = Operation.load("set_integration_services")
"""Enable/disable what differs. Parameter ``Changes``: ``{VM, ServiceId, Enabled}`` items."""

OPERATIONS = MappingProxyType(
    {op.name: op for op in (LIST_VMS, GET_INTEGRATION_SERVICES, SET_INTEGRATION_SERVICES)}
)
"""Every operation by name."""
