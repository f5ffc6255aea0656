"""The command that turns an operation's output into one JSON string over PSRP.

Over ``psrp://`` every operation runs as a pipeline of two shipped scripts:
the operation's own script, unchanged, with its parameters bound as PSRP
parameters, piped into :data:`PSRP_OUTPUT` (``scripts/_psrp_output.ps1``).
That second command writes one string: a compact JSON array of the
operation's output objects, the same plain values the session loop of
``local://`` and ``ssh://`` writes in its envelope, and like it ASCII only
(every other character a ``\\uXXXX`` escape, so that no character CLIXML
cannot carry reaches the wire). So the answer crosses PSRP as a single
string instead of one CLIXML object per record, and the client parses it
once.

Example:
    >>> "ConvertTo-Json -InputObject $hvOutput -Depth 100 -Compress" in PSRP_OUTPUT
    True
"""

from __future__ import annotations

from hvintegration.operations import script_text

__all__ = ["PSRP_OUTPUT"]

PSRP_OUTPUT = script_text("_psrp_output.ps1")
"""The text of the second command of every ``psrp://`` pipeline, as sent."""
