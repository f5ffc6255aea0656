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
``foreach``/``for``/``while``/``do``, in a clause of ``switch`` (which runs
per element of its value), in the body of a ``filter`` or a ``process``
block (per pipeline object; ``begin`` and ``end`` blocks run once), in a
script block that runs per pipeline object (an argument of
``ForEach-Object``, ``Where-Object`` or any command fed by a pipeline, a
calculated property included, but not ``-Begin`` or ``-End``) or per element
(``.Where({})``; tree-sitter-powershell cannot parse ``.ForEach({})``, so
the command check refuses it already); and calls, in such places, of a
function or a script block kept in a variable (``& $read``,
``$read.Invoke()``) that reads, directly or through others, and calls of
such a function from its own body (recursion, directly or through others).
The list of scripts is every ``.ps1`` file the package ships, every
operation as sent, and the texts built from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib import resources

import pytest
import tree_sitter
import tree_sitter_powershell

from hvintegration.operations import OPERATIONS
from hvintegration.operations._psrp_output import PSRP_OUTPUT
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
    """The name a command calls: ``Get-VM``, or ``$read`` for ``& $read``;
    None for an inline script block (``& { ... }``)."""
    for child in node.children:
        if child.type == "command_name":
            return _text(child, source)
        if child.type == "command_name_expr":
            if any(c.type == "script_block_expression" for c in child.children):
                return None
            return _text(child, source)
    return None


def _called(node: tree_sitter.Node, source: bytes) -> str | None:
    """What a command or a ``$block.Invoke()`` calls, casefolded; else None."""
    if node.type == "command":
        name = _command_name(node, source)
        return None if name is None else name.casefold()
    if node.type == "invokation_expression" and node.named_children:
        member = next((c for c in node.children if c.type == "member_name"), None)
        first = node.named_children[0]
        if (
            member is not None
            and first.type == "variable"
            and _text(member, source).casefold() in ("invoke", "invokereturnasis")
        ):
            return _text(first, source).casefold()
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


# Grammar layers that hold a single expression.
_LAYERS = frozenset(
    {
        "pipeline",
        "pipeline_chain",
        "logical_expression",
        "bitwise_expression",
        "comparison_expression",
        "additive_expression",
        "multiplicative_expression",
        "format_expression",
        "range_expression",
        "array_literal_expression",
        "unary_expression",
    }
)


def _outer(node: tree_sitter.Node) -> tree_sitter.Node:
    """``node`` with the single-expression layers around it."""
    while node.parent is not None and node.parent.type in _LAYERS:
        if node.parent.named_child_count != 1:
            break
        node = node.parent
    return node


def _assigned_to(block: tree_sitter.Node, source: bytes) -> str | None:
    """The variable a script block literal is assigned to (``$read = { ... }``), casefolded."""
    up = _outer(block).parent
    if up is None or up.type != "assignment_expression":
        return None
    return _text(up.named_children[0], source).strip().casefold()


def _unit(node: tree_sitter.Node, source: bytes) -> str | None:
    """The name of what a function or an assigned script block is called by, casefolded."""
    if node.type == "function_statement":
        name = next(c for c in node.children if c.type == "function_name")
        return _text(name, source).casefold()
    if node.type == "script_block_expression":
        return _assigned_to(node, source)
    return None


def _is_filter(node: tree_sitter.Node) -> bool:
    return node.type == "function_statement" and any(c.type == "filter" for c in node.children)


def _parameter_before(node: tree_sitter.Node, source: bytes) -> str | None:
    """The named parameter an argument follows (``-Begin``), casefolded, no dash."""
    before = _outer(node).prev_named_sibling
    while before is not None and before.type == "command_argument_sep":
        before = before.prev_named_sibling
    if before is not None and before.type == "command_parameter":
        return _text(before, source).lstrip("-").rstrip(":").casefold()
    return None


