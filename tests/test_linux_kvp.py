"""KVP pools: what a read tells apart, and what a write guarantees.

The real scripts run three ways: on this machine against a pool directory of
the test's own (no root needed), in a private mount namespace of the test's
own whose pool directory is a tiny tmpfs (for ENOSPC), and over real sshd in
the guest sandbox beside Debian's real hv_kvp_daemon. The simulated guest
must agree with them on every case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from hvintegration.errors import NotFoundError, PermissionDeniedError, RemoteCommandError
from hvintegration.linux import LinuxGuest
from hvintegration.linux.kvp import (
    KVP_DIRECTORY,
    OLD_KVP_DIRECTORY,
    delete_lines,
    edit_pool,
    kvp_argv,
    parse_kvp_read,
    parse_kvp_write,
    set_lines,
)
from hvintegration.linux.report import decode_pool
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.testing.linux_guest import GuestLayout, GuestSandbox, sandbox_unavailable_reason
from hvintegration.transport.base import CompletedCommand

INTERPRETERS = ["python3", "perl"]


def record(key: bytes, value: bytes) -> bytes:
    return key.ljust(512, b"\0") + value.ljust(2048, b"\0")


def _prefer(interpreter: str) -> str:
    return "perl" if interpreter == "perl" else ""


def run_script(
    mode: str, interpreter: str, directories: list[str], lines: Sequence[str] = ()
) -> CompletedCommand:
    """The real KVP script, run here with its own pool directories."""
    data = ("\n".join(lines) + "\n").encode() if lines else b""
    argv = kvp_argv(mode, _prefer(interpreter), directories)
    done = subprocess.run(argv, input=data, capture_output=True, timeout=60, check=False)
    return CompletedCommand(tuple(argv), done.returncode, done.stdout, done.stderr)


def items(data: bytes) -> list[tuple[str, str, str]]:
    return [(i.key, i.value, i.problem) for i in decode_pool(1, data)]


# --- C12: a write never loses what a read shows; duplicates ------------------------------

EDITS = {
    # A trailing partial record (700 of 2,560 bytes): a read reports it,
    # so a write keeps it, completed with NUL bytes.
    "partial record kept": (
        record(b"Keep", b"me") + record(b"Cut", b"value")[:700],
        set_lines({"New": "n"}),
        [("Keep", "me", ""), ("Cut", "value", ""), ("New", "n", "")],
    ),
    "partial record set": (
        record(b"Keep", b"me") + record(b"Cut", b"value")[:600],
        set_lines({"Cut": "whole"}),
        [("Keep", "me", ""), ("Cut", "whole", "")],
    ),
    # hv_kvp_daemon reads a key's first record, the host enumerates all of
    # them: every record of the key gets the new value, in place.
    "duplicates set": (
        record(b"Role", b"old") + record(b"Other", b"x") + record(b"Role", b"older"),
        set_lines({"Role": "web"}),
        [("Role", "web", ""), ("Other", "x", ""), ("Role", "web", "")],
    ),
    # ...and a delete removes every one, so no older value comes back.
    "duplicates delete": (
        record(b"Role", b"old") + record(b"Other", b"x") + record(b"Role", b"older"),
        delete_lines(["Role"]),
        [("Other", "x", "")],
    ),
    "malformed record kept": (
        record(b"\xff\xfe", b"v") + record(b"a", b"b"),
        set_lines({"a": "c"}),
        [("\ufffd\ufffd", "v", "key is not UTF-8"), ("a", "c", "")],
    ),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_edit_pool_rules(case: str) -> None:
    before, lines, expected = EDITS[case]
    assert items(edit_pool(before, lines)) == expected


@pytest.mark.parametrize("interpreter", INTERPRETERS)
@pytest.mark.parametrize("case", list(EDITS))
def test_the_real_script_edits_as_documented(interpreter: str, case: str, tmp_path: Path) -> None:
    before, lines, expected = EDITS[case]
    (tmp_path / ".kvp_pool_1").write_bytes(before)
    done = run_script("write", interpreter, [str(tmp_path)], lines)
    pool = parse_kvp_write(done, target="test", operation="write")
    after = (tmp_path / ".kvp_pool_1").read_bytes()
    assert after == edit_pool(before, lines)
    assert [(i.key, i.value, i.problem) for i in pool] == expected


@pytest.mark.parametrize("case", list(EDITS))
async def test_the_simulated_guest_edits_the_same(case: str) -> None:
    before, lines, expected = EDITS[case]
    sim = SimulatedLinuxGuest()
    sim.pools[1] = before
    async with LinuxGuest.connect(sim) as guest:
        assert [(i.key, i.value, i.problem) for i in await guest.kvp(1)] == items(before)
        done = await guest.transport.run_command(
            kvp_argv("write"), input=("\n".join(lines) + "\n").encode(), timeout=10
        )
    written = parse_kvp_write(done, target="t", operation="w")
    assert [(i.key, i.value, i.problem) for i in written] == expected
    assert sim.pools[1] == edit_pool(before, lines)


# --- A5: missing, unreadable and empty pools; the old directory ---------------------------


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_read_tells_missing_from_empty(interpreter: str, tmp_path: Path) -> None:
    new, old = tmp_path / "lib", tmp_path / "opt"
    new.mkdir()
    done = run_script("read", interpreter, [str(new), str(old)])
    with pytest.raises(NotFoundError, match="has it ever run"):
        parse_kvp_read(done.stdout, (0, 1, 2, 3, 4), target="t")
    for pool in range(5):
        (new / f".kvp_pool_{pool}").write_bytes(b"")
    done = run_script("read", interpreter, [str(new), str(old)])
    assert parse_kvp_read(done.stdout, (0, 1, 2, 3, 4), target="t") == []
    # Only pool 1 exists (a write before the daemon ever ran): pool 1 reads,
    # the others say they are missing.
    for pool in (0, 2, 3, 4):
        (new / f".kvp_pool_{pool}").unlink()
    done = run_script("read", interpreter, [str(new), str(old)])
    assert parse_kvp_read(done.stdout, (1,), target="t") == []
    with pytest.raises(NotFoundError, match=r"pool 0, 2, 3, 4 in .*lib"):
        parse_kvp_read(done.stdout, (0, 1, 2, 3, 4), target="t")


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_read_and_write_find_the_old_directory(interpreter: str, tmp_path: Path) -> None:
    new, old = tmp_path / "lib", tmp_path / "opt"
    old.mkdir()
    for pool in range(5):
        (old / f".kvp_pool_{pool}").write_bytes(record(b"Pool", str(pool).encode()))
    done = run_script("read", interpreter, [str(new), str(old)])
    read = parse_kvp_read(done.stdout, (0, 1, 2, 3, 4), target="t")
    assert [(i.pool, i.value) for i in read] == [(n, str(n)) for n in range(5)]
    done = run_script("write", interpreter, [str(new), str(old)], set_lines({"Role": "web"}))
    assert [(i.key, i.value) for i in parse_kvp_write(done, target="t", operation="w")] == [
        ("Pool", "1"),
        ("Role", "web"),
    ]
    assert not new.exists()


def test_the_directories_are_the_daemons() -> None:
    # KVP_CONFIG_LOC in today's tools/hv/hv_kvp_daemon.c; kvp_file_init of
    # the Linux 3.x daemon used /var/opt/hyperv.
    assert (KVP_DIRECTORY, OLD_KVP_DIRECTORY) == ("/var/lib/hyperv", "/var/opt/hyperv")
    assert kvp_argv("read")[-2:] == [KVP_DIRECTORY, OLD_KVP_DIRECTORY]


async def test_simulated_guest_reports_missing_unreadable_and_old_pools() -> None:
    sim = SimulatedLinuxGuest(user="admin", sudo=True)
    async with LinuxGuest.connect(sim) as guest:
        assert list(await guest.kvp(0)) == []
        sim.unreadable_pools.add(3)
        with pytest.raises(PermissionDeniedError, match=r"\.kvp_pool_3"):
            await guest.kvp()
        assert [i.key for i in await guest.kvp(2)]
        sim.unreadable_pools.clear()
        sim.pools.clear()
        with pytest.raises(NotFoundError, match="has it ever run"):
            await guest.kvp()
        sim.kvp_directory = OLD_KVP_DIRECTORY
        sim.pools.update({n: b"" for n in range(5)})
        assert [(i.key, i.value) for i in await guest.set_kvp({"a": "b"})] == [("a", "b")]
        assert [(i.key, i.value) for i in await guest.kvp()] == [("a", "b")]


# --- C11: all or nothing on a full file system ---------------------------------------------

_FULL_DRIVER = textwrap.dedent(
    r"""
    import errno, json, os, subprocess, sys
    directory, size, interpreter, pool, lines = json.loads(sys.argv[1])
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=755", "hvkvp", directory],
                   check=True)
    name = os.path.join(directory, ".kvp_pool_1")
    with open(name, "wb") as f:
        f.write(bytes.fromhex(pool))
    # Fill the file system to the last page.
    with open(os.path.join(directory, "filler"), "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    before = open(name, "rb").read()
    argv = json.loads(sys.argv[2])
    done = subprocess.run(argv, input=("\n".join(lines) + "\n").encode(), capture_output=True)
    after = open(name, "rb").read()
    print(json.dumps({"status": done.returncode, "stdout": done.stdout.decode(),
                      "stderr": done.stderr.decode(), "before": before.hex(),
                      "after": after.hex(), "left": sorted(os.listdir(directory))}))
    """
)


def _namespace_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs"
    if shutil.which("unshare") is None:
        return "needs unshare"
    return None


@pytest.mark.skipif(_namespace_reason() is not None, reason=str(_namespace_reason()))
@pytest.mark.parametrize("interpreter", INTERPRETERS)
@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(set_lines({"Big": "x" * 2000}), id="new key"),
        pytest.param(set_lines({"Owner": "y" * 2000, "More": "z"}), id="replace and add"),
    ],
)
def test_a_full_file_system_leaves_the_pool_as_it_was(
    interpreter: str, lines: list[str], tmp_path: Path
) -> None:
    # A tmpfs of four pages in a mount namespace of this test's own: the
    # mount goes away with the namespace, when the driver exits.
    directory = tmp_path / "pools"
    directory.mkdir()
    pool = record(b"Owner", b"ops")
    argv = kvp_argv("write", _prefer(interpreter), [str(directory)])
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", _FULL_DRIVER,
         json.dumps([str(directory), "16k", interpreter, pool.hex(), lines]), json.dumps(argv)],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["before"] == pool.hex()
    assert result["after"] == result["before"], result["stderr"]
    assert result["status"] == 75
    assert result["left"] == [".kvp_pool_1", "filler"]
    with pytest.raises(RemoteCommandError, match=r"No space left on device.*pool 1 is unchanged"):
        parse_kvp_write(
            CompletedCommand(tuple(argv), result["status"], result["stdout"].encode(), b""),
            target="t",
            operation="w",
        )
    assert not any(directory.iterdir())  # the tmpfs was never mounted here


async def test_simulated_full_file_system_changes_nothing() -> None:
    sim = SimulatedLinuxGuest()
    sim.pools[1] = record(b"Owner", b"ops")
    sim.kvp_free_bytes = 100
    async with LinuxGuest.connect(sim) as guest:
        with pytest.raises(RemoteCommandError, match="pool 1 is unchanged"):
            await guest.set_kvp({"Big": "x" * 2000})
        assert sim.pools[1] == record(b"Owner", b"ops")
        # Replacing a value in place needs no space.
        assert [i.value for i in await guest.set_kvp({"Owner": "dev"})] == ["dev"]


# --- Through real sshd beside the real hv_kvp_daemon -------------------------------------


@pytest.fixture
def sandbox() -> Iterator[GuestSandbox]:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with GuestSandbox(GuestLayout()) as running:
        yield running


async def _sh(guest: LinuxGuest, script: str, *args: str) -> str:
    done = await guest.transport.run_command(["sh", "-c", script, "sh", *args], timeout=30)
    done.check()
    return done.stdout.decode()


# Inside the sandbox's own mount namespace, so it goes when the sandbox does.
_TINY_POOLS = "mount -t tmpfs -o size=16k,mode=755 hvkvp /var/lib/hyperv"
_FILL = "dd if=/dev/zero of=/var/lib/hyperv/filler bs=4096 2>/dev/null; true"
_DAEMON_FD = """
for f in /proc/$1/fd/*; do
    t=$(readlink "$f")
    case $t in
    */.kvp_pool_1*) echo "$t $(stat -L -c %i "$f") $(stat -c %i /var/lib/hyperv/.kvp_pool_1)" ;;
    esac
