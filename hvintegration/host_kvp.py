"""Key-Value Pair Exchange (Data Exchange) seen from the Hyper-V host.

What :meth:`~hvintegration.VirtualMachine.key_value_pairs`,
:meth:`~hvintegration.VirtualMachine.set_kvp_items`,
:meth:`~hvintegration.VirtualMachine.remove_kvp_items` and
:meth:`~hvintegration.HyperVHost.key_value_pairs` send and how their answers
become records. Reading the items of one VM, of several or of all is one
round trip; a write of several items to one VM is one round trip too.

Limits, checked before anything is sent:

* At most :data:`MAX_ITEMS` items per write: ``AddKvpItems``,
  ``ModifyKvpItems`` and ``RemoveKvpItems`` take at most 128 items a call
  (https://learn.microsoft.com/windows/win32/hyperv_v2/addkvpitems-msvm-virtualsystemmanagementservice).
* A key of at most :data:`MAX_KEY_CHARS` and a value of at most
  :data:`MAX_VALUE_CHARS` UTF-16 code units. The WMI class allows 1,024
  characters for each (``MAXLEN (1024)`` on ``Name`` and ``Data``,
  https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-kvpexchangedataitem),
  but the message that carries an item to the guest holds a key of 512 bytes
  and a value of 2,048 bytes of UTF-16 including the terminating NUL
  (``HV_KVP_EXCHANGE_MAX_KEY_SIZE`` and ``HV_KVP_EXCHANGE_MAX_VALUE_SIZE`` in
  the Linux kernel's ``include/uapi/linux/hyperv.h``).
* And a key of at most :data:`MAX_KEY_UTF8_BYTES` and a value of at most
  :data:`MAX_VALUE_UTF8_BYTES` bytes in UTF-8: a Linux guest's kernel turns
  the item into UTF-8 into buffers of the same 512 and 2,048 bytes, NUL
  included, and drops whatever does not fit (``kvp_send_key`` in
  ``drivers/hv/hv_kvp.c`` calls ``utf16s_to_utf8s`` with
  ``HV_KVP_EXCHANGE_MAX_KEY_SIZE - 1`` and ``HV_KVP_EXCHANGE_MAX_VALUE_SIZE -
  1``). ASCII text meets the UTF-16 limit first; ``"鍵" * 255`` fits the
  UTF-16 limit but is 765 bytes of UTF-8 and would reach a Linux guest cut.
  The library cannot tell which guest an item is for, so an item must
  arrive whole in either.
* Only characters XML 1.0 can carry (no NUL, no other C0 control character
  but tab, line feed and carriage return, no lone surrogate, no U+FFFE or
  U+FFFF): the write embeds each item as a CIM-XML document (DMTF DSP0201,
  https://www.w3.org/TR/xml/#charsets).

Together these limits stop an item that could be stored on the host and
never arrive whole in a guest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from hvintegration._decode import Decoder
from hvintegration._host_wire import VMKey, raise_partial, wire_ref
from hvintegration._table import RecordList
from hvintegration.errors import HvIntegrationError, KvpWriteError, PermissionDeniedError
from hvintegration.operations import GET_HOST_VERSION, GET_KVP_ITEMS, SET_KVP_ITEMS, Operation
from hvintegration.records import KvpChange, KvpExchange, KvpWriteResult
from hvintegration.transport.base import ErrorRecord, JsonValue, OperationResult
from hvintegration.transport.errormap import error_from_record

Runner = Callable[[Operation, Mapping[str, JsonValue]], Awaitable[OperationResult]]
"""Runs one operation on the host with the host's timeout (``HyperVHost._run``)."""

__all__ = [
    "HostKvpMethods",
    "VMKvpMethods",
    "JOB_STATES",
    "KvpAccessDeniedError",
    "MAX_ITEMS",
    "MAX_KEY_CHARS",
    "MAX_KEY_UTF8_BYTES",
    "MAX_VALUE_CHARS",
    "MAX_VALUE_UTF8_BYTES",
    "WAIT_FRACTION",
    "RETURN_VALUES",
    "Runner",
    "check_items",
    "check_keys",
    "host_integration_services_version",
    "host_kvp",
    "read_kvp",
    "read_kvp_write",
    "read_vm_kvp",
    "remove_items",
    "set_items",
    "update_items",
    "vm_kvp",
    "wait_seconds",
]

