"""Linux guests as distributions really package the Hyper-V daemons.

Each fixture copies a distribution's packaging (unit files, wrapper scripts,
install paths) into the guest sandbox: real sshd, Debian's real
hv_kvp_daemon and hv_vss_daemon, and the fake systemctl where a unit is
involved (systemd cannot run in the sandbox). Sources:

- SUSE: the hyper-v package's hyper-v.spec (2024), which writes
  hv_fcopy_daemon.service and hv_fcopy_uio_daemon.service with the
  conditions below and installs the programs in /usr/lib/hyper-v/bin.
- Debian 12: the hyperv-daemons package installed on this machine
  (/lib/systemd/system/hv-kvp-daemon.service, which declares
  Conflicts=hyperv-daemons.hv-kvp-daemon.service, Debian 9 and 10's name).
- Ubuntu: linux-cloud-tools-common's /usr/sbin/hv_kvp_daemon, the kernel
  package's debian/tools/generic wrapper, which runs
  /usr/lib/linux-tools/$(uname -r)/NAME or prints a warning and exits 2.
- RHEL and Fedora: hyperv-daemons.spec (hypervkvpd.service runs
  /usr/sbin/hypervkvpd -n).
- NixOS: nixpkgs pkgs/os-specific/linux/hyperv-daemons/default.nix
  (hv-kvp.service; hv_kvp_daemon is a makeWrapper script that ends in
  exec -a "$0" .../.hv_kvp_daemon-wrapped "$@").
"""

from __future__ import annotations

import platform
from collections.abc import Iterator

import pytest

from hvintegration.errors import DaemonControlError, ProtocolError
from hvintegration.linux import LinuxGuest
from hvintegration.linux.report import MAX_REPORT_BYTES, parse_status
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.simulator.linux_model import SimulatedProcess
from hvintegration.testing.linux_guest import (
    GuestLayout,
    GuestSandbox,
    sandbox_unavailable_reason,
)

KVP = "/usr/sbin/hv_kvp_daemon"
SUSE_BIN = "/usr/lib/hyper-v/bin"

# hyper-v.spec's units, with ${bindir} and %chardev_fcopy expanded.
SUSE_FCOPY_UNIT = f"""# started via /usr/lib/udev/rules.d/hyper-v.rules
[Unit]
Description=Hyper-V host to guest file copy daemon
ConditionVirtualization=microsoft
ConditionPathExists=/dev/vmbus/hv_fcopy

[Service]
ExecStart={SUSE_BIN}/hv_fcopy_daemon --no-daemon
Restart=on-failure

[Install]
WantedBy=default.target
"""
NEW_ID = "/sys/bus/vmbus/drivers/uio_hv_generic/new_id"
SUSE_FCOPY_UIO_UNIT = f"""# started via /usr/lib/udev/rules.d/hyper-v.rules
[Unit]
Description=Hyper-V host to guest UIO file copy daemon
ConditionVirtualization=microsoft
ConditionPathExists=/sys/bus/vmbus/drivers/uio_hv_generic/new_id
ConditionPathExists=!/dev/vmbus/hv_fcopy

[Service]
ExecStartPre=/bin/sh -c 'set -e;echo 34d14be3-dee4-41c8-9ae7-6b174977c192 > {NEW_ID}'
ExecStart={SUSE_BIN}/hv_fcopy_uio_daemon --no-daemon
Restart=on-failure

[Install]
WantedBy=default.target
"""


def suse(*, kernel_6_10: bool) -> GuestLayout:
    """SUSE's hyper-v package; before 6.10 the kernel has /dev/vmbus/hv_fcopy."""
    return GuestLayout(
        systemd=True,
        debian_units=False,
        path_daemons=False,
        fcopy_node=not kernel_6_10,
        uio=kernel_6_10,
        programs={
            f"{SUSE_BIN}/hv_fcopy_daemon": "fake:hv_fcopy_daemon",
            f"{SUSE_BIN}/hv_fcopy_uio_daemon": "fake:hv_fcopy_uio_daemon",
        },
        units={
            "hv_fcopy_daemon.service": SUSE_FCOPY_UNIT,
            "hv_fcopy_uio_daemon.service": SUSE_FCOPY_UIO_UNIT,
        },
    )


