"""The ``hvintegration`` command line.

It mirrors what the vendor's how-to does by hand::

    hvintegration --target sim:// host services demovm
    hvintegration --target sim:// host enable demovm "Guest Service Interface"
    hvintegration --target sim:// host disable demovm "Guest Service Interface"
    hvintegration --target sim:// windows --vm demovm services
    hvintegration advise --host-os "Windows 10" --guest-os "Windows 7"
    hvintegration --target 'psrp://admin@hv01?ssl=true' --ask-password doctor

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
from rich.highlighter import NullHighlighter
from rich.logging import RichHandler

from hvintegration import catalogue
from hvintegration.cli._command import UsageError, did_you_mean
from hvintegration.cli.commands import target_from
from hvintegration.cli.parser import build_parser
from hvintegration.cli.render import (
    OutputError,
    SafeWriter,
    printable,
    progress_console,
    render,
    showing_progress,
)
from hvintegration.errors import (
    AmbiguousVMError,
    AnswerTooLargeError,
    BatchError,
    HvIntegrationError,
    HyperVModuleMissingError,
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
    (AnswerTooLargeError, EXIT_CODES["error"]),
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
* 1: any other failure the target reported, and an answer larger than the
  target's ``max_output`` setting (:class:`~hvintegration.errors.AnswerTooLargeError`:
  the connection is sound, the answer too big);
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


def _choices(error: NotFoundError, side: str | None) -> list[str]:
    # Only names that would work: what the error offers (the VM's services,
    # the host's VMs...) and, for a service, the other catalogue names of
    # those same services; never a guest-only service for the host side.
    choices = list(error.choices)
    if isinstance(error, ServiceNotFoundError):
        offered = {choice.casefold() for choice in choices}
        specs = catalogue.HOST_SERVICES if side in ("host", "diagnose") else catalogue.ALL_SERVICES
        for spec in specs:
            names = [spec.name, *spec.aliases, spec.windows_service]
            if not offered or offered & {name.casefold() for name in names}:
                choices += names
    return choices


_NO_HYPERV_HINT = (
    "the target may be a Windows guest, or a host without the Hyper-V management tools: "
    "host commands need a Hyper-V host (a guest takes 'windows' commands)"
)


def _describe(error: BaseException, side: str | None = None) -> str:
    text = str(error)
    message = getattr(error, "message", text)
    if isinstance(error, UnsafeChangeError):
        # The Python keyword means nothing here; the option goes where it
        # was, before "[target ..., operation ...]".
        said = message.replace("without force=True", "without --force")
        return said + text[len(message) :]
    if isinstance(error, HyperVModuleMissingError):
        # A Windows guest looks just like this from the outside: say both.
        return f"{message}; {_NO_HYPERV_HINT}{text[len(message) :]}"
    if not isinstance(error, NotFoundError) or isinstance(error, AmbiguousVMError):
        return text
    name = error.name or ""
    # A suggestion that repeats what was typed helps no one.
    choices = [c for c in _choices(error, side) if c.casefold() != name.strip().casefold()]
    hint = did_you_mean(name, choices) if name else ""
    if not hint:
        return text
    # The hint belongs to the message, before "[target ..., operation ...]".
    return f"{message}; {hint}{text[len(message) :]}"


def _print_error(err: TextIO, text: str) -> None:
    print(f"hvintegration: error: {printable(text)}", file=err)


def _verbosity(words: Sequence[str]) -> int:
    # argparse counts -v afresh in each subcommand's parser, so "-v host
    # vms -v" would be 1; every -v, --verbose and "v" of a short cluster
    # (-vv, -vt URL) before "--" counts here.
    count = 0
    for word in words:
        if word == "--":
            break
        if word == "--verbose":
            count += 1
        elif word.startswith("-") and not word.startswith("--"):
            for letter in word[1:]:
                if letter != "v":
                    break  # another option; its value, if any, follows
                count += 1
    return count


class _PrintableFormatter(logging.Formatter):
    # A log record can hold remote text (a target, an error): one line,
    # no control character, as everything else printed.
    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


@contextlib.contextmanager
def _logging_to(err: TextIO, args: object, console: Console | None = None) -> Iterator[None]:
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
    handler: logging.Handler
    if console is None:
        handler = logging.StreamHandler(err)
    else:
        # On the console the spinner draws on, so that rich prints each
        # record above the spinner instead of through it.
        handler = RichHandler(
            console=console,
            show_time=False,
            show_level=False,
            show_path=False,
            markup=False,
            highlighter=NullHighlighter(),
        )
    handler.setLevel(level)
    handler.setFormatter(_PrintableFormatter("hvintegration: %(levelname)s: %(message)s"))
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
    except OutputError as error:
        # --help or --version into a full disk: one line, exit 1.
        with contextlib.suppress(OSError):
            _print_error(safe_err, f"cannot write the output: {error.strerror}")
        return EXIT_CODES["error"]
    if _verbosity(words) > int(getattr(args, "verbose", 0) or 0):
        args.verbose = _verbosity(words)
    side = getattr(args, "side", None)
    as_json = bool(getattr(args, "json", False))
    console = None
    if not as_json:
        console = progress or progress_console(raw_out, raw_err, as_json=as_json)
    try:
        target = target_from(args, words) if args.needs_target else None
        with _logging_to(safe_err, args, console), showing_progress(console):
            status = asyncio.run(args.run(args, target, safe_out))
    except BatchError as error:
        # Some items failed: show what did succeed, then each failure.
        done = error.result.items if isinstance(error.result, ApplyResult) else error.result
        if isinstance(done, tuple) and done:
            print(render(done, as_json=as_json), file=safe_out)
        for item, failure in error.errors.items():
            _print_error(safe_err, f"{item}: {_describe(failure, side)}")
        return exit_status(error)
    except (UsageError, HvIntegrationError, ValueError) as error:
        _print_error(safe_err, _describe(error, side))
        return exit_status(error)
    except KeyboardInterrupt:
        print("hvintegration: interrupted", file=safe_err)
        return EXIT_CODES["interrupted"]
    except OutputError as error:
        with contextlib.suppress(OSError):
            _print_error(safe_err, f"cannot write the output: {error.strerror}")
        return EXIT_CODES["error"]
    return EXIT_CODES["ok"] if status is None else int(status)


def main() -> None:
    """Console entry point: run and exit with the status."""
    try:
        status = run()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) went away: not an error worth a traceback.
        _quiet_stdout()
        status = 141
    except OSError as error:
        # A full disk (> /dev/full) or a closed terminal: one line, no
        # traceback, and a quiet final flush.
        _quiet_stdout()
        with contextlib.suppress(OSError):
            _print_error(sys.stderr, f"cannot write the output: {error.strerror or error}")
        status = EXIT_CODES["error"]
    sys.exit(status)


def _quiet_stdout() -> None:
    # Point stdout at /dev/null so the interpreter's final flush is quiet.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
