"""Which processes are still alive: for tests that check nothing was left running.

Reads ``/proc``, so it works on Linux only.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["processes_mentioning"]


def processes_mentioning(marker: str) -> list[int]:
    """Live processes whose command line or environment holds ``marker``.

    Zombies (exited, not yet reaped) do not count, nor does the calling
    process.

    Args:
        marker: Text to look for; a NUL in it matches the separator between
            two arguments (``"--state\\0/tmp/x"``).

    Returns:
        Their process ids, in ``/proc`` order.

    Example:
        >>> import uuid
        >>> processes_mentioning(f"nothing-runs-{uuid.uuid4()}")
        []
    """
    found = []
    wanted = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                continue
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in text:
            found.append(int(entry.name))
    return found
