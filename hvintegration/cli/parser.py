"""The command line's arguments.

Adding a command
----------------
A command lives in its own module of ``hvintegration/cli/`` with a
coroutine that runs it (``async def run_x(args, target, out) -> int | None``,
see :data:`~hvintegration.cli._command.Runner`) and a function that adds its
parser::

    from hvintegration.cli._command import add_command

    def add_kvp(commands, common):
        kvp = add_command(
            commands, "kvp", help="read and write KVP items of a VM",
            examples=["hvintegration -t sim:// kvp get demovm"],
            run=run_kvp, parents=[common],
        )
        kvp.add_argument("vm", metavar="VM")

then one line in :func:`build_parser` below calls ``add_kvp(commands,
common)``. ``parents=[common]`` gives it ``--target``, ``--json``,
``--timeout`` and the password options; ``target=False`` for a command that
reads no target. A command with subcommands uses
:func:`~hvintegration.cli._command.add_group` and ``add_command`` on what it
returns. The dispatcher (``cli/__init__.py``) resolves the target, opens
nothing itself, prints errors and maps them to exit statuses, so a command
only raises the library's exceptions.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO, TypeAlias

import shtab

from hvintegration import __version__
from hvintegration._connect import TargetLike
from hvintegration.cli._command import (
    ENVIRONMENT_GUEST_PASSWORD,
    ENVIRONMENT_PASSWORD,
    ENVIRONMENT_TARGET,
    CommandParser,
    add_command,
    add_group,
)
from hvintegration.cli.commands import (
    run_advise,
    run_catalogue,
    run_doctor,
    run_host,
    run_linux,
    run_windows,
)
from hvintegration.cli.diagnose import add_diagnose
from hvintegration.cli.fleet import add_fleet
from hvintegration.cli.kvp import add_kvp
from hvintegration.host import DEFAULT_TIMEOUT

__all__ = [
    "ENVIRONMENT_GUEST_PASSWORD",
    "ENVIRONMENT_PASSWORD",
    "ENVIRONMENT_TARGET",
    "SHELLS",
    "build_parser",
]

SHELLS = ("bash", "zsh", "tcsh")
"""Shells ``hvintegration completion`` writes a script for: those shtab's
``complete()`` supports (https://tqdm.github.io/shtab/ref/)."""

if TYPE_CHECKING:
    Commands: TypeAlias = argparse._SubParsersAction[CommandParser]


def _common(*, one_target: bool = True) -> argparse.ArgumentParser:
    # Added to every (sub)parser so options may come before or after the
    # command; SUPPRESS keeps a later parser from resetting an earlier value.
    # Without one_target (the fleet commands, whose targets and passwords
    # come from an inventory) the target and password options are still
    # parsed, so that the command can say why they do not apply, but are
    # left out of its help.
    def shown(text: str) -> str:
        return text if one_target else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        "-t",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=shown(
            "where to act: sim://, sim-linux://, local://, ssh://user@host, "
            f"psrp://user@host (default ${ENVIRONMENT_TARGET}; required)"
        ),
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    common.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help=f"seconds per operation (default {DEFAULT_TIMEOUT:g})",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log connections to stderr; twice (-vv) also every operation, as --debug",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log every operation to stderr: its round trip, duration and outcome "
        "(parameter names only, never a value or password)",
    )
    secret = common.add_argument_group(
        "password of an ssh:// or psrp:// target (instead of one in the URL)"
    )
    secret.add_argument(
        "--password-file",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=shown("read it from the first line of FILE"),
    )
    secret.add_argument(
        "--ask-password",
        action="store_true",
        default=argparse.SUPPRESS,
        help=shown(
            f"prompt for it on the terminal (else ${ENVIRONMENT_PASSWORD} is used when set)"
        ),
    )
    return common


