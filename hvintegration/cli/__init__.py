"""The ``hvintegration`` command line.

It mirrors what the vendor's how-to does by hand::

    hvintegration --target sim:// host services demovm
    hvintegration --target sim:// host enable demovm "Guest Service Interface"
    hvintegration --target sim:// host disable demovm "Guest Service Interface"
    hvintegration --target sim:// windows --vm demovm services
    hvintegration advise --host-os "Windows 10" --guest-os "Windows 7"
    hvintegration --target psrp://admin@hv01?ssl=true --ask-password doctor

The target comes from ``--target`` or ``HVINTEGRATION_TARGET``; a command
that needs one fails without it (the simulator only when asked for). Output
is a table like PowerShell's, or JSON with ``--json``; nothing printed can
carry a control character to the terminal. Errors are one line on stderr and
an exit status from :data:`EXIT_STATUSES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TextIO, cast

from rich.console import Console

from hvintegration import catalogue
from hvintegration.cli._command import UsageError, did_you_mean
from hvintegration.cli.commands import target_from
from hvintegration.cli.parser import build_parser
from hvintegration.cli.render import (
    SafeWriter,
    printable,
    progress_console,
    render,
    showing_progress,
)
from hvintegration.errors import (
    AmbiguousVMError,
    BatchError,
    HvIntegrationError,
    InvalidParameterError,
    InvalidTargetError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    ServiceNotFoundError,
    TransportError,
    UnsafeChangeError,
)
from hvintegration.records import ApplyResult

__all__ = ["EXIT_CODES", "EXIT_STATUSES", "exit_status", "main", "run"]


EXIT_CODES = {
    "ok": 0,
    "error": 1,
    "usage": 2,
    "not_found": 3,
    "permission": 4,
    "timeout": 5,
    "connection": 6,
    "interrupted": 130,
}
"""Exit status by outcome. ``doctor`` exits 1 when any check fails (its
report says which), 0 otherwise; ``diagnose`` exits 1 when any service asks
for action."""

EXIT_STATUSES: tuple[tuple[type[BaseException], int], ...] = (
    (UsageError, EXIT_CODES["usage"]),
    (InvalidTargetError, EXIT_CODES["usage"]),
    (InvalidParameterError, EXIT_CODES["usage"]),
    (UnsafeChangeError, EXIT_CODES["usage"]),
    (NotFoundError, EXIT_CODES["not_found"]),
    (PermissionDeniedError, EXIT_CODES["permission"]),
    (OperationTimeoutError, EXIT_CODES["timeout"]),
    (TransportError, EXIT_CODES["connection"]),
    (HvIntegrationError, EXIT_CODES["error"]),
    (ValueError, EXIT_CODES["usage"]),
)
"""Each error class and its exit status; the first class that matches wins.

* 2, usage: bad arguments (argparse's, no target, a password given twice),
  a malformed, ambiguous or wrong-kind target URL (``sim-linux://`` for
  ``host``), a value the library will not send, a critical service turned
  off without ``--force``;
* 3, not found: a VM, integration service, daemon or simulated guest that
  does not exist, or a VM name that two VMs share;
* 4: permission denied; 5: a timeout; 6: the target cannot be reached,
  refused the login, or the connection broke;
* 1: any other failure the target reported;
* 130: interrupted (Ctrl+C).

A :class:`~hvintegration.errors.BatchError` exits with its failures'
status when they share one, else 1.
"""


def exit_status(error: BaseException) -> int:
    """The exit status for an error (see :data:`EXIT_STATUSES`).

    Example:
        >>> from hvintegration.errors import VMNotFoundError
        >>> exit_status(VMNotFoundError("ghost"))
        3
    """
    if isinstance(error, BatchError):
        statuses = {exit_status(failure) for failure in error.errors.values()}
        return statuses.pop() if len(statuses) == 1 else EXIT_CODES["error"]
    for error_class, status in EXIT_STATUSES:
        if isinstance(error, error_class):
            return status
    return EXIT_CODES["error"]


def _describe(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, UnsafeChangeError):
        return f"{text} (on the command line: --force)"
    if not isinstance(error, NotFoundError) or isinstance(error, AmbiguousVMError):
        return text
    choices = list(error.choices)
    if isinstance(error, ServiceNotFoundError):
        for spec in catalogue.ALL_SERVICES:
            choices += [spec.name, *spec.aliases, spec.windows_service]
    hint = did_you_mean(error.name, choices) if error.name else ""
    if not hint:
        return text
    # The hint belongs to the message, before "[target ..., operation ...]".
    return f"{error.message}; {hint}{text[len(error.message) :]}"


def _print_error(err: TextIO, text: str) -> None:
    print(f"hvintegration: error: {printable(text)}", file=err)


@contextlib.contextmanager
def _logging_to(err: TextIO, args: object) -> Iterator[None]:
    # -v: the library's INFO records (connections); -vv or --debug: DEBUG
    # too (each operation, its round trip and duration). Only the
    # hvintegration loggers, which never log a secret; the handler goes
    # when the command ends, so that run() can be called again.
    verbosity = 2 if getattr(args, "debug", False) else int(getattr(args, "verbose", 0) or 0)
    if verbosity <= 0:
        yield
        return
    logger = logging.getLogger("hvintegration")
    level = logging.DEBUG if verbosity >= 2 else logging.INFO
    handler = logging.StreamHandler(err)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("hvintegration: %(levelname)s: %(message)s"))
    previous = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def run(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    progress: Console | None = None,
) -> int:
    """Run the command line and return its exit status.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when
            ``None``.
        out: Where results go; stdout when ``None``.
        err: Where errors, notes and progress go; stderr when ``None``.
        progress: The console progress is drawn on; by default one on
            ``err`` when both streams are terminals. Never used with
            ``--json``.

    Returns:
        The exit status (see :data:`EXIT_STATUSES`).
    """
    raw_out = sys.stdout if out is None else out
    raw_err = sys.stderr if err is None else err
    safe_out = cast(TextIO, SafeWriter(raw_out))
    safe_err = cast(TextIO, SafeWriter(raw_err))
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(safe_out), contextlib.redirect_stderr(safe_err):
            args = parser.parse_args(words)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_CODES["usage"]
    as_json = bool(getattr(args, "json", False))
    console = None
    if not as_json:
        console = progress or progress_console(raw_out, raw_err, as_json=as_json)
    try:
        target = target_from(args, words) if args.needs_target else None
        with _logging_to(safe_err, args), showing_progress(console):
            status = asyncio.run(args.run(args, target, safe_out))
    except BatchError as error:
        # Some items failed: show what did succeed, then each failure.
        done = error.result.items if isinstance(error.result, ApplyResult) else error.result
        if isinstance(done, tuple) and done:
            print(render(done, as_json=as_json), file=safe_out)
        for item, failure in error.errors.items():
            _print_error(safe_err, f"{item}: {_describe(failure)}")
        return exit_status(error)
    except (UsageError, HvIntegrationError, ValueError) as error:
        _print_error(safe_err, _describe(error))
        return exit_status(error)
    except KeyboardInterrupt:
        print("hvintegration: interrupted", file=safe_err)
        return EXIT_CODES["interrupted"]
    return EXIT_CODES["ok"] if status is None else int(status)


def main() -> None:
    """Console entry point: run and exit with the status."""
    try:
        status = run()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) went away: not an error worth a traceback.
        # Point stdout at /dev/null so the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = 141
    sys.exit(status)
