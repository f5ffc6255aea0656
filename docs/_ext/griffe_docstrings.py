"""A griffe extension for the docs site: the docstrings' reST habits, read as Markdown.

The package's docstrings follow the Google style, with two habits that
griffe's Google parser and Markdown do not share:

* a singular ``Example:`` heading, which the parser takes for an admonition
  (prose) rather than an examples section, so its ``>>>`` lines would be
  read as Markdown: it becomes ``Examples:`` and renders as a console block;
* Sphinx roles (``:class:`~hvintegration.HyperVHost```, ``:meth:`connect
  <hvintegration.HyperVHost.connect>```), which Markdown shows raw: each
  becomes a code span with the name a reader would see in Sphinx (the last
  part after ``~``, the title when one is given).

The sources stay as they are; only the site's copy changes.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.M)
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const):`([^`]+)`")


def _role(match: re.Match[str]) -> str:
    text = match.group(1).strip()
    titled = re.fullmatch(r"(.+?)\s*<([^>]+)>", text)
    if titled:
        shown = titled.group(1)
    elif text.startswith("~"):
        shown = text[1:].rsplit(".", 1)[-1]
    else:
        shown = text
    return f"`{shown}`"


def markdown_docstring(text: str) -> str:
    """The docstring text as the site renders it.

    Example:
        >>> markdown_docstring("See :meth:`~hvintegration.HyperVHost.connect`.")
        'See `connect`.'
    """
    return _ROLE.sub(_role, _HEADING.sub(r"\1Examples:", text))


class DocstringMarkup(griffe.Extension):
    """Rewrite every object's docstring with :func:`markdown_docstring`."""

    def _fix(self, obj: griffe.Object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        self._fix(obj)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # The package itself is loaded apart from its members.
        self._fix(pkg)
