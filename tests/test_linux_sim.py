"""LinuxGuest on simulated guests, and the parts that need no guest at all."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from hvintegration import catalogue
from hvintegration._table import text_table
from hvintegration.errors import (
    DaemonControlError,
    DaemonNotFoundError,
    InvalidTargetError,
    OperationTimeoutError,
    PermissionDeniedError,
    ProtocolError,
    RemoteCommandError,
    TransportBrokenError,
    UnsafeChangeError,
)
from hvintegration.linux import (
    DAEMONS,
    LinuxGuest,
    decode_pool,
    match_program,
    resolve_daemon,
)
from hvintegration.linux.report import parse_status
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.linux import DISTROS, SimulatedLinuxGuest
from hvintegration.simulator.state import (
    guest_from_json,
    guest_to_json,
    host_from_json,
    host_to_json,
    load_guest,
    save_guest,
)
from hvintegration.transport import ErrorRecord, parse_target


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hv_kvp_daemon", "hv_kvp_daemon"),
        ("kvp", "hv_kvp_daemon"),
        ("KVP", "hv_kvp_daemon"),
        ("hypervkvpd", "hv_kvp_daemon"),
        ("hv-kvp-daemon.service", "hv_kvp_daemon"),
        ("Data Exchange", "hv_kvp_daemon"),
        ("Key-Value Pair Exchange", "hv_kvp_daemon"),
        ("vss", "hv_vss_daemon"),
        ("Backup (volume shadow copy)", "hv_vss_daemon"),
        ("hv_fcopy_daemon", "hv_fcopy_uio_daemon"),
        ("fcopy", "hv_fcopy_uio_daemon"),
        ("Guest Service Interface", "hv_fcopy_uio_daemon"),
    ],
)
def test_daemon_names(name: str, expected: str) -> None:
    assert resolve_daemon(name).name == expected
    assert resolve_daemon(catalogue.resolve("VSS")).short == "vss"


def test_services_without_a_daemon_and_unknown_names() -> None:
    with pytest.raises(DaemonNotFoundError, match="no user-space daemon"):
        resolve_daemon("Heartbeat")
    with pytest.raises(DaemonNotFoundError):
        resolve_daemon("$(touch /tmp/x); hv_kvp_daemon")
    with pytest.raises(DaemonNotFoundError) as caught:
        resolve_daemon("hv_foo")
    assert "hv_kvp_daemon" in str(caught.value)
    assert isinstance(caught.value, LookupError)


@pytest.mark.parametrize(
    ("path", "daemon"),
    [
        ("/usr/lib/linux-tools/3.13.0-32-generic/hv_kvp_daemon", "hv_kvp_daemon"),
        ("/opt/hv_kvp_daemon-6.1.0", "hv_kvp_daemon"),
        ("/usr/sbin/hypervvssd", "hv_vss_daemon"),
        ("/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon", "hv_fcopy_uio_daemon"),
        ("/usr/sbin/hv_get_dhcp_info", None),
        ("/usr/sbin/hv_kvp_daemonic", None),
    ],
)
def test_programs_match_by_name_even_versioned(path: str, daemon: str | None) -> None:
    found = match_program(path)
    assert (found.name if found else None) == daemon


def record(key: bytes, value: bytes) -> bytes:
    return key.ljust(512, b"\0") + value.ljust(2048, b"\0")


def test_decode_pool_cases() -> None:
    assert decode_pool(0, b"") == []
    full = decode_pool(2, record(b"k" * 512, b"v" * 2048))
    assert (full[0].key, full[0].value, full[0].ok) == ("k" * 512, "v" * 2048, True)
    bad = decode_pool(4, record(b"\xff", b"x") + record(b"k", b"x")[:10])
    assert [i.problem for i in bad] == ["key is not UTF-8", "truncated record of 10 bytes"]
    assert bad[0].key == "\ufffd"


def test_a_cut_report_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="cut short"):
        parse_status(b"version\t2\nuid\t0\n", target="t")
    with pytest.raises(ProtocolError, match="unreadable line"):
        parse_status(b"version\t2\nuid\t0\ndevice\tx\tnot-a-uuid\t\nend\n", target="t")
    with pytest.raises(ProtocolError, match="no user id"):
        parse_status(b"version\t2\nend\n", target="t")
    with pytest.raises(ProtocolError, match="version"):
        parse_status(b"version\t1\nuid\t0\nend\n", target="t")


REPORT_HEAD = b"version\t2\nuid\t0\nuser\troot\nkernel\t6.1.0\n"


@pytest.mark.parametrize(
    ("lines", "state", "size", "used_by", "source"),
    [
        (b"procmodules\t20480\t0\t-\n", "module", 20480, (), "/proc/modules"),
        (b"lsmod\t20480\t1\thv_foo,\n", "module", 20480, ("hv_foo",), "lsmod"),
        (b"driver_bound\t1\nmodule_dir\t1\n", "built-in", None, (), "sysfs"),
        (
            b"driver_bound\t1\nmodule_dir\t1\nmodule_initstate\tlive\nmodule_coresize\t4096\n"
            b"module_holder\thv_bar\n",
            "module",
            4096,
            ("hv_bar",),
            "sysfs",
        ),
        (b"", "absent", None, (), ""),
    ],
)
def test_driver_from_sysfs_proc_modules_or_lsmod(
    lines: bytes, state: str, size: int | None, used_by: tuple[str, ...], source: str
) -> None:
    driver = parse_status(REPORT_HEAD + lines + b"end\n", target="t").driver
    assert (driver.state, driver.size, driver.used_by, driver.source) == (
        state,
        size,
        used_by,
        source,
    )


@pytest.mark.parametrize("distro", list(DISTROS))
async def test_every_distro_reads_and_round_trips(distro: str) -> None:
    sim = SimulatedLinuxGuest(distro=distro)
    async with LinuxGuest.connect(sim) as guest:
        status = await guest.status()
        assert sim.round_trips == 1
        json.dumps(status.as_dict())
        assert "Daemon" in text_table(status.daemons)
        for state in status.daemons:
            if state.program is None:
                with pytest.raises(DaemonNotFoundError):
                    await guest.daemon(state.daemon).start()
                continue
            stopped = await guest.daemon(state.daemon).stop(force=True)
            assert not stopped.running
            started = await guest.daemon(state.daemon).start()
            assert started.running
            assert (started.unit is not None) == DISTROS[distro].systemd


async def test_seed_guest_shows_two_kvp_instances_and_stops_both() -> None:
    async with LinuxGuest.connect("sim-linux://?distro=ubuntu-14.04") as guest:
        status = await guest.status()
        kvp = status.daemon("kvp")
        assert [p.pid for p in kvp.processes] == [1286, 9333]
        assert kvp.installed[0].path == "/usr/sbin/hv_kvp_daemon"
        assert kvp.installed[0].script
        assert not status.systemd
        assert not (await guest.daemon("kvp").stop(force=True)).running
        restarted = await guest.daemon("kvp").restart(force=True)
        assert restarted.processes[0].program.startswith("/usr/lib/linux-tools/")


async def test_systemd_guest_uses_units() -> None:
    sim = SimulatedLinuxGuest(distro="rhel-9")
    async with LinuxGuest.connect(sim) as guest:
        state = await guest.daemon("hypervkvpd").state()
        assert state.unit is not None
        assert state.unit.name == "hypervkvpd.service"
        assert state.unit.active_state == "active"
        assert state.name == "hypervkvpd"
        stopped = await guest.daemon("kvp").stop(force=True)
        assert stopped.unit is not None
        assert stopped.unit.active_state == "inactive"
        sim.fail_start.add("kvp")
        # Fedora's note belongs to a restart of hypervkvpd, not to a start.
        with pytest.raises(DaemonControlError) as caught:
            await guest.daemon("kvp").start()
        assert "does not support restarting" not in str(caught.value)
        assert str(caught.value).startswith("open /dev/vmbus/hv_kvp failed")
        assert "result exit-code, exit status 1" in str(caught.value)
        with pytest.raises(DaemonControlError, match="does not support restarting"):
            await guest.daemon("kvp").restart(force=True)


async def test_start_failure_carries_the_daemons_output() -> None:
    sim = SimulatedLinuxGuest(distro="ubuntu-14.04")
    sim.fail_start.add("hv_vss_daemon")
    async with LinuxGuest.connect(sim) as guest:
        await guest.daemon("vss").stop()
        with pytest.raises(DaemonControlError, match="No such file or directory") as caught:
            await guest.daemon("vss").start()
    assert caught.value.daemon == "hv_vss_daemon"


async def test_a_daemon_ignoring_sigterm() -> None:
    sim = SimulatedLinuxGuest(distro="ubuntu-14.04")
    for process in sim.processes:
        process.ignores_term = True
    async with LinuxGuest.connect(sim) as guest:
        with pytest.raises(DaemonControlError) as caught:
            await guest.daemon("kvp").stop(force=True, grace=0)
        assert caught.value.pids == (1286, 9333)
        assert not (await guest.daemon("kvp").stop(force=True, grace=0, kill=True)).running


async def test_permissions_without_sudo_change_nothing() -> None:
    sim = SimulatedLinuxGuest(distro="debian-12", user="admin", sudo=False)
    before = [p.pid for p in sim.processes]
    async with LinuxGuest.connect(sim) as guest:
        with pytest.raises(PermissionDeniedError, match="passwordless sudo"):
            await guest.daemon("kvp").stop(force=True)
        with pytest.raises(PermissionDeniedError):
            await guest.set_kvp({"a": "b"})
        assert [p.pid for p in sim.processes] == before
        status = await guest.status()
    assert all(p.exe == "" for p in status.processes)
    sim.sudo = True
    async with LinuxGuest.connect(sim) as guest:
        assert not (await guest.daemon("kvp").stop(force=True)).running


async def test_kvp_read_write_delete() -> None:
    async with LinuxGuest.connect("sim-linux://web1") as guest:
        host = await guest.kvp(3)
        assert ("VirtualMachineName", "web1") in [(i.key, i.value) for i in host]
        items = await guest.set_kvp({"Role": "web", "Owner": "ops"})
        assert [(i.key, i.value) for i in items] == [("Role", "web"), ("Owner", "ops")]
        items = await guest.set_kvp({"Role": "db"})
        assert [(i.key, i.value) for i in items] == [("Role", "db"), ("Owner", "ops")]
        items = await guest.delete_kvp(["Role", "missing"])
        assert [i.key for i in items] == ["Owner"]
        with pytest.raises(ValueError, match="at most 511"):
            await guest.set_kvp({"k" * 512: "v"})
        with pytest.raises(ValueError, match="without NUL"):
            await guest.set_kvp({"a\0b": "v"})
        with pytest.raises(ValueError, match="0 to 4"):
            await guest.kvp(5)
        with pytest.raises(TypeError):
            await guest.delete_kvp("Owner")


def test_sim_linux_urls() -> None:
    target = parse_target("sim-linux://web1?distro=sles-15&user=admin&sudo=0&latency=0.1")
    assert target.url == "sim-linux://web1?distro=sles-15&user=admin&sudo=0&latency=0.1"
    with pytest.raises(InvalidTargetError, match="unknown simulated distro"):
        parse_target("sim-linux://?distro=beos")
    with pytest.raises(InvalidTargetError, match="unknown sim-linux:// option"):
        parse_target("sim-linux://?colour=1")


async def test_other_commands_are_not_a_shell() -> None:
    async with SimulatedLinuxGuest().open() as transport:
        done = await transport.run_command(["sh", "-c", "rm -rf /"], timeout=5)
    assert done.exit_status == 127


def test_every_daemon_has_units_for_every_family() -> None:
    for spec in DAEMONS:
        assert spec.units
        assert any(u.startswith("hyperv") for u in spec.units)


async def test_stopping_the_kvp_daemon_needs_force() -> None:
    sim = SimulatedLinuxGuest()
    async with LinuxGuest.connect(sim) as guest:
        with pytest.raises(UnsafeChangeError, match="Key-Value Pair Exchange"):
            await guest.daemon("kvp").stop()
        # A restart stops it too, and the start half may fail: force again.
        with pytest.raises(UnsafeChangeError, match="Key-Value Pair Exchange"):
            await guest.daemon("kvp").restart()
        assert sim.round_trips == 0
        assert (await guest.daemon("kvp").restart(force=True)).running
        assert not (await guest.daemon("vss").stop()).running


async def test_injected_faults_take_the_matching_commands_only() -> None:
    sim = SimulatedLinuxGuest()
    sim.inject_fault("error", operation="status", record=ErrorRecord("disk on fire"), times=2)
    sim.inject_fault("disconnect", operation="kvp")
    async with LinuxGuest.connect(sim) as guest:
        for _ in range(2):
            with pytest.raises(RemoteCommandError, match="disk on fire"):
                await guest.status()
        assert (await guest.driver()).state == "module"
        with pytest.raises(TransportBrokenError, match="dropped"):
            await guest.kvp(3)
        assert await guest.kvp(3)
    assert not sim.faults
    assert sim.calls == ["status", "status", "status", "kvp", "kvp"]
    assert sim.round_trips == 5


async def test_an_error_fault_without_a_record_is_an_io_error() -> None:
    sim = SimulatedLinuxGuest()
    sim.inject_fault("error")
    async with LinuxGuest.connect(sim) as guest:
        with pytest.raises(RemoteCommandError, match="Input/output error") as caught:
            await guest.status()
    assert caught.value.error_id == "exit:1"


async def test_a_hanging_guest_ends_with_the_callers_timeout() -> None:
    sim = SimulatedLinuxGuest()
    sim.inject_fault("hang", operation="status")
    async with LinuxGuest.connect(sim, timeout=0.2) as guest:
        with pytest.raises(OperationTimeoutError):
            await guest.status()
        # The next call works: a hang takes one round trip only.
        assert (await guest.daemon("vss").state()).running


async def test_commands_are_counted_by_name() -> None:
    sim = SimulatedLinuxGuest(distro="rhel-9")
    async with LinuxGuest.connect(sim) as guest:
        await guest.status()
        await guest.set_kvp({"Role": "web"})
    async with sim.open() as transport:
        await transport.run_command(["uname", "-r"], timeout=5)
        await transport.run_command(["sudo", "-n", "--", "systemctl", "stop", "--", "x"], timeout=5)
    assert sim.calls[0] == "status"
    assert sim.calls[-3:] == ["kvp", "uname", "systemctl"]
    assert sim.round_trips == len(sim.calls)


async def test_a_state_file_keeps_the_guest_between_connections(tmp_path: Path) -> None:
    path = tmp_path / "guest.json"
    url = f"sim-linux://web1?distro=rhel-9&state={path}"
    assert (
        parse_target(url).url == f"sim-linux://web1?distro=rhel-9&state={quote(str(path), safe='')}"
    )
    async with LinuxGuest.connect(url) as guest:
        assert not (await guest.daemon("vss").stop()).running
        await guest.set_kvp({"Role": "web"})
    saved = load_guest(path)
    assert saved.distro.key == "rhel-9"
    assert saved.round_trips >= 2
    saved.inject_fault("error", operation="status", record=ErrorRecord("from the file"))
    save_guest(saved, path)
    # Settings in the URL only seed a file that does not exist yet.
    async with LinuxGuest.connect(f"sim-linux://other?state={path}") as guest:
        with pytest.raises(RemoteCommandError, match="from the file"):
            await guest.status()
        status = await guest.status()
        assert not status.daemon("vss").running
        assert [(i.key, i.value) for i in await guest.kvp(1)] == [("Role", "web")]
    assert guest_to_json(guest_from_json(guest_to_json(load_guest(path)))) == guest_to_json(
        load_guest(path)
    )


def test_a_host_state_is_not_a_guest_state() -> None:
    with pytest.raises(ValueError, match="not a simulated Linux guest"):
        guest_from_json(host_to_json(SimulatedHost()))
    with pytest.raises(ValueError, match="not a simulated host"):
        host_from_json(guest_to_json(SimulatedLinuxGuest()))
