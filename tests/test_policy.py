"""A desired-state policy over a fleet: plan reads, apply changes only what differs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hvintegration import LinuxGuest, PermissionDeniedError, UnsafeChangeError, catalogue
from hvintegration.fleet import Fleet, FleetTarget, PolicyError, load_policy
from hvintegration.simulator import SimulatedHost


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(textwrap.dedent(text))
    return path


POLICY = """
    [[rule]]
    services = { "Guest Service Interface" = true, "VSS" = true }

    [[rule]]
    vms = "web*"
    services = { vss = false, "Time Synchronization" = false }

    [[rule]]
    group = "edge"
    targets = "hv0*"
    services = { vmicguestinterface = false }

    [[rule]]
    kind = "linux"
    daemons = { vss = false, kvp = true }
"""


def _lab() -> tuple[SimulatedHost, SimulatedHost]:
    first, second = SimulatedHost("HV01"), SimulatedHost("HV02")
    first.add_vm("web1")
    second.add_vm("db1")
    return first, second


def test_rules_are_read_and_later_rules_win(tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, POLICY))
    assert len(policy.rules) == 4
    plain = FleetTarget("sim://X", name="hv01")
    edge = FleetTarget("sim://Y", name="hv02", groups=["edge"])
    other_edge = FleetTarget("sim://Z", name="lab", groups=["edge"])
    gsi, vss, timesync = (
        catalogue.GUEST_SERVICE_INTERFACE,
        catalogue.VSS,
        catalogue.TIME_SYNCHRONIZATION,
    )
    assert policy.services_for(plain, "demovm") == {gsi: True, vss: True}
    assert policy.services_for(plain, "WEB7") == {gsi: True, vss: False, timesync: False}
    assert policy.services_for(edge, "demovm") == {gsi: False, vss: True}
    assert policy.services_for(other_edge, "demovm") == {gsi: True, vss: True}
    guest = FleetTarget("sim-linux://g")
    assert {d.short: on for d, on in policy.daemons_for(guest).items()} == {
        "vss": False,
        "kvp": True,
    }
    assert policy.services_for(guest, "demovm") == {gsi: True, vss: True}


async def test_plan_reads_once_and_apply_changes_once_per_host(tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, POLICY))
    first, second = _lab()
    broken = SimulatedHost("BROKEN")
    broken.inject_fault("error")
    guest_state = tmp_path / "web.json"
    fleet = Fleet(
        [
            FleetTarget(first, name="hv01"),
            FleetTarget(second, name="hv02", groups=["edge"]),
            FleetTarget(broken, name="broken"),
            FleetTarget(f"sim-linux://web?state={guest_state}", name="web"),
            FleetTarget("sim://?guest=demovm", name="win"),
        ]
    )
    plan = await policy.plan(fleet)
    assert [r.target for r in plan.targets] == ["hv01", "hv02", "broken", "web"]
    assert isinstance(plan.errors["broken"], PermissionDeniedError)
    assert first.round_trips == second.round_trips == 1
    assert [item.diff_line for item in plan.rows] == [
        "~ hv01 demovm Guest Service Interface: disabled -> enabled",
        "~ hv01 web1 Guest Service Interface: disabled -> enabled",
        "~ hv01 web1 Time Synchronization: enabled -> disabled",
        "~ hv01 web1 VSS: enabled -> disabled",
        "~ web hv_vss_daemon: running -> stopped",
    ]
    assert all(item.changed is None for item in plan.rows)

    applied = await policy.apply(fleet, plan=plan)
    # One round trip for the host with changes, none for the one without.
    assert first.round_trips == 2
    assert second.round_trips == 1
    assert [r.target for r in applied.targets] == ["hv01", "broken", "web"]
    assert isinstance(applied.errors["broken"], PermissionDeniedError)
    assert [(i.vm, i.item, i.changed) for i in applied.rows] == [
        ("demovm", "Guest Service Interface", True),
        ("web1", "Guest Service Interface", True),
        ("web1", "Time Synchronization", True),
        ("web1", "VSS", True),
        ("", "hv_vss_daemon", True),
    ]
    web1 = {str(key): on for key, on in first.vm("web1").enabled.items()}
    assert web1[str(catalogue.VSS.component_id)] is False
    assert web1[str(catalogue.GUEST_SERVICE_INTERFACE.component_id)] is True
    async with LinuxGuest.connect(f"sim-linux://web?state={guest_state}") as guest:
        assert not (await guest.daemon("vss").state()).running

    # Idempotent: nothing left to plan, and nothing sent.
    again = await policy.apply(fleet.select(names=["hv01", "hv02", "web"]))
    assert again.rows == ()
    assert again.targets == ()
    assert first.round_trips == 3  # the new plan's read only


async def test_critical_changes_need_force_per_target(tmp_path: Path) -> None:
    policy = load_policy(
        _policy(
            tmp_path,
            """
            [[rule]]
            targets = "risky"
            services = { Heartbeat = false }
            [[rule]]
            targets = "calm"
            services = { VSS = false }
            """,
        )
    )
    risky, calm = SimulatedHost("RISKY"), SimulatedHost("CALM")
    fleet = Fleet([FleetTarget(risky, name="risky"), FleetTarget(calm, name="calm")])
    plan = await policy.plan(fleet)
    assert [(i.target, i.item, i.needs_force) for i in plan.rows] == [
        ("risky", "Heartbeat", True),
        ("calm", "VSS", False),
    ]
    applied = await policy.apply(fleet, plan=plan)
    error = applied.errors["risky"]
    assert isinstance(error, UnsafeChangeError)
    assert error.services == ("Heartbeat",)
    assert risky.round_trips == 1  # the plan's read; the change was never sent
    assert [(i.target, i.changed) for i in applied.rows] == [("calm", True)]
    forced = await policy.apply(fleet, force=True)
    assert [(i.target, i.item, i.changed) for i in forced.rows] == [("risky", "Heartbeat", True)]


async def test_stopping_the_kvp_daemon_needs_force(tmp_path: Path) -> None:
    policy = load_policy(_policy(tmp_path, "[[rule]]\ndaemons = { kvp = false }\n"))
    state = tmp_path / "g.json"
    fleet = Fleet([FleetTarget(f"sim-linux://g?state={state}", name="g")])
    applied = await policy.apply(fleet)
    assert isinstance(applied.errors["g"], UnsafeChangeError)
    forced = await policy.apply(fleet, force=True)
    assert [(i.item, i.action, i.changed) for i in forced.rows] == [("hv_kvp_daemon", "stop", True)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one"),
        ("[[rule]]\nvms = 'x'\n", "says nothing"),
        ("[[rule]]\nservices = { Teleport = true }\n", "Teleport"),
        ("[[rule]]\ndaemons = { heartbeat = true }\n", "rule 1"),
        ("[[rule]]\nservices = { VSS = 'on' }\n", "must be true or false"),
        ("[[rule]]\nservices = { VSS = true }\ncolour = 'red'\n", "unknown key 'colour'"),
        ("[[rule]]\nservices = { VSS = true }\nkind = 'router'\n", "kind must be one of"),
        ("[[rule]]\nservices = { VSS = true }\nvms = 3\n", "vms must be a non-empty string"),
        ("[rules]\n", "unknown key 'rules'"),
        ("not = [toml", "not TOML"),
    ],
)
def test_bad_policies_say_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    path = _policy(tmp_path, text)
    with pytest.raises(PolicyError, match=message) as caught:
        load_policy(path)
    assert str(path) in str(caught.value)


def test_a_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="No such file"):
        load_policy(tmp_path / "absent.toml")
