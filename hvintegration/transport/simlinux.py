"""The ``sim-linux://`` transport: shell commands answered by a simulated Linux guest.

It answers the library's fixed guest scripts (status, stop, start, KVP) and
``systemctl`` from a :class:`~hvintegration.simulator.linux.SimulatedLinuxGuest`,
writing the same reports a real guest's ``sh`` would, so that everything above
the transport runs unchanged. ``sudo -n`` succeeds only for root or a guest
whose user has passwordless sudo, and fails the way sudo does otherwise. Any
other command exits with status 127.

URL form::

    sim-linux://[NAME][?distro=KEY&user=NAME&sudo=0|1&latency=SECONDS]
"""

from __future__ import annotations

import asyncio
import urllib.parse

import attrs

from hvintegration.errors import InvalidTargetError, OperationTimeoutError
from hvintegration.linux.names import match_program
from hvintegration.linux.scripts import KVP_SCRIPT, START_SCRIPT, STATUS_SCRIPT, STOP_SCRIPT
from hvintegration.simulator.linux import DISTROS, SimulatedLinuxGuest
from hvintegration.transport._url import check_options, parse_options
from hvintegration.transport.base import CompletedCommand, ShellTransport

__all__ = ["SimulatedLinuxTarget", "SimulatedLinuxTransport"]

_RECORD = 2560
_KEY = 512


def _hex(text: str | bytes) -> str:
    return (text.encode() if isinstance(text, str) else text).hex()


