"""What a package index and a source distribution show of the project.

The README is the package's description on a package index, where a link
relative to the repository (``docs/cli.md``) leads nowhere: it names files
by path instead. The source distribution carries what it takes to test and
document the package (MANIFEST.in); ``python -m build`` makes it and the
wheel.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)")

NOT_SHIPPED = {
    ".git",
    ".venv",
    ".cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "dist",
    "site",
    "hvintegration",  # the package itself, found by setuptools
}


def test_the_readme_has_no_link_relative_to_the_repository() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    relative = [t for t in LINK.findall(text) if "://" not in t and not t.startswith("#")]
    assert relative == []


def test_the_link_check_finds_a_relative_link() -> None:
    assert LINK.findall("see [the CLI](docs/cli.md) and [x](https://e.org/)") == [
        "docs/cli.md",
        "https://e.org/",
    ]


def _tracked_top_level() -> set[str]:
    done = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return {line.split("/", 1)[0] for line in done.stdout.splitlines() if "/" in line}


def test_the_sdist_takes_every_tracked_directory() -> None:
    manifest = (ROOT / "MANIFEST.in").read_text(encoding="utf-8")
    grafted = set(re.findall(r"^graft (\S+)$", manifest, re.M))
    missing = sorted(_tracked_top_level() - NOT_SHIPPED - grafted)
    assert missing == []
    for name in ("CHANGELOG.md", "LICENSE", "README.md", "mkdocs.yml"):
        assert re.search(rf"^include .*\b{re.escape(name)}\b", manifest, re.M), name
