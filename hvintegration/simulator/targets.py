"""The ``sim://`` and ``sim-linux://`` URLs, and simulated peers kept in state files.

URL forms::

    sim://[HOSTNAME][?os=KEY&locale=LOCALE&vms=N&latency=SECONDS&state=PATH&guest=VM
                     &host_file=PATH&rights=R&hyperv=0|1&language=MODE&edition=E&powercli=0|1]
    sim-linux://[NAME][?distro=KEY&user=NAME&sudo=0|1&latency=SECONDS&state=PATH]

For ``sim://``, ``os`` is a key of :data:`hvintegration.simulator.HOST_OSES`,
``locale`` a key of :data:`hvintegration.simulator.LOCALES`; ``vms=N`` adds
``vm001`` ... ``vmN`` beside ``demovm``; ``guest=VM`` connects inside that
VM, as a connection straight to a Windows guest would (the VM's name, or its
id with or without braces; a name two VMs share is refused, as the host
refuses it); ``host_file=PATH`` puts a small text file
(39 bytes: ``A file on the simulated Hyper-V host.`` and CR LF) at that
Windows path on the host, a source for ``host copy-file`` from the command
line. The session options
play a host as ``doctor`` may find it: ``rights`` (``administrator``,
``hyperv-administrators`` or ``none``), ``hyperv=0`` (no Hyper-V module),
``language`` (a language mode such as ``ConstrainedLanguage``), ``edition``
(``Desktop`` or ``Core``) and ``powercli=1`` (VMware PowerCLI installed). For
``sim-linux://``,
``distro`` is a key of :data:`hvintegration.simulator.linux.DISTROS`. On
both, ``state=PATH`` keeps the host or guest in a JSON file so that changes
outlive the process (each connection otherwise starts afresh); the other
options then only seed a file that does not exist yet. A simulated peer has
no login: a ``user:password@`` part is refused (the user of a
``sim-linux://`` guest is the ``user`` option).
"""

from __future__ import annotations

import abc
import contextlib
import errno
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from hvintegration.errors import HvIntegrationError, InvalidTargetError
from hvintegration.simulator.distros import DISTROS
from hvintegration.simulator.engine import (
    deliver_command,
    deliver_operation,
    run_simulated_call,
    run_simulated_command,
)
from hvintegration.simulator.linux import SimulatedLinuxGuest
from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.profiles import HOST_OSES, LOCALES
from hvintegration.simulator.session import EDITIONS, LANGUAGE_MODES, RIGHTS
from hvintegration.simulator.state import edit_guest_state, edit_state, load_guest, load_host
from hvintegration.transport._url import check_options, parse_options
from hvintegration.transport.base import CompletedCommand
from hvintegration.transport.simlinux import SimulatedLinuxTransport
from hvintegration.transport.simulator import SimulatorTransport

if TYPE_CHECKING:
    from hvintegration.operations import Operation
    from hvintegration.simulator.engine import CallOutcome
    from hvintegration.transport.base import JsonValue, OperationResult

__all__ = ["HostStateFile", "LinuxStateFile", "SimulatedLinuxTarget", "SimulatorTarget"]

_Peer = TypeVar("_Peer", SimulatedHost, SimulatedLinuxGuest)


