"""Peers that run the stand-in PowerShell as a real child process (needs pytest).

They let :class:`~hvintegration.testing.conformance.TransportConformance`
run over ``local://`` and ``ssh://`` exactly as against a real host: the
transport starts the stand-in
(:mod:`hvintegration.testing.standin_powershell`) with the fixed bootstrap,
and the test changes the simulated host through its state file.

Example (a test module)::

    import pytest
    from hvintegration.testing.conformance import TransportConformance
    from hvintegration.testing.powershell_peers import LocalStandInPeer

    class TestLocalPowerShell(TransportConformance):
        @pytest.fixture
        def peer(self, tmp_path):
            return LocalStandInPeer(tmp_path)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from hvintegration.simulator.model import SimulatedHost
from hvintegration.simulator.state import save_host
from hvintegration.testing.conformance import StateFilePeer
from hvintegration.testing.sshd import OpenSSHServer
from hvintegration.testing.standin_powershell import install_standin
from hvintegration.transport.base import PowerShellTransport
from hvintegration.transport.local import LocalTarget
from hvintegration.transport.ssh import SSHTarget

__all__ = ["LocalStandInPeer", "SSHStandInPeer", "standin_sshd"]


class LocalStandInPeer(StateFilePeer):
    """The stand-in PowerShell as a local child process, through ``local://``.

    Args:
        directory: A private directory for the state file, the wrappers and
            the log.
        mode: ``persistent`` or ``oneshot``.
        environment: More variables for the stand-in (see
            :func:`~hvintegration.testing.standin_powershell.install_standin`),
            to play a banner, a language mode or an older PowerShell.

    Attributes:
        executable: The ``pwsh`` wrapper the transport starts.
        log: The stand-in's log of starts and requests (JSON lines).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        mode: str = "persistent",
        environment: Mapping[str, str] | None = None,
    ) -> None:
        folder = Path(directory)
        super().__init__(folder / "host.json")
        self.mode = mode
        self.log = folder / "standin.log"
        self.executable = install_standin(
            folder / "bin", self.path, log=self.log, environment=environment
        )["pwsh"]

    def target(self) -> LocalTarget:
        """The ``local://`` settings that start the stand-in."""
        return LocalTarget(executable=str(self.executable), mode=self.mode)

    def open_transport(self) -> PowerShellTransport:
        """A new ``local://`` transport to the stand-in."""
        return self.target().open()


@contextlib.contextmanager
def standin_sshd(
    directory: str | os.PathLike[str], *, extra_config: tuple[str, ...] = ()
) -> Iterator[OpenSSHServer]:
    """A loopback sshd whose login user finds the stand-in as ``powershell`` and ``pwsh``.

    The stand-in serves the state file ``directory/host.json`` and logs to
    ``directory/standin.log``.

    Args:
        directory: A private directory for the wrappers, state and log.
        extra_config: More ``sshd_config`` lines.

    Yields:
        The running server.
    """
    folder = Path(directory)
    bin_directory = folder / "bin"
    install_standin(bin_directory, folder / "host.json", log=folder / "standin.log")
    path = f"{bin_directory}:/usr/local/bin:/usr/bin:/bin"
    with OpenSSHServer(extra_config=[f"SetEnv PATH={path}", *extra_config]) as server:
        yield server


class SSHStandInPeer(StateFilePeer):
    """The stand-in PowerShell behind a real sshd, through ``ssh://``.

    Args:
        server: A server from :func:`standin_sshd`.
        directory: The directory given to :func:`standin_sshd`; its host is
            reset to the default one.
        shell: The login shell the transport assumes (``powershell``,
            ``cmd`` or ``posix``); the command line is the same for each.
        mode: ``persistent`` or ``oneshot``.
    """

    def __init__(
        self,
        server: OpenSSHServer,
        directory: str | os.PathLike[str],
        *,
        shell: str = "powershell",
        mode: str = "persistent",
    ) -> None:
        folder = Path(directory)
        save_host(SimulatedHost(), folder / "host.json")
        super().__init__(folder / "host.json")
        self.server = server
        self.shell = shell
        self.mode = mode
        self.log = folder / "standin.log"

    def target(self, **overrides: object) -> SSHTarget:
        """The ``ssh://`` settings for the server, with the test key."""
        settings: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.server.port,
            "user": self.server.user,
            "known_hosts": str(self.server.known_hosts),
            "client_keys": (str(self.server.client_key),),
            "shell": self.shell,
            "mode": self.mode,
        }
        settings.update(overrides)
        return SSHTarget(**settings)  # type: ignore[arg-type]

    def open_transport(self) -> PowerShellTransport:
        """A new ``ssh://`` transport to the server."""
        return self.target().open()
