"""Tables of records: plain text for terminals, HTML for notebooks, and JSON.

Each record class lists its columns once (``__columns__``: header and a
function of the record); the CLI table, the notebook table and the record
``_repr_html_`` all render from that list.

Every record also has one JSON form (:class:`JsonRecord`: ``to_dict()`` and
``to_json()``), the same in Python and on the command line: attrs fields by
name; ids, times and enums as text; a catalogue service inside another record
as its catalogue key (``"guest_service_interface"``).
"""

from __future__ import annotations

import datetime
import enum
import html
import importlib
import json
import operator
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, SupportsIndex, TypeVar, overload

import attrs
from rich.cells import cell_len

__all__ = [
    "JsonRecord",
    "RecordList",
    "Tabular",
    "format_table",
    "html_table",
    "json_rows",
    "json_text",
    "plain",
    "printable",
    "record_list",
    "text_table",
    "to_json",
]

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


def _columns(cls: type) -> tuple[Column, ...]:
    # Records without their own columns (systemd units, a caller's attrs
    # class) show every attrs field; anything else one Value column.
    columns: tuple[Column, ...] | None = getattr(cls, "__columns__", None)
    if columns is not None:
        return columns
    if attrs.has(cls):
        return tuple((f.name, operator.attrgetter(f.name)) for f in attrs.fields(cls))
    return (("Value", lambda value: value),)


def _rows(records: Sequence[Tabular]) -> tuple[list[str], list[list[str]]]:
    if not records:
        return [], []
    columns = _columns(type(records[0]))
    headers = [header for header, _ in columns]
    rows = [[_cell(getter(record)) for _, getter in columns] for record in records]
    return headers, rows


