"""Transports: how the library reaches a Hyper-V host or a guest.

A *target* is a settings record (a URL a user types, parsed); ``open()`` on a
target gives a live :class:`Transport`. Every transport lives in one module
of this package and registers its URL scheme in :data:`SCHEMES`; resource
code only sees :class:`Transport`.

Example:
    >>> from hvintegration.transport import parse_target
    >>> parse_target("sim://HV01?locale=de-DE").url
    'sim://HV01?locale=de-DE'
"""

from __future__ import annotations

import importlib
from types import MappingProxyType

from hvintegration.errors import InvalidTargetError
from hvintegration.transport._url import missing_extra, refuse_ambiguous_credentials, split_url
from hvintegration.transport.base import (
    CompletedCommand,
    ErrorRecord,
    JsonValue,
    OperationResult,
    PowerShellTarget,
    PowerShellTransport,
    ShellTarget,
    ShellTransport,
    Target,
    Transport,
)

__all__ = [
    "CompletedCommand",
    "ErrorRecord",
    "JsonValue",
    "OperationResult",
    "PowerShellTarget",
    "PowerShellTransport",
    "SCHEMES",
    "ShellTarget",
    "ShellTransport",
    "Target",
    "Transport",
    "parse_target",
]


SCHEMES: MappingProxyType[str, str] = MappingProxyType(
    {
        "sim": "hvintegration.simulator.targets:SimulatorTarget",
        "sim-linux": "hvintegration.simulator.targets:SimulatedLinuxTarget",
        "local": "hvintegration.transport.local:LocalTarget",
        "ssh": "hvintegration.transport.ssh:SSHTarget",
        "psrp": "hvintegration.transport.psrp:PSRPTarget",
    }
)
"""URL scheme to the ``module:TargetClass`` that parses it. Modules load only
when their scheme is used, so an unused transport's dependencies never load
(and the transport layer never imports the simulator, which parses the
``sim`` schemes)."""


def parse_target(url: str) -> Target:
    """Parse a target URL into its settings record.

    Args:
        url: ``sim://...``, and the schemes of the installed transports.

    Returns:
        The target settings.

    Raises:
        InvalidTargetError: The URL is malformed, ambiguous (an unencoded
            ``/``, ``?`` or ``#`` in its password), its scheme is unknown, or
            the optional packages of its scheme are not installed (the
            message names the extra to install).
    """
    if not isinstance(url, str) or "://" not in url:
        raise InvalidTargetError("a target is a URL such as sim:// or ssh://user@host")
    parts = split_url(url.strip())
    scheme = parts.scheme.lower()
    where = SCHEMES.get(scheme)
    if where is None:
        raise InvalidTargetError(
            f"unknown target scheme {scheme + '://'!r} (valid: "
            f"{', '.join(s + '://' for s in SCHEMES)})"
        )
    refuse_ambiguous_credentials(parts, scheme=scheme)
    missing = missing_extra(parts, scheme=scheme)
    if missing is not None:
        raise InvalidTargetError(missing)
    module_name, _, class_name = where.partition(":")
    target_class = getattr(importlib.import_module(module_name), class_name)
    target: Target = target_class.from_url(parts)
    return target
