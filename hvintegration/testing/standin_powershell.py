"""A stand-in PowerShell executable that speaks the library's wire contract.

PowerShell cannot run everywhere the library is tested, so this program
takes its place: it accepts the flags the transports pass, decodes the
``-EncodedCommand`` argument and refuses to go on unless it is exactly the
shipped bootstrap, checks that the first stdin line is exactly the shipped
session loop, then answers each request line with an envelope line, as
``_runner.ps1`` does (see :mod:`hvintegration.transport._powershell_wire`).
Operations run against a simulated host kept in a state file, through the
same :func:`~hvintegration.simulator.engine.run_simulated_call` as every
simulated peer, so injected latency, hangs, errors and disconnects behave
as on a wire. Like the real loop, it exits when stdin closes, also in the
middle of an operation.

Run it as ``python -m hvintegration.testing.standin_powershell`` or as the
``hvintegration-standin-powershell`` command, with the environment variable
:data:`STATE_VARIABLE` naming the state file (and :data:`GUEST_VARIABLE`
naming a VM to play PowerShell inside that Windows guest);
:func:`install_standin` writes small ``pwsh`` and ``powershell`` wrappers
that do both.

More variables make it play a PowerShell that is not the usual one:
:data:`BANNER_VARIABLE` (text the outer shell prints without a line end
before the loop starts, as a profile or a login banner would),
:data:`DEEP_VARIABLE` (an answer nested deeper than any reader should follow),
:data:`LANGUAGE_VARIABLE` (a language mode other than ``FullLanguage``) and
:data:`EDITION_VARIABLE` with :data:`BUILD_VARIABLE` (PowerShell 7 on an
older Windows build). For those it does what the shipped scripts do there,
read from their text: the bootstrap's language check, the prelude's
edition check. Where a script has no such check it fails as PowerShell
itself would.

Example:
    >>> import asyncio, tempfile, os
    >>> from hvintegration.operations import LIST_VMS
    >>> from hvintegration.transport.local import LocalTarget
    >>> directory = tempfile.mkdtemp()
    >>> pwsh = install_standin(directory, os.path.join(directory, "host.json"))["pwsh"]
    >>> async def main():
    ...     async with LocalTarget(executable=str(pwsh)).open() as transport:
    ...         result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=10)
    ...     return [vm["Name"] for vm in result.output]
    >>> asyncio.run(main())
    ['demovm']
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import select
import shlex
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hvintegration.operations import OPERATIONS
from hvintegration.simulator.engine import CallOutcome, run_simulated_call
from hvintegration.simulator.model import FaultKind, SimulatedHost
from hvintegration.simulator.state import append_call, edit_state, load_host, save_host
from hvintegration.transport._powershell_wire import (
    BOOTSTRAP,
    RUNNER_LINE,
    decode_request,
    encode_envelope,
)
from hvintegration.transport.base import ErrorRecord, JsonValue

__all__ = [
    "BANNER_VARIABLE",
    "BUILD_VARIABLE",
    "DEEP_VARIABLE",
    "EDITION_VARIABLE",
    "GUEST_VARIABLE",
    "LANGUAGE_VARIABLE",
    "LOG_VARIABLE",
    "READ_ONLY_OPERATIONS",
    "STATE_VARIABLE",
    "edition_refusal",
    "install_standin",
    "main",
    "password_digest",
]

STATE_VARIABLE = "HVINTEGRATION_STANDIN_STATE"
"""Names the simulated host's state file (required)."""

GUEST_VARIABLE = "HVINTEGRATION_STANDIN_GUEST"
"""Names a VM of the simulated host; when set, the stand-in is PowerShell
inside that Windows guest (as reached by ``ssh://...?shell=powershell`` to
the guest) instead of on the host."""

LOG_VARIABLE = "HVINTEGRATION_STANDIN_LOG"
"""Names a file the stand-in appends one JSON line to per start (its argv
and ``pid``), per request (the decoded ``operation`` and ``parameters``,
then ``begun`` with the operation and the ``process`` id) and per answer,
just before it is written (``answered`` with the operation and the
``process`` id), so tests
can see exactly what arrived, in which process, and which calls overlapped.
A ``Password`` parameter is logged as :func:`password_digest` of it, never as
itself: the log is a file a test leaves behind."""


