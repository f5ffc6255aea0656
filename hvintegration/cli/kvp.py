"""``hvintegration host kvp VM``: a VM's Key-Value Pair Exchange items, seen from the host.

Without ``--set`` or ``--delete`` it reads: every item (intrinsic, guest,
host), or one set of them with ``--intrinsic``, ``--guest`` or ``--host``.
With them it writes the host-to-guest items in one round trip and prints
what it did per key. ``--json`` prints the record
(:class:`~hvintegration.records.KvpExchange` or
:class:`~hvintegration.records.KvpWriteResult`) as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TextIO

from hvintegration._connect import PowerShellTargetLike, TargetLike
from hvintegration.cli._command import CommandParser, UsageError, add_command
from hvintegration.cli.render import dumps, render, waiting
from hvintegration.host import DEFAULT_TIMEOUT, HyperVHost

__all__ = ["add_kvp", "parse_assignments", "run_kvp"]

_SOURCES = ("intrinsic", "guest", "host")


def add_kvp(
    actions: argparse._SubParsersAction[CommandParser], common: argparse.ArgumentParser
) -> None:
    """Register ``host kvp`` under the ``host`` command group.

    Args:
        actions: The ``host`` group's subcommands.
        common: The options every command takes.
    """
    kvp = add_command(
        actions,
        "kvp",
        help="read or write a VM's Key-Value Pair Exchange items (no guest login needed)",
        examples=[
            "hvintegration -t sim:// host kvp demovm",
            "hvintegration -t sim:// host kvp demovm --intrinsic",
            "hvintegration -t sim:// host kvp demovm --set Role=web --set Env=prod",
            "hvintegration -t sim:// --json host kvp demovm --delete Env",
        ],
        run=run_kvp,
        parents=[common],
    )
    kvp.add_argument("vm", metavar="VM", help="VM name or id")
    source = kvp.add_mutually_exclusive_group()
    for name, what in (
        ("intrinsic", "what the guest reports about itself (OSName, NetworkAddressIPv4...)"),
        ("guest", "the items programs in the guest published"),
        ("host", "the items the host sends the guest"),
    ):
        source.add_argument(
            f"--{name}", dest="source", action="store_const", const=name, help=f"only {what}"
        )
    kvp.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add or modify a host-to-guest item (repeat for several)",
    )
    kvp.add_argument(
        "--delete",
        dest="deletions",
        action="append",
        default=[],
        metavar="KEY",
        help="remove a host-to-guest item (repeat for several)",
    )


def parse_assignments(words: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` words as items; the value is everything after the first ``=``.

    Raises:
        UsageError: A word without ``=``, or one key given twice.

    Example:
        >>> parse_assignments(["Role=web", "Note=a=b", "Empty="])
        {'Role': 'web', 'Note': 'a=b', 'Empty': ''}
    """
    items: dict[str, str] = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            raise UsageError(f"--set takes KEY=VALUE, not {word!r}")
        if key in items:
            raise UsageError(f"--set names the key {key!r} twice")
        items[key] = value
    return items


async def run_kvp(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> None:
    """``hvintegration host kvp VM``: print the items, or write and print what was done.

    Raises:
        UsageError: ``--intrinsic``/``--guest``/``--host`` with a write, or a
            malformed ``--set``.
        ValueError: A key or value over its limit (nothing is sent).
        VMNotFoundError: The host has no such VM.
        KvpWriteError: The host failed the write.
    """
    as_json = bool(getattr(args, "json", False))
    timeout = float(getattr(args, "timeout", DEFAULT_TIMEOUT))
    items = parse_assignments(args.assignments)
    writing = bool(items or args.deletions)
    if writing and args.source is not None:
        raise UsageError(
            f"--{args.source} selects items to read; it does not go with --set/--delete"
        )
    assert target is not None
    host_target: PowerShellTargetLike = target  # type: ignore[assignment]
    async with contextlib.AsyncExitStack() as stack:
        with waiting("connecting"):
            host = await stack.enter_async_context(HyperVHost.connect(host_target, timeout=timeout))
        vm = host.vm(args.vm)
        if writing:
            with waiting(f"writing KVP items of {args.vm}"):
                done = await vm.update_kvp_items(items, args.deletions)
            print(
                dumps(done.to_dict()) if as_json else render(done.changes, as_json=False), file=out
            )
            return
        exchange = await vm.key_value_pairs()
    if as_json:
        if args.source is None:
            print(dumps(exchange.to_dict()), file=out)
        else:
            print(render(exchange.items(args.source), as_json=True), file=out)
        return
    sources = _SOURCES if args.source is None else (args.source,)
    rows = [row for source in sources for row in exchange.items(source)]
    print(render(rows, as_json=False) if rows else "(no items)", file=out)
