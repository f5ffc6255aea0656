"""How the Linux resources run the fixed guest scripts and read their reports."""

from __future__ import annotations

from hvintegration import catalogue

__all__ = ["ACTIVE_STATES", "UNITS", "report_fields", "sh"]

UNITS: tuple[str, ...] = tuple(
    dict.fromkeys(
        unit
        for spec in catalogue.ALL_SERVICES
        if spec.linux is not None
        for unit in spec.linux.units
    )
)
"""Every systemd unit name of every daemon, passed to the status report."""

ACTIVE_STATES = ("active", "activating", "reloading", "deactivating")
"""systemd ActiveState values in which the unit still has to be stopped."""


def sh(script: str, *args: str) -> list[str]:
    """The argv that runs a fixed script with its arguments.

    The script is fixed text; "hvintegration" becomes ``$0`` and the values
    ``$1``...: nothing is spliced into shell text.
    """
    return ["sh", "-c", script, "hvintegration", *args]


def report_fields(stdout: bytes, keyword: str) -> list[str]:
    """The fields of the first report line starting with ``keyword``; empty when none does."""
    for line in stdout.decode("utf-8", "replace").splitlines():
        fields = line.split("\t")
        if fields[0] == keyword:
            return fields[1:]
    return []
