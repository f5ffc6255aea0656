"""Property: file copy paths and PowerShell Direct credentials travel out of
band. Whatever they contain, they reach the stand-in PowerShell unchanged and
never touch the command line or the script text."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvintegration import Credential, HyperVHost
from hvintegration.errors import HvIntegrationError
from hvintegration.operations import COPY_VM_FILE, GET_GUEST_SERVICES, INVOKE_IN_VM
from hvintegration.testing.powershell_peers import LocalStandInPeer
from hvintegration.testing.standin_powershell import password_digest
from hvintegration.transport._powershell_wire import powershell_argv

_SPECIALS = [
    "'",
    '"',
    "`",
    "$(Stop-Computer)",
    ";",
    "\n",
    "\x00",
    "\u2018",
    "\u2019",
    "\u201a",
    "\u201b",
    "|",
    "*",
]
_TEXT = st.lists(st.one_of(st.sampled_from(_SPECIALS), st.characters()), max_size=10).map("".join)
_SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _requests(peer: LocalStandInPeer) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in peer.log.read_text().splitlines()]
    for start in (entry["argv"] for entry in entries if "argv" in entry):
        assert start == list(powershell_argv("pwsh")[1:])
    return [entry for entry in entries if "operation" in entry]


def test_copy_paths_arrive_unchanged(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    loop = asyncio.new_event_loop()
    host = HyperVHost(peer.open_transport(), timeout=10)

    @_SETTINGS
    @given(source=_TEXT.filter(bool), destination=_TEXT.filter(bool))
    def check(source: str, destination: str) -> None:
        peer.log.write_text("")
        # Guest Service Interface is off, so the copy fails; the request went out.
        with contextlib.suppress(HvIntegrationError):
            loop.run_until_complete(host.vm("demovm").copy_file(source, destination))
        assert _requests(peer) == [
            {
                "operation": COPY_VM_FILE.name,
                "parameters": {
                    "VM": {"Name": "demovm"},
                    "SourcePath": source,
                    "DestinationPath": destination,
                    "CreateFullPath": False,
                    "Overwrite": False,
                },
            }
        ]

    try:
        check()
    finally:
        loop.run_until_complete(host.aclose())
        loop.close()


def test_powershell_direct_credentials_arrive_unchanged(tmp_path: Path) -> None:
    peer = LocalStandInPeer(tmp_path)
    loop = asyncio.new_event_loop()
    host = HyperVHost(peer.open_transport(), timeout=10)

    @_SETTINGS
    @given(user=_TEXT, password=_TEXT)
    def check(user: str, password: str) -> None:
        peer.log.write_text("")
        guest = host.vm("demovm").windows(Credential(user, password))
        # Most generated credentials are refused; the request went out all the same.
        with contextlib.suppress(HvIntegrationError):
            loop.run_until_complete(guest.services())
        requests = _requests(peer)
        assert len(requests) == 1
        assert requests[0]["operation"] == INVOKE_IN_VM.name
        parameters = requests[0]["parameters"]
        # The log keeps a digest of the password, never the password.
        assert parameters["UserName"] == user
        assert parameters["Password"] == password_digest(password)
        # The guest script travels as a parameter too, exactly as shipped.
        assert parameters["Script"] == GET_GUEST_SERVICES.script

    try:
        check()
    finally:
        loop.run_until_complete(host.aclose())
        loop.close()
