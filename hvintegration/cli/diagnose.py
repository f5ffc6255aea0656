"""``hvintegration diagnose VM [--guest URL]``: one verdict per service, with remedies.

The host is the command's ``--target`` (or ``$HVINTEGRATION_TARGET``); the
guest, when given, is a second URL. Which kind of guest a URL reaches is
told by its scheme: ``sim-linux://`` and ``ssh://`` (a POSIX login) are Linux
guests, ``sim://?guest=VM``, ``psrp://`` and ``ssh://...?shell=powershell``
Windows guests; ``local://`` is the machine the command runs on. ``--windows``
or ``--linux`` says it outright. ``--direct USER`` reaches a Windows guest
through the host with PowerShell Direct instead.

Exit status: 0 when nothing asks for action, 1 when any service does (a
verdict other than ``working`` or ``not supported``, or a side that could not
be read), and the usual statuses of :data:`hvintegration.cli.EXIT_CODES` for
errors (3 for a VM the host does not have).
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from typing import TextIO

from hvintegration._connect import (
    TargetLike,
    powershell_transport_for,
    shell_transport_for,
    transport_for,
)
from hvintegration._table import text_table
from hvintegration.cli._command import (
    ENVIRONMENT_GUEST_PASSWORD,
    CommandParser,
    UsageError,
    add_command,
)
from hvintegration.cli.commands import read_password
from hvintegration.cli.render import dumps, render
from hvintegration.cli.render import lines as escaped_lines
from hvintegration.diagnosis import GuestConnection
from hvintegration.diagnosis_records import Diagnosis
from hvintegration.errors import InvalidTargetError
from hvintegration.host import DEFAULT_TIMEOUT, HyperVHost
from hvintegration.linux import LinuxGuest
from hvintegration.transport import PowerShellTransport
from hvintegration.windows import Credential, WindowsGuest

__all__ = ["add_diagnose", "format_diagnosis", "guest_kind", "run_diagnose"]


def _host_target(target: TargetLike | None) -> PowerShellTransport:
    if target is None:
        raise InvalidTargetError("diagnose needs a host: --target URL")
    transport = transport_for(target)
    if not isinstance(transport, PowerShellTransport):
        raise InvalidTargetError(
            f"{transport.target} is a shell target; the host of diagnose runs PowerShell "
            "(sim://, local://, ssh://, psrp://)"
        )
    return transport


def add_diagnose(
    commands: argparse._SubParsersAction[CommandParser], common: argparse.ArgumentParser
) -> None:
    """Register the ``diagnose`` command.

    Args:
        commands: The top-level parser's subcommands.
        common: The options every command takes (``--target``, ``--json``,
            ``--timeout``, the password options).
    """
    diagnose = add_command(
        commands,
        "diagnose",
        help="one verdict per integration service of a VM, from the host and the guest",
        examples=[
            "hvintegration -t sim:// diagnose demovm",
            "hvintegration -t sim:// diagnose demovm --guest 'sim://?guest=demovm'",
            "HVINTEGRATION_GUEST_PASSWORD=hvintegration hvintegration -t sim:// diagnose demovm "
            "--direct Administrator",
            "hvintegration -t 'psrp://admin@hv01?ssl=true' diagnose web1 --guest ssh://root@web1 "
            "--host-os 2022",
        ],
        run=run_diagnose,
        parents=[common],
    )
    diagnose.add_argument("vm", metavar="VM", help="the VM's name or id on the host")
    diagnose.add_argument(
        "--guest",
        metavar="URL",
        default=None,
        help="a connection inside the VM: sim-linux://, ssh://user@guest, sim://?guest=VM, "
        "psrp://user@guest...; without it the host's statuses decide",
    )
    diagnose.add_argument(
        "--direct",
        metavar="USER",
        default=None,
        help="reach the Windows guest through the host with PowerShell Direct as USER "
        f"(password from ${ENVIRONMENT_GUEST_PASSWORD}, or a prompt on a terminal)",
    )
    kind = diagnose.add_mutually_exclusive_group()
    kind.add_argument(
        "--windows", dest="guest_kind", action="store_const", const="windows",
        help="the --guest URL reaches a Windows guest",
    )  # fmt: skip
    kind.add_argument(
        "--linux", dest="guest_kind", action="store_const", const="linux",
        help="the --guest URL reaches a Linux guest",
    )  # fmt: skip
    diagnose.add_argument(
        "--host-os", metavar="OS", default=None, help="the host's release, for the update path"
    )
    diagnose.add_argument(
        "--guest-os",
        metavar="OS",
        default=None,
        help="the guest's OS (default: what it publishes through Key-Value Pair Exchange)",
    )


def guest_kind(url: str, *, platform: str | None = None) -> str:
    """Which kind of guest a URL reaches, by its scheme.

    Args:
        url: The guest URL.
        platform: ``sys.platform`` of the controller, for ``local://``.

    Returns:
        ``windows`` or ``linux``.

    Example:
        >>> guest_kind("sim-linux://web1"), guest_kind("ssh://admin@web1?shell=powershell")
        ('linux', 'windows')
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.casefold()
    if scheme in ("sim", "psrp"):
        return "windows"
    if scheme == "ssh":
        shell = urllib.parse.parse_qs(parts.query).get("shell", ["posix"])[-1]
        return "linux" if shell.casefold() == "posix" else "windows"
    if scheme == "local":
        return "windows" if (platform or sys.platform) == "win32" else "linux"
    return "linux"


