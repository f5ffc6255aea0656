"""A griffe extension for the docs site: read an ``Example:`` section as ``Examples:``.

The package's docstrings follow the Google style with a singular
``Example:`` heading, which griffe's Google parser takes for an admonition
(prose) rather than an examples section, so its ``>>>`` lines would be read
as Markdown. Renaming the heading when the docs are built keeps the sources
as they are and renders each example as a console block.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Rename every ``Example:`` section heading to ``Examples:``."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None:
            docstring.value = _HEADING.sub(r"\1Examples:", docstring.value)
