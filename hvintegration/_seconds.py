"""One check for every duration the public API takes.

``grace``, ``timeout``, ``lock_timeout``, ``connect_timeout``, ``latency``...
all go through :func:`check_seconds`, so that ``nan``, ``inf``, a negative
number, a boolean or a string is refused the same way everywhere, with a
message that names the parameter, before anything is sent.
"""

from __future__ import annotations

import math

from hvintegration.errors import HvIntegrationError, InvalidParameterError

__all__ = ["check_seconds"]


def check_seconds(
    value: object,
    name: str,
    *,
    zero: bool = False,
    target: str | None = None,
    operation: str | None = None,
    error: type[HvIntegrationError] = InvalidParameterError,
) -> float:
    """Refuse a duration that is not a finite number of seconds in range.

    Args:
        value: What the caller passed.
        name: The parameter's name, for the message.
        zero: Whether 0 is allowed (a grace period, a latency); otherwise
            the value must be above 0 (a timeout).
        target: The target URL, for the error.
        operation: The operation, for the error.
        error: The error class: :class:`~hvintegration.errors.InvalidParameterError`
            for a call's argument, ``InvalidTargetError`` for a target's
            setting. Both are ``ValueError`` too.

    Returns:
        ``value`` as a float.

    Raises:
        InvalidParameterError: (or ``error``) ``value`` is not an int or a
            float (booleans included), is NaN or infinite, or is out of
            range.

    Example:
        >>> check_seconds(2, "grace", zero=True)
        2.0
        >>> try:
        ...     check_seconds(float("nan"), "grace", zero=True)
        ... except ValueError as error:
        ...     print(error)
        grace must be a finite number of seconds >= 0, not nan
    """
    bound = ">= 0" if zero else "> 0"
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if valid:
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:  # an int beyond float's range
            valid = False
        else:
            valid = math.isfinite(number) and (number >= 0 if zero else number > 0)
    if not valid:
        raise error(
            f"{name} must be a finite number of seconds {bound}, not {value!r}",
            target=target,
            operation=operation,
        )
    return number