MAX_ITEMS = 128
"""Items one write may carry (the methods' documented array limit)."""

MAX_KEY_CHARS = 512 // 2 - 1
"""UTF-16 code units of a key: 512 bytes on the wire, less the NUL."""

MAX_VALUE_CHARS = 2048 // 2 - 1
"""UTF-16 code units of a value: 2,048 bytes on the wire, less the NUL."""

MAX_KEY_UTF8_BYTES = 512 - 1
"""Bytes of a key in UTF-8 as a Linux guest receives it, less the NUL."""

MAX_VALUE_UTF8_BYTES = 2048 - 1
"""Bytes of a value in UTF-8 as a Linux guest receives it, less the NUL."""

WAIT_FRACTION = 0.75
"""Share of the host's timeout the write script may spend waiting for its
KVP jobs, all methods together: it reports a job still running (``pending``
items, ``KvpJobTimedOut``) before the caller's timeout gives up on the whole
round trip and loses what was done."""

RETURN_VALUES = {
    0: "Completed with No Error",
    4096: "Method Parameters Checked - Job Started",
    32768: "Failed",
    32769: "Access Denied",
    32770: "Not Supported",
    32771: "Status is unknown",
    32772: "Timeout",
    32773: "Invalid parameter",
    32774: "System is in use",
    32775: "Invalid state for this operation",
    32776: "Incorrect data type",
    32777: "System is not available",
    32778: "Out of memory",
}
"""What AddKvpItems, ModifyKvpItems and RemoveKvpItems return, as their
reference pages list it."""

JOB_STATES = {
    2: "New",
    3: "Starting",
    4: "Running",
    5: "Suspended",
    6: "Shutting Down",
    7: "Completed",
    8: "Terminated",
    9: "Killed",
    10: "Exception",
    11: "Service",
    12: "Query Pending",
}
"""``Msvm_ConcreteJob.JobState`` values
(https://learn.microsoft.com/windows/win32/hyperv_v2/msvm-concretejob)."""


# RemoteCommandError types remote_message as str, PermissionDeniedError as
# str | None; RemoteCommandError.__init__ runs last and sets a str.
class KvpAccessDeniedError(KvpWriteError, PermissionDeniedError):  # type: ignore[misc]
    """The host refused a KVP method: it returned 32769 (Access Denied).

    Both a :class:`~hvintegration.errors.PermissionDeniedError` (the account
    lacks the rights: it must be a member of Administrators or Hyper-V
    Administrators on the host) and a
    :class:`~hvintegration.errors.KvpWriteError`, so its ``result`` says
    what an earlier method of the same write already did.

    Example:
        >>> from hvintegration.errors import PermissionDeniedError
        >>> issubclass(KvpAccessDeniedError, PermissionDeniedError)
        True
    """


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _xml_char(ch: str) -> bool:
    # XML 1.0 production [2] Char: #x9 | #xA | #xD | [#x20-#xD7FF] |
    # [#xE000-#xFFFD] | [#x10000-#x10FFFF].
    code = ord(ch)
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _check_text(text: object, limits: tuple[int, int], what: str, *, empty: bool) -> str:
    if not isinstance(text, str):
        raise TypeError(f"a KVP {what} is a str, not {type(text).__name__}")
    if not text and not empty:
        raise ValueError(f"a KVP {what} must not be empty")
    bad = next((ch for ch in text if not _xml_char(ch)), None)
    if bad is not None:
        kind = "NUL" if bad == "\0" else f"U+{ord(bad):04X}"
        raise ValueError(
            f"a KVP {what} must not contain {kind} (the item travels as XML, which cannot "
            f"carry it): {text[:40]!r}"
        )
    units_limit, bytes_limit = limits
    units = _utf16_units(text)
    if units > units_limit:
        raise ValueError(
            f"a KVP {what} holds at most {units_limit} UTF-16 code units; "
            f"{text[:40]!r}... has {units}"
        )
    size = _utf8_bytes(text)
    if size > bytes_limit:
        raise ValueError(
            f"a KVP {what} holds at most {bytes_limit} bytes of UTF-8 (a Linux guest receives "
            f"it so, cut to fit); {text[:40]!r}... has {size}"
        )
    return text


