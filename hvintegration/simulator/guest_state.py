"""What runs inside a simulated guest: Windows services, accounts and files.

Kept apart from the host model so that each guest family can grow its own
state without the host knowing its details.
"""

from __future__ import annotations

import attrs

from hvintegration import catalogue
from hvintegration.simulator.profiles import GuestOS

__all__ = ["DEFAULT_CREDENTIAL", "GuestFiles", "SimulatedService", "WindowsGuestState"]

DEFAULT_CREDENTIAL = ("Administrator", "hvintegration")
"""The account every simulated Windows guest accepts unless told otherwise."""


@attrs.define
class SimulatedService:
    """One Windows service in a simulated guest.

    Attributes:
        status: ``Running``, ``Stopped``, ``StopPending``...
        start_type: ``Manual``, ``Automatic`` or ``Disabled``.
        stuck: Whether it hangs in ``StopPending`` when asked to stop, as a
            service whose worker never returns does.
    """

    status: str = "Running"
    start_type: str = "Manual"
    stuck: bool = False


def _default_services(guest: GuestOS) -> dict[str, SimulatedService]:
    # The vmic* services are trigger-started ("Manual (Trigger Start)") and
    # run while the host talks to them; the seed's listing shows all running
    # but vmicvmsession, which starts only when a PowerShell Direct session
    # arrives.
    return {
        name: SimulatedService(
            "Stopped" if name == catalogue.POWERSHELL_DIRECT.windows_service else "Running"
        )
        for name in guest.windows_services
    }


@attrs.define
class GuestFiles:
    """A guest's file system, as far as file copy needs one.

    Attributes:
        windows: Whether paths are Windows paths (case-insensitive,
            backslashes) or POSIX paths.
        directories: Existing directories, normalised.
        files: File contents by normalised path.
    """

    windows: bool
    directories: set[str] = attrs.field(factory=set)
    files: dict[str, bytes] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        # Counts, not the contents of every copied file.
        kind = "windows" if self.windows else "posix"
        return f"<GuestFiles {kind} directories={len(self.directories)} files={len(self.files)}>"

    def __attrs_post_init__(self) -> None:
        if not self.directories:
            roots = (
                ("C:\\", "C:\\Windows", "C:\\Temp", "C:\\Users")
                if self.windows
                else (
                    "/",
                    "/tmp",
                    "/root",
                    "/home",
                )
            )
            self.directories = {self.normalise(root) for root in roots}

    def normalise(self, path: str) -> str:
        """The path in the one spelling this file system compares by."""
        if self.windows:
            text = path.replace("/", "\\")
            while "\\\\" in text:
                text = text.replace("\\\\", "\\")
            text = text.rstrip("\\") or text
            if len(text) == 2 and text[1] == ":":
                text += "\\"
            return text.casefold()
        text = "/" + "/".join(part for part in path.split("/") if part)
        return text

    def parent(self, path: str) -> str:
        """The directory a normalised path lives in."""
        separator = "\\" if self.windows else "/"
        head, _, _ = path.rstrip(separator).rpartition(separator)
        if self.windows:
            return head + "\\" if len(head) == 2 else head
        return head or "/"

    def is_absolute(self, path: str) -> bool:
        """Whether a path names its root."""
        if self.windows:
            return len(path) >= 3 and path[1] == ":" and path[2] in "\\/"
        return path.startswith("/")

    def make_directories(self, directory: str) -> None:
        """Create a directory and its parents."""
        while directory not in self.directories:
            self.directories.add(directory)
            directory = self.parent(directory)


@attrs.define
class WindowsGuestState:
    """The inside of a simulated Windows guest.

    Attributes:
        computer_name: The guest's own computer name.
        services: The installed ``vmic*`` services by name.
        credentials: Accepted accounts, user name to password.
        administrators: Accounts that may start, stop and configure services.
        booting: The VM runs but Windows inside has not finished starting:
            nothing answers PowerShell Direct yet.
    """

    computer_name: str
    services: dict[str, SimulatedService]
    credentials: dict[str, str] = attrs.field(factory=lambda: dict([DEFAULT_CREDENTIAL]))
    administrators: set[str] = attrs.field(factory=lambda: {DEFAULT_CREDENTIAL[0]})
    booting: bool = False

    def __repr__(self) -> str:
        # Never the passwords of ``credentials``.
        return (
            f"<WindowsGuestState {self.computer_name} services={len(self.services)} "
            f"accounts={len(self.credentials)}>"
        )

    @classmethod
    def for_guest(cls, computer_name: str, guest: GuestOS) -> WindowsGuestState:
        """A fresh guest of this operating system."""
        return cls(computer_name.upper()[:15] or "GUEST", _default_services(guest))