# What a terminal must never receive raw from a remote value: C0 controls
# (ESC starts a sequence that can retitle or clear the terminal, BEL rings,
# CR and LF forge lines), DEL, C1 controls (0x9b is an 8-bit CSI), the line
# and paragraph separators, and the bidirectional controls that reorder
# what is shown (Unicode UAX #9, "Explicit Directional Formatting";
# the Trojan Source attack, CVE-2021-42574), and lone surrogates, which a
# CLIXML ``_xD800_`` escape decodes to and no terminal encoding can write.
_CONTROLS = (
    "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
)
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"(?!\n)[{_CONTROLS}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, newlines: bool = False) -> str:
    r"""Text with every control character shown as an escape, safe for a terminal.

    Control characters (C0 and C1, DEL), the Unicode line separators,
    the bidirectional overrides and lone surrogates become ``\x1b``,
    ``\u202e`` or ``\ud800``; everything else, CJK included, is kept.

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


# json.dumps escapes C0 controls but, with ensure_ascii=False, passes DEL,
# C1 controls, line separators, bidi controls and lone surrogates through
# raw; they can only occur inside strings, where \uXXXX is valid JSON.
_JSON_UNSAFE = re.compile(f"(?![\x00-\x1f])[{_CONTROLS}]")


def json_text(value: Any, *, indent: int | None = 2) -> str:
    r"""JSON text with non-ASCII text kept and every control character escaped.

    Valid JSON that no character in it can act on a terminal with, and that
    any UTF-8 stream can carry: DEL, C1 controls, the Unicode line separators,
    bidirectional controls and lone surrogates become ``\uXXXX`` escapes,
    which ``json.loads`` turns back into the same text.

    Args:
        value: Plain data (dicts, lists, strings, numbers).
        indent: Spaces per level; ``None`` for one line.

    Returns:
        The JSON text.

    Example:
        >>> print(json_text({"name": "客體\u202e\x1b\x9b\ud800"}, indent=None))
        {"name": "客體\u202e\u001b\u009b\ud800"}
    """
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


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
        A ``<table>`` element; every cell is HTML-escaped, and control and
        bidirectional characters from remote values (a VM named with
        U+202E, say, which would reorder the row) show as escapes, as in
        :func:`printable`.
    """
    headers, rows = _rows(records)

    def cell(text: str) -> str:
        return html.escape(printable(text, newlines=True))

    head = "".join(f"<th>{cell(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(text)}</td>" for text in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fields(record: Any) -> dict[str, Any]:
    return {f.name: plain(getattr(record, f.name)) for f in attrs.fields(type(record))}


def plain(value: object) -> Any:
    """A value as plain JSON data, the way every record's ``to_dict()`` writes it.

    Rules: ``None``, booleans, numbers and text stay; a :class:`uuid.UUID` is
    its text (lower case); an enum is its value; a date or time is ISO 8601;
    tuples, lists and sets are lists; mappings are objects with text keys; a
    record nested in another is its ``to_dict()`` (its attrs fields when it
    has none), except a catalogue service
    (:class:`~hvintegration.catalogue.ServiceSpec`), which is its key; an
    exception is ``{"type": ..., "message": ...}``.

    Args:
        value: A record, or anything a record holds.

    Returns:
        ``None``, ``bool``, ``int``, ``float``, ``str``, ``list`` or ``dict``.

    Raises:
        TypeError: A value of a kind no record holds.

    Example:
        >>> import uuid
        >>> from hvintegration import catalogue
        >>> plain({"id": uuid.UUID(int=1), "service": catalogue.VSS, "pids": (1, 2)})
        {'id': '00000000-0000-0000-0000-000000000001', 'service': 'vss', 'pids': [1, 2]}
    """
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, BaseException):
        # An error held by a result (a fleet target's): its type and message.
        return {"type": type(value).__name__, "message": str(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    reference = getattr(type(value), "__json_ref__", None)
    if reference is not None:
        return reference(value)
    if attrs.has(type(value)):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if callable(to_dict) else _fields(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((plain(item) for item in value), key=str)
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    raise TypeError(f"no JSON form for {type(value).__name__}")


def _record_dict(record: object) -> dict[str, Any]:
    # A record at the top (a row, or the value asked for) is always written
    # in full: a catalogue entry as all its fields, not as its key.
    to_dict = getattr(record, "to_dict", None)
    if callable(to_dict):
        result: dict[str, Any] = to_dict()
        return result
    if attrs.has(type(record)):
        return _fields(record)
    raise TypeError(f"{type(record).__name__} is not a record")


def json_rows(records: Iterable[object]) -> list[dict[str, Any]]:
    """Records as a list of plain dicts, each its ``to_dict()``.

    What ``--json`` prints for a list of records, and
    :meth:`RecordList.to_dicts`.

    Args:
        records: Records (of one class or several).

    Returns:
        One dict per record, in order.

    Raises:
        TypeError: An item is not a record.

    Example:
        >>> from hvintegration import catalogue
        >>> rows = json_rows([catalogue.VSS])
        >>> rows[0]["component_id"], rows[0]["linux"]["daemons"]
        ('5ced1297-4598-4915-a5fc-ad21bb4d02a4', ['hv_vss_daemon'])
    """
    return [_record_dict(record) for record in records]


def to_json(value: object, *, indent: int | None = 2) -> str:
    """A record, or a list of records, as JSON text.

    Args:
        value: One record, or a sequence of records (a JSON array).
        indent: Spaces per level; ``None`` for one line.

    Returns:
        The JSON text (see :func:`json_text`): non-ASCII characters are kept,
        every control character is escaped.

    Raises:
        TypeError: Something that is not a record.
    """
    data = json_rows(value) if isinstance(value, (tuple, list)) else _record_dict(value)
    return json_text(data, indent=indent)


class JsonRecord:
    """What every record inherits: one JSON form, ``to_dict()`` and ``to_json()``.

    The form is the record's attrs fields by name, converted by
    :func:`plain`, plus the properties a class lists in
    ``__json_properties__``. A class may override :meth:`to_dict`; its
    docstring then says what differs.
    """

    __slots__ = ()

    __json_properties__: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON data (see :func:`plain` for the rules).

        Returns:
            A dict of ``None``, booleans, numbers, text, lists and dicts.
        """
        data = _fields(self)
        for name in type(self).__json_properties__:
            data[name] = plain(getattr(self, name))
        return data

    def to_json(self, *, indent: int | None = 2) -> str:
        """The record as JSON text: :meth:`to_dict`, dumped.

        Args:
            indent: Spaces per level; ``None`` for one line.
        """
        return json_text(self.to_dict(), indent=indent)

    def _repr_html_(self) -> str:
        # A notebook shows every record as a one-row table of its columns
        # (its attrs fields when it lists none); a record with a richer
        # display overrides this.
        return html_table([self])  # type: ignore[list-item]


_T = TypeVar("_T")


class RecordList(tuple[_T, ...]):
    """A tuple of records that renders as one table in a notebook.

    It is a plain tuple in every other respect: it compares equal to a tuple
    of the same records and iterates; a slice is a RecordList again, so it
    still shows as a table.

    Example:
        >>> from hvintegration import RecordList
        >>> RecordList([1, 2]) == (1, 2)
        True
        >>> type(RecordList([1, 2, 3])[:2]).__name__
        'RecordList'
    """

    __slots__ = ()

    @overload
    def __getitem__(self, index: SupportsIndex) -> _T: ...

    @overload
    def __getitem__(self, index: slice) -> RecordList[_T]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> _T | RecordList[_T]:
        if isinstance(index, slice):
            return RecordList(super().__getitem__(index))
        return super().__getitem__(index)

    def __add__(self, other: tuple[Any, ...]) -> RecordList[Any]:
        """Two lists joined, still a RecordList (a table in a notebook)."""
        if not isinstance(other, tuple):
            return NotImplemented
        return RecordList((*self, *other))

    def __radd__(self, other: tuple[Any, ...]) -> RecordList[Any]:
        """A tuple joined with a RecordList, a RecordList too."""
        if not isinstance(other, tuple):
            return NotImplemented
        return RecordList((*other, *self))

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every record as plain JSON data (see :func:`json_rows`).

        Raises:
            TypeError: An item is not a record.
        """
        return json_rows(self)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The records as a JSON array (see :func:`to_json`).

        Args:
            indent: Spaces per level; ``None`` for one line.
        """
        return json_text(self.to_dicts(), indent=indent)

    def to_dataframe(self) -> Any:
        """The records as a :class:`pandas.DataFrame`, one row per record.

        The columns are the keys of :meth:`to_dicts` in field order; ids and
        times are text, nested records dicts, tuples lists.

        Returns:
            A ``pandas.DataFrame`` (typed ``Any`` so that the library does
            not need pandas to type-check).

        Raises:
            ModuleNotFoundError: pandas is not installed; the message names
                the extra that installs it (``hvintegration[pandas]``).

        Example:
            >>> import uuid
            >>> from hvintegration.records import VMSummary
            >>> vms = RecordList([VMSummary("demovm", uuid.UUID(int=1), "Off", 2, "", "HV01")])
            >>> vms.to_dataframe()[["name", "state"]].values.tolist()
            [['demovm', 'Off']]
        """
        try:
            pandas = importlib.import_module("pandas")
        except ImportError as exc:
            raise ModuleNotFoundError(
                "RecordList.to_dataframe() needs pandas, which is not installed: "
                "pip install 'hvintegration[pandas]'",
                name="pandas",
            ) from exc
        return pandas.DataFrame(self.to_dicts())

    def _repr_html_(self) -> str:
        if not self:
            # What the command line prints for an empty table.
            return "<p>(no rows)</p>"
        # One table per kind of item, in order of first appearance: a list
        # built by hand may mix records (services and VM summaries, say),
        # whose columns differ.
        groups: dict[type, list[Any]] = {}
        for item in self:
            groups.setdefault(type(item), []).append(item)
        if len(groups) == 1:
            return html_table(self)  # type: ignore[arg-type]
        return "".join(
            f"<p>{html.escape(kind.__name__)} ({len(items)})</p>{html_table(items)}"
            for kind, items in groups.items()
        )

    def __repr__(self) -> str:
        if not self:
            return "RecordList([])"
        inner = ",\n ".join(repr(item) for item in self)
        return f"RecordList([\n {inner}\n])"


def record_list(items: Iterable[Any]) -> RecordList[Any]:
    """The converter of record fields that hold several records.

    A field declared ``attrs.field(converter=record_list)`` keeps its tuple
    type and equality, and shows as a table in a notebook.
    """
    return RecordList(items)