class _StateFile(abc.ABC, Generic[_Peer]):
    """What both kinds of state file share: checking, editing, and the URL.

    A file that cannot serve (not JSON, another kind of state, a directory,
    a missing directory) raises :class:`~hvintegration.errors.InvalidTargetError`
    naming the file and the fault, and the file is left as it was.
    """

    def __init__(self, path: str | os.PathLike[str], seed: _Peer) -> None:
        self.path = os.fspath(path)
        self.seed: _Peer = seed
        self._url = self._url_for(seed)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"

    @property
    def url(self) -> str:
        """The URL that reaches this file, describing the peer last read from
        it (before the first read, the seed that would start it)."""
        return self._url

    @abc.abstractmethod
    def _url_for(self, peer: _Peer) -> str:
        """The URL of the state file holding ``peer``."""

    @abc.abstractmethod
    def _load(self, path: str) -> _Peer:
        """Read the file (raising ``OSError`` or ``ValueError``)."""

    @abc.abstractmethod
    def _edit(self) -> contextlib.AbstractContextManager[_Peer]:
        """The file's ``edit_*state`` context, seeded."""

    def _check_place(self) -> Path:
        path = Path(self.path)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a state file")
        if not path.exists() and not path.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, f"directory {path.parent} does not exist")
        return path

    def _unusable(self, exc: OSError | ValueError) -> InvalidTargetError:
        if isinstance(exc, OSError):
            # The path of an OSError may be the lock file or a temporary one.
            where = f" ({exc.filename})" if exc.filename not in (None, self.path) else ""
            detail = f"{self.path}: {exc.strerror or exc}{where}"
        else:
            # The loaders' messages start with the file's path.
            detail = str(exc)
        return InvalidTargetError(f"unusable state file: {detail}", target=self.url)

    def check(self) -> None:
        """Read the state file now and change nothing: a bad file fails here.

        The transport calls this when it opens.

        Raises:
            InvalidTargetError: The file or its directory cannot serve, and why.
        """
        try:
            path = self._check_place()
            if path.exists():
                self._url = self._url_for(self._load(self.path))
        except (OSError, ValueError) as exc:
            raise self._unusable(exc) from exc

    @contextlib.contextmanager
    def _editing(self) -> Iterator[_Peer]:
        """The peer under the file's lock; the block's changes are saved."""
        answering = False
        try:
            self._check_place()
            with self._edit() as peer:
                self._url = self._url_for(peer)
                answering = True
                yield peer
                answering = False
        except (OSError, ValueError) as exc:
            if answering or isinstance(exc, HvIntegrationError):
                raise
            raise self._unusable(exc) from exc


class HostStateFile(_StateFile[SimulatedHost]):
    """A simulated host kept in a state file, as a target.

    Every call loads the host under the file's lock, answers, and saves it,
    so several processes can share one lab. Opening the transport reads the
    file once, so a file that holds no host fails there.

    Args:
        path: The state file.
        seed: The host that starts the file when it does not exist yet.
        guest: Run calls inside this VM (name or id) instead of on the host.

    Raises:
        InvalidTargetError: From the transport's ``open()`` or a call: the
            file or its directory cannot serve (the message says why).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        seed: SimulatedHost | None = None,
        guest: str | None = None,
    ) -> None:
        self.guest = guest
        super().__init__(path, seed if seed is not None else SimulatedHost())

    def _url_for(self, peer: SimulatedHost) -> str:
        return SimulatorTarget(
            host_name=peer.name,
            os=peer.os.key,
            locale=peer.locale,
            latency=peer.latency,
            state=self.path,
            guest=self.guest,
            rights=peer.rights,
            hyperv_module=peer.hyperv_module,
            language_mode=peer.language_mode,
            edition=peer.edition,
            powercli=peer.powercli,
        ).url

    def _load(self, path: str) -> SimulatedHost:
        return load_host(path)

    def _edit(self) -> contextlib.AbstractContextManager[SimulatedHost]:
        return edit_state(self.path, create=self.seed)

    def open(self) -> SimulatorTransport:
        """A transport whose operations the host in the file answers."""
        return _HostStateTransport(self)

    def _call(self, operation: str, parameters: Mapping[str, JsonValue]) -> CallOutcome:
        with self._editing() as host:
            return run_simulated_call(host, operation, parameters, guest=self.guest)

    async def answer_operation(
        self, operation: Operation, parameters: Mapping[str, JsonValue]
    ) -> OperationResult:
        """Answer one operation from the host in the file."""
        return await deliver_operation(operation, parameters, self._call, target=self.url)


class LinuxStateFile(_StateFile[SimulatedLinuxGuest]):
    """A simulated Linux guest kept in a state file, as a target.

    Opening the transport reads the file once, so a file that holds no
    Linux guest fails there.

    Args:
        path: The state file.
        seed: The guest that starts the file when it does not exist yet.

    Raises:
        InvalidTargetError: From the transport's ``open()`` or a call: the
            file or its directory cannot serve (the message says why).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, seed: SimulatedLinuxGuest | None = None
    ) -> None:
        super().__init__(path, seed if seed is not None else SimulatedLinuxGuest())

    def _url_for(self, peer: SimulatedLinuxGuest) -> str:
        return SimulatedLinuxTarget(
            name=peer.name,
            distro=peer.distro.key,
            user=peer.user,
            sudo=peer.sudo,
            latency=peer.latency,
            state=self.path,
        ).url

    def _load(self, path: str) -> SimulatedLinuxGuest:
        return load_guest(path)

    def _edit(self) -> contextlib.AbstractContextManager[SimulatedLinuxGuest]:
        return edit_guest_state(self.path, create=self.seed)

    def open(self) -> SimulatedLinuxTransport:
        """A transport whose commands the guest in the file answers."""
        return _LinuxStateTransport(self)

    async def answer_command(self, argv: tuple[str, ...], input: bytes | None) -> CompletedCommand:
        """Answer one command from the guest in the file."""
        with self._editing() as guest:
            outcome = run_simulated_command(guest, argv, input)
        return await deliver_command(outcome, target=self.url)


