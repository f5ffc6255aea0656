"""What the host resources send and how they read the answers.

The resource classes in :mod:`hvintegration.host` say *what* to do; this
module holds the wire side of it: VM references as the scripts take them, a
desired state checked and flattened into one batch of changes, the batch's
answer turned back into records, and partial failures reported per item.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Union

import attrs

from hvintegration import catalogue
from hvintegration._decode import Decoder
from hvintegration.errors import (
    BatchError,
    HvIntegrationError,
    UnsafeChangeError,
    parse_vm_id,
)
from hvintegration.operations import COPY_VM_FILE, SET_INTEGRATION_SERVICES, Operation
from hvintegration.records import ApplyResult, FileCopy, ServiceChange
from hvintegration.transport.base import JsonValue, OperationResult
from hvintegration.transport.errormap import error_from_record

__all__ = [
    "Change",
    "DesiredState",
    "VMHandle",
    "VMKey",
    "change_parameters",
    "plan_changes",
    "raise_partial",
    "read_changes",
    "read_file_copy",
    "vm_key",
    "wire_ref",
]

VMKey = Union[str, uuid.UUID]
"""A VM as the host is asked for it: its name or its id."""

DesiredState = Union[
    Mapping[str, bool],
    Mapping[uuid.UUID, bool],
    Mapping[catalogue.ServiceSpec, bool],
    Mapping[catalogue.ServiceRef, bool],
]
"""Service to enabled flag, as :meth:`VirtualMachine.apply` takes it. Keys are
any :data:`~hvintegration.catalogue.ServiceRef`."""


class VMHandle:
    """What a VM object offers to be named by: its ``ref``, the name or id
    the host is asked for. :class:`~hvintegration.VirtualMachine` is one;
    this base lets the modules below the host accept it without importing it."""

    ref: VMKey


def vm_key(ref: str | uuid.UUID | VMHandle) -> VMKey:
    """A VM reference as a caller gives it, as the host is asked for it.

    A string in the form Hyper-V prints a VM id in
    (``5f3a...-...-...-...-............``, any case, with or without braces)
    is the VM's id, so a GUID copied from ``Get-VM``, ``list_vms()`` or an
    ambiguous-name error names that VM. Any other string is a name. A VM
    whose *name* looks like a GUID is therefore reached by its own id
    (``list_vms()`` shows it), never by that name: the id reading wins
    because an id is unique and a name is not.

    Args:
        ref: A name, a GUID string, a :class:`uuid.UUID` or a VM object
            (:class:`~hvintegration.VirtualMachine`), which gives its own.

    Returns:
        A :class:`uuid.UUID` for an id, else the name unchanged.

    Raises:
        ValueError: The name is empty or blank.
        TypeError: ``ref`` is neither text nor a UUID.

    Example:
        >>> vm_key("{6C09BB55-D683-4DA0-8931-C9BF705F6480}")
        UUID('6c09bb55-d683-4da0-8931-c9bf705f6480')
        >>> vm_key("demovm")
        'demovm'
    """
    if isinstance(ref, VMHandle):
        return ref.ref
    if isinstance(ref, uuid.UUID):
        return ref
    if not isinstance(ref, str):
        raise TypeError(
            f"a VM is named by str, uuid.UUID or VirtualMachine, not {type(ref).__name__}"
        )
    text = ref.strip()
    if not text:
        raise ValueError("a VM name must not be empty")
    vm_id = parse_vm_id(text)
    return ref if vm_id is None else vm_id


def wire_ref(ref: VMKey) -> dict[str, JsonValue]:
    """A VM reference as the scripts take it: ``{"Id": ...}`` or ``{"Name": ...}``."""
    if isinstance(ref, uuid.UUID):
        return {"Id": str(ref)}
    return {"Name": ref}


@attrs.frozen
class Change:
    """One requested change of a batch.

    Attributes:
        vm: The VM as the caller named it.
        spec: The service.
        enabled: The state asked for.
    """

    vm: VMKey
    spec: catalogue.ServiceSpec
    enabled: bool


def plan_changes(
    desired: Iterable[tuple[VMKey, DesiredState]],
    *,
    force: bool,
    target: str,
    ids: Mapping[str, uuid.UUID] | None = None,
) -> list[Change]:
    """Check a desired state and flatten it into one batch of changes.

    Args:
        desired: Per VM, service to enabled flag.
        force: Allow turning off the services the host needs.
        target: The host's URL, for errors.
        ids: Case-folded VM names to their ids, read from the host when a
            request names VMs both ways, so that a name and an id of one
            VM count as one VM.

    Returns:
        The changes, in request order.

    Raises:
        TypeError: A flag is not a bool.
        ServiceNotFoundError: A service is unknown or guest-only.
        ValueError: One service of one VM is named twice (also through two
            spellings of the VM's name).
        UnsafeChangeError: Any critical service would be turned off and
            ``force`` is not set.
    """
    items: list[Change] = []
    # VM names compare without case on the host, so "demovm" and "DEMOVM"
    # are one VM; a name and an id of one VM are one through ``ids``.
    ids = ids or {}
    seen: dict[tuple[VMKey, uuid.UUID], tuple[VMKey, catalogue.ServiceRef]] = {}
    for key, services in desired:
        vm_key = ids.get(key.casefold(), key.casefold()) if isinstance(key, str) else key
        for service, enabled in services.items():
            if not isinstance(enabled, bool):
                raise TypeError(f"the desired state of {service!r} must be True or False")
            spec = catalogue.resolve_host(service)
            assert spec.component_id is not None
            earlier = seen.get((vm_key, spec.component_id))
            if earlier is not None:
                raise ValueError(
                    f"{earlier[0]!s}/{earlier[1]!r} and {key!s}/{service!r} both name "
                    f"{spec.name} of one VM"
                )
            seen[(vm_key, spec.component_id)] = (key, service)
            items.append(Change(key, spec, enabled))
    risky = sorted({c.spec.name for c in items if c.spec.critical and not c.enabled})
    if risky and not force:
        raise UnsafeChangeError(risky, target=target, operation=SET_INTEGRATION_SERVICES.name)
    return items


def change_parameters(items: list[Change]) -> dict[str, JsonValue]:
    """The ``set_integration_services`` parameters for a batch."""
    changes: list[JsonValue] = [
        {"VM": wire_ref(c.vm), "ServiceId": str(c.spec.component_id), "Enabled": c.enabled}
        for c in items
    ]
    return {"Changes": changes}


def read_changes(result: OperationResult, items: list[Change], *, target: str) -> ApplyResult:
    """The answer to a batch of changes, as records.

    Raises:
        ProtocolError: A result for a change not asked for, or none for one.
        BatchError: Some changes failed; the others are in its ``result``.
        HvIntegrationError: The one failure, when nothing was done.
    """
    operation = SET_INTEGRATION_SERVICES.name
    decoder = Decoder(target, operation)
    done: dict[int, ServiceChange] = {}
    for value in result.output:
        obj = decoder.object(value, "a change result")
        index = decoder.integer(obj, "Index")
        if not 0 <= index < len(items):
            raise decoder.fail(f"change index {index} is out of range")
        state = decoder.service_state(obj.get("Service"))
        done[index] = ServiceChange(state, items[index].enabled, decoder.flag(obj, "Changed"))
    errors: dict[str, HvIntegrationError] = {}
    for record in result.errors:
        item = record.target_object
        if isinstance(item, int) and 0 <= item < len(items):
            change = items[item]
            errors[f"{change.vm}/{change.spec.name}"] = error_from_record(
                record, target=target, operation=operation, name=str(change.vm)
            )
        else:
            errors[str(item)] = error_from_record(record, target=target, operation=operation)
    applied = ApplyResult(tuple(done[i] for i in sorted(done)))
    raise_partial(errors, applied, "some changes failed", target, SET_INTEGRATION_SERVICES)
    missing = set(range(len(items))) - set(done)
    if missing:
        raise decoder.fail(f"no result for change {min(missing)}")
    return applied


def raise_partial(
    errors: Mapping[str, HvIntegrationError],
    result: object,
    message: str,
    target: str,
    operation: Operation,
) -> None:
    """Raise for failed items: the error itself when nothing else was asked
    or done and all failures are one, else a BatchError keeping the result."""
    if not errors:
        return
    distinct = {str(err) for err in errors.values()}
    nothing_done = isinstance(result, ApplyResult) and not result.items
    nothing_done = nothing_done or (isinstance(result, tuple) and not result)
    if nothing_done and len(distinct) == 1:
        raise next(iter(errors.values()))
    raise BatchError(message, result=result, errors=errors, target=target, operation=operation.name)


def read_file_copy(result: OperationResult, *, target: str, vm: VMKey) -> FileCopy:
    """The answer to one ``copy_vm_file``, as a record.

    Raises:
        HvIntegrationError: The copy failed (see :meth:`VirtualMachine.copy_file`).
        ProtocolError: The answer is not one copy result.
    """
    if result.errors:
        raise error_from_record(
            result.errors[0], target=target, operation=COPY_VM_FILE.name, name=str(vm)
        )
    decoder = Decoder(target, COPY_VM_FILE.name)
    if len(result.output) != 1:
        raise decoder.fail(f"expected one copy result, got {len(result.output)}")
    obj = decoder.object(result.output[0], "a copy result")
    return FileCopy(
        vm_name=decoder.text(obj, "VMName", allow_null=False),
        vm_id=decoder.guid(obj, "VMId"),
        source=decoder.text(obj, "SourcePath"),
        destination=decoder.text(obj, "DestinationPath"),
        size=decoder.integer(obj, "Size"),
    )