def _add_host(commands: Commands, common: argparse.ArgumentParser) -> None:
    actions = add_group(
        commands,
        "host",
        help="the Hyper-V host side: VMs and their integration services",
        examples=[
            "hvintegration -t sim:// host services demovm",
            "hvintegration -t 'psrp://admin@hv01?ssl=true' host disable demovm VSS",
        ],
        parents=[common],
    )
    add_command(
        actions,
        "vms",
        help="list the VMs (Get-VM)",
        examples=["hvintegration -t sim:// host vms", "hvintegration -t sim:// --json host vms"],
        run=run_host,
        parents=[common],
    )
    services = add_command(
        actions,
        "services",
        help="integration services of VMs (Get-VMIntegrationService)",
        examples=[
            "hvintegration -t sim:// host services",
            "hvintegration -t sim:// host services demovm",
        ],
        run=run_host,
        parents=[common],
    )
    services.add_argument("vms", nargs="*", metavar="VM", help="VM names or ids; all VMs when none")
    for verb, summary in (
        ("enable", "Enable-VMIntegrationService"),
        ("disable", "Disable-VMIntegrationService"),
    ):
        change = add_command(
            actions,
            verb,
            help=f"{verb} integration services of a VM ({summary})",
            examples=[
                f'hvintegration -t sim:// host {verb} demovm "Guest Service Interface"',
                f"hvintegration -t sim:// host {verb} demovm vmicvss vmictimesync",
            ],
            run=run_host,
            parents=[common],
        )
        change.add_argument("vm", metavar="VM", help="VM name or id")
        change.add_argument(
            "services", nargs="+", metavar="SERVICE", help="name, older name, GUID or vmic* name"
        )
        if verb == "disable":
            change.add_argument(
                "--force",
                action="store_true",
                help="allow turning off Heartbeat, Shutdown or Key-Value Pair Exchange",
            )
    copy = add_command(
        actions,
        "copy-file",
        help="copy a host file into a running guest (Copy-VMFile)",
        examples=[
            "hvintegration -t 'psrp://admin@hv01?ssl=true' host copy-file demovm "
            "'C:\\iso\\tools.zip' 'C:\\Temp\\tools.zip' --create-full-path",
            # On the simulator: a file on the host, a lab kept between the
            # commands, Guest Service Interface turned on (docs/cli.md).
            "hvintegration -t 'sim://?state=lab.json&host_file=C:\\Tools\\agent.msi' "
            'host enable demovm "Guest Service Interface"',
            "hvintegration -t 'sim://?state=lab.json' host copy-file demovm "
            "'C:\\Tools\\agent.msi' 'C:\\Temp\\agent.msi' --create-full-path",
        ],
        run=run_host,
        parents=[common],
    )
    copy.add_argument("vm", metavar="VM", help="VM name or id")
    copy.add_argument("source", metavar="SOURCE", help="path on the Hyper-V host")
    copy.add_argument("destination", metavar="DEST", help="absolute path in the guest")
    copy.add_argument("--create-full-path", action="store_true", help="create missing folders")
    copy.add_argument("--overwrite", action="store_true", help="replace an existing file")
    add_kvp(actions, common)


_SIM_GUEST_PASSWORD = f"{ENVIRONMENT_GUEST_PASSWORD}=hvintegration"
"""The simulated guests' password, set for one command in the help's examples."""


def _add_windows(commands: Commands, common: argparse.ArgumentParser) -> None:
    guest_options = argparse.ArgumentParser(add_help=False)
    guest_options.add_argument(
        "--vm",
        default=argparse.SUPPRESS,
        help="reach this VM through the host target with PowerShell Direct",
    )
    guest_options.add_argument(
        "--user",
        default=argparse.SUPPRESS,
        help=(
            f"guest account for --vm (password from ${ENVIRONMENT_GUEST_PASSWORD} or a prompt;"
            " the simulator's guests take Administrator and hvintegration)"
        ),
    )
    actions = add_group(
        commands,
        "windows",
        help="Hyper-V services inside a Windows guest",
        examples=[
            "hvintegration -t 'sim://?guest=demovm' windows services",
            # The simulator's guests log in as Administrator with the
            # password hvintegration (docs/windows-guests.md).
            f"{_SIM_GUEST_PASSWORD} hvintegration -t sim:// windows --vm demovm services",
        ],
        parents=[common, guest_options],
    )
    add_command(
        actions,
        "services",
        help="the vmic* services (Get-Service -Name vm*)",
        examples=[
            "hvintegration -t 'sim://?guest=demovm' windows services",
            "hvintegration -t 'ssh://admin@guest1?shell=powershell' windows services",
        ],
        run=run_windows,
        parents=[common, guest_options],
    )
    for verb, summary in (
        ("start", "Start-Service"),
        ("stop", "Stop-Service"),
        ("restart", "Restart-Service"),
        ("enable", "startup type Manual, the default"),
        ("disable", "startup type Disabled"),
    ):
        action = add_command(
            actions,
            verb,
            help=f"{verb} a guest service ({summary})",
            examples=[
                f"hvintegration -t 'sim://?guest=demovm' windows {verb} vmicguestinterface",
                f"{_SIM_GUEST_PASSWORD} hvintegration -t sim:// windows --vm demovm"
                f' {verb} "Time Synchronization"',
            ],
            run=run_windows,
            parents=[common, guest_options],
        )
        action.add_argument("service", metavar="NAME", help="vmic* name or any catalogue name")
        if verb in ("stop", "disable"):
            action.add_argument(
                "--force",
                action="store_true",
                help="allow it for Heartbeat, Shutdown, Key-Value Pair Exchange, PowerShell Direct",
            )


