"""``hvintegration fleet ...``: many targets at once, from an inventory.

::

    hvintegration fleet services --inventory fleet.toml        every VM of every host
    hvintegration fleet linux --inventory hosts.ini            every Linux guest's daemons
    hvintegration fleet windows --inventory fleet.toml         every Windows guest's vmic* services
    hvintegration fleet diagnose --inventory fleet.toml        every VM's verdicts, from its host
    hvintegration fleet plan policy.toml --inventory fleet.toml
    hvintegration fleet apply policy.toml --inventory fleet.toml [--force]

The inventory is required: a fleet never falls back to the simulator. On a
terminal a progress bar (rich) runs on stderr; with ``--json`` or when stderr
is not a terminal, nothing but the result is printed.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TextIO, cast

from rich.progress import Progress

from hvintegration._connect import TargetLike
from hvintegration._table import text_table as _text_table
from hvintegration.cli import render as _render
from hvintegration.cli._command import CommandParser, UsageError, add_command, add_group
from hvintegration.cli.render import dumps, lines
from hvintegration.fleet import (
    Fleet,
    FleetProgress,
    FleetResult,
    PlanItem,
    ProgressCallback,
    load_inventory,
    load_policy,
)
from hvintegration.maintenance import resolve_host_os

__all__ = ["add_fleet", "run_fleet"]

_EXAMPLE_INVENTORY = "fleet.toml"


def add_fleet(
    commands: argparse._SubParsersAction[CommandParser], common: argparse.ArgumentParser
) -> None:
    """Register ``fleet`` and its commands.

    Args:
        commands: The top-level parser's subcommands.
        common: The options every command takes (``--json``, ``--timeout``...),
            with the single-target ones (``--target``, the password options)
            parsed but left out of the help: an inventory gives those.
    """
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--inventory",
        "-i",
        required=True,
        metavar="FILE",
        help="a TOML inventory (*.toml) or an Ansible inventory (INI or YAML)",
    )
    options.add_argument("--group", "-g", metavar="GROUP", help="only this inventory group")
    options.add_argument(
        "--max-connections",
        type=_at_least_one,
        metavar="N",
        help="targets open at once (default: the inventory's, else 32)",
    )
    actions = add_group(
        commands,
        "fleet",
        help="many hosts and guests at once, from an inventory",
        examples=[
            f"hvintegration fleet services --inventory {_EXAMPLE_INVENTORY}",
            f"hvintegration fleet plan policy.toml --inventory {_EXAMPLE_INVENTORY}",
        ],
        parents=[common],
    )
    for name, summary in (
        ("services", "integration services of every VM of every host"),
        ("windows", "the vmic* services of every Windows guest"),
        ("linux", "the integration daemons of every Linux guest"),
        ("diagnose", "one verdict per service of every VM of every host (exit 1 on a problem)"),
    ):
        command = add_command(
            actions,
            name,
            help=summary,
            examples=[
                f"hvintegration fleet {name} --inventory {_EXAMPLE_INVENTORY}",
                f"hvintegration fleet {name} --inventory hosts.ini --group prod --json",
            ],
            run=run_fleet,
            parents=[common, options],
            target=False,
        )
        if name == "diagnose":
            command.add_argument(
                "--host-os",
                metavar="OS",
                help="the hosts' release (Windows Server 2022...), for the update path of a "
                "protocol mismatch",
            )
    for name, summary in (
        ("plan", "show what a policy would change, target by target (reads only)"),
        ("apply", "change what differs from a policy, and show what changed"),
    ):
        action = add_command(
            actions,
            name,
            help=summary,
            examples=[f"hvintegration fleet {name} policy.toml --inventory {_EXAMPLE_INVENTORY}"],
            run=run_fleet,
            parents=[common, options],
            target=False,
        )
        action.add_argument("policy", metavar="POLICY", help="the policy file (TOML)")
        if name == "apply":
            action.add_argument(
                "--force",
                action="store_true",
                help="allow turning off Heartbeat, Shutdown or Key-Value Pair Exchange, "
                "and stopping the KVP daemon",
            )


Phase = Callable[[str, int], ProgressCallback]
"""Starts a bar for one phase of the run (its description and target count)."""


@contextlib.contextmanager
def progress_bars() -> Iterator[Phase]:
    """Progress bars on the console the dispatcher chose, or silence.

    The dispatcher decides whether progress shows (both streams terminals,
    no ``--json``) and keeps that console for the command; a fleet run
    draws one bar per phase on it, advanced after each target.
    """
    # The dispatcher's choice lives in render's context variable.
    console = _render._progress.get()
    if console is None:
        yield lambda _description, _total: _ignore
        return
    with Progress(console=console, transient=True) as bar:

        def phase(description: str, total: int) -> ProgressCallback:
            task = bar.add_task(description, total=total)

            def advance(progress: FleetProgress) -> None:
                failed = f" ({progress.failed} failed)" if progress.failed else ""
                bar.update(task, completed=progress.done, description=description + failed)

            return advance

        yield phase


def _at_least_one(text: str) -> int:
    """``--max-connections``: a whole number of at least 1 (0 is no "unset")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _ignore(_progress: FleetProgress) -> None:
    return None


