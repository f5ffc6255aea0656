"""What the command line prints: tables, JSON, safe text, and progress.

Everything printed is safe for a terminal: table cells and error lines go
through :func:`~hvintegration._table.printable`, JSON escapes every control
character, and :class:`SafeWriter` escapes whatever else reaches the output
streams, so a remote name holding ``ESC]0;...BEL`` or a newline can neither
retitle the terminal nor forge a row.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

from hvintegration._table import (
    Tabular,
    format_table,
    json_rows,
    json_text,
    printable,
    text_table,
)

__all__ = [
    "OutputError",
    "SafeWriter",
    "dumps",
    "format_table",
    "lines",
    "printable",
    "progress_console",
    "render",
    "showing_progress",
    "to_json",
    "waiting",
]


def dumps(value: Any) -> str:
    """JSON text, indented, with non-ASCII text kept and every control character escaped.

    Every ``--json`` output goes through here (see
    :func:`hvintegration._table.json_text`), so it is valid JSON in any
    UTF-8 stream and nothing in it can act on a terminal.

    Args:
        value: Plain data (dicts, lists, strings, numbers).

    Returns:
        JSON in which no character can act on a terminal.

    Example:
        >>> print(dumps({"name": "客體\\u202e\\x1b"}))
        {
          "name": "客體\\u202e\\u001b"
        }
    """
    return json_text(value, indent=2)


def lines(text_lines: Iterable[str]) -> str:
    r"""Lines of text as one block, each line escaped to stay one line.

    Text a command prints outside a table (a title, a diff line, a remedy,
    a note, a failure) is built from remote values: a VM name or an error
    text holding ``\n`` would start a line of its own and could pass for
    the command's own output. Each item is one line, with every control
    character, line breaks included, escaped by :func:`printable`. A table
    goes in as its lines (``text_table(records).splitlines()``); escaping
    it again changes nothing, as escaped text holds no control character.

    Args:
        text_lines: The lines, in order.

    Returns:
        The lines joined by line breaks.

    Example:
        >>> print(lines(["demovm on HV01", "evil\n- forged"]))
        demovm on HV01
        evil\x0a- forged
    """
    return "\n".join(printable(line) for line in text_lines)


def to_json(records: Sequence[object]) -> str:
    """Records as a JSON array, each its ``to_dict()`` (see
    :func:`hvintegration._table.json_rows`).

    Example:
        >>> import json, uuid
        >>> from hvintegration.records import VMSummary
        >>> text = to_json([VMSummary("demovm", uuid.UUID(int=0), "Off", 2, "", "HV01")])
        >>> json.loads(text)[0]["id"]
        '00000000-0000-0000-0000-000000000000'
    """
    return dumps(json_rows(records))


def render(records: Sequence[Tabular], *, as_json: bool) -> str:
    """The text a command prints for its records: a table, or JSON."""
    if as_json:
        return to_json(records)
    return text_table(records)


class OutputError(OSError):
    """The command's output or error stream cannot be written (``> /dev/full``).

    The dispatcher reports it in one line and exits with status 1, instead
    of the error of a library call it interrupted.

    Example:
        >>> import errno
        >>> OutputError(errno.ENOSPC, "No space left on device").strerror
        'No space left on device'
    """


class SafeWriter(io.TextIOBase):
    """A text stream that escapes control characters before they reach another one.

    Line breaks pass; everything :func:`printable` escapes is escaped.

    Args:
        stream: Where the text goes.

    Example:
        >>> buffer = io.StringIO()
        >>> print("row\\x1b[2J", file=SafeWriter(buffer))
        >>> buffer.getvalue()
        'row\\\\x1b[2J\\n'
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` with its control characters escaped.

        Returns:
            The length of ``text``, as a stream's ``write`` does.

        Raises:
            OutputError: The stream underneath cannot be written (a full
                disk); a closed pipe stays a ``BrokenPipeError``.
        """
        try:
            self.stream.write(printable(text, newlines=True))
        except BrokenPipeError:
            raise
        except OSError as error:
            raise OutputError(error.errno, error.strerror) from error
        return len(text)

    def writable(self) -> bool:
        """Always true."""
        return True

    def flush(self) -> None:
        """Flush the stream underneath.

        Raises:
            OutputError: The stream underneath cannot be written; a closed
                pipe stays a ``BrokenPipeError``.
        """
        try:
            self.stream.flush()
        except BrokenPipeError:
            raise
        except OSError as error:
            raise OutputError(error.errno, error.strerror) from error

    def isatty(self) -> bool:
        """Whether the stream underneath is a terminal."""
        return self.stream.isatty()


_progress: contextvars.ContextVar[Console | None] = contextvars.ContextVar(
    "hvintegration_cli_progress", default=None
)


def progress_console(out: TextIO, err: TextIO, *, as_json: bool) -> Console | None:
    """Where progress goes: a rich console on ``err``, or ``None`` for silence.

    Progress shows only when both streams are terminals and the output is
    not JSON: a pipe, a file, ``--json`` or a CI log get no spinner.

    Args:
        out: The result stream.
        err: The stream progress would be drawn on.
        as_json: Whether the command prints JSON.

    Returns:
        A console, or ``None``.
    """
    if as_json or not (out.isatty() and err.isatty()):
        return None
    return Console(file=err, stderr=True)


@contextlib.contextmanager
def showing_progress(console: Console | None) -> Iterator[None]:
    """Make :func:`waiting` draw on ``console`` (``None``: stay silent) inside the block."""
    token = _progress.set(console)
    try:
        yield
    finally:
        _progress.reset(token)


@contextlib.contextmanager
def waiting(message: str) -> Iterator[None]:
    """Show a spinner with ``message`` while the block runs, when progress is on.

    The spinner is drawn on the console :func:`showing_progress` set and
    erased when the block ends; without one, nothing is drawn. The message
    is shown as plain text (no markup) and with control characters escaped.

    Args:
        message: What is being waited for, such as ``stopping
            hv_kvp_daemon (up to 10 s after SIGTERM)``.
    """
    console = _progress.get()
    if console is None:
        yield
        return
    with console.status(Text(printable(message)), spinner="dots"):
        yield
