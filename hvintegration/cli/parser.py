"""The command line's arguments."""

from __future__ import annotations

import argparse

from hvintegration import __version__
from hvintegration.cli.diagnose import add_diagnose
from hvintegration.host import DEFAULT_TIMEOUT

__all__ = [
    "DEFAULT_TARGET",
    "ENVIRONMENT_PASSWORD",
    "ENVIRONMENT_TARGET",
    "build_parser",
    "default_target",
]

ENVIRONMENT_TARGET = "HVINTEGRATION_TARGET"
"""Environment variable read when ``--target`` is not given."""

ENVIRONMENT_PASSWORD = "HVINTEGRATION_GUEST_PASSWORD"
"""Environment variable holding the guest password for PowerShell Direct."""

DEFAULT_TARGET = "sim://"
"""The host target when neither ``--target`` nor the environment names one."""


def default_target(args: argparse.Namespace) -> str:
    """The built-in simulator that fits the command: a simulated host, the
    inside of its ``demovm`` for ``windows`` (unless ``--vm`` goes through
    the host), or a simulated Linux guest for ``linux``."""
    if args.side == "linux":
        return "sim-linux://"
    if args.side == "doctor" and getattr(args, "guest", False):
        return "sim://?guest=demovm"
    if args.side == "windows" and getattr(args, "vm", None) is None:
        return "sim://?guest=demovm"
    return DEFAULT_TARGET


def _common() -> argparse.ArgumentParser:
    # Added to every (sub)parser so options may come before or after the
    # command; SUPPRESS keeps a later parser from resetting an earlier value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        "-t",
        default=argparse.SUPPRESS,
        help="target URL (sim://, local://, ssh://user@host, psrp://user@host); "
        f"default ${ENVIRONMENT_TARGET}, else the built-in simulator",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help=f"seconds per operation (default {DEFAULT_TIMEOUT:g})",
    )
    return common


def _add_host(
    sides: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    host = sides.add_parser("host", help="the Hyper-V host side", parents=[common])
    actions = host.add_subparsers(dest="action", required=True)
    actions.add_parser("vms", help="list the VMs (Get-VM)", parents=[common])
    services = actions.add_parser(
        "services", help="integration services of VMs (Get-VMIntegrationService)", parents=[common]
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
            "services", nargs="+", metavar="SERVICE", help="name, older name, GUID or vmic* name"
        )
        if verb == "disable":
            change.add_argument(
                "--force",
                action="store_true",
                help="allow turning off Heartbeat, Shutdown or Key-Value Pair Exchange",
            )
    copy = actions.add_parser(
        "copy-file", help="copy a host file into a running guest (Copy-VMFile)", parents=[common]
    )
    copy.add_argument("vm", metavar="VM")
    copy.add_argument("source", metavar="SOURCE", help="path on the Hyper-V host")
    copy.add_argument("destination", metavar="DEST", help="absolute path in the guest")
    copy.add_argument("--create-full-path", action="store_true", help="create missing folders")
    copy.add_argument("--overwrite", action="store_true", help="replace an existing file")


def _add_windows(
    sides: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    guest_options = argparse.ArgumentParser(add_help=False)
    guest_options.add_argument(
        "--vm",
        default=argparse.SUPPRESS,
        help="reach this VM through the host target with PowerShell Direct",
    )
    guest_options.add_argument(
        "--user",
        default=argparse.SUPPRESS,
        help=f"guest account for --vm (password from ${ENVIRONMENT_PASSWORD} or a prompt)",
    )
    windows = sides.add_parser(
        "windows", help="Hyper-V services inside a Windows guest", parents=[common, guest_options]
    )
    actions = windows.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "services",
        help="the vmic* services (Get-Service -Name vm*)",
        parents=[common, guest_options],
    )
    for verb, summary in (
        ("start", "Start-Service"),
        ("stop", "Stop-Service"),
        ("restart", "Restart-Service"),
        ("enable", "startup type Manual, the default"),
        ("disable", "startup type Disabled"),
    ):
        action = actions.add_parser(
            verb, help=f"{verb} a guest service ({summary})", parents=[common, guest_options]
        )
        action.add_argument("service", metavar="NAME", help="vmic* name or any catalogue name")
        if verb in ("stop", "disable"):
            action.add_argument(
                "--force",
                action="store_true",
                help="allow it for Heartbeat, Shutdown, Key-Value Pair Exchange, PowerShell Direct",
            )


def _add_linux(
    sides: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    linux = sides.add_parser(
        "linux", help="hv_utils and the hv_* daemons inside a Linux guest", parents=[common]
    )
    actions = linux.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "status", help="driver, devices, installed and running daemons", parents=[common]
    )
    for verb in ("start", "stop", "restart"):
        action = actions.add_parser(verb, help=f"{verb} a daemon", parents=[common])
        action.add_argument(
            "daemon", metavar="DAEMON", help="hv_kvp_daemon, kvp, a unit or a catalogue name"
        )
        if verb in ("stop", "restart"):
            action.add_argument(
                "--grace",
                type=float,
                default=10.0,
                help="seconds to wait after SIGTERM (default 10)",
            )
            action.add_argument(
                "--kill", action="store_true", help="SIGKILL what outlives the grace period"
            )
        if verb in ("stop", "restart"):
            action.add_argument(
                "--force",
                action="store_true",
                help=f"allow {'stopping' if verb == 'stop' else 'restarting'} hv_kvp_daemon "
                "(the host learns IP addresses through it)",
            )
    kvp = actions.add_parser("kvp", help="the KVP pool files", parents=[common])
    kvp.add_argument(
        "--pool", type=int, choices=range(5), default=None, help="one pool (0-4); all by default"
    )


def _add_advise(sides: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Reads no host, so it takes no --target or --timeout.
    advise = sides.add_parser(
        "advise",
        help="how to keep a guest's integration services current on a host (no target needed)",
    )
    advise.add_argument(
        "--host-os",
        required=True,
        metavar="OS",
        help="the Hyper-V host's release: 'Windows Server 2019', 2019, win10...",
    )
    advise.add_argument(
        "--guest-os",
        required=True,
        metavar="OS",
        help="the guest: 'Windows Server 2008 R2', 2008r2, win7, 'Ubuntu 24.04', "
        "or the OSName the guest reports through KVP",
    )
    advise.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def _add_doctor(
    sides: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    doctor = sides.add_parser(
        "doctor",
        help="read-only checks of a host (or, with --guest, a Windows guest) before real work",
        parents=[common],
    )
    doctor.add_argument(
        "--guest",
        action="store_true",
        help="the target is a Windows guest, not a Hyper-V host",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser.

    Returns:
        A parser whose namespace has ``side`` and ``action``.
    """
    common = _common()
    parser = argparse.ArgumentParser(
        prog="hvintegration",
        description="Manage Hyper-V integration services on hosts and guests.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sides = parser.add_subparsers(dest="side", required=True)
    _add_host(sides, common)
    _add_windows(sides, common)
    _add_linux(sides, common)
    _add_doctor(sides, common)
    sides.add_parser("catalogue", help="every integration service and its names", parents=[common])
    _add_advise(sides)
    add_diagnose(sides, common)
    return parser