def _with_progress(fleet: Fleet, callback: ProgressCallback) -> Fleet:
    return Fleet(
        fleet,
        max_connections=fleet.max_connections,
        timeout=fleet.timeout,
        operation_timeout=fleet.operation_timeout,
        progress=callback,
    )


def _plan_text(result: FleetResult[PlanItem], verb: str) -> str:
    """A plan as diff lines, or what apply did, then failures and a summary.

    Every line is escaped to stay one line (see :func:`render.lines`): a
    VM name or a remote error text holding a line break cannot add one.
    """
    text = []
    for item in result.rows:
        if verb == "plan" or item.action == "unavailable":
            text.append(item.diff_line + (" (needs --force)" if item.needs_force else ""))
        else:
            text.append(f"{'changed' if item.changed else 'unchanged'}: {item.diff_line[2:]}")
    # Each failure goes to stderr once, from the dispatcher (raise_for_errors).
    possible = [item for item in result.rows if item.action != "unavailable"]
    counted = [item for item in possible if verb == "plan" or item.changed]
    targets = len({item.target for item in counted})
    noun = "to change" if verb == "plan" else "changed"
    plural = "" if targets == 1 else "s"
    summary = f"{len(counted)} {noun} on {targets} target{plural}; {len(result.failed)} failed"
    impossible = len(result.rows) - len(possible)
    text.append(summary + (f"; {impossible} cannot comply" if impossible else ""))
    return lines(text)


def _result_text(result: FleetResult[Any]) -> str:
    """The rows as a table, each line escaped; failures go to stderr, once."""
    text = _text_table(result.rows).splitlines() if result.rows else []
    return lines(text) if text else "(no rows)"


_KIND_OF = {"services": "host", "diagnose": "host", "windows": "windows", "linux": "linux"}
"""The kind of target each reading command contacts."""


async def run_fleet(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> int | None:
    """Run a ``fleet`` command: print every target's outcome.

    Returns:
        1 when ``diagnose`` found a service that asks for action, else
        ``None`` (0).

    Raises:
        UsageError: ``--target`` or a password option was given (a fleet
            takes its targets and their passwords from ``--inventory``).
        InventoryError: The inventory cannot be used.
        PolicyError: The policy cannot be used.
        BatchError: Some targets failed; their results were printed first,
            and the dispatcher prints each failure and exits with their
            shared status, else 1.
    """
    if getattr(args, "target", None):
        raise UsageError("fleet takes --inventory FILE, not --target")
    if getattr(args, "password_file", None) or getattr(args, "ask_password", False):
        raise UsageError(
            "fleet reads each target's password from the inventory: "
            'password = { env = "VAR" }, { file = "PATH" } or { prompt = true }'
        )
    as_json = bool(getattr(args, "json", False))
    host_os = getattr(args, "host_os", None)
    if host_os is not None:
        # A mistyped release fails at once, naming the known ones.
        resolve_host_os(host_os)
    inventory = load_inventory(args.inventory)
    policy = load_policy(args.policy) if args.action in ("plan", "apply") else None
    timeout = getattr(args, "timeout", None)
    if policy is not None:
        policy.check_groups(inventory.groups)
    # Only the targets the command contacts are in the fleet, so only their
    # passwords are read (or asked for); a policy's scope is decided from
    # names, kinds and groups first. --timeout wins over the inventory's
    # operation_timeout at every level.
    names: list[str] | None = None
    if policy is not None:
        outline = inventory.fleet(group=args.group, credentials=False)
        names = [member.name for member in policy.scope(outline)]
    fleet = inventory.fleet(
        group=args.group,
        kind=_KIND_OF.get(args.action),
        names=names,
        max_connections=args.max_connections,
        operation_timeout=timeout,
    )
    with progress_bars() as phase:

        def watched(chosen: Fleet, description: str, total: int | None = None) -> Fleet:
            return Fleet(
                chosen,
                max_connections=chosen.max_connections,
                timeout=chosen.timeout,
                operation_timeout=chosen.operation_timeout if timeout is None else timeout,
                progress=phase(description, len(chosen) if total is None else total),
            )

        result: FleetResult[Any]
        if policy is not None:
            plan = await policy.plan(watched(policy.scope(fleet), "planning"))
            result = plan
            if args.action == "apply":
                todo = sum(1 for r in plan.targets if r.ok and r.value)
                result = await policy.apply(
                    watched(fleet, "applying", todo),
                    force=bool(getattr(args, "force", False)),
                    plan=plan,
                )
        elif args.action == "services":
            result = await watched(
                fleet.select(kind="host"), "reading hosts"
            ).integration_services()
        elif args.action == "diagnose":
            result = await watched(fleet.select(kind="host"), "diagnosing hosts").diagnose(
                host_os=getattr(args, "host_os", None)
            )
        elif args.action == "windows":
            chosen = fleet.select(kind="windows")
            result = await watched(chosen, "reading Windows guests").windows_services()
        else:
            result = await watched(
                fleet.select(kind="linux"), "reading Linux guests"
            ).linux_status()
    if as_json:
        print(dumps(result.as_dict()), file=out)
    elif policy is not None:
        print(_plan_text(cast("FleetResult[PlanItem]", result), args.action), file=out)
    else:
        print(_result_text(result), file=out)
    result.raise_for_errors()
    if args.action == "diagnose" and any(getattr(row, "problem", False) for row in result.rows):
        return 1
    return None
