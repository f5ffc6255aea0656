"""The ``hvintegration`` command line.

It mirrors what the vendor's how-to does by hand::

    hvintegration --target sim:// host services demovm
    hvintegration --target sim:// host enable demovm "Guest Service Interface"
    hvintegration --target sim:// host disable demovm "Guest Service Interface"
    hvintegration --target sim:// windows --vm demovm services
    hvintegration advise --host-os "Windows 10" --guest-os "Windows 7"
    hvintegration --target psrp://admin@hv01?ssl=true doctor
    hvintegration --target sim:// diagnose demovm --guest sim://?guest=demovm

The target comes from ``--target`` or ``HVINTEGRATION_TARGET``; without
either, the built-in simulator is used and a note says so. Output is a table
like PowerShell's, or JSON with ``--json``. Errors are one line on stderr and
a non-zero exit status (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from hvintegration import catalogue
from hvintegration.cli.commands import (
    run_advise,
    run_doctor,
    run_host,
    run_linux,
    run_windows,
)
from hvintegration.cli.diagnose import run_diagnose
from hvintegration.cli.parser import ENVIRONMENT_TARGET, build_parser, default_target
from hvintegration.cli.render import render
from hvintegration.errors import (
    BatchError,
    HvIntegrationError,
    InvalidTargetError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    TransportError,
    UnsafeChangeError,
)
from hvintegration.records import ApplyResult

__all__ = ["EXIT_CODES", "main", "run"]


EXIT_CODES = {
    "ok": 0,
    "error": 1,
    "usage": 2,
    "not_found": 3,
    "permission": 4,
    "timeout": 5,
    "connection": 6,
}
"""Exit status by outcome: 2 for bad arguments (argparse's own) and for a
critical service turned off without ``--force``, 3 when a
VM or service does not exist, 4 for missing rights, 5 for a timeout, 6 when
the target cannot be reached, 1 for any other failure. ``doctor`` exits 1
when any check fails (its report says which), 0 otherwise; ``diagnose`` exits
1 when any service asks for action."""


def _exit_code(error: HvIntegrationError) -> int:
    if isinstance(error, InvalidTargetError):
        return EXIT_CODES["usage"]
    if isinstance(error, NotFoundError):
        return EXIT_CODES["not_found"]
    if isinstance(error, PermissionDeniedError):
        return EXIT_CODES["permission"]
    if isinstance(error, OperationTimeoutError):
        return EXIT_CODES["timeout"]
    if isinstance(error, TransportError):
        return EXIT_CODES["connection"]
    return EXIT_CODES["error"]


def run(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run the command line and return its exit status.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when
            ``None``.
        out: Where results go; stdout when ``None``.
        err: Where errors and notes go; stderr when ``None``.

    Returns:
        The exit status (see :data:`EXIT_CODES`).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    as_json = bool(getattr(args, "json", False))
    if args.side == "catalogue":
        print(render(catalogue.ALL_SERVICES, as_json=as_json), file=out)
        return EXIT_CODES["ok"]
    if args.side == "advise":
        # Needs no target: the answer comes from the vendor's tables.
        try:
            run_advise(args, out)
        except HvIntegrationError as error:
            print(f"hvintegration: error: {error}", file=err)
            return _exit_code(error)
        return EXIT_CODES["ok"]
    target = getattr(args, "target", None) or os.environ.get(ENVIRONMENT_TARGET) or ""
    if not target:
        target = default_target(args)
        print(
            f"note: no --target or ${ENVIRONMENT_TARGET} given; "
            f"using the built-in simulator {target}",
            file=err,
        )
    try:
        if args.side == "diagnose":
            return asyncio.run(run_diagnose(args, target, out))
        if args.side == "doctor":
            passed = asyncio.run(run_doctor(args, target, out))
            return EXIT_CODES["ok"] if passed else EXIT_CODES["error"]
        command = {"host": run_host, "windows": run_windows, "linux": run_linux}[args.side]
        asyncio.run(command(args, target, out))
    except BatchError as error:
        # Some items failed: show what did succeed, then each failure.
        done = error.result.items if isinstance(error.result, ApplyResult) else error.result
        if isinstance(done, tuple) and done:
            print(render(done, as_json=bool(getattr(args, "json", False))), file=out)
        for item, failure in error.errors.items():
            print(f"hvintegration: error: {item}: {failure}", file=err)
        codes = {_exit_code(failure) for failure in error.errors.values()}
        return codes.pop() if len(codes) == 1 else EXIT_CODES["error"]
    except UnsafeChangeError as error:
        print(f"hvintegration: error: {error} (on the command line: --force)", file=err)
        return EXIT_CODES["usage"]
    except HvIntegrationError as error:
        print(f"hvintegration: error: {error}", file=err)
        return _exit_code(error)
    except ValueError as error:
        print(f"hvintegration: error: {error}", file=err)
        return EXIT_CODES["usage"]
    except KeyboardInterrupt:
        print("hvintegration: interrupted", file=err)
        return 130
    return EXIT_CODES["ok"]


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
