"""The shell completion recipes of docs/cli.md and ``completion --help`` work as written.

Each recipe runs in the real shell it is for (bash, zsh, tcsh), in a fresh
account: an empty home directory, no rc files but the ones a recipe writes,
and this environment's ``hvintegration`` first in ``PATH``. A recipe that
works only on a machine already set up a certain way (``compinit`` already
loaded, ``~/.zfunc`` already made, a writable system ``fpath`` directory)
fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvintegration.cli.parser import build_parser

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def recipes() -> list[str]:
    """The sh blocks of the "Shell completion" section of docs/cli.md, in order."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Shell completion\n", 1)[1].split("\n## ", 1)[0]
    return FENCE.findall(section)


RECIPES = recipes()
BASH_NOW, BASH_FILE, ZSH_NOW, ZSH_FILE, ZSHRC, TCSH = RECIPES


def shell(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """Run in a fresh account: only HOME, PATH (this venv first) and a terminal type."""
    env = {
        "HOME": str(home),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "TERM": "dumb",
    }
    return subprocess.run(
        argv, cwd=home, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_section_has_every_recipe() -> None:
    assert len(RECIPES) == 6
    assert "compinit" in ZSH_NOW
    assert "compinit" in ZSHRC
    assert "mkdir -p" in BASH_FILE
    assert "mkdir -p" in ZSH_FILE


def test_bash_for_this_shell(tmp_path: Path) -> None:
    done = run([shell("bash"), "--norc", "--noprofile", "-c", BASH_NOW + "complete -p"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"complete .* hvintegration$", done.stdout, re.M), done.stdout


def test_bash_for_every_shell(tmp_path: Path) -> None:
    bash = shell("bash")
    done = run([bash, "--norc", "--noprofile", "-c", BASH_FILE], tmp_path)
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".local/share/bash-completion/completions/hvintegration"
    # bash-completion sources that file when the command is first completed.
    done = run([bash, "--norc", "--noprofile", "-c", f"source {script}; complete -p"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"complete .* hvintegration$", done.stdout, re.M), done.stdout


def test_zsh_for_this_shell(tmp_path: Path) -> None:
    zsh = shell("zsh")
    probe = "\nprint -r -- registered=${_comps[hvintegration]}"
    done = run([zsh, "-f", "-c", ZSH_NOW + probe], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "registered=_shtab_hvintegration" in done.stdout, (done.stdout, done.stderr)
    # The compinit line is needed: without it, compdef does not exist.
    without = ZSH_NOW.replace("autoload -Uz compinit && compinit\n", "")
    assert without != ZSH_NOW
    done = run([zsh, "-f", "-c", without], tmp_path)
    assert "compdef" in done.stderr


def test_zsh_for_every_shell(tmp_path: Path) -> None:
    zsh = shell("zsh")
    done = run([zsh, "-f", "-c", ZSH_FILE], tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".zfunc" / "_hvintegration").read_text().startswith("#compdef hvintegration")
    (tmp_path / ".zshrc").write_text(ZSHRC)
    # A new interactive shell reads ~/.zshrc and finds the function in fpath.
    done = run([zsh, "-i", "-c", "print -r -- registered=${_comps[hvintegration]}"], tmp_path)
    assert "registered=_hvintegration" in done.stdout, (done.stdout, done.stderr)


def test_tcsh(tmp_path: Path) -> None:
    tcsh = shell("tcsh")
    script = tmp_path / "recipe.tcsh"
    script.write_text(TCSH + "complete hvintegration\n")
    done = run([tcsh, "-f", str(script)], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "host" in done.stdout


def test_the_help_shows_the_same_recipes(tmp_path: Path) -> None:
    parser = build_parser()
    help_text = next(
        child.format_help()
        for action in parser._actions
        if hasattr(action, "choices") and isinstance(action.choices, dict)
        for name, child in action.choices.items()
        if name == "completion"
    )
    examples = [line.strip() for line in help_text.split("examples:\n", 1)[1].splitlines()]
    documented = "\n".join(RECIPES)
    for example in examples:
        if example.startswith("#"):
            # The one remark: the ~/.zshrc line the docs show.
            assert example.rpartition(": ")[2] in ZSHRC, example
            continue
        for part in example.split(" && "):
            assert part in documented, part