def _runs_per_item(node: tree_sitter.Node, source: bytes) -> str | None:
    """Why ``node`` (a block of some kind) runs once per item; None if it does not."""
    parent = node.parent
    if node.type == "statement_block" and parent is not None:
        if parent.type == "foreach_statement":
            return "the body of a foreach loop"
        if parent.type in _LOOP_STATEMENTS:
            return f"the body of a {parent.type.split('_')[0]} loop"
        if parent.type == "switch_clause":
            return "a clause of a switch statement, which runs per element of its value"
        if parent.type == "named_block":
            block = _text(parent.children[0], source).casefold()
            if block == "process":
                return "a process block, which runs per pipeline object"
            return None  # begin and end blocks run once
    if node.type in ("while_condition", "for_condition", "for_iterator"):
        return "a loop condition"
    if _is_filter(node):
        return "the body of a filter, which runs per pipeline object"
    if node.type != "script_block_expression":
        return None
    if parent is not None and parent.type == "command_name_expr":
        # Invoked itself (& { ... }): only a process block inside runs per
        # object, and that is found on its own.
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
    command = _command_name(up, source) or "the command"
    name = command.casefold().rpartition("\\")[2]
    chain = up.parent
    fed = chain is not None and chain.type == "pipeline_chain" and chain.children[0] != up
    if name in _PER_ITEM_COMMANDS or fed:
        if _parameter_before(node, source) in ("begin", "end"):
            return None  # ForEach-Object -Begin and -End run once
        return f"a script block {command} runs per pipeline object"
    return None


def _enclosing(node: tree_sitter.Node, source: bytes) -> tree_sitter.Node | None:
    """The function or assigned script block whose body holds ``node``."""
    up = node.parent
    while up is not None:
        if _unit(up, source) is not None:
            return up
        up = up.parent
    return None


def _loop_context(node: tree_sitter.Node, source: bytes) -> str | None:
    up = node.parent
    while up is not None:
        why = _runs_per_item(up, source)
        if why is not None:
            return why
        if _unit(up, source) is not None:
            return None  # a function's body runs where it is called from
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
    # Functions, filters and script blocks kept in variables, by the name
    # they are called by, and what each calls.
    units: dict[str, list[tree_sitter.Node]] = {}
    for node in _walk(root):
        name = _unit(node, source)
        if name is not None:
            units.setdefault(name, []).append(node)
    calls = {
        name: {
            called
            for body in bodies
            for node in _walk(body)
            if (called := _called(node, source)) is not None
        }
        for name, bodies in units.items()
    }
    reading = {name for name, called in calls.items() if any(is_read_cmdlet(c) for c in called)}
    grew = True
    while grew:
        grew = False
        for name, called in calls.items():
            if name not in reading and called & reading:
                reading.add(name)
                grew = True
    # Which units each unit reaches through its calls: a call back to a
    # unit that reaches the caller is recursion.
    reach = {name: set(called) & set(units) for name, called in calls.items()}
    grew = True
    while grew:
        grew = False
        for reached in reach.values():
            more = set().union(*(reach[other] for other in reached)) - reached
            if more:
                reached |= more
                grew = True
    problems = []
    for node in _walk(root):
        called = _called(node, source)
        if called is None:
            continue
        if not is_read_cmdlet(called) and called not in reading:
            continue
        shown = _command_name(node, source) if node.type == "command" else _text(node, source)
        kind = "a script block" if called.startswith("$") else "a function"
        how = "" if is_read_cmdlet(called) else f" ({kind} that reads host state)"
        why = _loop_context(node, source)
        if why is None and called in reading:
            caller = _enclosing(node, source)
            name = _unit(caller, source) if caller is not None else None
            if name is not None and (name == called or name in reach.get(called, ())):
                why = "its own body (recursion), which runs once per level"
        if why is not None:
            problems.append(f"line {node.start_point[0] + 1}: {shown}{how} inside {why}")
    return problems


def _shipped_scripts() -> dict[str, str]:
    """Every script the package ships, as sent: each operation's script (its
    prelude included), and every .ps1 file by its file name."""
    folder = resources.files("hvintegration.operations").joinpath("scripts")
    scripts = {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".ps1")
    }
    scripts.update({name: operation.script for name, operation in OPERATIONS.items()})
    scripts.update({"bootstrap": BOOTSTRAP, "runner": RUNNER, "psrp output": PSRP_OUTPUT})
    return scripts


SCRIPTS = _shipped_scripts()


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


