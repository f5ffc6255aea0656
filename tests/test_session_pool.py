"""The pool of PowerShell sessions behind ``local://`` and ``ssh://``.

The stand-in PowerShell runs as real child processes (and behind a real sshd)
and logs, in order, every request it receives and every answer it writes,
with its process id. So overlap is read from the order of events, never from
timings: two calls ran side by side when the second arrived before the first
was answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration.errors import InvalidTargetError, TransportClosedError
from hvintegration.operations import LIST_VMS
from hvintegration.testing.powershell_peers import (
    LocalStandInPeer,
    SSHStandInPeer,
    standin_sshd,
)
from hvintegration.testing.processes import processes_mentioning
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.transport import parse_target
from hvintegration.transport._powershell_session import DEFAULT_SESSIONS
from hvintegration.transport.base import PowerShellTransport
from hvintegration.transport.local import LocalTarget
from hvintegration.transport.ssh import SSHTarget

TIMEOUT = 30.0


def _events(log: Path) -> list[tuple[str, int]]:
    """("begin" | "end", process id) for each request and answer, in order."""
    events: list[tuple[str, int]] = []
    if not log.exists():
        return events
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if "begun" in entry:
            events.append(("begin", int(entry["process"])))
        elif "answered" in entry:
            events.append(("end", int(entry["process"])))
    return events


def _most_in_flight(events: list[tuple[str, int]]) -> int:
    flying = most = 0
    for kind, _ in events:
        flying += 1 if kind == "begin" else -1
        most = max(most, flying)
    return most


def _started(log: Path) -> list[int]:
    return [
        int(json.loads(line)["pid"]) for line in log.read_text().splitlines() if '"argv"' in line
    ]


async def _reads(transport: PowerShellTransport, count: int) -> None:
    results = await asyncio.gather(
        *(transport.run_operation(LIST_VMS, {"VM": None}, timeout=TIMEOUT) for _ in range(count))
    )
    assert all([vm["Name"] for vm in r.output] == ["demovm"] for r in results)


def _slow(peer: LocalStandInPeer | SSHStandInPeer, seconds: float = 0.4) -> None:
    # Each call takes a while in the peer, so that calls sent together are
    # in flight together when the transport lets them be.
    with peer.edit() as host:
        host.latency = seconds


def _local(tmp_path: Path, **settings: object) -> tuple[LocalStandInPeer, LocalTarget]:
    peer = LocalStandInPeer(tmp_path)
    target = LocalTarget(executable=str(peer.executable), **settings)  # type: ignore[arg-type]
    return peer, target


async def _hung_together(
    peer: LocalStandInPeer | SSHStandInPeer, transport: PowerShellTransport, calls: int, wanted: int
) -> list[tuple[str, int]]:
    """Send ``calls`` calls the peer never answers; once ``wanted`` have
    arrived (or 30 s passed), cancel them all and return the events."""
    with peer.edit() as host:
        host.inject_fault("hang", operation="list_vms", times=wanted)
    pending = [
        asyncio.ensure_future(transport.run_operation(LIST_VMS, {"VM": None}, timeout=TIMEOUT))
        for _ in range(calls)
    ]
    for _ in range(600):
        if len(_events(peer.log)) >= wanted:
            break
        await asyncio.sleep(0.05)
    events = _events(peer.log)
    for call in pending:
        call.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return events


async def test_concurrent_calls_run_side_by_side(tmp_path: Path) -> None:
    peer, target = _local(tmp_path, sessions=4)
    async with target.open() as transport:
        events = await _hung_together(peer, transport, 4, 4)
    # Four calls were in four processes at once: none was answered.
    assert [kind for kind, _ in events] == ["begin"] * 4
    assert len({process for _, process in events}) == 4
    assert processes_mentioning(peer.path) == []


async def test_the_bound_is_respected_and_sessions_open_only_when_needed(tmp_path: Path) -> None:
    peer, target = _local(tmp_path, sessions=3)
    async with target.open() as transport:
        # One call after another keeps to one process.
        for _ in range(3):
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=TIMEOUT)
        assert len(_started(peer.log)) == 1
        peer.log.write_text("")
        # Six calls that hang: three reach a process, three wait.
        events = await _hung_together(peer, transport, 6, 3)
        await asyncio.sleep(0.3)
        assert events == _events(peer.log)
        assert len(events) == 3
        # The cancelled calls killed their processes; new ones serve.
        peer.log.write_text("")
        _slow(peer, 0.2)
        await _reads(transport, 10)
    events = _events(peer.log)
    assert _most_in_flight(events) <= 3
    assert len(_started(peer.log)) <= 3
    assert len({process for _, process in events}) <= 3


async def test_the_default_bound(tmp_path: Path) -> None:
    peer, target = _local(tmp_path)
    assert target.sessions == DEFAULT_SESSIONS == 4
    async with target.open() as transport:
        events = await _hung_together(peer, transport, 6, DEFAULT_SESSIONS)
        await asyncio.sleep(0.3)
        assert len(_events(peer.log)) == len(events) == DEFAULT_SESSIONS


async def test_a_broken_session_is_replaced(tmp_path: Path) -> None:
    peer, target = _local(tmp_path, sessions=2)
    _slow(peer, 0.2)
    async with target.open() as transport:
        await _reads(transport, 2)
        first = _started(peer.log)
        assert len(first) == 2
        # One idle process dies (killed from outside).
        os.kill(first[0], signal.SIGKILL)
        for _ in range(50):
            if first[0] not in processes_mentioning(peer.path):
                break
            await asyncio.sleep(0.05)
        await _reads(transport, 2)
        started = _started(peer.log)
        live = processes_mentioning(peer.path)
    assert len(started) == 3
    assert first[0] not in live
    assert set(started) - {first[0]} >= {started[-1], first[1]}
    assert processes_mentioning(peer.path) == []


async def test_aclose_while_every_session_is_busy_fails_the_calls_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    peer, target = _local(tmp_path, sessions=3)
    with peer.edit() as host:
        host.inject_fault("hang", operation="list_vms", times=10)
    transport = target.open()
    await transport.open()
    calls = [
        asyncio.ensure_future(transport.run_operation(LIST_VMS, {"VM": None}, timeout=TIMEOUT))
        for _ in range(5)
    ]
    for _ in range(600):
        if len(_events(peer.log)) == 3:
            break
        await asyncio.sleep(0.05)
    assert len(_events(peer.log)) == 3  # three busy, two waiting for a session
    await transport.aclose()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(outcome, TransportClosedError) for outcome in outcomes), outcomes
    assert processes_mentioning(peer.path) == []
    # The two that waited never reached a process.
    assert len(_events(peer.log)) == 3


async def test_cancelled_calls_leave_nothing_running_and_the_pool_goes_on(tmp_path: Path) -> None:
    peer, target = _local(tmp_path, sessions=2)
    with peer.edit() as host:
        host.inject_fault("hang", operation="list_vms", times=2)
    async with target.open() as transport:
        calls = [
            asyncio.ensure_future(transport.run_operation(LIST_VMS, {"VM": None}, timeout=TIMEOUT))
            for _ in range(3)
        ]
        for _ in range(600):
            if len(_events(peer.log)) == 2:
                break
            await asyncio.sleep(0.05)
        hung = _started(peer.log)
        assert len(hung) == 2
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        assert all(call.cancelled() for call in calls)
        assert not set(hung) & set(processes_mentioning(peer.path))
        await _reads(transport, 2)
    assert processes_mentioning(peer.path) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("local://?sessions=0", "sessions must be from 1 to 64, not 0"),
        ("local://?sessions=65", "sessions must be from 1 to 64, not 65"),
        ("local://?sessions=four", "sessions must be a whole number"),
        ("ssh://hv1?sessions=0", "sessions must be from 1 to 64, not 0"),
        ("ssh://hv1?sessions=2.5", "sessions must be a whole number"),
        # Only ASCII digits: int() would read these as 10, 4, 9 and 4.
        ("local://?sessions=1_0", "sessions must be a whole number in ASCII digits"),
        ("local://?sessions=\u0664", "sessions must be a whole number in ASCII digits"),
        ("ssh://hv1?sessions=\uff19", "sessions must be a whole number in ASCII digits"),
        ("ssh://hv1?max_channels=+4", "max_channels must be a whole number in ASCII digits"),
        ("local://?max_output=%201024", "max_output must be a whole number in ASCII digits"),
        ("psrp://hv1?max_pipelines=1_0", "max_pipelines must be a whole number in ASCII digits"),
        ("psrp://hv1?max_answer=%EF%BC%99", "max_answer must be a whole number of bytes in"),
        ("local://?sessions=", "sessions must be a whole number in ASCII digits"),
    ],
)
def test_a_bad_sessions_setting_is_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidTargetError, match=message):
        parse_target(url)


def test_sessions_travel_in_the_url() -> None:
    assert parse_target("local://?sessions=8").sessions == 8  # type: ignore[attr-defined]
    assert LocalTarget(sessions=8).url == "local://?sessions=8"
    assert parse_target("ssh://hv1?sessions=2").sessions == 2  # type: ignore[attr-defined]
    with pytest.raises(InvalidTargetError, match="whole number"):
        LocalTarget(sessions=True)
    with pytest.raises(InvalidTargetError, match="from 1 to 64"):
        SSHTarget("hv1", sessions=100)
    assert parse_target("local://?sessions=04").sessions == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize("setting", ["sessions", "max_channels", "max_output"])
def test_a_setting_of_the_wrong_type_names_the_target_without_it(setting: str) -> None:
    # The URL would spell sessions="4" as ?sessions=4, a valid-looking target.
    with pytest.raises(InvalidTargetError) as caught:
        SSHTarget("hv1", **{setting: "4"})  # type: ignore[arg-type]
    assert caught.value.target == "ssh://hv1"
    assert str(caught.value).startswith(f"{setting} must be a whole number, not '4'")


@pytest.fixture(scope="module")
def sshd_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pool-sshd")


@pytest.fixture(scope="module")
def sshd(sshd_directory: Path) -> Iterator[OpenSSHServer]:
    if sshd_unavailable_reason() is not None:
        pytest.skip(str(sshd_unavailable_reason()))
    with standin_sshd(sshd_directory) as server:
        yield server


@pytest.fixture
def ssh_peer(sshd: OpenSSHServer, sshd_directory: Path) -> SSHStandInPeer:
    peer = SSHStandInPeer(sshd, sshd_directory, shell="powershell")
    peer.log.write_text("")
    return peer


async def test_ssh_sessions_run_side_by_side_on_one_connection(ssh_peer: SSHStandInPeer) -> None:
    async with ssh_peer.target(sessions=4).open() as transport:
        events = await _hung_together(ssh_peer, transport, 4, 4)
        # The pool still serves after its hung channels were closed.
        await _reads(transport, 2)
    assert [kind for kind, _ in events] == ["begin"] * 4
    assert len({process for _, process in events}) == 4
    assert processes_mentioning(ssh_peer.path) == []


async def test_ssh_sessions_share_the_channel_limit_without_starving(
    ssh_peer: SSHStandInPeer,
) -> None:
    # Four sessions allowed, but two channels: at most two calls are on the
    # wire, and a session that falls idle while another call waits for a
    # channel gives its channel up instead of holding it.
    _slow(ssh_peer, 0.2)
    async with ssh_peer.target(sessions=4, max_channels=2).open() as transport:
        await _reads(transport, 8)
    events = _events(ssh_peer.log)
    assert len(events) == 16
    assert _most_in_flight(events) <= 2


async def test_ssh_sessions_fit_a_stricter_max_sessions(tmp_path: Path) -> None:
    # sshd refuses a fourth channel (MaxSessions 3, the kill channel
    # included): the pool of four shrinks to what the server accepts, the
    # refused calls wait for a channel, and every call answers.
    if sshd_unavailable_reason() is not None:
        pytest.skip(str(sshd_unavailable_reason()))
    with standin_sshd(tmp_path, extra_config=("MaxSessions 3",)) as server:
        peer = SSHStandInPeer(server, tmp_path, shell="powershell")
        _slow(peer, 0.2)
        async with peer.target(sessions=4).open() as transport:
            await _reads(transport, 8)
        events = _events(peer.log)
    assert len(events) == 16
    assert _most_in_flight(events) <= 2


async def test_ssh_pool_larger_than_its_channels_reuses_its_sessions(
    ssh_peer: SSHStandInPeer,
) -> None:
    # Four sessions, two channels: the calls waiting for a channel take the
    # session another call finishes with, instead of each finished session
    # being closed and a new PowerShell started for the next call.
    _slow(ssh_peer, 0.1)
    async with ssh_peer.target(sessions=4, max_channels=2).open() as transport:
        for _ in range(3):
            await _reads(transport, 8)
    events = _events(ssh_peer.log)
    assert len(events) == 48
    assert _most_in_flight(events) <= 2
    # Two PowerShells served the 24 calls (a start given up when a session
    # was handed over serves none).
    assert len({process for _, process in events}) == 2
    assert processes_mentioning(ssh_peer.path) == []


async def test_ssh_aclose_while_calls_wait_for_a_channel_says_closed(
    ssh_peer: SSHStandInPeer,
) -> None:
    # One channel, four calls: one is on the wire, three wait for a channel
    # when the transport closes; each fails as closed, not as a refused or
    # broken channel.
    with ssh_peer.edit() as host:
        host.inject_fault("hang", operation="list_vms", times=1)
    transport = ssh_peer.target(sessions=4, max_channels=1).open()
    await transport.open()
    calls = [
        asyncio.ensure_future(transport.run_operation(LIST_VMS, {"VM": None}, timeout=TIMEOUT))
        for _ in range(4)
    ]
    for _ in range(600):
        if _events(ssh_peer.log):
            break
        await asyncio.sleep(0.05)
    await transport.aclose()
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(outcome, TransportClosedError) for outcome in outcomes), outcomes
    assert len(_events(ssh_peer.log)) == 1
    assert processes_mentioning(ssh_peer.path) == []
