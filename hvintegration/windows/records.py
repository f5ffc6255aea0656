"""Records of a Windows guest's Hyper-V services."""

from __future__ import annotations

from typing import ClassVar

import attrs

from hvintegration._table import Column, JsonRecord, html_table
from hvintegration.catalogue import ServiceSpec

__all__ = ["GuestServiceState"]


@attrs.frozen
class GuestServiceState(JsonRecord):
    """One ``vmic*`` service in a Windows guest, as ``Get-Service`` shows it.

    Attributes:
        computer_name: The guest's computer name.
        name: The service name, such as ``vmicheartbeat``.
        service: Its catalogue entry, found by service name (never by the
            display name, which Windows localises).
        present: Whether the guest has the service at all; older guests lack
            the newer ones.
        display_name: The display name the guest reports, possibly localised.
        status: ``Running``, ``Stopped``, ``StopPending``...; empty when absent.
        start_type: ``Manual`` (the trigger-start default), ``Automatic`` or
            ``Disabled``; empty when absent.

    ``to_dict()`` gives these attributes by name, ``service`` as its
    catalogue key (``"vss"``) or ``None``.

    Example:
        >>> from hvintegration import catalogue
        >>> s = GuestServiceState("WEB01", "vmicvss", catalogue.VSS, True,
        ...     "Hyper-V Volume Shadow Copy Requestor", "Running", "Manual")
        >>> s.running, s.disabled
        (True, False)
    """

    computer_name: str
    name: str
    service: ServiceSpec | None
    present: bool
    display_name: str
    status: str
    start_type: str

    __columns__: ClassVar[tuple[Column, ...]] = (
        ("Status", lambda r: r.status if r.present else "(absent)"),
        ("Name", lambda r: r.name),
        ("DisplayName", lambda r: r.display_name),
        ("StartType", lambda r: r.start_type),
    )

    @property
    def running(self) -> bool:
        """Whether the service is running."""
        return self.status == "Running"

    @property
    def disabled(self) -> bool:
        """Whether its startup type is Disabled."""
        return self.start_type == "Disabled"

    def __repr__(self) -> str:
        if not self.present:
            return f"<GuestServiceState {self.computer_name}/{self.name} absent>"
        return (
            f"<GuestServiceState {self.computer_name}/{self.name} {self.status} "
            f"start={self.start_type}>"
        )

    def _repr_html_(self) -> str:
        return html_table([self])
