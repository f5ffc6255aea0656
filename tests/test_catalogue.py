"""The catalogue resolves every name a service goes by, and only those."""

from __future__ import annotations

import runpy
import uuid
from pathlib import Path

import pytest

from hvintegration import catalogue
from hvintegration.errors import ServiceNotFoundError


@pytest.mark.parametrize("spec", catalogue.ALL_SERVICES, ids=lambda s: s.key)
def test_every_name_of_a_service_resolves_to_it(spec: catalogue.ServiceSpec) -> None:
    for name in spec.names:
        assert catalogue.resolve(name) is spec
        assert catalogue.resolve(name.upper()) is spec
        assert catalogue.resolve(f"  {name.lower()} ") is spec
    assert catalogue.resolve(spec) is spec


@pytest.mark.parametrize("spec", catalogue.HOST_SERVICES, ids=lambda s: s.key)
def test_host_services_resolve_by_guid_in_every_spelling(spec: catalogue.ServiceSpec) -> None:
    assert spec.component_id is not None
    text = str(spec.component_id)
    for form in (text, text.upper(), "{" + text + "}", spec.component_id):
        assert catalogue.resolve(form) is spec
    vm_id = uuid.uuid4()
    assert catalogue.by_component_id(f"Microsoft:{str(vm_id).upper()}\\{text.upper()}") is spec


def test_guids_and_names_are_unique() -> None:
    ids = [s.component_id for s in catalogue.ALL_SERVICES if s.component_id is not None]
    assert len(ids) == len(set(ids)) == 6
    owners: dict[str, set[str]] = {}
    for spec in catalogue.ALL_SERVICES:
        for name in spec.names:
            owners.setdefault(name.casefold(), set()).add(spec.key)
    assert all(len(keys) == 1 for keys in owners.values())


def test_seed_facts() -> None:
    assert str(catalogue.GUEST_SERVICE_INTERFACE.component_id).upper() == (
        "6C09BB55-D683-4DA0-8931-C9BF705F6480"
    )
    assert catalogue.resolve("Data Exchange") is catalogue.KEY_VALUE_PAIR_EXCHANGE
    assert [s.windows_service for s in catalogue.ALL_SERVICES] == [
        "vmicguestinterface",
        "vmicheartbeat",
        "vmickvpexchange",
        "vmicshutdown",
        "vmictimesync",
        "vmicvss",
        "vmicrdv",
        "vmicvmsession",
    ]
    kvp = catalogue.KEY_VALUE_PAIR_EXCHANGE.linux
    assert kvp is not None
    assert kvp.daemons == ("hv_kvp_daemon",)
    assert "hv-kvp-daemon.service" in kvp.units
    assert "hypervkvpd.service" in kvp.units
    assert catalogue.HEARTBEAT.linux is not None
    assert catalogue.HEARTBEAT.linux.daemons == ()


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ServiceNotFoundError) as caught:
        catalogue.resolve("Guest Servce Interface")
    error = caught.value
    assert isinstance(error, LookupError)
    assert error.name == "Guest Servce Interface"
    assert "Guest Service Interface" in error.choices
    assert "valid: Guest Service Interface" in str(error)


def test_unknown_guid_is_not_found() -> None:
    unknown = uuid.UUID(int=7)
    assert catalogue.by_component_id(unknown) is None
    assert catalogue.by_component_id("Microsoft:x\\not-a-guid") is None
    with pytest.raises(ServiceNotFoundError):
        catalogue.resolve(unknown)
    with pytest.raises(ServiceNotFoundError):
        catalogue.resolve(str(unknown))


@pytest.mark.parametrize("value", [None, 3, b"VSS", ["VSS"]])
def test_wrong_types_are_type_errors(value: object) -> None:
    with pytest.raises(TypeError):
        catalogue.resolve(value)  # type: ignore[arg-type]


def test_resolve_host_refuses_guest_only_services() -> None:
    with pytest.raises(ServiceNotFoundError) as caught:
        catalogue.resolve_host("vmicvmsession")
    assert "runs only inside the guest" in str(caught.value)
    with pytest.raises(ServiceNotFoundError) as caught:
        catalogue.resolve_host("nope")
    assert "PowerShell Direct" not in str(caught.value)
    assert catalogue.resolve_host("Backup") is catalogue.VSS


def _vendor_ids() -> dict[str, dict[str, str]]:
    path = Path(__file__).with_name("fixtures") / "integration_service_ids.py"
    ids: dict[str, dict[str, str]] = runpy.run_path(str(path))["IDS"]
    return ids


VENDOR_IDS = _vendor_ids()


def test_the_fixture_names_each_host_service_once() -> None:
    assert sorted(VENDOR_IDS) == sorted(spec.key for spec in catalogue.HOST_SERVICES)


@pytest.mark.parametrize("key", sorted(VENDOR_IDS))
def test_ids_match_the_cited_public_sources(key: str) -> None:
    """Pinned against tests/fixtures/integration_service_ids.py, whose
    values cite the vendor and the kernel, not the catalogue."""
    expected = VENDOR_IDS[key]
    spec = catalogue.resolve(key)
    assert spec.name == expected["english_name"]
    assert spec.component_id == uuid.UUID(expected["component_id"])
    assert spec.linux is not None
    assert spec.linux.vmbus_class_id == uuid.UUID(expected["vmbus_class_id"])
    # Both ways round: the id a host prints resolves to this service.
    assert (
        catalogue.by_component_id(f"Microsoft:{uuid.uuid4()}\\{expected['component_id']}") is spec
    )
    assert catalogue.resolve(expected["component_id"]) is spec


def test_component_ids_and_channel_classes_are_distinct() -> None:
    component_ids = {uuid.UUID(v["component_id"]) for v in VENDOR_IDS.values()}
    class_ids = {uuid.UUID(v["vmbus_class_id"]) for v in VENDOR_IDS.values()}
    assert len(component_ids) == len(class_ids) == 6
    assert component_ids.isdisjoint(class_ids)
