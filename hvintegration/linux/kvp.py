"""The KVP pool files of a Linux guest: where they are and how items travel.

The pools are read and written by the fixed KVP script under the daemon's own
fcntl lock (see :mod:`hvintegration.linux.scripts`); this module checks the
caller's items, builds that script's command line and input, and reads its
report.

What a read tells apart: a pool whose file is missing (the daemon never ran
in that directory), a pool this login may not read, and a pool that is
simply empty. Only the last is an empty list; the first two raise.

What a write guarantees: all or nothing. The script edits pool 1 in place
under the daemon's lock and either reports the pool as it is afterwards, or
reports that it failed and whether the pool is byte for byte as before
(:class:`~hvintegration.errors.RemoteCommandError` either way).
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping

from hvintegration.errors import (
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    RemoteCommandError,
)
from hvintegration.linux._shell import sh
from hvintegration.linux.records import KvpItem
from hvintegration.linux.report import decode_pool
from hvintegration.linux.scripts import KVP_PERL, KVP_PYTHON, KVP_SCRIPT
from hvintegration.transport.base import CompletedCommand

__all__ = [
    "KVP_DIRECTORIES",
    "KVP_DIRECTORY",
    "OLD_KVP_DIRECTORY",
    "check_pool",
    "delete_lines",
    "edit_pool",
    "kvp_argv",
    "parse_kvp_read",
    "parse_kvp_write",
    "set_lines",
]

KVP_DIRECTORY = "/var/lib/hyperv"
"""Where hv_kvp_daemon keeps its pool files (``KVP_CONFIG_LOC`` in
``tools/hv/hv_kvp_daemon.c``)."""

OLD_KVP_DIRECTORY = "/var/opt/hyperv"
"""Where the daemon of Linux 3.x kept them (``kvp_file_init`` created
``/var/opt/hyperv/.kvp_pool_%d``), before ``KVP_CONFIG_LOC``."""

KVP_DIRECTORIES = (KVP_DIRECTORY, OLD_KVP_DIRECTORY)
"""Searched in this order: the first that holds any pool file is used."""

# The pool record is a 512-byte key and a 2,048-byte value, NUL-terminated.
KEY_BYTES = 512
RECORD_BYTES = 512 + 2048
KEY_LIMIT = KEY_BYTES - 1
VALUE_LIMIT = RECORD_BYTES - KEY_BYTES - 1

# Exit statuses of a write that failed: the pool is as before, or it is not.
WRITE_FAILED_UNCHANGED = 75
WRITE_FAILED_CHANGED = 76


def check_pool(pool: int) -> int:
    """``pool`` itself when it is a pool number (0-4).

    Raises:
        ValueError: It is not.
    """
    if isinstance(pool, bool) or not isinstance(pool, int) or not 0 <= pool <= 4:
        raise ValueError(f"a KVP pool is a number from 0 to 4, not {pool!r}")
    return pool


def _encode(text: str, limit: int, what: str, *, empty: bool = False) -> bytes:
    if not isinstance(text, str):
        raise TypeError(f"a KVP {what} is a str, not {type(text).__name__}")
    data = text.encode("utf-8")
    if (not data and not empty) or b"\0" in data or len(data) > limit:
        raise ValueError(
            f"a KVP {what} must be {'' if empty else 'non-empty '}UTF-8 of at most "
            f"{limit} bytes without NUL"
        )
    return data


def set_lines(items: Mapping[str, str]) -> list[str]:
    """The write script's input lines that set ``items``.

    Raises:
        ValueError: A key or value is empty (keys only), too long or holds NUL.
        TypeError: A key or value is not a str.
    """
    return [
        f"set\t{_encode(key, KEY_LIMIT, 'key').hex()}\t"
        f"{_encode(value, VALUE_LIMIT, 'value', empty=True).hex()}"
        for key, value in items.items()
    ]


def delete_lines(keys: Iterable[str]) -> list[str]:
    """The write script's input lines that delete ``keys``."""
    return [f"delete\t{_encode(key, KEY_LIMIT, 'key').hex()}\t" for key in keys]


