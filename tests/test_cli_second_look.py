"""The command line's answers to mistakes a second look found: options typed
after any command, suggestions from the command that was chosen, argument
choices and missing arguments in words, a target given empty, guest options
that make no sense alone."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from hvintegration import HyperVHost
from hvintegration.cli import EXIT_CODES, run
from hvintegration.cli.commands import read_password
from hvintegration.fleet.inventory import CredentialRef
from hvintegration.testing.powershell_peers import LocalStandInPeer


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_a_mistyped_option_of_a_subcommand_is_suggested_with_its_usage() -> None:
    status, _, err = _run("-t", "sim://", "host", "disable", "demovm", "heartbeat", "--forc")
    assert status == EXIT_CODES["usage"]
    assert "usage: hvintegration host disable" in err
    assert (
        "hvintegration host disable: error: unknown option --forc; did you mean '--force'?" in err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("catalogue", "-v"),
        ("catalogue", "--json", "-t", "sim://"),
        ("advise", "--host-os", "2019", "--guest-os", "win7", "--timeout", "5"),
        ("completion", "bash", "-v"),
        ("completion", "bash", "--json"),
    ],
)
def test_shared_options_may_follow_a_command_that_needs_no_target(
    argv: tuple[str, ...],
) -> None:
    status, out, err = _run(*argv)
    assert status == EXIT_CODES["ok"], err
    assert out.strip()


def test_catalogue_json_after_the_command_prints_json() -> None:
    status, out, _ = _run("catalogue", "--json", "-t", "sim://")
    assert status == EXIT_CODES["ok"]
    assert out.lstrip().startswith("[")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("completion", "fish"), "unknown shell 'fish' (one of: bash, zsh, tcsh)"),
        (
            ("completion", "bsh"),
            "unknown shell 'bsh'; did you mean 'bash'? (one of: bash, zsh, tcsh)",
        ),
        (("completion",), "missing shell (one of: bash, zsh, tcsh)"),
        (("advise", "--host-os", "2019"), "missing --guest-os OS"),
        (("-t", "sim://", "host", "enable"), "missing VM; SERVICE"),
        (
            ("-t", "sim-linux://", "linux", "kvp", "--pool", "9"),
            "unknown --pool 9 (one of: 0, 1, 2",
        ),
    ],
)
def test_choices_and_missing_arguments_are_said_in_words(
    argv: tuple[str, ...], message: str
) -> None:
    status, _, err = _run(*argv)
    assert status == EXIT_CODES["usage"]
    assert message in err
    for internal in ("invalid choice", "the following arguments", "argument shell"):
        assert internal not in err


def test_fleet_plan_json_names_services_by_catalogue_key(tmp_path: Path) -> None:
    inventory = tmp_path / "lab.toml"
    inventory.write_text(
        '[targets.de]\nurl = "sim://HVDE?locale=de-DE"\nkind = "host"\n'
        '[targets.penguin]\nurl = "sim-linux://"\nkind = "linux"\n'
    )
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[rule]]\nservices = { "Guest Service Interface" = true }\n'
        '[[rule]]\nkind = "linux"\ndaemons = { vss = false }\n'
    )
    status, out, err = _run("--json", "fleet", "plan", str(policy), "-i", str(inventory))
    assert status == EXIT_CODES["ok"], err
    items = {(row["target"], row["item"]) for row in json.loads(out)["rows"]}
    assert ("de", "guest_service_interface") in items
    assert ("penguin", "hv_vss_daemon") in items
    assert all("service" not in row for row in json.loads(out)["rows"])
    status, out, _ = _run("fleet", "plan", str(policy), "-i", str(inventory))
    assert "de demovm Guest Service Interface: disabled -> enabled" in out


@pytest.mark.parametrize(
    "password", ["abc\x0cdef", "a\x1cb\x1dc\x1ed", "caf\u00e9\x85x", "p\u2028q", "plain"]
)
@pytest.mark.parametrize("ending", ["\n", "\r\n", "", "\nsecond line\n"])
def test_a_password_file_is_cut_at_a_line_end_only(
    tmp_path: Path, password: str, ending: str
) -> None:
    path = tmp_path / "password.txt"
    path.write_bytes(("\ufeff" + password + ending).encode("utf-8"))
    read = read_password(file=str(path), ask=False, environment="UNSET_X", prompt="p")
    assert read == password
    assert CredentialRef("file", str(path)).resolve("hv01") == password


@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_target_is_refused_even_with_the_variable_set(
    monkeypatch: pytest.MonkeyPatch, empty: str
) -> None:
    monkeypatch.setenv("HVINTEGRATION_TARGET", "sim://")
    status, out, err = _run("-t", empty, "host", "disable", "demovm", "vss")
    assert status == EXIT_CODES["usage"]
    assert "no target: give --target URL (it is empty; $HVINTEGRATION_TARGET does not" in err
    assert out == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("-t", "sim://", "windows", "--vm", "demovm", "--user", "", "services"),
            "--user is empty",
        ),
        (("-t", "sim://?guest=demovm", "windows", "--user", "bob", "services"), "without --vm"),
        (("-t", "sim://", "windows", "--vm", "", "services"), "--vm is empty"),
    ],
)
def test_guest_options_that_mean_nothing_are_refused(
    monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...], message: str
) -> None:
    monkeypatch.setenv("HVINTEGRATION_GUEST_PASSWORD", "hvintegration")
    status, out, err = _run(*argv)
    assert status == EXIT_CODES["usage"], err
    assert message in err
    assert out == ""


async def test_a_vm_named_twice_is_listed_once(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    with peer.edit() as host:
        host.add_vm("othervm")
    async with HyperVHost.connect(peer.target()) as host:
        vms = await host.list_vms()
        demo = next(vm for vm in vms if vm.name == "demovm")
        once = await host.integration_services(["demovm"])
        twice = await host.integration_services(["demovm", str(demo.id), demo.id, "DEMOVM"])
        both = await host.integration_services(["othervm", "demovm", "othervm"])
    assert once
    assert list(twice) == list(once)
    assert len({(s.vm_id, s.name) for s in both}) == len(both)
    assert {s.vm_name for s in both} == {"demovm", "othervm"}


def test_the_command_line_lists_a_vm_named_twice_once() -> None:
    _, once, _ = _run("-t", "sim://", "--json", "host", "services", "demovm")
    status, twice, _ = _run(
        "-t",
        "sim://",
        "--json",
        "host",
        "services",
        "demovm",
        "B412F17D-CC3C-5E01-B8E8-FED08BC30DA0",
    )
    assert status == EXIT_CODES["ok"]
    assert json.loads(twice) == json.loads(once)