def test_every_shipped_script_is_checked() -> None:
    # Every .ps1 file of the package, every operation as sent, and the
    # texts built from them: one list, so a new script cannot be missed.
    folder = resources.files("hvintegration.operations").joinpath("scripts")
    files = {entry.name for entry in folder.iterdir() if entry.name.endswith(".ps1")}
    assert files <= set(SCRIPTS)
    assert "_psrp_output.ps1" in files
    assert set(OPERATIONS) <= set(SCRIPTS)
    assert SCRIPTS["psrp output"] == PSRP_OUTPUT


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
        (
            "switch ($Names) { default { $vm = Hyper-V\\Get-VM -Name $_ } }",
            [
                "line 1: Hyper-V\\Get-VM inside a clause of a switch statement, "
                "which runs per element of its value"
            ],
        ),
        (
            "filter Get-HvOne { Hyper-V\\Get-VM -Name $_ }\n$Names | Get-HvOne",
            ["line 1: Hyper-V\\Get-VM inside the body of a filter, which runs per pipeline object"],
        ),
        (
            "function Get-HvOne {\n    param([Parameter(ValueFromPipeline = $true)] $N)\n"
            "    process { Hyper-V\\Get-VM -Name $N }\n}\n$Names | Get-HvOne",
            ["line 3: Hyper-V\\Get-VM inside a process block, which runs per pipeline object"],
        ),
        (
            "$Names | & { process { Hyper-V\\Get-VM -Name $_ } }",
            ["line 1: Hyper-V\\Get-VM inside a process block, which runs per pipeline object"],
        ),
        (
            "$read = { param($n) Hyper-V\\Get-VM -Name $n }\n"
            "foreach ($n in $Names) { & $read $n }\n"
            "for ($i = 0; $i -lt 3; $i++) { $read.Invoke($i) }",
            [
                "line 2: $read (a script block that reads host state) "
                "inside the body of a foreach loop",
                "line 3: $read.Invoke($i) (a script block that reads host state) "
                "inside the body of a for loop",
            ],
        ),
        (
            "function Get-HvR {\n    param($n)\n    if ($n -gt 0) {\n"
            "        Hyper-V\\Get-VM\n        Get-HvR ($n - 1)\n    }\n}\nGet-HvR $Names.Count",
            [
                "line 5: Get-HvR (a function that reads host state) "
                "inside its own body (recursion), which runs once per level"
            ],
        ),
        (
            "function Get-HvA {\n    param($n)\n    Hyper-V\\Get-VM\n    Get-HvB $n\n}\n"
            "function Get-HvB {\n    param($n)\n    Get-HvA $n\n}\nGet-HvA 3",
            [
                "line 4: Get-HvB (a function that reads host state) "
                "inside its own body (recursion), which runs once per level",
                "line 8: Get-HvA (a function that reads host state) "
                "inside its own body (recursion), which runs once per level",
            ],
        ),
        (
            # Not a command of its own: the message names the pipeline's command.
            "$Names | & $runner -Each { Hyper-V\\Get-VM -Name $_ }",
            ["line 1: Hyper-V\\Get-VM inside a script block $runner runs per pipeline object"],
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
        "switch",
        "filter",
        "process-function",
        "process-scriptblock",
        "scriptblock-variable",
        "recursion",
        "mutual-recursion",
        "fed-variable-command",
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
        # ForEach-Object's -Begin and -End blocks run once.
        "$Names | Microsoft.PowerShell.Core\\ForEach-Object "
        "-Begin { $all = @(Hyper-V\\Get-VM) } -Process { $_ }",
        "$Names | Microsoft.PowerShell.Core\\ForEach-Object "
        "-Process { $_ } -End { Hyper-V\\Get-VM }",
        # A piped script block's begin and end blocks run once.
        "$Names | & { begin { $all = @(Hyper-V\\Get-VM) } process { $_ } end { Hyper-V\\Get-VM } }",
        # A script block kept in a variable and called once.
        "$read = { Hyper-V\\Get-VM }\n$all = & $read",
        # A function that calls another that reads, without a cycle.
        "function Get-HvA {\n    param()\n    Hyper-V\\Get-VM\n}\n"
        "function Get-HvB {\n    param()\n    Get-HvA\n}\n$all = Get-HvB",
    ],
    ids=[
        "collection",
        "pipeline-head",
        "function-once",
        "invoke-once",
        "get-service",
        "foreach-object-begin",
        "foreach-object-end",
        "piped-begin-end",
        "scriptblock-once",
        "no-cycle",
    ],
)
def test_reading_once_is_allowed(sample: str) -> None:
    assert loop_reads(sample) == []