_KEY_LIMITS = (MAX_KEY_CHARS, MAX_KEY_UTF8_BYTES)
_VALUE_LIMITS = (MAX_VALUE_CHARS, MAX_VALUE_UTF8_BYTES)


def _check_count(count: int) -> None:
    if count > MAX_ITEMS:
        raise ValueError(f"one KVP write takes at most {MAX_ITEMS} items, not {count}")


def check_items(items: Mapping[str, str]) -> dict[str, str]:
    """Refuse host-to-guest items Hyper-V could not carry, before anything is sent.

    Args:
        items: Key to value.

    Returns:
        The items, in the caller's order.

    Raises:
        TypeError: ``items`` is not a mapping, or a key or value is not a str.
        ValueError: No items, more than :data:`MAX_ITEMS`, an empty key, a
            character XML cannot carry (NUL, other C0 controls), a key or
            value over its limit, or two keys that differ only in case.

    Example:
        >>> check_items({"Role": "web"})
        {'Role': 'web'}
        >>> check_items({"Role": "x" * 1024})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: a KVP value holds at most 1023 UTF-16 code units; ... has 1024
    """
    if not isinstance(items, Mapping):
        raise TypeError(f"KVP items are a mapping of key to value, not {type(items).__name__}")
    if not items:
        raise ValueError("no KVP items to set")
    _check_count(len(items))
    checked = {
        _check_text(key, _KEY_LIMITS, "key", empty=False): _check_text(
            value, _VALUE_LIMITS, "value", empty=True
        )
        for key, value in items.items()
    }
    _refuse_case_twins(checked)
    return checked


def check_keys(keys: Iterable[str]) -> list[str]:
    """Refuse keys to remove that Hyper-V could not hold, before anything is sent.

    Args:
        keys: The keys.

    Returns:
        The keys, in the caller's order.

    Raises:
        TypeError: ``keys`` is one str (not a list of them), or a key is not a str.
        ValueError: No keys, more than :data:`MAX_ITEMS`, a key twice, an
            empty key, a character XML cannot carry or a key over its limit.
    """
    if isinstance(keys, (str, bytes)):
        raise TypeError("pass a list of KVP keys, not one string")
    checked = [_check_text(key, _KEY_LIMITS, "key", empty=False) for key in keys]
    if not checked:
        raise ValueError("no KVP keys to remove")
    _check_count(len(checked))
    _refuse_case_twins(checked)
    return checked


def _refuse_case_twins(keys: Iterable[str]) -> None:
    # The host matches item names without regard to case (a Windows guest
    # keeps them as registry value names), so "Role" and "role" are one item.
    seen: dict[str, str] = {}
    for key in keys:
        if key in seen.values() and seen.get(key.casefold()) == key:
            raise ValueError(f"the KVP key {key!r} is named twice")
        twin = seen.setdefault(key.casefold(), key)
        if twin != key:
            raise ValueError(f"the KVP keys {twin!r} and {key!r} name one item")


