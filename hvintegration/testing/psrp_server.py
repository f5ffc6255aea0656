"""A PowerShell Remoting Protocol server for tests, backed by the simulator.

It speaks the out-of-process form of PSRP that ``pwsh -ServerMode`` and the
``powershell`` SSH subsystem speak: one XML element per line on stdin
(``<Data>``, ``<Command>``, ``<Signal>``, ``<Close>``, each with a
``PSGuid``) and the matching answers and ``...Ack`` elements on stdout. The
runspace pool handshake, fragments and CLIXML are psrpcore's server classes
(:class:`psrpcore.ServerRunspacePool`, :class:`psrpcore.ServerPipeline`);
so a client talking to it holds a real PSRP conversation.

Instead of running PowerShell, it recognises the library's fixed operation
scripts by their exact text, reads the PSRP parameters of the call, and
answers through :func:`~hvintegration.simulator.engine.run_simulated_call`
on a host kept in a state file, so a test can change that host between
calls. A pipeline of the operation's script piped into the shipped output
command (:data:`~hvintegration.operations._psrp_output.PSRP_OUTPUT`) is
answered as PowerShell would run it: one string, the compact JSON array
that ``ConvertTo-Json -Compress`` writes for the output objects (with
Windows PowerShell 5.1's escapes when the server plays that edition); the
script alone is answered with one object per record. Like a real runspace
pool, it keeps a session scope across pipelines: a script sent without
``use_local_scope`` runs dot-sourced, so the variables it assigns stay in
that scope, and every later pipeline that would see them
answers with an extra error record (``HvIntegrationTest.VariableFromEarlierOperation``)
naming them. Faults injected into the host behave as on a wire: ``hang`` never
answers that pipeline, ``disconnect`` makes the server exit abruptly in the
middle of the pipeline, and the host's latency delays each answer.

Run it as::

    python -m hvintegration.testing.psrp_server --state /path/to/host.json

On the happy path it writes nothing but protocol to stdout and nothing at
all to stderr: pypsrp's client reads both from one stream on some
connections. ``--garbage-on``, ``--stderr-on`` and ``--stop-on``, each
followed by an operation name, and ``--ignore-close`` make it misbehave on
purpose, for fault tests. ``--language-mode`` plays an endpoint in another
language mode (``NoLanguage`` for a JEA endpoint), and ``--edition Core``
with ``--os-build`` plays PowerShell 7 on an older Windows build; each
answers as PowerShell and the shipped scripts would there.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import sys
import threading
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping, Sequence

from psrpcore import (
    Command,
    CreatePipelineEvent,
    PSRPPayload,
    ServerPipeline,
    ServerRunspacePool,
    StreamType,
)
from psrpcore.types import PSCustomObject, PSInvocationState

from hvintegration.operations import OPERATIONS
from hvintegration.operations._psrp_output import PSRP_OUTPUT
from hvintegration.simulator.engine import CallOutcome, run_simulated_call
from hvintegration.simulator.model import FaultKind
from hvintegration.simulator.session import language_record
from hvintegration.simulator.state import edit_state
from hvintegration.testing.standin_powershell import edition_refusal
from hvintegration.transport._clixml import (
    category_to_ps,
    details_to_ps,
    error_to_ps,
    exception_to_ps,
    from_wire,
    to_wire,
)
from hvintegration.transport.base import ErrorRecord, JsonValue

__all__ = [
    "FRAGMENT_SIZE",
    "GARBAGE",
    "PSRPTestServer",
    "json_output",
    "language_refusal",
    "main",
    "serve",
]

_EMPTY = uuid.UUID(int=0)
_DISCONNECT_STATUS = 3
_ASSIGNED = re.compile(r"\$(?:script:|global:)?([A-Za-z_][A-Za-z0-9_]*)\s*[-+*/]?=(?!=)")
FRAGMENT_SIZE = 32 * 1024
"""The most bytes of PSRP fragments the server puts in one ``<Data>`` line:
PowerShell's own ``DefaultFragmentSize`` (32 KB, in
``src/System.Management.Automation/engine/remoting/fanin/BaseTransportManager.cs``),
so a large answer arrives as many lines, as it does from ``pwsh``."""
GARBAGE = b"this is not PSRP <<<\n"
"""The line ``--garbage-on`` writes to stdout instead of an answer."""


class _ScriptRejected(Exception):
    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record


def _assigned_variables(script: str) -> set[str]:
    """The variables a script assigns: what dot-sourcing it leaves in the session scope."""
    return {match.group(1).lower() for match in _ASSIGNED.finditer(script)} - {"null"}


def _identify(commands: Sequence[Command]) -> tuple[str, dict[str, JsonValue], bool]:
    """The operation name and parameters of a pipeline, and whether it ends in
    the JSON output command; or _ScriptRejected."""
    as_json = len(commands) == 2 and _is_output_command(commands[1])
    if len(commands) != 1 and not as_json:
        raise _ScriptRejected(
            ErrorRecord(
                "The test server runs one operation script per pipeline, alone or piped "
                "into the library's output command.",
                error_id="HvIntegrationTest.UnsupportedPipeline",
                category="NotImplemented",
                exception_type="System.NotSupportedException",
            )
        )
    command = commands[0]
    text = command.command_text
    name = next(
        (op.name for op in OPERATIONS.values() if command.is_script and text == op.script),
        None,
    )
    if name is None:
        raise _ScriptRejected(
            ErrorRecord(
                "The test server only runs the library's operation scripts, unchanged; "
                f"it was sent another script ({len(text)} characters).",
                error_id="HvIntegrationTest.UnknownScript",
                category="InvalidArgument",
                exception_type="System.Management.Automation.CommandNotFoundException",
            )
        )
    parameters: dict[str, JsonValue] = {}
    declared = OPERATIONS[name].parameters
    for key, value in command.parameters:
        if key is None or key not in declared:
            what = "a positional argument" if key is None else f"parameter {key!r}"
            raise _ScriptRejected(
                ErrorRecord(
                    f"A parameter cannot be found that matches {what}.",
                    error_id="NamedParameterNotFound",
                    category="InvalidArgument",
                    exception_type="System.Management.Automation.ParameterBindingException",
                )
            )
        parameters[key] = from_wire(value)
    return name, parameters, as_json


def _is_output_command(command: Command) -> bool:
    return command.is_script and command.command_text == PSRP_OUTPUT and not command.parameters


def json_output(output: Sequence[JsonValue], edition: str = "Desktop") -> str:
    """What the output command writes for ``output``: ``ConvertTo-Json -Compress``.

    PowerShell 7's ``ConvertTo-Json`` (Newtonsoft.Json, ``StringEscapeHandling``
    ``Default``) escapes only quotes, backslashes and control characters.
    Windows PowerShell 5.1's is built on ``JavaScriptSerializer``, which also
    writes ``<``, ``>``, ``&`` and ``'`` as ``\\uXXXX`` escapes; so does the
    ``Desktop`` edition here, so that a client reading it meets those escapes.
    PowerShell 7 offers the same as ``-EscapeHandling EscapeHtml``
    ("ConvertTo-Json",
    https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/convertto-json).
    The output command then writes every UTF-16 unit beyond U+007E as a
    ``\\uXXXX`` escape (lower-case hex, a surrogate pair as two escapes),
    so the string is ASCII on both editions, as here.

    Args:
        output: The operation's output objects, plain JSON values.
        edition: ``Desktop`` (Windows PowerShell 5.1) or ``Core``.

    Returns:
        The JSON text.

    Example:
        >>> json_output([{"Name": "<a>"}])
        '[{"Name":"\\\\u003ca\\\\u003e"}]'
        >>> json_output([{"Name": "<a>"}], "Core")
        '[{"Name":"<a>"}]'
        >>> json_output([{"Name": "\\ufffe\\x7f\\U0001f600"}], "Core")
        '[{"Name":"\\\\ufffe\\\\u007f\\\\ud83d\\\\ude00"}]'
    """
    # ensure_ascii escapes as the output command's [regex]::Replace does,
    # but for U+007F, which JSON leaves as it is.
    text = json.dumps(list(output), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    text = text.replace("\x7f", "\\u007f")
    if edition == "Desktop":
        # Outside strings, JSON has none of these characters.
        for character in "<>&'":
            text = text.replace(character, f"\\u{ord(character):04x}")
    return text


def language_refusal(operation: str, mode: str) -> ErrorRecord | None:
    """How a runspace in language ``mode`` answers a shipped operation script.

    ``None`` in ``FullLanguage``. NoLanguage refuses every script
    (``Command.CreateCommandProcessor`` in PowerShell's
    ``engine/hostifaces/Command.cs``); RestrictedLanguage refuses the
    script's ``param()`` block (``RestrictedLanguageChecker`` in
    ``engine/parser/SemanticChecks.cs``); ConstrainedLanguage runs the
    script, whose prelude reports the mode, or, without that check, fails at
    its first method call on a type that is not a core type (``Binders.cs``).

    Args:
        operation: The operation name.
        mode: The language mode.

    Returns:
        The terminating error record, or ``None``.
    """
    if mode == "FullLanguage":
        return None
    if mode == "NoLanguage":
        return language_record(mode)
    if mode == "RestrictedLanguage":
        return ErrorRecord(
            "Parameter declarations are not allowed in restricted language mode or a Data section.",
            error_id="ParameterDeclarationNotSupportedInDataSection",
            category="ParserError",
            exception_type="System.Management.Automation.ParseException",
        )
    script = OPERATIONS[operation].script
    if "$ExecutionContext.SessionState.LanguageMode -ne 'FullLanguage'" in script:
        return language_record(mode)
    return ErrorRecord(
        "Cannot invoke method. Method invocation is supported only on core types in this "
        "language mode.",
        error_id="MethodInvocationNotSupportedInConstrainedLanguage",
        category="InvalidOperation",
        exception_type="System.Management.Automation.RuntimeException",
    )


class PSRPTestServer:
    """The protocol state of one out-of-process PSRP session.

    Feed it the lines read from the client with :meth:`handle_line`; it
    writes answers through ``write``. It serves one runspace pool, several
    pipelines at once.

    Args:
        state_path: The simulated host's state file.
        write: Writes bytes to the client; called from the event loop only.
        garbage_on: Operations answered with a line that is not PSRP.
        stderr_on: Operations before which the server writes to stderr.
        stop_on: Operations whose pipeline the server stops by itself, as an
            administrator or a shutting-down host would.
        deep_on: Operations answered with one object nested
            :data:`DEEP_LEVELS` levels deep, more than any reader should
            follow.
        ignore_close: Never answer the client closing the pool.
        language_mode: The language mode the endpoint plays.
        edition: ``Desktop`` (Windows PowerShell 5.1) or ``Core`` (PowerShell 7).
        os_build: The Windows build the endpoint plays.
    """

    def __init__(
        self,
        state_path: str,
        write: Callable[[bytes], None],
        *,
        garbage_on: Sequence[str] = (),
        stderr_on: Sequence[str] = (),
        stop_on: Sequence[str] = (),
        ignore_close: bool = False,
        language_mode: str = "FullLanguage",
        edition: str = "Desktop",
        os_build: int = 20348,
        deep_on: Sequence[str] = (),
    ) -> None:
        self.state_path = state_path
        self._language_mode = language_mode
        self._edition = edition
        self._os_build = os_build
        self._write = write
        self._garbage_on = frozenset(garbage_on)
        self._stderr_on = frozenset(stderr_on)
        self._stop_on = frozenset(stop_on)
        self._deep_on = frozenset(deep_on)
        self._ignore_close = ignore_close
        self._pool = ServerRunspacePool()
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.session_variables: set[str] = set()
        """Variables left in the pool's session scope by dot-sourced scripts."""
        self.closed = False

    def _packet(self, tag: str, ps_guid: uuid.UUID | None) -> None:
        self._write(f"<{tag} PSGuid='{ps_guid or _EMPTY}' />\n".encode())

    def _flush(self) -> None:
        while True:
            # At most one PowerShell fragment per line, as PowerShell sends.
            payload = self._pool.data_to_send(FRAGMENT_SIZE)
            if payload is None:
                return
            stream = "Default" if payload.stream_type == StreamType.default else "PromptResponse"
            data = base64.b64encode(payload.data).decode()
            guid = payload.pipeline_id or _EMPTY
            self._write(f"<Data Stream='{stream}' PSGuid='{guid}'>{data}</Data>\n".encode())

    def handle_line(self, line: bytes) -> None:
        """Act on one element from the client.

        Raises:
            ValueError: The line is not an out-of-process element.
        """
        element = ElementTree.fromstring(line)
        guid = uuid.UUID(element.attrib["PSGuid"])
        pipeline_id = None if guid == _EMPTY else guid
        if element.tag == "Data":
            stream = (
                StreamType.prompt_response
                if element.attrib.get("Stream") == "PromptResponse"
                else StreamType.default
            )
            data = base64.b64decode(element.text or "")
            self._pool.receive_data(PSRPPayload(data, stream, pipeline_id))
            while True:
                event = self._pool.next_event()
                if event is None:
                    break
                if isinstance(event, CreatePipelineEvent):
                    self._start(event)
            self._flush()
            self._packet("DataAck", pipeline_id)
        elif element.tag == "Command" and pipeline_id is not None:
            # The pipeline must exist before its CreatePipeline data arrives.
            ServerPipeline(self._pool, pipeline_id)
            self._packet("CommandAck", pipeline_id)
        elif element.tag == "Signal" and pipeline_id is not None:
            self._stop(pipeline_id)
            self._flush()
            self._packet("SignalAck", pipeline_id)
        elif element.tag == "Close":
            if pipeline_id is None and self._ignore_close:
                return
            if pipeline_id is None:
                self._close_pool()
            else:
                self._forget(pipeline_id)
            self._flush()
            self._packet("CloseAck", pipeline_id)
        else:
            raise ValueError(f"unexpected element {element.tag}")

    def _start(self, event: CreatePipelineEvent) -> None:
        assert event.pipeline_id is not None
        pipeline = self._pool.pipeline_table[event.pipeline_id]
        pipeline.start()
        task = asyncio.ensure_future(self._run(pipeline, list(event.pipeline.commands)))
        self._tasks[event.pipeline_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(event.pipeline_id, None))

    def _stop(self, pipeline_id: uuid.UUID) -> None:
        task = self._tasks.pop(pipeline_id, None)
        if task is not None:
            task.cancel()
        pipeline = self._pool.pipeline_table.get(pipeline_id)
        if pipeline is not None and pipeline.state == PSInvocationState.Running:
            pipeline.stop()

    def _forget(self, pipeline_id: uuid.UUID) -> None:
        task = self._tasks.pop(pipeline_id, None)
        if task is not None:
            task.cancel()
        self._pool.pipeline_table.pop(pipeline_id, None)

    def _close_pool(self) -> None:
        for pipeline_id in list(self._pool.pipeline_table):
            self._forget(pipeline_id)
        self._pool.close()
        self.closed = True

    def _call(self, name: str, parameters: Mapping[str, JsonValue]) -> CallOutcome:
        with edit_state(self.state_path) as host:
            return run_simulated_call(host, name, parameters)

    async def _run(self, pipeline: ServerPipeline, commands: Sequence[Command]) -> None:
        try:
            await self._answer(pipeline, commands)
        except _ScriptRejected as exc:
            self._fail(pipeline, exc.record)
        except Exception as exc:
            # A fault of the server itself still answers the pipeline, so a
            # client is never left waiting because of a test's setup.
            record = ErrorRecord(
                f"The PSRP test server failed: {exc!r}",
                error_id="HvIntegrationTest.ServerFault",
                category="NotSpecified",
            )
            self._fail(pipeline, record)

    async def _answer(self, pipeline: ServerPipeline, commands: Sequence[Command]) -> None:
        name, parameters, as_json = _identify(commands)
        seen = sorted(self.session_variables)
        for command in commands:
            if not command.use_local_scope:
                self.session_variables |= _assigned_variables(command.command_text)
        refusal = language_refusal(name, self._language_mode) or edition_refusal(
            name, self._edition, self._os_build
        )
        if refusal is not None:
            self._fail(pipeline, refusal)
            return
        if name in self._stderr_on:
            os.write(2, b"WARNING: noise on stderr that is not PSRP\n")
        if name in self._garbage_on:
            self._write(GARBAGE)
            await asyncio.Event().wait()
        if name in self._stop_on:
            pipeline.stop()
            self._flush()
            return
        if name in self._deep_on:
            pipeline.write_output(_deep_json(DEEP_LEVELS) if as_json else _deep_object(DEEP_LEVELS))
            pipeline.complete()
            self._flush()
            return
        outcome = self._call(name, parameters)
        if outcome.latency:
            await asyncio.sleep(outcome.latency)
        if outcome.fault is FaultKind.HANG:
            # Never answer; the client stops the pipeline or goes away.
            await asyncio.Event().wait()
        if outcome.fault is FaultKind.DISCONNECT:
            # Die in the middle of the pipeline, as a crashed or killed
            # server would: no state message, no close, no goodbye.
            os._exit(_DISCONNECT_STATUS)
        if outcome.error is not None:
            self._fail(pipeline, outcome.error)
            return
        assert outcome.result is not None
        if as_json:
            pipeline.write_output(json_output(outcome.result.output, self._edition))
        else:
            for item in outcome.result.output:
                pipeline.write_output(to_wire(item))
        errors = list(outcome.result.errors)
        if seen:
            errors.append(
                ErrorRecord(
                    "The script sees variables an earlier operation left in the session "
                    f"scope: {', '.join(seen)}.",
                    error_id="HvIntegrationTest.VariableFromEarlierOperation",
                    category="InvalidOperation",
                )
            )
        for record in errors:
            pipeline.write_error(
                exception_to_ps(record),
                category_to_ps(record),
                target_object=to_wire(record.target_object),
                fully_qualified_error_id=record.error_id or None,
                error_details=details_to_ps(record),
            )
        pipeline.complete()
        self._flush()

    def _fail(self, pipeline: ServerPipeline, record: ErrorRecord) -> None:
        # psrpcore 0.3.1 has no public way to fail a pipeline with an error
        # record; its own state change does exactly what PowerShell sends.
        pipeline._change_state(PSInvocationState.Failed, error_to_ps(record))
        self._flush()