def debian_unit(name: str, program: str) -> str:
    """Debian's unit text (hyperv-daemons 4.19 and 6.1 differ only in name)."""
    return (
        "[Unit]\nDescription=Hyper-V key-value pair (KVP) daemon\n\n"
        f"[Service]\nExecStart={program} -n\n\n[Install]\nWantedBy=multi-user.target\n"
    )


# Ubuntu's debian/tools/generic, as linux-cloud-tools-common installs it at
# /usr/sbin/hv_kvp_daemon (the hint lines shortened).
UBUNTU_WRAPPER = r"""#!/bin/bash
full_version=`uname -r`

# First check for a fully qualified version.
this="/usr/lib/linux-tools/$full_version/`basename $0`"
if [ -f "$this" ]; then
	exec "$this" "$@"
fi

# Removing flavour from version i.e. generic or server.
flavour_abi=${full_version#*-}
flavour=${flavour_abi#*-}
version=${full_version%-$flavour}
this="$0_$version"
if [ -f "$this" ]; then
	exec "$this" "$@"
fi

echo "WARNING: `basename $0` not found for kernel $full_version" >&2
echo "" >&2
echo "  You may need to install the following packages for this specific kernel:" >&2
echo "    linux-tools-$full_version" >&2
echo "    linux-cloud-tools-$full_version" >&2
echo "" >&2
echo "  You may also want to install one of the following packages to keep up to date:" >&2
echo "    linux-tools-$flavour" >&2
echo "    linux-cloud-tools-$flavour" >&2
exit 2
"""

NIX_BIN = "/opt/nix/store/3x2k7cmb-hyperv-daemons-bin-6.6.52/bin"
# makeWrapper's output for hv_kvp_daemon (wrapProgram --prefix PATH ...).
NIX_WRAPPER = f"""#! /bin/bash -e
PATH=${{PATH:+':'$PATH':'}}
PATH=${{PATH/':''{NIX_BIN}'':'/':'}}
PATH='{NIX_BIN}'$PATH
PATH=${{PATH#':'}}
PATH=${{PATH%':'}}
export PATH
exec -a "$0" "{NIX_BIN}/.hv_kvp_daemon-wrapped"  "$@"
"""


@pytest.fixture
def layout() -> GuestLayout:
    return GuestLayout()


@pytest.fixture
def sandbox(layout: GuestLayout) -> Iterator[GuestSandbox]:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with GuestSandbox(layout) as running:
        yield running


# --- A1: two units for one service ---------------------------------------


