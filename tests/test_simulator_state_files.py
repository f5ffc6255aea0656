"""State files behind ``sim://`` and ``sim-linux://``: bad files fail early and clearly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from hvintegration import HyperVHost, LinuxGuest
from hvintegration.errors import InvalidTargetError
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.simulator.state import (
    guest_from_json,
    guest_to_json,
    load_guest,
    load_host,
    save_guest,
    save_host,
)
from hvintegration.simulator.targets import HostStateFile, LinuxStateFile


def _guest_with_bad_fault(path: Path) -> None:
    save_guest(SimulatedLinuxGuest(), path)
    data = json.loads(path.read_text())
    data["faults"] = [5]
    path.write_text(json.dumps(data))


def _host_with_bad_fault(path: Path) -> None:
    save_host(SimulatedHost(), path)
    data = json.loads(path.read_text())
    data["faults"] = [5]
    path.write_text(json.dumps(data))


# Each writes a file the scheme cannot use, and names what the error says.
_BAD_FILES: dict[str, tuple[Callable[[Path], object], Callable[[Path], object], str]] = {
    # case: (make for sim-linux://, make for sim://, words in the message)
    "other kind": (
        lambda p: save_host(SimulatedHost(), p),
        lambda p: save_guest(SimulatedLinuxGuest(), p),
        "holds a simulated",
    ),
    "corrupt JSON": (
        lambda p: p.write_text("{not json"),
        lambda p: p.write_text("{not json"),
        "not JSON",
    ),
    "a JSON list": (lambda p: p.write_text("[]"), lambda p: p.write_text("[]"), "JSON list"),
    "a fault that is a number": (
        _guest_with_bad_fault,
        _host_with_bad_fault,
        "fault 1 is not an object",
    ),
    "not UTF-8": (
        lambda p: p.write_bytes(b"\xff\xfe"),
        lambda p: p.write_bytes(b"\xff\xfe"),
        "not UTF-8",
    ),
}

_SCHEMES = {
    "sim-linux": lambda url: LinuxGuest.connect(url),
    "sim": lambda url: HyperVHost.connect(url),
}


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("scheme", list(_SCHEMES))
@pytest.mark.parametrize("case", list(_BAD_FILES))
async def test_a_bad_state_file_fails_when_the_transport_opens(
    tmp_path: Path, scheme: str, case: str
) -> None:
    make_linux, make_host, words = _BAD_FILES[case]
    path = tmp_path / "state.json"
    (make_linux if scheme == "sim-linux" else make_host)(path)
    before = _snapshot(tmp_path)
    with pytest.raises(InvalidTargetError, match=words) as caught:
        async with _SCHEMES[scheme](f"{scheme}://?state={path}"):
            pytest.fail("the transport opened")
    assert str(path) in str(caught.value)
    assert caught.value.operation == "open"
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("scheme", list(_SCHEMES))
async def test_a_directory_as_state_file_fails_when_the_transport_opens(
    tmp_path: Path, scheme: str
) -> None:
    with pytest.raises(InvalidTargetError, match="is a directory") as caught:
        async with _SCHEMES[scheme](f"{scheme}://?state={tmp_path}"):
            pytest.fail("the transport opened")
    assert str(tmp_path) in str(caught.value)
    # Nothing was made beside it either (such as a lock file).
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}*"))
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("scheme", list(_SCHEMES))
async def test_a_state_file_in_a_missing_directory_fails_when_the_transport_opens(
    tmp_path: Path, scheme: str
) -> None:
    path = tmp_path / "no" / "such" / "state.json"
    with pytest.raises(InvalidTargetError, match="does not exist") as caught:
        async with _SCHEMES[scheme](f"{scheme}://?state={path}"):
            pytest.fail("the transport opened")
    assert str(path) in str(caught.value)
    assert _entries(tmp_path) == []


async def test_a_linux_file_spoilt_after_opening_fails_at_the_call(tmp_path: Path) -> None:
    path = tmp_path / "guest.json"
    async with LinuxGuest.connect(f"sim-linux://?state={path}") as guest:
        await guest.status()
        path.write_text("[]")
        with pytest.raises(InvalidTargetError, match="JSON list") as caught:
            await guest.status()
        assert caught.value.operation == "run_command"
        path.unlink()
        path.mkdir()
        with pytest.raises(InvalidTargetError, match="is a directory"):
            await guest.status()
    assert path.is_dir()


async def test_a_host_file_spoilt_after_opening_fails_at_the_call(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    async with HyperVHost.connect(f"sim://?state={path}") as host:
        await host.list_vms()
        save_guest(SimulatedLinuxGuest(), path)
        before = path.read_bytes()
        with pytest.raises(InvalidTargetError, match="holds a simulated Linux guest, not"):
            await host.list_vms()
    assert path.read_bytes() == before


async def test_a_missing_file_in_an_existing_directory_is_created_on_first_use(
    tmp_path: Path,
) -> None:
    path = tmp_path / "guest.json"
    async with LinuxGuest.connect(f"sim-linux://web1?state={path}") as guest:
        assert not path.exists()  # opening reads, never writes
        await guest.status()
    assert load_guest(path).name == "web1"


async def test_the_linux_url_reports_the_guest_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "guest.json"
    state = quote(str(path), safe="")
    async with LinuxGuest.connect(f"sim-linux://a?state={path}&distro=rhel-9&latency=0.01") as g:
        await g.status()
    target = LinuxStateFile(path, seed=SimulatedLinuxGuest("b", distro="sles-15"))
    transport = target.open()
    # Before the file is read: the seed, and the file it would start.
    assert transport.target == f"sim-linux://b?distro=sles-15&state={state}"
    async with transport:
        assert transport.target == f"sim-linux://a?distro=rhel-9&latency=0.01&state={state}"
    async with LinuxGuest.connect(f"sim-linux://b?state={path}&distro=sles-15") as guest:
        assert guest.transport.target == target.url


async def test_the_host_url_reports_the_host_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    state = quote(str(path), safe="")
    save_host(SimulatedHost("LAB", os="windows-server-2016", locale="de-DE"), path)
    async with HyperVHost.connect(f"sim://OTHER?state={path}&guest=demovm") as host:
        assert host.transport.target == (
            f"sim://LAB?os=windows-server-2016&locale=de-DE&state={state}&guest=demovm"
        )
    assert HostStateFile(path).url == f"sim://HV01?state={state}"


async def test_kvp_settings_outlive_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "guest.json"
    seed = SimulatedLinuxGuest(user="admin")
    seed.kvp_directory = "/var/opt/hyperv"
    seed.unreadable_pools = {3}
    seed.kvp_free_bytes = 10_000
    save_guest(seed, path)
    async with LinuxGuest.connect(f"sim-linux://?state={path}") as guest:
        await guest.set_kvp({"Role": "web"})
    saved = load_guest(path)
    assert saved.kvp_directory == "/var/opt/hyperv"
    assert saved.unreadable_pools == {3}
    assert saved.kvp_free_bytes is not None
    assert saved.kvp_free_bytes < 10_000
    assert guest_to_json(guest_from_json(guest_to_json(saved))) == guest_to_json(saved)


def test_a_guest_file_from_before_the_kvp_settings_loads_with_defaults() -> None:
    data = guest_to_json(SimulatedLinuxGuest())
    for key in ("kvp_directory", "unreadable_pools", "kvp_free_bytes"):
        del data[key]
    guest = guest_from_json(data)
    assert (guest.kvp_directory, guest.unreadable_pools, guest.kvp_free_bytes) == (
        "/var/lib/hyperv",
        set(),
        None,
    )


def test_the_loaders_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("[]")
    with pytest.raises(ValueError, match=f"^{path}: holds a JSON list"):
        load_guest(path)
    with pytest.raises(ValueError, match=f"^{path}: holds a JSON list"):
        load_host(path)
