"""psrp:// URLs, and what the transport hands pypsrp for WinRM, SSH and processes.

WinRM cannot run here, so these tests check the settings pypsrp receives:
the endpoint URL, the authentication, TLS verification and the CA bundle.
A live WinRM test runs when ``HVINTEGRATION_TEST_WINRM`` names a host.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psrp
import pytest

from hvintegration.errors import AuthenticationError, HostKeyError, InvalidTargetError
from hvintegration.operations import LIST_VMS
from hvintegration.transport import parse_target
from hvintegration.transport._clixml import error_from_ps, error_to_ps, from_wire, to_wire
from hvintegration.transport.base import ErrorRecord
from hvintegration.transport.psrp import PSRPTarget, PSRPTransport

SECRET = "pa:ss@w/rd?&#"
QUOTED_SECRET = urllib.parse.quote(SECRET, safe="")


def parse(url: str) -> PSRPTarget:
    target = parse_target(url)
    assert isinstance(target, PSRPTarget)
    return target


# URL parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("psrp://hv01", PSRPTarget("hv01")),
        (
            "psrp://admin@hv01:5986?ssl=true&auth=ntlm",
            PSRPTarget("hv01", user="admin", port=5986, ssl=True, auth="ntlm"),
        ),
        (
            "psrp://CORP%5Cadmin@hv01?auth=kerberos&configuration=JEA.HyperV",
            PSRPTarget("hv01", user="CORP\\admin", auth="kerberos", configuration="JEA.HyperV"),
        ),
        (
            "psrp://hv01?ssl=yes&ca=/etc/lab-ca.pem&max_pipelines=4&connect_timeout=5",
            PSRPTarget(
                "hv01", ssl=True, ca="/etc/lab-ca.pem", max_pipelines=4, connect_timeout=5.0
            ),
        ),
        (
            "psrp://admin@hv01?via=ssh&known_hosts=/k&key=/a&key=/b&subsystem=pwsh",
            PSRPTarget(
                "hv01",
                via="ssh",
                user="admin",
                known_hosts="/k",
                client_keys=("/a", "/b"),
                subsystem="pwsh",
            ),
        ),
        (
            "psrp://localhost?via=process&executable=/usr/bin/pwsh&arg=-NoLogo&arg=-ServerMode",
            PSRPTarget(
                "localhost",
                via="process",
                executable="/usr/bin/pwsh",
                arguments=("-NoLogo", "-ServerMode"),
            ),
        ),
        ("psrp://[fe80::1]:5985", PSRPTarget("fe80::1", port=5985)),
    ],
)
def test_good_urls_parse_and_print_back(url: str, expected: PSRPTarget) -> None:
    target = parse(url)
    assert target == expected
    assert parse(target.url) == target


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("psrp://hv01?color=blue", "unknown psrp:// option color"),
        ("psrp://hv01?key=/a", "unknown psrp:// option key for via=wsman"),
        ("psrp://hv01?via=ssh&ssl=true", "unknown psrp:// option ssl for via=ssh"),
        ("psrp://hv01?via=telnet", "unknown psrp:// connection via='telnet'"),
        ("psrp://hv01:99999", "port"),
        ("psrp://hv01:http", "port"),
        ("psrp://?auth=ntlm", "needs a host name"),
        ("psrp://hv01?auth=digest", "unknown psrp:// auth 'digest'"),
        ("psrp://hv01?auth=basic", "basic authentication over plain HTTP"),
        ("psrp://hv01?ca=/ca.pem", "ca= applies to WinRM over HTTPS"),
        ("psrp://hv01?ssl=maybe", "ssl takes true or false"),
        ("psrp://hv01?max_pipelines=0", "max_pipelines must be from 1 to 64"),
        ("psrp://hv01?max_pipelines=many", "max_pipelines must be a whole number"),
        ("psrp://hv01?connect_timeout=-1", "connect_timeout must be a finite number"),
    ],
)
def test_bad_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(InvalidTargetError, match=message):
        parse_target(url)


@pytest.mark.parametrize(
    "query", ["", "?auth=basic", "?max_pipelines=0", "?color=blue", "?via=ssh&ssl=1"]
)
def test_a_password_is_never_echoed(query: str) -> None:
    url = f"psrp://admin:{QUOTED_SECRET}@hv01{query}"
    try:
        target = parse(url)
    except InvalidTargetError as exc:
        text = f"{exc} {exc!r} {exc.target}"
    else:
        assert target.password == SECRET
        text = f"{target} {target!r} {target.url} {target.open()!r}"
    assert SECRET not in text
    assert QUOTED_SECRET not in text
    assert "pa:ss" not in text


def test_a_bad_port_error_does_not_repeat_the_url() -> None:
    with pytest.raises(InvalidTargetError) as caught:
        parse_target(f"psrp://admin:{QUOTED_SECRET}@hv01:notaport")
    assert QUOTED_SECRET not in str(caught.value)


# What pypsrp receives -------------------------------------------------------


def wsman(target: PSRPTarget) -> psrp.WSManInfo:
    info = target.connection_info()
    assert isinstance(info, psrp.WSManInfo)
    return info


def test_winrm_over_http_uses_message_encryption_on_5985() -> None:
    info = wsman(parse(f"psrp://admin:{QUOTED_SECRET}@hv01"))
    data = info.connection_info
    assert data.connection_uri == "http://hv01:5985/wsman"
    assert data.auth == "negotiate"
    assert data.username == "admin"
    assert data.password == SECRET
    # Negotiate over HTTP encrypts every message with the session key.
    assert data.message_encryption is True
    assert SECRET not in repr(data)
    assert info.configuration_name == "Microsoft.PowerShell"


def test_winrm_over_https_verifies_the_certificate_by_default() -> None:
    info = wsman(parse("psrp://admin@hv01.example.com?ssl=true&auth=basic"))
    data = info.connection_info
    assert data.connection_uri == "https://hv01.example.com:5986/wsman"
    assert data.auth == "basic"
    assert data.message_encryption is False
    assert data.tls.verify_mode == ssl.CERT_REQUIRED
    assert data.tls.check_hostname is True


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_pki(directory: Path) -> tuple[str, str, str]:
    """A CA, and a certificate it signed for 127.0.0.1: (ca, certificate, key) files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("hvintegration test CA"))
        .issuer_name(_name("hvintegration test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(_name("hvintegration test CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(paths[0]), str(paths[1]), str(paths[2])


@contextlib.asynccontextmanager
async def refusing_https_endpoint(certificate: str, key: str) -> AsyncIterator[int]:
    """An HTTPS server on 127.0.0.1 that answers every request 401, like WinRM
    refusing a login; yields its port."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ssl.SSLError, asyncio.IncompleteReadError):
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            writer.write(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Negotiate\r\n"
                b"Content-Length: 0\r\n\r\n"
            )
            await writer.drain()
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    server = await asyncio.start_server(refuse, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("trust", "expected"),
    [
        ("system", HostKeyError),
        ("ca", AuthenticationError),
        ("none", AuthenticationError),
    ],
)
async def test_https_certificate_checks_against_a_real_tls_peer(
    tmp_path: Path, trust: str, expected: type[Exception]
) -> None:
    ca, certificate, key = _make_pki(tmp_path)
    async with refusing_https_endpoint(certificate, key) as port:
        target = PSRPTarget(
            "127.0.0.1",
            port=port,
            ssl=True,
            auth="ntlm",
            user="admin",
            password=SECRET,
            ca=ca if trust == "ca" else None,
            cert_validation=trust != "none",
            connect_timeout=5,
        )
        transport = target.open()
        with pytest.raises(expected) as caught:
            await transport.open()
        await transport.aclose()
    assert SECRET not in str(caught.value)
    if expected is HostKeyError:
        assert "ca=PATH" in str(caught.value)


def test_a_ca_bundle_replaces_the_system_trust_store(tmp_path: Path) -> None:
    ca = _make_pki(tmp_path)[0]
    query = urllib.parse.urlencode({"ssl": "true", "ca": ca})
    tls = wsman(parse(f"psrp://hv01:443?{query}")).connection_info.tls
    assert tls.verify_mode == ssl.CERT_REQUIRED
    assert tls.check_hostname is True
    subjects = [dict(part[0] for part in cert["subject"]) for cert in tls.get_ca_certs()]
    assert subjects == [{"commonName": "hvintegration test CA"}]


def test_an_unreadable_ca_bundle_is_a_settings_error(tmp_path: Path) -> None:
    target = PSRPTarget("hv01", ssl=True, ca=str(tmp_path / "missing.pem"))
    with pytest.raises(InvalidTargetError, match="cannot read the CA bundle"):
        target.connection_info()


def test_turning_certificate_validation_off_is_explicit() -> None:
    target = parse("psrp://hv01?ssl=true&cert_validation=false")
    tls = wsman(target).connection_info.tls
    assert tls.verify_mode == ssl.CERT_NONE
    assert tls.check_hostname is False
    assert "cert_validation=false" in target.url


@pytest.mark.parametrize("auth", ["ntlm", "kerberos", "credssp"])
def test_each_auth_reaches_pypsrp(auth: str) -> None:
    info = wsman(parse(f"psrp://admin@hv01:8080?auth={auth}"))
    assert info.connection_info.auth == auth
    assert info.connection_info.connection_uri == "http://hv01:8080/wsman"


def test_ssh_settings_reach_pypsrp(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    target = PSRPTarget(
        "hv01", via="ssh", user="admin", known_hosts=str(known_hosts), subsystem="pwsh"
    )
    info = target.connection_info()
    assert isinstance(info, psrp.SSHInfo)
    assert (info.hostname, info.port, info.subsystem) == ("hv01", 22, "pwsh")
    assert info.options.username == "admin"
    assert info.options.connect_timeout == 30.0


def test_process_defaults_to_pwsh_in_server_mode() -> None:
    info = PSRPTarget("localhost", via="process").connection_info()
    assert isinstance(info, psrp.ProcessInfo)
    assert info.executable == "pwsh"
    assert info.arguments == ["-NoProfile", "-NoLogo", "-ServerMode"]


async def test_refused_winrm_credentials_never_show_the_password() -> None:
    transport = PSRPTarget("hv01", user="admin", password=SECRET).open()
    assert isinstance(transport, PSRPTransport)
    refused = psrp.WSManAuthenticationError("401 Unauthorized", http_code=401)
    error = transport._translate(refused, "list_vms")
    assert isinstance(error, AuthenticationError)
    assert SECRET not in str(error)
    assert "negotiate authentication as admin" in str(error)
    await transport.aclose()


# CLIXML conversions ----------------------------------------------------------


def test_values_survive_the_clixml_round_trip() -> None:
    value = {
        "Name": "it's \u2018quoted\u2019\nnul\x00",
        "Count": 2**40,
        "Small": -3,
        "Ratio": 0.1,
        "Flag": False,
        "Nothing": None,
        "Service": {"OperationalStatus": ["Ok", "ProtocolMismatch"], "Empty": []},
    }
    assert from_wire(to_wire(value)) == value


def test_empty_objects_survive_real_clixml() -> None:
    from psrpcore.types import deserialize, serialize

    def round_trip(value: object) -> object:
        return from_wire(deserialize(serialize(to_wire(value), None), None))

    assert round_trip({}) == {}
    assert round_trip({"A": {}, "B": [{}], "C": "x"}) == {"A": {}, "B": [{}], "C": "x"}


def test_non_json_values_are_refused() -> None:
    with pytest.raises(TypeError):
        to_wire({"When": object()})
    with pytest.raises(TypeError):
        to_wire(2**70)
    with pytest.raises(TypeError):
        to_wire({1: "x"})


def test_error_records_survive_the_clixml_round_trip() -> None:
    record = ErrorRecord(
        "Hyper-V was unable to find a virtual machine with name or id 'x'.",
        error_id="HvIntegration.VMNotFound",
        category="ObjectNotFound",
        exception_type="System.Management.Automation.ItemNotFoundException",
        target_object=0,
        details="demovm\nweb01",
    )
    assert error_from_ps(error_to_ps(record)) == record


# Live WinRM --------------------------------------------------------------------

LIVE = os.environ.get("HVINTEGRATION_TEST_WINRM", "")


@pytest.mark.skipif(
    not LIVE,
    reason="set HVINTEGRATION_TEST_WINRM to a Hyper-V host (a name or a psrp:// URL; "
    "HVINTEGRATION_TEST_WINRM_USER and _PASSWORD give credentials) to run it",
)
async def test_live_winrm_lists_vms() -> None:
    url = LIVE if "://" in LIVE else f"psrp://{LIVE}"
    target = parse(url)
    user = os.environ.get("HVINTEGRATION_TEST_WINRM_USER")
    password = os.environ.get("HVINTEGRATION_TEST_WINRM_PASSWORD")
    if user or password:
        import attrs

        target = attrs.evolve(target, user=user or target.user, password=password)
    async with target.open() as transport:
        result = await transport.run_operation(LIST_VMS, {"VM": None}, timeout=60)
    assert all("Name" in vm and "Id" in vm for vm in result.output)