def password_digest(password: str) -> str:
    """How the stand-in's log shows a password: a SHA-256 digest of its UTF-8
    bytes (``surrogatepass``, so any string has one), enough for a test to
    check that exactly the password sent arrived.

    Example:
        >>> password_digest("s3cret")[:15]
        'sha256:1ec1c26b'
    """
    data = password.encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(data).hexdigest()


BANNER_VARIABLE = "HVINTEGRATION_STANDIN_BANNER"
"""Text written to stdout, with no line end, before the session loop starts."""

LANGUAGE_VARIABLE = "HVINTEGRATION_STANDIN_LANGUAGE_MODE"
"""The language mode to play (``FullLanguage`` when unset), such as
``ConstrainedLanguage`` under a WDAC or AppLocker lockdown."""

DEEP_VARIABLE = "HVINTEGRATION_STANDIN_DEEP_ANSWER"
"""``OPERATION`` or ``OPERATION:LEVELS``: that operation is answered with one
output object nested ``LEVELS`` deep (100000 when not given), written as
text, as a broken or hostile peer could."""

EDITION_VARIABLE = "HVINTEGRATION_STANDIN_EDITION"
"""``Desktop`` (Windows PowerShell 5.1, when unset) or ``Core`` (PowerShell 7)."""

BUILD_VARIABLE = "HVINTEGRATION_STANDIN_OS_BUILD"
"""The Windows build to play (``20348``, Windows Server 2022, when unset);
Windows Server 2016 is ``14393``."""

# PowerShell 7 runs the Hyper-V module natively from Windows Server 2019 /
# Windows 10 1809 (build 17763) on ("PowerShell 7 module compatibility").
_NATIVE_HYPERV_BUILD = 17763
# Operations whose scripts pass Get-VM's objects to a -VM parameter.
_VM_PARAMETER_OPERATIONS = {
    "get_integration_services",
    "set_integration_services",
    "copy_vm_file",
    "invoke_in_vm",
}
# Operations that change nothing on the host or guest: answered from the
# host last loaded, while the state file is unchanged, and counted in the
# file's call journal instead of rewriting the file (see _Reads).
READ_ONLY_OPERATIONS = frozenset(
    {"list_vms", "get_integration_services", "get_guest_services", "preflight", "guest_preflight"}
)
_SWITCHES = {"-nologo", "-noprofile", "-noninteractive"}
_VALUED = {"-executionpolicy", "-outputformat", "-inputformat"}
_ENCODED = {"-encodedcommand", "-enc", "-ec", "-e"}
# PowerShell exits with 64 for a command line it cannot parse.
_BAD_USAGE = 64
_STDIN_CLOSED = 3


class _Stdin:
    """Lines from fd 0, read without buffering beyond our own, so that
    select() can tell when the caller closes stdin."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False

    def _fill(self, timeout: float | None) -> bool:
        """Read what is there within ``timeout``; False when nothing came."""
        if self._eof:
            return False
        ready, _, _ = select.select([0], [], [], timeout)
        if not ready:
            return False
        chunk = os.read(0, 65536)
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def readline(self) -> bytes | None:
        while b"\n" not in self._buffer:
            if self._eof:
                return None
            self._fill(None)
        end = self._buffer.index(b"\n")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        return line.rstrip(b"\r")

    def wait(self, seconds: float | None) -> None:
        """Wait (forever when ``None``), ending the process if stdin closes,
        as the real loop does while an operation runs."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            self._fill(left)
            if self._eof:
                os._exit(_STDIN_CLOSED)


def _fail(message: str, status: int = 1) -> int:
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()
    return status


def _log(entry: dict[str, object]) -> None:
    path = os.environ.get(LOG_VARIABLE)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")