done
"""


async def test_set_kvp_on_a_full_file_system_beside_the_real_daemon(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as guest:
        await _sh(guest, _TINY_POOLS)
        daemon = await guest.daemon("kvp").start()
        assert list(await guest.kvp()) == []
        assert [i.value for i in await guest.set_kvp({"Owner": "ops"})] == ["ops"]
        await _sh(guest, _FILL)
        before = await _sh(guest, "od -An -tx1 /var/lib/hyperv/.kvp_pool_1")
        with pytest.raises(RemoteCommandError, match="pool 1 is unchanged") as caught:
            await guest.set_kvp({"Big": "x" * 2000})
        assert "No space left on device" in str(caught.value)
        assert await _sh(guest, "od -An -tx1 /var/lib/hyperv/.kvp_pool_1") == before
        await _sh(guest, "rm /var/lib/hyperv/filler")
        after = await guest.set_kvp({"Big": "x" * 2000})
        assert [(i.key, len(i.value)) for i in after] == [("Owner", 3), ("Big", 2000)]
        # Edited in place: the daemon's own descriptor (the one it locks)
        # is still the pool file, not an unlinked copy.
        pid = str(daemon.processes[0].pid)
        (line,) = (await _sh(guest, _DAEMON_FD, pid)).splitlines()
        path, held, named = line.split(" ")
        assert path == "/var/lib/hyperv/.kvp_pool_1"
        assert held == named
        assert (await guest.daemon("kvp").state()).running


async def test_reads_tell_missing_unreadable_and_old_pools_apart(sandbox: GuestSandbox) -> None:
    async with LinuxGuest.connect(sandbox.url()) as root:
        # No daemon has run: no pool files.
        with pytest.raises(NotFoundError, match="has it ever run"):
            await root.kvp()
        await root.daemon("kvp").start()
        assert list(await root.kvp()) == []
        await _sh(root, "chmod 600 /var/lib/hyperv/.kvp_pool_3")
        async with LinuxGuest.connect(sandbox.url(sandbox.plain_user)) as user:
            assert list(await user.kvp(2)) == []
            with pytest.raises(PermissionDeniedError, match=r"\.kvp_pool_3"):
                await user.kvp()
        # An old daemon's pools in /var/opt/hyperv, with nothing in
        # /var/lib/hyperv (both tmpfs mounts live in the sandbox's namespace).
        await _sh(
            root,
            "mount -t tmpfs -o mode=755 old /var/opt && mkdir /var/opt/hyperv && "
            "mount -t tmpfs -o mode=755 empty /var/lib/hyperv && "
            "for n in 0 1 2 3 4; do : > /var/opt/hyperv/.kvp_pool_$n; done",
        )
        assert [(i.key, i.value) for i in await root.set_kvp({"Old": "yes"})] == [("Old", "yes")]
        assert [(i.pool, i.key) for i in await root.kvp()] == [(1, "Old")]
        assert await _sh(root, "ls -A /var/lib/hyperv") == ""


@pytest.mark.parametrize("interpreter", INTERPRETERS)
def test_a_pool_that_cannot_be_opened_is_reported_unchanged(
    tmp_path: Path, interpreter: str
) -> None:
    # The pool's directory cannot be made (a file stands in its way): the
    # write fails before it has opened the pool, and says so plainly.
    (tmp_path / "file").write_bytes(b"")
    directory = str(tmp_path / "file" / "pools")
    done = run_script("write", interpreter, [directory], ["set\t61\t62"])
    assert done.exit_status == 75
    unchanged = r"Not a directory\); pool 1 is unchanged"
    with pytest.raises(RemoteCommandError, match=unchanged) as caught:
        parse_kvp_write(done, target="t", operation="w")
    assert "Traceback" not in str(caught.value)
    assert "import" not in str(caught.value)
