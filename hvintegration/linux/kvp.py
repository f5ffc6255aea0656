"""The KVP pool files of a Linux guest: where they are and how items travel.

The pools are read and written by the fixed KVP script under the daemon's own
fcntl lock (see :mod:`hvintegration.linux.scripts`); this module checks the
caller's items and builds that script's command line and input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hvintegration.linux._shell import sh
from hvintegration.linux.scripts import KVP_PERL, KVP_PYTHON, KVP_SCRIPT

__all__ = ["KVP_DIRECTORY", "check_pool", "delete_lines", "kvp_argv", "set_lines"]

KVP_DIRECTORY = "/var/lib/hyperv"
"""Where hv_kvp_daemon keeps its pool files."""

# The pool record is a 512-byte key and a 2,048-byte value, NUL-terminated.
KEY_LIMIT = 512 - 1
VALUE_LIMIT = 2048 - 1


def check_pool(pool: int) -> int:
    """``pool`` itself when it is a pool number (0-4).

    Raises:
        ValueError: It is not.
    """
    if isinstance(pool, bool) or not isinstance(pool, int) or not 0 <= pool <= 4:
        raise ValueError(f"a KVP pool is a number from 0 to 4, not {pool!r}")
    return pool


def _encode(text: str, limit: int, what: str, *, empty: bool = False) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"a KVP {what} is a str, not {type(text).__name__}")
    data = text.encode("utf-8")
    if (not data and not empty) or b"\0" in data or len(data) > limit:
        raise ValueError(
            f"a KVP {what} must be {'' if empty else 'non-empty '}UTF-8 of at most "
            f"{limit} bytes without NUL"
        )
    return data


def set_lines(items: Mapping[str, str]) -> list[str]:
    """The write script's input lines that set ``items``.

    Raises:
        ValueError: A key or value is empty (keys only), too long or holds NUL.
        TypeError: A key or value is not a str.
    """
    return [
        f"set\t{_encode(key, KEY_LIMIT, 'key').hex()}\t"
        f"{_encode(value, VALUE_LIMIT, 'value', empty=True).hex()}"
        for key, value in items.items()
    ]


def delete_lines(keys: Iterable[str]) -> list[str]:
    """The write script's input lines that delete ``keys``."""
    return [f"delete\t{_encode(key, KEY_LIMIT, 'key').hex()}\t" for key in keys]


def kvp_argv(mode: str, interpreter: str = "") -> list[str]:
    """The command that reads (``"read"``) or writes (``"write"``) the pools.

    Args:
        mode: ``read`` or ``write``.
        interpreter: ``perl`` to prefer perl over python3; empty for the
            default choice.
    """
    return sh(KVP_SCRIPT, mode, KVP_DIRECTORY, KVP_PYTHON, KVP_PERL, interpreter)
