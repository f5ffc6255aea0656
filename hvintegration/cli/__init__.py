"""The ``hvintegration`` command line.

It mirrors what the vendor's how-to does by hand::

    hvintegration --target sim:// host services demovm
    hvintegration --target sim:// host enable demovm "Guest Service Interface"
    hvintegration --target sim:// host disable demovm "Guest Service Interface"

The target comes from ``--target`` or ``HVINTEGRATION_TARGET``; without
either, the built-in simulator is used and a note says so. Output is a table
like PowerShell's, or JSON with ``--json``. Errors are one line on stderr and
a non-zero exit status (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from hvintegration import __version__, catalogue
from hvintegration.cli.render import render
from hvintegration.errors import (
    HvIntegrationError,
    InvalidTargetError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    TransportError,
)
from hvintegration.host import DEFAULT_TIMEOUT, HyperVHost

__all__ = ["EXIT_CODES", "main", "run"]

ENVIRONMENT_TARGET = "HVINTEGRATION_TARGET"
DEFAULT_TARGET = "sim://"

EXIT_CODES = {
    "ok": 0,
    "error": 1,
    "usage": 2,
    "not_found": 3,
    "permission": 4,
    "timeout": 5,
    "connection": 6,
}
"""Exit status by outcome: 2 for bad arguments (argparse's own), 3 when a
VM or service does not exist, 4 for missing rights, 5 for a timeout, 6 when
the target cannot be reached, 1 for any other failure."""


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


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        "-t",
        default=argparse.SUPPRESS,
        help=f"target URL (sim://, local://, ssh://user@host, psrp://user@host); "
        f"default ${ENVIRONMENT_TARGET}, else {DEFAULT_TARGET}",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help=f"seconds per operation (default {DEFAULT_TIMEOUT:g})",
    )

    parser = argparse.ArgumentParser(
        prog="hvintegration",
        description="Manage Hyper-V integration services.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sides = parser.add_subparsers(dest="side", required=True, metavar="{host,catalogue}")

    host = sides.add_parser("host", help="the Hyper-V host side", parents=[common])
    actions = host.add_subparsers(dest="action", required=True)
    actions.add_parser("vms", help="list the VMs (Get-VM)", parents=[common])
    services = actions.add_parser(
        "services",
        help="integration services of VMs (Get-VMIntegrationService)",
        parents=[common],
    )
    services.add_argument("vms", nargs="*", metavar="VM", help="VM names; all VMs when none")
    for verb, summary in (
        ("enable", "Enable-VMIntegrationService"),
        ("disable", "Disable-VMIntegrationService"),
    ):
        change = actions.add_parser(
            verb, help=f"{verb} integration services of a VM ({summary})", parents=[common]
        )
        change.add_argument("vm", metavar="VM")
        change.add_argument(
            "services",
            nargs="+",
            metavar="SERVICE",
            help="name, older name, GUID or guest service name",
        )

    sides.add_parser("catalogue", help="every integration service and its names", parents=[common])
    return parser


async def _host_command(args: argparse.Namespace, target: str, out: TextIO) -> None:
    as_json = bool(getattr(args, "json", False))
    timeout = float(getattr(args, "timeout", DEFAULT_TIMEOUT))
    if args.action in ("enable", "disable"):
        # Resolve names before connecting: a typo fails fast and changes nothing.
        specs = [catalogue.resolve_host(name) for name in args.services]
    async with HyperVHost.connect(target, timeout=timeout) as host:
        if args.action == "vms":
            print(render(await host.list_vms(), as_json=as_json), file=out)
        elif args.action == "services":
            chosen = args.vms or None
            print(render(await host.integration_services(chosen), as_json=as_json), file=out)
        else:
            enabled = args.action == "enable"
            result = await host.vm(args.vm).apply({spec: enabled for spec in specs})
            print(render(result.items, as_json=as_json), file=out)


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
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    as_json = bool(getattr(args, "json", False))
    if args.side == "catalogue":
        print(render(catalogue.ALL_SERVICES, as_json=as_json), file=out)
        return EXIT_CODES["ok"]
    target = getattr(args, "target", None) or os.environ.get(ENVIRONMENT_TARGET) or ""
    if not target:
        target = DEFAULT_TARGET
        print(
            f"note: no --target or ${ENVIRONMENT_TARGET} given; using the built-in simulator",
            file=err,
        )
    try:
        asyncio.run(_host_command(args, target, out))
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
