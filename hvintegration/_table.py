"""Tables of records: plain text for terminals, HTML for notebooks.

Each record class lists its columns once (``__columns__``: header and a
function of the record); the CLI table, the notebook table and the record
``_repr_html_`` all render from that list.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

__all__ = ["RecordList", "Tabular", "html_table", "text_table"]

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


def text_table(records: Sequence[Tabular]) -> str:
    """Render records as an aligned text table, PowerShell's ``Format-Table`` style.

    Args:
        records: Records of one class.

    Returns:
        The table, header and dashed rule first; empty text for no records.
    """
    headers, rows = _rows(records)
    if not headers:
        return ""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Iterable[str]) -> str:
        return " ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers), line("-" * w for w in widths)]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


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
