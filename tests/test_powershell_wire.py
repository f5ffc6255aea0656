"""The PowerShell wire contract: every script the package sends parses, the
command line is short and fixed, requests and envelopes encode and decode
strictly, and the frame reader survives noise and refuses floods."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from importlib import resources

import pytest
import tree_sitter
import tree_sitter_powershell

from hvintegration.errors import InvalidTargetError, ProtocolError
from hvintegration.operations import OPERATIONS
from hvintegration.testing.conformance import HOSTILE_NAMES
from hvintegration.transport._powershell_wire import (
    BOOTSTRAP,
    ENVELOPE_PREFIX,
    RUNNER,
    RUNNER_LINE,
    SUSPICIOUS_STRINGS,
    EndOfOutput,
    FrameReader,
    Reply,
    command_line,
    decode_envelope,
    decode_request,
    encode_envelope,
    encode_request,
    encoded_bootstrap,
    minify,
    powershell_argv,
    validate_executable,
)
from hvintegration.transport.base import ErrorRecord

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def _syntax_problems(text: str) -> list[str]:
    source = text.encode("utf-8")
    problems: list[str] = []

    def walk(node: tree_sitter.Node) -> None:
        if node.is_error or node.is_missing:
            line = node.start_point[0] + 1
            snippet = source[node.start_byte : node.end_byte][:60].decode("utf-8", "replace")
            problems.append(f"line {line}: {'missing' if node.is_missing else 'error'} {snippet!r}")
        for child in node.children:
            walk(child)

    walk(_PARSER.parse(source).root_node)
    return problems


def _shipped_files() -> Iterator[tuple[str, str]]:
    folder = resources.files("hvintegration.operations").joinpath("scripts")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".ps1"):
            yield entry.name, entry.read_text("utf-8")


def _sent_texts() -> Iterator[tuple[str, str]]:
    yield from _shipped_files()
    for name, operation in OPERATIONS.items():
        yield f"{name} (as sent)", operation.script
    yield "bootstrap (as sent)", BOOTSTRAP
    yield "runner (as sent)", RUNNER


def test_every_shipped_file_is_checked() -> None:
    names = {name for name, _ in _shipped_files()}
    assert {"_bootstrap.ps1", "_runner.ps1", "_prelude.ps1"} <= names
    assert {f"{op}.ps1" for op in OPERATIONS} <= names


@pytest.mark.parametrize(("name", "text"), list(_sent_texts()), ids=lambda v: str(v)[:40])
def test_every_script_the_package_sends_parses(name: str, text: str) -> None:
    assert _syntax_problems(text) == [], name


@pytest.mark.parametrize(
    "broken",
    [
        "if ($a -eq 1 { 'x' }",
        "function F { param($x) $x",
        "$h = @{ a = 1",
        "foreach ($i in @(1,2) { $i }",
    ],
)
def test_the_syntax_check_catches_broken_scripts(broken: str) -> None:
    assert _syntax_problems(RUNNER + "\n" + broken + "\n") != []


def test_the_command_line_is_short_fixed_and_shell_neutral() -> None:
    line = command_line("powershell")
    # Nothing sent is subject to execution policy, and the flag is a
    # detection signature on hardened hosts.
    assert "-ExecutionPolicy" not in line
    assert "Bypass" not in line
    # cmd.exe refuses command lines over 8,191 characters.
    assert len(line) < 2000
    assert line == command_line("powershell")
    assert all(ch.isalnum() or ch in " -+/=" for ch in line)
    argv = powershell_argv("pwsh")
    assert argv[-2] == "-EncodedCommand"
    assert (
        base64.b64decode(argv[-1]).decode("utf-16-le")
        == BOOTSTRAP
        == base64.b64decode(encoded_bootstrap()).decode("utf-16-le")
    )


def test_the_runner_travels_as_the_first_stdin_line() -> None:
    assert RUNNER_LINE.endswith(b"\n")
    assert RUNNER_LINE.count(b"\n") == 1
    # The bootstrap turns the tabs back into line ends.
    assert '$hvStdin.ReadLine().Replace("`t", "`n")' in BOOTSTRAP
    assert RUNNER_LINE.decode("ascii").rstrip("\n").replace("\t", "\n") == RUNNER.rstrip("\n")


def test_minify_keeps_code_and_drops_comment_lines() -> None:
    assert minify("# a\n  $x = 1 # keep\n\n\tWrite-Output $x\n") == "$x = 1 # keep\nWrite-Output $x"
    assert not any(line.startswith("#") for line in BOOTSTRAP.splitlines())


@pytest.mark.parametrize(
    "executable", ["powershell", "pwsh", "C:\\Windows\\System32\\pwsh.exe", "/opt/pwsh-7"]
)
def test_plain_executables_are_accepted(executable: str) -> None:
    assert validate_executable(executable, target="ssh://x") == executable


@pytest.mark.parametrize(
    "executable", ["", "pwsh & calc", "pw sh", "pwsh;id", "$(id)", "a|b", "`x", "'q'", "a\nb"]
)
def test_executables_with_shell_syntax_are_refused(executable: str) -> None:
    with pytest.raises(InvalidTargetError):
        validate_executable(executable, target="ssh://x")


@pytest.mark.parametrize("name", [*HOSTILE_NAMES, "2024-01-01T00:00:00Z", "~tilde", ""])
def test_requests_round_trip_every_name(name: str) -> None:
    parameters = {"VM": [{"Name": name}, {"Id": None}], "Flag": True, "Count": 3}
    line = encode_request(5, "list_vms", "param($VM)", parameters)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert line.isascii()
    request = decode_request(line.rstrip(b"\n"))
    assert (request.id, request.operation, request.script) == (5, "list_vms", "param($VM)")
    assert request.parameters == parameters


def test_strings_are_tagged_so_powershell_never_reads_them_as_dates() -> None:
    line = encode_request(1, "x", "", {"VM": [{"Name": "2024-01-01T00:00:00"}]})
    assert json.loads(line)["parameters"] == {"VM": [{"Name": "~2024-01-01T00:00:00"}]}
    untagged = line.replace(b'"~2024', b'"2024')
    with pytest.raises(ValueError, match="untagged"):
        decode_request(untagged)


def test_values_that_are_not_json_are_refused() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        encode_request(1, "x", "", {"n": float("nan")})
    with pytest.raises(TypeError):
        encode_request(1, "x", "", {"n": {1, 2}})  # type: ignore[dict-item]


def _decode(frame: bytes, request_id: int = 3) -> Reply:
    return decode_envelope(frame, request_id=request_id, target="local://", operation="op")


def _body(line: bytes) -> bytes:
    # Every answer starts on a line of its own.
    assert line.startswith(b"\n" + ENVELOPE_PREFIX)
    return line[1 + len(ENVELOPE_PREFIX) :].rstrip(b"\n")


def test_envelopes_round_trip_output_and_records() -> None:
    record = ErrorRecord(
        "Hyper-V was unable to find 'it\u2019s'",
        error_id="HvIntegration.VMNotFound",
        category="ObjectNotFound",
        exception_type="System.Exception",
        target_object="nul\x00inside",
        details="demovm\nweb01",
    )
    output = ({"Name": "\u2018x\u2019", "OperationalStatus": ["Ok"], "Generation": 2},)
    reply = _decode(_body(encode_envelope(3, output=output, errors=(record,))))
    assert reply.result.output == output
    assert reply.result.errors == (record,)
    assert reply.error is None
    failed = _decode(_body(encode_envelope(3, error=record)))
    assert failed.error == record
    assert failed.result.output == ()


def test_a_single_output_object_stays_a_list() -> None:
    reply = _decode(_body(encode_envelope(3, output=({"Name": "demovm"},))))
    assert reply.result.output == ({"Name": "demovm"},)


_GOOD = {"v": 1, "id": 3, "output": [], "errors": [], "error": None}
_RECORD = {
    "message": "m",
    "error_id": "",
    "category": "",
    "exception_type": "",
    "target_object": None,
    "details": "",
}


def _json(**changes: object) -> bytes:
    envelope = dict(_GOOD)
    envelope.update(changes)
    return json.dumps(envelope).encode()


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "malformed"),
        (b"not json", "malformed"),
        (_json()[:-5], "malformed"),
        (b'{"v":1,"id":3,"output":[NaN],"errors":[],"error":null}', "malformed"),
        (b"[1, 2]", "malformed"),
        (_json(id=4), "answers request 4"),
        (_json(id="3"), "answers request"),
        (_json(v=2), "version"),
        (_json(extra=1), "exactly the fields"),
        # Windows PowerShell 5.1 unwraps a one-element array piped to
        # ConvertTo-Json; the loop never does, and a bare object is refused.
        (_json(output={"Name": "demovm"}), "must be lists"),
        (_json(output=[["nested"]]), "not an object"),
        (_json(output=[1]), "not an object"),
        (_json(errors=[{"message": "m"}]), "not an error record"),
        (_json(errors=[{**_RECORD, "category": 5}]), "not a string"),
        (_json(errors=[{**_RECORD, "target_object": {"deep": 1}}]), "plain value"),
        (_json(error="boom"), "not an error record"),
        (_json(output=[{"Name": "caf\u00e9"}]).replace(b"caf\\u00e9", b"caf\xe9"), "not UTF-8"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_bad_envelopes_are_protocol_errors(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason) as caught:
        _decode(frame)
    assert caught.value.target == "local://"
    assert caught.value.operation == "op"


def _reader(chunks: list[bytes], max_bytes: int = 1 << 20) -> FrameReader:
    pending = list(chunks)

    async def read(size: int) -> bytes:
        await asyncio.sleep(0)
        return pending.pop(0) if pending else b""

    return FrameReader(read, max_bytes=max_bytes)


async def test_frames_are_found_among_noise_and_split_reads() -> None:
    reader = _reader([b"WARNING: x\r\n#< CLIXML\n#hv", b'i1:{"a":1}\r\n#hvi1:{"b"', b":2}\n"])
    assert await reader.next_frame(target="t", operation="o") == b'{"a":1}'
    assert await reader.next_frame(target="t", operation="o") == b'{"b":2}'
    with pytest.raises(EndOfOutput) as caught:
        await reader.next_frame(target="t", operation="o")
    assert not caught.value.partial
    assert "CLIXML" in caught.value.noise


async def test_a_flood_without_an_answer_is_refused() -> None:
    reader = _reader([b"x" * 4096] * 100, max_bytes=64 * 1024)
    with pytest.raises(ProtocolError, match="more than 65536 bytes"):
        await reader.next_frame(target="t", operation="o")
    noisy = _reader([b"noise line\n" * 1000] * 20, max_bytes=64 * 1024)
    with pytest.raises(ProtocolError):
        await noisy.next_frame(target="t", operation="o")


async def test_the_end_of_output_inside_an_answer_is_reported_as_partial() -> None:
    reader = _reader([b'#hvi1:{"v":1,"id'])
    with pytest.raises(EndOfOutput) as caught:
        await reader.next_frame(target="t", operation="o")
    assert caught.value.partial


async def test_a_frame_is_found_after_a_banner_without_a_line_end() -> None:
    # The loop writes a line end before every answer.
    reader = _reader([b"Windows PowerShell banner\r\nPS C:\\> ", b'\n#hvi1:{"a":1}\n'])
    assert await reader.next_frame(target="t", operation="o") == b'{"a":1}'
    reader = _reader([b"PS C:\\> " + encode_envelope(3)])
    assert _decode(await reader.next_frame(target="t", operation="o")).error is None
    reader = _reader([b"\xef\xbb\xbf" + encode_envelope(3)[1:]])
    assert _decode(await reader.next_frame(target="t", operation="o")).error is None


@pytest.mark.parametrize(
    "banner",
    [b"Welcome #hvi1: banner", b'x#hvi1:{"v":1,"id":1,"output":[],"errors":[],"error":null}'],
    ids=["broken", "forged"],
)
async def test_the_prefix_inside_a_line_is_never_an_answer(banner: bytes) -> None:
    # Text printed before the loop starts must not pass for (or break) an answer.
    real = encode_envelope(1, output=({"Name": "the real answer"},))
    reader = _reader([banner + b"\r\n", real])
    frame = await reader.next_frame(target="t", operation="o")
    assert _decode(frame, request_id=1).result.output == ({"Name": "the real answer"},)


async def test_the_end_inside_an_answer_after_noise_is_partial() -> None:
    reader = _reader([b'PS C:\\> \n#hvi1:{"v":1'])
    with pytest.raises(EndOfOutput) as caught:
        await reader.next_frame(target="t", operation="o")
    assert caught.value.partial


def test_a_null_id_with_an_error_fails_the_request_in_flight() -> None:
    record = ErrorRecord("PowerShell runs in ConstrainedLanguage mode.", error_id="x")
    reply = _decode(_body(encode_envelope(None, error=record)), request_id=12)
    assert reply.error == record
    with pytest.raises(ProtocolError, match="answers request None"):
        _decode(_body(encode_envelope(None)), request_id=12)


def test_the_bootstraps_refusal_is_an_envelope_for_the_session() -> None:
    (line,) = [line for line in BOOTSTRAP.splitlines() if line.startswith("'#hvi1:")]
    # Evaluate the one expression: single-quoted pieces and $hvMode.
    pieces = line.split(" + ")
    text = "".join(
        "ConstrainedLanguage" if piece == "$hvMode" else piece.strip("'") for piece in pieces
    )
    assert text.startswith(ENVELOPE_PREFIX.decode())
    reply = _decode(text[len(ENVELOPE_PREFIX) :].encode(), request_id=1)
    assert reply.error is not None
    assert reply.error.error_id == "HvIntegration.LanguageModeUnsupported"
    assert "ConstrainedLanguage" in reply.error.message
    # It checks the mode before the first .NET call, which that mode refuses.
    assert BOOTSTRAP.index("LanguageMode") < BOOTSTRAP.index("::")


def suspicious_content(text: str) -> set[str]:
    """The suspicious strings in ``text``, as any PowerShell would find them.

    PowerShell 7 matches each string inside any run of letters and hyphens
    (CompiledScriptBlock.cs, SuspiciousContentChecker.Match); earlier
    versions matched whole words of letters and hyphens (before commit
    51c985495f, "Speed up check for suspicious content"). A plain
    case-insensitive search of the whole text finds everything either finds,
    and also the strings with digits neither can match.
    """
    folded = text.lower()
    return {pattern for pattern in SUSPICIOUS_STRINGS if pattern.lower() in folded}


def _suspicious_nodes(text: str) -> list[str]:
    """Constructs PowerShell's SemanticChecks marks suspicious: the [Type]
    type, a member named by an expression, static access on a variable."""
    source = text.encode("utf-8")
    found: list[str] = []

    def walk(node: tree_sitter.Node) -> None:
        snippet = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
        if node.type == "type_name" and snippet.lower() in ("type", "system.type"):
            found.append(f"[{snippet}]")
        if node.type == "member_name" and not snippet[:1].isalpha():
            found.append(f"dynamic member {snippet}")
        static = node.type in ("member_access", "invokation_expression") and "::" in snippet
        if static and node.children and node.children[0].type == "variable":
            found.append(f"static access on a variable {snippet[:40]}")
        for child in node.children:
            walk(child)

    walk(_PARSER.parse(source).root_node)
    return found


def test_the_suspicious_content_check_matches_powershells() -> None:
    assert suspicious_content("$v.PSObject.Properties") == {"Properties"}
    assert suspicious_content("[Convert]::FromBase64String($x)") == {"FromBase64String"}
    # Inside a longer word and in comments too, as PowerShell matches.
    assert suspicious_content("# emitted") == {"Emit"}
    assert suspicious_content("$p.PSObject.Members.Match('*', 'NoteProperty')") == set()
    assert _suspicious_nodes("[Type]::GetTypeCode($x)") == ["[Type]"]
    assert _suspicious_nodes("$x.$name") == ["dynamic member $name"]
    assert _suspicious_nodes("$t::Now") == ["static access on a variable $t::Now"]
    assert _suspicious_nodes("[Convert]::GetTypeCode($x); $x.Name") == []


@pytest.mark.parametrize(("name", "text"), list(_sent_texts()), ids=lambda v: str(v)[:40])
def test_nothing_sent_is_logged_as_suspicious(name: str, text: str) -> None:
    # PowerShell logs a script block containing any of these at Warning
    # level even with script block logging off (event 4104).
    assert suspicious_content(text) == set(), name
    assert _suspicious_nodes(text) == [], name


@pytest.mark.parametrize(("name", "text"), list(_sent_texts()), ids=lambda v: str(v)[:40])
def test_every_script_is_ascii(name: str, text: str) -> None:
    # No console code page or editor can change what an ASCII script means.
    assert text.isascii(), name
