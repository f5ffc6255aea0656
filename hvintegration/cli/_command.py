"""What every command module of the command line builds on.

:class:`CommandParser` (user-facing argparse messages, did-you-mean for
commands), :func:`add_command` (one subcommand with its examples and the
function that runs it) and the environment variables the command line
reads. This module imports nothing else of the command line, so a command
module can use it while ``cli/parser.py`` imports that command module.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from hvintegration._connect import TargetLike

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "ENVIRONMENT_GUEST_PASSWORD",
    "ENVIRONMENT_PASSWORD",
    "ENVIRONMENT_TARGET",
    "CommandParser",
    "Runner",
    "UsageError",
    "add_command",
    "add_group",
    "did_you_mean",
]

ENVIRONMENT_TARGET = "HVINTEGRATION_TARGET"
"""Environment variable read when ``--target`` is not given."""

ENVIRONMENT_PASSWORD = "HVINTEGRATION_PASSWORD"
"""Environment variable holding the password of an ``ssh://`` or ``psrp://`` target."""

ENVIRONMENT_GUEST_PASSWORD = "HVINTEGRATION_GUEST_PASSWORD"
"""Environment variable holding the guest password for PowerShell Direct (``--vm``)."""

Runner = Callable[[argparse.Namespace, "TargetLike | None", TextIO], Awaitable["int | None"]]
"""What runs a command: ``await run(args, target, out)``.

``target`` is the target the user named (a URL, or target settings when a
password came from outside the URL), ``None`` for a command made with
``target=False``. Results go to ``out``; errors are raised (the library's
exceptions), never printed. The return value is the exit status, ``None``
meaning 0.
"""


class UsageError(Exception):
    """The command line was used wrongly in a way argparse cannot see (no
    target, a password given twice); exit status 2 with the message."""


