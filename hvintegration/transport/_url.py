"""The query options of a target URL, read the same way for every scheme."""

from __future__ import annotations

import urllib.parse
from collections.abc import Collection

from hvintegration.errors import InvalidTargetError

__all__ = ["check_options", "parse_options"]

_UNKNOWN_OPTION_WITH_PASSWORD = (
    "unknown option in the URL; if the password contains '?', '#', '/' or '@', "
    "percent-encode it (or pass it to the target settings instead)"
)


def parse_options(url: urllib.parse.SplitResult) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Every value of each option, and the last value of each.

    Args:
        url: The split URL.

    Returns:
        ``(options, single)``: lists of values by name, and the last value
        by name (a repeated option's last value wins).
    """
    options = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    return options, {key: values[-1] for key, values in options.items()}


def check_options(
    url: urllib.parse.SplitResult,
    options: Collection[str],
    allowed: Collection[str],
    *,
    scheme: str,
    context: str = "",
    target: str | None = None,
) -> None:
    """Refuse options the scheme does not know, naming the valid ones.

    A ``?`` inside an unencoded password starts the query, so when the URL
    has a password (or an option name holds ``@``) the message repeats
    nothing of the URL.

    Args:
        url: The split URL.
        options: The option names it carries.
        allowed: The names the scheme knows.
        scheme: The scheme, for the message.
        context: Words added after the option names, such as ``" for via=ssh"``.
        target: The target, for the error.

    Raises:
        InvalidTargetError: An option is unknown.
    """
    unknown = set(options) - set(allowed)
    if not unknown:
        return
    if url.password or any("@" in name for name in unknown):
        raise InvalidTargetError(_UNKNOWN_OPTION_WITH_PASSWORD)
    raise InvalidTargetError(
        f"unknown {scheme}:// option {', '.join(sorted(unknown))}{context} "
        f"(valid: {', '.join(sorted(allowed))})",
        target=target,
    )
