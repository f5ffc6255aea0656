"""psrp:// answers travel as one JSON string, parsed once on the client.

Every operation runs as its own shipped script piped into the shipped output
command (``_psrp_output.ps1``), which writes one compact JSON string. These
tests hold a real PSRP conversation with the test server (psrpcore's server
classes behind the simulator) and check that the string carries exactly the
records the objects did, that error records still travel as PSRP error
records beside it, and that anything but one JSON array of objects is refused.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest

from hvintegration.errors import InvalidTargetError, ProtocolError, RemoteCommandError
from hvintegration.operations import GET_INTEGRATION_SERVICES, LIST_VMS, Operation
from hvintegration.operations._psrp_output import PSRP_OUTPUT
from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.psrp_server import FRAGMENT_SIZE, json_output
from hvintegration.transport import parse_target
from hvintegration.transport._clixml import error_from_ps, from_wire, to_wire
from hvintegration.transport._outofproc import ProcessCarrier, psrp
from hvintegration.transport._powershell_wire import DEFAULT_MAX_OUTPUT, check_answer
from hvintegration.transport._psrp_transport import decode_output
from hvintegration.transport.base import MAX_DEPTH, JsonValue
from hvintegration.transport.psrp import PSRPTarget

SERVER = ("-m", "hvintegration.testing.psrp_server")
ALL_VMS = {"VM": None}
# Characters 5.1's ConvertTo-Json escapes, a quote, a backslash, a control
# character, and text beyond ASCII and beyond the BMP.
ODD_NAME = "a<b>&'c\" \\ \t é 名前 🙂"


def server_target(state: str | os.PathLike[str], *extra: str) -> PSRPTarget:
    arguments = (*SERVER, "--state", os.fspath(state), *extra)
    return PSRPTarget("localhost", via="process", executable=sys.executable, arguments=arguments)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    host = SimulatedHost()
    host.add_vm(ODD_NAME)
    host.add_vm("second", guest="ubuntu-22.04")
    path = tmp_path / "host.json"
    save_host(host, path)
    return path


async def _raw_pipeline(
    state: Path, operation: Operation, *, with_output_command: bool, extra: tuple[str, ...] = ()
) -> tuple[list[Any], list[Any]]:
    """A pipeline sent with pypsrp directly: its output and error records."""
    info = server_target(state, *extra).connection_info()
    async with psrp.AsyncRunspacePool(info) as pool:
        shell = psrp.AsyncPowerShell(pool)
        shell.add_script(operation.script, use_local_scope=True)
        shell.add_parameter("VM", to_wire(None))
        if with_output_command:
            shell.add_script(PSRP_OUTPUT, use_local_scope=True)
        output = await shell.invoke()
        return list(output), list(shell.streams.error)


@pytest.mark.parametrize("operation", [LIST_VMS, GET_INTEGRATION_SERVICES], ids=lambda o: o.name)
async def test_one_json_string_carries_exactly_what_the_objects_did(
    state: Path, operation: Operation
) -> None:
    objects, _ = await _raw_pipeline(state, operation, with_output_command=False)
    strings, _ = await _raw_pipeline(state, operation, with_output_command=True)
    assert len(objects) > 1
    assert len(strings) == 1
    assert isinstance(strings[0], str)
    assert json.loads(strings[0]) == [from_wire(item) for item in objects]


@pytest.mark.parametrize("edition", ["Desktop", "Core"])
async def test_the_transport_reads_each_editions_escapes_back_exactly(
    state: Path, edition: str
) -> None:
    (text,), _ = await _raw_pipeline(
        state, LIST_VMS, with_output_command=True, extra=("--edition", edition)
    )
    # 5.1 escapes HTML characters; PowerShell 7 leaves them as they are.
    assert ("\\u003c" in text) is (edition == "Desktop")
    async with server_target(state, "--edition", edition).open() as transport:
        result = await transport.run_operation(LIST_VMS, ALL_VMS, timeout=20)
    assert [vm["Name"] for vm in result.output] == ["demovm", ODD_NAME, "second"]


async def test_error_records_still_travel_beside_the_string(state: Path) -> None:
    wanted = {"VM": [{"Name": "second"}, {"Name": "missing"}]}
    async with server_target(state).open() as transport:
        result = await transport.run_operation(GET_INTEGRATION_SERVICES, wanted, timeout=20)
        assert {service["VMName"] for service in result.output} == {"second"}
        (error,) = result.errors
        assert error.base_id == "HvIntegration.VMNotFound"
        assert error.category == "ObjectNotFound"
        assert error.target_object == "missing"
        # A terminating error still fails the pipeline with its own record.
        with pytest.raises(RemoteCommandError) as caught:
            await transport.run_operation(
                GET_INTEGRATION_SERVICES, {"VM": [{"Id": "not-a-guid"}]}, timeout=20
            )
        assert caught.value.error_id


async def test_one_record_and_none_stay_lists(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    save_host(SimulatedHost(), path)
    async with server_target(path).open() as transport:
        one = await transport.run_operation(LIST_VMS, ALL_VMS, timeout=20)
        none = await transport.run_operation(
            GET_INTEGRATION_SERVICES, {"VM": [{"Name": "missing"}]}, timeout=20
        )
    assert len(one.output) == 1
    assert one.output[0]["Name"] == "demovm"
    assert none.output == ()
    assert [error.base_id for error in none.errors] == ["HvIntegration.VMNotFound"]


async def test_the_server_refuses_any_other_second_command(state: Path) -> None:
    info = server_target(state).connection_info()
    async with psrp.AsyncRunspacePool(info) as pool:
        shell = psrp.AsyncPowerShell(pool)
        shell.add_script(LIST_VMS.script, use_local_scope=True)
        shell.add_script(PSRP_OUTPUT + "\nGet-Process", use_local_scope=True)
        with pytest.raises(psrp.PipelineFailed) as caught:
            await shell.invoke()
    record = error_from_ps(caught.value.error_record)
    assert record.error_id == "HvIntegrationTest.UnsupportedPipeline"


def test_json_output_writes_what_convertto_json_compress_writes() -> None:
    output: list[JsonValue] = [
        {"Name": "<x>", "Enabled": True, "Status": ["OK"], "Count": 3, "Nothing": None}
    ]
    desktop = json_output(output)
    core = json_output(output, "Core")
    assert core == '[{"Name":"<x>","Enabled":true,"Status":["OK"],"Count":3,"Nothing":null}]'
    assert desktop == core.replace("<", "\\u003c").replace(">", "\\u003e")
    assert json_output([]) == "[]"


def _decode(*output: Any) -> tuple[dict[str, Any], ...]:
    return decode_output(list(output), target="psrp://h", operation="list_vms")


def test_decoding_reads_plain_json_once() -> None:
    text = '[{"Name":"a\\u0027b","N":1.5,"L":[{"x":null}]},{}]'
    assert _decode(text) == ({"Name": "a'b", "N": 1.5, "L": [{"x": None}]}, {})


def _nested(levels: int) -> str:
    return "[" + '{"a":' * levels + "1" + "}" * levels + "]"


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ((), "0 output objects \\(nothing\\)"),
        (("[]", "[]"), "2 output objects \\(str\\)"),
        (({"Name": "demovm"},), "1 output objects \\(dict\\)"),
        ((7,), "1 output objects \\(int\\)"),
        (("not json",), "not JSON"),
        (("[NaN]",), "not JSON: NaN is not JSON"),
        (('{"Name":"demovm"}',), "a JSON dict, not an array of objects"),
        (('[{"a":1},"x"]',), "output object 1 a str, not an object"),
        (("[[]]",), "output object 0 a list"),
        ((_nested(100),), "deeper than 64 levels"),
        ((_nested(200_000),), "nested too deeply to read"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_anything_but_one_json_array_of_objects_is_a_protocol_error(
    output: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        _decode(*output)
    assert caught.value.target == "psrp://h"
    assert caught.value.operation == "list_vms"


@pytest.mark.parametrize("levels", [0, 1, 63, 64, 65, 66])
def test_the_depth_limit_is_the_one_every_transport_keeps(levels: int) -> None:
    # A record whose value nests `levels` lists: refused here exactly when
    # the envelope reader of local:// and ssh:// refuses it.
    value: JsonValue = "leaf"
    for _ in range(levels):
        value = [value]
    answer: list[JsonValue] = [{"Name": "flat"}, {"Deep": value, "Other": [{"x": 1}]}]
    try:
        check_answer(answer, target="local://", operation="list_vms")
    except ProtocolError:
        expected = True
    else:
        expected = False
    assert expected is (levels > MAX_DEPTH)
    if expected:
        with pytest.raises(ProtocolError, match=f"deeper than {MAX_DEPTH} levels"):
            _decode(json.dumps(answer))
    else:
        assert _decode(json.dumps(answer))[1]["Deep"] == value


async def test_a_large_answer_arrives_in_powershell_sized_fragments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = SimulatedHost(vms=[])
    for number in range(300):
        host.add_vm(f"vm{number:03d}")
    path = tmp_path / "host.json"
    save_host(host, path)
    received = bytearray()
    receive = ProcessCarrier.receive

    async def recording(self: ProcessCarrier) -> bytes | None:
        data = await receive(self)
        received.extend(data or b"")
        return data

    monkeypatch.setattr(ProcessCarrier, "receive", recording)
    async with server_target(path).open() as transport:
        result = await transport.run_operation(GET_INTEGRATION_SERVICES, ALL_VMS, timeout=60)
    assert len(result.output) == 300 * 6
    assert {service["VMName"] for service in result.output} == {f"vm{n:03d}" for n in range(300)}
    lines = [line for line in bytes(received).split(b"\n") if line.startswith(b"<Data")]
    payloads = [base64.b64decode(line.split(b">", 1)[1].split(b"<", 1)[0]) for line in lines]
    # The answer (about half a megabyte) came as many lines of one
    # PowerShell fragment size at most, not as one line.
    assert sum(len(payload) for payload in payloads) > 10 * FRAGMENT_SIZE
    assert max(len(payload) for payload in payloads) <= FRAGMENT_SIZE


# Characters CLIXML cannot carry (XML 1.0 has no U+FFFE or U+FFFF, and
# PowerShell's serialiser escapes only control characters, surrogates and
# "_x"), U+007F, and a character beyond the BMP.
UNCARRIABLE = ("a\ufffeb", "c\uffffd", "e\x7ff", "g\U0001f600h")


async def test_names_clixml_cannot_carry_leave_the_pool_working(tmp_path: Path) -> None:
    host = SimulatedHost(vms=[])
    for name in UNCARRIABLE:
        host.add_vm(name)
    path = tmp_path / "host.json"
    save_host(host, path)
    (text,), _ = await _raw_pipeline(path, LIST_VMS, with_output_command=True)
    # Every character beyond U+007E travels as a JSON escape: the string is
    # ASCII, as the session loop's envelope is.
    assert all(" " <= character <= "~" for character in text)
    assert "\\ufffe" in text
    assert "\\u007f" in text
    assert "\\ud83d\\ude00" in text
    async with server_target(path).open() as transport:
        for _ in range(2):
            result = await transport.run_operation(LIST_VMS, ALL_VMS, timeout=20)
            assert sorted(vm["Name"] for vm in result.output) == sorted(UNCARRIABLE)
        services = await transport.run_operation(GET_INTEGRATION_SERVICES, ALL_VMS, timeout=20)
        assert {service["VMName"] for service in services.output} == set(UNCARRIABLE)
        assert transport.pools_opened == 1


async def test_an_answer_larger_than_max_output_is_refused_and_the_pool_goes_on(
    tmp_path: Path,
) -> None:
    host = SimulatedHost(vms=[])
    for number in range(40):
        host.add_vm(f"vm{number:02d}-" + "n" * 40)
    path = tmp_path / "host.json"
    save_host(host, path)
    target = attrs.evolve(server_target(path), max_output=2048)
    async with target.open() as transport:
        with pytest.raises(ProtocolError, match="more than the 2048 one operation may return"):
            await transport.run_operation(LIST_VMS, ALL_VMS, timeout=20)
        one = await transport.run_operation(
            LIST_VMS, {"VM": [{"Name": "vm00-" + "n" * 40}]}, timeout=20
        )
        assert len(one.output) == 1


def test_max_output_is_measured_in_utf8_bytes() -> None:
    # Another peer may send characters beyond ASCII unescaped: 600 of them
    # are 1,800 bytes.
    text = json.dumps([{"Name": "\u540d" * 600}], ensure_ascii=False)
    assert len(text) < 1024 < len(text.encode("utf-8"))
    with pytest.raises(ProtocolError, match="more than the 1024"):
        decode_output([text], target="psrp://h", operation="list_vms", max_output=1024)
    assert decode_output([text], target="psrp://h", operation="list_vms", max_output=2048)


@pytest.mark.parametrize("via", ["wsman", "ssh", "process"])
def test_every_connection_takes_max_output(via: str) -> None:
    target = parse_target(f"psrp://u@h?via={via}&max_output=100000")
    assert isinstance(target, PSRPTarget)
    assert target.max_output == 100000
    assert "max_output=100000" in target.url
    assert parse_target(target.url) == target
    assert PSRPTarget("h").max_output == DEFAULT_MAX_OUTPUT
    with pytest.raises(InvalidTargetError, match="max_output must be at least 1024 bytes"):
        PSRPTarget("h", max_output=10)
