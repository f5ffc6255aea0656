"""Nothing a caller can see escapes the library's hierarchy.

Every PowerShell transport gets the same hostile input: parameters with a
NUL, a lone surrogate, a huge number, NaN or infinity, a non-string key, a
value nested far too deep, bytes; and peers that answer with an object
nested deeper than any reader should follow. Each is refused with an
:class:`~hvintegration.errors.InvalidParameterError` (a ``ValueError``)
before anything is sent, or with a
:class:`~hvintegration.errors.ProtocolError` for the answer, never a raw
``ValueError``, ``UnicodeEncodeError`` or ``RecursionError``; and the
transport works for the next call.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hvintegration import Credential, HyperVHost
from hvintegration.errors import HvIntegrationError, InvalidParameterError, ProtocolError
from hvintegration.operations import GET_GUEST_SERVICES, LIST_VMS
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.powershell_peers import (
    LocalStandInPeer,
    SSHStandInPeer,
    standin_sshd,
)
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.testing.standin_powershell import DEEP_VARIABLE
from hvintegration.transport._powershell_wire import encode_request
from hvintegration.transport.base import JsonValue, PowerShellTransport, check_parameter_values
from hvintegration.transport.psrp import PSRPTarget

SERVER = ("-m", "hvintegration.testing.psrp_server")


def deep_list(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def deep_object(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"Inner": value}
    return value


BAD_VALUES = {
    "lone-surrogate": {"Name": "demo\ud800vm"},
    "huge-number": {"Name": 10**400},
    "past-ulong": {"Name": 2**64},
    "nan": {"Name": float("nan")},
    "infinity": {"Name": float("-inf")},
    "non-string-key": {1: "demovm"},
    "deep-list": deep_list(100_000),
    "deep-object": deep_object(5_000),
    "bytes": {"Name": b"demovm"},
}


@pytest.fixture(scope="module")
def sshd_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("escapes-ssh")


@pytest.fixture(scope="module")
def sshd(sshd_directory: Path) -> Iterator[OpenSSHServer]:
    if sshd_unavailable_reason() is not None:
        pytest.skip(str(sshd_unavailable_reason()))
    with standin_sshd(sshd_directory) as server:
        yield server


@pytest.fixture(params=["sim", "local", "ssh", "psrp", "direct"])
async def transport(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[PowerShellTransport, Any]]:
    """A transport and the operation to feed; for PowerShell Direct a guest operation."""
    kind = request.param
    if kind == "sim":
        async with SimulatedHost().open() as sim:
            yield sim, LIST_VMS
    elif kind == "local":
        async with LocalStandInPeer(tmp_path).open_transport() as local:
            yield local, LIST_VMS
    elif kind == "ssh":
        server = request.getfixturevalue("sshd")
        peer = SSHStandInPeer(server, request.getfixturevalue("sshd_directory"))
        async with peer.open_transport() as ssh:
            yield ssh, LIST_VMS
    elif kind == "psrp":
        state = tmp_path / "host.json"
        save_host(SimulatedHost(), state)
        target = PSRPTarget(
            "localhost",
            via="process",
            executable=sys.executable,
            arguments=(*SERVER, "--state", str(state)),
        )
        async with target.open() as psrp:
            yield psrp, LIST_VMS
    else:
        async with HyperVHost.connect(SimulatedHost()) as host:
            guest = host.vm("demovm").windows(Credential("Administrator", "hvintegration"))
            yield guest.transport, GET_GUEST_SERVICES


async def test_a_nul_character_travels_and_any_failure_is_the_librarys(
    transport: tuple[PowerShellTransport, Any],
) -> None:
    # JSON and CLIXML both carry a NUL: it is looked up like any name (the
    # conformance suite checks such a name arrives unchanged).
    wire, operation = transport
    name = next(iter(operation.parameters))
    value: Any = {"Name": "demo\x00vm"} if operation is LIST_VMS else ["vmic\x00vss"]
    outcome: object = None
    try:
        outcome = await wire.run_operation(operation, {name: value}, timeout=30)
    except Exception as exc:
        outcome = exc
    assert not isinstance(outcome, Exception) or isinstance(outcome, HvIntegrationError), outcome


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
async def test_bad_parameters_are_refused_before_sending(
    transport: tuple[PowerShellTransport, Any], case: str
) -> None:
    wire, operation = transport
    name = next(iter(operation.parameters))
    with pytest.raises(InvalidParameterError) as caught:
        await wire.run_operation(operation, {name: BAD_VALUES[case]}, timeout=30)
    assert isinstance(caught.value, ValueError)
    assert caught.value.target
    # Nothing broke: the next call works.
    good: Any = {"VM": None} if operation is LIST_VMS else {"Name": ["vmicvss"]}
    result = await wire.run_operation(operation, good, timeout=30)
    assert result.output


async def test_a_parameter_name_that_is_not_a_string_is_refused(
    transport: tuple[PowerShellTransport, Any],
) -> None:
    wire, operation = transport
    with pytest.raises(InvalidParameterError):
        await wire.run_operation(operation, {1: "x", "y": 2}, timeout=30)  # type: ignore[dict-item]


@pytest.mark.parametrize("levels", [200, 100_000])
async def test_a_deeply_nested_answer_over_local_is_a_protocol_error(
    tmp_path: Path, levels: int
) -> None:
    peer = LocalStandInPeer(tmp_path, environment={DEEP_VARIABLE: f"list_vms:{levels}"})
    async with peer.open_transport() as local:
        with pytest.raises(ProtocolError, match="nest"):
            await local.run_operation(LIST_VMS, {"VM": None}, timeout=30)


async def test_a_deeply_nested_answer_over_psrp_is_a_protocol_error(tmp_path: Path) -> None:
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    target = PSRPTarget(
        "localhost",
        via="process",
        executable=sys.executable,
        arguments=(*SERVER, "--state", str(state), "--deep-on", "list_vms"),
    )
    async with target.open() as psrp:
        with pytest.raises(ProtocolError, match="deeper than 64 levels") as caught:
            await psrp.run_operation(LIST_VMS, {"VM": None}, timeout=30)
        assert isinstance(caught.value, HvIntegrationError)
        # The answer was refused, not the pool.
        assert psrp.pools_opened == 1


def _nested(levels: int) -> JsonValue:
    value: JsonValue = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def _request_depth(line: bytes) -> int:
    depth = deepest = 0
    for byte in line:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth -= 1
    return deepest


def test_what_the_client_accepts_fits_powershell_7s_json_reader() -> None:
    # System.Text.Json's JsonDocument refuses more than 64 levels by default
    # (JsonDocumentOptions.MaxDepth), and PowerShell 7's session loop reads
    # requests with it: the deepest parameters the client lets through must
    # make a request line of at most 64 levels.
    accepted = 0
    for levels in range(1, 80):
        try:
            check_parameter_values({"VM": _nested(levels)}, target="t", operation="o")
        except InvalidParameterError:
            break
        accepted = levels
    line = encode_request(7, LIST_VMS.name, LIST_VMS.script, {"VM": _nested(accepted)})
    assert _request_depth(line) <= 64
    with pytest.raises(InvalidParameterError, match="deeper than"):
        check_parameter_values({"VM": _nested(accepted + 1)}, target="t", operation="o")
