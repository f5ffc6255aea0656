"""Passwords outside the URL, and URLs whose password would be misread.

The end-to-end cases log in to a real OpenSSH ``sshd`` with password
authentication: it runs in a private mount namespace in which ``/etc/shadow``
gives root a known password (sshd with ``UsePAM no`` checks it there), so
the machine's own accounts are untouched.
"""

from __future__ import annotations

import io
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration import HyperVHost, InvalidTargetError
from hvintegration.cli import EXIT_CODES, run
from hvintegration.testing.sshd import OpenSSHServer, sshd_unavailable_reason
from hvintegration.transport import parse_target

PASSWORD = "s3cr/et#?@x"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


# --- ambiguous URLs ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ssh://admin:12345/x@hv01",
        "ssh://admin:12345#x@hv01",
        "ssh://admin:12345?x@hv01",
        "ssh://admin:p@ss/x@hv01",
        "psrp://admin:12345/x@hv01?ssl=true",
        "psrp://admin:12345#x@hv01",
    ],
)
async def test_python_refuses_an_ambiguous_url_without_repeating_it(url: str) -> None:
    with pytest.raises(InvalidTargetError, match="ambiguous") as caught:
        await HyperVHost.connect(url)
    for secret in ("12345", "x@hv01", "p@ss"):
        assert secret not in str(caught.value)
    with pytest.raises(InvalidTargetError, match="percent-encode"):
        parse_target(url)


@pytest.mark.parametrize("url", ["ssh://admin:12345/x@hv01", "psrp://admin:1#2@hv01"])
def test_the_command_line_refuses_it_too(url: str) -> None:
    status, out, err = _run("-t", url, "host", "vms")
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert "ambiguous" in err
    assert "--password-file" in err
    assert "12345" not in err
    assert "1#2" not in err


def test_a_percent_encoded_password_is_read_whole() -> None:
    target = parse_target("ssh://admin:12345%2Fx%23y%3Fz@hv01:2222")
    assert (target.host, target.port, target.password) == ("hv01", 2222, "12345/x#y?z")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "sim://?state=/tmp/lab@home.json",
        "ssh://admin@hv01?key=/home/a@corp/id_ed25519",
        "psrp://admin@corp.example@hv01?ssl=true",
    ],
)
def test_an_at_sign_where_it_is_unambiguous_is_kept(url: str) -> None:
    parse_target(url)


# --- where a password may come from --------------------------------------------


@pytest.fixture
def no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HVINTEGRATION_PASSWORD", raising=False)


@pytest.mark.usefixtures("no_password")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--password-file", "{file}", "--ask-password"], "one way"),
        (["--password-file", "{missing}"], "cannot read the password file"),
        (["--password-file", "{empty}"], "is empty"),
        (["--ask-password"], "no terminal"),
    ],
)
def test_password_options_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    (tmp_path / "file").write_text(PASSWORD + "\n")
    (tmp_path / "empty").write_text("")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    words = [
        word.format(file=tmp_path / "file", missing=tmp_path / "nope", empty=tmp_path / "empty")
        for word in argv
    ]
    status, out, err = _run("-t", "ssh://admin@hv01", *words, "host", "vms")
    assert (status, out) == (EXIT_CODES["usage"], "")
    assert message in err
    assert PASSWORD not in err


@pytest.mark.usefixtures("no_password")
def test_a_password_twice_or_for_a_scheme_without_one_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("hunter2\n")
    status, _, err = _run(
        "-t", "ssh://admin:Zq9wx@hv01", "--password-file", str(secret), "host", "vms"
    )
    assert status == EXIT_CODES["usage"]
    assert "keep one" in err
    assert "Zq9wx" not in err
    assert "hunter2" not in err
    status, _, err = _run("-t", "sim://", "--password-file", str(secret), "host", "vms")
    assert status == EXIT_CODES["usage"]
    assert "sim:// takes no password" in err


def test_the_environment_password_is_ignored_where_no_password_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HVINTEGRATION_PASSWORD", "hunter2")
    assert _run("-t", "sim://", "host", "vms")[0] == 0


# --- a real login with the password --------------------------------------------


@pytest.fixture(scope="module")
def password_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSSHServer]:
    reason = sshd_unavailable_reason()
    if reason is None and (shutil.which("unshare") is None or shutil.which("openssl") is None):
        reason = "unshare and openssl are needed for a private /etc/shadow"
    if reason is not None:
        pytest.skip(reason)
    directory = tmp_path_factory.mktemp("shadow")
    hashed = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=PASSWORD,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = Path("/etc/shadow").read_text().splitlines()
    shadow = directory / "shadow"
    shadow.write_text(
        "\n".join(
            f"root:{hashed}:{line.split(':', 2)[2]}" if line.startswith("root:") else line
            for line in lines
        )
        + "\n"
    )
    shadow.chmod(0o640)
    wrapper = [
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount --bind "$0" /etc/shadow && exec "$@"',
        str(shadow),
    ]
    with OpenSSHServer(password_auth=True, wrapper=wrapper) as server:
        yield server


def _url(server: OpenSSHServer, userinfo: str = "root") -> str:
    return f"ssh://{userinfo}@127.0.0.1:{server.port}?known_hosts={server.known_hosts}"


@pytest.mark.usefixtures("no_password")
def test_a_password_file_logs_in(password_sshd: OpenSSHServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD + "\n")
    status, out, err = _run(
        "-t", _url(password_sshd), "--password-file", str(secret), "linux", "status"
    )
    assert (status, err) == (0, ""), err
    assert "Driver" in out
    wrong = tmp_path / "wrong"
    wrong.write_text("not it\n")
    status, _, err = _run(
        "-t", _url(password_sshd), "--password-file", str(wrong), "linux", "status"
    )
    assert status == EXIT_CODES["connection"]
    assert "authentication" in err
    assert "not it" not in err


def test_the_environment_password_logs_in(
    password_sshd: OpenSSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HVINTEGRATION_PASSWORD", PASSWORD)
    status, out, err = _run("-t", _url(password_sshd), "--json", "linux", "status")
    assert (status, err) == (0, "")
    assert '"driver"' in out
    # A password in the URL, percent-encoded, wins over the environment.
    monkeypatch.setenv("HVINTEGRATION_PASSWORD", "not it")
    encoded = "root:" + PASSWORD.replace("/", "%2F").replace("#", "%23").replace("?", "%3F")
    encoded = encoded.replace("@", "%40")
    assert _run("-t", _url(password_sshd, encoded), "linux", "status")[0] == 0


@pytest.mark.usefixtures("no_password")
def test_ask_password_prompts_on_a_terminal(password_sshd: OpenSSHServer) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command line on a terminal
        os.execv(
            sys.executable,
            [
                sys.executable,
                "-m",
                "hvintegration",
                "-t",
                _url(password_sshd),
                "--ask-password",
                "linux",
                "status",
            ],
        )
    seen = b""
    deadline = time.monotonic() + 60
    sent = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break  # the child closed the terminal
        if not chunk:
            break
        seen += chunk
        if not sent and b"password for ssh://root@127.0.0.1" in seen:
            os.write(fd, PASSWORD.encode() + b"\n")
            sent = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert sent, seen
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert PASSWORD.encode() not in seen  # getpass does not echo it
    assert b"Driver" in seen
