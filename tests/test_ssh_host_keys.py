"""Host-key trust over real OpenSSH: a refused key shows its SHA256
fingerprint, and a known_hosts file that is not there is a settings error."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration.cli import EXIT_CODES, run
from hvintegration.errors import HostKeyError, InvalidTargetError
from hvintegration.linux import LinuxGuest
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason


@pytest.fixture(scope="module")
def sshd() -> Iterator[OpenSSHServer]:
    reason = sshd_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with OpenSSHServer() as server:
        yield server


def _fingerprint(public_key: Path) -> str:
    # What ssh-keygen -lf prints: "256 SHA256:... comment (ED25519)".
    done = subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True
    )
    return done.stdout.split()[1]


def _url(server: OpenSSHServer, known_hosts: Path | str) -> str:
    return f"{server.url()}?key={server.client_key}&known_hosts={known_hosts}"


async def test_an_untrusted_host_key_shows_its_sha256_fingerprint(
    sshd: OpenSSHServer, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    expected = _fingerprint(sshd.host_key.with_name("host_key.pub"))
    assert expected.startswith("SHA256:")
    with pytest.raises(HostKeyError) as caught:
        async with LinuxGuest.connect(_url(sshd, empty)):
            pass
    assert expected in str(caught.value)
    assert f"127.0.0.1:{sshd.port} is not trusted" in str(caught.value)


@pytest.fixture
def other_key(tmp_path: Path) -> Path:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    return other


async def test_a_changed_host_key_shows_the_offered_fingerprint(
    sshd: OpenSSHServer, tmp_path: Path, other_key: Path
) -> None:
    algorithm, key = (tmp_path / "other.pub").read_text().split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {algorithm} {key}\n")
    with pytest.raises(HostKeyError) as caught:
        async with LinuxGuest.connect(_url(sshd, known_hosts)):
            pass
    assert _fingerprint(sshd.host_key.with_name("host_key.pub")) in str(caught.value)
    assert _fingerprint(tmp_path / "other.pub") not in str(caught.value)


async def test_a_missing_known_hosts_file_is_named(sshd: OpenSSHServer, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "known_hosts"
    with pytest.raises(InvalidTargetError, match="cannot read the known_hosts file") as caught:
        async with LinuxGuest.connect(_url(sshd, missing)):
            pass
    assert str(missing) in str(caught.value)


def test_the_command_line_exits_2_for_a_missing_known_hosts_file(
    sshd: OpenSSHServer, tmp_path: Path
) -> None:
    missing = tmp_path / "known_hosts"
    out, err = io.StringIO(), io.StringIO()
    status = run(["-t", _url(sshd, missing), "linux", "status"], out=out, err=err)
    assert status == EXIT_CODES["usage"]
    assert f"cannot read the known_hosts file '{missing}'" in err.getvalue()
    assert "cannot reach" not in err.getvalue()
