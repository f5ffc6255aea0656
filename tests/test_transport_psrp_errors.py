"""Every failure pypsrp and psrpcore can raise maps through one table.

The table in ``hvintegration.transport._psrp_errors`` must name every
exception class the two packages define; this test walks them to check. A
loopback HTTP endpoint then plays a WinRM service that answers badly: "Access
is denied" (a permission error, not an unreachable host), an answer that is
not XML (a protocol error, not a raw ``ParseError``), and an answer too large
to read (refused as it arrives).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest

from hvintegration.errors import (
    HvIntegrationError,
    PermissionDeniedError,
    ProtocolError,
)
from hvintegration.operations import LIST_VMS
from hvintegration.transport._psrp_errors import ERROR_TABLE, map_psrp_error, rule_for
from hvintegration.transport.psrp import PSRPTarget


def defined_exceptions() -> Iterator[type[BaseException]]:
    for top in ("psrp", "psrpcore"):
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(package.__path__, f"{top}."):
            try:
                module = importlib.import_module(info.name)
            except Exception:  # Windows-only modules (psrp._connection._win32)
                continue
            for value in vars(module).values():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__.split(".")[0] == top
                ):
                    yield value


def test_every_exception_type_of_pypsrp_and_psrpcore_has_its_own_entry() -> None:
    kinds = set(defined_exceptions())
    assert len(kinds) >= 19
    missing = sorted(f"{k.__module__}.{k.__qualname__}" for k in kinds if k not in ERROR_TABLE)
    assert missing == []


def _sample(kind: type[BaseException]) -> BaseException:
    """An instance made the way the package makes one."""
    from psrpcore.types import PSInvocationState, PSVersion

    if kind.__name__ in ("InvalidPipelineState", "_InvalidState"):
        return kind("invoke", PSInvocationState.Failed, [PSInvocationState.Running])
    if kind.__name__ == "InvalidRunspacePoolState":
        from psrpcore.types import RunspacePoolState

        return kind("open", RunspacePoolState.Broken, [RunspacePoolState.Opened])
    if kind.__name__ == "InvalidProtocolVersion":
        return kind("connect", PSVersion("2.1"), PSVersion("2.2"))
    if kind.__name__ in ("WSManHTTPError", "WSManAuthenticationError"):
        return kind("refused", 401 if "Authentication" in kind.__name__ else 503)
    if "WSManFault" in [base.__name__ for base in kind.__mro__]:
        return kind(reason="something")
    if kind.__name__ in ("PipelineFailed", "PipelineStopped"):
        return kind("the pipeline ended")
    if kind.__name__ == "MissingCipherError":
        return kind()
    return kind("failure")


@pytest.mark.parametrize(
    "kind", sorted(set(defined_exceptions()), key=lambda k: k.__qualname__), ids=str
)
def test_each_exception_becomes_the_error_its_entry_names(kind: type[BaseException]) -> None:
    settings = PSRPTarget("hv01", user="admin", password="s3cret")
    error = map_psrp_error(
        _sample(kind),  # type: ignore[arg-type]
        settings=settings,
        operation="list_vms",
    )
    rule = rule_for(kind)
    assert rule is not None
    assert isinstance(error, rule.errors)
    assert isinstance(error, HvIntegrationError)
    assert "s3cret" not in str(error)
    assert error.target == settings.url


# -- a loopback WinRM endpoint that answers badly ---------------------------

_FAULT = """<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault">
<s:Header><a:Action>http://schemas.dmtf.org/wbem/wsman/1/wsman/fault</a:Action></s:Header>
<s:Body><s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code>
<s:Reason><s:Text xml:lang="en-US">Access is denied. </s:Text></s:Reason>
<s:Detail><f:WSManFault Code="5" Machine="hv01"><f:Message>Access is denied. </f:Message>
</f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"""


class FakeWinRM:
    """Answers every POST with one status and body, over plain HTTP."""

    def __init__(
        self,
        status: int,
        body: bytes | None = None,
        size: int = 0,
        announce: bool = True,
        headers: str = "",
    ) -> None:
        self.status = status
        self.headers = headers
        self.announce = announce
        self.body = body or b""
        self.size = size or len(self.body)
        self.sent = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                # Unannounced, the body runs until the connection closes.
                length_header = (
                    f"Content-Length: {self.size}" if self.announce else "Connection: close"
                )
                writer.write(
                    f"HTTP/1.1 {self.status} X\r\nContent-Type: application/soap+xml;"
                    f"charset=UTF-8\r\n{self.headers}{length_header}\r\n\r\n".encode()
                )
                if self.body:
                    writer.write(self.body)
                    self.sent += len(self.body)
                else:
                    block = b"<" * 65536
                    while self.sent < self.size:
                        writer.write(block)
                        self.sent += len(block)
                        await writer.drain()
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> FakeWinRM:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *args: Any) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
def winrm_target() -> Any:
    def make(server: FakeWinRM, **settings: Any) -> PSRPTarget:
        return PSRPTarget(
            "127.0.0.1",
            port=server.port,
            user="admin",
            password="s3cret",
            auth="ntlm",
            connect_timeout=10,
            **settings,
        )

    return make


async def test_a_wsman_access_denied_fault_is_a_permission_error(winrm_target: Any) -> None:
    async with FakeWinRM(500, _FAULT.encode()) as server:
        transport = winrm_target(server).open()
        with pytest.raises(PermissionDeniedError, match="Access is denied") as caught:
            await transport.open()
        await transport.aclose()
    assert isinstance(caught.value, PermissionError)
    assert "s3cret" not in str(caught.value)


async def test_an_answer_that_is_not_xml_is_a_protocol_error(winrm_target: Any) -> None:
    async with FakeWinRM(200, b"<html><body>Welcome to nginx!") as server:
        transport = winrm_target(server).open()
        with pytest.raises(ProtocolError, match="not XML"):
            await transport.run_operation(LIST_VMS, {"VM": None}, timeout=20)
        await transport.aclose()


@pytest.mark.parametrize("announce", [True, False], ids=["content-length", "until-close"])
async def test_an_oversized_answer_is_refused_before_it_is_read_whole(
    winrm_target: Any, announce: bool
) -> None:
    size = 256 * 1024 * 1024
    async with FakeWinRM(401, size=size, announce=announce) as server:
        transport = winrm_target(server, max_answer=1024 * 1024).open()
        with pytest.raises(ProtocolError, match="more than 1048576 bytes"):
            await transport.open()
        await transport.aclose()
    assert server.sent < size


async def test_a_compressed_answer_cannot_slip_past_the_cap(winrm_target: Any) -> None:
    # A few KB of gzip that would inflate past the cap after it had counted them.
    import gzip

    bomb = gzip.compress(b"<" * (8 * 1024 * 1024), compresslevel=9)
    async with FakeWinRM(200, bomb, headers="Content-Encoding: gzip\r\n") as server:
        transport = winrm_target(server, max_answer=1024 * 1024).open()
        with pytest.raises(ProtocolError, match="compressed body"):
            await transport.open()
        await transport.aclose()


def test_max_answer_is_a_url_setting() -> None:
    from hvintegration.transport import parse_target

    target = parse_target("psrp://admin@hv01?max_answer=1048576")
    assert isinstance(target, PSRPTarget)
    assert target.max_answer == 1048576
    assert "max_answer=1048576" in target.url
