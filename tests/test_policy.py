"""A desired-state policy over a fleet: plan reads, apply changes only what differs."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest

from hvintegration import (
    BatchError,
    HyperVHost,
    LinuxGuest,
    OperationTimeoutError,
    PermissionDeniedError,
    UnsafeChangeError,
    catalogue,
)
from hvintegration.fleet import Fleet, FleetTarget, Policy, PolicyError, Rule, load_policy
from hvintegration.linux import resolve_daemon
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.linux import SimulatedLinuxGuest


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
        # The same service twice, under two of its names.
        ("[[rule]]\nservices = { VSS = true, vmicvss = false }\n", "names VSS twice"),
        ("[[rule]]\ndaemons = { kvp = true, hv_kvp_daemon = false }\n", "twice"),
        # Filters that can select nothing the rule changes.
        ("[[rule]]\nkind = 'windows'\nservices = { VSS = true }\n", "selects no host"),
        ("[[rule]]\nkind = 'linux'\nservices = { VSS = true }\n", "selects no host"),
        ("[[rule]]\nkind = 'host'\ndaemons = { vss = true }\n", "daemons run on Linux"),
        ("[[rule]]\nvms = 'web1*'\ndaemons = { vss = false }\n", "vms selects a host's VMs"),
        # A localised name is known only from a host: say what works instead.
        (
            "[[rule]]\nservices = { Gastdienstschnittstelle = true }\n",
            "in English, by an older or vmic\\* name, or by GUID",
        ),
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


async def test_vms_are_planned_and_applied_by_id() -> None:
    lab = SimulatedHost("HV01")
    lab.add_vm("dup")
    lab.add_vm("dup", id=uuid.uuid4())
    policy = Policy((Rule(services=((catalogue.VSS, False),), vms="dup"),))
    fleet = Fleet([FleetTarget(lab, name="hv01")])
    plan = await policy.plan(fleet)
    assert len({item.vm_id for item in plan.rows}) == 2
    assert len({item.diff_line for item in plan.rows}) == 2  # told apart by id
    applied = await policy.apply(fleet, plan=plan)
    assert applied.ok
    assert [item.changed for item in applied.rows] == [True, True]
    assert "vm_id" in applied.to_dataframe().columns
    assert (await policy.plan(fleet)).rows == ()


async def test_a_vm_guid_in_vms_matches_that_vm() -> None:
    lab = SimulatedHost("HV01")
    lab.add_vm("web1")
    async with HyperVHost.connect(lab) as host:
        target = next(vm for vm in await host.list_vms() if vm.name == "web1")
    policy = Policy((Rule(services=((catalogue.VSS, False),), vms=f"{{{target.id}}}"),))
    plan = await policy.plan(Fleet([FleetTarget(lab, name="hv01")]))
    assert [(item.vm, item.vm_id) for item in plan.rows] == [("web1", target.id)]


async def test_apply_reports_no_change_when_the_world_got_there_first() -> None:
    guest = SimulatedLinuxGuest("g")
    policy = Policy((Rule(daemons=((resolve_daemon("vss"), False),)),))
    fleet = Fleet([FleetTarget(guest, name="g")])
    plan = await policy.plan(fleet)
    assert [item.action for item in plan.rows] == ["stop"]
    async with LinuxGuest.connect(guest) as linux:
        await linux.daemon("vss").stop()
    applied = await policy.apply(fleet, plan=plan)
    assert [(item.item, item.changed) for item in applied.rows] == [("hv_vss_daemon", False)]


async def test_what_a_failing_target_did_is_kept() -> None:
    guest = SimulatedLinuxGuest("g")
    async with LinuxGuest.connect(guest) as linux:
        await linux.daemon("fcopy").stop()
    guest.fail_start.add("fcopy")
    policy = Policy(
        (Rule(daemons=((resolve_daemon("vss"), False), (resolve_daemon("fcopy"), True))),)
    )
    result = await policy.apply(Fleet([FleetTarget(guest, name="g")]))
    assert isinstance(result.errors["g"], BatchError)
    # The stop that was done is reported, in the rows and the JSON.
    assert [(i.item, i.changed) for i in result.rows] == [
        ("hv_vss_daemon", True),
        ("hv_fcopy_daemon", False),
    ]
    assert json.loads(result.to_json())["rows"][0]["changed"] is True
    assert "hv_vss_daemon" in result.text()


async def test_what_a_timed_out_target_was_doing_is_kept() -> None:
    guest = SimulatedLinuxGuest("g")
    policy = Policy((Rule(daemons=((resolve_daemon("vss"), False),)),))
    plan = await policy.plan(Fleet([FleetTarget(guest, name="g")]))
    guest.latency = 0.5
    result = await policy.apply(Fleet([FleetTarget(guest, name="g", timeout=0.8)]), plan=plan)
    assert isinstance(result.errors["g"], OperationTimeoutError)
    ((item,),) = [result.rows]
    assert (item.item, item.changed) == ("hv_vss_daemon", None)
    assert "under way when the target failed" in item.note


async def test_plan_names_the_guests_own_daemon_and_warns_of_a_missing_one() -> None:
    policy = Policy(
        (Rule(daemons=((resolve_daemon("vss"), False), (resolve_daemon("kvp"), True))),)
    )
    fleet = Fleet(
        [
            FleetTarget(SimulatedLinuxGuest("r", distro="rhel-9"), name="rhel"),
            FleetTarget(SimulatedLinuxGuest("m", distro="minimal"), name="min"),
        ]
    )
    plan = await policy.plan(fleet)
    by_target = {(item.target, item.action): item for item in plan.rows}
    assert by_target["rhel", "stop"].item == "hypervvssd"
    assert "no program for it is installed" in by_target["min", "start"].note


async def test_a_host_without_the_service_cannot_comply() -> None:
    old = SimulatedHost("OLD", os="windows-server-2012")
    policy = Policy((Rule(services=((catalogue.GUEST_SERVICE_INTERFACE, True),)),))
    fleet = Fleet([FleetTarget(old, name="old")])
    plan = await policy.plan(fleet)
    assert [(item.action, item.item) for item in plan.rows] == [
        ("unavailable", "Guest Service Interface")
    ]
    applied = await policy.apply(fleet, plan=plan)
    assert applied.ok
    assert applied.rows == ()  # nothing to send, the target is not contacted


def test_unmatched_patterns_and_unknown_groups() -> None:
    rule = Rule(services=((catalogue.VSS, True),), targets="hv9*")
    grouped = Rule(services=((catalogue.VSS, True),), group="prdo")
    policy = Policy((rule, grouped), source="p.toml")
    assert policy.unmatched(Fleet(["sim://HV01"])) == [
        "rule 1: targets = 'hv9*' matches no target",
        "rule 2: group = 'prdo' has no target here",
    ]
    with pytest.raises(PolicyError, match="rule 2: no group 'prdo' in the inventory"):
        policy.check_groups(["prod"])