def _add_linux(commands: Commands, common: argparse.ArgumentParser) -> None:
    actions = add_group(
        commands,
        "linux",
        help="the Linux guest side: the hv_utils driver and the hv_* daemons",
        examples=[
            "hvintegration -t sim-linux:// linux status",
            "hvintegration -t ssh://admin@guest1 linux restart kvp --force",
        ],
        parents=[common],
    )
    add_command(
        actions,
        "status",
        help="driver, devices, installed and running daemons",
        examples=[
            "hvintegration -t sim-linux:// linux status",
            "hvintegration -t local:// linux status",
        ],
        run=run_linux,
        parents=[common],
    )
    for verb in ("start", "stop", "restart"):
        examples = [f"hvintegration -t sim-linux:// linux {verb} vss"]
        if verb != "start":
            examples.append(f"hvintegration -t sim-linux:// linux {verb} hv_kvp_daemon --force")
        action = add_command(
            actions,
            verb,
            help=f"{verb} a daemon",
            examples=examples,
            run=run_linux,
            parents=[common],
        )
        action.add_argument(
            "daemon", metavar="DAEMON", help="hv_kvp_daemon, kvp, a unit or a catalogue name"
        )
        if verb in ("stop", "restart"):
            action.add_argument(
                "--grace",
                type=float,
                default=10.0,
                metavar="SECONDS",
                help="seconds to wait after SIGTERM (default 10)",
            )
            action.add_argument(
                "--kill", action="store_true", help="SIGKILL what outlives the grace period"
            )
            action.add_argument(
                "--force",
                action="store_true",
                help=f"allow {'stopping' if verb == 'stop' else 'restarting'} hv_kvp_daemon "
                "(the host learns IP addresses through it)",
            )
    kvp = add_command(
        actions,
        "kvp",
        help="the KVP pool files",
        examples=[
            "hvintegration -t sim-linux:// linux kvp",
            "hvintegration -t sim-linux:// linux kvp --pool 3",
        ],
        run=run_linux,
        parents=[common],
    )
    kvp.add_argument(
        "--pool", type=int, choices=range(5), default=None, help="one pool (0-4); all by default"
    )


def _add_advise(commands: Commands, common: argparse.ArgumentParser) -> None:
    # Reads no host: it takes the shared options, so they may come after
    # it as after any command, and ignores the target ones.
    advise = add_command(
        commands,
        "advise",
        help="how to keep a guest's integration services current on a host (no target needed)",
        examples=[
            'hvintegration advise --host-os "Windows 10" --guest-os "Windows 7"',
            'hvintegration advise --host-os 2019 --guest-os "Ubuntu 24.04" --json',
        ],
        run=run_advise,
        parents=[common],
        target=False,
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


def _add_doctor(commands: Commands, common: argparse.ArgumentParser) -> None:
    doctor = add_command(
        commands,
        "doctor",
        help="read-only checks of a host (or, with --guest, a Windows guest) before real work",
        examples=[
            "hvintegration -t 'psrp://admin@hv01?ssl=true' doctor",
            "hvintegration -t 'sim://?guest=demovm' doctor --guest",
        ],
        run=run_doctor,
        parents=[common],
    )
    doctor.add_argument(
        "--guest",
        action="store_true",
        help="the target is a Windows guest, not a Hyper-V host",
    )


def _add_completion(
    commands: Commands, root: CommandParser, common: argparse.ArgumentParser
) -> None:
    async def run_completion(
        args: argparse.Namespace, target: TargetLike | None, out: TextIO
    ) -> None:
        print(shtab.complete(root, shell=args.shell), file=out)

    completion = add_command(
        commands,
        "completion",
        help="print a shell completion script",
        # The recipes of docs/cli.md, "Shell completion", where
        # tests/test_completion_recipes.py runs them in a fresh account.
        examples=[
            'eval "$(hvintegration completion bash)"',
            "mkdir -p ~/.local/share/bash-completion/completions",
            "hvintegration completion bash"
            " > ~/.local/share/bash-completion/completions/hvintegration",
            'autoload -Uz compinit && compinit && eval "$(hvintegration completion zsh)"',
            "mkdir -p ~/.zfunc && hvintegration completion zsh > ~/.zfunc/_hvintegration",
            "# then in ~/.zshrc, before compinit: fpath=(~/.zfunc $fpath)",
            "hvintegration completion tcsh > ~/.hvintegration.tcsh && source ~/.hvintegration.tcsh",
        ],
        run=run_completion,
        parents=[common],
        target=False,
    )
    completion.add_argument(
        "shell",
        choices=SHELLS,
        help="the shell: " + ", ".join(SHELLS) + " (tcsh: write it to a file, then source it)",
    )


def build_parser() -> CommandParser:
    """The whole argument parser.

    Returns:
        A parser whose namespace has ``side`` (the command), ``action`` (its
        subcommand, for commands that have them), ``run`` and
        ``needs_target``.
    """
    common = _common()
    parser = CommandParser(
        prog="hvintegration",
        description="Manage Hyper-V integration services on hosts and guests.",
        epilog="examples:\n"
        "  hvintegration --target sim:// host services demovm\n"
        "  hvintegration --target sim-linux:// linux status\n"
        f"  {ENVIRONMENT_TARGET}='psrp://admin@hv01?ssl=true' hvintegration doctor",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="side", metavar="COMMAND", title="commands")
    _add_host(commands, common)
    _add_windows(commands, common)
    _add_linux(commands, common)
    _add_doctor(commands, common)
    add_command(
        commands,
        "catalogue",
        help="every integration service and its names (no target needed)",
        examples=["hvintegration catalogue", "hvintegration catalogue --json"],
        run=run_catalogue,
        parents=[common],
        target=False,
    )
    _add_advise(commands, common)
    add_diagnose(commands, common)
    add_fleet(commands, _common(one_target=False))
    _add_completion(commands, parser, common)
    return parser
