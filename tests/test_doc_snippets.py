"""Every code snippet in README.md and docs/ runs as written, against the simulators.

What runs:

* ```` ```python ```` (and ```` ```pycon ````) blocks. The blocks of one page run
  in order in one namespace and one event loop, as notebook cells do, so a
  later block may use what an earlier one made; top-level ``await`` and
  ``async with`` work as in Jupyter. A ``pycon`` block's ``>>>`` lines run and
  the lines after them are compared with what they print, as a doctest.
* ```` ```sh ```` blocks: each command in them (a line, or a part of a line
  between ``&&``) that starts with ``hvintegration`` or
  ``.venv/bin/hvintegration`` (after any ``VAR=value`` words, which set the
  variable for that command) runs as a child process, in a scratch directory,
  with this environment's command; it must exit 0 (a redirection or a pipe
  after it is left out). When a ```` ```text ```` block follows a block of one
  command, it is that command's output.

Two HTML comments, on the line before a block, say how it runs, and this
file counts them so the lists stay short and honest:

* ``<!-- not run: REASON -->``: the block needs what the simulators cannot be
  (a Hyper-V host's file system, a password prompt); it is only compiled.
* ``<!-- run with: `OLD` -> `NEW`, ... -->``: before running, each source text
  OLD (which must occur in the block) becomes NEW. It points a real host's
  URL at a simulator, so the code around the URL runs as written.
"""

from __future__ import annotations

import ast
import asyncio
import doctest
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from hvintegration import PermissionDeniedError
from hvintegration.testing.linux_guest import GuestLayout, GuestSandbox, sandbox_unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")],
    key=lambda path: path.relative_to(ROOT).as_posix(),
)

NOT_RUN = {
    ("docs/transports/psrp.md", "needs a Hyper-V host reachable over WinRM with a CA file"),
    (
        "docs/fleets.md",
        "needs an inventory file; tests/test_fleet_cli.py runs these commands on one",
    ),
    (
        "docs/fleets.md",
        "needs lab.toml and policy.toml; tests/test_fleets_doc.py writes them from this page and "
        "runs it",
    ),
    (
        "docs/linux-guests.md",
        "a sudoers file; tests/test_doc_snippets.py checks it with visudo and uses it in the "
        "guest sandbox",
    ),
}
"""(page, reason) of every block marked ``not run``: a new one must be added here."""

FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*(not run|run with):\s*(.*?)\s*-->")
REPLACEMENT = re.compile(r"`([^`]+)`\s*->\s*`([^`]*)`")
SHELL_OPERATORS = {">", ">>", "2>", "&>", "2>&1", "<", "|", "||", ";", "&"}
CLI = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\.venv/bin/)?hvintegration(?:\s|$)")
ASSIGNMENT = re.compile(r"[A-Z_][A-Z0-9_]*=.*")


@attrs.frozen
class Block:
    """One fenced block of a page."""

    page: str
    line: int
    language: str
    source: str
    not_run: str | None
    replacements: tuple[tuple[str, str], ...]
    output: str | None  # the text block right after it, if any

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def runnable_source(self) -> str:
        source = self.source
        for old, new in self.replacements:
            assert old in source, f"{self.where}: run with `{old}`, which the block lacks"
            source = source.replace(old, new)
        return source


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    page = path.relative_to(ROOT).as_posix()
    found: list[Block] = []
    matches = list(FENCE.finditer(text))
    for index, match in enumerate(matches):
        before = text[: match.start()]
        # Only a marker on the line right before the fence counts.
        marker = MARKER.fullmatch(before.rstrip().rpartition("\n")[2])
        if marker:
            kind, detail = marker.group(1), marker.group(2)
        else:
            kind, detail = "", ""
        following = matches[index + 1] if index + 1 < len(matches) else None
        output = None
        if (
            following is not None
            and following.group(1) == "text"
            and not text[match.end() : following.start()].strip()
        ):
            output = following.group(2)
        found.append(
            Block(
                page=page,
                line=before.count("\n") + 1,
                language=match.group(1),
                source=match.group(2),
                not_run=detail if kind == "not run" else None,
                replacements=tuple(REPLACEMENT.findall(detail)) if kind == "run with" else (),
                output=output,
            )
        )
    return found