def did_you_mean(value: str, choices: Iterable[str]) -> str:
    """A hint naming the choice closest to a mistyped value, or empty text.

    Args:
        value: What the user typed.
        choices: The valid values.

    Returns:
        ``"did you mean 'host'?"``, or ``""`` when nothing is close.

    Example:
        >>> did_you_mean("hots", ["host", "windows", "linux"])
        "did you mean 'host'?"
        >>> did_you_mean("zzz", ["host"])
        ''
    """
    by_folded = {choice.casefold(): choice for choice in choices}
    close = difflib.get_close_matches(value.casefold(), list(by_folded), n=1, cutoff=0.6)
    return f"did you mean {by_folded[close[0]]!r}?" if close else ""


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose messages name commands, not argparse's internals.

    A missing command says ``a command is required: host, windows, ...``
    (not ``the following arguments are required: side``), and an unknown one
    says ``unknown command 'hots'; did you mean 'host'?`` (not ``argument
    side: invalid choice``). Subparsers made from it are of this class too,
    and help keeps the line breaks of the examples in each epilog.

    Example:
        >>> parser = CommandParser(prog="demo")
        >>> commands = parser.add_subparsers(dest="command", metavar="COMMAND")
        >>> _ = commands.add_parser("host")
        >>> parser.parse_args(["host"]).command
        'host'
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        # No prefix matching: ``--password hunter2`` must not be taken as
        # ``--password-file`` (and its value then shown in an error).
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # The leftover words reach the top parser; the command that was
            # chosen knows the options they were meant for, and its usage is
            # the one to show.
            chosen = self._chosen(parsed)
            options = chosen._unknown_options(extras)
            chosen.error(
                chosen._unknown_message(options) if options else self._stray_message(extras)
            )
        return parsed

    def _chosen(self, parsed: argparse.Namespace) -> CommandParser:
        # The innermost (sub)command parser the parsed words chose.
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                sub = action.choices.get(getattr(parsed, action.dest, None) or "")
                if isinstance(sub, CommandParser):
                    return sub._chosen(parsed)
        return self

    def _stray_message(self, extras: Sequence[str]) -> str:
        # Stray words are named (escaped), except one that follows
        # --ask-password, which may be the password typed after it.
        words: list[str] = getattr(self, "_words", [])
        secret = {words[i + 1] for i, word in enumerate(words[:-1]) if word == "--ask-password"}
        plural = "s" if len(extras) > 1 else ""
        shown = [word for word in extras if word not in secret]
        hidden = len(extras) - len(shown)
        named = ", ".join(ascii(word) for word in shown)
        if hidden:
            note = f"{hidden} not shown: it may be a password typed after --ask-password"
            named = f"{named}; {note}" if named else note
        return f"{len(extras)} unexpected argument{plural} after the command: {named}"

    def _unknown_options(self, words: Sequence[str]) -> list[str]:
        # Option-like words this parser does not know, without an ``=value``.
        known = self._option_string_actions
        names = (word.split("=", 1)[0] for word in words)
        return [
            name for name in names if name.startswith("-") and name != "-" and name not in known
        ]

    def _unknown_message(self, options: Sequence[str]) -> str:
        spelled = [o for o in self._option_string_actions if o.startswith("--")]
        close = difflib.get_close_matches(options[0], spelled, n=2, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        return f"unknown option {', '.join(options)}{hint}"

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        # argparse's own message names the destination ("argument side:
        # invalid choice"); a command gets a sentence and a suggestion.
        if isinstance(action, argparse._SubParsersAction) and value not in action.choices:
            # ``--passwd hunter2 host``: the unknown option's value is taken
            # for the command; name the option, never the value.
            words: list[str] = getattr(self, "_words", [])
            before = words[: words.index(value)] if value in words else words
            unknown = self._unknown_options(before)
            if unknown:
                raise argparse.ArgumentError(None, self._unknown_message(unknown))
            at = words.index(value) if value in words else 0
            if at and words[at - 1] == "--ask-password":
                raise argparse.ArgumentError(
                    None,
                    "--ask-password takes no value (it prompts for the password); "
                    "the word after it is not shown",
                )
            hint = did_you_mean(str(value), action.choices)
            raise argparse.ArgumentError(
                None,
                f"unknown command {value!r}"
                + (f"; {hint}" if hint else "")
                + f" (commands: {', '.join(action.choices)})",
            )
        if action.choices is not None and value not in action.choices:
            # ``completion fish``: "unknown shell 'fish' (one of: bash, ...)".
            choices = [str(choice) for choice in action.choices]
            hint = did_you_mean(str(value), choices)
            raise argparse.ArgumentError(
                None,
                f"unknown {_argument_name(action)} {value!r}"
                + (f"; {hint}" if hint else "")
                + f" (one of: {', '.join(choices)})",
            )
        super()._check_value(action, value)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        self._words = words
        parsed, extras = super().parse_known_args(words, namespace)
        # Subcommands are optional to argparse (its message for a missing
        # one names the destination); a missing one is refused here.
        for action in self._actions:
            missing = getattr(parsed, action.dest, None) is None
            if isinstance(action, argparse._SubParsersAction) and missing:
                self.error(f"a command is required: {', '.join(action.choices)}")
        return parsed, extras

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse swallows a failed write, so ``--help > /dev/full`` would
        # exit 0 with nothing written; the failure reaches the dispatcher,
        # which reports it in one line.
        if message:
            stream = file or sys.stderr
            stream.write(message)
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()

    def error(self, message: str) -> NoReturn:
        """Print the usage and the message to stderr and exit with status 2.

        argparse's "the following arguments are required: shell" becomes
        "missing shell (one of: bash, zsh, tcsh)".
        """
        required = "the following arguments are required: "
        if message.startswith(required):
            message = "missing " + "; ".join(
                self._describe_missing(name) for name in message[len(required) :].split(", ")
            )
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def _describe_missing(self, name: str) -> str:
        # One missing argument as argparse names it, with its choices.
        for action in self._actions:
            if argparse._get_action_name(action) == name:
                shown = _argument_name(action)
                if action.option_strings and action.metavar:
                    shown = f"{shown} {action.metavar}"
                if action.choices is not None:
                    shown += f" (one of: {', '.join(map(str, action.choices))})"
                return shown
        return name


def _argument_name(action: argparse.Action) -> str:
    # How an argument is named in a message: its long option, else its
    # metavar or destination in words ("shell", "VM").
    if action.option_strings:
        longs = [o for o in action.option_strings if o.startswith("--")]
        return (longs or list(action.option_strings))[0]
    return str(action.metavar or action.dest)


def add_command(
    commands: argparse._SubParsersAction[CommandParser],
    name: str,
    *,
    help: str,
    examples: Sequence[str],
    run: Runner,
    parents: Sequence[argparse.ArgumentParser] = (),
    target: bool = True,
) -> CommandParser:
    """Add one command, with examples in its help and the function that runs it.

    Args:
        commands: What ``add_subparsers`` returned on the parent parser.
        name: The command word.
        help: One line for the parent's command list.
        examples: Whole command lines shown under ``Examples:`` in the
            command's ``--help``; at least one.
        run: The coroutine function that runs it (see :data:`Runner`).
        parents: Parsers whose options it shares (``--target``, ``--json``).
        target: Whether the command acts on a target; without one given it
            then fails with a usage error that shows a simulator to try.

    Returns:
        The command's parser, for its own arguments.

    Raises:
        ValueError: No example was given.
    """
    parser = _add(commands, name, help=help, examples=examples, parents=parents)
    parser.set_defaults(run=run, needs_target=target)
    return parser


def add_group(
    commands: argparse._SubParsersAction[CommandParser],
    name: str,
    *,
    help: str,
    examples: Sequence[str],
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse._SubParsersAction[CommandParser]:
    """Add a command that only groups others (``host`` groups ``vms``, ``services``...).

    Args:
        commands: What ``add_subparsers`` returned on the parent parser.
        name: The command word.
        help: One line for the parent's command list.
        examples: Command lines for its ``--help``; at least one.
        parents: Parsers whose options it shares.

    Returns:
        Its own subcommands, to give to :func:`add_command` (their choice
        lands in ``args.action``).

    Raises:
        ValueError: No example was given.
    """
    parser = _add(commands, name, help=help, examples=examples, parents=parents)
    return parser.add_subparsers(dest="action", metavar="COMMAND", title="commands")


def _add(
    commands: argparse._SubParsersAction[CommandParser],
    name: str,
    *,
    help: str,
    examples: Sequence[str],
    parents: Sequence[argparse.ArgumentParser],
) -> CommandParser:
    if not examples:
        raise ValueError(f"the command {name!r} needs at least one example for its help")
    epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples)
    return commands.add_parser(
        name,
        help=help,
        description=help[:1].upper() + help[1:] + ".",
        epilog=epilog,
        parents=list(parents),  # type: ignore[arg-type]
    )
