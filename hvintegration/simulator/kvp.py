"""Key-Value Pair Exchange on a simulated host: what each VM's guest reports,
what it published and what the host sends it.

The handlers follow the contract of ``get_kvp_items.ps1``,
``set_kvp_items.ps1`` and ``get_host_version.ps1``: the same parameters, the
same output objects, the same error ids. The Hyper-V behaviour they copy:

* Intrinsic items come from the guest's integration components while it
  runs and answers on KVP; a VM that is off, or a guest whose KVP side is not
  running (a Linux guest without ``hv_kvp_daemon``), has none
  (``GuestIntrinsicExchangeItems``,
  https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangecomponent).
  A Linux guest reports what ``hv_kvp_daemon`` answers: ``OSName`` is
  ``NAME`` from ``/etc/os-release``, ``OSMajorVersion`` its ``VERSION_ID``,
  ``OSVersion`` the kernel release up to its first ``-``, ``OSBuildNumber``
  the whole release and ``IntegrationServicesVersion`` the fixed text
  ``Unknown version`` (``kvp_get_os_info`` and ``lic_version`` in the
  kernel's ``tools/hv/hv_kvp_daemon.c``).
* Host items (``HostExchangeItems``) belong to the VM's settings and stay
  while it is off. ``AddKvpItems`` fails for an item that exists,
  ``ModifyKvpItems`` and ``RemoveKvpItems`` for one that does not
  (https://learn.microsoft.com/windows/win32/hyperv_v2/addkvpitems-msvm-virtualsystemmanagementservice);
  the script never sends those, so here they cannot happen.
* In a linked Linux guest (:meth:`~hvintegration.simulator.SimulatedHost.link_linux`)
  host items are what ``hv_kvp_daemon`` writes to pool 0
  (``KVP_POOL_EXTERNAL``) and the guest's items are pool 1
  (``KVP_POOL_GUEST``), as ``include/uapi/linux/hyperv.h`` numbers the pools.
  :meth:`~hvintegration.simulator.SimulatedHost.link_kvp_directory` does the
  same with a real guest's pool files.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from hvintegration import catalogue
from hvintegration.simulator.behaviour import (
    JsonObject,
    SimulatedScriptError,
    _ref_text,
    _resolve,
    _selected_vms,
)
from hvintegration.simulator.linux_model import POOL_KEY_BYTES, POOL_RECORD_BYTES, pool_records
from hvintegration.simulator.world import HostModel, SimulatedVM
from hvintegration.transport.base import ErrorRecord, JsonValue, OperationResult

__all__ = ["KVP_HANDLERS", "guest_items", "intrinsic_items"]


def _component_id(spec: catalogue.ServiceSpec) -> uuid.UUID:
    assert spec.component_id is not None  # every host service has one
    return spec.component_id


_KVP = _component_id(catalogue.KEY_VALUE_PAIR_EXCHANGE)
# What Msvm_ConcreteJob.ErrorDescription says for a failed KVP job here.
_JOB_FAILED = "The operation failed."


def _pairs(items: Mapping[str, str]) -> list[JsonValue]:
    return [{"Name": key, "Data": value} for key, value in items.items()]


def _decode_pool(data: bytes) -> dict[str, str]:
    # The daemon's records: a NUL-padded key, then a NUL-padded value.
    found: dict[str, str] = {}
    for at in range(0, len(data) - POOL_RECORD_BYTES + 1, POOL_RECORD_BYTES):
        record = data[at : at + POOL_RECORD_BYTES]
        key = record[:POOL_KEY_BYTES].split(b"\0", 1)[0].decode("utf-8", "replace")
        value = record[POOL_KEY_BYTES:].split(b"\0", 1)[0].decode("utf-8", "replace")
        if key:
            found.setdefault(key, value)
    return found


def _pool_path(vm: SimulatedVM, pool: int) -> str | None:
    # A real guest's pool file, once its daemon has created it.
    if vm.kvp_directory is None:
        return None
    path = os.path.join(vm.kvp_directory, f".kvp_pool_{pool}")
    return path if os.path.exists(path) else None


def _read_pool_file(path: str) -> bytes:
    import fcntl  # POSIX only, as the guest whose files these are

    with open(path, "rb") as handle:
        # hv_kvp_daemon locks a pool with fcntl(F_SETLKW) on the whole file
        # (kvp_acquire_lock); lockf takes the same kind of lock.
        fcntl.lockf(handle, fcntl.LOCK_SH)
        try:
            return handle.read()
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def _write_pool_file(path: str, data: bytes) -> None:
    import fcntl

    # In place, not by rename: the daemon keeps the file open and locks it.
    with open(path, "r+b") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            handle.seek(0)
            handle.write(data)
            handle.truncate()
            handle.flush()
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


def _answers_kvp(vm: SimulatedVM) -> bool:
    return vm.state == "Running" and vm.enabled.get(_KVP, False) and vm.runs(_KVP)


def intrinsic_items(vm: SimulatedVM) -> dict[str, str]:
    """``GuestIntrinsicExchangeItems`` of a simulated VM, as its guest reports them.

    Args:
        vm: The VM.

    Returns:
        Key to value; empty while the VM is off, KVP is disabled on the
        host, or nothing in the guest answers on KVP.
    """
    if not _answers_kvp(vm):
        return {}
    addresses = "".join(f"{address};" for address in vm.ipv4)
    if vm.linux is not None:
        distro = vm.linux.distro
        release = distro.kernel
        # os-release NAME: the distribution's name without its version.
        name = distro.name.split(" with ", 1)[0]
        words = name.split()
        version = words[-1] if len(words) > 1 and words[-1][0].isdigit() else ""
        return {
            "FullyQualifiedDomainName": vm.linux.name,
            "IntegrationServicesVersion": "Unknown version",
            "NetworkAddressIPv4": addresses,
            "NetworkAddressIPv6": "",
            "OSBuildNumber": release,
            "OSName": " ".join(words[:-1]) if version else name,
            "OSMajorVersion": version,
            "OSMinorVersion": "",
            "OSVersion": release.split("-", 1)[0],
            "ProcessorArchitecture": "x86_64",
        }
    items = dict(vm.guest.intrinsic)
    items.setdefault("FullyQualifiedDomainName", vm.name)
    items["NetworkAddressIPv4"] = addresses
    if vm.guest.integration_services_version:
        items["IntegrationServicesVersion"] = vm.guest.integration_services_version
    return items


def guest_items(vm: SimulatedVM) -> dict[str, str]:
    """``GuestExchangeItems``: what programs in the guest published.

    A linked Linux guest's pool 1; else the VM's own :attr:`kvp_guest`.
    Empty while the guest does not answer on KVP.
    """
    if not _answers_kvp(vm):
        return {}
    if vm.linux is not None:
        return _decode_pool(vm.linux.pools.get(1, b""))
    path = _pool_path(vm, 1)
    if path is not None:
        return _decode_pool(_read_pool_file(path))
    return dict(vm.kvp_guest)


def _deliver_host_items(vm: SimulatedVM) -> None:
    # hv_kvp_daemon writes what the host sends to pool 0 while it runs. A
    # linked guest whose daemon is down keeps the host's message waiting in
    # the VMBus channel and gets the items when the daemon starts again
    # (LinuxGuestModel.pending_host_items, after drivers/hv/hv_kvp.c).
    if vm.linux is not None:
        if _answers_kvp(vm):
            vm.linux.pools[0] = pool_records(*vm.kvp_host.items())
            vm.linux.pending_host_items = None
        elif vm.state == "Running" and vm.enabled.get(_KVP, False):
            vm.linux.pending_host_items = dict(vm.kvp_host)
    path = _pool_path(vm, 0)
    if path is not None and _answers_kvp(vm):
        _write_pool_file(path, pool_records(*vm.kvp_host.items()))


def _kvp_object(vm: SimulatedVM) -> JsonObject:
    _deliver_host_items(vm)
    return {
        "VMName": vm.name,
        "VMId": str(vm.id),
        "State": vm.state,
        "Intrinsic": _pairs(intrinsic_items(vm)),
        "Guest": _pairs(guest_items(vm)),
        "Host": _pairs(vm.kvp_host),
    }


def get_kvp_items(host: HostModel, parameters: Mapping[str, JsonValue]) -> OperationResult:
    """The get_kvp_items operation."""
    errors: list[ErrorRecord] = []
    output = [_kvp_object(vm) for vm in _selected_vms(host, parameters, errors)]
    return OperationResult(tuple(output), tuple(errors))


def _strings(value: JsonValue) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Sequence):
        raise SimulatedScriptError(ErrorRecord("Remove must be a list of names."))
    return [str(item) for item in value if item is not None]


def _set_items(value: JsonValue) -> list[tuple[str, str]]:
    entries = [value] if isinstance(value, Mapping) else value or []
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise SimulatedScriptError(ErrorRecord("Set must be a list of {Name; Data}."))
    items = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise SimulatedScriptError(ErrorRecord("Set must be a list of {Name; Data}."))
        data = entry.get("Data")
        items.append((str(entry.get("Name", "")), "" if data is None else str(data)))
    return items


def _index(items: Mapping[str, str]) -> dict[str, str]:
    # A PowerShell hashtable, like the script's, compares keys without case;
    # built once per call, as the script builds its own, so that a write
    # costs O(items) and not O(items x host items).
    index: dict[str, str] = {}
    for key in items:
        index.setdefault(key.casefold(), key)
    return index


def _failure(vm: SimulatedVM, method: str, wait: float) -> tuple[str, str, str] | None:
    failure = vm.kvp_failures.get(method)
    if failure is None:
        return None
    code, state, job_code = failure
    if code != 4096:
        return ("HvIntegration.KvpMethodFailed", f"{method} returned {code}.",
                f"Method={method}\nReturnValue={code}")  # fmt: skip
    details = f"Method={method}\nReturnValue=4096\nJobState={state}\nErrorCode={job_code}"
    if state in (2, 3, 4, 6):
        return (
            "HvIntegration.KvpJobTimedOut",
            f"The {method} job did not finish within {wait:g} seconds (state {state}); "
            "it may still complete.",
            details,
        )
    return (
        "HvIntegration.KvpJobFailed",
        f"The {method} job ended in state {state}, error {job_code}: {_JOB_FAILED}",
        details,
    )


def set_kvp_items(host: HostModel, parameters: Mapping[str, JsonValue]) -> OperationResult:
    """The set_kvp_items operation (RemoveKvpItems, ModifyKvpItems, AddKvpItems)."""
    ref = parameters.get("VM")
    errors: list[ErrorRecord] = []
    target = _ref_text(ref) if isinstance(ref, Mapping) else None
    vm = _resolve(host, ref, target, errors)
    if vm is None:
        return OperationResult((), tuple(errors))
    wait = parameters.get("WaitSeconds")
    wait = wait if isinstance(wait, (int, float)) and not isinstance(wait, bool) else 45
    changes: list[JsonValue] = []
    calls: dict[str, list[tuple[str, str]]] = {
        "RemoveKvpItems": [], "ModifyKvpItems": [], "AddKvpItems": []
    }  # fmt: skip
    held = _index(vm.kvp_host)
    for name in _strings(parameters.get("Remove")):
        existing = held.get(name.casefold())
        if existing is None:
            changes.append({"Name": name, "Action": "absent"})
        else:
            calls["RemoveKvpItems"].append((existing, ""))
    for name, data in _set_items(parameters.get("Set")):
        existing = held.get(name.casefold())
        if existing is not None and vm.kvp_host[existing] == data:
            changes.append({"Name": name, "Action": "unchanged"})
        elif existing is not None:
            calls["ModifyKvpItems"].append((existing, data))
        else:
            calls["AddKvpItems"].append((name, data))
    actions = {"RemoveKvpItems": "removed", "ModifyKvpItems": "modified", "AddKvpItems": "added"}
    for method, items in calls.items():
        if not items:
            continue
        failure = _failure(vm, method, wait)
        if failure is not None:
            error_id, message, details = failure
            # The script's labels: a job still running may yet complete.
            outcome = "pending" if error_id == "HvIntegration.KvpJobTimedOut" else "failed"
            changes.extend({"Name": name, "Action": outcome} for name, _ in items)
            errors.append(
                ErrorRecord(
                    message,
                    error_id=error_id,
                    category="InvalidOperation",
                    exception_type="System.Exception",
                    target_object=target,
                    details=details,
                )
            )
            break
        for name, data in items:
            if method == "RemoveKvpItems":
                del vm.kvp_host[name]
            else:
                vm.kvp_host[name] = data
            changes.append({"Name": name, "Action": actions[method]})
    _deliver_host_items(vm)
    output: JsonObject = {
        "VMName": vm.name,
        "VMId": str(vm.id),
        "Changes": changes,
        "Host": _pairs(vm.kvp_host),
    }
    return OperationResult((output,), tuple(errors))


def get_host_version(host: HostModel, parameters: Mapping[str, JsonValue]) -> OperationResult:
    """The get_host_version operation: the host's Windows version from
    Windows Server 2016 / Windows 10 on, the integration services disk's
    version on older hosts."""
    del parameters
    output: JsonObject = {
        "ComputerName": host.name,
        "IntegrationServicesVersion": host.os.integration_services_version,
        "Source": "guest-installer" if host.os.guest_installer else "os-version",
    }
    return OperationResult((output,), ())


KVP_HANDLERS = MappingProxyType(
    {
        "get_kvp_items": get_kvp_items,
        "set_kvp_items": set_kvp_items,
        "get_host_version": get_host_version,
    }
)
"""The simulated KVP operations by name."""