@pytest.mark.parametrize("layout", [suse(kernel_6_10=False)])
async def test_suse_before_6_10_runs_hv_fcopy_daemon_service(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        # None is active: the unit whose program fits /dev/vmbus/hv_fcopy.
        state = await guest.daemon("fcopy").state()
        assert state.unit is not None
        assert state.unit.name == "hv_fcopy_daemon.service"
        assert state.program == f"{SUSE_BIN}/hv_fcopy_daemon"
        assert state.name == "hv_fcopy_daemon"
        started = await guest.daemon("fcopy").start()
        assert started.unit is not None
        assert started.unit.name == "hv_fcopy_daemon.service"
        assert started.unit.main_pid == started.processes[0].pid
        # Active and running: restart goes through the same unit, and file
        # copy is running afterwards.
        restarted = await guest.daemon("fcopy").restart()
        assert restarted.running
        assert restarted.unit is not None
        assert (restarted.unit.name, restarted.unit.active_state) == (
            "hv_fcopy_daemon.service",
            "active",
        )
        assert restarted.processes[0].pid != started.processes[0].pid
        status = await guest.status()
        # One program, one name, everywhere in the report (issue 15 item 10).
        names = {i["path"]: i["daemon"] for i in status.as_dict()["installed"]}  # type: ignore[index]
        assert names[f"{SUSE_BIN}/hv_fcopy_daemon"] == "hv_fcopy_daemon"
        assert names[f"{SUSE_BIN}/hv_fcopy_uio_daemon"] == "hv_fcopy_uio_daemon"
        assert [p.name for p in status.processes] == ["hv_fcopy_daemon"]


@pytest.mark.parametrize("layout", [suse(kernel_6_10=True)])
async def test_suse_from_6_10_runs_the_uio_unit(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        state = await guest.daemon("fcopy").state()
        assert state.unit is not None
        assert state.unit.name == "hv_fcopy_uio_daemon.service"
        started = await guest.daemon("fcopy").start()
        assert [p.name for p in started.processes] == ["hv_fcopy_uio_daemon"]
        assert started.unit is not None
        assert started.unit.active_state == "active"


# --- A2: unit names the catalogue does not know ----------------------------


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            systemd=True,
            debian_units=False,
            units={"hyperv-daemons.hv-kvp-daemon.service": debian_unit("hv-kvp", KVP)},
        )
    ],
)
async def test_debian_10_unit_names(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        state = await guest.daemon("kvp").state()
        assert state.unit is not None
        assert state.unit.name == "hyperv-daemons.hv-kvp-daemon.service"
        started = await guest.daemon("kvp").start()
        assert started.unit is not None
        assert started.unit.main_pid == started.processes[0].pid
        restarted = await guest.daemon("kvp").restart(force=True)
        assert restarted.unit is not None
        assert restarted.unit.active_state == "active"
        assert len(restarted.processes) == 1


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            systemd=True,
            debian_units=False,
            units={"site-kvp.service": debian_unit("site-kvp", KVP)},
        )
    ],
)
async def test_a_unit_of_any_name_is_found_from_systemd(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        done = await guest.transport.run_command(
            ["systemctl", "start", "--", "site-kvp.service"], timeout=10
        )
        done.check()
        state = await guest.daemon("kvp").state()
        assert state.unit is not None
        assert state.unit.name == "site-kvp.service"
        # The restart stops and starts the unit: never a second instance
        # outside systemd while the unit shows dead.
        restarted = await guest.daemon("kvp").restart(force=True)
        assert restarted.unit is not None
        assert (restarted.unit.name, restarted.unit.active_state) == ("site-kvp.service", "active")
        assert [p.pid for p in restarted.processes] == [restarted.unit.main_pid]


# --- A3: a process name that is not the program's name ---------------------


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            systemd=True,
            debian_units=False,
            path_daemons=True,
            programs={
                f"{NIX_BIN}/hv_kvp_daemon": f"text:{NIX_WRAPPER}",
                f"{NIX_BIN}/.hv_kvp_daemon-wrapped": KVP,
            },
            units={"hv-kvp.service": debian_unit("hv-kvp", f"{NIX_BIN}/hv_kvp_daemon")},
        )
    ],
)
async def test_a_wrapper_started_with_exec_a(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        status = await guest.status()
        # Outside every directory the status scans: found through ExecStart.
        assert f"{NIX_BIN}/hv_kvp_daemon" in [i.path for i in status.daemon("kvp").installed]
        started = await guest.daemon("kvp").start()
        assert started.unit is not None
        assert started.unit.name == "hv-kvp.service"
        [process] = started.processes
        assert process.exe == f"{NIX_BIN}/.hv_kvp_daemon-wrapped"
        assert process.program == f"{NIX_BIN}/hv_kvp_daemon"
        assert process.name == "hv_kvp_daemon"
        assert started.unit.main_pid == process.pid


# --- A4: start failures name the real cause --------------------------------


@pytest.mark.parametrize("layout", [GuestLayout(programs={KVP: f"text:{UBUNTU_WRAPPER}"})])
async def test_ubuntu_wrapper_without_per_kernel_tools(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        with pytest.raises(DaemonControlError) as caught:
            await guest.daemon("kvp").start()
    message = str(caught.value)
    assert message.startswith(
        f"WARNING: hv_kvp_daemon not found for kernel {platform.release()}"
    ), message
    assert "exited with status 2" in message
    assert "Fedora" not in message
    assert "linux-cloud-tools-" in caught.value.remote_message


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            programs={
                KVP: f"text:{UBUNTU_WRAPPER}",
                f"/usr/lib/linux-tools/{platform.release()}/hv_kvp_daemon": KVP,
            }
        )
    ],
)
async def test_ubuntu_wrapper_with_per_kernel_tools(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        started = await guest.daemon("kvp").start()
        tools = f"/usr/lib/linux-tools/{platform.release()}/hv_kvp_daemon"
        assert [p.program for p in started.processes] == [tools]
        assert started.program == KVP


@pytest.mark.parametrize("layout", [GuestLayout(driver="absent", devices=False)])
async def test_a_vm_without_hyper_v_devices(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        with pytest.raises(DaemonControlError) as caught:
            await guest.daemon("kvp").start()
    message = str(caught.value)
    # The daemon's own status (1), not the forking parent's 0.
    assert "exited with status 1" in message, message
    assert "/dev/vmbus/hv_kvp is missing" in message
    assert "hv_utils driver is not loaded" in message
    assert "is this VM running on Hyper-V?" in message
    assert "Fedora" not in message


@pytest.mark.parametrize(
    "layout",
    [
        GuestLayout(
            systemd=True,
            debian_units=False,
            path_daemons=True,
            programs={"/usr/sbin/hypervkvpd": KVP},
            units={"hypervkvpd.service": debian_unit("hypervkvpd", "/usr/sbin/hypervkvpd")},
            devices=False,
            driver="absent",
        )
    ],
)
async def test_rhel_hypervkvpd_under_systemd(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        state = await guest.daemon("kvp").state()
        assert state.unit is not None
        assert state.unit.name == "hypervkvpd.service"
        with pytest.raises(DaemonControlError) as started:
            await guest.daemon("kvp").start()
        with pytest.raises(DaemonControlError) as restarted:
            await guest.daemon("kvp").restart(force=True)
    # The unit's result and what the daemon logged; Fedora's note only on a restart.
    assert "hypervkvpd.service: result exit-code, exit status 1" in str(started.value)
    assert "is this VM running on Hyper-V?" in str(started.value)
    assert "Fedora" not in str(started.value)
    assert "does not support restarting" in str(restarted.value)


# --- B14, B15: an unprivileged user cannot steer root -----------------------


async def test_a_users_copy_named_like_the_daemon_is_not_the_daemon(
    sandbox: GuestSandbox,
) -> None:
    plant = (
        "mkdir -p /tmp/plant && cp /bin/sleep /tmp/plant/hv_kvp_daemon && "
        "setsid /tmp/plant/hv_kvp_daemon 300 </dev/null >/dev/null 2>&1 &"
    )
    async with LinuxGuest.connect(sandbox.url(sandbox.plain_user)) as user:
        (await user.transport.run_command(["sh", "-c", plant], timeout=10)).check()
    async with LinuxGuest.connect(sandbox.url()) as guest:
        status = await guest.status()
        assert not status.daemon("kvp").running
        [planted] = status.unrecognised
        assert planted.exe == "/tmp/plant/hv_kvp_daemon"
        assert "not a trusted installed program" in planted.problem
        # root's start is not a no-op: it starts the real daemon.
        started = await guest.daemon("kvp").start()
        assert [p.program for p in started.processes] == [KVP]


@pytest.mark.parametrize(
    "layout",
    [GuestLayout(path_daemons=False, programs={"/usr/lib/hyper-v/bin/hv_kvp_daemon": KVP})],
)
async def test_a_writable_directory_on_path_does_not_win(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        setup = (
            "mkdir -p /usr/local/sbin && install -d -m 1777 /tmp/bin && "
            "cp /bin/true /tmp/bin/hv_kvp_daemon && "
            "ln -sf /usr/lib/hyper-v/bin/hv_kvp_daemon /usr/local/sbin/hv_kvp_daemon"
        )
        (await guest.transport.run_command(["sh", "-c", setup], timeout=10)).check()
        status = await guest.status()
        kvp = status.daemon("kvp")
        # The root-owned symlink on PATH is accepted (its target is checked).
        assert kvp.program == "/usr/local/sbin/hv_kvp_daemon"
        started = await guest.daemon("kvp").start()
        assert started.running


async def test_the_status_report_is_bounded(sandbox: GuestSandbox) -> None:
    # Forty processes named hv_x with long command lines, as a user can start.
    spawn = (
        "mkdir -p /tmp/many && cp /bin/dash /tmp/many/hv_x && "
        "long=$(head -c 60000 /dev/zero | tr '\\000' a) && i=0 && "
        'while [ $i -lt 40 ]; do setsid /tmp/many/hv_x -c "sleep 300" "$long" '
        "</dev/null >/dev/null 2>&1 & i=$((i+1)); done"
    )
    async with LinuxGuest.connect(sandbox.url(sandbox.plain_user)) as user:
        (await user.transport.run_command(["sh", "-c", spawn], timeout=30)).check()
    async with LinuxGuest.connect(sandbox.url()) as guest:
        done = await guest.transport.run_command(
            ["sh", "-c", "sleep 1; ps -e | grep -c hv_x"], timeout=10
        )
        assert int(done.stdout) >= 40
        from hvintegration.linux._shell import UNITS, sh
        from hvintegration.linux.scripts import STATUS_SCRIPT

        raw = await guest.transport.run_command(sh(STATUS_SCRIPT, *UNITS), timeout=60)
        assert len(raw.stdout) < 700_000
        status = await guest.status()
        assert not status.processes
        assert not status.unrecognised


def test_the_reader_refuses_an_oversized_report() -> None:
    big = b"version\t2\nuid\t0\n" + b"x\t" + b"a" * MAX_REPORT_BYTES + b"\nend\n"
    with pytest.raises(ProtocolError, match="bound"):
        parse_status(big, target="t")


async def test_other_users_processes_cannot_crowd_out_roots_daemon(sandbox: GuestSandbox) -> None:
    # More hv_ processes than the bound lists, started before the daemon so
    # their pids come first in /proc.
    crowd = (
        "d=$(mktemp -d) && cp /bin/sleep $d/hv_x && i=0 && "
        "while [ $i -lt 80 ]; do setsid $d/hv_x 300 </dev/null >/dev/null 2>&1 & "
        "i=$((i+1)); done; sleep 1"
    )
    async with LinuxGuest.connect(sandbox.url(sandbox.plain_user)) as user:
        (await user.transport.run_command(["sh", "-c", crowd], timeout=30)).check()
    async with LinuxGuest.connect(sandbox.url()) as guest:
        kvp = guest.daemon("kvp")
        started = await kvp.start()
        [first] = started.processes
        status = await guest.status()
        assert status.omitted
        assert status.processes_complete
        assert [p.pid for p in status.daemon("kvp").processes] == [first.pid]
        # A second start is a no-op, and a stop stops it.
        assert [p.pid for p in (await kvp.start()).processes] == [first.pid]
        assert not (await kvp.stop(force=True)).running
        left = await guest.transport.run_command(["pgrep", "-x", "hv_kvp_daemon"], timeout=10)
        assert left.stdout == b""


def test_a_report_says_whether_it_may_have_left_out_the_daemon() -> None:
    report = b"version\t2\nuid\t0\nmore\tprocesses\t5\n"
    assert not parse_status(report + b"end\n", target="t").processes_complete
    assert parse_status(report + b"rootlisted\t1\nend\n", target="t").processes_complete


@pytest.mark.parametrize("how", ["preload", "interpreter"])
async def test_a_users_process_running_the_real_program_is_not_the_daemon(
    sandbox: GuestSandbox, how: str
) -> None:
    plant = {
        # The real, root-owned program, held before main by a preloaded library.
        "preload": (
            "d=$(mktemp -d) && printf '%s\\n' '#include <unistd.h>' "
            "'__attribute__((constructor)) static void hold(void) { for (;;) pause(); }' "
            # Preloaded into the program only, after setsid has left the
            # call's session (which is killed once the call exits).
            f">$d/p.c && cc -shared -fPIC -o $d/p.so $d/p.c && "
            f"setsid env LD_PRELOAD=$d/p.so {KVP} -n </dev/null >/dev/null 2>&1 &"
        ),
        # A copy of tail whose name starts "sh", given the real program as its argument.
        "interpreter": (
            "d=$(mktemp -d) && cp /usr/bin/tail $d/shtail && ln -s $d/shtail $d/hv_kvp_daemon "
            f"&& setsid $d/hv_kvp_daemon {KVP} -f </dev/null >/dev/null 2>&1 &"
        ),
    }[how]
    async with LinuxGuest.connect(sandbox.url(sandbox.plain_user)) as user:
        (await user.transport.run_command(["sh", "-c", plant + " sleep 2"], timeout=60)).check()
    async with LinuxGuest.connect(sandbox.url()) as guest:
        status = await guest.status()
        assert not status.daemon("kvp").running
        [planted] = status.unrecognised
        assert planted.uid != 0
        # root's start is not a no-op: it starts the real daemon, as root.
        started = await guest.daemon("kvp").start()
        [process] = started.processes
        assert process.uid == 0
        assert process.pid != planted.pid


async def test_simulated_users_process_running_the_real_program_is_not_the_daemon() -> None:
    sim = SimulatedLinuxGuest(distro="debian-12")
    async with LinuxGuest.connect(sim) as guest:
        await guest.daemon("kvp").stop(force=True)
        sim.processes.append(SimulatedProcess(9000, KVP, (KVP, "-n"), uid=1000))
        status = await guest.status()
        assert not status.daemon("kvp").running
        assert [p.pid for p in status.unrecognised] == [9000]
        started = await guest.daemon("kvp").start()
        assert [p.uid for p in started.processes] == [0]


# --- The simulator agrees ----------------------------------------------------


async def test_simulated_sles_restart_keeps_file_copy_running() -> None:
    sim = SimulatedLinuxGuest(distro="sles-15-sp6")
    async with LinuxGuest.connect(sim) as guest:
        state = await guest.daemon("fcopy").state()
        assert state.unit is not None
        assert state.unit.name == "hv_fcopy_daemon.service"
        assert state.name == "hv_fcopy_daemon"
        restarted = await guest.daemon("fcopy").restart()
        assert restarted.running
        assert restarted.unit is not None
        assert restarted.unit.name == "hv_fcopy_daemon.service"


@pytest.mark.parametrize(
    ("distro", "unit"),
    [("debian-10", "hyperv-daemons.hv-kvp-daemon.service"), ("nixos-24.05", "hv-kvp.service")],
)
async def test_simulated_unit_names(distro: str, unit: str) -> None:
    async with LinuxGuest.connect(SimulatedLinuxGuest(distro=distro)) as guest:
        state = await guest.daemon("kvp").state()
        assert state.unit is not None
        assert state.unit.name == unit
        assert state.running
        restarted = await guest.daemon("kvp").restart(force=True)
        assert restarted.unit is not None
        assert restarted.unit.active_state == "active"


async def test_simulated_nixos_wrapper_is_recognised() -> None:
    async with LinuxGuest.connect(SimulatedLinuxGuest(distro="nixos-24.05")) as guest:
        [process] = (await guest.daemon("kvp").state()).processes
    assert process.exe.endswith("/.hv_kvp_daemon-wrapped")
    assert process.name == "hv_kvp_daemon"


async def test_simulated_ubuntu_wrapper_and_missing_devices() -> None:
    sim = SimulatedLinuxGuest(distro="ubuntu-14.04")
    sim.missing_tools = True
    async with LinuxGuest.connect(sim) as guest:
        await guest.daemon("vss").stop()
        with pytest.raises(DaemonControlError) as caught:
            await guest.daemon("vss").start()
    assert str(caught.value).startswith("WARNING: hv_vss_daemon not found for kernel")
    assert "exited with status 2" in str(caught.value)
    sim = SimulatedLinuxGuest(distro="ubuntu-14.04")
    sim.driver = "absent"
    async with LinuxGuest.connect(sim) as guest:
        await guest.daemon("vss").stop()
        with pytest.raises(DaemonControlError, match="is this VM running on Hyper-V"):
            await guest.daemon("vss").start()
