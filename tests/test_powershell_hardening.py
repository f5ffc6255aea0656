"""Hosts as they really are: a banner before the loop, a constrained language
mode or a JEA endpoint, PowerShell 7 on Windows Server 2016, a host without
the Hyper-V module, and module logging that would record a cmdlet's
arguments. Each runs through a real child process (the stand-in PowerShell or
the PSRP test server) and the transport the user would use."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

from hvintegration.errors import HyperVModuleMissingError, UnsupportedPowerShellError
from hvintegration.operations import GET_INTEGRATION_SERVICES, LIST_VMS, OPERATIONS
from hvintegration.simulator.engine import _unqualified_get_vm, powercli_get_vm_record
from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.powershell_peers import LocalStandInPeer
from hvintegration.testing.standin_powershell import (
    BANNER_VARIABLE,
    BUILD_VARIABLE,
    EDITION_VARIABLE,
    LANGUAGE_VARIABLE,
)
from hvintegration.transport._powershell_wire import RUNNER
from hvintegration.transport.base import ErrorRecord
from hvintegration.transport.psrp import PSRPTarget

ALL = {"VM": None}
_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


@pytest.mark.parametrize("mode", ["persistent", "oneshot"])
async def test_a_banner_without_a_line_end_does_not_hide_the_first_answer(
    tmp_path: Path, mode: str
) -> None:
    # What a profile or a login banner leaves on stdout: text, then a
    # prompt with no line end.
    banner = "Windows PowerShell\r\nCopyright (C) Microsoft Corporation.\r\n\r\nPS C:\\> "
    peer = LocalStandInPeer(tmp_path, mode=mode, environment={BANNER_VARIABLE: banner})
    async with peer.open_transport() as transport:
        for _ in range(2):
            result = await transport.run_operation(LIST_VMS, ALL, timeout=10)
            assert [vm["Name"] for vm in result.output] == ["demovm"]


@pytest.mark.parametrize("language", ["ConstrainedLanguage", "RestrictedLanguage"])
async def test_a_constrained_language_mode_is_a_specific_error(
    tmp_path: Path, language: str
) -> None:
    peer = LocalStandInPeer(tmp_path, environment={LANGUAGE_VARIABLE: language})
    async with peer.open_transport() as transport:
        for _ in range(2):  # and again with a fresh process
            with pytest.raises(UnsupportedPowerShellError) as caught:
                await transport.run_operation(LIST_VMS, ALL, timeout=10)
            assert caught.value.error_id == "HvIntegration.LanguageModeUnsupported"
            assert language in str(caught.value)
            assert "FullLanguage" in str(caught.value)
            assert "JEA" in str(caught.value)


async def test_powershell_7_on_windows_server_2016_says_what_to_use(tmp_path: Path) -> None:
    environment = {EDITION_VARIABLE: "Core", BUILD_VARIABLE: "14393"}
    peer = LocalStandInPeer(tmp_path, environment=environment)
    async with peer.open_transport() as transport:
        for operation in (LIST_VMS, GET_INTEGRATION_SERVICES):
            with pytest.raises(UnsupportedPowerShellError) as caught:
                await transport.run_operation(operation, ALL, timeout=10)
            assert caught.value.error_id.startswith("HvIntegration.PowerShellCoreWithoutHyperV")
            message = str(caught.value)
            assert "14393" in message
            assert "executable=powershell" in message
            assert "configuration=Microsoft.PowerShell" in message


async def test_powershell_7_from_build_17763_runs_hyperv_natively(tmp_path: Path) -> None:
    environment = {EDITION_VARIABLE: "Core", BUILD_VARIABLE: "17763"}
    peer = LocalStandInPeer(tmp_path, environment=environment)
    async with peer.open_transport() as transport:
        result = await transport.run_operation(GET_INTEGRATION_SERVICES, ALL, timeout=10)
    assert result.output


async def test_a_host_without_the_hyperv_module_names_the_host_and_the_module(
    tmp_path: Path,
) -> None:
    peer = LocalStandInPeer(tmp_path)
    # The record the prelude's Import-HvHyperV writes when Import-Module fails.
    record = ErrorRecord(
        "The Hyper-V PowerShell module (Hyper-V) is not installed on 'HV01': The specified "
        "module 'Hyper-V' was not loaded because no valid module file was found in any module "
        "directory.",
        error_id="HvIntegration.HyperVModuleMissing,Import-HvHyperV",
        category="ObjectNotFound",
        exception_type="Microsoft.PowerShell.Commands.WriteErrorException",
        target_object="HV01",
    )
    with peer.edit() as sim:
        sim.inject_fault("error", record=record)
    async with peer.open_transport() as transport:
        with pytest.raises(HyperVModuleMissingError) as caught:
            await transport.run_operation(LIST_VMS, ALL, timeout=10)
    assert "Hyper-V PowerShell module" in str(caught.value)
    assert "HV01" in caught.value.remote_message
    # The prelude writes exactly that id, naming the host.
    prelude = OPERATIONS["list_vms"].script
    assert "'HvIntegration.HyperVModuleMissing'" in prelude
    assert "Microsoft.PowerShell.Core\\Import-Module -Name 'Hyper-V'" in prelude
    assert "$env:COMPUTERNAME" in prelude


def _psrp_target(state: Path, *extra: str) -> PSRPTarget:
    arguments = ("-m", "hvintegration.testing.psrp_server", "--state", os.fspath(state), *extra)
    return PSRPTarget("localhost", via="process", executable=sys.executable, arguments=arguments)


@pytest.mark.parametrize(
    ("language", "error_id"),
    [
        # A JEA endpoint: PowerShell refuses any script.
        ("NoLanguage", "ScriptsNotAllowed"),
        ("RestrictedLanguage", "ParameterDeclarationNotSupportedInDataSection"),
        # The prelude's own check.
        ("ConstrainedLanguage", "HvIntegration.LanguageModeUnsupported"),
    ],
)
async def test_psrp_endpoints_that_are_not_full_language_are_a_specific_error(
    tmp_path: Path, language: str, error_id: str
) -> None:
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    async with _psrp_target(state, "--language-mode", language).open() as transport:
        with pytest.raises(UnsupportedPowerShellError) as caught:
            await transport.run_operation(LIST_VMS, ALL, timeout=20)
    assert caught.value.error_id.split(",")[0] == error_id
    assert "FullLanguage" in str(caught.value)
    assert "Microsoft.PowerShell" in str(caught.value)


async def test_psrp_to_powershell_7_on_windows_server_2016_says_what_to_use(
    tmp_path: Path,
) -> None:
    state = tmp_path / "host.json"
    save_host(SimulatedHost(), state)
    target = _psrp_target(state, "--edition", "Core", "--os-build", "14393")
    async with target.open() as transport:
        with pytest.raises(
            UnsupportedPowerShellError, match=r"configuration=Microsoft\.PowerShell"
        ):
            await transport.run_operation(GET_INTEGRATION_SERVICES, ALL, timeout=20)


def _walk(node: tree_sitter.Node) -> list[tree_sitter.Node]:
    found = [node]
    for child in node.children:
        found.extend(_walk(child))
    return found


def _command_arguments(text: str) -> list[tuple[str, str]]:
    """(command name, its arguments' text) for every named command."""
    source = text.encode("utf-8")
    calls = []
    for node in _walk(_PARSER.parse(source).root_node):
        if node.type != "command":
            continue
        names = [child for child in node.children if child.type == "command_name"]
        if names:
            name = source[names[0].start_byte : names[0].end_byte].decode()
            calls.append((name, source[names[0].end_byte : node.end_byte].decode()))
    return calls


def test_the_loop_parses_requests_without_a_cmdlet() -> None:
    # Module logging records a cmdlet's bound parameters (about_Logging_Windows);
    # the request line carries the PowerShell Direct password.
    calls = _command_arguments(RUNNER)
    assert not [name for name, _ in calls if name.endswith("ConvertFrom-Json")]
    for name, arguments in calls:
        if "\\" in name:  # a cmdlet
            for variable in ("$line", "$request", "$parameters", "$Text"):
                assert variable.lower() not in arguments.lower(), (name, arguments)


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_the_password_never_reaches_a_cmdlet(name: str) -> None:
    for command, arguments in _command_arguments(OPERATIONS[name].script):
        if "\\" in command:
            assert "$password" not in arguments.lower(), (command, arguments)
            assert "$secret" not in arguments.lower(), (command, arguments)


async def test_a_host_with_powercli_runs_the_qualified_hyperv_cmdlets(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    with peer.edit() as sim:
        sim.powercli = True
    async with peer.open_transport() as transport:
        result = await transport.run_operation(LIST_VMS, ALL, timeout=10)
    assert [vm["Name"] for vm in result.output] == ["demovm"]
    with peer.edit() as sim:
        assert sim.powercli  # kept in the state file


def test_the_simulated_powercli_host_refuses_an_unqualified_get_vm() -> None:
    assert _unqualified_get_vm("$all = @(Get-VM)")
    assert _unqualified_get_vm("Get-VM | Microsoft.PowerShell.Core\\Where-Object { $_ }")
    assert not _unqualified_get_vm("$all = @(Hyper-V\\Get-VM)\n# Get-VM in a comment")
    assert not _unqualified_get_vm("Hyper-V\\Get-VMIntegrationService -VM $m")
    for operation in OPERATIONS.values():
        assert not _unqualified_get_vm(operation.script), operation.name
    record = powercli_get_vm_record()
    assert record.error_id == (
        "Core_BaseCmdlet_NotConnectedError,VMware.VimAutomation.ViCore.Cmdlets.Commands.GetVM"
    )
    assert record.message.startswith("You are not currently connected to any servers.")
