"""No import cycles inside the package, and the core never imports the simulator.

The graph counts every ``import`` and ``from ... import`` anywhere in a
module: at the top, under ``if TYPE_CHECKING:`` and inside functions, since a
cycle hidden there still ties the modules together. ``from pkg import name``
is an edge to ``pkg.name`` when that is a module, else to ``pkg``. A
submodule's implicit import of its parent package is not an edge.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

import hvintegration

PACKAGE = Path(hvintegration.__file__).parent

# The layers that must work without the simulator: resources, records and
# transports. The simulator builds on them, never the other way round.
CORE = ("hvintegration._connect", "hvintegration.host", "hvintegration.linux",
        "hvintegration.windows", "hvintegration.transport")  # fmt: skip


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Every module under ``root`` by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _nearest(name: str, modules: Mapping[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its text."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            edges.update(_nearest(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                edges.add(full if full in modules else _nearest(source, modules))
    edges.discard(None)
    edges.discard(name)
    return {edge for edge in edges if edge is not None}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module to the modules it imports, within one package."""
    modules = modules_of(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def named_modules(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package's modules that ``name`` names in a string, as a lazy import would.

    ``importlib.import_module("pkg.mod")``, ``__import__("pkg.mod")`` and a
    registry entry such as ``"pkg.mod:Class"`` all load a module at run time
    without an import statement; the layer rules hold for them too.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.partition(":")[0]
            if text in modules and text != name and "." in text:
                found.add(text)
    return found


def lazy_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module to the modules it names in strings, within one package."""
    modules = modules_of(root, package)
    return {name: named_modules(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _describe(component: list[str], graph: Mapping[str, set[str]]) -> str:
    inside = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & inside)]
    return f"{', '.join(component)}\n    " + "\n    ".join(edges)


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(PACKAGE, "hvintegration")
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(_describe(c, graph) for c in found)


def test_the_core_never_imports_the_simulator() -> None:
    graph = import_graph(PACKAGE, "hvintegration")
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module.startswith(CORE)
        for target in targets
        if target.startswith("hvintegration.simulator")
    )
    assert not wrong, "the core imports the simulator:\n" + "\n".join(wrong)


# The layers of docs/architecture.md, from the bottom up. A module may import
# its own layer and those below; the most specific prefix decides a module's
# layer, and the package root (the public facade) sits with the command line.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "records and catalogue",
        (
            "hvintegration.errors",
            "hvintegration.catalogue",
            "hvintegration.records",
            "hvintegration.windows.records",
            "hvintegration.linux.records",
            "hvintegration.linux.names",
            "hvintegration._table",
            "hvintegration.maintenance",
            "hvintegration.maintenance_data",
            "hvintegration.diagnosis_records",
            "hvintegration._seconds",
        ),
    ),
    (
        "operations",
        ("hvintegration.operations", "hvintegration.linux.scripts", "hvintegration.linux._shell"),
    ),
    ("transports", ("hvintegration.transport",)),
    (
        "resources",
        (
            "hvintegration._resource",
            "hvintegration._decode",
            "hvintegration._connect",
            "hvintegration.host",
            "hvintegration.preflight",
            "hvintegration.diagnosis",
            "hvintegration._diagnosis_remedies",
            "hvintegration._host_wire",
            "hvintegration.host_kvp",
            "hvintegration.windows",
            "hvintegration.linux",
        ),
    ),
    ("fleet", ("hvintegration.fleet",)),
    ("simulator", ("hvintegration.simulator",)),
    ("testing", ("hvintegration.testing",)),
    ("command line", ("hvintegration.cli", "hvintegration.__main__", "hvintegration")),
)


def layer_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of the layer ``module`` belongs to.

    The package root counts only as itself, so a new module nobody placed has
    no layer.
    """
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (
                module.startswith(prefix + ".") and prefix != "hvintegration"
            )
            if inside and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


# Lazy loads that go upward on purpose: the scheme registry loads the module
# that parses a URL only when a caller names that scheme, and sim:// is
# parsed by the simulator.
LAZY_UPWARD_ALLOWED = {("hvintegration.transport", "hvintegration.simulator.targets")}


def test_every_module_has_a_layer() -> None:
    graph = import_graph(PACKAGE, "hvintegration")
    assert not [module for module in graph if layer_of(module) is None]


def layer_violations(graph: Mapping[str, set[str]]) -> list[str]:
    """Every import of a module in a higher layer, as ``a (layer) -> b (layer)``."""
    wrong = []
    for module, targets in sorted(graph.items()):
        own = layer_of(module)
        for target in sorted(targets):
            theirs = layer_of(target)
            if own is None or theirs is None or theirs > own:
                name = "none" if own is None else LAYERS[own][0]
                other = "none" if theirs is None else LAYERS[theirs][0]
                wrong.append(f"{module} ({name}) -> {target} ({other})")
    return wrong


def test_no_layer_imports_one_above_it() -> None:
    wrong = layer_violations(import_graph(PACKAGE, "hvintegration"))
    assert not wrong, "imports against the layers of docs/architecture.md:\n" + "\n".join(wrong)


def test_no_layer_loads_one_above_it_by_name() -> None:
    graph = {
        module: {target for target in targets if (module, target) not in LAZY_UPWARD_ALLOWED}
        for module, targets in lazy_graph(PACKAGE, "hvintegration").items()
    }
    wrong = layer_violations(graph)
    assert not wrong, "lazy loads against the layers:\n" + "\n".join(wrong)


def test_a_lazy_load_by_name_is_seen(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "low.py": (
                "import importlib\n"
                "def f():\n"
                "    importlib.import_module('pkg.high')\n"
                "    __import__('pkg.other')\n"
                "REGISTRY = {'x': 'pkg.high:Thing', 'y': 'not.a.module'}\n"
            ),
            "high.py": "",
            "other.py": "",
        },
    )
    assert lazy_graph(root, "pkg")["pkg.low"] == {"pkg.high", "pkg.other"}


def test_the_layers_are_those_docs_architecture_md_draws() -> None:
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text("utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == len(LAYERS)
    for row, (name, prefixes) in zip(rows, LAYERS, strict=True):
        assert name in row
        for prefix in prefixes:
            path = prefix.removeprefix("hvintegration").lstrip(".").replace(".", "/")
            spelled = (f"`{path}`", f"`{path}/`") if path else ("`hvintegration/__init__.py`",)
            assert any(form in row for form in spelled), f"{prefix} is not in the row {name!r}"


def test_a_module_nobody_placed_has_no_layer() -> None:
    assert layer_of("hvintegration.brand_new_module") is None
    assert layer_of("hvintegration") == len(LAYERS) - 1


def test_the_layer_check_sees_an_upward_import() -> None:
    assert layer_of("hvintegration.linux.records") == 0
    assert layer_of("hvintegration.linux.guest") == 3
    graph = {
        "hvintegration.catalogue": {"hvintegration.errors"},
        "hvintegration.host": {"hvintegration.catalogue", "hvintegration.transport.base"},
        "hvintegration.linux.records": {"hvintegration.linux.guest"},
        "hvintegration.transport.ssh": {"hvintegration.simulator.engine"},
    }
    assert layer_violations(graph) == [
        "hvintegration.linux.records (records and catalogue) -> "
        "hvintegration.linux.guest (resources)",
        "hvintegration.transport.ssh (transports) -> hvintegration.simulator.engine (simulator)",
    ]


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_hidden_in_type_checking_or_a_function_is_caught(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.b import B\n",
            "b.py": "def f():\n    from pkg import c\n",
            "c.py": "from . import a\nimport os\n",
            "sub/__init__.py": "from pkg.sub.leaf import X\n",
            "sub/leaf.py": "X = 1\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}
    # The parent package a submodule implicitly loads is not an edge.
    assert graph["pkg.sub.leaf"] == set()
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_from_package_import_name_is_an_edge_to_the_package(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "from pkg.m import VALUE\n",
            "m.py": "from pkg import helper_name\nVALUE = 1\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert graph["pkg.m"] == {"pkg"}
    assert cycles(graph) == [["pkg", "pkg.m"]]
