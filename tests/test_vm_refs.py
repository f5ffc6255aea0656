"""VMs named by id: a GUID string works wherever a VM is named, in any case,
with or without braces; a VM whose name looks like a GUID is reached by its id."""

from __future__ import annotations

import io
import uuid

import pytest

from hvintegration import AmbiguousVMError, HyperVHost, VMNotFoundError, WindowsGuest, catalogue
from hvintegration._host_wire import vm_key
from hvintegration.cli import run
from hvintegration.simulator import SimulatedHost
from hvintegration.windows import Credential

GSI = catalogue.GUEST_SERVICE_INTERFACE
GSI_ID = uuid.UUID("6c09bb55-d683-4da0-8931-c9bf705f6480")


def _spellings(vm_id: uuid.UUID) -> list[str]:
    text = str(vm_id)
    return [text, text.upper(), "{" + text + "}", "{" + text.upper() + "}", f"  {text}  "]


async def test_every_spelling_of_a_guid_names_the_vm() -> None:
    sim = SimulatedHost()
    vm_id = sim.vm("demovm").id
    async with HyperVHost.connect(sim) as host:
        for text in _spellings(vm_id):
            assert host.vm(text).ref == vm_id
            summary = await host.vm(text).summary()
            assert (summary.name, summary.id) == ("demovm", vm_id)
        states = await host.integration_services([_spellings(vm_id)[3]])
        assert {s.vm_id for s in states} == {vm_id}
        result = await host.apply({str(vm_id).upper(): {"Guest Service Interface": True}})
    assert result.items[0].changed
    assert sim.vm("demovm").enabled[GSI_ID] is True


async def test_the_ids_an_ambiguous_name_error_offers_work_as_text() -> None:
    sim = SimulatedHost()
    twin = sim.add_vm("demovm", id=uuid.UUID(int=7))
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(AmbiguousVMError) as caught:
            await host.vm("demovm").summary()
        assert str(twin.id) in caught.value.ids
        chosen = host.vm(str(twin.id))
        assert (await chosen.summary()).id == twin.id
        await chosen.apply({GSI: True})
    assert sim.vms[0].enabled[GSI_ID] is False
    assert twin.enabled[GSI_ID] is True


async def test_a_vm_named_like_a_guid_is_reached_by_its_id_not_its_name() -> None:
    sim = SimulatedHost()
    name = "0f0e0d0c-0b0a-0908-0706-050403020100"
    odd = sim.add_vm(name)
    assert odd.id != uuid.UUID(name)
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(VMNotFoundError) as caught:
            await host.vm(name).summary()
        assert str(caught.value).startswith(f"no virtual machine with id '{name}'")
        summary = await host.vm(odd.id).summary()
        again = await host.vm(str(odd.id)).summary()
    assert summary.name == again.name == name


async def test_powershell_direct_takes_a_guid_string_too() -> None:
    sim = SimulatedHost()
    vm_id = sim.vm("demovm").id
    async with HyperVHost.connect(sim) as host:
        guest = host.vm("demovm").windows(Credential("Administrator", "unused"))
        by_text = host.vm(str(vm_id).upper()).windows(Credential("Administrator", "unused"))
    assert by_text.transport.target.endswith(f"#vm={vm_id}")
    assert guest.transport.target.endswith("#vm=demovm")


@pytest.mark.parametrize(
    "text",
    [
        "demovm",
        "0123456789abcdef0123456789abcdef",  # uuid.UUID takes it; Hyper-V never prints it
        "{0f0e0d0c-0b0a-0908-0706-050403020100",  # unbalanced brace
        "0f0e0d0c-0b0a-0908-0706-0504030201000",  # one digit too many
        "urn:uuid:0f0e0d0c-0b0a-0908-0706-050403020100",
    ],
)
def test_anything_else_stays_a_name(text: str) -> None:
    assert vm_key(text) == text


