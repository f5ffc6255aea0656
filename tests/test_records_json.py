"""One JSON form per record, the same on every side, and lists that stay tables."""

from __future__ import annotations

import datetime
import enum
import json
import sys
import uuid

import pytest

from hvintegration import HyperVHost, LinuxGuest, RecordList, WindowsGuest, catalogue
from hvintegration._table import json_rows, plain, to_json
from hvintegration.records import ApplyResult, Check, PreflightReport, Verdict, VMSummary
from hvintegration.simulator import SimulatedHost


def _roundtrip(data: object) -> object:
    return json.loads(json.dumps(data))


def test_the_catalogue_keeps_every_field() -> None:
    rows = json_rows(catalogue.ALL_SERVICES)
    assert rows == _roundtrip(rows)
    gsi = rows[0]
    assert gsi["key"] == "guest_service_interface"
    assert gsi["component_id"] == "6c09bb55-d683-4da0-8931-c9bf705f6480"
    assert gsi["aliases"] == ["Guest services"]
    assert gsi["windows_service"] == "vmicguestinterface"
    assert gsi["windows_display_name"] == "Hyper-V Guest Service Interface"
    assert gsi["linux"]["daemons"] == ["hv_fcopy_uio_daemon", "hv_fcopy_daemon"]
    assert "hypervfcopyd.service" in gsi["linux"]["units"]
    assert gsi["linux"]["vmbus_class_id"] == "34d14be3-dee4-41c8-9ae7-6b174977c192"
    rdv = next(row for row in rows if row["key"] == "remote_desktop_virtualization")
    assert (rdv["component_id"], rdv["linux"]) == (None, None)
    assert set(gsi) == {
        "key",
        "name",
        "component_id",
        "aliases",
        "windows_service",
        "windows_display_name",
        "linux",
        "host_toggle",
        "critical",
        "description",
    }


async def test_host_records_use_catalogue_keys_and_text_ids() -> None:
    sim = SimulatedHost(locale="de-DE")
    async with HyperVHost.connect(sim) as host:
        vms = await host.list_vms()
        states = await host.vm("demovm").integration_services()
        result = await host.vm("demovm").apply({"VSS": False})
    vm = vms.to_dicts()[0]
    assert vm["id"] == str(sim.vm("demovm").id)
    first = states[0].to_dict()
    assert first["service"] == "guest_service_interface"
    assert first["name"] == "Gastdienstschnittstelle"
    assert first["vm_id"] == vm["id"]
    assert first["operational_status"] == list(states[0].operational_status)
    assert json.loads(states[0].to_json()) == first
    applied = result.to_dict()
    assert applied["items"][0]["state"]["service"] == "vss"
    assert applied["items"][0]["changed"] is True
    assert json.loads(states.to_json()) == states.to_dicts()


async def test_windows_and_linux_use_the_same_service_keys() -> None:
    async with WindowsGuest.connect("sim://?guest=demovm") as guest:
        services = await guest.services()
    windows = {row["name"]: row["service"] for row in services.to_dicts()}
    assert windows["vmicvss"] == "vss"
    assert windows["vmicguestinterface"] == "guest_service_interface"
    async with LinuxGuest.connect("sim-linux://") as linux:
        status = await linux.status()
    data = status.to_dict()
    assert data == _roundtrip(data)
    assert [d["service"] for d in data["daemons"]] == [
        "guest_service_interface",
        "key_value_pair_exchange",
        "vss",
    ]
    assert {d["service"] for d in data["devices"]} >= {"heartbeat", "vss"}
    kvp = status.daemon("kvp").to_dict()
    assert kvp["daemon"] == "hv_kvp_daemon"
    process = kvp["processes"][0]
    assert process["daemon"] == "hv_kvp_daemon"
    assert datetime.datetime.fromisoformat(process["started"]).tzinfo is not None
    assert kvp["installed"][0]["daemon"] == "hv_kvp_daemon"
    assert status.as_dict() == data
    for key in ("units", "uio_driver", "processes_complete", "omitted", "unrecognised"):
        assert key in data


def test_a_report_keeps_its_bug_report_form() -> None:
    report = PreflightReport("sim://", "host", (Check("rights", Verdict.FAIL, "no"),), {"a": (1,)})
    data = report.to_dict()
    assert data["ok"] is False
    assert data["checks"] == [{"name": "rights", "verdict": "fail", "found": "no", "remedy": ""}]
    assert data["facts"] == {"a": [1]}
    assert report.as_dict()["checks"] == data["checks"]


