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

``&`` and ``.`` follow the same rule; beyond it the check refuses what would
hide a command or a parameter from it (a computed command name, splatting into
a command, text made into code outside the places :data:`COMPILED` lists, a
function that could shadow a cmdlet) and syntax only PowerShell 7 has:
:func:`command_problems` lists the rules.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from importlib import resources

import attrs
import pytest
import tree_sitter
import tree_sitter_powershell

from hvintegration.operations import OPERATIONS
from hvintegration.operations._psrp_output import PSRP_OUTPUT
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
    # https://learn.microsoft.com/powershell/module/hyper-v/get-vmhost?view=windowsserver2016-ps
    "Hyper-V\\Get-VMHost": _cmdlet("ComputerName Credential CimSession"),
    # https://learn.microsoft.com/powershell/module/cimcmdlets/get-ciminstance?view=powershell-5.1
    "CimCmdlets\\Get-CimInstance": _cmdlet(
        "ClassName Filter KeyOnly Namespace OperationTimeoutSec ComputerName CimSession "
        "InputObject ResourceUri Query QueryDialect Shallow Property"
    ),
    # https://learn.microsoft.com/powershell/module/cimcmdlets/get-cimassociatedinstance?view=powershell-5.1
    "CimCmdlets\\Get-CimAssociatedInstance": _cmdlet(
        "Association ResultClassName InputObject Namespace OperationTimeoutSec ResourceUri "
        "ComputerName CimSession KeyOnly"
    ),
    # https://learn.microsoft.com/powershell/module/cimcmdlets/invoke-cimmethod?view=powershell-5.1
    "CimCmdlets\\Invoke-CimMethod": _cmdlet(
        "ClassName CimClass Query QueryDialect InputObject ResourceUri Namespace MethodName "
        "Arguments ComputerName CimSession OperationTimeoutSec"
    ),
    # https://learn.microsoft.com/powershell/module/cimcmdlets/register-cimindicationevent?view=powershell-5.1
    "CimCmdlets\\Register-CimIndicationEvent": _cmdlet(
        "ClassName Query QueryDialect SourceIdentifier Action Namespace OperationTimeoutSec "
        "ComputerName CimSession MessageData SupportEvent Forward MaxTriggerCount"
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/wait-event?view=powershell-5.1
    "Microsoft.PowerShell.Utility\\Wait-Event": _cmdlet("SourceIdentifier Timeout"),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/unregister-event?view=powershell-5.1
    "Microsoft.PowerShell.Utility\\Unregister-Event": _cmdlet(
        "SourceIdentifier SubscriptionId Force"
    ),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/remove-event?view=powershell-5.1
    "Microsoft.PowerShell.Utility\\Remove-Event": _cmdlet("SourceIdentifier EventIdentifier"),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/start-sleep?view=powershell-5.1
    "Microsoft.PowerShell.Utility\\Start-Sleep": _cmdlet("Seconds Milliseconds", "Duration"),
    # https://learn.microsoft.com/powershell/module/microsoft.powershell.management/get-itempropertyvalue?view=powershell-5.1
    "Microsoft.PowerShell.Management\\Get-ItemPropertyValue": _cmdlet(
        "Path LiteralPath Name Filter Include Exclude Credential"
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


COMPILED: Mapping[str, frozenset[str]] = {
    # The bootstrap runs the session loop it reads from stdin: _runner.ps1,
    # checked below as "runner".
    "bootstrap": frozenset({"[scriptblock]::Create($hvRunner)"}),
    # The loop runs the script of each request: an operation's script, each
    # checked below under its own name.
    "runner": frozenset({"$shell.AddScript([string]$request['script'], $true)"}),
    # PowerShell Direct runs a guest operation's script inside the VM: one of
    # the operations, checked below under its own name.
    "invoke_in_vm": frozenset({"[scriptblock]::Create($InnerScript)"}),
}
"""Where a script may turn text into code, by script, as the call is written.

The check cannot see commands inside a string that becomes code, so each such
call is refused unless it is listed here, with the shipped text it runs (which
is checked on its own).
"""

# Methods that turn text into code or run a command by a name held in a
# value: [scriptblock]::Create (matched with its type below),
# $ExecutionContext.InvokeCommand.NewScriptBlock / InvokeScript, and
# [powershell]'s AddScript / AddCommand.
_CODE_METHODS = frozenset({"newscriptblock", "invokescript", "addscript", "addcommand"})
# Commands that run text as code.
_CODE_COMMANDS = frozenset({"invoke-expression", "iex"})
# Scopes a variable name may carry; `$script:block` is the same `$block`.
_SCOPES = frozenset({"global", "local", "script", "private", "using", "variable"})
# Drives whose "variables" are commands: `${function:Get-VM} = {...}` defines
# a function, `$alias:x` an alias, neither of which the check could follow.
_COMMAND_DRIVES = frozenset({"function", "alias"})
# Common parameters that set a variable named by their value.
_VARIABLE_PARAMETERS = frozenset(name.casefold() for name in COMMON if name.endswith("Variable"))
# The project's own functions are Verb-HvNoun. No cmdlet of Hyper-V (whose
# nouns start with VM or VHD) or of the Microsoft.PowerShell.* modules has a
# noun starting with Hv, so such a function never shadows one of them.
_OWN_FUNCTION = re.compile(r"[A-Za-z]+-Hv[A-Za-z0-9]+")
_HYPERV_NOUN = re.compile(r"[A-Za-z]+-(VM|VHD)[A-Za-z0-9]*", re.IGNORECASE)
# Syntax only PowerShell 7 has, found in the code with strings and comments
# blanked out. A `?` after whitespace that is not a command name (the `?`
# alias of Where-Object is refused as unqualified anyway) is the ternary
# operator; in a bare-word argument it is refused too, which costs nothing:
# quote the word.
_PS7_SYNTAX = (
    (re.compile(r"&&"), "the pipeline-chain operator &&"),
    (re.compile(r"\|\|"), "the pipeline-chain operator ||"),
    (re.compile(r"\?\?="), "the null-coalescing assignment ??="),
    (re.compile(r"\?\?(?!=)"), "the null-coalescing operator ??"),
    (re.compile(r"(?<!\?)\?\."), "the null-conditional member access ?."),
    (re.compile(r"(?<!\?)\?\["), "the null-conditional index ?[]"),
    (re.compile(r"(?<=\s)\?(?![?.\[])"), "the ternary operator ? :"),
)


def _text(node: tree_sitter.Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8")


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _line(node: tree_sitter.Node) -> int:
    return node.start_point[0] + 1


def _ancestor(node: tree_sitter.Node, kind: str) -> tree_sitter.Node | None:
    parent = node.parent
    while parent is not None and parent.type != kind:
        parent = parent.parent
    return parent


def _sole(node: tree_sitter.Node) -> tree_sitter.Node:
    """The expression ``node`` stands for, through the grammar's one-child
    layers (pipeline, unary_expression, ...) and parentheses."""
    while node.type not in ("script_block_expression", "invokation_expression"):
        named = node.named_children
        if len(named) != 1:
            break
        node = named[0]
    return node


def _member(node: tree_sitter.Node, source: bytes) -> str | None:
    """The member a call or member access names, casefolded; None when the
    name is computed (``$x.$name()``)."""
    for child in node.children:
        if child.type == "member_name":
            inner = child.named_children
            if len(inner) == 1 and inner[0].type == "simple_name":
                return _text(inner[0], source).casefold()
            if len(inner) == 1 and inner[0].type == "string_literal":
                literal = _literal_string(inner[0], source)
                return None if literal is None else literal.casefold()
            return None
    return None


def _is_scriptblock_create(node: tree_sitter.Node, source: bytes) -> bool:
    """``[scriptblock]::Create(...)`` (or the type's full name)."""
    first = node.named_children[0] if node.named_children else None
    return (
        node.type in ("invokation_expression", "member_access")
        and first is not None
        and first.type == "type_literal"
        and _text(first, source).strip("[] ").casefold().split(".")[-1] == "scriptblock"
        and _member(node, source) == "create"
    )


def _is_script_block(node: tree_sitter.Node, source: bytes) -> bool:
    """A script block literal, or one compiled by [scriptblock]::Create
    (whose text the check of code-making calls vouches for)."""
    value = _sole(node)
    return value.type == "script_block_expression" or _is_scriptblock_create(value, source)


def _literal_string(node: tree_sitter.Node, source: bytes) -> str | None:
    """The value of a quoted string with nothing expanded in it, else None."""
    inner = node.named_children
    if len(inner) != 1:
        return None
    text = _text(inner[0], source)
    if inner[0].type == "verbatim_string_characters":
        return text[1:-1].replace("''", "'")
    if inner[0].type == "expandable_string_literal" and not inner[0].named_children:
        body = text[1:-1]
        return None if "`" in body or "$" in body else body
    return None


def _variable(node: tree_sitter.Node, source: bytes) -> tuple[str, str]:
    """A variable's scope or drive (casefolded, '' for none) and its name
    (casefolded): ``$script:Block``, ``${block}`` and ``@block`` are all
    ``('', 'block')`` or ``('script', 'block')``."""
    name = _text(node, source).lstrip("$@")
    if name.startswith("{") and name.endswith("}"):
        name = name[1:-1]
    scope, colon, rest = name.partition(":")
    if colon:
        return scope.casefold(), rest.casefold()
    return "", name.casefold()


def _code(root: tree_sitter.Node, source: bytes) -> str:
    """The source with comments and string text blanked (the code inside a
    string's ``$(...)`` is kept), same length and lines."""
    code = bytearray(source)

    def blank(start: int, end: int) -> None:
        for i in range(start, end):
            if code[i] not in b"\r\n":
                code[i] = ord(" ")

    for node in _walk(root):  # outer before inner: a nested string is blanked after
        if node.type == "comment":
            blank(node.start_byte, node.end_byte)
        elif node.type == "string_literal":
            blank(node.start_byte, node.end_byte)
            kept = [n for n in _walk(node) if n.type == "sub_expression"]
            for part in kept:
                code[part.start_byte : part.end_byte] = source[part.start_byte : part.end_byte]
    return code.decode("latin-1")  # one character per byte: offsets stay put


def command_problems(
    text: str,
    *,
    defined_elsewhere: frozenset[str] = frozenset(),
    compiles: frozenset[str] = frozenset(),
) -> list[str]:
    """Every command in ``text`` that is not a known function or cmdlet call.

    Rules, beyond "a function defined here or a qualified cmdlet in the table
    with its 5.1 parameters":

    - ``& name`` and ``. name`` with a literal name (a bare word or a quoted
      string with nothing expanded) resolve exactly like a plain call.
    - ``&``/``.`` of anything computed is refused, except a script block: a
      literal one, ``([scriptblock]::Create(...))``, or a variable that the
      text only ever sets, with plain ``=``, to one of those two (no
      parameter, loop variable, ``-OutVariable`` or other write can put
      anything else in it).
    - Splatting (``@p``) is refused except into such a script block: there
      the keys bind to the script's own ``param()`` block, not to a cmdlet of
      the table; into a cmdlet or function its keys would go unchecked.
    - Text becomes code only at the calls listed in ``compiles`` (see
      :data:`COMPILED`); ``Invoke-Expression``/``iex``, other
      ``[scriptblock]::Create``, ``NewScriptBlock``, ``InvokeScript``,
      ``AddScript``, ``AddCommand``, a method called by a computed name,
      and the ``function:``/``alias:`` drives are refused.
    - A function is named Verb-HvNoun, so it never shadows a cmdlet.
    - PowerShell 7-only syntax and anything the grammar cannot parse are
      refused.

    Args:
        text: A whole script as PowerShell receives it.
        defined_elsewhere: Functions the script may call that another text
            defines (the session loop's, for the loop's own helpers).
        compiles: The calls, as written, that may turn text into code here.

    Returns:
        One line per problem; empty when every command checks out.
    """
    source = text.encode("utf-8")
    root = _PARSER.parse(source).root_node
    problems: list[str] = []

    # A parse error hides what the commands are; refuse rather than guess.
    for node in _walk(root):
        if node.type == "ERROR" or node.is_missing:
            problems.append(f"line {_line(node)}: cannot be parsed: {_text(node, source)!r}")

    code = _code(root, source)
    for pattern, syntax in _PS7_SYNTAX:
        for match in pattern.finditer(code):
            at = root.descendant_for_byte_range(match.start(), match.start() + 1)
            if syntax.startswith("the ternary") and at is not None and at.type == "command_name":
                continue
            line = code.count("\n", 0, match.start()) + 1
            problems.append(f"line {line}: {syntax} exists only in PowerShell 7")

    function_names = [
        child
        for node in _walk(root)
        if node.type == "function_statement"
        for child in node.children
        if child.type == "function_name"
    ]
    functions = {_text(name, source).casefold() for name in function_names}
    functions |= {name.casefold() for name in defined_elsewhere}
    known = {name.casefold(): (name, cmdlet) for name, cmdlet in CMDLETS.items()}
    short = {name.split("\\")[-1].casefold(): name for name in CMDLETS}
    for node in function_names:
        defined = _text(node, source)
        where = f"line {_line(node)}: function {defined}"
        if defined.casefold() in short:
            problems.append(f"{where} shadows the cmdlet {short[defined.casefold()]}")
        elif _HYPERV_NOUN.fullmatch(defined):
            problems.append(f"{where} shadows a Hyper-V cmdlet name")
        elif not _OWN_FUNCTION.fullmatch(defined):
            problems.append(f"{where} is not named Verb-HvNoun (it could shadow a cmdlet)")

    # Every variable by name, and the names that -OutVariable and its kin set.
    variables: dict[str, list[tree_sitter.Node]] = {}
    for node in _walk(root):
        if node.type != "variable":
            continue
        scope, name = _variable(node, source)
        if scope in _COMMAND_DRIVES:
            problems.append(
                f"line {_line(node)}: {_text(node, source)} reaches a command through "
                f"the {scope}: drive"
            )
        elif not scope or scope in _SCOPES:
            variables.setdefault(name, []).append(node)
    set_by_parameter = set()
    for node in _walk(root):
        if node.type != "command_elements":
            continue
        elements = [c for c in node.children if c.type != "command_argument_sep"]
        for element, value in itertools.pairwise(elements):
            parameter = _text(element, source).lstrip("-").rstrip(":").casefold()
            if element.type == "command_parameter" and parameter in _VARIABLE_PARAMETERS:
                set_by_parameter.add(_text(value, source).strip("'\"+").casefold())

    def script_block_variable(target: tree_sitter.Node) -> bool:
        """Whether ``target`` (a variable) only ever holds a script block."""
        _, name = _variable(target, source)
        if name in set_by_parameter:
            return False
        assigned = False
        for use in variables.get(name, []):
            path = use.parent
            if path is not None and path.type == "path_command_name" and len(path.children) == 1:
                continue  # `& $block` itself (not a use inside `& { ... }`)
            left = _ancestor(use, "left_assignment_expression")
            assignment = left.parent if left is not None else None
            if (
                left is None
                or assignment is None
                or _text(left, source).strip() != _text(use, source)
                or not any(
                    c.type == "assignement_operator" and _text(c, source) == "="
                    for c in assignment.children
                )
                or not _is_script_block(assignment.children[-1], source)
            ):
                return False
            assigned = True
        return assigned

    # Calls and member accesses that turn text into code.
    for node in _walk(root):
        if node.type not in ("invokation_expression", "member_access"):
            continue
        member = _member(node, source)
        if member is None:
            if node.type == "invokation_expression":
                problems.append(f"line {_line(node)}: a method called by a computed name")
            continue
        if member in _CODE_METHODS or _is_scriptblock_create(node, source):
            call = _text(node, source)
            if call not in compiles:
                problems.append(
                    f"line {_line(node)}: {call} makes code from text the check cannot see"
                )

    invokes_script_block: set[int] = set()  # command nodes, by id
    for node in _walk(root):
        if node.type != "command":
            continue
        plain = [child for child in node.children if child.type == "command_name"]
        computed = [child for child in node.children if child.type == "command_name_expr"]
        called: str | None  # None: the name is computed
        if plain:
            name_node = plain[0]
            called = _text(name_node, source)
        else:
            name_node = computed[0]
            called = None
            target = name_node.named_children[0] if name_node.named_children else name_node
            parts = target.named_children
            if target.type == "path_command_name" and [p.type for p in parts] == [
                "path_command_name_token"
            ]:
                called = _text(parts[0], source)  # & Get-VM
            elif target.type == "string_literal":
                called = _literal_string(target, source)  # & 'Get-VM'
            if called is None:
                if target.type == "path_command_name" and [p.type for p in parts] == ["variable"]:
                    ok = script_block_variable(parts[0])
                else:
                    ok = _is_script_block(target, source)
                if ok:
                    invokes_script_block.add(node.id)
                else:
                    problems.append(
                        f"line {_line(name_node)}: & or . of {_text(target, source)!r}, "
                        "which is neither a literal command name nor a script block "
                        "made here"
                    )
                continue
        line = _line(name_node)
        folded = called.casefold()
        if folded.split("\\")[-1] in _CODE_COMMANDS:
            problems.append(f"line {line}: {called} runs text as code the check cannot see")
            continue
        if folded in functions:
            continue
        if "\\" not in called:
            problems.append(
                f"line {line}: {called} is neither a function here nor module-qualified"
            )
            continue
        if folded not in known:
            problems.append(f"line {line}: {called} is not in the table of cmdlets we call")
            continue
        spelled, cmdlet = known[folded]
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
            where = f"line {_line(element)}: {spelled} -{parameter}"
            if parameter.casefold() in newer:
                problems.append(f"{where} exists only in PowerShell 7")
            else:
                problems.append(f"{where} is not a parameter of it in Windows PowerShell 5.1")

    # Splatting: its keys are parameters the table cannot check.
    for uses in variables.values():
        for use in uses:
            if not _text(use, source).startswith("@"):
                continue
            command = _ancestor(use, "command")
            if command is None or command.id not in invokes_script_block:
                problems.append(
                    f"line {_line(use)}: splatting {_text(use, source)} into a command; "
                    "write its parameters out so they can be checked"
                )
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
    yield "psrp output", PSRP_OUTPUT


def test_every_operation_and_the_loop_are_checked() -> None:
    names = {name for name, _ in _texts()}
    assert set(OPERATIONS) | {"bootstrap", "runner", "psrp output"} == names
    folder = resources.files("hvintegration.operations").joinpath("scripts")
    shipped = {entry.name for entry in folder.iterdir() if entry.name.endswith(".ps1")}
    assert shipped == {f"{name}.ps1" for name in OPERATIONS} | {
        "_bootstrap.ps1",
        "_prelude.ps1",
        "_runner.ps1",
        "_psrp_output.ps1",
        "_wire_values.ps1",
        "_kvp_items.ps1",
    }


@pytest.mark.parametrize(("name", "text"), list(_texts()), ids=lambda v: str(v)[:30])
def test_every_command_resolves_with_known_parameters(name: str, text: str) -> None:
    assert command_problems(text, compiles=COMPILED.get(name, frozenset())) == [], name


def test_every_place_that_makes_code_from_text_is_still_there() -> None:
    texts = dict(_texts())
    for name, calls in COMPILED.items():
        for call in calls:
            assert call in texts[name], (name, call)


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
        "Hyper-V\\Get-VMHost",
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


@pytest.mark.parametrize(
    ("script", "problem"),
    [
        # & and . with a literal name resolve like a plain call.
        ("& Get-VM", "Get-VM is neither a function here nor module-qualified"),
        (". Get-VM", "Get-VM is neither a function here nor module-qualified"),
        ("& 'Get-VM'", "Get-VM is neither a function here nor module-qualified"),
        ('& "Get-VM"', "Get-VM is neither a function here nor module-qualified"),
        ("$x | & Hyper-V\\Get-VM -VMName x", "Get-VM -VMName is not a parameter of it"),
        ("& 'Hyper-V\\Get-VM' -Nam x", "Get-VM -Nam is not a parameter of it"),
        (
            ". Microsoft.PowerShell.Utility\\ConvertTo-Json -InputObject $e -AsArray",
            "ConvertTo-Json -AsArray exists only in PowerShell 7",
        ),
        # & and . of anything computed, unless it is a script block made here.
        ("& ('Get'+'-VM')", "neither a literal command name nor a script block"),
        ('& "Get-$noun"', "neither a literal command name nor a script block"),
        ("& $name", "neither a literal command name nor a script block"),
        ("& $x.Command", "neither a literal command name nor a script block"),
        ("$b = 'Get-VM'\n& $b", "neither a literal command name nor a script block"),
        ("$b = { 1 }\n$b = 'Get-VM'\n. $b", "neither a literal command name nor a script block"),
        ("$b = { 1 }\n$script:b = 'Get-VM'\n& $b", "neither a literal command name nor"),
        ("$b = { 1 }\n$b += 'x'\n& $b", "neither a literal command name nor a script block"),
        (
            "function Invoke-HvBlock {\nparam($b)\n$b = { 1 }\n& $b\n}",
            "neither a literal command name nor a script block",
        ),
        (
            "$b = { 1 }\nHyper-V\\Get-VM -OutVariable b\n& $b",
            "neither a literal command name nor a script block",
        ),
        ("foreach ($b in $all) { & $b }", "neither a literal command name nor a script block"),
        (
            "$b = { 1 }\n& { $script:b = 'Get-VM' }\n& $b",
            "neither a literal command name nor a script block",
        ),
        # Splatting, whose keys the table cannot check.
        ("$p = @{ VMName = 'x' }\nHyper-V\\Get-VM @p", "splatting @p into a command"),
        ("Write-HvError @p", "splatting @p into a command"),
        # Text made into code.
        ("Invoke-Expression 'Get-VM'", "Invoke-Expression runs text as code"),
        ("iex 'Get-VM'", "iex runs text as code"),
        (
            "Microsoft.PowerShell.Utility\\Invoke-Expression -Command 'Get-VM'",
            "Invoke-Expression runs text as code",
        ),
        ("& ([scriptblock]::Create('Get-VM'))", "makes code from text the check cannot see"),
        (
            "$b = [System.Management.Automation.ScriptBlock]::Create($t)\n& $b",
            "makes code from text the check cannot see",
        ),
        ("$f = [scriptblock]::Create\n$f.Invoke('Get-VM')", "makes code from text"),
        (
            "$b = $ExecutionContext.InvokeCommand.NewScriptBlock('Get-VM')",
            "makes code from text the check cannot see",
        ),
        ("$ExecutionContext.InvokeCommand.InvokeScript('Get-VM')", "makes code from text"),
        ("[powershell]::Create().AddScript('Get-VM').Invoke()", "makes code from text"),
        ("[powershell]::Create().AddCommand('Get-VM').Invoke()", "makes code from text"),
        ("$shell.$method('Get-VM')", "a method called by a computed name"),
        ("${function:Get-HvThing} = { 1 }", "reaches a command through the function: drive"),
        ("$alias:gvm = 'Get-VM'", "reaches a command through the alias: drive"),
        # Functions that shadow a cmdlet.
        ("function Get-VM { 1 }\nGet-VM", "function Get-VM shadows the cmdlet Hyper-V\\Get-VM"),
        (
            "function get-service { 1 }",
            "shadows the cmdlet Microsoft.PowerShell.Management\\Get-Service",
        ),
        ("function Remove-VMSnapshot { 1 }", "shadows a Hyper-V cmdlet name"),
        ("function Get-VHD { 1 }", "shadows a Hyper-V cmdlet name"),
        ("function Get-Date { 1 }", "function Get-Date is not named Verb-HvNoun"),
        # PowerShell 7-only syntax, refused by name.
        ("Write-HvError && Write-HvError", "the pipeline-chain operator && exists only in"),
        ("Write-HvError || Write-HvError", "the pipeline-chain operator || exists only in"),
        ("$a = $b ?? 1", "the null-coalescing operator ?? exists only in PowerShell 7"),
        ("$a ??= 1", "the null-coalescing assignment ??= exists only in PowerShell 7"),
        ("$a = ${b}?.Name", "the null-conditional member access ?. exists only in"),
        ("$a = ${b}?[0]", "the null-conditional index ?[] exists only in PowerShell 7"),
        ("$a = $b ? 1 : 2", "the ternary operator ? : exists only in PowerShell 7"),
        ('$a = "x $($b ?? 1)"', "the null-coalescing operator ?? exists only in"),
        # What the grammar cannot parse cannot be checked.
        ("$a = (", "cannot be parsed"),
    ],
)
def test_the_checker_catches_unsafe_invocations(script: str, problem: str) -> None:
    problems = command_problems(script, defined_elsewhere=_PRELUDE_FUNCTIONS)
    assert any(problem in found for found in problems), problems


def test_the_checker_accepts_good_commands() -> None:
    script = (
        "function Get-HvThing {\n    param($x)\n    $x\n}\n"
        "Get-HvThing -x 1\n"
        "& Get-HvThing -x 1\n"
        ". 'Hyper-V\\Get-VM' -Name 'a'\n"
        "$block = {\n    param($x)\n    $x\n}\n"
        "& $block @splat\n"
        "& { 1 }\n"
        "$compiled = [scriptblock]::Create($Shipped)\n"
        ". $compiled\n"
        "$all = @(Hyper-V\\Get-VM) | Microsoft.PowerShell.Core\\Where-Object { $_.Name -eq 'a' }\n"
        "Hyper-V\\Copy-VMFile -VM $m -SourcePath $s -DestinationPath $d -FileSource 'Host' "
        "-CreateFullPath:$true -Force:$false -ErrorAction 'Stop'\n"
        "Write-HvError -ErrorId 'x'\n"
        "$text = 'a && b || c ?? d ?. e ? f : g' + \"$($all.Count) ?? ok\"  # x && y ?? z\n"
        "if ($a -and -not $b) { $c = @{ Name = 'x' } }\n"
    )
    compiles = frozenset({"[scriptblock]::Create($Shipped)"})
    problems = command_problems(script, defined_elsewhere=_PRELUDE_FUNCTIONS, compiles=compiles)
    assert problems == []
    assert "Write-HvEnvelope" in _runner_functions()
