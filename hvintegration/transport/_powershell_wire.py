"""The wire contract between the library and a PowerShell process.

Shared by every transport that starts PowerShell itself (``local://`` and
``ssh://`` to Windows), and by the stand-in PowerShell in
:mod:`hvintegration.testing.standin_powershell`, which speaks the same
contract from the other side.

The contract, version 1:

1. The command line is always the same short, fixed text: the PowerShell
   executable, a few flags and ``-EncodedCommand`` with the shipped
   ``_bootstrap.ps1`` (comment lines and indentation stripped, UTF-16LE,
   base64). No caller value is ever part of it.
2. The first stdin line is the shipped session loop ``_runner.ps1``, its
   lines joined by tabs (it has none, and is ASCII); the bootstrap turns the
   tabs back into line ends and runs it. Plain text, not base64: the
   bootstrap needs no ``FromBase64String``, one of the strings listed in
   :data:`SUSPICIOUS_STRINGS`.
3. Each further stdin line is one request, an ASCII JSON object: ``v``,
   ``id``, ``operation``, ``script`` (the operation's shipped text) and
   ``parameters``. Every string inside ``parameters`` carries a one-character
   tag (``~``), which the loop strips after parsing, so that PowerShell 7's
   ``ConvertFrom-Json`` cannot turn a VM name that looks like a date into a
   ``DateTime``. Parameters are bound with ``AddParameter``, never spliced
   into text.
4. Each request gets one stdout line: ``#hvi1:`` and an ASCII JSON envelope
   with ``v``, ``id``, ``output`` (a list of objects), ``errors`` (the
   non-terminating error records) and ``error`` (the terminating record, or
   ``null``). The loop writes a line end before each answer, so that text
   the outer shell left without one (a banner, a prompt) stays on a line of
   its own; the reader also finds an answer after such text on the same
   line. Other text is noise and is skipped, within the output size limit.
   An envelope whose ``id`` is ``null`` and which carries an ``error`` is a
   failure of the session itself (the bootstrap refusing a constrained
   language mode, or a request the loop could not read): it answers the
   request in flight.
5. Closing stdin ends the process, also in the middle of an operation.

The decoder is strict: anything that is not exactly such an envelope, for
the request that was sent, is a :class:`~hvintegration.errors.ProtocolError`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import attrs

from hvintegration.errors import AnswerTooLargeError, InvalidTargetError, ProtocolError
from hvintegration.operations import script_text
from hvintegration.transport.base import (
    MAX_DEPTH,
    ErrorRecord,
    JsonValue,
    OperationResult,
    check_parameter_values,
)

__all__ = [
    "BOOTSTRAP",
    "DEFAULT_MAX_ANSWER",
    "DEFAULT_MAX_OUTPUT",
    "ENVELOPE_PREFIX",
    "POWERSHELL_FLAGS",
    "RUNNER",
    "RUNNER_LINE",
    "SUSPICIOUS_STRINGS",
    "MAX_DEPTH",
    "WIRE_VERSION",
    "EndOfOutput",
    "FrameReader",
    "Reply",
    "Request",
    "check_answer",
    "check_parameter_values",
    "command_line",
    "decode_envelope",
    "decode_request",
    "encode_envelope",
    "encode_request",
    "encoded_bootstrap",
    "minify",
    "powershell_argv",
    "validate_executable",
]

WIRE_VERSION = 1
ENVELOPE_PREFIX = b"#hvi1:"
DEFAULT_MAX_OUTPUT = 32 * 1024 * 1024
"""Bytes one operation may write to stdout, noise included, before the
answer is refused as oversized."""

DEFAULT_MAX_ANSWER = 32 * 1024 * 1024
"""Bytes one WinRM HTTP answer may have before it is refused (``psrp://``;
here, with no optional package, so that the settings need none)."""

# PowerShell's widest integer types: [long] and [ulong]. JSON or CLIXML
# cannot carry a larger whole number to it as one.

_TAG = "~"
_RECORD_FIELDS = ("message", "error_id", "category", "exception_type", "target_object", "details")
_ENVELOPE_FIELDS = {"v", "id", "output", "errors", "error"}
_REQUEST_FIELDS = {"v", "id", "operation", "script", "parameters"}
# What may stand in a command line unquoted under cmd.exe, PowerShell and a
# POSIX shell alike: no spaces, quotes, separators or expansions.
_SAFE_EXECUTABLE = re.compile(r"^[A-Za-z0-9_.:/\\-]+$")


def minify(script: str) -> str:
    """A script without comment lines, indentation or blank lines.

    Only whole-line comments go, so the result means the same as long as the
    script has no here-strings, which the shipped bootstrap does not.

    Example:
        >>> minify("# why\\n$a = 1\\n    if ($a) { 'x' }\\n")
        "$a = 1\\nif ($a) { 'x' }"
    """
    lines = (line.strip() for line in script.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#"))


BOOTSTRAP = minify(script_text("_bootstrap.ps1"))
"""The bootstrap text exactly as sent on the command line."""

RUNNER = script_text("_runner.ps1")
"""The session loop exactly as sent on the first stdin line."""

if "\t" in RUNNER or "\r" in RUNNER or not RUNNER.isascii():
    raise RuntimeError("_runner.ps1 must be ASCII without tabs or carriage returns")
RUNNER_LINE = RUNNER.rstrip("\n").replace("\n", "\t").encode("ascii") + b"\n"
"""The first stdin line of every PowerShell process: the session loop, its
lines joined by tabs."""

POWERSHELL_FLAGS = (
    "-NoLogo",
    "-NoProfile",
    "-NonInteractive",
    "-OutputFormat",
    "Text",
    "-EncodedCommand",
)
"""The flags before the encoded bootstrap: no banner, no profile, no
prompts, plain text.

