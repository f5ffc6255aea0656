"""Full status of Linux guests: one SSH round trip vs the seed's commands over ssh.

The seed document reads a Linux guest by hand with three commands
(``lsmod | grep hv_utils``, ``ps -ef | grep hv``, ``compgen -c hv_``), which
a script runs as three ``ssh host CMD`` calls with the OpenSSH client.
``LinuxGuest.status()`` gets more (driver, VMBus devices, installed and
running daemons, units) in one command on one reused connection.

The manual way is measured four ways, so each ratio says what it is against:
three ``ssh`` runs per guest or one ``ssh`` per guest running all three
commands, each with the guests one after another or all at once. The
library is measured one guest after another and all at once (connecting
included), and all at once on connections already open. Every library row
prints its ratio against every manual baseline, side by side.

Both run against the same real sshd (the guest sandbox of
``hvintegration.testing.linux_guest``, with the real hv_kvp_daemon running)
through a small TCP proxy on loopback that delays every chunk by half the
round-trip time in each direction, as a network would. The proxy runs in a
process of its own, so that its work does not share the library's event
loop (the ``ssh`` clients of the manual way are processes of their own
too). "50 guests" are 50 separate connections to that sshd. Ratios are
measured in one run.

The last line puts many concurrent calls on one guest: 200 status calls at
once on one connection, through the sandbox's sshd with OpenSSH's default
``MaxSessions`` of 10 (the transport runs 8 at a time and queues the rest),
all of which must succeed; calls per second beside the one-at-a-time rate.

Usage (root, Debian with openssh-server and hyperv-daemons)::

    .venv/bin/python benchmarks/linux_status.py [--rtt 0.04] [--guests 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hvintegration.linux import LinuxGuest
from hvintegration.testing.linux_guest import GuestSandbox, sandbox_unavailable_reason

MANUAL = ["lsmod | grep hv_utils", "ps -ef | grep hv", "bash -c 'compgen -c hv_'"]


class DelayProxy:
    """Forwards TCP connections on loopback, delaying data by rtt/2 each way."""

    def __init__(self, target_port: int, rtt: float) -> None:
        self.target_port = target_port
        self.one_way = rtt / 2
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Future[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        both = asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        self._handlers.add(both)
        await both

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.one_way, data))
        except OSError:
            pass
        queue.put_nowait((loop.time() + self.one_way, b""))
        await sender

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)


MANUAL_FAILED: list[int] = []
"""Exit statuses of manual ``ssh`` runs that failed (255: the connection
failed, as when sshd drops it past ``MaxStartups``); printed, never hidden."""


class ProxyProcess:
    """A :class:`DelayProxy` in a child process (this file run with ``--proxy``)."""

    def __init__(self, target_port: int, rtt: float) -> None:
        self.target_port = target_port
        self.rtt = rtt
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--proxy", str(self.target_port), "--rtt", str(self.rtt),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self._process.stdout is not None
        self.port = int(await self._process.stdout.readline())

    async def aclose(self) -> None:
        if self._process is not None and self._process.stdin is not None:
            # End of input is the child's signal to stop.
            self._process.stdin.close()
            await self._process.wait()


async def serve_proxy(target_port: int, rtt: float) -> None:
    """The child process: run the proxy, print its port, serve until stdin ends.

    The parent holds stdin open; when it closes it (or exits, however it
    exits) the proxy stops, so no proxy outlives a run.
    """
    proxy = DelayProxy(target_port, rtt)
    await proxy.start()
    print(proxy.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await proxy.aclose()


async def manual_way(proxy_port: int, key: str, known_hosts: str, *, one_ssh: bool = False) -> None:
    """The seed's way: three separate OpenSSH client runs, one after another,
    or (``one_ssh``) one run with the three commands joined by ``;``.

    The OpenSSH client does not try again when sshd drops a connection
    (``MaxStartups``); such a failed run is faster than a real one, so it
    is counted in :data:`MANUAL_FAILED` and printed beside the figures.
    ``grep`` without a match exits 1, which is not a failure."""
    for command in ["; ".join(MANUAL)] if one_ssh else MANUAL:
        process = await asyncio.create_subprocess_exec(
            "ssh", "-p", str(proxy_port), "-i", key,
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "BatchMode=yes",
            "-o", "ControlPath=none", "root@127.0.0.1", command,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        status = await process.wait()
        if status == 255:
            MANUAL_FAILED.append(status)


async def timed(make: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await make()
    return time.perf_counter() - start


async def main(rtt: float, guests: int) -> None:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        raise SystemExit(f"cannot run: {reason}")
    with GuestSandbox() as sandbox:
        assert sandbox.server is not None
        proxy = ProxyProcess(sandbox.server.port, rtt)
        await proxy.start()
        host_key = sandbox.server.known_hosts.read_text().split(" ", 1)[1]
        known = Path(sandbox.root) / "proxy_known_hosts"
        known.write_text(f"[127.0.0.1]:{proxy.port} {host_key}")
        key = str(sandbox.server.client_key)
        query = urllib.parse.urlencode({"known_hosts": str(known), "key": key})
        url = f"ssh://root@127.0.0.1:{proxy.port}?{query}"
        async with LinuxGuest.connect(sandbox.url()) as direct:
            await direct.daemon("kvp").start()

        async def ours_cold() -> None:
            async with LinuxGuest.connect(url) as guest:
                await guest.status()

        async def manual() -> None:
            await manual_way(proxy.port, key, str(known))

        async def manual_one_ssh() -> None:
            await manual_way(proxy.port, key, str(known), one_ssh=True)

        # One guest: warm (the library's normal mode: a connection per guest,
        # kept open) and cold (connection set-up included).
        async with LinuxGuest.connect(url) as guest:
            await guest.status()
            warm = min([await timed(guest.status) for _ in range(3)])
        cold = min([await timed(ours_cold) for _ in range(3)])
        by_hand = min([await timed(manual) for _ in range(3)])
        by_hand_one = min([await timed(manual_one_ssh) for _ in range(3)])

        # Many guests: the library reading all at once, vs the manual way
        # and the library one guest after another.
        async def ours_concurrent() -> None:
            await asyncio.gather(*(ours_cold() for _ in range(guests)))

        async def ours_sequential() -> None:
            for _ in range(guests):
                await ours_cold()

        async def manual_sequential() -> None:
            for _ in range(guests):
                await manual()

        async def manual_concurrent() -> None:
            await asyncio.gather(*(manual() for _ in range(guests)))

        async def one_ssh_sequential() -> None:
            for _ in range(guests):
                await manual_one_ssh()

        async def one_ssh_concurrent() -> None:
            await asyncio.gather(*(manual_one_ssh() for _ in range(guests)))

        concurrent = await timed(ours_concurrent)
        sequential = await timed(ours_sequential)
        # Open connections, as a long-running tool keeps them (not timed).
        opened = await asyncio.gather(*(LinuxGuest.connect(url) for _ in range(guests)))
        try:
            await asyncio.gather(*(g.status() for g in opened))
            concurrent_warm = min(
                [await timed(lambda: asyncio.gather(*(g.status() for g in opened)))
                 for _ in range(2)]
            )  # fmt: skip
        finally:
            await asyncio.gather(*(g.aclose() for g in opened))
        manual_all = await timed(manual_sequential)
        manual_all_concurrent = await timed(manual_concurrent)
        one_ssh_all = await timed(one_ssh_sequential)
        one_ssh_all_concurrent = await timed(one_ssh_concurrent)

        # 200 status calls at once on one guest, one connection, sshd with
        # its default MaxSessions (10): every call must succeed.
        burst = 200
        async with LinuxGuest.connect(url) as guest:
            await guest.status()
            one_by_one = min([await timed(guest.status) for _ in range(3)])
            start = time.perf_counter()
            results = await asyncio.gather(
                *(guest.status() for _ in range(burst)), return_exceptions=True
            )
            burst_seconds = time.perf_counter() - start
        failed = [r for r in results if isinstance(r, BaseException)]
        await proxy.aclose()

    print(f"injected round-trip time: {rtt * 1000:.0f} ms (proxy on loopback)")
    print()
    print("1 guest")
    print(f"  {'case':<52}{'seconds':>9}{'vs 3 ssh':>10}{'vs 1 ssh':>10}")
    one_guest = [
        ("manual: 3 x `ssh host CMD`", by_hand),
        ("manual: 1 x `ssh host 'CMD; CMD; CMD'`", by_hand_one),
        ("LinuxGuest.status() incl. connecting", cold),
        ("LinuxGuest.status() on an open connection", warm),
    ]
    for label, seconds in one_guest:
        print(
            f"  {label:<52}{seconds:>9.3f}{by_hand / seconds:>9.1f}x{by_hand_one / seconds:>9.1f}x"
        )
    baselines = [
        ("3 ssh seq", manual_all),
        ("3 ssh conc", manual_all_concurrent),
        ("1 ssh seq", one_ssh_all),
        ("1 ssh conc", one_ssh_all_concurrent),
    ]
    print()
    print(f"{guests} guests (ratio = baseline seconds / row seconds; above 1 is faster)")
    header = "".join(f"{name:>12}" for name, _ in baselines)
    print(f"  {'case':<44}{'seconds':>9}{header}")
    many = [
        ("manual, 3 ssh per guest, one after another", manual_all),
        ("manual, 3 ssh per guest, all guests at once", manual_all_concurrent),
        ("manual, 1 ssh per guest, one after another", one_ssh_all),
        ("manual, 1 ssh per guest, all guests at once", one_ssh_all_concurrent),
        ("LinuxGuest, one after another, connecting", sequential),
        ("LinuxGuest, all at once, connecting", concurrent),
        ("LinuxGuest, all at once, open connections", concurrent_warm),
    ]
    for label, seconds in many:
        ratios = "".join(f"{base / seconds:>11.1f}x" for _, base in baselines)
        print(f"  {label:<44}{seconds:>9.3f}{ratios}")
    print(
        f"library, {guests} guests concurrently vs one after another (both connecting): "
        f"{sequential / concurrent:.1f}x"
    )
    print(
        f"1 guest, {burst} concurrent status calls on one connection (sshd MaxSessions 10): "
        f"{burst - len(failed)}/{burst} succeeded, {burst / burst_seconds:.1f} calls/s "
        f"vs {1 / one_by_one:.1f} calls/s one at a time "
        f"({(burst / burst_seconds) * one_by_one:.1f}x)"
    )
    print(
        f"manual ssh runs that failed (dropped by sshd past MaxStartups; faster than a real run): "
        f"{len(MANUAL_FAILED)}"
    )
    if failed:
        raise SystemExit(f"{len(failed)} concurrent calls failed, first: {failed[0]!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rtt", type=float, default=0.04, help="round-trip time in seconds")
    parser.add_argument("--guests", type=int, default=50, help="guests read at once")
    parser.add_argument("--proxy", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.proxy:
        asyncio.run(serve_proxy(args.proxy, args.rtt))
    else:
        asyncio.run(main(args.rtt, args.guests))
