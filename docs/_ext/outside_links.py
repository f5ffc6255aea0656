"""A MkDocs hook: a link from a page to a file outside docs/ keeps its text only.

The guides link to the repository's own files (``../examples/diagnose_host.py``),
which work where the Markdown is read in the repository but are not part of
the site, and strict mode refuses a link to a missing page. On the site such
a link becomes its text, the file's path in the repository.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Unlink every relative link that leaves the docs directory."""
    here = posixpath.dirname(page.file.src_uri)

    def replace(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if "://" in target or target.startswith(("#", "/", "mailto:")):
            return match.group(0)
        path = posixpath.normpath(posixpath.join(here, target.split("#", 1)[0]))
        return text if path.startswith("..") else match.group(0)

    return _LINK.sub(replace, markdown)
