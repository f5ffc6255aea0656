"""A real OpenSSH ``sshd`` on a loopback port, for testing SSH transports.

The server gets its own host key, client key, ``authorized_keys`` and
configuration in a private directory, listens on ``127.0.0.1`` only, and is
stopped (with everything it started) when the context exits. Tests then
exercise real authentication, real host-key checking and real channels.

It needs the ``sshd`` binary (Debian: ``openssh-server``) and root, because
sshd switches to the logged-in user. :func:`sshd_unavailable_reason` says why
a test must be skipped.

Example::

    with OpenSSHServer(extra_config=["SetEnv FOO=bar"]) as server:
        async with asyncssh.connect(**server.client_options()) as conn:
            print((await conn.run("echo $FOO")).stdout)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["OpenSSHServer", "free_loopback_port", "sshd_unavailable_reason"]

_SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def _sshd_binary() -> str | None:
    for candidate in _SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sshd")


def sshd_unavailable_reason() -> str | None:
    """Why :class:`OpenSSHServer` cannot run here, or ``None`` when it can."""
    if _sshd_binary() is None:
        return "OpenSSH sshd is not installed (Debian package openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed"
    if os.geteuid() != 0:
        return "sshd must run as root to log users in"
    return None


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


class OpenSSHServer:
    """An ``sshd`` on ``127.0.0.1`` with its own keys and configuration.

    Args:
        user: The account clients log in as; its key is authorised.
        extra_config: More ``sshd_config`` lines (``SetEnv``, ``Subsystem``,
            ``ForceCommand``...).
        password_auth: Whether sshd also accepts passwords.
        wrapper: A command prefix sshd is run under, such as
            ``["unshare", "-m", "--propagation", "private", "sh", "setup.sh"]``
            for a private mount namespace; the last element must exec its
            arguments.
        max_sessions: sshd's ``MaxSessions`` (channels per connection);
            ``None`` keeps OpenSSH's default of 10, as real servers have it.

    Attributes:
        directory: The private directory with keys, config and logs.
        port: The port it listens on, once started.
        client_key: The client's private key file.
        known_hosts: A known_hosts file that trusts this server's host key.
    """

    def __init__(
        self,
        *,
        user: str = "root",
        extra_config: Iterable[str] = (),
        password_auth: bool = False,
        wrapper: Iterable[str] = (),
        max_sessions: int | None = None,
    ) -> None:
        self.user = user
        self.extra_config = list(extra_config)
        self.password_auth = password_auth
        self.wrapper = list(wrapper)
        self.max_sessions = max_sessions
        self.directory = Path(tempfile.mkdtemp(prefix="hvintegration-sshd-"))
        # sshd reads authorized_keys as the logged-in user, who must be able
        # to pass through this directory; the private keys in it stay 0600.
        self.directory.chmod(0o711)
        self.port = 0
        self.client_key = self.directory / "client_key"
        self.host_key = self.directory / "host_key"
        self.known_hosts = self.directory / "known_hosts"
        self.log_file = self.directory / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<OpenSSHServer 127.0.0.1:{self.port} user={self.user}>"

    def _write_config(self) -> Path:
        _keygen(self.host_key, "hvintegration-test-host")
        _keygen(self.client_key, "hvintegration-test-client")
        authorized = self.directory / "authorized_keys"
        authorized.write_text((self.directory / "client_key.pub").read_text())
        authorized.chmod(0o644)
        host_public = (self.directory / "host_key.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public[0]} {host_public[1]}\n")
        lines = [
            f"Port {self.port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {self.host_key}",
            f"PidFile {self.directory / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            "StrictModes no",
            "UsePAM no",
            "PermitRootLogin yes",
            f"PasswordAuthentication {'yes' if self.password_auth else 'no'}",
            "KbdInteractiveAuthentication no",
            f"AllowUsers {self.user}",
            "LogLevel VERBOSE",
            *([f"MaxSessions {self.max_sessions}"] if self.max_sessions is not None else []),
            "MaxStartups 64:30:128",
            *self.extra_config,
        ]
        config = self.directory / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 10.0) -> None:
        """Generate keys and config, start sshd and wait until it accepts.

        Raises:
            RuntimeError: sshd exited or never listened; the message carries
                its log.
        """
        reason = sshd_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        self.port = free_loopback_port()
        config = self._write_config()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        sshd = _sshd_binary()
        assert sshd is not None
        command = [*self.wrapper, sshd, "-D", "-f", str(config), "-E", str(self.log_file)]
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        log = self.log_file.read_text() if self.log_file.exists() else ""
        self.stop()
        raise RuntimeError(f"sshd did not start on port {self.port}: {log[-2000:]}")

    def stop(self) -> None:
        """Stop sshd and every session it started; remove the directory."""
        process, self._process = self._process, None
        if process is not None:
            # sshd runs in its own session: signal the whole group so that
            # session children (shells, subsystems) go too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def log(self) -> str:
        """What sshd has logged so far."""
        return self.log_file.read_text() if self.log_file.exists() else ""

    def client_options(self, **overrides: Any) -> Mapping[str, Any]:
        """Keyword arguments for ``asyncssh.connect`` that log in with the test key.

        Args:
            overrides: Options to add or replace.

        Returns:
            ``host``, ``port``, ``username``, ``client_keys`` and
            ``known_hosts`` set for this server.
        """
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "username": self.user,
            "client_keys": [str(self.client_key)],
            "known_hosts": str(self.known_hosts),
        }
        options.update(overrides)
        return options

    def url(self, scheme: str = "ssh", query: str = "") -> str:
        """A target URL for this server, such as ``ssh://root@127.0.0.1:2222``."""
        suffix = f"?{query}" if query else ""
        return f"{scheme}://{self.user}@127.0.0.1:{self.port}{suffix}"

    def __enter__(self) -> OpenSSHServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
