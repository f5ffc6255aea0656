"""The documentation site builds in strict mode and its reference lists every public name.

The site is built once, with ``mkdocs build --strict`` (mkdocs.yml), into a
scratch directory: any warning (a broken link, a page outside the nav, a
docstring mkdocstrings cannot read, a cross-reference that resolves to
nothing) fails the build and so this test. The reference pages are then
read for the anchor mkdocstrings gives each object it documents
(``id="hvintegration.HyperVHost.list_vms"``).
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

REFERENCE = {
    "hvintegration": "reference/index.html",
    "hvintegration.catalogue": "reference/catalogue/index.html",
    "hvintegration.transport": "reference/transport/index.html",
    "hvintegration.simulator": "reference/simulator/index.html",
    "hvintegration.testing": "reference/testing/index.html",
    "hvintegration.fleet": "reference/fleet/index.html",
}
"""Each documented module and the page that documents its ``__all__``."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def anchors(page: Path) -> set[str]:
    return set(re.findall(r'id="(hvintegration[\w.]*)"', page.read_text(encoding="utf-8")))


def public_members(obj: object) -> list[str]:
    """The public methods and properties a class defines itself."""
    if not inspect.isclass(obj):
        return []
    names = []
    for name, value in vars(obj).items():
        if name.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if (inspect.isfunction(value) or isinstance(value, property)) and value.__doc__:
            names.append(name)
    return names


@pytest.mark.parametrize("module_name", sorted(REFERENCE))
def test_every_public_name_is_in_the_reference(site: Path, module_name: str) -> None:
    module = importlib.import_module(module_name)
    found = anchors(site / REFERENCE[module_name])
    missing = []
    for name in module.__all__:
        if name == "__version__":
            continue
        path = f"{module_name}.{name}"
        if path in REFERENCE:
            continue  # a module with its own page
        if path not in found:
            missing.append(path)
        obj = getattr(module, name)
        missing += [
            f"{path}.{member}" for member in public_members(obj) if f"{path}.{member}" not in found
        ]
    assert missing == []


def test_the_reference_shows_the_host_api(site: Path) -> None:
    found = anchors(site / REFERENCE["hvintegration"])
    assert {"hvintegration.HyperVHost.list_vms", "hvintegration.HyperVHost.connect"} <= found


def test_docstrings_render_as_markdown(site: Path) -> None:
    # "Example:" sections become highlighted console blocks, not prose.
    page = (site / REFERENCE["hvintegration"]).read_text(encoding="utf-8")
    assert '<span class="gp">&gt;&gt;&gt; </span>' in page
    assert "<p>&gt;&gt;&gt;" not in page
    # Sphinx roles in the docstrings show as code, not raw.
    for role in (":class:`", ":meth:`", ":func:`", ":data:`", ":attr:`", ":mod:`"):
        assert role not in page


def test_the_tour_is_on_the_site_with_its_outputs(site: Path) -> None:
    page = (site / "tour" / "index.html").read_text(encoding="utf-8")
    assert "A tour of hvintegration" in page
    # A table the notebook printed, saved in it, not re-run by the build.
    assert "Guest Service Interface" in page
    assert "<table" in page


def test_every_guide_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(
        path.relative_to(ROOT / "docs").as_posix()
        for path in (ROOT / "docs").rglob("*")
        if path.suffix in (".md", ".ipynb") and "_ext" not in path.parts
    )
    assert [page for page in pages if f": {page}\n" not in nav] == []
