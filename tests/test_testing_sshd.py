"""The loopback sshd fixture gives real authentication and host-key checks."""

from __future__ import annotations

import asyncssh
import pytest

from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason

pytestmark = pytest.mark.skipif(
    sshd_unavailable_reason() is not None, reason=str(sshd_unavailable_reason())
)


@pytest.fixture(scope="module")
def server():
    with OpenSSHServer(extra_config=["SetEnv HVINTEGRATION_PROBE=yes"]) as running:
        yield running


async def test_logs_in_with_the_client_key_and_runs_a_command(server: OpenSSHServer) -> None:
    async with asyncssh.connect(**server.client_options()) as conn:
        result = await conn.run("echo $HVINTEGRATION_PROBE", check=True)
    assert result.stdout == "yes\n"


async def test_rejects_an_unknown_host_key(server: OpenSSHServer, tmp_path) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(
        f"[127.0.0.1]:{server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIBu0V0w6dT0VhZpHqCkBQpmWyqxkGmxuUAXrUv0JrG4c\n"
    )
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async with asyncssh.connect(**server.client_options(known_hosts=str(other))):
            pass


async def test_rejects_a_client_without_the_key(server: OpenSSHServer) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        async with asyncssh.connect(**server.client_options(client_keys=[], agent_path=None)):
            pass


def test_keeps_openssh_default_maxsessions() -> None:
    # Real servers run with MaxSessions 10: the rig must not hide channel
    # limits by raising it.
    with OpenSSHServer() as default, OpenSSHServer(max_sessions=2) as strict:
        assert "MaxSessions" not in (default.directory / "sshd_config").read_text()
        assert "MaxSessions 2" in (strict.directory / "sshd_config").read_text()