No ``-ExecutionPolicy Bypass``: execution policy decides whether PowerShell
loads configuration files and runs script *files* ("about_Execution_Policies",
https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_execution_policies;
PowerShell's ``PSAuthorizationManager.IsAllowedToRun`` in
``src/System.Management.Automation/security/SecurityManager.cs`` checks a
file's path and signature). Everything the library sends is text on the
command line or stdin, never a file, and ``-NoProfile`` loads no
configuration file; even the ``Restricted`` policy admits the Hyper-V
module's format files, which live under System32. The flag is also a
common detection signature on hardened hosts."""

SUSPICIOUS_STRINGS = (
    "Add-Type",
    "DllImport",
    "DefineDynamicAssembly",
    "DefineDynamicModule",
    "DefineType",
    "DefineConstructor",
    "CreateType",
    "DefineLiteral",
    "DefineEnum",
    "DefineField",
    "ILGenerator",
    "Emit",
    "UnverifiableCodeAttribute",
    "DefinePInvokeMethod",
    "GetTypes",
    "GetAssemblies",
    "Methods",
    "Properties",
    "GetConstructor",
    "GetConstructors",
    "GetDefaultMembers",
    "GetEvent",
    "GetEvents",
    "GetField",
    "GetFields",
    "GetInterface",
    "GetInterfaceMap",
    "GetInterfaces",
    "GetMember",
    "GetMembers",
    "GetMethod",
    "GetMethods",
    "GetNestedType",
    "GetNestedTypes",
    "GetProperties",
    "GetProperty",
    "InvokeMember",
    "MakeArrayType",
    "MakeByRefType",
    "MakeGenericType",
    "MakePointerType",
    "DeclaringMethod",
    "DeclaringType",
    "ReflectedType",
    "TypeHandle",
    "TypeInitializer",
    "UnderlyingSystemType",
    "InteropServices",
    "Marshal",
    "AllocHGlobal",
    "PtrToStructure",
    "StructureToPtr",
    "FreeHGlobal",
    "IntPtr",
    "MemoryStream",
    "DeflateStream",
    "FromBase64String",
    "EncodedCommand",
    "Bypass",
    "ToBase64String",
    "ExpandString",
    "GetPowerShell",
    "OpenProcess",
    "VirtualAlloc",
    "VirtualFree",
    "WriteProcessMemory",
    "CreateUserThread",
    "CloseHandle",
    "GetDelegateForFunctionPointer",
    "kernel32",
    "CreateThread",
    "memcpy",
    "LoadLibrary",
    "GetModuleHandle",
    "GetProcAddress",
    "VirtualProtect",
    "FreeLibrary",
    "ReadProcessMemory",
    "CreateRemoteThread",
    "AdjustTokenPrivileges",
    "WriteByte",
    "WriteInt32",
    "OpenThreadToken",
    "PtrToString",
    "ZeroFreeGlobalAllocUnicode",
    "OpenProcessToken",
    "GetTokenInformation",
    "SetThreadToken",
    "ImpersonateLoggedOnUser",
    "RevertToSelf",
    "GetLogonSessionData",
    "CreateProcessWithToken",
    "DuplicateTokenEx",
    "OpenWindowStation",
    "OpenDesktop",
    "MiniDumpWriteDump",
    "AddSecurityPackage",
    "EnumerateSecurityPackages",
    "GetProcessHandle",
    "DangerousGetHandle",
    "CryptoServiceProvider",
    "Cryptography",
    "RijndaelManaged",
    "SHA1Managed",
    "CryptoStream",
    "CreateEncryptor",
    "CreateDecryptor",
    "TransformFinalBlock",
    "DeviceIoControl",
    "SetInformationProcess",
    "PasswordDeriveBytes",
    "GetAsyncKeyState",
    "GetKeyboardState",
    "GetForegroundWindow",
    "BindingFlags",
    "NonPublic",
    "ScriptBlockLogging",
    "LogPipelineExecutionDetails",
    "ProtectedEventLogging",
)
"""The strings for which PowerShell logs a script block at Warning level
(event 4104) even when script block logging is off, copied from
``SuspiciousContentChecker.LookupHash`` in PowerShell's
``src/System.Management.Automation/engine/runtime/CompiledScriptBlock.cs``.
PowerShell 7 matches them case-insensitively anywhere inside a run of
letters and hyphens, comments included; earlier versions (``s_signatures``)
matched whole words of letters and hyphens. None of them occurs in a script the library
sends (``tests/test_powershell_wire.py`` checks)."""


def encoded_bootstrap() -> str:
    """The ``-EncodedCommand`` argument: base64 of the UTF-16LE bootstrap."""
    return base64.b64encode(BOOTSTRAP.encode("utf-16-le")).decode("ascii")


def validate_executable(executable: str, *, target: str) -> str:
    """Check that an executable name can stand unquoted in any shell.

    Args:
        executable: A program name or path.
        target: The target URL, for the error.

    Returns:
        The name, unchanged.

    Raises:
        InvalidTargetError: It is empty or holds a space, quote, separator or
            other shell syntax.
    """
    if not _SAFE_EXECUTABLE.match(executable):
        raise InvalidTargetError(
            f"PowerShell executable {executable!r} must be a plain name or path "
            "(letters, digits and _ . : / \\ - only)",
            target=target,
        )
    return executable


def powershell_argv(executable: str) -> tuple[str, ...]:
    """The whole argv that starts a PowerShell process for the wire contract.

    Args:
        executable: The PowerShell program.

    Returns:
        The executable, the fixed flags and the encoded bootstrap.
    """
    return (executable, *POWERSHELL_FLAGS, encoded_bootstrap())


def command_line(executable: str) -> str:
    """The argv as one command line for a remote shell (cmd.exe, PowerShell, sh).

    Every word is plain (see :func:`validate_executable`), so the line means
    the same to each shell without quoting.

    Example:
        >>> line = command_line("powershell")
        >>> line.startswith("powershell -NoLogo") and len(line) < 2000
        True
    """
    return " ".join(powershell_argv(executable))


def _depth_exceeds(value: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[object] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_answer(output: object, *, target: str, operation: str) -> None:
    """Refuse an answer nested deeper than :data:`MAX_DEPTH`, without recursion.

    Raises:
        ProtocolError: It is nested too deeply.
    """
    # The output list and each object in it add two levels of their own.
    if _depth_exceeds(output, MAX_DEPTH + 2):
        raise ProtocolError(
            f"the answer nests lists or objects deeper than {MAX_DEPTH} levels; refused",
            target=target,
            operation=operation,
        )


def _tag(value: JsonValue) -> JsonValue:
    if isinstance(value, str):
        return _TAG + value
    if isinstance(value, Mapping):
        return {str(key): _tag(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tag(item) for item in value]
    return value


def _untag(value: Any) -> JsonValue:
    if isinstance(value, str):
        if not value.startswith(_TAG):
            raise ValueError("an untagged string in the parameters")
        return value[1:]
    if isinstance(value, dict):
        return {key: _untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item) for item in value]
    result: JsonValue = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def encode_request(
    request_id: int,
    operation: str,
    script: str,
    parameters: Mapping[str, JsonValue],
) -> bytes:
    """One request line.

    Args:
        request_id: A number the answer must repeat.
        operation: The operation name.
        script: The operation's whole shipped script.
        parameters: Its parameters by name.

    Returns:
        ASCII JSON and a newline.

    Raises:
        TypeError: A parameter value is not JSON.
        ValueError: A number is NaN or infinite.

    Example:
        >>> encode_request(1, "list_vms", "param($VM)", {"VM": [{"Name": "a'b"}]})
        b'{"v":1,"id":1,"operation":"list_vms","script":"param($VM)","parameters":{"VM":[{"Name":"~a\\'b"}]}}\\n'
    """
    request = {
        "v": WIRE_VERSION,
        "id": request_id,
        "operation": operation,
        "script": script,
        "parameters": {name: _tag(value) for name, value in parameters.items()},
    }
    text = json.dumps(request, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.encode("ascii") + b"\n"


@attrs.frozen
class Request:
    """A decoded request, as the PowerShell side sees it.

    Attributes:
        id: The request number.
        operation: The operation name.
        script: The script text.
        parameters: The parameters, tags removed.
    """

    id: int
    operation: str
    script: str = attrs.field(repr=False)
    parameters: Mapping[str, JsonValue]


def decode_request(line: bytes) -> Request:
    """Read one request line (the PowerShell side of :func:`encode_request`).

    Raises:
        ValueError: The line is not a version 1 request.
    """
    try:
        data = json.loads(line.decode("ascii"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not an ASCII JSON request: {exc}") from exc
    if not isinstance(data, dict) or set(data) != _REQUEST_FIELDS:
        raise ValueError("a request has exactly the fields " + ", ".join(sorted(_REQUEST_FIELDS)))
    if data["v"] != WIRE_VERSION or type(data["id"]) is not int:
        raise ValueError("unknown request version or id")
    if not isinstance(data["operation"], str) or not isinstance(data["script"], str):
        raise ValueError("operation and script must be strings")
    parameters = data["parameters"]
    if not isinstance(parameters, dict):
        raise ValueError("parameters must be an object")
    return Request(
        id=data["id"],
        operation=data["operation"],
        script=data["script"],
        parameters={name: _untag(value) for name, value in parameters.items()},
    )


def _record_json(record: ErrorRecord) -> dict[str, JsonValue]:
    return {field: getattr(record, field) for field in _RECORD_FIELDS}


def encode_envelope(
    request_id: int | None,
    *,
    output: tuple[Mapping[str, JsonValue], ...] = (),
    errors: tuple[ErrorRecord, ...] = (),
    error: ErrorRecord | None = None,
) -> bytes:
    """One answer line (the PowerShell side of :func:`decode_envelope`).

    Args:
        request_id: The request's number.
        output: The output objects.
        errors: The non-terminating error records.
        error: The terminating error record, if the script failed.

    Returns:
        A line end (an answer always starts on a line of its own), the
        prefix, ASCII JSON and a line end.
    """
    envelope = {
        "v": WIRE_VERSION,
        "id": request_id,
        "output": list(output),
        "errors": [_record_json(record) for record in errors],
        "error": None if error is None else _record_json(error),
    }
    text = json.dumps(envelope, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return b"\n" + ENVELOPE_PREFIX + text.encode("ascii") + b"\n"


@attrs.frozen
class Reply:
    """A decoded answer.

    Attributes:
        result: The output objects and non-terminating errors.
        error: The terminating error record, or ``None`` when the script ran
            to its end.
    """

    result: OperationResult
    error: ErrorRecord | None = None


def _record(value: object, where: str) -> ErrorRecord:
    if not isinstance(value, dict) or set(value) != set(_RECORD_FIELDS):
        raise ValueError(f"{where} is not an error record")
    for field in _RECORD_FIELDS:
        if field != "target_object" and not isinstance(value[field], str):
            raise ValueError(f"{where}.{field} is not a string")
    target_object = value["target_object"]
    if target_object is not None and type(target_object) not in (str, int, bool, float):
        raise ValueError(f"{where}.target_object is not a plain value")
    return ErrorRecord(**value)


def decode_envelope(
    frame: bytes,
    *,
    request_id: int,
    target: str,
    operation: str,
) -> Reply:
    """Read one answer, strictly.

    Args:
        frame: The line after :data:`ENVELOPE_PREFIX`, without the newline.
        request_id: The id of the request it must answer.
        target: The target URL, for errors.
        operation: The operation name, for errors.

    Returns:
        The output, the non-terminating errors and any terminating error.

    Raises:
        ProtocolError: The frame is not UTF-8, not JSON, not an envelope of
            this version, answers another request, or holds a malformed
            object or record.

    Example:
        >>> frame = encode_envelope(7, output=({"Name": "demovm"},))
        >>> body = frame.strip()[len(ENVELOPE_PREFIX) :]
        >>> reply = decode_envelope(body, request_id=7, target="local://", operation="x")
        >>> reply.result.output, reply.error
        (({'Name': 'demovm'},), None)
    """
    try:
        data = json.loads(frame.decode("utf-8"), parse_constant=_reject_constant)
        if not isinstance(data, dict) or set(data) != _ENVELOPE_FIELDS:
            raise ValueError(
                "an envelope has exactly the fields " + ", ".join(sorted(_ENVELOPE_FIELDS))
            )
        if data["v"] != WIRE_VERSION:
            raise ValueError(f"unknown envelope version {data['v']!r}")
        # A null id with an error is the session failing as a whole (the
        # bootstrap refusing a constrained language mode, or a request the
        # loop could not read): it answers whatever request is in flight.
        session_failure = data["id"] is None and data["error"] is not None
        if not session_failure and (data["id"] != request_id or type(data["id"]) is not int):
            raise ValueError(f"it answers request {data['id']!r}, not {request_id}")
        output, errors = data["output"], data["errors"]
        if not isinstance(output, list) or not isinstance(errors, list):
            raise ValueError("output and errors must be lists")
        for index, item in enumerate(output):
            if not isinstance(item, dict):
                raise ValueError(f"output[{index}] is not an object")
        records = tuple(_record(item, f"errors[{index}]") for index, item in enumerate(errors))
        error = None if data["error"] is None else _record(data["error"], "error")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"PowerShell answered with bytes that are not UTF-8 (at offset {exc.start})",
            target=target,
            operation=operation,
        ) from None
    except RecursionError:
        raise ProtocolError(
            "PowerShell answered with an envelope nested too deeply to read",
            target=target,
            operation=operation,
        ) from None
    except (ValueError, TypeError) as exc:
        raise ProtocolError(
            f"PowerShell answered with a malformed envelope: {_shorten(str(exc))}",
            target=target,
            operation=operation,
        ) from None
    check_answer(output, target=target, operation=operation)
    return Reply(OperationResult(tuple(output), records), error)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class EndOfOutput(Exception):
    """The process closed stdout before a whole envelope line arrived.

    Attributes:
        partial: Whether part of an envelope line had arrived.
        noise: The last noise lines seen, for the error message.
    """

    def __init__(self, *, partial: bool, noise: str) -> None:
        super().__init__("end of output")
        self.partial = partial
        self.noise = noise


_BOM = b"\xef\xbb\xbf"


class FrameReader:
    """Find envelope lines in a byte stream, within a size limit.

    Args:
        read: Reads up to *n* bytes; ``b""`` at the end of the stream.
        max_bytes: The most one :meth:`next_frame` call may consume.
    """

    _CHUNK = 256 * 1024
    _NOISE_KEPT = 2048

    def __init__(self, read: Callable[[int], Awaitable[bytes]], *, max_bytes: int) -> None:
        self._read = read
        self._max_bytes = max_bytes
        self._buffer = bytearray()
        self._noise = b""

    async def next_frame(self, *, target: str, operation: str) -> bytes:
        """The next envelope line, without prefix and line end.

        Args:
            target: The target URL, for errors.
            operation: The operation name, for errors.

        Returns:
            The bytes after :data:`ENVELOPE_PREFIX`.

        Raises:
            AnswerTooLargeError: The envelope line, with what came before it,
                is more than ``max_bytes``, whether it arrived in one read or
                in many.
            EndOfOutput: The stream ended first.
        """
        consumed = 0
        # Where the search for a line end resumes, so that a long answer
        # arriving in many chunks is scanned once, not once per chunk.
        searched = 0
        while True:
            end = self._buffer.find(b"\n", searched)
            while end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                consumed += end + 1
                # Every answer starts a line of its own (the loop writes a
                # line end before it), so text the shell wrote without a
                # line end (a banner, a prompt) stays on the line before.
                # The prefix anywhere else is noise: text printed before the
                # loop started must never pass for an answer.
                head = line.lstrip(b"\r")
                if head.startswith(_BOM):
                    head = head[len(_BOM) :]
                if head.startswith(ENVELOPE_PREFIX):
                    if consumed > self._max_bytes:
                        # Whole, but over the bound: refused as if cut.
                        self._buffer.clear()
                        raise self._too_large(target, operation)
                    return head[len(ENVELOPE_PREFIX) :].rstrip(b"\r")
                self._noise = (self._noise + line + b"\n")[-self._NOISE_KEPT :]
                end = self._buffer.find(b"\n")
            searched = len(self._buffer)
            if consumed + len(self._buffer) > self._max_bytes:
                self._buffer.clear()
                raise self._too_large(target, operation)
            chunk = await self._read(self._CHUNK)
            if not chunk:
                rest = bytes(self._buffer)
                partial = ENVELOPE_PREFIX in rest or rest.startswith(ENVELOPE_PREFIX[: len(rest)])
                raise EndOfOutput(
                    partial=bool(self._buffer) and partial,
                    noise=(self._noise + bytes(self._buffer)).decode("utf-8", "replace").strip(),
                )
            self._buffer += chunk

    def _too_large(self, target: str, operation: str) -> AnswerTooLargeError:
        return AnswerTooLargeError(
            f"the answer is more than {self._max_bytes} bytes, the most one operation "
            "may return (the target's max_output setting); refused",
            max_output=self._max_bytes,
            target=target,
            operation=operation,
        )
