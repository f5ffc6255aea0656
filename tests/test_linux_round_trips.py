"""Round trips of every Linux guest operation, counted on the simulated guest.

As for the host (tests/test_host.py), each count is pinned: an operation that
starts taking one more command than today fails here. The design asks for one
round trip per batch; where an operation still takes more than its minimum,
a strict ``xfail`` test states the minimum and why, so the gap is visible and
the test flips to a failure the day it is closed (then pin the new count).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from hvintegration.errors import UnsafeChangeError
from hvintegration.linux import LinuxGuest
from hvintegration.simulator.linux import SimulatedLinuxGuest

Operation = Callable[[LinuxGuest], Awaitable[object]]

# A guest without systemd (the seed's Ubuntu 14.04: two hv_kvp_daemon and one
# hv_vss_daemon running, hv_fcopy_daemon installed but stopped) and one with
# systemd units (Debian 12, every daemon running under its unit).
PLAIN = "ubuntu-14.04"
SYSTEMD = "debian-12"


async def _count(distro: str, operation: Operation, *, prepare: Operation | None = None) -> int:
    sim = SimulatedLinuxGuest(distro=distro)
    async with LinuxGuest.connect(sim) as guest:
        if prepare is not None:
            await prepare(guest)
        before = sim.round_trips
        await operation(guest)
        return sim.round_trips - before


async def _stop_vss(guest: LinuxGuest) -> object:
    return await guest.daemon("vss").stop()


READS: list[tuple[str, Operation]] = [
    ("status", lambda g: g.status()),
    ("driver", lambda g: g.driver()),
    ("daemons", lambda g: g.daemons()),
    ("daemon state", lambda g: g.daemon("kvp").state()),
    ("kvp all pools", lambda g: g.kvp()),
    ("kvp one pool", lambda g: g.kvp(3)),
]


@pytest.mark.parametrize("distro", [PLAIN, SYSTEMD])
@pytest.mark.parametrize(("name", "operation"), READS, ids=[name for name, _ in READS])
async def test_every_read_is_one_round_trip(distro: str, name: str, operation: Operation) -> None:
    assert await _count(distro, operation) == 1


# (operation, distro, prepare, round trips: the minimum the design allows)
CHANGES: list[tuple[str, str, Operation | None, Operation, int]] = [
    # Status (who am I, which pids), then one script that signals, waits and
    # ends with a fresh status.
    ("stop running", PLAIN, None, _stop_vss, 2),
    ("stop stopped", PLAIN, _stop_vss, _stop_vss, 1),
    # Status, then the start script, which ends with a fresh status.
    ("start stopped", PLAIN, _stop_vss, lambda g: g.daemon("vss").start(), 2),
    ("start running", PLAIN, None, lambda g: g.daemon("vss").start(), 1),
    # Stop's two, then the start script: the stop's closing status serves
    # the start.
    ("restart running", PLAIN, None, lambda g: g.daemon("kvp").restart(force=True), 3),
    ("restart stopped", PLAIN, _stop_vss, lambda g: g.daemon("vss").restart(), 2),
    # systemd: status, then one script that runs systemctl (and, for a
    # start, reads the unit's journal) and ends with the status report.
    ("stop running", SYSTEMD, None, _stop_vss, 2),
    ("stop stopped", SYSTEMD, _stop_vss, _stop_vss, 1),
    ("start stopped", SYSTEMD, _stop_vss, lambda g: g.daemon("vss").start(), 2),
    ("start running", SYSTEMD, None, lambda g: g.daemon("vss").start(), 1),
    ("restart running", SYSTEMD, None, lambda g: g.daemon("kvp").restart(force=True), 3),
    # KVP writes: status (root or sudo), then the locked write, which reads
    # pool 1 back under the same lock and prints it.
    ("set_kvp", PLAIN, None, lambda g: g.set_kvp({"Role": "web", "Owner": "ops"}), 2),
    ("delete_kvp", PLAIN, None, lambda g: g.delete_kvp(["Role", "Owner"]), 2),
    ("set_kvp", SYSTEMD, None, lambda g: g.set_kvp({"Role": "web"}), 2),
]
CHANGE_IDS = [f"{name}-{distro}" for name, distro, *_ in CHANGES]


@pytest.mark.parametrize(
    ("name", "distro", "prepare", "operation", "minimum"), CHANGES, ids=CHANGE_IDS
)
async def test_changes_take_the_fewest_round_trips(
    name: str,
    distro: str,
    prepare: Operation | None,
    operation: Operation,
    minimum: int,
) -> None:
    assert await _count(distro, operation, prepare=prepare) == minimum


async def test_a_refused_stop_sends_nothing() -> None:
    sim = SimulatedLinuxGuest(distro=PLAIN)
    async with LinuxGuest.connect(sim) as guest:
        with pytest.raises(UnsafeChangeError):
            await guest.daemon("kvp").stop()
        with pytest.raises(ValueError, match="grace"):
            await guest.daemon("vss").stop(grace=-1)
        with pytest.raises(ValueError, match="non-empty"):
            await guest.set_kvp({"": "empty key"})
        with pytest.raises(ValueError, match="0 to 4"):
            await guest.kvp(9)
    assert sim.round_trips == 0


async def test_stopping_every_instance_is_still_one_signal_round_trip() -> None:
    # The seed's guest runs two hv_kvp_daemon: both go in the one stop script.
    sim = SimulatedLinuxGuest(distro=PLAIN)
    async with LinuxGuest.connect(sim) as guest:
        before = await guest.daemon("kvp").state()
        start = sim.round_trips
        after = await guest.daemon("kvp").stop(force=True)
    assert len(before.processes) == 2
    assert not after.running
    assert sim.round_trips - start == 2
