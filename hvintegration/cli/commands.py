"""What each command does, given parsed arguments and a target.

Each ``run_*`` coroutine is a :data:`~hvintegration.cli._command.Runner`:
``await run_x(args, target, out)``; it prints results to ``out`` and raises
the library's exceptions, which the dispatcher prints and maps to an exit
status.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import shlex
import sys
import urllib.parse
from pathlib import Path
from typing import TextIO

import attrs

from hvintegration import catalogue
from hvintegration._connect import PowerShellTargetLike, ShellTargetLike, TargetLike
from hvintegration._table import format_table, text_table
from hvintegration.cli._command import (
    ENVIRONMENT_GUEST_PASSWORD,
    ENVIRONMENT_PASSWORD,
    ENVIRONMENT_TARGET,
    UsageError,
)
from hvintegration.cli.render import dumps, lines, printable, render, waiting
from hvintegration.errors import HvIntegrationError, ServiceNotFoundError
from hvintegration.host import DEFAULT_TIMEOUT, HyperVHost
from hvintegration.linux import LinuxGuest, resolve_daemon
from hvintegration.maintenance import advise
from hvintegration.preflight import doctor
from hvintegration.records import Verdict
from hvintegration.transport import parse_target
from hvintegration.windows import Credential, GuestServiceState, WindowsGuest

__all__ = [
    "example_target",
    "read_password",
    "run_advise",
    "run_catalogue",
    "run_doctor",
    "run_host",
    "run_linux",
    "run_windows",
    "target_from",
]


def _options(args: argparse.Namespace) -> tuple[bool, float]:
    return bool(getattr(args, "json", False)), float(getattr(args, "timeout", DEFAULT_TIMEOUT))


def _url_of(target: TargetLike | None) -> str:
    # Scheme, host and port only: a URL may hold a password, and its
    # options make the line too long for a spinner.
    # A URL urllib cannot split is refused, with the reason, when it is
    # opened; until then it is shown as its scheme.
    url = str(getattr(target, "url", target))
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url.partition("://")[0] + "://"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def read_password(
    *, file: str | None, ask: bool, environment: str, prompt: str, ask_on_terminal: bool = False
) -> str | None:
    """A password from a file, a prompt or the environment, in that order.

    Args:
        file: A file whose first line is the password (``--password-file``);
            UTF-8, a byte order mark before it ignored.
        ask: Prompt for it (``--ask-password``); needs a terminal.
        environment: The environment variable to read when neither is given.
        prompt: The prompt's text.
        ask_on_terminal: Prompt when nothing else gives one and a terminal
            is attached (the guest password of ``--vm`` does).

    Returns:
        The password, or ``None`` when nothing gives one.

    Raises:
        UsageError: Both a file and a prompt were asked for, the file cannot
            be read or is empty, a prompt is needed without a terminal, or
            the prompt got end of input (Ctrl+D). No message repeats the
            password, and none names ``--password-file`` for a guest
            password, which it does not set.
    """
    if file is not None and ask:
        raise UsageError("give the password one way: --password-file or --ask-password")
    if file is not None:
        try:
            # utf-8-sig: a BOM (as Windows editors write) is not part of it.
            # Lines end at "\n" (or "\r\n") only: splitlines() would also
            # cut at form feeds, "\x1c"-"\x1e", NEL and U+2028, which may be
            # characters of the password itself.
            whole = Path(file).read_text(encoding="utf-8-sig")
            text = [whole.split("\n", 1)[0].removesuffix("\r")] if whole else []
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
            raise UsageError(f"cannot read the password file {file!r}: {reason}") from None
        if not text or not text[0]:
            raise UsageError(
                f"the password file {file!r} is empty (its first line is the password)"
            )
        return text[0]
    if not ask:
        value = os.environ.get(environment)
        if value:
            return value
        if not ask_on_terminal:
            return None
    # --password-file sets the host password only; a guest password has
    # its environment variable alone.
    ways = (
        f"--password-file or ${environment}"
        if environment == ENVIRONMENT_PASSWORD
        else (f"${environment}")
    )
    if not sys.stdin.isatty():
        raise UsageError(f"no terminal to ask for the password on; use {ways}")
    try:
        return getpass.getpass(printable(prompt))
    except EOFError:
        # Ctrl+D at the prompt: no password, said in one line, which starts
        # a line of its own (getpass echoed no line break).
        if sys.stderr.isatty():
            print(file=sys.stderr)
        raise UsageError(f"no password given (end of input at the prompt); use {ways}") from None


def example_target(args: argparse.Namespace) -> str:
    """The built-in simulator that fits a command, to show a user who gave no target.

    A simulated host, the inside of its ``demovm`` for ``windows`` (unless
    ``--vm`` goes through the host), or a simulated Linux guest for
    ``linux``. It is only ever shown: no command falls back to it.

    Example:
        >>> example_target(argparse.Namespace(side="linux"))
        'sim-linux://'
    """
    if args.side == "linux":
        return "sim-linux://"
    if args.side == "doctor" and getattr(args, "guest", False):
        return "sim://?guest=demovm"
    if args.side == "windows" and getattr(args, "vm", None) is None:
        return "sim://?guest=demovm"
    return "sim://"


# Left out of the command shown for the simulator, in every form argparse
# takes: the target itself, and the password options, which sim:// refuses.
_DROPPED_WITH_VALUE = ("--target", "--password-file")
_DROPPED_FLAGS = ("--ask-password",)
# Short options that take a value: -t URL (dropped), -i FILE, -g GROUP.
_SHORT_WITH_VALUE = "tig"


def _long_form(word: str, options: tuple[str, ...]) -> bool:
    # argparse takes an unambiguous prefix ("--targ") and "=VALUE"; the
    # words were parsed already, so a prefix here was not ambiguous.
    name = word.partition("=")[0]
    return len(name) > 2 and any(option.startswith(name) for option in options)


def _short_cluster(word: str) -> tuple[str | None, bool]:
    # "-vt URL", "-tURL", "-vvtURL": what is left of the cluster without
    # -t and its value, and whether the next word is -t's value.
    kept = ""
    for index, letter in enumerate(word[1:], start=1):
        if letter == "t":
            return ("-" + kept if kept else None), index == len(word) - 1
        kept += letter
        if letter in _SHORT_WITH_VALUE:
            return word, False
    return word, False


def _without_target(argv: list[str]) -> list[str]:
    """The words as given, without any form of ``--target`` or a password option."""
    words: list[str] = []
    skip = False
    for position, word in enumerate(argv):
        if skip:
            skip = False
        elif word == "--":
            words += argv[position:]
            break
        elif word.startswith("--"):
            if _long_form(word, _DROPPED_WITH_VALUE):
                skip = "=" not in word
            elif not _long_form(word, _DROPPED_FLAGS):
                words.append(word)
        elif word.startswith("-") and len(word) > 1:
            kept, skip = _short_cluster(word)
            if kept is not None:
                words.append(kept)
        else:
            words.append(word)
    return words


def target_from(args: argparse.Namespace, argv: list[str]) -> TargetLike:
    """The target a command acts on: ``--target`` or ``$HVINTEGRATION_TARGET``,
    with a password from ``--password-file``, ``--ask-password`` or
    ``$HVINTEGRATION_PASSWORD`` when the scheme takes one.

    Args:
        args: The parsed arguments.
        argv: The arguments as given, to show how to try the command on a
            simulator.

    Returns:
        The URL, or target settings carrying the password.

    Raises:
        UsageError: No target is given (the message shows the command with
            ``--target sim://``, or the simulator that fits), or a password
            is given twice or to a scheme that takes none.
        InvalidTargetError: The URL is malformed or ambiguous.
    """
    given = getattr(args, "target", None)
    # A --target given empty is no target: never a fall back to
    # $HVINTEGRATION_TARGET, which may name another host than the one meant.
    empty = given is not None and not given.strip()
    url = "" if empty else (given or os.environ.get(ENVIRONMENT_TARGET) or "").strip()
    if not url:
        example = ["hvintegration", "--target", example_target(args), *_without_target(argv)]
        # Every word quoted for a POSIX shell: it is meant to be pasted.
        shown = shlex.join(example)
        ways = (
            f"--target URL (it is empty; ${ENVIRONMENT_TARGET} does not replace it)"
            if empty
            else f"--target URL or set ${ENVIRONMENT_TARGET}"
        )
        raise UsageError(f"no target: give {ways} (to try it on the built-in simulator: {shown})")
    file = getattr(args, "password_file", None)
    ask = bool(getattr(args, "ask_password", False))
    if file is None and not ask and not os.environ.get(ENVIRONMENT_PASSWORD):
        return url
    target = parse_target(url)
    fields = attrs.fields_dict(type(target)) if attrs.has(type(target)) else {}  # type: ignore[arg-type]
    explicit = file is not None or ask
    if "password" not in fields:
        if explicit:
            raise UsageError(
                f"{url.split('://')[0]}:// takes no password (only ssh:// and psrp:// do)"
            )
        return target
    if getattr(target, "password", None):
        if explicit:
            raise UsageError(
                "the URL has a password and an option gives another: keep one "
                "(better the option: a password in a URL lands in shell history)"
            )
        return target
    password = read_password(
        file=file, ask=ask, environment=ENVIRONMENT_PASSWORD, prompt=f"password for {target.url}: "
    )
    return attrs.evolve(target, password=password)  # type: ignore[misc]


async def run_host(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> None:
    """``hvintegration host ...``."""
    as_json, timeout = _options(args)
    if args.action in ("enable", "disable"):
        # Resolve catalogue names before connecting (a guest-only service
        # fails fast); a name only the host knows, as a localised host
        # prints it, is looked up there. Either way nothing changes on error.
        services = [catalogue.lookup_host(name) or name for name in args.services]
    assert target is not None
    async with contextlib.AsyncExitStack() as stack:
        with waiting(f"connecting to {_url_of(target)}"):
            host = await stack.enter_async_context(
                HyperVHost.connect(_powershell(target), timeout=timeout)
            )
        if args.action == "vms":
            print(render(await host.list_vms(), as_json=as_json), file=out)
        elif args.action == "services":
            chosen = args.vms or None
            print(render(await host.integration_services(chosen), as_json=as_json), file=out)
        elif args.action == "copy-file":
            with waiting(f"copying {args.source} into {args.vm}"):
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
            desired = {service: enabled for service in services}
            try:
                result = await host.vm(args.vm).apply(desired, force=force)
            except ServiceNotFoundError as error:
                raise await _offered_only(host, args.vm, error) from error
            print(render(result.items, as_json=as_json), file=out)


async def _offered_only(host: HyperVHost, vm: str, error: ServiceNotFoundError) -> Exception:
    # An unknown name lists every host service of the catalogue, but a VM
    # may lack some (Guest Service Interface before Windows Server 2012 R2):
    # name, and suggest, only what this VM offers. One more round trip, on
    # the error path only; if it fails, the first error stands.
    if not error.message.startswith(f"unknown {error.kind} ") or not error.choices:
        return error
    try:
        names = await host.display_names([vm])
    except HvIntegrationError:
        return error
    offered = dict.fromkeys([*(spec.name for spec in names.values()), *names])
    return ServiceNotFoundError(
        error.name or "", choices=offered, target=error.target, operation=error.operation
    )


def _powershell(target: TargetLike) -> PowerShellTargetLike:
    # The parsed target is checked for its kind when it is opened.
    return target  # type: ignore[return-value]


def _shell(target: TargetLike) -> ShellTargetLike:
    return target  # type: ignore[return-value]


def _guest_password() -> str:
    password = read_password(
        file=None,
        ask=False,
        environment=ENVIRONMENT_GUEST_PASSWORD,
        prompt="guest password: ",
        ask_on_terminal=True,
    )
    assert password is not None  # ask_on_terminal prompts or raises
    return password


async def _windows_action(guest: WindowsGuest, args: argparse.Namespace) -> list[GuestServiceState]:
    if args.action == "services":
        return list(await guest.services())
    service = guest.service(args.service)
    force = bool(getattr(args, "force", False))
    if args.action == "start":
        with waiting(f"starting {args.service} (waits while it is StartPending)"):
            return [await service.start()]
    if args.action == "stop":
        with waiting(f"stopping {args.service} (waits while it is StopPending)"):
            return [await service.stop(force=force)]
    if args.action == "restart":
        with waiting(f"restarting {args.service} (waits while it is StopPending, StartPending)"):
            return [await service.restart()]
    if args.action == "enable":
        return [await service.enable()]
    return [await service.disable(force=force)]


async def run_windows(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> None:
    """``hvintegration windows ...``: straight to the guest, or through the
    host with PowerShell Direct when ``--vm`` is given."""
    as_json, timeout = _options(args)
    if getattr(args, "service", None) is not None:
        catalogue.resolve(args.service)
    assert target is not None
    vm = getattr(args, "vm", None)
    user = getattr(args, "user", None)
    if vm is None and user is not None:
        raise UsageError(
            "--user is the guest account for --vm (PowerShell Direct); without --vm the "
            "target itself is the guest and its URL names the user"
        )
    if user is not None and not user.strip():
        raise UsageError("--user is empty: name the guest account (or leave out --user)")
    if vm is not None and not str(vm).strip():
        raise UsageError("--vm is empty: name the VM, by name or id")
    credential = None
    if vm is not None:
        credential = Credential(user or "Administrator", _guest_password())
    async with contextlib.AsyncExitStack() as stack:
        with waiting(f"connecting to {_url_of(target)}"):
            if credential is None:
                guest = await stack.enter_async_context(
                    WindowsGuest.connect(_powershell(target), timeout=timeout)
                )
            else:
                host = await stack.enter_async_context(
                    HyperVHost.connect(_powershell(target), timeout=timeout)
                )
                guest = host.vm(str(vm)).windows(credential)
        states = await _windows_action(guest, args)
    print(render(states, as_json=as_json), file=out)


async def run_linux(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> None:
    """``hvintegration linux ...``: status, daemon control and KVP pools."""
    as_json, timeout = _options(args)
    if getattr(args, "daemon", None) is not None:
        resolve_daemon(args.daemon)
    assert target is not None
    async with contextlib.AsyncExitStack() as stack:
        with waiting(f"connecting to {_url_of(target)}"):
            guest = await stack.enter_async_context(
                LinuxGuest.connect(_shell(target), timeout=timeout)
            )
        if args.action == "status":
            status = await guest.status()
            if as_json:
                print(dumps(status.as_dict()), file=out)
                return
            text: list[str] = []
            for title, records in status.sections():
                text += ["", title] if text else [title]
                text += text_table(records).splitlines() or ["(none)"]
            print(lines(text), file=out)
            return
        if args.action == "kvp":
            print(render(await guest.kvp(pool=args.pool), as_json=as_json), file=out)
            return
        daemon = guest.daemon(args.daemon)
        if args.action == "start":
            with waiting(f"starting {args.daemon}"):
                state = await daemon.start()
        else:
            then = ", then SIGKILL" if args.kill else ""
            with waiting(
                f"{'stopping' if args.action == 'stop' else 'restarting'} {args.daemon} "
                f"(up to {args.grace:g} s after SIGTERM{then})"
            ):
                if args.action == "stop":
                    state = await daemon.stop(force=args.force, grace=args.grace, kill=args.kill)
                else:
                    state = await daemon.restart(force=args.force, grace=args.grace, kill=args.kill)
        if as_json:
            print(dumps([state.as_dict()]), file=out)
        else:
            print(text_table([state]), file=out)


async def run_catalogue(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> None:
    """``hvintegration catalogue``: every integration service and its names."""
    print(render(catalogue.ALL_SERVICES, as_json=bool(getattr(args, "json", False))), file=out)


async def run_advise(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> None:
    """``hvintegration advise``: the update mechanism for a guest on a host.

    Reads nothing from any host. A table (with the notes and sources under
    it) or, with ``--json``, the advice record.
    """
    advice = advise(host_os=args.host_os, guest_os=args.guest_os)
    if getattr(args, "json", False):
        # One answer, one record: a JSON object, as `linux status` prints its.
        print(dumps(advice.to_dict()), file=out)
        return
    text = text_table([advice]).splitlines()
    if advice.notes:
        text += ["", "Notes:", *(f"- {note}" for note in advice.notes)]
    if advice.sources:
        text += ["", "Sources:", *(f"- {source}" for source in advice.sources)]
    print(lines(text), file=out)


async def run_doctor(args: argparse.Namespace, target: TargetLike | None, out: TextIO) -> int:
    """``hvintegration doctor``: read-only checks of a host or a Windows guest.

    Prints the checks as a table with a summary line, or with ``--json`` the
    whole report (what to paste into a bug report; it holds no secret).

    Returns:
        1 when a check failed, else 0.
    """
    as_json, timeout = _options(args)
    side = "guest" if getattr(args, "guest", False) else "host"
    assert target is not None
    with waiting(f"checking {_url_of(target)}"):
        report = await doctor(_powershell(target), side=side, timeout=timeout)
    if as_json:
        print(dumps(report.as_dict()), file=out)
        return 0 if report.ok else 1
    counts = {verdict: 0 for verdict in Verdict}
    for check in report.checks:
        counts[check.verdict] += 1
    summary = ", ".join(f"{count} {verdict.value}" for verdict, count in counts.items() if count)
    rows = [[check.name, check.verdict.value, check.found] for check in report.checks]
    text = format_table(["Check", "Verdict", "Found"], rows).splitlines()
    remedies = [f"- {check.name}: {check.remedy}" for check in report.checks if check.remedy]
    if remedies:
        text += ["", "What to do:", *remedies]
    text += ["", f"{report.target} ({side}): {summary}"]
    # Each line escaped: what a target reports cannot add a line.
    print(lines(text), file=out)
    return 0 if report.ok else 1