class _HostStateTransport(SimulatorTransport):
    """``sim://`` over a state file: the file is read when the transport opens."""

    def __init__(self, peer: HostStateFile) -> None:
        super().__init__(peer)
        self._file = peer

    async def _open(self) -> None:
        self._file.check()


class _LinuxStateTransport(SimulatedLinuxTransport):
    """``sim-linux://`` over a state file: the file is read when the transport opens."""

    def __init__(self, peer: LinuxStateFile) -> None:
        super().__init__(peer)
        self._file = peer

    async def _open(self) -> None:
        self._file.check()


def _host_part(url: urllib.parse.SplitResult, scheme: str, hint: str) -> str:
    # A simulated peer has no login: ``sim://admin:pw@HV01`` is refused, as
    # ``local://`` refuses it, so a password there is never shown in logs,
    # errors, reprs or records. Only the part after the last ``@`` is named.
    host = url.netloc.rpartition("@")[2]
    if "@" in url.netloc:
        raise InvalidTargetError(
            f"{scheme}:// takes no user or password in the URL; {hint}",
            target=f"{scheme}://{host}",
        )
    return host


def _latency(single: Mapping[str, str], scheme: str, target: str) -> float:
    try:
        latency = float(single.get("latency", "0"))
    except ValueError:
        raise InvalidTargetError(
            f"malformed {scheme}:// latency {single['latency']!r}: "
            "give a number of seconds from 0 to 60",
            target=target,
        ) from None
    if not 0 <= latency <= 60:
        raise InvalidTargetError(f"{scheme}:// takes latency from 0 to 60 seconds", target=target)
    return latency


_SESSION_OPTIONS = ("rights", "hyperv", "language", "edition", "powercli")
_FALSE = ("0", "false", "no")
_TRUE = ("1", "true", "yes")


def _flag(single: Mapping[str, str], name: str, default: bool, target: str) -> bool:
    value = single.get(name)
    if value is None:
        return default
    if value.lower() not in _FALSE + _TRUE:
        raise InvalidTargetError(f"sim:// takes {name}=0 or {name}=1, not {value!r}", target=target)
    return value.lower() in _TRUE


def _choice(single: Mapping[str, str], name: str, valid: tuple[str, ...], target: str) -> str:
    value = single.get(name, valid[0])
    if value not in valid:
        raise InvalidTargetError(
            f"unknown sim:// {name} {value!r} (valid: {', '.join(valid)})", target=target
        )
    return value


def _session_options(single: Mapping[str, str], target: str) -> dict[str, Any]:
    """The session settings of a ``sim://`` URL: what ``doctor`` checks."""
    return {
        "rights": _choice(single, "rights", RIGHTS, target),
        "hyperv_module": _flag(single, "hyperv", True, target),
        "language_mode": _choice(single, "language", LANGUAGE_MODES, target),
        "edition": _choice(single, "edition", tuple(EDITIONS), target),
        "powercli": _flag(single, "powercli", False, target),
    }


_DEFAULT_HOST = "HV01"
# The contents of the file that sim://?host_file=PATH puts on the host.
_DEMO_HOST_FILE = b"A file on the simulated Hyper-V host.\r\n"
_WINDOWS_PATH = re.compile(r"[A-Za-z]:\\[^\x00-\x1f]+")
_DEFAULT_OS = "windows-server-2022"
_DEFAULT_LOCALE = "en-US"