class _Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def out(self, *fields: object) -> None:
        self.lines.append("\t".join(str(f) for f in fields))

    def data(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


class SimulatedLinuxTransport(ShellTransport):
    """Answers shell commands from one simulated Linux guest.

    Args:
        guest: The simulated guest.

    Example:
        >>> import asyncio
        >>> from hvintegration.simulator.linux import SimulatedLinuxGuest
        >>> async def main():
        ...     async with SimulatedLinuxGuest().transport() as transport:
        ...         done = await transport.run_command(["uname", "-r"], timeout=5)
        ...     return done.exit_status
        >>> asyncio.run(main())
        127
    """

    def __init__(self, guest: SimulatedLinuxGuest) -> None:
        self.guest = guest

    @property
    def target(self) -> str:
        """``sim-linux://NAME``."""
        return f"sim-linux://{self.guest.name}"

    async def _run_command(
        self,
        command: tuple[str, ...],
        *,
        input: bytes | None,
        timeout: float,
    ) -> CompletedCommand:
        self.guest.round_trips += 1
        try:
            await asyncio.wait_for(asyncio.sleep(self.guest.latency), timeout)
        except asyncio.TimeoutError:
            raise OperationTimeoutError(
                f"{command[0]} did not finish within {timeout:g} s",
                timeout=timeout,
                target=self.target,
                operation="run_command",
            ) from None
        status, stdout, stderr = self._answer(command, input or b"", root=self.guest.uid == 0)
        return CompletedCommand(command, status, stdout, stderr)

    def _answer(
        self, argv: tuple[str, ...], stdin: bytes, *, root: bool
    ) -> tuple[int, bytes, bytes]:
        guest = self.guest
        if argv[:3] == ("sudo", "-n", "--"):
            if not (root or guest.sudo):
                return 1, b"", b"sudo: a password is required\n"
            return self._answer(argv[3:], stdin, root=True)
        if argv[:2] == ("sh", "-c") and len(argv) >= 4:
            script, args = argv[2], list(argv[4:])
            if script == STATUS_SCRIPT:
                return 0, self._status(), b""
            if script == STOP_SCRIPT:
                return self._stop(args, root)
            if script == START_SCRIPT:
                return self._start(args, root)
            if script == KVP_SCRIPT:
                return self._kvp(args, stdin, root)
        if argv[:1] == ("systemctl",) and len(argv) == 4 and argv[2] == "--":
            return self._systemctl(argv[1], argv[3], root)
        return 127, b"", f"sh: {argv[0]}: not found\n".encode()

    def _status(self) -> bytes:
        g, r = self.guest, _Report()
        r.out("version", 1)
        r.out("uid", g.uid)
        r.out("user", g.user)
        r.out("kernel", g.distro.kernel)
        r.out("pid1", "systemd" if g.distro.systemd else "init")
        r.out("btime", g.boot_time)
        r.out("clk_tck", 100)
        if g.driver != "absent":
            r.out("driver_bound", 1)
            r.out("module_dir", 1)
            if g.driver == "module":
                r.out("module_initstate", "live")
                r.out("module_refcnt", 0)
                r.out("module_coresize", 20480)
            for n, class_id in enumerate(g.vmbus_class_ids()):
                r.out("device", f"{n:08x}-0000-0000-0000-000000000000", class_id, "hv_utils")
            for node in ("hv_kvp", "hv_vss", "hv_fcopy"):
                r.out("node", node, "char")
        for path in sorted(g.installed()):
            wrapper = path in g.distro.wrappers
            on_path = not path.startswith(("/usr/lib/", "/usr/libexec/"))
            r.out("installed", path, path, int(on_path), int(wrapper))
        for path in g.distro.helpers:
            on_path = not path.startswith(("/usr/lib/", "/usr/libexec/"))
            r.out("installed", path, path, int(on_path), 1)
        if g.distro.systemd:
            r.out("systemd", 1)
            for program, unit in g.distro.units.items():
                spec = match_program(program)
                main = next((p for p in g.processes if p.unit == unit), None)
                r.out("unit", f"Id={unit}")
                r.out("unit", "LoadState=loaded")
                r.out("unit", f"ActiveState={'active' if main else 'inactive'}")
                r.out("unit", f"SubState={'running' if main else 'dead'}")
                r.out("unit", f"MainPID={main.pid if main else 0}")
                r.out("unit", "UnitFileState=enabled")
                r.out("unit", "")
                assert spec is not None
        for p in g.processes:
            name = p.program.rsplit("/", 1)[-1][:15]
            exe = p.program if g.uid == 0 or p.uid == g.uid else ""
            args = b"".join(a.encode() + b"\0" for a in p.args)
            r.out(
                "proc",
                p.pid,
                p.uid,
                "root" if p.uid == 0 else g.user,
                p.start_ticks,
                _hex(exe),
                _hex(name),
                args.hex(),
            )
        r.out("end")
        return r.data()

    def _stop(self, args: list[str], root: bool) -> tuple[int, bytes, bytes]:
        force = args[1] == "1"
        r = _Report()
        left = []
        for item in args[2:]:
            pid, _, start = item.partition(":")
            process = next((p for p in self.guest.processes if str(p.pid) == pid), None)
            if process is None or str(process.start_ticks) != start:
                continue
            if not root and process.uid != self.guest.uid:
                left.append(process.pid)
                continue
            self.guest.signal(process.pid, "TERM")
            if any(p.pid == process.pid for p in self.guest.processes):
                if force:
                    self.guest.signal(process.pid, "KILL")
                else:
                    left.append(process.pid)
        # Like the real script, end with a fresh status report.
        if left:
            r.out("alive", *left)
            return 3, r.data() + self._status(), b""
        r.out("stopped")
        return 0, r.data() + self._status(), b""

    def _start(self, args: list[str], root: bool) -> tuple[int, bytes, bytes]:
        program = args[1]
        r = _Report()
        if not root:
            r.out("launcher", "exited", 1)
            r.out("log", _hex(f"{program}: must run as root\n"))
            return 0, r.data() + self._status(), b""
        if self.guest.start(program) is None:
            r.out("launcher", "exited", 1)
            r.out("log", _hex("open /dev/vmbus/hv_* failed; error: 2 No such file or directory\n"))
        else:
            r.out("launcher", "exited", 0)
            r.out("log", "")
        return 0, r.data() + self._status(), b""

    def _systemctl(self, verb: str, unit: str, root: bool) -> tuple[int, bytes, bytes]:
        g = self.guest
        if not g.distro.systemd:
            return 1, b"", b"System has not been booted with systemd as init system (PID 1).\n"
        programs = [p for p, u in g.distro.units.items() if u == unit]
        if not programs:
            return 5, b"", f"Failed to {verb} {unit}: Unit {unit} not found.\n".encode()
        if not root:
            return 1, b"", b"Failed to stop unit: Access denied\n"
        main = [p for p in g.processes if p.unit == unit]
        if verb in ("stop", "restart"):
            for p in main:
                # systemd sends SIGTERM, then SIGKILL after TimeoutStopSec.
                g.signal(p.pid, "KILL")
        idle = not [p for p in g.processes if p.unit == unit]
        if verb in ("start", "restart") and idle and g.start(programs[0], unit=unit) is None:
            message = f"Job for {unit} failed because the control process exited with error code."
            return 1, b"", (message + "\n").encode()
        return 0, b"", b""

    def _kvp(self, args: list[str], stdin: bytes, root: bool) -> tuple[int, bytes, bytes]:
        mode = args[0]
        r = _Report()
        if mode == "read":
            for pool in range(5):
                if pool in self.guest.pools:
                    r.out("pool", pool, "data", self.guest.pools[pool].hex())
                else:
                    r.out("pool", pool, "missing")
            return 0, r.data(), b""
        if not root:
            return 1, b"", b"PermissionError: [Errno 13] Permission denied\n"
        data = self.guest.pools.get(1, b"")
        records = [
            (data[i : i + _KEY].split(b"\0", 1)[0], data[i + _KEY : i + _RECORD])
            for i in range(0, len(data) - len(data) % _RECORD, _RECORD)
        ]
        for line in stdin.decode().splitlines():
            op, key_hex, value_hex = line.split("\t")
            key, value = bytes.fromhex(key_hex), bytes.fromhex(value_hex)
            padded = value.ljust(_RECORD - _KEY, b"\0")
            index = next((i for i, (k, _) in enumerate(records) if k == key), None)
            if op == "set" and index is not None:
                records[index] = (key, padded)
            elif op == "set":
                records.append((key, padded))
            elif index is not None:
                del records[index]
        self.guest.pools[1] = b"".join(k.ljust(_KEY, b"\0") + v for k, v in records)
        r.out("written", len(records))
        return 0, r.data(), b""

    async def _aclose(self) -> None:
        """Nothing to release; the simulated guest lives on."""


@attrs.frozen
class SimulatedLinuxTarget:
    """Settings for a ``sim-linux://`` target: a fresh simulated guest per connection.

    Attributes:
        name: The guest's host name.
        distro: A key of :data:`~hvintegration.simulator.linux.DISTROS`.
        user: The login name.
        sudo: Whether the user has passwordless sudo.
        latency: Seconds per command.

    Example:
        >>> from hvintegration.transport import parse_target
        >>> parse_target("sim-linux://web1?distro=rhel-9&user=admin&sudo=0").url
        'sim-linux://web1?distro=rhel-9&user=admin&sudo=0'
    """

    name: str = "linuxvm"
    distro: str = "debian-12"
    user: str = "root"
    sudo: bool = True
    latency: float = 0.0

    @property
    def url(self) -> str:
        """The target as a URL."""
        query: dict[str, str] = {}
        if self.distro != "debian-12":
            query["distro"] = self.distro
        if self.user != "root":
            query["user"] = self.user
        if not self.sudo:
            query["sudo"] = "0"
        if self.latency:
            query["latency"] = f"{self.latency:g}"
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"sim-linux://{self.name}{suffix}"

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> SimulatedLinuxTarget:
        """Parse ``sim-linux://`` URL parts.

        Raises:
            InvalidTargetError: An option is unknown or malformed.
        """
        text = f"sim-linux://{url.netloc}"
        options, single = parse_options(url)
        allowed = {"distro", "user", "sudo", "latency"}
        check_options(url, options, allowed, scheme="sim-linux", target=text)
        distro = single.get("distro", "debian-12")
        if distro not in DISTROS:
            raise InvalidTargetError(
                f"unknown simulated distro {distro!r} (valid: {', '.join(DISTROS)})", target=text
            )
        try:
            latency = float(single.get("latency", "0"))
        except ValueError as exc:
            raise InvalidTargetError(f"malformed latency: {exc}", target=text) from exc
        if not 0 <= latency <= 60:
            raise InvalidTargetError("latency must be 0 to 60 seconds", target=text)
        return cls(
            name=url.netloc or "linuxvm",
            distro=distro,
            user=single.get("user") or "root",
            sudo=single.get("sudo", "1") not in ("0", "false", "no"),
            latency=latency,
        )

    def build_guest(self) -> SimulatedLinuxGuest:
        """A new simulated guest with these settings."""
        return SimulatedLinuxGuest(
            self.name, distro=self.distro, user=self.user, sudo=self.sudo, latency=self.latency
        )

    def open(self) -> SimulatedLinuxTransport:
        """A transport to a new simulated guest."""
        return SimulatedLinuxTransport(self.build_guest())
