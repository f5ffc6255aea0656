"""Decoding output objects: each repeated id is parsed once, errors stay exact."""

from __future__ import annotations

import uuid

import pytest

from hvintegration import catalogue
from hvintegration._decode import Decoder
from hvintegration.errors import ProtocolError
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.behaviour import get_integration_services


def _services(vms: int) -> list[dict[str, object]]:
    host = SimulatedHost()
    for number in range(vms - 1):
        host.add_vm(f"vm{number:03d}")
    return [dict(o) for o in get_integration_services(host, {"VM": None}).output]  # type: ignore[arg-type]


def test_one_decoder_parses_each_repeated_id_once() -> None:
    decoder = Decoder("sim://lab", "get_integration_services")
    states = [decoder.service_state(o) for o in _services(3)]  # type: ignore[arg-type]
    assert len(states) == 18
    by_vm: dict[str, list[uuid.UUID]] = {}
    for state in states:
        by_vm.setdefault(state.vm_name, []).append(state.vm_id)
    for ids in by_vm.values():
        # The same parsed object for every service of one VM.
        assert all(vm_id is ids[0] for vm_id in ids)
    # A component GUID parsed once for the whole answer, with its entry.
    heartbeats = [s for s in states if s.component_id == catalogue.HEARTBEAT.component_id]
    assert len(heartbeats) == 3
    assert all(s.component_id is heartbeats[0].component_id for s in heartbeats)
    assert all(s.service is catalogue.HEARTBEAT for s in heartbeats)


def test_reused_ids_decode_as_fresh_ones() -> None:
    outputs = _services(2)
    shared = Decoder("sim://lab", "get_integration_services")
    reused = [shared.service_state(o) for o in outputs]  # type: ignore[arg-type]
    fresh = [
        Decoder("sim://lab", "get_integration_services").service_state(o)  # type: ignore[arg-type]
        for o in outputs
    ]
    assert reused == fresh


def test_a_bad_id_fails_every_time_it_is_seen() -> None:
    decoder = Decoder("sim://lab", "get_integration_services")
    good = _services(1)[0]
    bad = {**good, "Id": "Microsoft:X\\not-a-guid", "VMId": good["VMId"]}
    for _ in range(2):
        with pytest.raises(ProtocolError, match="ends in no GUID"):
            decoder.service_state(bad)  # type: ignore[arg-type]
    wrong_vm = {**good, "VMId": "nope"}
    for _ in range(2):
        with pytest.raises(ProtocolError, match="VMId is not a GUID"):
            decoder.service_state(wrong_vm)  # type: ignore[arg-type]
    assert decoder.service_state(good).vm_id == uuid.UUID(str(good["VMId"]))  # type: ignore[arg-type]
