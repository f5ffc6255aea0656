"""Fleet runs against real peers: simulated hosts, real child processes, the loopback sshd.

Each mix holds targets that work and targets that cannot be reached, answer
too slowly, fail, or refuse the credentials; the working ones' results must
all be there, and the broken ones must each carry their own error.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration import (
    AuthenticationError,
    BatchError,
    HyperVHost,
    InvalidTargetError,
    LinuxGuest,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    TransportError,
    UnsafeChangeError,
)
from hvintegration.fleet import Fleet, FleetProgress, FleetResult, FleetTarget, infer_kind
from hvintegration.simulator import SimulatedHost
from hvintegration.testing.processes import processes_mentioning
from hvintegration.testing.sshd import OpenSSHServer, free_loopback_port, sshd_unavailable_reason
from hvintegration.transport.simulator import SimulatorTransport
from hvintegration.transport.ssh import SSHTarget


class Gauge:
    """Counts transports between open and close; opens wait until ``gate`` are open."""

    def __init__(self, gate: int) -> None:
        self.gate = gate
        self.now = 0
        self.peak = 0
        self.opened = 0
        self.reached = asyncio.Event()


class CountingTransport(SimulatorTransport):
    def __init__(self, peer: SimulatedHost, gauge: Gauge) -> None:
        super().__init__(peer)
        self.gauge = gauge

    async def _open(self) -> None:
        gauge = self.gauge
        gauge.now += 1
        gauge.opened += 1
        gauge.peak = max(gauge.peak, gauge.now)
        if gauge.now >= gauge.gate:
            gauge.reached.set()
        # Hold every connection open until `gate` are open at once: if the
        # fleet allowed more, the peak would show it, whatever the timing.
        await asyncio.wait_for(gauge.reached.wait(), 10)

    async def _aclose(self) -> None:
        self.gauge.now -= 1
        await super()._aclose()


class CountingTarget:
    """A simulated host whose transports are counted."""

    def __init__(self, host: SimulatedHost, gauge: Gauge) -> None:
        self.host = host
        self.gauge = gauge

    @property
    def url(self) -> str:
        return self.host.url

    def open(self) -> CountingTransport:
        return CountingTransport(self.host, self.gauge)


@pytest.fixture(scope="module")
def sshd() -> Iterator[OpenSSHServer]:
    if sshd_unavailable_reason() is not None:
        pytest.skip(str(sshd_unavailable_reason()))
    with OpenSSHServer() as server:
        yield server


def _hosts(count: int) -> list[SimulatedHost]:
    return [SimulatedHost(f"HV{n:02d}") for n in range(count)]


async def test_a_broken_host_never_hides_the_others() -> None:
    good = _hosts(2)
    good[0].add_vm("web01")
    failing = SimulatedHost("FAILING")
    failing.inject_fault("error", operation="get_integration_services")
    hanging = SimulatedHost("HANGING")
    hanging.inject_fault("hang")
    slow = SimulatedHost("SLOW", latency=30)
    unreachable = f"ssh://root@127.0.0.1:{free_loopback_port()}?shell=powershell"
    fleet = Fleet(
        [
            good[0],
            FleetTarget(failing, name="failing"),
            FleetTarget(hanging, name="hanging", operation_timeout=0.3),
            FleetTarget(slow, name="slow", timeout=0.3),
            FleetTarget(unreachable, name="unreachable", kind="host"),
            good[1],
        ]
    )
    result = await fleet.integration_services()

    assert [r.target for r in result.targets] == [
        "sim://HV00",
        "failing",
        "hanging",
        "slow",
        "unreachable",
        "sim://HV01",
    ]
    assert not result.ok
    assert sorted(result.errors) == ["failing", "hanging", "slow", "unreachable"]
    assert isinstance(result.errors["failing"], PermissionDeniedError)
    assert isinstance(result.errors["hanging"], OperationTimeoutError)
    slow_error = result.errors["slow"]
    assert isinstance(slow_error, OperationTimeoutError)
    assert slow_error.operation == "fleet"
    assert slow_error.timeout == 0.3
    assert isinstance(result.errors["unreachable"], TransportError)
    # Every row of both good hosts, each saying its target.
    assert {(row.target, row.vm) for row in result.rows} == {
        ("sim://HV00", "demovm"),
        ("sim://HV00", "web01"),
        ("sim://HV01", "demovm"),
    }
    assert len(result.rows) == 18
    assert good[0].round_trips == good[1].round_trips == 1
    assert set(result.values) == {"sim://HV00", "sim://HV01"}


async def test_linux_guests_over_real_sshd_with_wrong_credentials(
    sshd: OpenSSHServer, tmp_path: Path
) -> None:
    wrong_key = tmp_path / "wrong_key"
    await (
        await asyncio.create_subprocess_exec(
            "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)
        )
    ).wait()
    common = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": "root",
        "known_hosts": str(sshd.known_hosts),
    }
    right = SSHTarget(**common, client_keys=(str(sshd.client_key),))  # type: ignore[arg-type]
    wrong = SSHTarget(**common, client_keys=(str(wrong_key),))  # type: ignore[arg-type]
    fleet = Fleet(
        [
            FleetTarget(right, name="real"),
            FleetTarget(wrong, name="wrong-key"),
            FleetTarget(f"ssh://root@127.0.0.1:{free_loopback_port()}", name="nobody"),
            "sim-linux://web1?distro=rhel-9",
        ]
    )
    assert [t.kind for t in fleet] == ["linux"] * 4
    result = await fleet.linux_status()
    errors = result.errors
    assert isinstance(errors.pop("wrong-key"), AuthenticationError)
    assert isinstance(errors.pop("nobody"), TransportError)
    assert errors == {}
    assert result.values["real"].target == right.url
    web1 = [row for row in result.rows if row.target == "sim-linux://web1?distro=rhel-9"]
    assert {row.daemon for row in web1} >= {"hypervkvpd", "hypervvssd"}
    assert {row.target for row in result.rows} == {"real", "sim-linux://web1?distro=rhel-9"}


async def test_the_bound_on_open_connections_holds() -> None:
    gauge = Gauge(gate=3)
    hosts = _hosts(12)
    fleet = Fleet([CountingTarget(host, gauge) for host in hosts], max_connections=3)
    result = await fleet.integration_services()
    assert result.ok
    assert gauge.opened == 12
    assert gauge.peak == 3
    assert result.peak_connections == 3
    assert gauge.now == 0
    assert all(host.round_trips == 1 for host in hosts)


async def test_without_a_bound_every_target_is_open_at_once() -> None:
    # The same rig shows the peak tracks the setting, not a fixed number.
    gauge = Gauge(gate=12)
    fleet = Fleet([CountingTarget(host, gauge) for host in _hosts(12)], max_connections=50)
    result = await fleet.integration_services()
    assert result.ok
    assert gauge.peak == result.peak_connections == 12


async def test_cancelling_closes_every_connection() -> None:
    gauge = Gauge(gate=4)
    hosts = _hosts(6)
    for host in hosts:
        host.inject_fault("hang")
    fleet = Fleet([CountingTarget(host, gauge) for host in hosts], max_connections=4)
    task = asyncio.ensure_future(fleet.integration_services())
    await asyncio.wait_for(gauge.reached.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gauge.now == 0
    assert gauge.opened == 4


async def _cancel_leaves_no_process(fleet: Fleet, marker: str) -> None:
    # One process per target with the marker in its own command line.
    argv = [sys.executable, "-c", "import time; time.sleep(300)", marker]

    async def sleep(guest):  # type: ignore[no-untyped-def]
        return await guest.transport.run_command(argv, timeout=600)

    task: asyncio.Future[object] = asyncio.ensure_future(fleet.run_linux(sleep))
    try:
        for _ in range(500):
            if len(processes_mentioning(marker)) >= len(fleet):
                break
            await asyncio.sleep(0.02)
        assert len(processes_mentioning(marker)) >= len(fleet)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    for _ in range(250):
        if not processes_mentioning(marker):
            break
        await asyncio.sleep(0.02)
    assert processes_mentioning(marker) == []


async def test_cancelling_leaves_no_local_process_behind() -> None:
    marker = f"hvintegration-fleet-{uuid.uuid4()}"
    fleet = Fleet(
        [FleetTarget("local://", name=f"local{n}", kind="linux") for n in range(3)],
    )
    await _cancel_leaves_no_process(fleet, marker)


async def test_cancelling_leaves_no_process_behind_sshd(sshd: OpenSSHServer) -> None:
    marker = f"hvintegration-fleet-{uuid.uuid4()}"
    url = f"{sshd.url()}?known_hosts={sshd.known_hosts}&key={sshd.client_key}"
    fleet = Fleet([FleetTarget(url, name=f"ssh{n}") for n in range(2)])
    await _cancel_leaves_no_process(fleet, marker)


async def test_progress_reports_each_target_once() -> None:
    seen: list[FleetProgress] = []
    failing = SimulatedHost("BAD")
    failing.inject_fault("error")
    fleet = Fleet([*_hosts(3), failing], max_connections=2, progress=seen.append)
    result = await fleet.integration_services()
    assert [p.done for p in seen] == [1, 2, 3, 4]
    assert {p.total for p in seen} == {4}
    assert seen[-1].failed == 1
    assert sorted(p.last.target for p in seen) == sorted(r.target for r in result.targets)


async def test_a_failing_progress_callback_loses_no_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gauge = Gauge(gate=1)
    calls = []

    def explode(progress: FleetProgress) -> None:
        calls.append(progress)
        raise RuntimeError("callback broke")

    fleet = Fleet(
        [CountingTarget(h, gauge) for h in _hosts(5)], max_connections=2, progress=explode
    )
    with caplog.at_level("WARNING", logger="hvintegration.fleet.fleet"):
        result = await fleet.integration_services()
    assert result.ok
    assert len(result.targets) == 5
    assert len(result.rows) == 5 * 6
    assert len(calls) == 1  # said once, then left alone
    assert [r.message for r in caplog.records].count(
        "the fleet's progress callback failed; no more progress"
    ) == 1
    assert gauge.now == 0


async def test_apply_changes_only_what_differs_one_round_trip_per_host() -> None:
    first, second, third = _hosts(3)
    fleet = Fleet([first, second, third])
    result = await fleet.apply(
        {
            "sim://HV00": {"demovm": {"Guest Service Interface": True, "VSS": True}},
            "sim://HV01": {"demovm": {"Heartbeat": False}},
        }
    )
    assert isinstance(result.errors["sim://HV01"], UnsafeChangeError)
    assert [(r.item, r.changed, r.current) for r in result.rows] == [
        ("Guest Service Interface", True, False),
        ("VSS", False, True),
    ]
    assert first.round_trips == 1
    assert second.round_trips == 0  # refused before anything was sent
    assert third.round_trips == 0  # not named: not contacted
    forced = await fleet.apply({"sim://HV01": {"demovm": {"Heartbeat": False}}}, force=True)
    assert forced.ok
    assert [(r.item, r.changed, r.needs_force) for r in forced.rows] == [("Heartbeat", True, True)]


async def test_windows_guests_and_kinds() -> None:
    fleet = Fleet(["sim://?guest=demovm", "sim://HV09", "sim-linux://"])
    result = await fleet.windows_services()
    assert [r.target for r in result.targets] == ["sim://?guest=demovm"]
    assert {row.name for row in result.rows} >= {"vmicheartbeat", "vmicvss"}
    assert infer_kind(SSHTarget("hv1", shell="powershell")) == "host"
    assert infer_kind(SSHTarget("web1")) == "linux"
    assert infer_kind("psrp://admin@hv01") == "host"


async def test_a_target_object_has_the_kind_its_url_says() -> None:
    lab = SimulatedHost()
    lab.vm("demovm").windows.services["vmicvss"].status = "Stopped"  # type: ignore[union-attr]
    inside = lab.inside("demovm")
    assert infer_kind(inside) == infer_kind(inside.url) == "windows"
    assert infer_kind(lab) == "host"
    assert [t.kind for t in Fleet([inside]).targets] == ["windows"]
    assert [t.kind for t in Fleet([FleetTarget(inside)]).targets] == ["windows"]
    result = await Fleet([inside]).windows_services()
    assert result.ok
    # Read from the lab itself: the service stopped there shows stopped.
    assert {row.name: row.status for row in result.rows}["vmicvss"] == "Stopped"


async def test_a_target_of_the_wrong_kind_fails_alone() -> None:
    fleet = Fleet([FleetTarget("sim-linux://web1", kind="host"), "sim://HV01"])
    result = await fleet.integration_services()
    error = result.errors["sim-linux://web1"]
    assert isinstance(error, InvalidTargetError)
    assert "runs shell commands only" in str(error)
    assert {row.target for row in result.rows} == {"sim://HV01"}


async def test_renderings_say_each_rows_target() -> None:
    failing = SimulatedHost("BAD")
    failing.inject_fault("error")
    result = await Fleet(["sim://HV01", FleetTarget(failing, name="bad")]).integration_services()
    text = str(result)
    assert text.splitlines()[0].split()[:3] == ["Target", "VMName", "Name"]
    assert "sim://HV01 demovm" in text
    assert text.splitlines()[-1].startswith("bad: failed: PermissionDeniedError")
    html = result._repr_html_()
    assert html.count("<tr><td>sim://HV01</td>") == 6
    assert "Failed targets" in html
    assert "<td>bad</td>" in html
    failing_error = result.errors["bad"]
    data = json.loads(result.to_json())
    assert data["ok"] is False
    assert data["rows"][0]["target"] == "sim://HV01"
    assert data["targets"][1]["error"]["type"] == "PermissionDeniedError"
    # One schema: a service inside a row is its catalogue key, as in every record.
    assert {row["service"] for row in data["rows"]} >= {"guest_service_interface", "vss"}
    assert "Guest Service Interface" in text  # the table shows the English name
    # Every rendering of the targets has a JSON form, errors included.
    targets = json.loads(result.targets.to_json())
    assert targets[1]["error"] == {"type": "PermissionDeniedError", "message": str(failing_error)}
    assert json.loads(result.failed.to_json())[0]["target"] == "bad"
    frame = result.to_dataframe()
    # Field names, as result.rows.to_dataframe() has them.
    assert list(frame.columns) == ["target", "vm", "vm_id", "service", "enabled", "status"]
    assert list(frame.columns) == list(result.rows.to_dataframe().columns)
    assert frame["enabled"].dtype == bool
    assert len(frame) == 6
    with pytest.raises(BatchError) as caught:
        result.raise_for_errors()
    assert list(caught.value.errors) == ["bad"]
    assert caught.value.result is result


async def test_to_dataframe_without_pandas_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = await Fleet(["sim://"]).integration_services()
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ModuleNotFoundError, match=r"hvintegration\[pandas\]"):
        result.to_dataframe()


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Fleet("sim://"), TypeError, "list of targets"),
        (lambda: Fleet(["sim://"], max_connections=0), ValueError, "at least 1"),
        (lambda: Fleet(["sim://"], timeout=0), ValueError, "positive"),
        (lambda: Fleet(["sim://A", "sim://A"]), ValueError, "two fleet targets"),
        (lambda: FleetTarget("sim://", kind="router"), ValueError, "unknown target kind"),
        (lambda: FleetTarget("hv01"), ValueError, "is a URL"),
        (lambda: FleetTarget("sim://", timeout=-1), ValueError, "positive"),
        (lambda: Fleet(["sim://"]).select(names=["nope"]), ValueError, "no fleet target"),
    ],
)
def test_bad_settings_are_refused(make: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()  # type: ignore[operator]


async def test_apply_refuses_names_that_are_not_hosts() -> None:
    fleet = Fleet(["sim://HV01", "sim-linux://web1"])
    with pytest.raises(ValueError, match="not a host of this fleet: sim-linux://web1"):
        await fleet.apply({"sim-linux://web1": {}})


def test_a_password_in_a_url_never_shows() -> None:
    member = FleetTarget("psrp://admin:s3cret@hv01?ssl=true")
    assert member.url == "psrp://admin@hv01?ssl=true"
    assert "s3cret" not in repr(member)
    assert "s3cret" not in repr(Fleet([member]))


async def test_diagnose_every_host_with_a_broken_one_mixed_in() -> None:
    good = SimulatedHost("GOOD")
    good.add_vm("web01")
    broken = SimulatedHost("BROKEN")
    broken.inject_fault("error", operation="list_vms")
    result = await Fleet([good, FleetTarget(broken, name="broken")]).diagnose()
    assert list(result.errors) == ["broken"]
    assert {(row.target, row.vm) for row in result.rows} == {
        ("sim://GOOD", "demovm"),
        ("sim://GOOD", "web01"),
    }
    problems = {(row.vm, row.service, row.verdict) for row in result.rows if row.problem}
    assert problems == {
        ("demovm", "guest_service_interface", "disabled on host"),
        ("web01", "guest_service_interface", "disabled on host"),
    }
    assert [d.vm for d in result.values["sim://GOOD"]] == ["demovm", "web01"]


async def test_a_target_past_its_timeout_is_stopped_and_leaves_no_process() -> None:
    marker = f"hvintegration-fleet-{uuid.uuid4()}"
    argv = [sys.executable, "-c", "import time; time.sleep(300)", marker]

    async def work(guest: LinuxGuest, member: FleetTarget) -> int:
        command = argv if member.name == "slow" else ["true"]
        return (await guest.transport.run_command(command, timeout=600)).exit_status

    fleet = Fleet(
        [
            FleetTarget("local://", name="slow", kind="linux", timeout=1),
            FleetTarget("local://?mode=oneshot", name="quick", kind="linux"),
        ]
    )
    result: FleetResult[object] = await fleet.run({"linux": work})
    error = result.errors["slow"]
    assert isinstance(error, OperationTimeoutError)
    assert error.timeout == 1
    assert result.values == {"quick": 0}
    for _ in range(250):
        if not processes_mentioning(marker):
            break
        await asyncio.sleep(0.02)
    assert processes_mentioning(marker) == []


@pytest.mark.parametrize(("exclusive", "most"), [(True, 1), (False, 2)])
async def test_one_machine_under_two_names_takes_turns_when_changed(
    tmp_path: Path, exclusive: bool, most: int
) -> None:
    url = f"sim://HV01?state={tmp_path / 'hv01.json'}"
    fleet = Fleet([FleetTarget(url, name="hv01"), FleetTarget(url, name="hv01-alias")])
    active: list[int] = [0, 0]

    async def change(host: HyperVHost, _: FleetTarget) -> int:
        active[0] += 1
        active[1] = max(active)
        await asyncio.sleep(0.05)
        await host.list_vms()
        active[0] -= 1
        return 0

    result = await fleet.run({"host": change}, exclusive=exclusive)
    assert result.ok
    assert active[1] == most


async def test_a_failed_read_keeps_the_rows_it_did_read() -> None:
    result = await Fleet(["sim://HV01"]).integration_services(["demovm", "ghost"])
    error = result.errors["sim://HV01"]
    assert isinstance(error, BatchError)
    assert {row.vm for row in result.rows} == {"demovm"}
    assert len(result.rows) == 6


def test_one_string_where_a_list_is_wanted_is_refused() -> None:
    fleet = Fleet(["sim://A", "sim://B"])
    with pytest.raises(TypeError, match="wrap one name in a list"):
        fleet.select(names="sim://A")


@pytest.mark.parametrize("method", ["integration_services", "diagnose"])
async def test_one_vm_name_string_is_refused(method: str) -> None:
    with pytest.raises(TypeError, match="wrap one name in a list"):
        await getattr(Fleet(["sim://A"]), method)("demovm")


async def test_diagnose_rows_carry_the_vm_id_and_the_remedies() -> None:
    lab = SimulatedHost()
    twin = lab.add_vm("demovm", id=uuid.uuid4())
    result = await Fleet([lab]).diagnose()
    gsi = [row for row in result.rows if row.service == "guest_service_interface"]
    assert {row.vm_id for row in gsi} == {lab.vm("demovm").id, twin.id}
    for row in gsi:
        assert row.verdict == "disabled on host"
        # Two VMs share the name: each step reaches its own by id.
        assert [shlex.split(step.cli)[-2] for step in row.remedies] == [str(row.vm_id)]
    assert lab.round_trips == 3  # list_vms, services, KVP: nothing more for the remedies


async def test_diagnose_refuses_an_unknown_host_os_before_contacting_a_host() -> None:
    lab = SimulatedHost()
    with pytest.raises(NotFoundError, match="Windows 95"):
        await Fleet([lab]).diagnose(host_os="Windows 95")
    assert lab.round_trips == 0