DEEP_LEVELS = 300
"""How deeply ``--deep-on`` nests its answer: far past what the library
reads (64 levels), and deep enough that a reader recursing through it would
need several times Python's default recursion limit."""


def _deep_json(levels: int) -> str:
    # What a peer that ignored the output command's depth limit would send.
    return "[" + '{"Inner":' * levels + '{"Name":"bottom"}' + "}" * levels + "]"


def _deep_object(levels: int) -> PSCustomObject:
    # Built from the inside out, without recursion.
    inner = PSCustomObject(Name="bottom")
    for _ in range(levels):
        inner = PSCustomObject(Inner=inner)
    return inner


def _stdout_writer(data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(1, view)
        view = view[written:]


async def serve(
    state_path: str,
    *,
    garbage_on: Sequence[str] = (),
    stderr_on: Sequence[str] = (),
    stop_on: Sequence[str] = (),
    ignore_close: bool = False,
    language_mode: str = "FullLanguage",
    edition: str = "Desktop",
    os_build: int = 20348,
    deep_on: Sequence[str] = (),
) -> int:
    """Serve one PSRP session on stdin/stdout until the pool closes or stdin ends.

    Args:
        state_path: The simulated host's state file.
        garbage_on: Operations answered with a line that is not PSRP.
        stderr_on: Operations before which the server writes to stderr.
        stop_on: Operations whose pipeline the server stops by itself.
        ignore_close: Never answer the client closing the pool.
        language_mode: The language mode the endpoint plays.
        edition: ``Desktop`` or ``Core``.
        os_build: The Windows build the endpoint plays.
        deep_on: Operations answered with a deeply nested object.

    Returns:
        The exit status: 0 after a clean close or end of input.
    """
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes] = asyncio.Queue()

    def read_stdin() -> None:
        # A thread with blocking reads: stdin may be a pipe or the socket
        # sshd hands a subsystem, shared with stdout, so the descriptors
        # stay blocking. Raw os.read holds no interpreter lock that would
        # delay the exit while this thread waits.
        while True:
            try:
                chunk = os.read(0, 65536)
            except OSError:
                chunk = b""
            try:
                loop.call_soon_threadsafe(chunks.put_nowait, chunk)
            except RuntimeError:
                return  # the loop is gone: the server has finished
            if not chunk:
                return

    threading.Thread(target=read_stdin, name="psrp-stdin", daemon=True).start()
    server = PSRPTestServer(
        state_path,
        _stdout_writer,
        garbage_on=garbage_on,
        stderr_on=stderr_on,
        stop_on=stop_on,
        ignore_close=ignore_close,
        language_mode=language_mode,
        edition=edition,
        os_build=os_build,
        deep_on=deep_on,
    )
    buffer = b""
    while not server.closed:
        chunk = await chunks.get()
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip() and not server.closed:
                server.handle_line(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m hvintegration.testing.psrp_server``.

    Args:
        argv: Command-line arguments; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m hvintegration.testing.psrp_server",
        description="Serve a simulated Hyper-V host over out-of-process PSRP on stdin/stdout.",
    )
    parser.add_argument("--state", required=True, help="the simulated host's state file")
    parser.add_argument(
        "--garbage-on",
        action="append",
        default=[],
        metavar="OPERATION",
        help="answer this operation with a line that is not PSRP (fault tests)",
    )
    parser.add_argument(
        "--stderr-on",
        action="append",
        default=[],
        metavar="OPERATION",
        help="write to stderr before answering this operation (fault tests)",
    )
    parser.add_argument(
        "--stop-on",
        action="append",
        default=[],
        metavar="OPERATION",
        help="stop this operation's pipeline on the server side (fault tests)",
    )
    parser.add_argument(
        "--deep-on",
        action="append",
        default=[],
        metavar="OPERATION",
        help="answer this operation with an object nested very deeply (fault tests)",
    )
    parser.add_argument(
        "--ignore-close",
        action="store_true",
        help="never answer the client closing the pool (fault tests)",
    )
    parser.add_argument(
        "--language-mode",
        default="FullLanguage",
        choices=["FullLanguage", "ConstrainedLanguage", "RestrictedLanguage", "NoLanguage"],
        help="play an endpoint in this language mode (NoLanguage: a JEA endpoint)",
    )
    parser.add_argument(
        "--edition",
        default="Desktop",
        choices=["Desktop", "Core"],
        help="play Windows PowerShell 5.1 (Desktop) or PowerShell 7 (Core)",
    )
    parser.add_argument(
        "--os-build", type=int, default=20348, help="the Windows build to play (14393: 2016)"
    )
    options = parser.parse_args(argv)
    if options.deep_on:
        # psrpcore serialises recursively; the server must be able to send
        # what the client is meant to refuse.
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 50 * DEEP_LEVELS))
    # psrpcore logs warnings for messages it does not act on; with no handler
    # Python would print them on stderr, which the protocol must not see.
    logging.getLogger().addHandler(logging.NullHandler())
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(
            serve(
                options.state,
                garbage_on=options.garbage_on,
                stderr_on=options.stderr_on,
                stop_on=options.stop_on,
                ignore_close=options.ignore_close,
                language_mode=options.language_mode,
                edition=options.edition,
                os_build=options.os_build,
                deep_on=options.deep_on,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
