"""Save a simulated host or Linux guest to a JSON file and load it back.

A state file lets a simulated host outlive one process: the stand-in
PowerShell and the PSRP test server run as child processes and keep their
host in a file, and ``sim://?state=PATH`` keeps a lab across CLI runs, as
``sim-linux://?state=PATH`` keeps a Linux guest. Changes go through
:func:`edit_state` (or :func:`edit_guest_state`), which holds an exclusive
lock on the file for the whole read-modify-write (``fcntl.flock`` on POSIX,
``msvcrt.locking`` on Windows), so concurrent processes never lose each
other's changes.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import importlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import attrs

from hvintegration.simulator.faults import Fault, FaultKind, SimulatedPeer
from hvintegration.simulator.guest_state import GuestFiles, SimulatedService, WindowsGuestState
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.simulator.linux_model import SimulatedProcess
from hvintegration.simulator.model import SimulatedHost, SimulatedVM
from hvintegration.simulator.profiles import GUEST_OSES, HOST_OSES
from hvintegration.transport.base import ErrorRecord

__all__ = [
    "append_call",
    "edit_guest_state",
    "edit_state",
    "guest_from_json",
    "guest_to_json",
    "host_from_json",
    "host_to_json",
    "load_guest",
    "load_host",
    "save_guest",
    "save_host",
]

_FORMAT = 1
_Peer = TypeVar("_Peer", bound=SimulatedPeer)
_LINUX_KIND = "linux-guest"


def _record_to_json(record: ErrorRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "message": record.message,
        "error_id": record.error_id,
        "category": record.category,
        "exception_type": record.exception_type,
        "target_object": record.target_object,
        "details": record.details,
    }


def _peer_to_json(peer: SimulatedPeer) -> dict[str, Any]:
    return {
        "latency": peer.latency,
        "round_trips": peer.round_trips,
        "calls": list(peer.calls),
        "faults": [
            {
                "kind": fault.kind.value,
                "operation": fault.operation,
                "record": _record_to_json(fault.record),
                "times": fault.times,
            }
            for fault in peer.faults
        ],
    }


def _peer_from_json(peer: SimulatedPeer, data: dict[str, Any]) -> None:
    peer.latency = float(data.get("latency", 0.0))
    peer.round_trips = int(data.get("round_trips", 0))
    peer.calls = [str(c) for c in data.get("calls", [])]
    faults = data.get("faults", [])
    if not isinstance(faults, list):
        raise TypeError(f"faults is not a list: {faults!r}")
    for number, item in enumerate(faults, 1):
        if not isinstance(item, dict):
            raise TypeError(f"fault {number} is not an object: {item!r}")
        record = item.get("record")
        peer.faults.append(
            Fault(
                FaultKind(item["kind"]),
                operation=item.get("operation"),
                record=None if record is None else ErrorRecord(**record),
                times=int(item.get("times", 1)),
            )
        )


# What a malformed state makes the reading code raise: a missing key, a
# value of the wrong type or form (a fault that is a number, bad base64).
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)


def _malformed(what: str, exc: Exception) -> ValueError:
    reason = f"missing {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
    return ValueError(f"malformed {what} state: {reason or type(exc).__name__}")


def _windows_to_json(state: WindowsGuestState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "computer_name": state.computer_name,
        "services": {
            name: [svc.status, svc.start_type, svc.stuck] for name, svc in state.services.items()
        },
        "credentials": dict(state.credentials),
        "administrators": sorted(state.administrators),
        "booting": state.booting,
    }


def _windows_from_json(data: dict[str, Any] | None) -> WindowsGuestState | None:
    if data is None:
        return None
    return WindowsGuestState(
        computer_name=data["computer_name"],
        services={
            name: SimulatedService(status, start_type, bool(stuck))
            for name, (status, start_type, stuck) in data["services"].items()
        },
        credentials=dict(data["credentials"]),
        administrators=set(data["administrators"]),
        booting=bool(data.get("booting", False)),
    )


def _files_to_json(files: GuestFiles | None) -> dict[str, Any] | None:
    if files is None:
        return None
    return {
        "windows": files.windows,
        "directories": sorted(files.directories),
        "files": {path: base64.b64encode(data).decode() for path, data in files.files.items()},
    }


def _files_from_json(data: dict[str, Any] | None, windows: bool) -> GuestFiles:
    if data is None:
        return GuestFiles(windows=windows)
    return GuestFiles(
        windows=bool(data["windows"]),
        directories=set(data["directories"]),
        files={path: base64.b64decode(blob) for path, blob in data["files"].items()},
    )


_KINDS = {None: "a simulated host", _LINUX_KIND: "a simulated Linux guest"}


def _check_kind(data: Any, kind: str | None) -> None:
    """Refuse data that is no state of this kind, saying what it is instead."""
    wanted = _KINDS[kind]
    if not isinstance(data, dict):
        raise ValueError(f"holds a JSON {type(data).__name__}, not {wanted} state")
    if data.get("format") != _FORMAT:
        raise ValueError(f"not {wanted} state (unknown format {data.get('format')!r})")
    found = data.get("kind")
    if found != kind:
        holds = _KINDS.get(found, f"state of kind {found!r}")
        raise ValueError(f"holds {holds}, not {wanted}")


def host_to_json(host: SimulatedHost) -> dict[str, Any]:
    """A simulated host as a JSON object (VMs, faults and counters).

    Args:
        host: The host.

    Returns:
        A JSON-compatible dict that :func:`host_from_json` reads back.
    """
    return {
        "format": _FORMAT,
        **_peer_to_json(host),
        "name": host.name,
        "os": host.os.key,
        "locale": host.locale,
        "vms": [
            {
                "name": vm.name,
                "id": str(vm.id),
                "guest": vm.guest.key,
                "state": vm.state,
                "generation": vm.generation,
                "enabled": {str(k): v for k, v in vm.enabled.items()},
                "windows": _windows_to_json(vm.windows),
                "files": _files_to_json(vm.files),
                "kvp_host": dict(vm.kvp_host),
                "kvp_guest": dict(vm.kvp_guest),
                "ipv4": list(vm.ipv4),
            }
            for vm in host.vms
        ],
        "host_files": {path: base64.b64encode(data).decode() for path, data in host.files.items()},
        "powercli": host.powercli,
        "session": {
            "rights": host.rights,
            "hyperv_module": host.hyperv_module,
            "language_mode": host.language_mode,
            "edition": host.edition,
        },
    }


def host_from_json(data: dict[str, Any]) -> SimulatedHost:
    """Rebuild a simulated host from :func:`host_to_json` output.

    Raises:
        ValueError: The data is not a simulated host of a known format.
    """
    _check_kind(data, None)
    try:
        if data["os"] not in HOST_OSES:
            raise ValueError(f"unknown host OS {data['os']!r}")
        host = SimulatedHost(data["name"], os=HOST_OSES[data["os"]], locale=data["locale"], vms=[])
        host.powercli = bool(data.get("powercli", False))
        session = data.get("session", {})
        host.rights = str(session.get("rights", "administrator"))
        host.hyperv_module = bool(session.get("hyperv_module", True))
        host.language_mode = str(session.get("language_mode", "FullLanguage"))
        host.edition = str(session.get("edition", "Desktop"))
        _peer_from_json(host, data)
        for item in data["vms"]:
            if item["guest"] not in GUEST_OSES:
                raise ValueError(f"unknown guest OS {item['guest']!r}")
            vm = SimulatedVM(
                item["name"],
                guest=GUEST_OSES[item["guest"]],
                state=item["state"],
                generation=int(item["generation"]),
            )
            vm.id = uuid.UUID(item["id"])
            vm.enabled = {uuid.UUID(k): bool(v) for k, v in item["enabled"].items()}
            vm.windows = _windows_from_json(item.get("windows"))
            vm.files = _files_from_json(item.get("files"), vm.guest.family == "windows")
            vm.kvp_host = {str(k): str(v) for k, v in item.get("kvp_host", {}).items()}
            vm.kvp_guest = {str(k): str(v) for k, v in item.get("kvp_guest", {}).items()}
            vm.ipv4 = tuple(str(address) for address in item.get("ipv4", ())) or (
                f"192.0.2.{10 + len(host.vms) % 240}",
            )
            host.vms.append(vm)
        host.files = {
            path: base64.b64decode(blob) for path, blob in data.get("host_files", {}).items()
        }
    except _MALFORMED as exc:
        raise _malformed("simulated host", exc) from exc
    return host


def _write_json(data: dict[str, Any], path: str | os.PathLike[str]) -> None:
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1), "utf-8")
    temporary.replace(target)


def _read_json(path: str | os.PathLike[str]) -> Any:
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{os.fspath(path)}: not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{os.fspath(path)}: not JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValueError(f"{os.fspath(path)}: JSON nested too deeply") from exc


def _load(path: str | os.PathLike[str], read: Callable[[Any], _Peer]) -> _Peer:
    data = _read_json(path)
    try:
        return read(data)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: {exc}") from exc


def save_host(host: SimulatedHost, path: str | os.PathLike[str]) -> None:
    """Write a host to a state file, replacing it atomically.

    Args:
        host: The host.
        path: The file.
    """
    _write_json(host_to_json(host), path)


def load_host(path: str | os.PathLike[str]) -> SimulatedHost:
    """Read a host from a state file, with the calls :func:`append_call` counted.

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: The file holds no valid host state.
    """
    host = _load(path, host_from_json)
    with contextlib.suppress(FileNotFoundError):
        for line in _journal(path).read_text("utf-8").splitlines():
            if line:
                host.record_call(line)
    return host


def _journal(path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    return target.with_name(f".{target.name}.calls")


def append_call(path: str | os.PathLike[str], operation: str) -> None:
    """Count one call of a read-only operation without rewriting the state file.

    A peer that answers a read from a host it loaded before (the stand-in
    PowerShell) appends the call to a journal beside the state file instead
    of writing the whole host again: the cost stays the same for 1 VM or
    2,000. :func:`load_host` counts the journal's calls in, and the next
    :func:`edit_state` writes them into the file and empties the journal.

    Args:
        path: The host's state file.
        operation: The operation name (one line, no line end).

    Raises:
        ValueError: The name holds a line end.
    """
    if "\n" in operation or "\r" in operation:
        raise ValueError(f"an operation name holds a line end: {operation!r}")
    with _locked(path) as target, open(_journal(target), "a", encoding="utf-8") as journal:
        journal.write(operation + "\n")


_LOCK_RETRY = 0.01


def _lock(handle: IO[bytes]) -> None:
    try:
        fcntl: Any = importlib.import_module("fcntl")
    except ImportError:
        _lock_windows(handle)
    else:
        fcntl.flock(handle, fcntl.LOCK_EX)


def _unlock(handle: IO[bytes]) -> None:
    try:
        fcntl: Any = importlib.import_module("fcntl")
    except ImportError:
        msvcrt: Any = importlib.import_module("msvcrt")
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_windows(handle: IO[bytes]) -> None:
    # Windows has no fcntl. msvcrt.locking locks bytes from the file's
    # position (https://docs.python.org/3/library/msvcrt.html#msvcrt.locking);
    # every process locks the first byte of the lock file, which may lie
    # past its end. LK_LOCK gives up after ten one-second tries, so the
    # non-blocking form is retried here for as long as another process holds
    # the lock, as flock(LOCK_EX) waits.
    msvcrt: Any = importlib.import_module("msvcrt")
    while True:
        handle.seek(0)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            time.sleep(_LOCK_RETRY)
        else:
            return


@contextlib.contextmanager
def _locked(path: str | os.PathLike[str]) -> Iterator[Path]:
    target = Path(path)
    if target.is_dir():
        # Refused before the lock file is made beside it, in its parent.
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a state file", str(target))
    lock_path = target.with_name(f".{target.name}.lock")
    with open(lock_path, "a+b") as lock:
        _lock(lock)
        try:
            yield target
        finally:
            _unlock(lock)


@contextlib.contextmanager
def edit_state(
    path: str | os.PathLike[str], *, create: SimulatedHost | None = None
) -> Iterator[SimulatedHost]:
    """Load, change and save a host's state file under an exclusive lock.

    Args:
        path: The state file.
        create: The host to start from when the file does not exist yet.

    Yields:
        The host; whatever the block changes is saved when it exits
        normally, and discarded when it raises.

    Raises:
        FileNotFoundError: No file and nothing to create it from.
        ValueError: The file holds no valid host state.

    Example:
        >>> import tempfile, os
        >>> from hvintegration.simulator import SimulatedHost
        >>> path = os.path.join(tempfile.mkdtemp(), "lab.json")
        >>> with edit_state(path, create=SimulatedHost()) as host:
        ...     _ = host.add_vm("web01")
        >>> [vm.name for vm in load_host(path).vms]
        ['demovm', 'web01']
    """
    with _locked(path) as target:
        if target.exists():
            host = load_host(target)
        elif create is not None:
            host = create
        else:
            raise FileNotFoundError(f"no simulated host state at {target}")
        yield host
        save_host(host, target)
        # The calls the journal held are in the file now.
        with contextlib.suppress(FileNotFoundError):
            _journal(target).unlink()


def guest_to_json(guest: SimulatedLinuxGuest) -> dict[str, Any]:
    """A simulated Linux guest as a JSON object (processes, pools, faults, counters).

    Args:
        guest: The guest.

    Returns:
        A JSON-compatible dict that :func:`guest_from_json` reads back.
    """
    return {
        "format": _FORMAT,
        "kind": _LINUX_KIND,
        **_peer_to_json(guest),
        "name": guest.name,
        "distro": guest.distro.key,
        "user": guest.user,
        "sudo": guest.sudo,
        "driver": guest.driver,
        "boot_time": guest.boot_time,
        "ticks": guest.ticks,
        "next_pid": guest.next_pid,
        "processes": [attrs.asdict(p) for p in guest.processes],
        "pools": {str(n): data.hex() for n, data in guest.pools.items()},
        "kvp_directory": guest.kvp_directory,
        "unreadable_pools": sorted(guest.unreadable_pools),
        "kvp_free_bytes": guest.kvp_free_bytes,
        "fail_start": sorted(guest.fail_start),
        "ignore_term": sorted(guest.ignore_term),
    }


def guest_from_json(data: dict[str, Any]) -> SimulatedLinuxGuest:
    """Rebuild a simulated Linux guest from :func:`guest_to_json` output.

    Raises:
        ValueError: The data is not a simulated Linux guest of a known format.
    """
    _check_kind(data, _LINUX_KIND)
    try:
        guest = SimulatedLinuxGuest(
            data["name"], distro=data["distro"], user=data["user"], sudo=bool(data["sudo"])
        )
        _peer_from_json(guest, data)
        guest.driver = str(data["driver"])
        guest.boot_time = int(data["boot_time"])
        guest.ticks = int(data["ticks"])
        guest.next_pid = int(data["next_pid"])
        guest.processes = [
            SimulatedProcess(**{**item, "args": tuple(item["args"])}) for item in data["processes"]
        ]
        guest.pools = {int(n): bytes.fromhex(blob) for n, blob in data["pools"].items()}
        # Files written before these settings existed have the defaults.
        guest.kvp_directory = str(data.get("kvp_directory", guest.kvp_directory))
        guest.unreadable_pools = {int(n) for n in data.get("unreadable_pools", [])}
        free = data.get("kvp_free_bytes")
        guest.kvp_free_bytes = None if free is None else int(free)
        guest.fail_start = set(data["fail_start"])
        guest.ignore_term = set(data["ignore_term"])
    except _MALFORMED as exc:
        raise _malformed("simulated Linux guest", exc) from exc
    return guest


def save_guest(guest: SimulatedLinuxGuest, path: str | os.PathLike[str]) -> None:
    """Write a Linux guest to a state file, replacing it atomically."""
    _write_json(guest_to_json(guest), path)


def load_guest(path: str | os.PathLike[str]) -> SimulatedLinuxGuest:
    """Read a Linux guest from a state file.

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: The file holds no valid Linux guest state.
    """
    return _load(path, guest_from_json)


@contextlib.contextmanager
def edit_guest_state(
    path: str | os.PathLike[str], *, create: SimulatedLinuxGuest | None = None
) -> Iterator[SimulatedLinuxGuest]:
    """Load, change and save a Linux guest's state file under an exclusive lock.

    Args:
        path: The state file.
        create: The guest to start from when the file does not exist yet.

    Yields:
        The guest; changes are saved when the block exits normally.

    Raises:
        FileNotFoundError: No file and nothing to create it from.
        ValueError: The file holds no valid Linux guest state.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "guest.json")
        >>> with edit_guest_state(path, create=SimulatedLinuxGuest()) as guest:
        ...     guest.fail_start.add("kvp")
        >>> load_guest(path).fail_start
        {'kvp'}
    """
    with _locked(path) as target:
        if target.exists():
            guest = load_guest(target)
        elif create is not None:
            guest = create
        else:
            raise FileNotFoundError(f"no simulated Linux guest state at {target}")
        yield guest
        save_guest(guest, target)