def kvp_argv(
    mode: str, interpreter: str = "", directories: Iterable[str] = KVP_DIRECTORIES
) -> list[str]:
    """The command that reads (``"read"``) or writes (``"write"``) the pools.

    Args:
        mode: ``read`` or ``write``.
        interpreter: ``perl`` to prefer perl over python3; empty for the
            default choice (python3 when the guest has it).
        directories: Where to look for the pool files, in order.
    """
    return sh(KVP_SCRIPT, mode, KVP_PYTHON, KVP_PERL, interpreter, *directories)


def edit_pool(data: bytes, lines: Iterable[str]) -> bytes:
    """Pool 1's bytes after the write script's input ``lines``, as the script computes them.

    The rules, the same in the python3 and perl versions of the script:

    * every record a read shows is kept; a trailing partial record is
      completed with NUL bytes (hv_kvp_daemon itself would skip it and drop
      it the next time it rewrote the pool);
    * hv_kvp_daemon looks a key up in its first record only
      (``kvp_get_value``, ``kvp_key_add_or_modify``, ``kvp_key_delete``),
      but hands the host every record (``kvp_pool_enumerate``); so a set
      rewrites the value of *every* record of the key in place, and a delete
      removes every one, and neither leaves an older value behind for the
      host or a later delete to bring back;
    * a new key is appended; the last line for a key wins.

    Example:
        >>> pool = edit_pool(b"", set_lines({"Role": "web"}))
        >>> [(i.key, i.value) for i in decode_pool(1, pool)]
        [('Role', 'web')]
    """
    updates: dict[bytes, bytes] = {}
    deletes: set[bytes] = set()
    for line in lines:
        op, key_hex, value_hex = line.split("\t")
        key, value = bytes.fromhex(key_hex), bytes.fromhex(value_hex)
        if op == "set":
            updates[key] = value
            deletes.discard(key)
        else:
            deletes.add(key)
            updates.pop(key, None)
    records = [data[at : at + RECORD_BYTES] for at in range(0, len(data), RECORD_BYTES)]
    if records and len(records[-1]) < RECORD_BYTES:
        records[-1] = records[-1].ljust(RECORD_BYTES, b"\0")
    out: list[bytes] = []
    seen: set[bytes] = set()
    for record in records:
        key = record[:KEY_BYTES].split(b"\0", 1)[0]
        if key in deletes:
            continue
        if key in updates:
            seen.add(key)
            record = record[:KEY_BYTES] + updates[key].ljust(RECORD_BYTES - KEY_BYTES, b"\0")
        out.append(record)
    for key, value in updates.items():
        if key not in seen:
            out.append(key.ljust(KEY_BYTES, b"\0") + value.ljust(RECORD_BYTES - KEY_BYTES, b"\0"))
    return b"".join(out)


def _lines(stdout: bytes, *, target: str, operation: str) -> list[list[str]]:
    try:
        text = stdout.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            "the guest's KVP report is not ASCII", target=target, operation=operation
        ) from exc
    return [line.split("\t") for line in text.splitlines()]


def _unhex(field: str) -> str:
    return bytes.fromhex(field).decode("utf-8", "replace")


