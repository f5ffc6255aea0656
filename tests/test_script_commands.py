"""Every command a shipped script invokes is one we know, called the way
Windows PowerShell 5.1 accepts it.

A command resolves to a function defined in the same text (the script, the
prelude placed into it, or the session loop), or to a module-qualified cmdlet
in :data:`CMDLETS`, the table of the cmdlets we call with the parameters
Windows PowerShell 5.1 accepts, each from the vendor reference cited beside
it. The rule is strict on purpose: every cmdlet is module-qualified, not only
the Hyper-V ones, because a qualified name never resolves to another module's
command of the same name (VMware PowerCLI exports ``Get-VM``), nor to an alias
or function a profile defined. Parameters are written in full, never
abbreviated, so the table can check them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import resources

import attrs
import pytest
import tree_sitter
import tree_sitter_powershell

from hvintegration.operations import OPERATIONS
from hvintegration.transport._powershell_wire import BOOTSTRAP, RUNNER

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))

# about_CommonParameters (Windows PowerShell 5.1):
# https://learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_commonparameters?view=powershell-5.1
COMMON = frozenset(
    {
        "Debug",
        "ErrorAction",
        "ErrorVariable",
        "InformationAction",
        "InformationVariable",
        "OutBuffer",
        "OutVariable",
        "PipelineVariable",
        "Verbose",
        "WarningAction",
        "WarningVariable",
        "WhatIf",
        "Confirm",
    }
)
# Common parameters PowerShell 7 added.
COMMON_PS7 = frozenset({"ProgressAction"})


@attrs.frozen
class Cmdlet:
    """A cmdlet: the parameters 5.1 has, and those only PowerShell 7 has."""

    parameters: frozenset[str]
    ps7_only: frozenset[str] = frozenset()


def _cmdlet(parameters: str, ps7_only: str = "") -> Cmdlet:
    return Cmdlet(frozenset(parameters.split()), frozenset(ps7_only.split()))


CMDLETS: Mapping[str, Cmdlet] = {
    # https://learn.microsoft.com/powershell/module/hyper-v/get-vm?view=windowsserver2016-ps
    "Hyper-V\\Get-VM": _cmdlet("Name Id ComputerName Credential CimSession ClusterObject"),
    # https://learn.microsoft.com/powershell/module/hyper-v/get-vmintegrationservice?view=windowsserver2016-ps
    "Hyper-V\\Get-VMIntegrationService": _cmdlet(
        "VM VMName Name ComputerName Credential CimSession VMSnapshot"
    ),
    # https://learn.microsoft.com/powershell/module/hyper-v/enable-vmintegrationservice?view=windowsserver2016-ps
    "Hyper-V\\Enable-VMIntegrationService": _cmdlet(
        "VMIntegrationService VM VMName Name Passthru ComputerName Credential CimSession"
    ),
    # https://learn.microsoft.com/powershell/module/hyper-v/disable-vmintegrationservice?view=windowsserver2016-ps
    "Hyper-V\\Disable-VMIntegrationService": _cmdlet(
        "VMIntegrationService VM VMName Name Passthru ComputerName Credential CimSession"
    ),
    # https://learn.microsoft.com/powershell/module/hyper-v/copy-vmfile?view=windowsserver2016-ps
    "Hyper-V\\Copy-VMFile": _cmdlet(
        "VM Name VMId SourcePath DestinationPath FileSource CreateFullPath Force AsJob "
        "Passthru ComputerName Credential CimSession"
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.core/import-module?view=powershell-5.1
    "Microsoft.PowerShell.Core\\Import-Module": _cmdlet(
        "Name FullyQualifiedName Assembly ModuleInfo Global Prefix Function Cmdlet Variable "
        "Alias Force PassThru AsCustomObject MinimumVersion MaximumVersion RequiredVersion "
        "ArgumentList DisableNameChecking NoClobber Scope PSSession CimSession CimResourceUri "
        "CimNamespace",
        "SkipEditionCheck UseWindowsPowerShell",
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.core/get-command?view=powershell-5.1
    "Microsoft.PowerShell.Core\\Get-Command": _cmdlet(
        "Name Verb Noun Module FullyQualifiedModule CommandType TotalCount Syntax "
        "ShowCommandInfo ArgumentList All ListImported ParameterName ParameterType",
        "UseFuzzyMatching FuzzyMinimumDistance UseAbbreviationExpansion",
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.core/invoke-command?view=powershell-5.1
    "Microsoft.PowerShell.Core\\Invoke-Command": _cmdlet(
        "ScriptBlock ArgumentList InputObject NoNewScope ComputerName Credential Port UseSSL "
        "ConfigurationName ApplicationName ThrottleLimit AsJob InDisconnectedSession "
        "SessionName HideComputerName JobName FilePath Session ConnectionUri AllowRedirection "
        "SessionOption Authentication EnableNetworkAccess CertificateThumbprint VMId VMName "
        "ContainerId RunAsAdministrator",
        "HostName UserName KeyFilePath SSHTransport SSHConnection Subsystem RemoteDebug "
        "Options ConnectingTimeout",
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.core/where-object?view=powershell-5.1
    "Microsoft.PowerShell.Core\\Where-Object": _cmdlet(
        "FilterScript InputObject Property Value EQ CEQ NE CNE GT CGT LT CLT GE CGE LE CLE "
        "Like CLike NotLike CNotLike Match CMatch NotMatch CNotMatch Contains CContains "
        "NotContains CNotContains In CIn NotIn CNotIn Is IsNot",
        "Not",
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.core/foreach-object?view=powershell-5.1
    "Microsoft.PowerShell.Core\\ForEach-Object": _cmdlet(
        "Process Begin End RemainingScripts InputObject MemberName ArgumentList",
        "Parallel ThrottleLimit TimeoutSeconds AsJob UseNewRunspace",
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/select-object?view=powershell-5.1
    "Microsoft.PowerShell.Utility\\Select-Object": _cmdlet(
        "Property ExcludeProperty ExpandProperty Unique Last First Skip SkipLast Wait Index "
        "InputObject",
        "SkipIndex CaseInsensitive",
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/write-error?view=powershell-5.1
    "Microsoft.PowerShell.Utility\\Write-Error": _cmdlet(
        "Message Exception ErrorRecord Category ErrorId TargetObject RecommendedAction "
        "CategoryActivity CategoryReason CategoryTargetName CategoryTargetType"
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/convertto-json?view=powershell-5.1
    "Microsoft.PowerShell.Utility\\ConvertTo-Json": _cmdlet(
        "InputObject Depth Compress", "EnumsAsStrings AsArray EscapeHandling"
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/convertfrom-json?view=powershell-5.1
    # (listed to refuse its PowerShell 7 parameters; the scripts no longer call it)
    "Microsoft.PowerShell.Utility\\ConvertFrom-Json": _cmdlet(
        "InputObject", "AsHashtable Depth NoEnumerate DateKind"
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-service?view=powershell-5.1
    "Microsoft.PowerShell.Management\\Get-Service": _cmdlet(
        "Name DisplayName Include Exclude InputObject DependentServices RequiredServices "
        "ComputerName"
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/set-service?view=powershell-5.1
    "Microsoft.PowerShell.Management\\Set-Service": _cmdlet(
        "Name InputObject DisplayName Description StartupType Status ComputerName PassThru",
        "Credential SecurityDescriptorSddl Force",
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/test-path?view=powershell-5.1
    "Microsoft.PowerShell.Management\\Test-Path": _cmdlet(
        "Path LiteralPath Filter Include Exclude PathType IsValid Credential OlderThan NewerThan"
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-item?view=powershell-5.1
    "Microsoft.PowerShell.Management\\Get-Item": _cmdlet(
        "Path LiteralPath Filter Include Exclude Force Credential Stream"
    ),
}
"""The cmdlets the scripts may call, by module-qualified name."""


def _text(node: tree_sitter.Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8")


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def command_problems(text: str, *, defined_elsewhere: frozenset[str] = frozenset()) -> list[str]:
    """Every command in ``text`` that is not a known function or cmdlet call.

    Args:
        text: A whole script as PowerShell receives it.
        defined_elsewhere: Functions the script may call that another text
            defines (the session loop's, for the loop's own helpers).

    Returns:
        One line per problem; empty when every command checks out.
    """
    source = text.encode("utf-8")
    root = _PARSER.parse(source).root_node
    functions = {
        _text(child, source).casefold()
        for node in _walk(root)
        if node.type == "function_statement"
        for child in node.children
        if child.type == "function_name"
    } | {name.casefold() for name in defined_elsewhere}
    known = {name.casefold(): (name, cmdlet) for name, cmdlet in CMDLETS.items()}
    problems = []
    for node in _walk(root):
        if node.type != "command":
            continue
        names = [child for child in node.children if child.type == "command_name"]
        if not names:
            continue  # `& $block`: a script block the script made itself
        name = _text(names[0], source)
        line = names[0].start_point[0] + 1
        if name.casefold() in functions:
            continue
        if "\\" not in name:
            problems.append(f"line {line}: {name} is neither a function here nor module-qualified")
            continue
        if name.casefold() not in known:
            problems.append(f"line {line}: {name} is not in the table of cmdlets we call")
            continue
        spelled, cmdlet = known[name.casefold()]
        parameters = {p.casefold() for p in cmdlet.parameters | COMMON}
        newer = {p.casefold() for p in cmdlet.ps7_only | COMMON_PS7}
        # Its own parameters only, not those of commands in a script block
        # argument.
        elements = [
            element
            for child in node.children
            if child.type == "command_elements"
            for element in child.children
            if element.type == "command_parameter"
        ]
        for element in elements:
            parameter = _text(element, source).lstrip("-").rstrip(":")
            if parameter.casefold() in parameters:
                continue
            where = f"line {element.start_point[0] + 1}: {spelled} -{parameter}"
            if parameter.casefold() in newer:
                problems.append(f"{where} exists only in PowerShell 7")
            else:
                problems.append(f"{where} is not a parameter of it in Windows PowerShell 5.1")
    return problems


def _runner_functions() -> frozenset[str]:
    source = RUNNER.encode("utf-8")
    root = _PARSER.parse(source).root_node
    return frozenset(
        _text(child, source)
        for node in _walk(root)
        if node.type == "function_statement"
        for child in node.children
        if child.type == "function_name"
    )


def _texts() -> Iterator[tuple[str, str]]:
    for name, operation in sorted(OPERATIONS.items()):
        yield name, operation.script
    yield "bootstrap", BOOTSTRAP
    yield "runner", RUNNER


def test_every_operation_and_the_loop_are_checked() -> None:
    names = {name for name, _ in _texts()}
    assert set(OPERATIONS) | {"bootstrap", "runner"} == names
    folder = resources.files("hvintegration.operations").joinpath("scripts")
    shipped = {entry.name for entry in folder.iterdir() if entry.name.endswith(".ps1")}
    assert shipped == {f"{name}.ps1" for name in OPERATIONS} | {
        "_bootstrap.ps1",
        "_prelude.ps1",
        "_runner.ps1",
    }


@pytest.mark.parametrize(("name", "text"), list(_texts()), ids=lambda v: str(v)[:30])
def test_every_command_resolves_with_known_parameters(name: str, text: str) -> None:
    assert command_problems(text) == [], name


def test_every_hyperv_cmdlet_call_names_its_module() -> None:
    called = set()
    for _, text in _texts():
        source = text.encode("utf-8")
        for node in _walk(_PARSER.parse(source).root_node):
            if node.type == "command_name":
                called.add(_text(node, source))
    hyperv = {name for name in called if "-VM" in name}
    assert hyperv == {
        "Hyper-V\\Get-VM",
        "Hyper-V\\Get-VMIntegrationService",
        "Hyper-V\\Enable-VMIntegrationService",
        "Hyper-V\\Disable-VMIntegrationService",
        "Hyper-V\\Copy-VMFile",
    }
    # The host operations load the module explicitly before using it.
    for operation in OPERATIONS.values():
        if operation.side == "host":
            body = operation.script.split("function Assert-HvGuestServiceName", 1)[1]
            assert body.index("Import-HvHyperV") < body.index("Hyper-V\\")


_PRELUDE_FUNCTIONS = frozenset({"Write-HvError"})


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        ("Get-VM", "Get-VM is neither a function here nor module-qualified"),
        ("Get-Service -Name x", "Get-Service is neither a function here nor module-qualified"),
        ("VMware.VimAutomation.Core\\Get-VM", "is not in the table of cmdlets we call"),
        ("Hyper-V\\Get-VM -VMName x", "Get-VM -VMName is not a parameter of it"),
        ("Hyper-V\\Get-VM -Nam x", "Get-VM -Nam is not a parameter of it"),
        (
            "Microsoft.PowerShell.Utility\\ConvertFrom-Json -InputObject $l -AsHashtable",
            "ConvertFrom-Json -AsHashtable exists only in PowerShell 7",
        ),
        (
            "Microsoft.PowerShell.Utility\\ConvertFrom-Json -InputObject $l -Depth 5",
            "ConvertFrom-Json -Depth exists only in PowerShell 7",
        ),
        (
            "$a | Microsoft.PowerShell.Core\\ForEach-Object -Parallel { $_ }",
            "ForEach-Object -Parallel exists only in PowerShell 7",
        ),
        (
            "$x = Microsoft.PowerShell.Utility\\ConvertTo-Json -InputObject $e -AsArray",
            "ConvertTo-Json -AsArray exists only in PowerShell 7",
        ),
        ("Write-HvFailure -Failure $_", "Write-HvFailure is neither a function here"),
        ("function F { Get-Date }\nF", "Get-Date is neither a function here"),
    ],
)
def test_the_checker_catches_bad_commands(script: str, problem: str) -> None:
    problems = command_problems(script, defined_elsewhere=_PRELUDE_FUNCTIONS)
    assert any(problem in found for found in problems), problems


def test_the_checker_accepts_good_commands() -> None:
    script = (
        "function Get-HvThing { param($x) $x }\n"
        "Get-HvThing -x 1\n"
        "& $block @splat\n"
        "$all = @(Hyper-V\\Get-VM) | Microsoft.PowerShell.Core\\Where-Object { $_.Name -eq 'a' }\n"
        "Hyper-V\\Copy-VMFile -VM $m -SourcePath $s -DestinationPath $d -FileSource 'Host' "
        "-CreateFullPath:$true -Force:$false -ErrorAction 'Stop'\n"
        "Write-HvError -ErrorId 'x'\n"
    )
    assert command_problems(script, defined_elsewhere=_PRELUDE_FUNCTIONS) == []
    assert "Write-HvEnvelope" in _runner_functions()
