"""Short reprs without secrets, and errors and records that show as tables."""

from __future__ import annotations

import attrs
import pytest

from hvintegration import BatchError, HyperVHost, VMNotFoundError
from hvintegration.operations import INVOKE_IN_VM
from hvintegration.simulator import SimulatedHost
from hvintegration.testing.linux_guest import GuestLayout
from hvintegration.testing.mock import CommandRequest, OperationRequest
from hvintegration.transport import parse_target
from hvintegration.windows import Credential

SECRET = "Pa55-w0rd-91c"


def test_a_simulated_vm_has_a_short_repr_without_its_passwords() -> None:
    lab = SimulatedHost()
    vm = lab.add_vm("web01")
    assert vm.windows is not None
    vm.windows.credentials["Administrator"] = SECRET
    text = repr(vm)
    assert text == f"<SimulatedVM web01 Windows Server 2022 Running id={vm.id}>"
    assert SECRET not in repr(vm.windows)
    assert repr(vm.windows) == "<WindowsGuestState WEB01 services=8 accounts=1>"
    vm.files.files["c:\\temp\\big.bin"] = b"x" * 100_000  # type: ignore[union-attr]
    assert len(repr(vm.files)) < 80
    assert all(len(repr(v)) < 120 for v in lab.vms)


@pytest.mark.parametrize(
    "url",
    [
        "sim://HV02?locale=de-DE&vms=3",
        "sim-linux://",
        "sim-linux://web?distro=rhel-9&user=admin&sudo=0",
    ],
)
def test_simulated_targets_show_their_url(url: str) -> None:
    target = parse_target(url)
    assert repr(target) == f"<{type(target).__name__} {target.url}>"


@pytest.mark.parametrize(
    "url",
    [
        f"ssh://admin:{SECRET}@hv01",
        f"psrp://admin:{SECRET}@hv01?ssl=true",
        "local://",
    ],
)
def test_targets_with_a_password_never_show_it(url: str) -> None:
    target = parse_target(url)
    assert repr(target) == f"<{type(target).__name__} {target.url}>"
    assert SECRET not in repr(target)
    assert SECRET not in repr(target.open())


def test_mock_requests_show_names_not_values() -> None:
    request = OperationRequest(
        INVOKE_IN_VM,
        {"VM": {"Name": "demovm"}, "Credential": {"UserName": "a", "Password": SECRET}},
        30.0,
    )
    assert SECRET not in repr(request)
    assert "Credential" in repr(request)
    command = CommandRequest(("/usr/bin/hv_set", "--value", SECRET), SECRET.encode(), 5.0)
    assert SECRET not in repr(command)
    assert repr(command).startswith("<CommandRequest /usr/bin/hv_set args=2 input=13 bytes")
    layout = GuestLayout(pools={0: b"\0" * 100_000})
    assert len(repr(layout)) < 120


async def test_a_guest_password_never_shows_in_reprs() -> None:
    async with HyperVHost.connect("sim://") as host:
        guest = host.vm("demovm").windows(Credential("Administrator", SECRET))
        assert SECRET not in repr(guest)
        assert SECRET not in repr(guest.transport)


async def test_batch_error_renders_failures_and_what_was_done() -> None:
    sim = SimulatedHost()
    async with HyperVHost.connect(sim) as host:
        with pytest.raises(BatchError) as caught:
            await host.integration_services(["demovm", "<nosuch>"])
    html = caught.value._repr_html_()
    assert html.startswith("<p><b>BatchError</b> (sim://HV01): could not read every VM</p>")
    assert "<td>&lt;nosuch&gt;</td><td>VMNotFoundError</td>" in html
    assert "<p>Done:</p><table>" in html
    assert html.count("<td>demovm</td>") == 6


def test_batch_error_without_results_has_no_done_table() -> None:
    error = BatchError(
        "some changes failed",
        result=(),
        errors={"vm1/VSS": VMNotFoundError("vm1", target="sim://")},
    )
    html = error._repr_html_()
    assert "Done" not in html
    assert "no virtual machine named &#x27;vm1&#x27;" in html
    assert html.count("<tr>") == 2  # the header and the one failure


EVIL = "evil\x1b]0;PWNED\x07\x1b[2Jforged\u202erow"


