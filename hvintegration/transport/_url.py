"""Reading a target URL the same way for every scheme: its query options,
the optional packages a scheme needs, and URLs whose user part is ambiguous."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import unicodedata
import urllib.parse
from collections.abc import Collection

from hvintegration.errors import InvalidTargetError

__all__ = [
    "CREDENTIAL_SCHEMES",
    "EXTRAS",
    "REPEATABLE_OPTIONS",
    "check_options",
    "check_user_name",
    "missing_extra",
    "parse_options",
    "refuse_ambiguous_credentials",
    "split_url",
    "whole_number",
]

CREDENTIAL_SCHEMES = frozenset({"ssh", "psrp"})
"""Schemes whose URL may carry ``user:password@`` before the host."""

EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ssh": ("ssh", ("asyncssh",)),
    "psrp": ("psrp", ("psrp", "psrpcore")),
}
"""Scheme to the optional extra that installs it and the modules it brings
(pyproject.toml's ``[project.optional-dependencies]``)."""

_DISTRIBUTIONS = {"psrp": "pypsrp"}
"""The name pip knows a module's package by, where the two differ (pypsrp's
module is ``psrp``)."""

_AMBIGUOUS = (
    "the target URL is ambiguous: '@' after the host means its password (or user name) "
    "holds '/', '?' or '#', which end the host part; percent-encode them (%2F, %3F, %23, "
    "and '@' in an option value as %40) "
    "or keep the password out of the URL (the target's password= setting; on the command "
    "line --password-file, $HVINTEGRATION_PASSWORD or --ask-password)"
)

_UNKNOWN_OPTION_WITH_PASSWORD = (
    "unknown option in the URL; if the password contains '?', '#', '/' or '@', "
    "percent-encode it (or pass it to the target settings instead)"
)


def split_url(url: str) -> urllib.parse.SplitResult:
    """Split a target URL, refusing what ``urllib`` cannot split.

    A ``[`` or ``]`` outside a bracketed IPv6 address (``sim://lab]1``)
    makes ``urllib`` fail with "Invalid IPv6 URL", which names neither the
    character nor the fix.

    Args:
        url: The URL, surrounding spaces removed.

    Returns:
        Its parts.

    Raises:
        InvalidTargetError: The URL cannot be split. The message repeats
            nothing of the URL (it may hold a password).

    Example:
        >>> split_url("ssh://admin@[::1]:2222").port
        2222
    """
    try:
        return urllib.parse.urlsplit(url)
    except ValueError:
        # The only ValueError urlsplit raises: a bracket it cannot pair.
        raise InvalidTargetError(
            "the host part of the target URL holds '[' or ']': only an IPv6 address "
            "goes in brackets (ssh://user@[::1]); percent-encode them elsewhere (%5B, %5D)"
        ) from None


REPEATABLE_OPTIONS = frozenset({"key", "arg"})
"""Options a URL may give more than once: each ``key=`` adds an SSH key,
each ``arg=`` an argument of ``psrp://?via=process``."""


def parse_options(url: urllib.parse.SplitResult) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Every value of each option, and the one value of each.

    Args:
        url: The split URL.

    Returns:
        ``(options, single)``: lists of values by name, and the value by
        name (the last, for the options of :data:`REPEATABLE_OPTIONS`).

    Raises:
        InvalidTargetError: An option other than those of
            :data:`REPEATABLE_OPTIONS` is given twice
            (``?sessions=2&sessions=3``): which copy was meant cannot be
            known, so neither is taken. The message names the option, never
            a value.

    Example:
        >>> parse_options(urllib.parse.urlsplit("local://?sessions=2"))[1]
        {'sessions': '2'}
    """
    options = urllib.parse.parse_qs(url.query, keep_blank_values=True)
    repeated = sorted(
        name
        for name, values in options.items()
        if len(values) > 1 and name not in REPEATABLE_OPTIONS
    )
    if repeated:
        if url.password or any("@" in name for name in repeated):
            raise InvalidTargetError(
                "the target URL gives an option twice; give each once (only key= and arg= repeat)"
            )
        plural = "s" if len(repeated) > 1 else ""
        raise InvalidTargetError(
            f"the target URL gives the option{plural} {', '.join(repeated)} more than once; "
            "give each once (only key= and arg= repeat)"
        )
    return options, {key: values[-1] for key, values in options.items()}


def check_user_name(user: str | None, *, target: str | None = None) -> None:
    """Refuse a login name with a control or format character.

    ``ssh://ro%1Bot@host`` would otherwise fail only when connecting, with a
    message about key files. SSH prepares user names with SASLprep (RFC
    4013, https://www.rfc-editor.org/rfc/rfc4013), which prohibits these
    characters; WinRM has no use for them either.

    Args:
        user: The login name, percent-decoded; ``None`` for the default.
        target: The target, for the error.

    Raises:
        InvalidTargetError: The name holds a control, format or unassigned
            character (named by code point, as ``U+001B``).

    Example:
        >>> check_user_name("admin")
        >>> check_user_name("ro\x1bot")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hvintegration.errors.InvalidTargetError: the user name holds U+001B, ...
    """
    if user is None:
        return
    for character in user:
        if unicodedata.category(character) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise InvalidTargetError(
                f"the user name holds U+{ord(character):04X}, a control or unassigned "
                "character no login name may have",
                target=target,
            )


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


def whole_number(
    single: dict[str, str], name: str, default: int, *, what: str = "a whole number"
) -> int:
    """The whole-number option ``name`` of a URL, written in ASCII digits only.

    Python's ``int()`` also reads ``1_0`` as 10, Arabic-Indic or full-width
    digits (U+0664, U+FF19), a sign and surrounding spaces; a URL option that
    looks unlike a number must not quietly become one.

    Args:
        single: The last value of each option (from :func:`parse_options`).
        name: The option.
        default: The value when the option is absent.
        what: What the option must be, for the message.

    Returns:
        The number.

    Raises:
        InvalidTargetError: The value is not ASCII digits. The message
            repeats nothing of the URL.

    Example:
        >>> whole_number({"sessions": "8"}, "sessions", 4), whole_number({}, "sessions", 4)
        (8, 4)
    """
    if name not in single:
        return default
    value = single[name]
    if not value or not value.isascii() or not value.isdigit():
        raise InvalidTargetError(f"{name} must be {what} in ASCII digits (0-9)")
    return int(value)


def refuse_ambiguous_credentials(url: urllib.parse.SplitResult, *, scheme: str) -> None:
    """Refuse a URL whose user part holds an unencoded ``/``, ``?`` or ``#``.

    ``urllib`` ends the host part of ``ssh://admin:12345/x@host`` at the
    ``/``: host ``admin``, port ``12345``, and the password's rest as a
    path. Such a URL would connect to the wrong machine and repeat the
    password in every message, so an ``@`` after the host part is refused
    (in the path or fragment always; in the query when no ``@`` came
    before, as a user part always has one, or when a password came before,
    as ``ssh://admin:Sec@ret?shell=cmd@host`` would otherwise connect to
    ``ret``). The message repeats nothing of the URL.

    Args:
        url: The split URL.
        scheme: Its scheme, lower case; only :data:`CREDENTIAL_SCHEMES` are
            checked.

    Raises:
        InvalidTargetError: The URL is ambiguous.

    Example:
        >>> import urllib.parse
        >>> refuse_ambiguous_credentials(  # doctest: +ELLIPSIS
        ...     urllib.parse.urlsplit("ssh://admin:12345/x@host"), scheme="ssh")
        Traceback (most recent call last):
        ...
        hvintegration.errors.InvalidTargetError: the target URL is ambiguous: ...
    """
    if scheme not in CREDENTIAL_SCHEMES:
        refuse_unused_parts(url, scheme=scheme)
        return
    after_host = "@" in url.path or "@" in url.fragment
    # In the query, an '@' is a password's rest when no '@' came before
    # (``ssh://admin:p?w@host``), and may be when a password came before
    # (``ssh://admin:p@w?x@host``: user admin, password "p", host "w"); an
    # option value after a password writes its '@' as %40.
    in_query = "@" in url.query and ("@" not in url.netloc or url.password is not None)
    if after_host or in_query:
        raise InvalidTargetError(_AMBIGUOUS)
    refuse_unused_parts(url, scheme=scheme)


def refuse_unused_parts(url: urllib.parse.SplitResult, *, scheme: str) -> None:
    """Refuse what a target URL would silently drop or misread.

    A path (``/wsman``, ``/x``) or a fragment (``#lab``) means nothing to
    any scheme (``local:///x/y`` and ``sim://HV01/anything`` alike); dropped
    quietly, it would hide a typo or a password's rest. An IPv6 address
    without brackets (``ssh://user@::1``) cannot be told from a host and a
    port. The message repeats nothing of the URL.

    Args:
        url: The split URL.
        scheme: Its scheme, lower case; the IPv6 check and the password
            hints are for :data:`CREDENTIAL_SCHEMES` only.

    Raises:
        InvalidTargetError: The URL has a path, a fragment, or an IPv6
            address without brackets.

    Example:
        >>> import urllib.parse
        >>> refuse_unused_parts(  # doctest: +ELLIPSIS
        ...     urllib.parse.urlsplit("ssh://user@::1"), scheme="ssh")
        Traceback (most recent call last):
        ...
        hvintegration.errors.InvalidTargetError: put an IPv6 address in brackets: ...
    """
    if scheme not in CREDENTIAL_SCHEMES:
        if url.path not in ("", "/"):
            raise InvalidTargetError(
                f"{scheme}:// takes no path: nothing may follow "
                + ("the host name" if url.netloc else f"{scheme}://")
                + " but ?options"
            )
        if url.fragment:
            raise InvalidTargetError(f"{scheme}:// takes no '#' part")
        return
    host = url.netloc.rpartition("@")[2]
    if not host.startswith("[") and host.count(":") > 1:
        raise InvalidTargetError(
            f"put an IPv6 address in brackets: {scheme}://user@[::1] or {scheme}://user@[::1]:PORT"
        )
    if url.path not in ("", "/"):
        raise InvalidTargetError(
            f"{scheme}:// takes no path: nothing may follow the host but ?options "
            "(percent-encode a '/' in a password as %2F)"
        )
    if url.fragment:
        raise InvalidTargetError(
            f"{scheme}:// takes no '#' part (percent-encode a '#' in a password as %23)"
        )


# What the transports take from each optional module: a module that imports
# but lacks these (another package of the same name, a broken install) is
# reported like a missing one, before any transport code touches it.
_API: dict[str, tuple[str, ...]] = {
    "psrp": (
        "AsyncOutOfProcConnection",
        "AsyncPowerShell",
        "AsyncRunspacePool",
        "ConnectionInfo",
        "PSRPError",
        "PipelineFailed",
        "PipelineStopped",
        "ProcessInfo",
        "WSManInfo",
    ),
}


class _OptionalImportNoise(logging.Filter):
    # pypsrp 1.0.0b1 logs an ERROR with a traceback on import when psutil or
    # asyncssh, which only its named-pipe and SSH connections need, is
    # missing; a psrp:// target says itself what it needs.
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Optional Named Pipe", "Optional SSH"))


def _module_problem(module: str) -> str | None:
    # None when the module imports and has what the transports use; else
    # why not. Importing is what tells a broken install (asyncssh whose
    # cryptography is missing) from a working one; find_spec cannot.
    quiet = _OptionalImportNoise()
    logging.getLogger(module).addFilter(quiet)
    try:
        loaded = importlib.import_module(module)
    except ImportError as error:
        try:
            installed = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            installed = False
        return f"it fails to import ({error})" if installed else ""
    except Exception as error:
        return f"it fails to import ({type(error).__name__}: {error})"
    finally:
        logging.getLogger(module).removeFilter(quiet)
    lacking = [name for name in _API.get(module, ()) if not hasattr(loaded, name)]
    if lacking:
        return f"it has no {', '.join(lacking)} (not the expected package or version)"
    return None


def missing_extra(url: urllib.parse.SplitResult, *, scheme: str) -> str | None:
    """What to install when a scheme's optional packages are missing or broken.

    ``psrp://...?via=ssh`` needs the ``ssh`` extra as well. Each module is
    imported (once per process): a module that is absent, fails to import
    (asyncssh without a working ``cryptography``), or lacks the names the
    transports use is reported in one line naming the extra, never as a
    traceback later.

    Args:
        url: The split URL.
        scheme: Its scheme, lower case.

    Returns:
        One line naming the extra to install, or ``None`` when the scheme
        needs none or has what it needs.

    Example:
        >>> import urllib.parse
        >>> missing_extra(urllib.parse.urlsplit("sim://"), scheme="sim") is None
        True
    """
    extras = [scheme] if scheme in EXTRAS else []
    if scheme == "psrp" and parse_options(url)[1].get("via") == "ssh":
        extras.append("ssh")
    problems = {
        module: problem
        for extra in extras
        for module in EXTRAS[extra][1]
        if (problem := _module_problem(module)) is not None
    }
    if not problems:
        return None
    names = ",".join(EXTRAS[extra][0] for extra in extras)
    missing = [_DISTRIBUTIONS.get(m, m) for m, problem in problems.items() if not problem]
    if missing:
        return (
            f"{scheme}:// needs the optional package{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}: pip install 'hvintegration[{names}]'"
        )
    module, problem = next(iter(problems.items()))
    return (
        f"{scheme}:// needs the optional package {_DISTRIBUTIONS.get(module, module)}, "
        "which is installed but unusable: "
        f"{problem}; reinstall it: pip install --force-reinstall 'hvintegration[{names}]'"
    )
