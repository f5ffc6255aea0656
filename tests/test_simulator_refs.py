"""How the simulator names its hosts, guests and VMs: no login in a sim://
URL, and a VM reached by id (braces or not) or refused when its name is shared,
as a real host reads a VM reference."""

from __future__ import annotations

import io
import uuid

import pytest

from hvintegration import (
    AmbiguousVMError,
    HyperVHost,
    InvalidTargetError,
    LinuxGuest,
    VMNotFoundError,
    WindowsGuest,
)
from hvintegration.cli import EXIT_CODES, run
from hvintegration.simulator import SimulatedHost
from hvintegration.transport import parse_target

SECRET = "Secr3tZ"


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "url",
    [
        f"sim://admin:{SECRET}@HV01",
        f"sim://admin:{SECRET}@HV01?locale=de-DE",
        f"sim://{SECRET}@HV01",
        f"sim-linux://root:{SECRET}@lx",
        f"sim-linux://root:{SECRET}@lx?distro=rhel-9",
    ],
)
def test_a_simulated_target_refuses_a_login_without_showing_it(url: str) -> None:
    with pytest.raises(InvalidTargetError, match="takes no user or password") as caught:
        parse_target(url)
    assert SECRET not in str(caught.value)
    assert "root:" not in str(caught.value)
    assert "admin:" not in str(caught.value)


def test_python_and_the_command_line_refuse_it_too() -> None:
    with pytest.raises(InvalidTargetError):
        HyperVHost.connect(f"sim://admin:{SECRET}@HV01")
    with pytest.raises(InvalidTargetError):
        LinuxGuest.connect(f"sim-linux://root:{SECRET}@lx")
    status, out, err = _cli("-t", f"sim://admin:{SECRET}@HV01", "-v", "host", "vms")
    assert status == EXIT_CODES["usage"]
    assert SECRET not in out + err
    assert "sim://HV01" in err


def test_a_plain_simulated_name_still_works() -> None:
    assert parse_target("sim://HV01").url == "sim://HV01"
    assert parse_target("sim-linux://web1?user=admin").url == "sim-linux://web1?user=admin"


def _twins() -> tuple[SimulatedHost, uuid.UUID, uuid.UUID]:
    lab = SimulatedHost()
    first = lab.add_vm("web01", id=uuid.UUID(int=1))
    second = lab.add_vm("web01", id=uuid.UUID(int=2))
    assert second.windows is not None
    second.windows.services["vmicheartbeat"].status = "Stopped"
    return lab, first.id, second.id


@pytest.mark.parametrize("spelling", ["{%s}", "%s", "  {%s}  "])
async def test_a_guest_is_reached_by_its_id_in_any_spelling(spelling: str) -> None:
    lab, _, second = _twins()
    ref = spelling % str(second).upper()
    async with WindowsGuest.connect(lab.inside(ref)) as guest:
        state = await guest.service("vmicheartbeat").refresh()
    assert state.status == "Stopped"


def test_a_guest_url_takes_an_id_with_braces_encoded_or_not() -> None:
    vm_id = SimulatedHost().vm("demovm").id
    for query in (f"{{{vm_id}}}", f"%7B{vm_id}%7D", str(vm_id).upper()):
        status, out, err = _cli("-t", f"sim://?guest={query}", "windows", "services")
        assert status == 0, err
        assert "vmicheartbeat" in out


async def test_a_guest_name_two_vms_share_is_refused_with_their_ids() -> None:
    lab, first, second = _twins()
    with pytest.raises(AmbiguousVMError) as caught:
        async with WindowsGuest.connect(lab.inside("web01")) as guest:
            await guest.services()
    assert set(caught.value.ids) == {str(first), str(second)}


async def test_an_unknown_guest_id_is_not_found() -> None:
    lab, _, _ = _twins()
    with pytest.raises(VMNotFoundError):
        async with WindowsGuest.connect(lab.inside(f"{{{uuid.UUID(int=9)}}}")) as guest:
            await guest.services()


def test_the_lab_finds_a_vm_by_id_so_a_twin_can_be_linked() -> None:
    lab, first, second = _twins()
    assert lab.vm("web01").id == first
    assert lab.vm(second).id == second
    assert lab.vm(f"{{{str(second).upper()}}}").id == second
    assert lab.link_kvp_directory(str(second), "/nonexistent").id == second
    with pytest.raises(KeyError):
        lab.vm(uuid.UUID(int=9))
