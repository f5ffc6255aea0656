"""WinRM connections for pypsrp that refuse an oversized answer.

pypsrp 1.0.0b1 reads each WinRM HTTP answer whole into memory before it
looks at it (``AsyncWSManHTTP.post`` awaits ``response.aread()``), so a peer
that answers with hundreds of megabytes costs several times that in memory
before anything fails. :class:`GuardedWSManInfo` puts a limit under the HTTP
client: the body of each answer is counted as it arrives, and one over the
limit (or announcing more in ``Content-Length``) ends in a
:class:`~hvintegration.errors.ProtocolError` at once.

A normal answer is far smaller: WinRM's ``MaxEnvelopeSizekb`` is 500 KB by
default ("Installation and configuration for Windows Remote Management",
https://learn.microsoft.com/windows/win32/winrm/installation-and-configuration-for-windows-remote-management),
and pypsrp asks for no more than that per envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from hvintegration.errors import ProtocolError
from hvintegration.transport._outofproc import psrp
from hvintegration.transport._powershell_wire import DEFAULT_MAX_ANSWER

__all__ = ["DEFAULT_MAX_ANSWER", "GuardedWSManInfo", "limit_http_answers"]


class _CappedStream:
    """An httpcore response body that stops past ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int, target: str) -> None:
        self._stream = stream
        self._limit = limit
        self._target = target

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                raise _too_large(self._limit, self._target)
            yield chunk

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


def _too_large(limit: int, target: str) -> ProtocolError:
    return ProtocolError(
        f"the WinRM service answered with more than {limit} bytes; refused "
        "(raise max_answer if the endpoint's MaxEnvelopeSizekb is that large on purpose)",
        target=target,
    )


class _CappedConnection:
    """An httpcore connection or pool whose answers are capped; the rest is passed through."""

    def __init__(self, inner: Any, limit: int, target: str) -> None:
        self.inner = inner
        self._limit = limit
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def __aenter__(self) -> Any:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *args: Any) -> None:
        await self.inner.__aexit__(*args)

    async def handle_async_request(self, request: Any) -> Any:
        import httpcore

        response = await self.inner.handle_async_request(request)
        for name, value in response.headers:
            announced = value.strip()
            if name.lower() == b"content-encoding" and announced.lower() not in (b"", b"identity"):
                # httpx would inflate a compressed body after this layer has
                # counted it: 200 KB of gzip can become 200 MB. WinRM never
                # compresses unasked, so an encoded answer is refused whole.
                await response.aclose()
                raise ProtocolError(
                    "the WinRM service answered with a compressed body "
                    f"(Content-Encoding: {announced.decode('latin-1')[:40]}), which was not "
                    "asked for; refused so that the answer's size stays bounded",
                    target=self._target,
                )
            if (
                name.lower() == b"content-length"
                and announced.isdigit()
                and int(announced) > self._limit
            ):
                await response.aclose()
                raise _too_large(self._limit, self._target)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_CappedStream(response.stream, self._limit, self._target),
            extensions=response.extensions,
        )


def limit_http_answers(client: Any, limit: int, target: str) -> None:
    """Cap the body of every answer an ``httpx.AsyncClient`` of pypsrp's receives.

    Wraps the httpcore layer under the client's transports: pypsrp's own
    authenticating transport (its ``_connection``) and httpx's default one
    (its ``_pool``), including those mounted for proxies.

    Args:
        client: The ``httpx.AsyncClient``.
        limit: Bytes one answer may have.
        target: The target URL, for the error.
    """
    transports = [getattr(client, "_transport", None)]
    transports.extend(getattr(client, "_mounts", {}).values())
    for transport in transports:
        for attribute in ("_connection", "_pool"):
            inner = getattr(transport, attribute, None)
            if inner is not None and not isinstance(inner, _CappedConnection):
                setattr(transport, attribute, _CappedConnection(inner, limit, target))


class GuardedWSManInfo(psrp.WSManInfo):
    """``psrp.WSManInfo`` whose connections refuse answers over ``max_answer`` bytes.

    Args:
        target: The target URL, for errors.
        max_answer: Bytes one HTTP answer may have.
        *args: ``psrp.WSManInfo``'s arguments.
        **kwargs: ``psrp.WSManInfo``'s keyword arguments.
    """

    def __init__(self, target: str, max_answer: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.target = target
        self.max_answer = max_answer

    async def create_async(self, pool: Any, callback: Any) -> Any:
        connection = await super().create_async(pool, callback)
        http = getattr(getattr(connection, "_connection", None), "_http", None)
        if http is not None:
            limit_http_answers(http, self.max_answer, self.target)
        return connection