def _encoded_command(argv: Sequence[str]) -> str | None:
    """The -EncodedCommand value after checking every flag, as PowerShell would."""
    encoded = None
    words = iter(argv)
    for word in words:
        flag = word.lower()
        if flag in _SWITCHES:
            continue
        if flag in _VALUED or flag in _ENCODED:
            value = next(words, None)
            if value is None:
                raise ValueError(f"Missing argument for parameter {word}.")
            if flag in _ENCODED:
                encoded = value
            continue
        raise ValueError(f"unknown argument {word!r}")
    return encoded


def _write(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _bootstrap_refusal(mode: str) -> bytes | None:
    """What the shipped bootstrap writes in ``mode``, read from its text.

    The bootstrap outputs an empty line and then one string built from
    single-quoted pieces and ``$hvMode``; ``None`` when it has no such check.
    """
    lines = BOOTSTRAP.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("'#hvi1:"):
            text = ""
            for piece in line.split(" + "):
                if piece == "$hvMode":
                    text += mode
                elif len(piece) >= 2 and piece[0] == piece[-1] == "'":
                    text += piece[1:-1].replace("''", "'")
                else:
                    return None
            blank = "\n" if index > 0 and lines[index - 1] == "''" else ""
            return (blank + text + "\n").encode("ascii")
    return None


def edition_refusal(operation: str, edition: str, build: int) -> ErrorRecord | None:
    """How PowerShell ``edition`` on Windows ``build`` answers a shipped operation.

    ``None`` where it runs the operation normally. PowerShell 7 (``Core``)
    on a build older than 17763 answers a host operation with the prelude's
    own error where the script checks for it, else with the parameter
    binding error the Hyper-V cmdlets give deserialized objects.

    Args:
        operation: The operation name.
        edition: ``Desktop`` or ``Core``.
        build: The Windows build number.

    Returns:
        The terminating error record, or ``None``.
    """
    if edition != "Core" or build >= _NATIVE_HYPERV_BUILD:
        return None
    known = OPERATIONS.get(operation)
    if known is None or known.side != "host":
        return None
    if "Import-HvHyperV" in known.script and f"-lt {_NATIVE_HYPERV_BUILD}" in known.script:
        return ErrorRecord(
            f"PowerShell 7.4.6 on 'STANDIN' (Windows build {build}) has no native Hyper-V "
            f"module; it needs Windows build {_NATIVE_HYPERV_BUILD} or newer. Use Windows "
            "PowerShell 5.1 instead: executable=powershell for local:// and ssh://, or the "
            "default WinRM endpoint configuration=Microsoft.PowerShell for psrp://.",
            error_id="HvIntegration.PowerShellCoreWithoutHyperV,Import-HvHyperV",
            category="NotImplemented",
            exception_type="Microsoft.PowerShell.Commands.WriteErrorException",
            target_object="STANDIN",
        )
    if operation not in _VM_PARAMETER_OPERATIONS:
        return None
    # What the Hyper-V cmdlets say to the deserialized objects that Windows
    # PowerShell compatibility hands back.
    return ErrorRecord(
        "Cannot bind parameter 'VM'. Cannot convert the \"demovm\" value of type "
        '"Deserialized.Microsoft.HyperV.PowerShell.VirtualMachine" to type '
        '"Microsoft.HyperV.PowerShell.VirtualMachine".',
        error_id="CannotConvertArgumentNoMessage,"
        "Microsoft.HyperV.PowerShell.Commands.GetVMIntegrationService",
        category="InvalidArgument",
        exception_type="System.Management.Automation.ParameterBindingException",
    )


def _edition() -> tuple[str, int]:
    return os.environ.get(EDITION_VARIABLE) or "Desktop", int(
        os.environ.get(BUILD_VARIABLE) or "20348"
    )


def _deep_answer(operation: str, request_id: int) -> bytes | None:
    """The envelope :data:`DEEP_VARIABLE` asks for, or ``None``."""
    wanted, _, levels = (os.environ.get(DEEP_VARIABLE) or "").partition(":")
    if wanted != operation:
        return None
    depth = int(levels or "100000")
    # Text, not json.dumps: the encoder would recurse as deep as the value.
    nested = '{"Inner":' * depth + '"bottom"' + "}" * depth
    envelope = f'{{"v":1,"id":{request_id},"output":[{nested}],"errors":[],"error":null}}'
    return b"\n#hvi1:" + envelope.encode("ascii") + b"\n"


class _Reads:
    """The host as last loaded from the state file, for read-only calls.

    Rewriting the whole state file on every call made each answer cost
    O(VMs) in the test double itself; a read now loads the file only when
    another call has replaced it (a write replaces the file, so its inode,
    size or modification time changes), changes nothing in it, and appends
    its call to the journal that :func:`~hvintegration.simulator.state.load_host`
    counts. A read that a pending fault would answer goes the write way,
    because taking the fault changes the host.
    """

    def __init__(self, state: str) -> None:
        self._state = state
        self._stamp: tuple[int, int, int] | None = None
        self._host: SimulatedHost | None = None

    def host(self) -> SimulatedHost:
        status = os.stat(self._state)
        stamp = (status.st_ino, status.st_size, status.st_mtime_ns)
        if self._host is None or stamp != self._stamp:
            self._host, self._stamp = load_host(self._state), stamp
        return self._host

    def call(
        self, operation: str, parameters: Mapping[str, JsonValue], guest: str | None
    ) -> CallOutcome:
        if operation in READ_ONLY_OPERATIONS:
            host = self.host()
            if not any(fault.operation in (None, operation) for fault in host.faults):
                outcome = run_simulated_call(host, operation, parameters, guest=guest)
                append_call(self._state, operation)
                return outcome
        with edit_state(self._state) as changed:
            return run_simulated_call(changed, operation, parameters, guest=guest)


def _serve(state: str, guest: str | None, stdin: _Stdin) -> int:
    reads = _Reads(state)
    while True:
        line = stdin.readline()
        if line is None:
            return 0
        if not line:
            continue
        try:
            request = decode_request(line)
        except ValueError as exc:
            # The real loop reports an unreadable request as a terminating
            # error with no id.
            record = ErrorRecord(str(exc), error_id="InvalidRequest", category="InvalidData")
            _write(encode_envelope(None, error=record))
            continue
        logged = {
            name: password_digest(value)
            if name.casefold() == "password" and isinstance(value, str)
            else value
            for name, value in request.parameters.items()
        }
        _log({"operation": request.operation, "parameters": logged})
        _log({"begun": request.operation, "process": os.getpid()})
        operation = OPERATIONS.get(request.operation)
        if operation is None or request.script != operation.script:
            record = ErrorRecord(
                f"stand-in: the script for {request.operation!r} is not the shipped one",
                error_id="HvIntegration.StandIn.UnknownScript",
                category="InvalidData",
            )
            _write(encode_envelope(request.id, error=record))
            continue
        deep = _deep_answer(request.operation, request.id)
        if deep is not None:
            _write(deep)
            continue
        refusal = None if guest is not None else edition_refusal(request.operation, *_edition())
        if refusal is not None:
            _write(encode_envelope(request.id, error=refusal))
            continue
        outcome = reads.call(request.operation, request.parameters, guest)
        if outcome.latency:
            stdin.wait(outcome.latency)
        if outcome.fault is FaultKind.HANG:
            stdin.wait(None)
        if outcome.fault is FaultKind.DISCONNECT:
            # The process dies without an answer: the caller's pipe breaks.
            os._exit(1)
        if outcome.error is not None:
            _write(encode_envelope(request.id, error=outcome.error))
            continue
        assert outcome.result is not None
        # Logged before the answer goes out, so that a caller who has the
        # answer finds the entry in the log.
        _log({"answered": request.operation, "process": os.getpid()})
        _write(
            encode_envelope(request.id, output=outcome.result.output, errors=outcome.result.errors)
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in; the arguments are PowerShell's.

    Args:
        argv: The arguments after the program name; ``sys.argv[1:]`` when
            ``None``.

    Returns:
        The exit status: 0 when stdin ended, 64 for a bad command line, 1
        when the bootstrap, the first line or the state file is wrong, 3
        when stdin closed during an operation.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    _log({"pid": os.getpid(), "argv": args})
    try:
        encoded = _encoded_command(args)
    except ValueError as exc:
        return _fail(f"stand-in PowerShell: {exc}", _BAD_USAGE)
    if encoded is None:
        return _fail("stand-in PowerShell: no -EncodedCommand given", _BAD_USAGE)
    try:
        command = base64.b64decode(encoded, validate=True).decode("utf-16-le")
    except (binascii.Error, UnicodeDecodeError):
        return _fail("Cannot process the command because the value of -EncodedCommand is invalid.")
    if command != BOOTSTRAP:
        return _fail("stand-in PowerShell: -EncodedCommand is not the shipped bootstrap")
    state = os.environ.get(STATE_VARIABLE)
    if not state or not os.path.exists(state):
        return _fail(f"stand-in PowerShell: set {STATE_VARIABLE} to a simulated host state file")
    mode = os.environ.get(LANGUAGE_VARIABLE) or "FullLanguage"
    if mode != "FullLanguage":
        refusal = _bootstrap_refusal(mode)
        if refusal is None:
            # What PowerShell itself says to the bootstrap's first .NET call.
            return _fail(
                "Cannot invoke method. Method invocation is supported only on core types "
                "in this language mode."
            )
        _write(refusal)
        return 1
    banner = os.environ.get(BANNER_VARIABLE)
    if banner:
        _write(banner.encode("utf-8"))
    stdin = _Stdin()
    first = stdin.readline()
    if first is None:
        return 0
    if first + b"\n" != RUNNER_LINE:
        return _fail("stand-in PowerShell: the first stdin line is not the shipped session loop")
    return _serve(state, os.environ.get(GUEST_VARIABLE) or None, stdin)


def install_standin(
    directory: str | os.PathLike[str],
    state: str | os.PathLike[str],
    *,
    names: Iterable[str] = ("pwsh", "powershell"),
    log: str | os.PathLike[str] | None = None,
    guest: str | None = None,
    python: str = sys.executable,
    environment: Mapping[str, str] | None = None,
) -> dict[str, Path]:
    """Write executable wrappers that start the stand-in on a state file.

    Put ``directory`` on a PATH (a child's, or an sshd's ``SetEnv PATH=``),
    or pass a wrapper's path as a transport's ``executable``.

    Args:
        directory: Where to write the wrappers; created if missing.
        state: The simulated host's state file; a default host is written
            when it does not exist.
        names: The wrappers' file names.
        log: A file for :data:`LOG_VARIABLE`, if wanted.
        guest: A VM name for :data:`GUEST_VARIABLE`: PowerShell inside
            that Windows guest instead of on the host.
        python: The interpreter that runs the stand-in.
        environment: More variables for the stand-in, such as
            :data:`BANNER_VARIABLE` or :data:`LANGUAGE_VARIABLE`.

    Returns:
        Each name's wrapper path.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if not os.path.exists(state):
        save_host(SimulatedHost(), state)
    lines = ["#!/bin/sh", f"export {STATE_VARIABLE}={shlex.quote(_absolute(state))}"]
    if log is not None:
        lines.append(f"export {LOG_VARIABLE}={shlex.quote(_absolute(log))}")
    if guest is not None:
        lines.append(f"export {GUEST_VARIABLE}={shlex.quote(guest)}")
    for name, value in (environment or {}).items():
        lines.append(f"export {name}={shlex.quote(value)}")
    lines.append(f'exec {shlex.quote(python)} -m hvintegration.testing.standin_powershell "$@"')
    script = "\n".join(lines) + "\n"
    wrappers = {}
    for name in names:
        path = folder / name
        path.write_text(script)
        path.chmod(0o755)
        wrappers[name] = path
    return wrappers


def _absolute(path: str | os.PathLike[str]) -> str:
    return os.fspath(Path(path).absolute())


if __name__ == "__main__":
    sys.exit(main())
