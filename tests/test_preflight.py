"""doctor, HyperVHost.preflight() and WindowsGuest.preflight(): every verdict
that is not ``ok`` is reached through the simulator (or a real peer), and the
report holds no secret."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from hvintegration import Check, HyperVHost, PreflightReport, Verdict, doctor
from hvintegration.cli import run
from hvintegration.errors import HostKeyError, InvalidTargetError
from hvintegration.operations import PREFLIGHT
from hvintegration.preflight import GUEST_CHECKS, HOST_CHECKS, _error_checks, _transport_check
from hvintegration.simulator import SimulatedHost
from hvintegration.simulator.state import load_host, save_host
from hvintegration.testing.powershell_peers import LocalStandInPeer
from hvintegration.testing.standin_powershell import (
    BUILD_VARIABLE,
    EDITION_VARIABLE,
    LANGUAGE_VARIABLE,
)
from hvintegration.transport import ErrorRecord, parse_target
from hvintegration.transport.psrp import PSRPTarget
from hvintegration.transport.ssh import SSHTarget
from hvintegration.windows import Credential, WindowsGuest


def _verdicts(report: PreflightReport) -> dict[str, str]:
    return {check.name: check.verdict.value for check in report.checks}


def _not_ok(report: PreflightReport) -> dict[str, str]:
    return {name: v for name, v in _verdicts(report).items() if v != "ok"}


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


async def test_a_good_host_passes_every_check_in_one_round_trip() -> None:
    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host:
        report = await host.preflight()
    assert report.ok
    assert [check.name for check in report.checks] == list(HOST_CHECKS)
    assert _not_ok(report) == {}
    assert lab.calls == ["preflight"]
    assert report.facts["ComputerName"] == "HV01"
    assert report.check("read:list_vms").found.endswith(": 1")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "sim://?rights=none",
            {
                "rights": "fail",
                "read:list_vms": "fail",
                "read:get_integration_services": "fail",
                "powershell-direct-guests": "skipped",
            },
        ),
        (
            "sim://?hyperv=0",
            {
                "hyperv-module": "fail",
                "get-vm": "skipped",
                "powershell-direct-guests": "skipped",
                **{name: "skipped" for name in HOST_CHECKS if name.startswith("read:")},
            },
        ),
        (
            "sim://?edition=Core&os=windows-server-2016",
            {
                "powershell": "fail",
                "hyperv-module": "fail",
                # Not "ok": with no module loaded, what Get-VM resolves to
                # says nothing about the library.
                "get-vm": "skipped",
                "powershell-direct-guests": "skipped",
                **{name: "skipped" for name in HOST_CHECKS if name.startswith("read:")},
            },
        ),
        ("sim://?powercli=1", {"get-vm": "warning"}),
        (
            "sim://?os=windows-server-2012-r2",
            {
                "powershell-direct": "warning",
                "powershell-direct-guests": "skipped",
                "read:invoke_in_vm": "warning",
            },
        ),
    ],
)
async def test_each_simulated_host_problem_is_its_own_verdict(
    url: str, expected: dict[str, str]
) -> None:
    report = await doctor(url)
    assert _not_ok(report) == expected
    assert report.ok == ("fail" not in expected.values())
    for check in report.checks:
        if check.verdict in (Verdict.FAIL, Verdict.WARNING):
            assert check.remedy, check.name


async def test_a_hyperv_administrator_is_enough() -> None:
    report = await doctor("sim://?rights=hyperv-administrators")
    assert report.ok
    assert "Hyper-V Administrators" in report.check("rights").found


@pytest.mark.parametrize("language", ["ConstrainedLanguage", "RestrictedLanguage", "NoLanguage"])
async def test_a_constrained_session_fails_the_language_check_and_skips_the_rest(
    language: str,
) -> None:
    report = await doctor(f"sim://?language={language}")
    verdicts = _verdicts(report)
    assert verdicts["connection"] == "ok"
    assert verdicts["transport"] == "ok"
    assert verdicts["language-mode"] == "fail"
    assert {
        v for n, v in verdicts.items() if n not in ("connection", "transport", "language-mode")
    } == {"skipped"}
    assert "FullLanguage" in report.check("language-mode").remedy


async def test_the_powershell_direct_guests_check_names_the_vms_that_cannot_be_reached() -> None:
    lab = SimulatedHost(vms=[])
    lab.add_vm("old", guest="windows-server-2012-r2")
    lab.add_vm("stopped", state="Off")
    async with HyperVHost.connect(lab) as host:
        report = await host.preflight()
    check = report.check("powershell-direct-guests")
    assert check.verdict is Verdict.WARNING
    assert "not running: stopped" in check.found
    assert "old" in check.found
    lab.add_vm("new")
    async with HyperVHost.connect(lab) as host:
        assert (
            (await host.preflight())
            .check("powershell-direct-guests")
            .found.startswith("ready: new")
        )


@pytest.mark.parametrize(
    ("kind", "options", "check"),
    [
        ("disconnect", {}, "connection"),
        (
            "error",
            {"record": ErrorRecord("bad login", category="AuthenticationError")},
            "connection",
        ),
        ("error", {"record": ErrorRecord("odd", error_id="Something.Else")}, "preflight"),
    ],
)
async def test_a_failed_round_trip_is_a_verdict_not_an_exception(
    kind: str, options: dict[str, ErrorRecord], check: str
) -> None:
    lab = SimulatedHost()
    lab.inject_fault(kind, operation="preflight", **options)
    report = await doctor(lab)
    assert report.check(check).verdict is Verdict.FAIL
    assert not report.ok
    assert report.facts == {}
    assert [c.name for c in report.checks][: len(HOST_CHECKS)] == list(HOST_CHECKS)


async def test_a_host_that_does_not_answer_in_time_fails_the_connection_check() -> None:
    lab = SimulatedHost()
    lab.inject_fault("hang", operation="preflight")
    report = await doctor(lab, timeout=0.2)
    assert report.check("connection").verdict is Verdict.FAIL
    assert "--timeout" in report.check("connection").remedy


async def test_a_missing_powershell_fails_the_connection_check(tmp_path: Path) -> None:
    url = f"local://?executable={tmp_path / 'no-such-pwsh'}"
    report = await doctor(url)
    assert report.check("connection").verdict is Verdict.FAIL
    assert "executable=" in report.check("connection").remedy


def test_a_changed_host_key_says_how_to_check_the_fingerprint() -> None:
    error = HostKeyError("host key for hv01 is not trusted (SHA256:abc)", target="ssh://hv01")
    [check] = _error_checks(error)
    assert check.verdict is Verdict.FAIL
    assert "SHA256:abc" in check.found
    assert "fingerprint" in check.remedy


def test_the_transport_check_sees_the_client_settings() -> None:
    def verdict(target: object) -> Verdict:
        return _transport_check(target.open()).verdict  # type: ignore[attr-defined]

    assert verdict(PSRPTarget("hv01", ssl=True)) is Verdict.OK
    assert verdict(PSRPTarget("hv01")) is Verdict.WARNING  # plain HTTP
    assert verdict(PSRPTarget("hv01", ssl=True, cert_validation=False)) is Verdict.WARNING
    assert verdict(PSRPTarget("hv01", ssl=True, auth="credssp")) is Verdict.WARNING
    assert verdict(PSRPTarget("hv01", via="ssh")) is Verdict.OK
    assert verdict(SSHTarget("hv01", shell="cmd")) is Verdict.OK
    assert verdict(SSHTarget("hv01", verify_host_key=False)) is Verdict.WARNING
    assert verdict(parse_target("local://")) is Verdict.OK


async def test_a_windows_guest_straight_and_through_powershell_direct() -> None:
    lab = SimulatedHost()
    async with WindowsGuest.connect(lab.inside("demovm")) as guest:
        report = await guest.preflight()
    assert report.ok
    assert [check.name for check in report.checks] == list(GUEST_CHECKS)
    async with HyperVHost.connect(lab) as host:
        direct = host.vm("demovm").windows(Credential("Administrator", "hvintegration"))
        report = await direct.preflight()
    assert report.ok
    assert "PowerShell Direct" in report.check("transport").found
    assert "hvintegration" not in json.dumps(report.as_dict()).replace('hvintegration":', "")


async def test_guest_verdicts_older_guests_and_no_windows() -> None:
    lab = SimulatedHost(vms=[])
    lab.add_vm("old", guest="windows-server-2012-r2")
    lab.add_vm("penguin", guest="ubuntu-22.04")
    report = await doctor(lab.inside("old"), side="guest")
    assert _not_ok(report) == {"powershell-direct": "warning"}
    report = await doctor(lab.inside("penguin"), side="guest")
    assert _not_ok(report)["read:get_guest_services"] == "fail"
    assert _not_ok(report)["read:set_guest_service"] == "fail"
    async with HyperVHost.connect(lab) as host:
        # PowerShell Direct cannot reach a guest older than Windows 10 / 2016.
        report = await host.vm("old").windows(Credential("a", "b")).preflight()
        assert report.check("connection").verdict is Verdict.FAIL
        vm = lab.add_vm("new")
        assert vm.windows is not None
        vm.windows.administrators.clear()
        report = (
            await host.vm("new").windows(Credential("Administrator", "hvintegration")).preflight()
        )
    assert _not_ok(report) == {"rights": "warning"}


def test_records_render_for_notebooks() -> None:
    check = Check("rights", Verdict.FAIL, "<b>", "fix it")
    assert "&lt;b&gt;" in check._repr_html_()
    report = PreflightReport("sim://", "host", (check,))
    assert repr(report) == "<PreflightReport host sim://: 1 fail>"
    assert "<table>" in report._repr_html_()
    assert report.failed == (check,)
    with pytest.raises(KeyError):
        report.check("nothing")


async def test_doctor_refuses_a_bad_url_and_side() -> None:
    with pytest.raises(InvalidTargetError):
        await doctor("nope://x")
    with pytest.raises(ValueError, match="side"):
        await doctor("sim://", side="linux")


def test_the_cli_prints_a_table_and_exits_non_zero_on_a_failure() -> None:
    status, out, err = _cli("--target", "sim://", "doctor")
    assert (status, err) == (0, "")
    assert "read:invoke_in_vm" in out
    assert "14 ok" in out
    status, out, err = _cli("--target", "sim://?hyperv=0", "doctor")
    assert status == 1
    assert "hyperv-module                 fail" in out
    assert "What to do:" in out
    assert "Install-WindowsFeature Hyper-V-PowerShell" in out
    status, out, _ = _cli("--target", "sim://?guest=demovm", "doctor", "--guest", "--json")
    assert status == 0
    assert json.loads(out)["side"] == "guest"


def test_the_json_report_holds_no_secret() -> None:
    secret = "pa55-Wörd-s3cret"
    for url in (
        f"ssh://admin:{secret}@127.0.0.1:1?connect_timeout=2",
        f"psrp://admin:{secret}@127.0.0.1:1?connect_timeout=2",
    ):
        status, out, err = _cli("--target", url, "doctor", "--json", "--timeout", "5")
        assert status == 1, err
        data = json.loads(out)
        assert data["checks"][0] == {**data["checks"][0], "name": "connection", "verdict": "fail"}
        assert secret not in out
        assert secret not in err
        assert "pa55" not in out
    status, out, _ = _cli("--target", "sim://", "doctor", "--json")
    data = json.loads(out)
    assert set(data) == {"target", "side", "ok", "client", "checks", "facts"}
    assert data["facts"]["UserName"] == "HV01\\Administrator"


async def test_the_simulated_session_settings_survive_a_state_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    url = f"sim://?state={path}&rights=none&language=ConstrainedLanguage"
    assert not (await doctor(url)).ok
    host = load_host(path)
    assert (host.rights, host.language_mode) == ("none", "ConstrainedLanguage")
    assert parse_target(url).url.endswith("rights=none&language=ConstrainedLanguage")
    with pytest.raises(InvalidTargetError, match="rights"):
        parse_target("sim://?rights=root")


# -- through real peers: the stand-in PowerShell and the PSRP test server -------


async def test_doctor_through_the_standin_powershell(tmp_path: Path) -> None:
    for name in ("good", "constrained", "old"):
        (tmp_path / name).mkdir()
    peer = LocalStandInPeer(tmp_path / "good")
    report = await doctor(peer.target())
    assert report.ok, report.checks
    assert report.check("transport").found.startswith("PowerShell on this machine")
    constrained = LocalStandInPeer(
        tmp_path / "constrained", environment={LANGUAGE_VARIABLE: "ConstrainedLanguage"}
    )
    report = await doctor(constrained.target())
    assert report.check("language-mode").verdict is Verdict.FAIL
    assert "ConstrainedLanguage" in report.check("language-mode").found
    old = LocalStandInPeer(
        tmp_path / "old", environment={EDITION_VARIABLE: "Core", BUILD_VARIABLE: "14393"}
    )
    report = await doctor(old.target())
    assert report.check("powershell").verdict is Verdict.FAIL


def test_the_cli_doctor_through_the_standin_powershell(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    status, out, _ = _cli("--target", f"local://?executable={peer.executable}", "doctor")
    assert status == 0, out
    assert "14 ok" in out


def _psrp_url(state: Path, *extra: str) -> PSRPTarget:
    arguments = ("-m", "hvintegration.testing.psrp_server", "--state", os.fspath(state), *extra)
    return PSRPTarget("localhost", via="process", executable=sys.executable, arguments=arguments)


async def test_doctor_through_the_psrp_test_server(tmp_path: Path) -> None:
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    report = await doctor(_psrp_url(state))
    assert report.ok, report.checks
    assert report.check("transport").found.startswith("PSRP to a local")
    for language in ("ConstrainedLanguage", "NoLanguage"):
        report = await doctor(_psrp_url(state, "--language-mode", language))
        assert report.check("language-mode").verdict is Verdict.FAIL, language
        assert report.check("read:list_vms").verdict is Verdict.SKIPPED
    assert PREFLIGHT.name in load_host(state).calls