def _check_guest_options(args: argparse.Namespace) -> None:
    """Refuse guest options that would be ignored or read the wrong machine."""
    kind = getattr(args, "guest_kind", None)
    direct = getattr(args, "direct", None) is not None
    if kind is not None and args.guest is None and not (direct and kind == "windows"):
        what = "--direct USER reaches a Windows guest" if direct else "give --guest URL too"
        raise UsageError(f"--{kind} says what the --guest URL reaches; {what}")
    if args.guest is not None:
        parts = urllib.parse.urlsplit(args.guest.strip())
        guest = urllib.parse.parse_qs(parts.query).get("guest", [""])[-1]
        if parts.scheme.casefold() == "sim" and not guest:
            raise UsageError(
                "--guest sim:// is a simulated Hyper-V host, not a guest: name the VM inside "
                "it, --guest 'sim://?guest=VM' (or sim-linux:// for a Linux guest)"
            )


def format_diagnosis(diagnosis: Diagnosis) -> str:
    """The diagnosis as the command prints it: a title, the table, what to do, a summary.

    Args:
        diagnosis: The diagnosis.

    Returns:
        The text, through the same table renderer as every command.
    """
    summary = diagnosis.summary
    facts = [summary.state if summary else "state unknown"]
    if summary is not None and summary.integration_services_version:
        facts.append(f"integration services {summary.integration_services_version}")
    if diagnosis.integration_services_state:
        facts.append(diagnosis.integration_services_state)
    if diagnosis.guest_os:
        facts.append(f"guest OS {diagnosis.guest_os}")
    lines = [f"{diagnosis.vm} on {diagnosis.target} ({', '.join(facts)})", ""]
    lines += render(diagnosis.services, as_json=False).splitlines()
    if diagnosis.remedies:
        lines += ["", "What to do:"]
        for _, step in diagnosis.remedies:
            names = ", ".join(item.service.name for item in diagnosis.remedy_services(step))
            lines.append(f"- {names}: {step.action}")
            if step.cli:
                lines.append(f"    {step.cli}")
            if step.manual:
                lines.append(f"    by hand: {step.manual}")
    if diagnosis.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in diagnosis.notes)]
    lines += ["", *text_table([diagnosis]).splitlines()]
    # Each line escaped: a VM name, a remedy or a note holding a line break
    # must not print a line of its own.
    return escaped_lines(lines)


async def run_diagnose(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> int:
    """``hvintegration diagnose VM``: print the diagnosis.

    A guest that cannot be reached or read is part of the diagnosis (its
    services are ``unknown`` with the error), not a failure of the command.

    Args:
        args: The parsed arguments.
        target: The host.
        out: Where the diagnosis goes.

    Returns:
        The exit status: 0 when nothing asks for action, else 1.

    Raises:
        VMNotFoundError: The host has no such VM.
        InvalidTargetError: A URL names no transport, or the wrong kind.
    """
    as_json = bool(getattr(args, "json", False))
    timeout = float(getattr(args, "timeout", DEFAULT_TIMEOUT))
    if args.guest is not None and getattr(args, "direct", None) is not None:
        raise UsageError("give the guest one way: --guest URL or --direct USER")
    _check_guest_options(args)
    guest: GuestConnection | None = None
    if args.guest is not None:
        # Not opened here: a transport connects on first use, so a guest
        # that cannot be reached fails inside the diagnosis, which reports
        # it per service instead of losing the host side.
        if (args.guest_kind or guest_kind(args.guest)) == "windows":
            guest = WindowsGuest(powershell_transport_for(args.guest), timeout=timeout)
        else:
            guest = LinuxGuest(shell_transport_for(args.guest), timeout=timeout)
    direct = None
    if getattr(args, "direct", None) is not None:
        password = read_password(
            file=None,
            ask=False,
            environment=ENVIRONMENT_GUEST_PASSWORD,
            prompt="guest password: ",
            ask_on_terminal=True,
        )
        assert password is not None  # ask_on_terminal prompts or raises
        direct = Credential(args.direct, password)
    try:
        async with HyperVHost.connect(_host_target(target), timeout=timeout) as host:
            vm = host.vm(args.vm)
            if direct is not None:
                # Through the host: closing it later leaves the host open.
                guest = vm.windows(direct)
            diagnosis = await vm.diagnose(guest, host_os=args.host_os, guest_os=args.guest_os)
            if direct is not None and guest is not None:
                await guest.aclose()
    finally:
        if guest is not None:
            await guest.aclose()
    # One VM, one record: a JSON object, as `linux status` and `host kvp` print theirs.
    print(dumps(diagnosis.to_dict()) if as_json else format_diagnosis(diagnosis), file=out)
    return 0 if diagnosis.ok else 1
