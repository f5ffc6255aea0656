"""docs/tour.ipynb runs, and its saved outputs are the ones it prints today.

The test executes the notebook with nbclient in a fresh kernel and compares
every cell's text outputs (streams, ``text/plain`` and ``text/html``
results, errors) with the outputs saved in the file, after replacing what
legitimately changes between runs (:data:`VARYING`). An output that differs
means the notebook is stale: regenerate it, look at the diff, and commit it::

    .venv/bin/python tests/test_tour.py --write

which executes the notebook and saves it with its new outputs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

TOUR = Path(__file__).resolve().parent.parent / "docs" / "tour.ipynb"

VARYING = [
    # Object addresses in default reprs.
    (re.compile(r"0x[0-9a-f]{6,16}"), "0x..."),
    # Durations measured in a run.
    (re.compile(r"\b\d+(?:\.\d+)? ?(?:ms|s)\b"), "N s"),
]
"""What differs from run to run, and what it is compared as."""

TEXT_KINDS = ("text/plain", "text/html")


def execute(notebook: Any) -> Any:
    """Run every cell in a fresh kernel, in the notebook's own directory; stop at an error."""
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(TOUR.parent)}},
    )
    client.execute()
    return notebook


def normalise(text: str) -> str:
    for pattern, replacement in VARYING:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def texts(cell: Any) -> list[tuple[str, str]]:
    """A code cell's outputs as (kind, normalised text)."""
    found = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            found.append((output["name"], normalise(output["text"])))
        elif output["output_type"] in ("execute_result", "display_data"):
            for kind in TEXT_KINDS:
                if kind in output["data"]:
                    found.append((kind, normalise(output["data"][kind])))
        elif output["output_type"] == "error":
            found.append(("error", f"{output['ename']}: {normalise(output['evalue'])}"))
    return found


@pytest.fixture(scope="module")
def saved() -> Any:
    return nbformat.read(TOUR, as_version=4)


@pytest.fixture(scope="module")
def executed(saved: Any) -> Any:
    return execute(nbformat.from_dict(saved))


def code_cells(notebook: Any) -> list[Any]:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_every_code_cell_shows_something(saved: Any) -> None:
    # A tour cell that shows nothing teaches nothing; closing a connection may.
    for cell in code_cells(saved):
        if "aclose()" not in cell.source:
            assert texts(cell), f"no saved output for: {cell.source.splitlines()[0]}"


def test_saved_outputs_are_the_real_ones(saved: Any, executed: Any) -> None:
    before, after = code_cells(saved), code_cells(executed)
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        assert texts(new) == texts(old), f"stale output of: {old.source.splitlines()[0]}"


def test_no_cell_raises(executed: Any) -> None:
    for cell in code_cells(executed):
        kinds = [output["output_type"] for output in cell.outputs]
        assert "error" not in kinds, cell.source


def test_the_tour_visits_every_side(saved: Any) -> None:
    source = "\n".join(cell.source for cell in code_cells(saved))
    for needle in (
        'HyperVHost.connect("sim://")',
        ".enable()",
        ".disable()",
        ".apply(",
        'WindowsGuest.connect("sim://?guest=demovm")',
        'LinuxGuest.connect("sim-linux://',
        "advise(",
        "doctor(",
    ):
        assert needle in source


def test_the_normalisation_keeps_what_matters() -> None:
    # Only addresses and durations are replaced: names, states and counts stay.
    assert normalise("<X at 0x7f3a1c2b4d50> took 12.5 ms  ") == "<X at 0x...> took N s"
    assert normalise("demovm Heartbeat True OK") == "demovm Heartbeat True OK"


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print(__doc__)
        return 2
    notebook = execute(nbformat.read(TOUR, as_version=4))
    for cell in code_cells(notebook):
        # Execution counts and timings are noise in a diff.
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, TOUR)
    print(f"wrote {TOUR}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