def commands(block: Block) -> list[list[str]]:
    """The hvintegration commands of a sh block, as argv lists."""
    found = []
    for line in block.runnable_source().splitlines():
        for part in line.split("&&"):
            part = part.strip()
            if CLI.match(part):
                argv = shlex.split(part)
                # Where the output goes (a redirection, a pipe) is the
                # reader's shell's business; the command itself must work.
                cut = [i for i, word in enumerate(argv) if word in SHELL_OPERATORS]
                argv = argv[: cut[0]] if cut else argv
                # VAR=value before the command: set for that command only.
                assignments = []
                while argv and ASSIGNMENT.fullmatch(argv[0]):
                    assignments.append(argv.pop(0))
                command = [str(Path(sys.executable).parent / "hvintegration"), *argv[1:]]
                found.append(["env", *assignments, *command] if assignments else command)
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
PYTHON_PAGES = sorted({b.page for b in ALL_BLOCKS if b.language in ("python", "pycon")})
SH_BLOCKS = [b for b in ALL_BLOCKS if b.language == "sh" and commands(b)]


def run_cell(
    source: str, namespace: dict[str, object], loop: asyncio.AbstractEventLoop, where: str
) -> object:
    """Run one cell as Jupyter would: top-level await allowed; the value of a last expression."""
    tree = ast.parse(source, where)
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    value: object = None
    parts: list[tuple[ast.Module | ast.Expression | None, str]] = [(tree, "exec"), (last, "eval")]
    for code, mode in parts:
        if code is None:
            continue
        compiled = compile(code, where, mode, flags=flags)
        value = eval(compiled, namespace)
        if inspect.iscoroutine(value):
            value = loop.run_until_complete(value)
    return value


