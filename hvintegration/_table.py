"""Tables of records: plain text for terminals, HTML for notebooks.

Each record class lists its columns once (``__columns__``: header and a
function of the record); the CLI table, the notebook table and the record
``_repr_html_`` all render from that list.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from rich.cells import cell_len

__all__ = ["RecordList", "Tabular", "format_table", "html_table", "printable", "text_table"]

Column = tuple[str, Callable[[Any], object]]


class Tabular(Protocol):
    """A record that knows its table columns."""

    __columns__: ClassVar[tuple[Column, ...]]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (tuple, list)):
        return ", ".join(_cell(item) for item in value)
    return str(value)


def _rows(records: Sequence[Tabular]) -> tuple[list[str], list[list[str]]]:
    if not records:
        return [], []
    columns = type(records[0]).__columns__
    headers = [header for header, _ in columns]
    rows = [[_cell(getter(record)) for _, getter in columns] for record in records]
    return headers, rows


# What a terminal must never receive raw from a remote value: C0 controls
# (ESC starts a sequence that can retitle or clear the terminal, BEL rings,
# CR and LF forge lines), DEL, C1 controls (0x9b is an 8-bit CSI), the line
# and paragraph separators, and the bidirectional controls that reorder
# what is shown (Unicode UAX #9, "Explicit Directional Formatting";
# the Trojan Source attack, CVE-2021-42574).
_CONTROLS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"(?!\n)[{_CONTROLS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    r"""Text with every control character shown as an escape, safe for a terminal.

    Control characters (C0 and C1, DEL), the Unicode line separators and
    the bidirectional overrides become ``\x1b`` or ``\u202e``; everything
    else, CJK included, is kept.

    Args:
        text: Text that may come from a remote side.
        newlines: Keep ``\n`` as a line break (for text of several lines);
            by default it is escaped too, so the result is one line.

    Returns:
        The text, safe to print.

    Example:
        >>> printable("demo\x1b]0;owned\x07vm")
        'demo\\x1b]0;owned\\x07vm'
        >>> print(printable("a\nb\u202ec"))
        a\x0ab\u202ec
    """
    pattern = _UNSAFE_BUT_NEWLINE if newlines else _UNSAFE
    return pattern.sub(_escape, text)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Lay out cells as PowerShell's ``Format-Table`` does, by display width.

    Columns are as wide as their widest cell on a terminal (a CJK character
    takes two cells, a combining mark none), separated by one space, with a
    dashed rule under the headers and no trailing spaces. Every cell passes
    through :func:`printable`.

    Args:
        headers: Column headers.
        rows: Cells, one sequence per row, as many as there are headers.

    Returns:
        The table, header and dashed rule first.

    Example:
        >>> print(format_table(["Name", "Enabled"], [["客體服務介面", "True"], ["VSS", "False"]]))
        Name         Enabled
        ------------ -------
        客體服務介面 True
        VSS          False
    """
    head = [printable(header) for header in headers]
    body = [[printable(cell) for cell in row] for row in rows]
    widths = [cell_len(header) for header in head]
    for row in body:
        widths = [max(w, cell_len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Iterable[str]) -> str:
        padded = (cell + " " * (w - cell_len(cell)) for cell, w in zip(cells, widths, strict=True))
        return " ".join(padded).rstrip()

    out = [line(head), line("-" * w for w in widths)]
    out.extend(line(row) for row in body)
    return "\n".join(out)


def text_table(records: Sequence[Tabular]) -> str:
    """Render records as an aligned text table, PowerShell's ``Format-Table`` style.

    Columns align by display width, so Chinese and Japanese names line up,
    and control characters from remote values are escaped (see
    :func:`format_table`).

    Args:
        records: Records of one class.

    Returns:
        The table, header and dashed rule first; empty text for no records.
    """
    headers, rows = _rows(records)
    if not headers:
        return ""
    return format_table(headers, rows)


def html_table(records: Sequence[Tabular]) -> str:
    """Render records as one HTML table for Jupyter.

    Args:
        records: Records of one class.

    Returns:
        A ``<table>`` element; every cell is HTML-escaped.
    """
    headers, rows = _rows(records)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_T = TypeVar("_T")


class RecordList(tuple[_T, ...]):
    """A tuple of records that renders as one table in a notebook.

    It is a plain tuple in every other respect: it compares equal to a tuple
    of the same records, slices, and iterates.

    Example:
        >>> from hvintegration import RecordList
        >>> RecordList([1, 2]) == (1, 2)
        True
    """

    __slots__ = ()

    def _repr_html_(self) -> str:
        if not self:
            return "<p>(no records)</p>"
        return html_table(self)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        if not self:
            return "RecordList([])"
        inner = ",\n ".join(repr(item) for item in self)
        return f"RecordList([\n {inner}\n])"