async def test_remote_control_characters_are_escaped_in_errors_and_html() -> None:
    lab = SimulatedHost()
    lab.add_vm(EVIL)
    async with HyperVHost.connect(lab) as host:
        vms = await host.list_vms()
        with pytest.raises(VMNotFoundError) as caught:
            await host.vm("nosuch").summary()
    page = vms._repr_html_()
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in page
        assert raw not in str(caught.value)
    assert "evil\\x1b]0;PWNED\\x07" in page
    assert "\\u202e" in str(caught.value)
    # The raw name stays in the record and in the error's attributes.
    assert EVIL in [vm.name for vm in vms]
    assert EVIL in caught.value.choices


def test_a_multi_line_remote_error_keeps_its_lines_but_not_its_escapes() -> None:
    error = VMNotFoundError("x\r\nforged", choices=["a\x1bb"])
    text = str(error)
    assert "\r" not in text
    assert "\x1b" not in text
    assert "a\\x1bb" in text


async def test_lists_inside_records_and_joined_lists_stay_tables() -> None:
    from hvintegration import RecordList, catalogue
    from hvintegration.records import KvpChange, KvpWriteResult

    async with HyperVHost.connect("sim://?hyperv=0") as host:
        report = await host.preflight()
    assert isinstance(report.failed, RecordList)
    assert "<table>" in report.failed._repr_html_()
    done = KvpWriteResult(
        "demovm",
        SimulatedHost().vm("demovm").id,
        (KvpChange("Role", "added", "web"), KvpChange("Env", "unchanged", "prod")),
    )
    assert isinstance(done.changed, RecordList)
    assert [change.key for change in done.changed] == ["Role"]
    assert isinstance(catalogue.ALL_SERVICES, RecordList)
    assert isinstance(catalogue.HOST_SERVICES, RecordList)
    joined = catalogue.HOST_SERVICES + (catalogue.POWERSHELL_DIRECT,)  # noqa: RUF005
    assert isinstance(joined, RecordList)
    assert joined == (*catalogue.HOST_SERVICES, catalogue.POWERSHELL_DIRECT)
    before = (catalogue.POWERSHELL_DIRECT,) + catalogue.HOST_SERVICES  # noqa: RUF005
    assert isinstance(before, RecordList)
    assert before[0] == catalogue.POWERSHELL_DIRECT
    assert isinstance(catalogue.HOST_SERVICES + catalogue.HOST_SERVICES, RecordList)


async def test_a_list_mixing_record_types_shows_one_table_per_type() -> None:
    from hvintegration import RecordList

    async with HyperVHost.connect("sim://") as host:
        services = await host.integration_services()
        vms = await host.list_vms()
    mixed = RecordList([services[0], vms[0], services[1], 7])
    page = mixed._repr_html_()
    assert page.count("<table>") == 3
    assert "IntegrationServiceState (2)" in page
    assert "VMSummary (1)" in page
    assert "int (1)" in page


@pytest.mark.parametrize(
    "url",
    [
        "ssh://admin@hv01",
        "ssh://admin@[::1]:2222?shell=cmd",
        "ssh://root@guest?key=%2Froot%2F.ssh%2Fid_ed25519&key=%2Fk2&mode=oneshot",
        "ssh://admin@hv01?known_hosts=%2Fkh&connect_timeout=5&executable=pwsh7"
        "&sessions=2&max_channels=3&max_output=4096",
    ],
)
def test_an_ssh_target_url_and_repr_name_every_setting_but_the_password(url: str) -> None:
    with_password = url.replace("@", f":{SECRET}@", 1)
    target = parse_target(with_password)
    assert target.url == url
    assert parse_target(target.url) == attrs.evolve(target, password=None)  # type: ignore[misc]
    assert repr(target) == f"<SSHTarget {url}>"
    assert SECRET not in repr(target)


def test_an_ssh_target_says_when_it_does_not_verify_host_keys() -> None:
    from hvintegration.transport.ssh import SSHTarget

    assert repr(SSHTarget("hv01", verify_host_key=False)) == (
        "<SSHTarget ssh://hv01, host key not verified>"
    )


async def test_a_batch_error_table_escapes_remote_names() -> None:
    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host:
        with pytest.raises(BatchError) as caught:
            await host.integration_services(["demovm", "gone\u202e\x1b[2J"])
    page = caught.value._repr_html_()
    assert "\u202e" not in page
    assert "\x1b" not in page
    assert "gone\\u202e\\x1b[2J" in page
