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
import importlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import attrs

from hvintegration.simulator.faults import Fault, FaultKind, SimulatedPeer
from hvintegration.simulator.guest_state import GuestFiles, SimulatedService, WindowsGuestState
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.simulator.linux_model import SimulatedProcess
from hvintegration.simulator.model import SimulatedHost, SimulatedVM
from hvintegration.simulator.profiles import GUEST_OSES, HOST_OSES
from hvintegration.transport.base import ErrorRecord

__all__ = [
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
    for item in data.get("faults", []):
        record = item.get("record")
        peer.faults.append(
            Fault(
                FaultKind(item["kind"]),
                operation=item.get("operation"),
                record=None if record is None else ErrorRecord(**record),
                times=int(item.get("times", 1)),
            )
        )


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
    if not isinstance(data, dict) or data.get("format") != _FORMAT or "kind" in data:
        raise ValueError("not a simulated host state (unknown format)")
    try:
        host = SimulatedHost(data["name"], os=HOST_OSES[data["os"]], locale=data["locale"], vms=[])
        host.powercli = bool(data.get("powercli", False))
        session = data.get("session", {})
        host.rights = str(session.get("rights", "administrator"))
        host.hyperv_module = bool(session.get("hyperv_module", True))
        host.language_mode = str(session.get("language_mode", "FullLanguage"))
        host.edition = str(session.get("edition", "Desktop"))
        _peer_from_json(host, data)
        for item in data["vms"]:
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
            host.vms.append(vm)
        host.files = {
            path: base64.b64decode(blob) for path, blob in data.get("host_files", {}).items()
        }
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed simulated host state: {exc!r}") from exc
    return host


def _write_json(data: dict[str, Any], path: str | os.PathLike[str]) -> None:
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1), "utf-8")
    temporary.replace(target)


def _read_json(path: str | os.PathLike[str]) -> Any:
    text = Path(path).read_text("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc


def save_host(host: SimulatedHost, path: str | os.PathLike[str]) -> None:
    """Write a host to a state file, replacing it atomically.

    Args:
        host: The host.
        path: The file.
    """
    _write_json(host_to_json(host), path)


def load_host(path: str | os.PathLike[str]) -> SimulatedHost:
    """Read a host from a state file.

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: The file holds no valid host state.
    """
    return host_from_json(_read_json(path))


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
        "fail_start": sorted(guest.fail_start),
        "ignore_term": sorted(guest.ignore_term),
    }


def guest_from_json(data: dict[str, Any]) -> SimulatedLinuxGuest:
    """Rebuild a simulated Linux guest from :func:`guest_to_json` output.

    Raises:
        ValueError: The data is not a simulated Linux guest of a known format.
    """
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ValueError("not a simulated Linux guest state (unknown format)")
    if data.get("kind") != _LINUX_KIND:
        raise ValueError("not a simulated Linux guest state (unknown format)")
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
        guest.fail_start = set(data["fail_start"])
        guest.ignore_term = set(data["ignore_term"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed simulated Linux guest state: {exc!r}") from exc
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
    return guest_from_json(_read_json(path))


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