@attrs.frozen
class SimulatorTarget:
    """Settings for a ``sim://`` target: a fresh simulated host per connection.

    Attributes:
        host_name: The simulated host's name.
        os: A host OS key.
        locale: A locale key.
        extra_vms: How many ``vmNNN`` VMs to add beside ``demovm``.
        latency: Seconds per round trip.
        state: A state file that keeps the host between connections and
            processes; created from the other settings when missing.
        guest: Connect inside this VM (name or id) instead of to the host,
            as a connection straight to a Windows guest would.
        rights: What the account may do (``administrator``,
            ``hyperv-administrators``, ``none``).
        hyperv_module: Whether the Hyper-V PowerShell module is installed.
        language_mode: The session's language mode.
        edition: ``Desktop`` or ``Core``.
        powercli: Whether VMware PowerCLI is installed too.
        host_file: A Windows path on the host where a small text file
            is put, to copy into a guest.

    Example:
        >>> from hvintegration.transport import parse_target
        >>> parse_target("sim://HV02?locale=de-DE&vms=3").url
        'sim://HV02?locale=de-DE&vms=3'
    """

    host_name: str = _DEFAULT_HOST
    os: str = _DEFAULT_OS
    locale: str = _DEFAULT_LOCALE
    extra_vms: int = 0
    latency: float = 0.0
    state: str | None = None
    guest: str | None = None
    rights: str = "administrator"
    hyperv_module: bool = True
    language_mode: str = "FullLanguage"
    edition: str = "Desktop"
    powercli: bool = False
    host_file: str | None = None

    def __repr__(self) -> str:
        return f"<SimulatorTarget {self.url}>"

    @property
    def url(self) -> str:
        """The target as a URL."""
        query = {}
        if self.os != _DEFAULT_OS:
            query["os"] = self.os
        if self.locale != _DEFAULT_LOCALE:
            query["locale"] = self.locale
        if self.extra_vms:
            query["vms"] = str(self.extra_vms)
        if self.latency:
            query["latency"] = f"{self.latency:g}"
        if self.state:
            query["state"] = self.state
        if self.guest:
            query["guest"] = self.guest
        if self.rights != "administrator":
            query["rights"] = self.rights
        if not self.hyperv_module:
            query["hyperv"] = "0"
        if self.language_mode != "FullLanguage":
            query["language"] = self.language_mode
        if self.edition != "Desktop":
            query["edition"] = self.edition
        if self.powercli:
            query["powercli"] = "1"
        if self.host_file:
            query["host_file"] = self.host_file
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"sim://{self.host_name}{suffix}"

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> SimulatorTarget:
        """Parse ``sim://`` URL parts.

        Raises:
            InvalidTargetError: An option is unknown or malformed.
        """
        host_name = _host_part(url, "sim", "name the simulated host only: sim://HV01")
        options, single = parse_options(url)
        text = f"sim://{host_name}"
        allowed = {
            "os",
            "locale",
            "vms",
            "latency",
            "state",
            "guest",
            "host_file",
            *_SESSION_OPTIONS,
        }
        check_options(url, options, allowed, scheme="sim", target=text)
        os_key = single.get("os", _DEFAULT_OS)
        if os_key not in HOST_OSES:
            raise InvalidTargetError(
                f"unknown simulated host OS {os_key!r} (valid: {', '.join(HOST_OSES)})",
                target=text,
            )
        locale = single.get("locale", _DEFAULT_LOCALE)
        if locale not in LOCALES:
            raise InvalidTargetError(
                f"unknown simulated locale {locale!r} (valid: {', '.join(LOCALES)})", target=text
            )
        try:
            extra_vms = int(single.get("vms", "0"))
        except ValueError:
            # Python's own "invalid literal for int()" names no option.
            raise InvalidTargetError(
                f"malformed sim:// vms {single['vms']!r}: give a whole number from 0 to 10000",
                target=text,
            ) from None
        if not 0 <= extra_vms <= 10_000:
            raise InvalidTargetError("sim:// takes vms from 0 to 10000", target=text)
        host_file = single.get("host_file") or None
        if host_file is not None and not _WINDOWS_PATH.fullmatch(host_file):
            raise InvalidTargetError(
                f"sim:// host_file {host_file!r}: give a Windows path on the host, such as"
                " C:\\Tools\\agent.msi",
                target=text,
            )
        return cls(
            host_name=host_name or _DEFAULT_HOST,
            os=os_key,
            locale=locale,
            extra_vms=extra_vms,
            latency=_latency(single, "sim", text),
            state=single.get("state") or None,
            guest=single.get("guest") or None,
            host_file=host_file,
            **_session_options(single, text),
        )

    def build_host(self) -> SimulatedHost:
        """A new simulated host with these settings."""
        host = SimulatedHost(
            self.host_name,
            os=self.os,
            locale=self.locale,
            latency=self.latency,
            powercli=self.powercli,
            rights=self.rights,
            hyperv_module=self.hyperv_module,
            language_mode=self.language_mode,
            edition=self.edition,
        )
        width = max(3, len(str(self.extra_vms)))
        for number in range(1, self.extra_vms + 1):
            host.add_vm(f"vm{number:0{width}d}")
        if self.host_file is not None:
            host.add_host_file(self.host_file, _DEMO_HOST_FILE)
        return host

    def open(self) -> SimulatorTransport:
        """A transport to a new simulated host, or to the one in the state file."""
        host = self.build_host()
        if self.state is not None:
            return HostStateFile(self.state, seed=host, guest=self.guest).open()
        if self.guest is not None:
            return host.inside(self.guest).open()
        return host.open()