def test_plain_converts_what_records_hold_and_refuses_the_rest() -> None:
    class Colour(enum.Enum):
        RED = "red"

    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    assert plain({"c": Colour.RED, "t": when, "s": frozenset({2, 1}), 3: None}) == {
        "c": "red",
        "t": "2024-01-02T03:04:05+00:00",
        "s": [1, 2],
        "3": None,
    }
    with pytest.raises(TypeError, match="no JSON form for bytes"):
        plain(b"raw")
    with pytest.raises(TypeError, match="int is not a record"):
        json_rows([1])
    assert json.loads(to_json(catalogue.VSS))["key"] == "vss"
    assert json.loads(to_json([catalogue.VSS]))[0]["key"] == "vss"


def _vms() -> RecordList[VMSummary]:
    return RecordList(
        VMSummary(f"vm{i}", uuid.UUID(int=i), "Running", 2, "10.0", "HV01") for i in range(4)
    )


def test_a_slice_is_still_a_table() -> None:
    vms = _vms()
    part = vms[1:3]
    assert isinstance(part, RecordList)
    assert part._repr_html_().count("<tr>") == 3
    assert part == (vms[1], vms[2])
    assert vms[0].name == "vm0"
    assert vms[::-1][0].name == "vm3"


async def test_tuples_inside_records_show_as_tables() -> None:
    async with HyperVHost.connect("sim://") as host:
        result = await host.vm("demovm").apply({"VSS": True, "Guest Service Interface": True})
    assert isinstance(result.items, RecordList)
    assert isinstance(result.changed, RecordList)
    assert "<table>" in result.items._repr_html_()
    async with LinuxGuest.connect("sim-linux://") as guest:
        status = await guest.status()
    for records in (status.daemons, status.devices, status.installed, status.nodes, status.units):
        assert isinstance(records, RecordList)
        assert "<table>" in records._repr_html_()
    # systemd units have no columns of their own: every field is one.
    units = status.units
    assert isinstance(units, RecordList)
    assert "<th>active_state</th>" in units._repr_html_()
    assert isinstance(status.daemons[0].installed, RecordList)
    assert ApplyResult(()) == ApplyResult(RecordList([]))


def test_to_dataframe_with_pandas() -> None:
    import pandas  # type: ignore[import-untyped]  # in the test extra

    frame = _vms().to_dataframe()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns)[:3] == ["name", "id", "state"]
    assert frame["name"].tolist() == ["vm0", "vm1", "vm2", "vm3"]


def test_to_dataframe_without_pandas_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'hvintegration\[pandas\]'"):
        _vms().to_dataframe()


def _cli_json(*argv: str) -> object:
    import io

    from hvintegration.cli import run

    out, err = io.StringIO(), io.StringIO()
    status = run([*argv, "--json"], out=out, err=err)
    assert status == 0, err.getvalue()
    return json.loads(out.getvalue())


def test_the_command_line_prints_the_same_schema() -> None:
    rows = _cli_json("catalogue")
    assert rows == json_rows(catalogue.ALL_SERVICES)
    assert isinstance(rows, list)
    assert rows[0]["linux"]["daemons"] == ["hv_fcopy_uio_daemon", "hv_fcopy_daemon"]
    services = _cli_json("-t", "sim://", "host", "services", "demovm")
    assert isinstance(services, list)
    assert services[0]["service"] == "guest_service_interface"
    status = _cli_json("-t", "sim-linux://", "linux", "status")
    assert isinstance(status, dict)
    assert [d["service"] for d in status["daemons"]] == [
        "guest_service_interface",
        "key_value_pair_exchange",
        "vss",
    ]
    windows = _cli_json("-t", "sim://?guest=demovm", "windows", "services")
    assert isinstance(windows, list)
    assert {row["service"] for row in windows} >= {"vss", "heartbeat"}


def test_maintenance_advice_has_the_same_json_form() -> None:
    from hvintegration.maintenance import advise

    advice = advise(host_os="Windows 10", guest_os="Windows 7")
    data = advice.to_dict()
    assert data["mechanism"] == "Windows Update"
    assert data["sources"][0]["url"].startswith("https://")
    assert json.loads(advice.to_json()) == data
    printed = _cli_json("advise", "--host-os", "Windows 10", "--guest-os", "Windows 7")
    assert printed == data


async def test_fleet_json_writes_records_in_their_own_schema() -> None:
    from hvintegration.fleet.records import plain as fleet_plain

    async with LinuxGuest.connect("sim-linux://") as guest:
        status = await guest.status()
    assert fleet_plain(status) == status.to_dict()
    assert fleet_plain({"error": ValueError("bad")}) == {
        "error": {"type": "ValueError", "message": "bad"}
    }
