"""No shipped script asks Hyper-V (or CIM/WMI) for state inside a loop.

One round trip per batch means little only if the host does little in it:
an operation reads with one ``Hyper-V\\Get-VM`` and one
``Hyper-V\\Get-VMIntegrationService`` for all the VMs it needs, indexes the
answer, and loops over the index. A read cmdlet inside a loop over changes,
names or VMs makes the host work per item: for 50 VMs and 6 changes each,
the first ``set_integration_services.ps1`` ran 600 ``Get-VMIntegrationService``
calls in one invocation.

:func:`loop_reads` parses a script with tree-sitter-powershell and reports
every read cmdlet that runs once per item: in the body or condition of
``foreach``/``for``/``while``/``do``, in a script block that runs per
pipeline object (an argument of ``ForEach-Object``, ``Where-Object`` or any
command fed by a pipeline, a calculated property included) or per element
(``.Where({})``; tree-sitter-powershell cannot parse ``.ForEach({})``, so
the command check refuses it already), and calls, in such places, of a function
of the same text that reads (directly or through another function).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import tree_sitter
import tree_sitter_powershell

from hvintegration.operations import OPERATIONS
from hvintegration.transport._powershell_wire import BOOTSTRAP, RUNNER

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))

# Commands that read host state: every Get- cmdlet of the Hyper-V module
# (Get-VM, Get-VMIntegrationService, Get-VMNetworkAdapter, ...), and the
# CIM/WMI readers, by whichever module name they are qualified with.
_CIM_READERS = frozenset(
    {"get-ciminstance", "get-cimassociatedinstance", "get-wmiobject", "get-vm"}
)
_HYPERV_READ = re.compile(r"get-(vm|vhd)[a-z0-9]*")
# Commands that run their script-block arguments once per input object
# even without a pipeline in front (-InputObject), and their aliases.
_PER_ITEM_COMMANDS = frozenset(
    {"foreach-object", "where-object", "%", "?", "foreach", "where", "select-object", "sort-object"}
)
_LOOP_STATEMENTS = frozenset({"for_statement", "while_statement", "do_statement"})


def _text(node: tree_sitter.Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8")


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _command_name(node: tree_sitter.Node, source: bytes) -> str | None:
    for child in node.children:
        if child.type == "command_name":
            return _text(child, source)
    return None


def is_read_cmdlet(name: str) -> bool:
    """Whether a command name (qualified or not) reads host state.

    Example:
        >>> is_read_cmdlet("Hyper-V\\\\Get-VMIntegrationService"), is_read_cmdlet("Get-Service")
        (True, False)
    """
    module, _, short = name.casefold().rpartition("\\")
    return (
        short in _CIM_READERS
        or bool(_HYPERV_READ.fullmatch(short))
        or (module == "hyper-v" and short.startswith("get-"))
    )


def _runs_per_item(node: tree_sitter.Node, source: bytes) -> str | None:
    """Why ``node`` (a statement block or script block) runs once per item; None if it does not."""
    parent = node.parent
    if node.type == "statement_block" and parent is not None:
        if parent.type == "foreach_statement":
            return "the body of a foreach loop"
        if parent.type in _LOOP_STATEMENTS:
            return f"the body of a {parent.type.split('_')[0]} loop"
    if node.type in ("while_condition", "for_condition", "for_iterator"):
        return "a loop condition"
    if node.type != "script_block_expression":
        return None
    # A script block as an argument: of a command fed by a pipeline or one
    # that runs it per object, or of a .ForEach()/.Where() method.
    up = parent
    while up is not None and up.type not in ("command", "invokation_expression", "statement_block"):
        up = up.parent
    if up is None or up.type == "statement_block":
        return None
    if up.type == "invokation_expression":
        member = next((c for c in up.children if c.type == "member_name"), None)
        if member is not None and _text(member, source).casefold() in ("foreach", "where"):
            return f"a script block of .{_text(member, source)}()"
        return None
    name = (_command_name(up, source) or "").casefold().rpartition("\\")[2]
    chain = up.parent
    fed = chain is not None and chain.type == "pipeline_chain" and chain.children[0] != up
    if name in _PER_ITEM_COMMANDS or fed:
        return f"a script block {_command_name(up, source)} runs per pipeline object"
    return None


def _loop_context(node: tree_sitter.Node, source: bytes) -> str | None:
    up = node.parent
    while up is not None:
        if up.type == "function_statement":
            return None  # a function body runs where it is called from
        why = _runs_per_item(up, source)
        if why is not None:
            return why
        up = up.parent
    return None


def loop_reads(text: str) -> list[str]:
    """Every read of host state in ``text`` that runs once per loop item.

    Args:
        text: A whole script as PowerShell receives it.

    Returns:
        One line per problem: where, what, and which loop; empty when none.
    """
    source = text.encode("utf-8")
    root = _PARSER.parse(source).root_node
    # Functions that read, directly or through another function of the text.
    bodies: dict[str, tree_sitter.Node] = {}
    for node in _walk(root):
        if node.type == "function_statement":
            name = next(c for c in node.children if c.type == "function_name")
            bodies[_text(name, source).casefold()] = node
    calls = {
        name: {
            (_command_name(c, source) or "").casefold() for c in _walk(body) if c.type == "command"
        }
        for name, body in bodies.items()
    }
    reading = {name for name, called in calls.items() if any(is_read_cmdlet(c) for c in called)}
    grew = True
    while grew:
        grew = False
        for name, called in calls.items():
            if name not in reading and called & reading:
                reading.add(name)
                grew = True
    problems = []
    for node in _walk(root):
        if node.type != "command":
            continue
        called = _command_name(node, source)
        if called is None:
            continue
        if not is_read_cmdlet(called) and called.casefold() not in reading:
            continue
        why = _loop_context(node, source)
        if why is not None:
            how = "" if is_read_cmdlet(called) else " (a function that reads host state)"
            problems.append(f"line {node.start_point[0] + 1}: {called}{how} inside {why}")
    return problems


SCRIPTS = {
    "bootstrap": BOOTSTRAP,
    "runner": RUNNER,
    **{name: operation.script for name, operation in OPERATIONS.items()},
}


# Scripts known to break the rule, each with what it does; strict, so that
# the entry must go once the script is fixed. None today.
KNOWN: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN[name])] if name in KNOWN else [],
        )
        for name in sorted(SCRIPTS)
    ],
)
def test_no_shipped_script_reads_host_state_inside_a_loop(name: str) -> None:
    assert loop_reads(SCRIPTS[name]) == []


def test_every_host_operation_is_checked() -> None:
    # The check must see the scripts that talk to Hyper-V at all.
    reads = [name for name, text in SCRIPTS.items() if "Hyper-V\\Get-VM" in text]
    assert {"list_vms", "get_integration_services", "set_integration_services"} <= set(reads)


# The shape of the first set_integration_services.ps1: per change, a scan
# of every VM and two Get-VMIntegrationService calls.
_PER_CHANGE = """
function Find-HvMachine {
    param([string] $Name)
    Hyper-V\\Get-VM | Microsoft.PowerShell.Core\\Where-Object { $_.Name -eq $Name }
}
$all = @(Hyper-V\\Get-VM)
for ($index = 0; $index -lt $Changes.Count; $index++) {
    $services = @(Hyper-V\\Get-VMIntegrationService -VM $all[$index])
    $after = @(Hyper-V\\Get-VMIntegrationService -VM $all[$index]) |
        Microsoft.PowerShell.Utility\\Select-Object -First 1
}
"""


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (
            _PER_CHANGE,
            [
                "line 8: Hyper-V\\Get-VMIntegrationService inside the body of a for loop",
                "line 9: Hyper-V\\Get-VMIntegrationService inside the body of a for loop",
            ],
        ),
        (
            "foreach ($name in $Names) { $vm = Hyper-V\\Get-VM -Name $name }",
            ["line 1: Hyper-V\\Get-VM inside the body of a foreach loop"],
        ),
        (
            "$Names | Microsoft.PowerShell.Core\\ForEach-Object { Hyper-V\\Get-VM -Name $_ }",
            [
                "line 1: Hyper-V\\Get-VM inside a script block "
                "Microsoft.PowerShell.Core\\ForEach-Object runs per pipeline object"
            ],
        ),
        (
            "while ($more) { $a = Get-CimInstance -ClassName Msvm_ComputerSystem }",
            ["line 1: Get-CimInstance inside the body of a while loop"],
        ),
        (
            # The first get_kvp_items.ps1: the host items of each VM through
            # its CIM associations.
            "foreach ($system in $systems) {\n"
            "    $settings = @(CimCmdlets\\Get-CimAssociatedInstance -InputObject $system)\n}",
            ["line 2: CimCmdlets\\Get-CimAssociatedInstance inside the body of a foreach loop"],
        ),
        (
            "do { $n = @(Hyper-V\\Get-VMNetworkAdapter -All) } while ($more)",
            ["line 1: Hyper-V\\Get-VMNetworkAdapter inside the body of a do loop"],
        ),
        (
            "$all | Microsoft.PowerShell.Utility\\Select-Object -Property @{\n"
            "    Name = 'Count'\n"
            "    Expression = { @(Hyper-V\\Get-VMIntegrationService -VM $_).Count } }",
            [
                "line 3: Hyper-V\\Get-VMIntegrationService inside a script block "
                "Microsoft.PowerShell.Utility\\Select-Object runs per pipeline object"
            ],
        ),
        (
            "function Get-HvOne {\n    param($Ref)\n    Hyper-V\\Get-VM -Id $Ref\n}\n"
            "function Get-HvTwo {\n    param($Ref)\n    Get-HvOne -Ref $Ref\n}\n"
            "foreach ($ref in $Refs) { Get-HvTwo -Ref $ref }",
            [
                "line 9: Get-HvTwo (a function that reads host state) "
                "inside the body of a foreach loop"
            ],
        ),
        (
            "$found = $Refs.Where({ @(Hyper-V\\Get-VM -Id $_).Count -eq 1 })",
            ["line 1: Hyper-V\\Get-VM inside a script block of .Where()"],
        ),
    ],
    ids=[
        "per-change",
        "foreach",
        "foreach-object",
        "cim-while",
        "cim-association",
        "do",
        "calculated",
        "via-function",
        "method",
    ],
)
def test_a_read_inside_a_loop_is_found(sample: str, expected: list[str]) -> None:
    assert loop_reads(sample) == expected


@pytest.mark.parametrize(
    "sample",
    [
        # Read once, loop over the answer: the collection of a foreach runs once.
        "foreach ($s in @(Hyper-V\\Get-VMIntegrationService -VM $all)) { $s.Name }",
        # The first command of a pipeline runs once.
        "Hyper-V\\Get-VM | Microsoft.PowerShell.Core\\ForEach-Object { $_.Name }",
        # A function that reads, called once; its own body is not a loop.
        "function Get-HvAll {\n    param()\n    Hyper-V\\Get-VM\n}\n$all = Get-HvAll",
        # A script block that runs once.
        "Microsoft.PowerShell.Core\\Invoke-Command -ScriptBlock { Hyper-V\\Get-VM }",
        # Other cmdlets inside loops are not host reads.
        "foreach ($n in $Name) { Microsoft.PowerShell.Management\\Get-Service -Name $n }",
    ],
    ids=["collection", "pipeline-head", "function-once", "invoke-once", "get-service"],
)
def test_reading_once_is_allowed(sample: str) -> None:
    assert loop_reads(sample) == []