def parse_kvp_read(
    stdout: bytes, pools: tuple[int, ...], *, target: str, operation: str = "linux_kvp"
) -> list[KvpItem]:
    """The items of ``pools`` in the read script's report.

    Args:
        stdout: The report.
        pools: The pools asked for.
        target: For errors.
        operation: For errors.

    Returns:
        The items, pool by pool in file order; ``[]`` only when every pool
        asked for exists and is empty.

    Raises:
        NotFoundError: A pool asked for has no file, in
            :data:`KVP_DIRECTORY` nor :data:`OLD_KVP_DIRECTORY`: the daemon
            has never run (it creates all five when it starts).
        PermissionDeniedError: This login may not read a pool asked for.
        RemoteCommandError: Reading a pool failed otherwise (an I/O error).
        ProtocolError: The report is malformed.
    """
    directory = ""
    items: list[KvpItem] = []
    missing: list[int] = []
    unreadable: list[tuple[int, int, str]] = []
    seen = set()
    for fields in _lines(stdout, target=target, operation=operation):
        try:
            if fields[0] == "dir":
                directory = _unhex(fields[1])
                continue
            if fields[0] != "pool":
                raise ValueError("expected a pool line")
            pool = int(fields[1])
            seen.add(pool)
            if pool not in pools:
                continue
            if fields[2] == "data":
                items.extend(decode_pool(pool, bytes.fromhex(fields[3])))
            elif fields[2] == "missing":
                missing.append(pool)
            elif fields[2] == "unreadable":
                unreadable.append((pool, int(fields[3]), _unhex(fields[4])))
            else:
                raise ValueError(f"unknown pool state {fields[2]!r}")
        except (ValueError, IndexError) as exc:
            raise ProtocolError(
                f"unreadable line in the guest's KVP report: {chr(9).join(fields)[:80]!r}",
                target=target,
                operation=operation,
            ) from exc
    if seen != set(range(5)) or not directory:
        raise ProtocolError(
            "the guest's KVP report was cut short", target=target, operation=operation
        )
    if unreadable:
        pool, code, reason = unreadable[0]
        names = ", ".join(f"{directory}/.kvp_pool_{p}" for p, _, _ in unreadable)
        message = f"cannot read the KVP pool file {names}: {reason}"
        if code in (errno.EACCES, errno.EPERM):
            raise PermissionDeniedError(
                message + " (log in as root, or as a user allowed to read it)",
                remote_message=reason,
                target=target,
                operation=operation,
            )
        raise RemoteCommandError(
            message, error_id=f"errno:{code}", remote_message=reason, target=target,
            operation=operation,
        )  # fmt: skip
    if missing:
        where = f"{directory}" + (
            f" (nor in {OLD_KVP_DIRECTORY}, where old daemons kept them)"
            if directory == KVP_DIRECTORY
            else ""
        )
        numbers = ", ".join(str(p) for p in missing)
        raise NotFoundError(
            f"no file for KVP pool {numbers} in {where}: hv_kvp_daemon creates all five "
            "when it starts; has it ever run on this guest?",
            name=f"{directory}/.kvp_pool_{missing[0]}",
            target=target,
            operation=operation,
        )
    return items


def parse_kvp_write(done: CompletedCommand, *, target: str, operation: str) -> list[KvpItem]:
    """Pool 1 after a write, from the write script's report.

    Args:
        done: The finished write command.
        target: For errors.
        operation: For errors.

    Returns:
        Pool 1's items as the script read them back under the lock.

    Raises:
        RemoteCommandError: The write failed; the message says whether pool 1
            is byte for byte as before (it is, unless a restore failed too).
        ProtocolError: The report is malformed.
    """
    lines = _lines(done.stdout, target=target, operation=operation)
    failed = next((fields for fields in lines if fields[0] == "failed"), None)
    if failed is not None:
        try:
            state, reason, now = failed[1], _unhex(failed[2]), bytes.fromhex(failed[3])
        except (ValueError, IndexError) as exc:
            raise ProtocolError(
                "unreadable failure in the guest's KVP report", target=target, operation=operation
            ) from exc
        if state == "unchanged":
            outcome = "pool 1 is unchanged"
        elif state == "damaged":
            outcome = (
                f"restoring pool 1 failed too: it now holds {len(now)} bytes "
                f"({len(decode_pool(1, now))} records), not what it held before"
            )
        else:
            outcome = "pool 1 could not be read back: its state is unknown"
        raise RemoteCommandError(
            f"writing KVP pool 1 failed ({reason}); {outcome}",
            error_id=f"exit:{done.exit_status}",
            remote_message=reason,
            target=target,
            operation=operation,
        )
    done.check(target=target, operation=operation)
    try:
        data = next(fields for fields in lines if fields[:3] == ["pool", "1", "data"])
        return decode_pool(1, bytes.fromhex(data[3]))
    except (StopIteration, ValueError, IndexError) as exc:
        raise ProtocolError(
            "the guest's KVP write report has no pool 1", target=target, operation=operation
        ) from exc