_DEFAULT_GUEST = "linuxvm"
_DEFAULT_DISTRO = "debian-12"


@attrs.frozen
class SimulatedLinuxTarget:
    """Settings for a ``sim-linux://`` target: a fresh simulated guest per connection.

    Attributes:
        name: The guest's host name.
        distro: A key of :data:`~hvintegration.simulator.linux.DISTROS`.
        user: The login name.
        sudo: Whether the user has passwordless sudo.
        latency: Seconds per command.
        state: A state file that keeps the guest between connections and
            processes; created from the other settings when missing.

    Example:
        >>> from hvintegration.transport import parse_target
        >>> parse_target("sim-linux://web1?distro=rhel-9&user=admin&sudo=0").url
        'sim-linux://web1?distro=rhel-9&user=admin&sudo=0'
    """

    name: str = _DEFAULT_GUEST
    distro: str = _DEFAULT_DISTRO
    user: str = "root"
    sudo: bool = True
    latency: float = 0.0
    state: str | None = None

    def __repr__(self) -> str:
        return f"<SimulatedLinuxTarget {self.url}>"

    @property
    def url(self) -> str:
        """The target as a URL."""
        query: dict[str, str] = {}
        if self.distro != _DEFAULT_DISTRO:
            query["distro"] = self.distro
        if self.user != "root":
            query["user"] = self.user
        if not self.sudo:
            query["sudo"] = "0"
        if self.latency:
            query["latency"] = f"{self.latency:g}"
        if self.state:
            query["state"] = self.state
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"sim-linux://{self.name}{suffix}"

    @classmethod
    def from_url(cls, url: urllib.parse.SplitResult) -> SimulatedLinuxTarget:
        """Parse ``sim-linux://`` URL parts.

        Raises:
            InvalidTargetError: An option is unknown or malformed.
        """
        name = _host_part(
            url, "sim-linux", "the login goes in ?user= (sim-linux://web1?user=admin)"
        )
        text = f"sim-linux://{name}"
        options, single = parse_options(url)
        allowed = {"distro", "user", "sudo", "latency", "state"}
        check_options(url, options, allowed, scheme="sim-linux", target=text)
        distro = single.get("distro", _DEFAULT_DISTRO)
        if distro not in DISTROS:
            raise InvalidTargetError(
                f"unknown simulated distro {distro!r} (valid: {', '.join(DISTROS)})", target=text
            )
        return cls(
            name=name or _DEFAULT_GUEST,
            distro=distro,
            user=single.get("user") or "root",
            sudo=single.get("sudo", "1") not in ("0", "false", "no"),
            latency=_latency(single, "sim-linux", text),
            state=single.get("state") or None,
        )

    def build_guest(self) -> SimulatedLinuxGuest:
        """A new simulated guest with these settings."""
        return SimulatedLinuxGuest(
            self.name, distro=self.distro, user=self.user, sudo=self.sudo, latency=self.latency
        )

    def open(self) -> SimulatedLinuxTransport:
        """A transport to a new simulated guest, or to the one in the state file."""
        guest = self.build_guest()
        if self.state is not None:
            return LinuxStateFile(self.state, seed=guest).open()
        return guest.open()