def _pairs(decoder: Decoder, obj: Mapping[str, JsonValue], key: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    entries = [value] if isinstance(value, Mapping) else value
    if not isinstance(entries, list):
        raise decoder.fail(f"property {key} is not a list of items")
    pairs: dict[str, str] = {}
    for entry in entries:
        item = decoder.object(entry, f"an item of {key}")
        pairs[decoder.text(item, "Name", allow_null=False)] = decoder.text(item, "Data")
    return pairs


def _exchange(decoder: Decoder, value: JsonValue) -> KvpExchange:
    obj = decoder.object(value, "a VM's KVP items")
    return KvpExchange(
        vm_name=decoder.text(obj, "VMName", allow_null=False),
        vm_id=decoder.guid(obj, "VMId"),
        intrinsic=_pairs(decoder, obj, "Intrinsic"),
        guest=_pairs(decoder, obj, "Guest"),
        host=_pairs(decoder, obj, "Host"),
    )


def read_kvp(result: OperationResult, *, target: str) -> RecordList[KvpExchange]:
    """The answer to ``get_kvp_items``, as records.

    Raises:
        VMNotFoundError: The one VM asked for does not exist.
        BatchError: Some of several VMs could not be read; its ``result``
            holds the others' records.
        ProtocolError: The answer is malformed.
    """
    decoder = Decoder(target, GET_KVP_ITEMS.name)
    records = RecordList(_exchange(decoder, value) for value in result.output)
    errors = {
        str(record.target_object): error_from_record(
            record, target=target, operation=GET_KVP_ITEMS.name
        )
        for record in result.errors
    }
    raise_partial(errors, records, "could not read every VM's KVP items", target, GET_KVP_ITEMS)
    return records


def read_vm_kvp(result: OperationResult, *, target: str, vm: VMKey) -> KvpExchange:
    """The answer to ``get_kvp_items`` for one VM.

    Raises:
        VMNotFoundError: No such VM.
        AmbiguousVMError: Several VMs have this name.
        ProtocolError: The answer is not one VM's items.
    """
    if result.errors:
        raise error_from_record(
            result.errors[0], target=target, operation=GET_KVP_ITEMS.name, name=str(vm)
        )
    records = read_kvp(result, target=target)
    if len(records) != 1:
        raise Decoder(target, GET_KVP_ITEMS.name).fail(f"expected one VM, got {len(records)}")
    return records[0]


def _details(record: ErrorRecord) -> dict[str, int]:
    found = {}
    for line in record.details.splitlines():
        name, _, value = line.partition("=")
        if value.strip().lstrip("-").isdigit():
            found[name.strip()] = int(value)
    return found


def _write_error(
    record: ErrorRecord, *, target: str, vm: VMKey, done: KvpWriteResult | None
) -> HvIntegrationError:
    where = {"target": target, "operation": SET_KVP_ITEMS.name}
    if not record.base_id.startswith("HvIntegration.Kvp"):
        return error_from_record(record, name=str(vm), **where)
    details = _details(record)
    lines = record.details.splitlines()
    method = next((line[len("Method=") :] for line in lines if line.startswith("Method=")), "")
    code = details.get("ReturnValue")
    state = details.get("JobState")
    job_code = details.get("ErrorCode")
    if state is not None:
        meaning = f"job {JOB_STATES.get(state, 'state ' + str(state))}"
        if job_code:
            meaning += f", error code {job_code}"
    else:
        meaning = RETURN_VALUES.get(code or -1, f"return value {code}")
    changed = [c.key for c in done.changed] if done is not None else []
    outcome = (
        f"done before it: {', '.join(changed)}" if changed else "no item was changed before it"
    )
    kind: type[KvpWriteError] = KvpWriteError
    if code == 32769:
        kind = KvpAccessDeniedError
        meaning += "; run as a member of Administrators or Hyper-V Administrators on the host"
    return kind(
        f"{method or 'the KVP write'} failed for {vm} ({meaning}): {record.message}; {outcome}",
        method=method,
        return_value=code,
        job_state=state,
        job_error_code=job_code,
        result=done,
        error_id=record.error_id,
        category=record.category,
        remote_message=record.message,
        **where,
    )


def read_kvp_write(
    result: OperationResult,
    *,
    target: str,
    vm: VMKey,
    asked: Sequence[tuple[str, str | None]],
) -> KvpWriteResult:
    """The answer to ``set_kvp_items``, as a record.

    Args:
        result: The operation's result.
        target: The host's URL.
        vm: The VM as the caller named it.
        asked: ``(key, value)`` per item in request order; ``None`` for a
            removal.

    Returns:
        One change per item asked for, and the host items afterwards.

    Raises:
        KvpWriteError: A method or its job failed; its ``result`` says what
            was done before (``pending`` for the items of a job still
            running, ``failed`` for those of the method that failed,
            ``not-sent`` for the later ones).
        KvpAccessDeniedError: The host refused the account (a
            ``PermissionDeniedError`` and a ``KvpWriteError``).
        VMNotFoundError: No such VM.
        ProtocolError: The answer is malformed.
    """
    decoder = Decoder(target, SET_KVP_ITEMS.name)
    done: KvpWriteResult | None = None
    if result.output:
        obj = decoder.object(result.output[-1], "a KVP write result")
        actions: dict[str, str] = {}
        changes = obj.get("Changes")
        entries = [changes] if isinstance(changes, Mapping) else changes
        if entries is not None and not isinstance(entries, list):
            raise decoder.fail("property Changes is not a list")
        for entry in entries or []:
            item = decoder.object(entry, "a KVP change")
            actions[decoder.text(item, "Name", allow_null=False).casefold()] = decoder.text(
                item, "Action", allow_null=False
            )
        ordered = []
        for key, value in asked:
            action = actions.get(key.casefold())
            if action is None:
                if not result.errors:
                    raise decoder.fail(f"no outcome for the KVP key {key!r}")
                action = "not-sent"
            ordered.append(KvpChange(key, action, value))
        done = KvpWriteResult(
            vm_name=decoder.text(obj, "VMName", allow_null=False),
            vm_id=decoder.guid(obj, "VMId"),
            changes=tuple(ordered),
            host=_pairs(decoder, obj, "Host"),
        )
    if result.errors:
        raise _write_error(result.errors[0], target=target, vm=vm, done=done)
    if done is None:
        raise decoder.fail("no KVP write result")
    return done


async def _read(run: Runner, refs: list[VMKey] | None) -> OperationResult:
    parameters: dict[str, JsonValue] = {
        "VM": None if refs is None else [wire_ref(ref) for ref in refs]
    }
    return await run(GET_KVP_ITEMS, parameters)


async def host_kvp(run: Runner, target: str, refs: list[VMKey] | None) -> RecordList[KvpExchange]:
    """The KVP items of several VMs, or of all, in one round trip (see
    :meth:`~hvintegration.HyperVHost.key_value_pairs`)."""
    return read_kvp(await _read(run, refs), target=target)


async def vm_kvp(run: Runner, target: str, vm: VMKey) -> KvpExchange:
    """The KVP items of one VM, in one round trip (see
    :meth:`~hvintegration.VirtualMachine.key_value_pairs`)."""
    return read_vm_kvp(await _read(run, [vm]), target=target, vm=vm)


def wait_seconds(timeout: float) -> float:
    """How long the write script may wait for its KVP jobs, all methods together.

    Args:
        timeout: The host's timeout for one operation, in seconds.

    Returns:
        :data:`WAIT_FRACTION` of it, in seconds (milliseconds kept).

    Example:
        >>> wait_seconds(60)
        45.0
    """
    return round(timeout * WAIT_FRACTION, 3)


async def _write(
    run: Runner,
    target: str,
    vm: VMKey,
    set_items: Mapping[str, str],
    remove: Sequence[str],
    wait: float,
) -> KvpWriteResult:
    parameters: dict[str, JsonValue] = {
        "VM": wire_ref(vm),
        "Set": [{"Name": key, "Data": value} for key, value in set_items.items()],
        "Remove": list(remove),
        "WaitSeconds": wait,
    }
    asked: list[tuple[str, str | None]] = [*set_items.items(), *((key, None) for key in remove)]
    result = await run(SET_KVP_ITEMS, parameters)
    return read_kvp_write(result, target=target, vm=vm, asked=asked)


async def update_items(
    run: Runner,
    target: str,
    vm: VMKey,
    items: Mapping[str, str],
    keys: Iterable[str],
    *,
    timeout: float,
) -> KvpWriteResult:
    """Set some host-to-guest items and remove others in one round trip (see
    :meth:`~hvintegration.VirtualMachine.update_kvp_items`); ``timeout`` is
    the host's, in seconds."""
    checked = check_items(items) if items else {}
    keys = list(keys) if not isinstance(keys, (str, bytes)) else keys
    removed = check_keys(keys) if keys else []
    if not checked and not removed:
        raise ValueError("no KVP items to set or remove")
    removing = {key.casefold(): key for key in removed}
    for key in checked:
        twin = removing.get(key.casefold())
        if twin is not None:
            named = repr(key) if twin == key else f"{key!r} (removed as {twin!r})"
            raise ValueError(f"a KVP key cannot be set and removed at once: {named}")
    _check_count(len(checked) + len(removed))
    return await _write(run, target, vm, checked, removed, wait_seconds(timeout))


async def set_items(
    run: Runner, target: str, vm: VMKey, items: Mapping[str, str], *, timeout: float
) -> KvpWriteResult:
    """Add or modify host-to-guest items (see
    :meth:`~hvintegration.VirtualMachine.set_kvp_items`)."""
    return await _write(run, target, vm, check_items(items), [], wait_seconds(timeout))


async def remove_items(
    run: Runner, target: str, vm: VMKey, keys: Iterable[str], *, timeout: float
) -> KvpWriteResult:
    """Remove host-to-guest items (see
    :meth:`~hvintegration.VirtualMachine.remove_kvp_items`)."""
    return await _write(run, target, vm, {}, check_keys(keys), wait_seconds(timeout))


async def host_integration_services_version(run: Runner, target: str) -> str:
    """The host's own integration services version (see
    :meth:`~hvintegration.HyperVHost.integration_services_version`)."""
    result = await run(GET_HOST_VERSION, {})
    if result.errors:
        raise error_from_record(result.errors[0], target=target, operation=GET_HOST_VERSION.name)
    decoder = Decoder(target, GET_HOST_VERSION.name)
    if len(result.output) != 1:
        raise decoder.fail(f"expected one answer, got {len(result.output)}")
    obj = decoder.object(result.output[0], "the host's version")
    return decoder.text(obj, "IntegrationServicesVersion", allow_null=False)


class HostKvpMethods:
    """The KVP methods of :class:`~hvintegration.HyperVHost` (kept here, by subject)."""

    def _kvp_runner(self) -> tuple[Runner, str]:
        raise NotImplementedError  # pragma: no cover - HyperVHost provides it

    def _kvp_refs(self, vms: Iterable[Any]) -> list[VMKey]:
        raise NotImplementedError  # pragma: no cover - HyperVHost provides it

    async def key_value_pairs(self, vms: Iterable[Any] | None = None) -> RecordList[KvpExchange]:
        """The Key-Value Pair Exchange items of several VMs, or of all, in one round trip.

        Args:
            vms: The VMs to read; every VM on the host when ``None``.

        Returns:
            One :class:`~hvintegration.records.KvpExchange` per VM, in host order.

        Raises:
            VMNotFoundError: The one VM asked for does not exist.
            BatchError: Some of several VMs could not be read; its ``result``
                holds the others.
            TypeError: ``vms`` is one VM (a str, say), not a list of them.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://") as host:
            ...         return [kvp.os_name for kvp in await host.key_value_pairs()]
            >>> asyncio.run(main())
            ['Windows Server 2022 Datacenter']
        """
        run, target = self._kvp_runner()
        refs = None if vms is None else self._kvp_refs(vms)
        return await host_kvp(run, target, refs)

    async def integration_services_version(self) -> str:
        """The host's own integration services version. One round trip.

        ``Get-VM``'s ``IntegrationServicesState`` compares each guest's
        version with this one. A host that ships the integration services
        disk (Windows Server 2008 R2 to 2012 R2) reports the version of the
        components on it; a newer host, whose guests update through Windows
        Update, reports its own Windows version.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://") as host:
            ...         return await host.integration_services_version()
            >>> asyncio.run(main())
            '10.0.20348'
        """
        return await host_integration_services_version(*self._kvp_runner())


class VMKvpMethods:
    """The KVP methods of :class:`~hvintegration.VirtualMachine` (kept here, by subject)."""

    def _kvp_target(self) -> tuple[Runner, str, VMKey]:
        raise NotImplementedError  # pragma: no cover - VirtualMachine provides it

    def _kvp_timeout(self) -> float:
        raise NotImplementedError  # pragma: no cover - VirtualMachine provides it

    async def key_value_pairs(self) -> KvpExchange:
        """This VM's Key-Value Pair Exchange items: intrinsic, guest and host. One round trip.

        Needs no guest credentials: the guest's OS, integration services
        version, host name and IP addresses come from its intrinsic items.

        Raises:
            VMNotFoundError: No such VM.
            AmbiguousVMError: Several VMs have this name.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://") as host:
            ...         kvp = await host.vm("demovm").key_value_pairs()
            ...     return kvp.os_name, kvp.fqdn
            >>> asyncio.run(main())
            ('Windows Server 2022 Datacenter', 'demovm')
        """
        return await vm_kvp(*self._kvp_target())

    async def set_kvp_items(self, items: Mapping[str, str]) -> KvpWriteResult:
        """Add or modify host-to-guest KVP items in one round trip.

        An item that already holds the value is left alone (``unchanged``);
        the others are modified or added (``ModifyKvpItems``,
        ``AddKvpItems``), waiting for each job. Keys compare without case.

        Args:
            items: Key to value; see :mod:`hvintegration.host_kvp` for the
                limits, checked before anything is sent.

        Returns:
            What was done per key, and the host items afterwards.

        Raises:
            ValueError: An item over a limit, an empty key, a NUL, no items.
            TypeError: A key or value that is not a str.
            KvpWriteError: The host failed a method or its job.
            VMNotFoundError: No such VM.

        Example:
            >>> import asyncio
            >>> from hvintegration import HyperVHost
            >>> async def main():
            ...     async with HyperVHost.connect("sim://") as host:
            ...         done = await host.vm("demovm").set_kvp_items({"Role": "web"})
            ...     return [(c.key, c.action) for c in done.changes], dict(done.host)
            >>> asyncio.run(main())
            ([('Role', 'added')], {'Role': 'web'})
        """
        return await set_items(*self._kvp_target(), items, timeout=self._kvp_timeout())

    async def update_kvp_items(
        self, set: Mapping[str, str] | None = None, remove: Iterable[str] = ()
    ) -> KvpWriteResult:
        """Set some host-to-guest KVP items and remove others, in one round trip.

        The same rules as :meth:`set_kvp_items` and :meth:`remove_kvp_items`;
        together they may carry at most :data:`MAX_ITEMS` keys, and no key
        may be set and removed at once.

        Args:
            set: Key to value, added or modified.
            remove: Keys removed.

        Returns:
            What was done per key (the removals after the items set), and
            the host items afterwards.

        Raises:
            ValueError: Nothing asked, a key both set and removed, or an
                item over a limit.
            KvpWriteError: The host failed a method or its job.
        """
        return await update_items(
            *self._kvp_target(), set or {}, remove, timeout=self._kvp_timeout()
        )

    async def remove_kvp_items(self, keys: Iterable[str]) -> KvpWriteResult:
        """Remove host-to-guest KVP items in one round trip (``RemoveKvpItems``).

        A key the host does not have is reported ``absent``, not an error.

        Args:
            keys: The keys (a list, not one string).

        Returns:
            What was done per key, and the host items afterwards.

        Raises:
            ValueError: No keys, a key twice, or one over the limit.
            KvpWriteError: The host failed the method or its job.
        """
        return await remove_items(*self._kvp_target(), keys, timeout=self._kvp_timeout())
