"""What each command does, given parsed arguments and a target."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import TextIO

from hvintegration import catalogue
from hvintegration._table import text_table
from hvintegration.cli.parser import ENVIRONMENT_PASSWORD
from hvintegration.cli.render import render
from hvintegration.host import DEFAULT_TIMEOUT, HyperVHost
from hvintegration.linux import LinuxGuest, resolve_daemon
from hvintegration.maintenance import advise
from hvintegration.preflight import doctor
from hvintegration.records import Verdict
from hvintegration.windows import Credential, GuestServiceState, WindowsGuest

__all__ = ["run_advise", "run_doctor", "run_host", "run_linux", "run_windows"]


def _options(args: argparse.Namespace) -> tuple[bool, float]:
    return bool(getattr(args, "json", False)), float(getattr(args, "timeout", DEFAULT_TIMEOUT))


async def run_host(args: argparse.Namespace, target: str, out: TextIO) -> None:
    """``hvintegration host ...``."""
    as_json, timeout = _options(args)
    if args.action in ("enable", "disable"):
        # Resolve names before connecting: a typo fails fast and changes nothing.
        specs = [catalogue.resolve_host(name) for name in args.services]
    async with HyperVHost.connect(target, timeout=timeout) as host:
        if args.action == "vms":
            print(render(await host.list_vms(), as_json=as_json), file=out)
        elif args.action == "services":
            chosen = args.vms or None
            print(render(await host.integration_services(chosen), as_json=as_json), file=out)
        elif args.action == "copy-file":
            done = await host.vm(args.vm).copy_file(
                args.source,
                args.destination,
                create_full_path=args.create_full_path,
                overwrite=args.overwrite,
            )
            print(render([done], as_json=as_json), file=out)
        else:
            enabled = args.action == "enable"
            force = bool(getattr(args, "force", False))
            result = await host.vm(args.vm).apply({spec: enabled for spec in specs}, force=force)
            print(render(result.items, as_json=as_json), file=out)


def _guest_password() -> str:
    password = os.environ.get(ENVIRONMENT_PASSWORD)
    if password is not None:
        return password
    if sys.stdin.isatty():
        return getpass.getpass("guest password: ")
    raise ValueError(
        f"--vm needs the guest password in ${ENVIRONMENT_PASSWORD} "
        "(or run interactively to be asked)"
    )


async def _windows_action(guest: WindowsGuest, args: argparse.Namespace) -> list[GuestServiceState]:
    if args.action == "services":
        return list(await guest.services())
    service = guest.service(args.service)
    force = bool(getattr(args, "force", False))
    if args.action == "start":
        return [await service.start()]
    if args.action == "stop":
        return [await service.stop(force=force)]
    if args.action == "restart":
        return [await service.restart()]
    if args.action == "enable":
        return [await service.enable()]
    return [await service.disable(force=force)]


async def run_windows(args: argparse.Namespace, target: str, out: TextIO) -> None:
    """``hvintegration windows ...``: straight to the guest, or through the
    host with PowerShell Direct when ``--vm`` is given."""
    as_json, timeout = _options(args)
    if getattr(args, "service", None) is not None:
        catalogue.resolve(args.service)
    vm = getattr(args, "vm", None)
    if vm is None:
        async with WindowsGuest.connect(target, timeout=timeout) as guest:
            states = await _windows_action(guest, args)
    else:
        user = getattr(args, "user", None) or "Administrator"
        credential = Credential(user, _guest_password())
        async with HyperVHost.connect(target, timeout=timeout) as host:
            states = await _windows_action(host.vm(vm).windows(credential), args)
    print(render(states, as_json=as_json), file=out)


async def run_linux(args: argparse.Namespace, target: str, out: TextIO) -> None:
    """``hvintegration linux ...``: status, daemon control and KVP pools."""
    as_json, timeout = _options(args)
    if getattr(args, "daemon", None) is not None:
        resolve_daemon(args.daemon)
    async with LinuxGuest.connect(target, timeout=timeout) as guest:
        if args.action == "status":
            status = await guest.status()
            if as_json:
                print(json.dumps(status.as_dict(), indent=2, ensure_ascii=False), file=out)
                return
            blocks = [
                f"{title}\n{text_table(records) or '(none)'}"
                for title, records in status.sections()
            ]
            print("\n\n".join(blocks), file=out)
            return
        if args.action == "kvp":
            print(render(await guest.kvp(pool=args.pool), as_json=as_json), file=out)
            return
        daemon = guest.daemon(args.daemon)
        if args.action == "start":
            state = await daemon.start()
        elif args.action == "stop":
            state = await daemon.stop(force=args.force, grace=args.grace, kill=args.kill)
        else:
            state = await daemon.restart(force=args.force, grace=args.grace, kill=args.kill)
        if as_json:
            print(json.dumps([state.as_dict()], indent=2, ensure_ascii=False), file=out)
        else:
            print(text_table([state]), file=out)


def run_advise(args: argparse.Namespace, out: TextIO) -> None:
    """``hvintegration advise``: the update mechanism for a guest on a host.

    Reads nothing from any host. A table (with the notes and sources under
    it) or, with ``--json``, the advice record.
    """
    advice = advise(host_os=args.host_os, guest_os=args.guest_os)
    if getattr(args, "json", False):
        print(render([advice], as_json=True), file=out)
        return
    lines = [text_table([advice])]
    if advice.notes:
        lines += ["", "Notes:", *(f"- {note}" for note in advice.notes)]
    if advice.sources:
        lines += ["", "Sources:", *(f"- {source}" for source in advice.sources)]
    print("\n".join(lines), file=out)


async def run_doctor(args: argparse.Namespace, target: str, out: TextIO) -> bool:
    """``hvintegration doctor``: read-only checks of a host or a Windows guest.

    Prints the checks as a table with a summary line, or with ``--json`` the
    whole report (what to paste into a bug report; it holds no secret).

    Returns:
        Whether no check failed.
    """
    as_json, timeout = _options(args)
    side = "guest" if getattr(args, "guest", False) else "host"
    report = await doctor(target, side=side, timeout=timeout)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2, ensure_ascii=False), file=out)
        return report.ok
    counts = {verdict: 0 for verdict in Verdict}
    for check in report.checks:
        counts[check.verdict] += 1
    summary = ", ".join(f"{count} {verdict.value}" for verdict, count in counts.items() if count)
    name_width = max(len("Check"), *(len(check.name) for check in report.checks))
    lines = [f"{'Check'.ljust(name_width)} {'Verdict'.ljust(7)} Found"]
    lines.append(f"{'-' * name_width} {'-' * 7} {'-' * 5}")
    lines += [
        f"{check.name.ljust(name_width)} {check.verdict.value.ljust(7)} {check.found}".rstrip()
        for check in report.checks
    ]
    remedies = [f"- {check.name}: {check.remedy}" for check in report.checks if check.remedy]
    if remedies:
        lines += ["", "What to do:", *remedies]
    lines += ["", f"{report.target} ({side}): {summary}"]
    print("\n".join(lines), file=out)
    return report.ok
