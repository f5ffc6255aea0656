"""Records: frozen, readable, and rendered as tables for terminals and notebooks."""

from __future__ import annotations

import uuid

import attrs
import pytest

from hvintegration import RecordList, catalogue
from hvintegration._table import text_table
from hvintegration.records import ApplyResult, IntegrationServiceState, ServiceChange, VMSummary


def _state(vm_name: str = "demovm", enabled: bool = True) -> IntegrationServiceState:
    spec = catalogue.VSS
    assert spec.component_id is not None
    return IntegrationServiceState(
        vm_name, uuid.UUID(int=1), "VSS", spec.component_id, spec, enabled, "OK", "", ("Ok",)
    )


def test_records_are_frozen() -> None:
    state = _state()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        state.enabled = False  # type: ignore[misc]
    assert attrs.evolve(state, enabled=False).enabled is False


def test_repr_is_short_and_readable() -> None:
    assert repr(_state()) == "<IntegrationServiceState demovm/VSS enabled=True status='OK'>"
    change = ServiceChange(_state(), True, False)
    assert repr(change) == "<ServiceChange demovm/VSS enabled=True unchanged>"


def test_record_list_is_a_tuple_that_renders_one_html_table() -> None:
    records = RecordList([_state("a"), _state("<b>&")])
    assert records == (records[0], records[1])
    html = records._repr_html_()
    assert html.count("<table>") == 1
    assert html.count("<tr>") == 3
    assert "&lt;b&gt;&amp;" in html
    assert "<b>&" not in html
    assert RecordList([])._repr_html_() == "<p>(no rows)</p>"


def test_text_table_aligns_columns_like_format_table() -> None:
    summary = VMSummary("demovm", uuid.UUID(int=0), "Running", 2, "10.0", "HV01")
    lines = text_table([summary]).splitlines()
    assert lines[0].split() == [
        "Name", "State", "Generation", "IntegrationServicesVersion", "IntegrationServicesState",
        "Id",
    ]  # fmt: skip
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].startswith("demovm Running")
    assert text_table([]) == ""


def test_apply_result_splits_changed_and_unchanged() -> None:
    result = ApplyResult(
        (ServiceChange(_state(), True, True), ServiceChange(_state("b"), True, False))
    )
    assert [c.state.vm_name for c in result.changed] == ["demovm"]
    assert [c.state.vm_name for c in result.unchanged] == ["b"]
    assert repr(result) == "<ApplyResult 1 changed, 1 unchanged>"
    assert result._repr_html_().count("<tr>") == 3


def test_unknown_component_keeps_the_host_name() -> None:
    state = attrs.evolve(_state(), service=None, name="Neuer Dienst")
    assert state.display_name == "Neuer Dienst"
    assert not attrs.evolve(_state(), operational_status=("NoContact",)).healthy
