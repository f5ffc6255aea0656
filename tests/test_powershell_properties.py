"""Property: whatever a VM is called, the name travels out of band. It never
changes the command line or the script text, and it reaches the stand-in
PowerShell, and comes back in its error records, unchanged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvintegration.operations import LIST_VMS
from hvintegration.testing.powershell_peers import LocalStandInPeer
from hvintegration.transport._powershell_wire import powershell_argv

_SPECIALS = [
    "'",
    '"',
    "`",
    "$(",
    ")",
    "$(Stop-Computer)",
    ";",
    "\n",
    "\r\n",
    "\x00",
    "\u2018",
    "\u2019",
    "\u201a",
    "\u201b",
    "~",
    "@{",
    "}",
    "|",
    "&",
    "<#",
    "#>",
    "\\",
    "*",
]

_NAMES = st.one_of(
    st.lists(st.one_of(st.sampled_from(_SPECIALS), st.characters()), max_size=12).map("".join),
    # PowerShell 7's ConvertFrom-Json turns strings like these into dates.
    st.datetimes().map(lambda moment: moment.isoformat()),
)

_BASE64_WORDS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=- ")


def test_any_name_travels_out_of_band_and_arrives_unchanged(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    fixed_argv = list(powershell_argv("pwsh")[1:])
    loop = asyncio.new_event_loop()
    transport = peer.open_transport()

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(names=st.lists(_NAMES, min_size=1, max_size=4))
    def check(names: list[str]) -> None:
        names = [name for name in names if name.casefold() != "demovm"] or ["ghost"]
        peer.log.write_text("")
        refs = [{"Name": name} for name in names]
        result = loop.run_until_complete(
            transport.run_operation(LIST_VMS, {"VM": refs}, timeout=10)
        )
        entries = [json.loads(line) for line in peer.log.read_text().splitlines()]
        requests = [entry for entry in entries if "operation" in entry]
        # The stand-in answers only the shipped script (it refuses any
        # other text), so reaching it means the script was unchanged.
        assert requests == [{"operation": "list_vms", "parameters": {"VM": refs}}]
        for start in (entry["argv"] for entry in entries if "argv" in entry):
            assert start == fixed_argv
        for name in names:
            if not set(name) <= _BASE64_WORDS:
                assert name not in " ".join(fixed_argv)
        # Every name comes back unchanged as the target of its error record.
        assert [record.target_object for record in result.errors] == names
        assert {record.base_id for record in result.errors} == {"HvIntegration.VMNotFound"}

    try:
        check()
    finally:
        loop.run_until_complete(transport.aclose())
        loop.close()
