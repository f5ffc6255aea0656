"""The ``local://`` transport: the machine running Python is the target.

Shell commands run as child processes of this process (a Linux guest
managing itself). PowerShell operations run through a local PowerShell
executable (a Hyper-V host managing itself).

URL form::

    local://[?executable=PATH]

``executable`` is the PowerShell program: ``powershell.exe`` by default on
Windows, ``pwsh`` elsewhere.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import attrs

from hvintegration.errors import InvalidTargetError, TransportClosedError, TransportError
from hvintegration.transport._process import run_process
from hvintegration.transport.base import CompletedCommand, JsonValue, OperationResult, Transport

if TYPE_CHECKING:
    from hvintegration.operations import Operation

__all__ = ["LocalTarget", "LocalTransport", "default_powershell"]


def default_powershell() -> str:
    """``powershell.exe`` on Windows, ``pwsh`` elsewhere."""
    return "powershell.exe" if sys.platform == "win32" else "pwsh"


@attrs.frozen
class LocalTarget:
    """Settings for the local machine as a target.

    Attributes:
        executable: The PowerShell program for operations.

    Example:
        >>> LocalTarget(executable="/opt/pwsh").url
        'local://?executable=%2Fopt%2Fpwsh'
    """

    executable: str = attrs.field(factory=default_powershell)

    @property
    def url(self) -> str:
        """The target as a URL."""
        if self.executable == default_powershell():
            return "local://"
        return "local://?" + urllib.parse.urlencode({"executable": self.executable})

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> LocalTarget:
        """Parse ``local://`` URL parts.

        Raises:
            InvalidTargetError: The URL names a host or an unknown option.
        """
        if url.netloc not in ("", "localhost"):
            raise InvalidTargetError(
                "local:// takes no host name; use ssh:// or psrp:// for another machine",
                target="local://",
            )
        options = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        unknown = set(options) - {"executable"}
        if unknown:
            raise InvalidTargetError(
                f"unknown local:// option {', '.join(sorted(unknown))} (valid: executable)",
                target="local://",
            )
        if "executable" in options:
            executable = options["executable"][-1]
            if not executable:
                raise InvalidTargetError("executable must not be empty", target="local://")
            return cls(executable=executable)
        return cls()

    def open(self) -> LocalTransport:
        """A transport to this machine."""
        return LocalTransport(self)


class LocalTransport(Transport):
    """Runs commands and PowerShell operations on this machine.

    Args:
        settings: The target settings; defaults when omitted.

    Example:
        >>> import asyncio
        >>> async def main():
        ...     async with LocalTransport() as local:
        ...         done = await local.run_command(["echo", "hi"], timeout=5)
        ...     return done.exit_status, done.stdout
        >>> asyncio.run(main())
        (0, b'hi\\n')
    """

    def __init__(self, settings: LocalTarget | None = None) -> None:
        self.settings = settings if settings is not None else LocalTarget()
        self._closed = False

    @property
    def target(self) -> str:
        """``local://`` and the PowerShell executable if not the default."""
        return self.settings.url

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise TransportClosedError(
                "the transport is closed", target=self.target, operation=operation
            )

    async def run_command(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float,
    ) -> CompletedCommand:
        """Run ``argv`` as a child process (see :class:`Transport`)."""
        self._check_open("run_command")
        return await run_process(argv, input=input, timeout=timeout, target=self.target)

    async def run_operation(
        self,
        operation: Operation,
        parameters: Mapping[str, JsonValue],
        *,
        timeout: float,
    ) -> OperationResult:
        """Run a PowerShell operation through the local PowerShell."""
        self._check_open(operation.name)
        raise TransportError(
            "PowerShell operations over local:// are not available in this version",
            target=self.target,
            operation=operation.name,
        )

    async def aclose(self) -> None:
        """Mark the transport closed. Commands already running finish on their own."""
        self._closed = True