def run_pycon(block: Block, namespace: dict[str, object], loop: asyncio.AbstractEventLoop) -> None:
    examples = doctest.DocTestParser().get_examples(block.runnable_source())
    for example in examples:
        value = run_cell(example.source, namespace, loop, block.where)
        shown = "" if value is None else repr(value) + "\n"
        assert shown == example.want, f"{block.where}: {example.source!r}"


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_snippets_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Files a snippet writes (state files) land in a scratch directory.
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("HVINTEGRATION_")]:
        monkeypatch.delenv(name)
    namespace: dict[str, object] = {"__name__": "__main__"}
    loop = asyncio.new_event_loop()
    try:
        for block in ALL_BLOCKS:
            if block.page != page or block.language not in ("python", "pycon"):
                continue
            if block.not_run is not None:
                compile(block.source, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                continue
            if block.language == "pycon":
                run_pycon(block, namespace, loop)
            else:
                run_cell(block.runnable_source(), namespace, loop, block.where)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.mark.parametrize("block", SH_BLOCKS, ids=[b.where for b in SH_BLOCKS])
def test_command_snippets_run(block: Block, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HVINTEGRATION_")}
    argvs = commands(block)
    if block.not_run is not None:
        return
    for argv in argvs:
        done = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"{block.where}: {shlex.join(argv[1:])}: {done.stderr}"
        if block.output is not None and len(argvs) == 1:
            assert _lines(done.stdout) == _lines(block.output), f"{block.where}: output differs"


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def test_the_readme_notebook_cells_each_show_a_table() -> None:
    # Jupyter shows only a cell's last expression: each README cell that
    # reads or changes something ends with it, and it renders as HTML.
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## In a notebook", 1)[1].split("\n## ", 1)[0]
    cells = [m.group(2) for m in FENCE.finditer(section) if m.group(1) == "python"]
    assert len(cells) >= 3
    namespace: dict[str, object] = {}
    loop = asyncio.new_event_loop()
    shown = []
    try:
        for cell in cells:
            value = run_cell(cell, namespace, loop, "README.md notebook")
            if "aclose()" not in cell and "connect(" not in cell:
                shown.append(value)
    finally:
        loop.close()
    assert len(shown) >= 2
    assert all(callable(getattr(value, "_repr_html_", None)) for value in shown)


def test_the_not_run_list_is_exact() -> None:
    marked = {(b.page, b.not_run) for b in ALL_BLOCKS if b.not_run is not None}
    assert marked == NOT_RUN


def test_markers_sit_on_a_block() -> None:
    # A marker separated from its block by text would silently mark nothing.
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        # A marker starts its line; one quoted in the text (in backticks) is no marker.
        for match in re.finditer(r"^<!--\s*(not run|run with):.*?-->", text, re.S | re.M):
            after = text[match.end() :].lstrip(" \t")
            assert after.startswith("\n```"), f"{page.name}: marker not right before a block"


def test_the_snippets_are_found() -> None:
    # The README's script is among them, and runs (not marked).
    readme = [b for b in ALL_BLOCKS if b.page == "README.md" and b.language == "python"]
    assert any("asyncio.run(main())" in b.source and b.not_run is None for b in readme)
    assert len([b for b in ALL_BLOCKS if b.language == "python"]) >= 25
    assert any(b.output is not None for b in SH_BLOCKS)


# -- the sudoers rule of docs/linux-guests.md ------------------------------------------------


def sudoers_rule(user: str) -> str:
    """The page's sudoers snippet, for ``user`` instead of its example login."""
    (block,) = [b for b in ALL_BLOCKS if b.language == "sudoers"]
    assert block.page == "docs/linux-guests.md"
    return re.sub(r"\bhvadmin\b", user, block.source)


def test_the_sudoers_snippet_parses(tmp_path: Path) -> None:
    visudo = shutil.which("visudo") or (
        "/usr/sbin/visudo" if Path("/usr/sbin/visudo").exists() else None
    )
    if visudo is None:
        pytest.skip("visudo is not installed (Debian: sudo)")
    path = tmp_path / "hvintegration"
    path.write_text(sudoers_rule("hvadmin"))
    done = subprocess.run([visudo, "-cf", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


class RuleSandbox(GuestSandbox):
    """The guest sandbox with the sudo user's rule replaced by ``rule``."""

    def __init__(self, rule: str) -> None:
        super().__init__(GuestLayout())
        self.rule = rule

    def _accounts(self) -> dict[str, str]:
        files = super()._accounts()
        everything = f"{self.sudo_user} ALL=(ALL:ALL) NOPASSWD: ALL\n"
        assert everything in files["sudoers"]
        files["sudoers"] = files["sudoers"].replace(everything, self.rule)
        return files


async def _change_as_sudo_user(sandbox: GuestSandbox) -> None:
    from hvintegration import LinuxGuest

    async with LinuxGuest.connect(sandbox.url(sandbox.sudo_user), timeout=60) as guest:
        state = await guest.daemon("vss").restart()
        assert state.running
        assert all(p.user == "root" for p in state.processes)
        items = await guest.set_kvp({"Role": "web"})
        assert ("Role", "web") in [(item.key, item.value) for item in items]


@pytest.fixture
def sandbox_available() -> None:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.usefixtures("sandbox_available")
def test_the_sudoers_rule_is_enough_for_every_change() -> None:
    # The real sudo, the real daemon, over the real sshd, as a login whose
    # only rule is the page's.
    with RuleSandbox(sudoers_rule(GuestSandbox.sudo_user)) as sandbox:
        asyncio.run(_change_as_sudo_user(sandbox))


@pytest.mark.usefixtures("sandbox_available")
def test_without_env_in_the_rule_changes_are_refused() -> None:
    # The rule is not larger than it must be: drop /usr/bin/env and the same
    # changes are refused by sudo, before anything runs.
    rule = sudoers_rule(GuestSandbox.sudo_user).replace("/usr/bin/env, ", "")
    assert "/usr/bin/env" not in rule
    with RuleSandbox(rule) as sandbox, pytest.raises(PermissionDeniedError, match="sudo"):
        asyncio.run(_change_as_sudo_user(sandbox))
