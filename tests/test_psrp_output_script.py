"""The psrp:// output command, read with tree-sitter: what it must keep doing.

Nothing here runs PowerShell, and the PSRP test server answers the output
command with what it is documented to write, whatever its text says. So the
parts of ``_psrp_output.ps1`` the client relies on are pinned here on the
parsed script, and each test of a broken copy shows the pin holds:

* the JSON is written with ``ConvertTo-Json -InputObject <the array>``, never
  piped (piped, one record would be written as an object, not an array of
  one, and none as nothing), with ``-Depth 100`` (at the default of 2 nested
  values would be cut to their type name) and ``-Compress``;
* the array is the ``.ToArray()`` of one list that every converted record
  was added to;
* the last statement escapes every character beyond U+007E
  (``[regex]::Replace`` with ``'[^\\x00-\\x7e]'``), so the string is ASCII;
* nothing else outside the conversion function writes to the output: every
  other statement assigns, adds to the list, loops or branches.

Sources: "ConvertTo-Json" (-InputObject, -Depth, -Compress),
https://learn.microsoft.com/powershell/module/microsoft.powershell.utility/convertto-json.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tree_sitter
import tree_sitter_powershell

from hvintegration.operations._psrp_output import PSRP_OUTPUT

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
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
_QUIET = frozenset({"assignment_expression", "foreach_statement", "if_statement"})


def _text(node: tree_sitter.Node, source: bytes) -> str:
    return source[node.start_byte : node.end_byte].decode("utf-8")


def _walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _inner(node: tree_sitter.Node) -> tree_sitter.Node:
    while node.type in _LAYERS and node.named_child_count == 1:
        node = node.named_children[0]
    return node


def _statements(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    """Every statement outside function bodies and script blocks, innermost last."""
    for child in node.named_children:
        if child.type in ("function_statement", "script_block_expression", "comment"):
            continue
        if child.parent is not None and child.parent.type == "statement_list":
            yield child
        yield from _statements(child)


def _assignments(root: tree_sitter.Node, source: bytes) -> dict[str, tree_sitter.Node]:
    """Top-level ``$name = value`` statements: name (casefolded) to value."""
    found: dict[str, tree_sitter.Node] = {}
    top = next(c for c in root.named_children if c.type == "statement_list")
    for statement in top.named_children:
        inner = _inner(statement)
        if inner.type != "assignment_expression":
            continue
        left, value = inner.named_children[0], inner.named_children[-1]
        found[_text(left, source).strip().casefold()] = value
    return found


def _parameters(command: tree_sitter.Node, source: bytes) -> dict[str, str | None]:
    """A command's named parameters (casefolded, no dash) and each one's argument text."""
    elements = next((c for c in command.children if c.type == "command_elements"), None)
    found: dict[str, str | None] = {}
    if elements is None:
        return found
    items = [c for c in elements.named_children if c.type != "command_argument_sep"]
    for index, item in enumerate(items):
        if item.type != "command_parameter":
            continue
        following = items[index + 1] if index + 1 < len(items) else None
        argument = (
            _text(following, source).strip()
            if following is not None and following.type != "command_parameter"
            else None
        )
        found[_text(item, source).lstrip("-").casefold()] = argument
    return found


def output_script_problems(text: str) -> list[str]:
    """What in an output command's text breaks what the client relies on.

    Args:
        text: The script, as ``_psrp_output.ps1`` holds it.

    Returns:
        One line per problem; empty when none.
    """
    source = text.encode("utf-8")
    root = _PARSER.parse(source).root_node
    if root.has_error:
        return ["the script cannot be parsed"]
    problems: list[str] = []
    top = next(c for c in root.named_children if c.type == "statement_list")
    statements = [c for c in top.named_children if c.type != "comment"]
    assigned = _assignments(root, source)

    last = _inner(statements[-1])
    escape = "[regex]::Replace($hvJson, '[^\\x00-\\x7e]',"
    if last.type != "invokation_expression" or not _text(last, source).startswith(escape):
        problems.append(f"the last statement is not {escape} ...)")

    json = assigned.get("$hvjson")
    command = _inner(json) if json is not None else None
    if command is None or command.type != "command":
        problems.append("$hvJson is not assigned the output of one ConvertTo-Json command")
    else:
        name = next(c for c in command.children if c.type == "command_name")
        if _text(name, source).casefold() != "microsoft.powershell.utility\\convertto-json":
            problems.append(
                "$hvJson is not written by Microsoft.PowerShell.Utility\\ConvertTo-Json"
            )
        parameters = _parameters(command, source)
        if (parameters.get("inputobject") or "").casefold() != "$hvoutput":
            problems.append("ConvertTo-Json does not take the array as -InputObject $hvOutput")
        if parameters.get("depth") != "100":
            problems.append("ConvertTo-Json does not run with -Depth 100")
        if "compress" not in parameters:
            problems.append("ConvertTo-Json does not run with -Compress")

    output = assigned.get("$hvoutput")
    if output is None or _text(output, source).strip().casefold() != "$hvconverted.toarray()":
        problems.append("$hvOutput is not the array of the converted list ($hvConverted.ToArray())")
    converted = assigned.get("$hvconverted")
    if converted is None or "list[object]" not in _text(converted, source).casefold():
        problems.append("$hvConverted is not a new list of objects")

    for statement in _statements(top):
        inner = _inner(statement)
        if inner == last or inner.type in _QUIET:
            continue
        code = _text(inner, source)
        if statement.type == "flow_control_statement" and code.strip() == "continue":
            continue
        if inner.type == "invokation_expression" and code.casefold().startswith(
            "$hvconverted.add("
        ):
            continue
        problems.append(f"line {statement.start_point[0] + 1} may write output: {code[:60]!r}")
    return problems


def test_the_shipped_output_command_keeps_its_promises() -> None:
    assert output_script_problems(PSRP_OUTPUT) == []


_CONVERT = "ConvertTo-Json -InputObject $hvOutput -Depth 100 -Compress"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (_CONVERT, "ConvertTo-Json -Depth 100 -Compress", "-InputObject $hvOutput"),
        (
            "$hvJson = Microsoft.PowerShell.Utility\\" + _CONVERT,
            "$hvJson = $hvOutput | Microsoft.PowerShell.Utility\\ConvertTo-Json -Depth 100 "
            "-Compress",
            "one ConvertTo-Json command",
        ),
        (_CONVERT, "ConvertTo-Json -InputObject $hvOutput -Depth 2 -Compress", "-Depth 100"),
        (_CONVERT, "ConvertTo-Json -InputObject $hvOutput -Depth 100", "-Compress"),
        (
            "Microsoft.PowerShell.Utility\\" + _CONVERT,
            "Newtonsoft\\" + _CONVERT,
            "Microsoft.PowerShell.Utility\\ConvertTo-Json",
        ),
        ("$hvOutput = $hvConverted.ToArray()", "$hvOutput = $hvConverted[0]", ".ToArray()"),
        ("'[^\\x00-\\x7e]'", "'[^\\x00-\\uffff]'", "the last statement"),
        (
            "$hvConverted.Add($hvRow)",
            "$hvConverted.Add($hvRow)\n    $hvRow",
            "may write output: '$hvRow'",
        ),
    ],
    ids=[
        "no-inputobject",
        "piped",
        "depth-2",
        "not-compressed",
        "other-module",
        "not-the-array",
        "escape-less",
        "stray-output",
    ],
)
def test_a_broken_copy_is_caught(old: str, new: str, problem: str) -> None:
    assert old in PSRP_OUTPUT
    problems = output_script_problems(PSRP_OUTPUT.replace(old, new))
    assert any(problem in line for line in problems), problems


def test_the_escape_must_come_last() -> None:
    # Dropping the escape line leaves the raw JSON as the output.
    text = PSRP_OUTPUT.rstrip()
    last_line = text.rsplit("\n", 1)[1]
    assert last_line.startswith("[regex]::Replace(")
    problems = output_script_problems(text.rsplit("\n", 1)[0] + "\n$hvJson\n")
    assert any("the last statement" in line for line in problems), problems