def test_bad_references_get_specific_errors() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        vm_key("   ")
    with pytest.raises(TypeError, match="not int"):
        vm_key(5)  # type: ignore[arg-type]


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_the_command_line_takes_a_vm_id() -> None:
    vm_id = SimulatedHost().vm("demovm").id
    status, out, err = _cli("-t", "sim://", "host", "services", "{" + str(vm_id).upper() + "}")
    assert status == 0, err
    assert "demovm" in out
    assert "Guest Service Interface" in out
    status, out, err = _cli("-t", "sim://", "host", "enable", str(vm_id), "Guest Service Interface")
    assert status == 0, err
    assert "True" in out


def test_the_command_line_says_no_vm_has_an_unknown_id() -> None:
    missing = str(uuid.UUID(int=99))
    status, _, err = _cli("-t", "sim://", "host", "services", missing)
    assert status == 3
    assert f"no virtual machine with id '{missing}'" in err


async def test_a_vm_named_like_a_guid_gets_a_message_saying_the_text_is_an_id() -> None:
    sim = SimulatedHost()
    name = "0f0e0d0c-0b0a-0908-0706-050403020100"
    odd = sim.add_vm(name)
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(VMNotFoundError) as caught:
            await host.vm(name.upper()).summary()
        with pytest.raises(VMNotFoundError) as read:
            await host.vm(name).integration_services()
        # The one extra read happens only for a VM named like the id.
        sim.calls.clear()
        with pytest.raises(VMNotFoundError) as missing:
            await host.vm(uuid.UUID(int=5)).summary()
    assert sim.calls == ["list_vms"]
    assert missing.value.own_ids == ()
    for error in (caught.value, read.value):
        message = str(error)
        assert "read as an id" in message
        assert f"the VM named '{name}' is reached by its own id ({odd.id})" in message
        assert error.own_ids == (str(odd.id),)


@pytest.mark.parametrize(
    "text",
    [
        "urn:uuid:0f0e0d0c-0b0a-0908-0706-050403020100",
        "{0f0e0d0c-0b0a-0908-0706-050403020100",
        "0123456789abcdef0123456789abcdef",
    ],
)
async def test_text_read_as_a_name_is_reported_as_a_name(text: str) -> None:
    async with HyperVHost.connect("sim://") as host:
        with pytest.raises(VMNotFoundError) as caught:
            await host.vm(text).summary()
    assert str(caught.value).startswith(f"no virtual machine named {text!r}")


async def test_a_virtual_machine_object_names_its_vm_everywhere() -> None:
    sim = SimulatedHost()
    twin = sim.add_vm("demovm", id=uuid.UUID(int=7))
    async with HyperVHost.connect(sim) as host:
        vm = host.vm(twin.id)
        guest = WindowsGuest.direct(host, vm, Credential("Administrator", "hvintegration"))
        assert guest.transport.target.endswith(f"#vm={twin.id}")
        assert host.vm(vm).ref == twin.id
        states = await host.integration_services([vm])
        assert {state.vm_id for state in states} == {twin.id}
        await host.apply({vm: {GSI: True}})
    assert twin.enabled[GSI_ID] is True
    assert sim.vms[0].enabled[GSI_ID] is False


async def test_one_vm_by_name_and_by_id_is_refused_before_anything_is_sent() -> None:
    sim = SimulatedHost()
    vm_id = sim.vm("demovm").id
    vss = catalogue.VSS.component_id
    assert vss is not None
    before = sim.vm("demovm").enabled[vss]
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(ValueError, match="both name VSS of one VM"):
            await host.apply({"DemoVM": {"VSS": not before}, str(vm_id): {"VSS": before}})
        assert sim.calls == ["list_vms"]
        # A request naming its VMs one way needs no extra read.
        await host.apply({"demovm": {"VSS": before}, "DEMOVM": {"Heartbeat": True}})
    assert sim.calls == ["list_vms", "set_integration_services"]
    assert sim.vm("demovm").enabled[vss] is before
