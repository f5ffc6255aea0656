"""Read-only checks of a host or a Windows guest before real work: ``doctor``.

:func:`doctor` (and :meth:`HyperVHost.preflight
<hvintegration.HyperVHost.preflight>`, :meth:`WindowsGuest.preflight
<hvintegration.windows.WindowsGuest.preflight>`) asks the target for its
facts in one round trip (the shipped ``preflight.ps1`` or
``guest_preflight.ps1``, which report every problem instead of stopping at
the first), adds what only the client can see (the transport and its
settings), and gives each check a :class:`Verdict` and a remedy. Nothing on
the target is changed.

A failure that stops the round trip (no connection, refused credentials, a
constrained session) becomes the verdict of the check it belongs to; the
checks it hides are ``skipped``. The records (:class:`~hvintegration.records.Check`,
:class:`~hvintegration.records.PreflightReport`) live in
:mod:`hvintegration.records`. The report holds no secret: the target URL
never carries a password, and the facts are what the session says about
itself, so its JSON form (:meth:`PreflightReport.as_dict`) is what to paste
into a bug report.

Example:
    >>> import asyncio
    >>> from hvintegration.preflight import doctor
    >>> report = asyncio.run(doctor("sim://HV01?rights=none"))
    >>> report.ok, report.check("rights").verdict.value
    (False, 'fail')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hvintegration import catalogue
from hvintegration._connect import PowerShellTargetLike, powershell_transport_for
from hvintegration._decode import Decoder
from hvintegration._resource import DEFAULT_TIMEOUT
from hvintegration._seconds import check_seconds
from hvintegration.errors import (
    AuthenticationError,
    HostKeyError,
    HvIntegrationError,
    HyperVModuleMissingError,
    InvalidTargetError,
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    PowerShellDirectError,
    PowerShellNotFoundError,
    ProtocolError,
    TransportError,
    UnsupportedPowerShellError,
    VMNotRunningError,
)
from hvintegration.operations import GUEST_PREFLIGHT, PREFLIGHT, Operation
from hvintegration.records import Check, PreflightReport, Verdict
from hvintegration.transport.base import JsonValue, PowerShellTransport

__all__ = [
    "GUEST_CHECKS",
    "HOST_CHECKS",
    "doctor",
    "preflight_guest",
    "preflight_host",
]

_GUIDE = "docs/real-hosts.md"
# PowerShell 7 runs the Hyper-V module natively from build 17763 on
# ("PowerShell 7 module compatibility"); PowerShell Direct needs Windows 10
# (build 10240) or Windows Server 2016 ("Manage Windows virtual machines with
# PowerShell Direct").
_NATIVE_HYPERV_BUILD = 17763
_DIRECT_BUILD = 10240

HOST_CHECKS = (
    "connection",
    "transport",
    "powershell",
    "language-mode",
    "rights",
    "hyperv-module",
    "get-vm",
    "powershell-direct",
    "powershell-direct-guests",
    "read:list_vms",
    "read:get_integration_services",
    "read:set_integration_services",
    "read:copy_vm_file",
    "read:invoke_in_vm",
)
"""The checks of a host, in report order."""

GUEST_CHECKS = (
    "connection",
    "transport",
    "powershell",
    "language-mode",
    "rights",
    "powershell-direct",
    "read:get_guest_services",
    "read:set_guest_service",
)
"""The checks of a Windows guest, in report order."""


# -- what the client alone can see --------------------------------------------


def _transport_check(transport: PowerShellTransport) -> Check:
    """The transport and its settings, as far as the client knows them."""
    host = getattr(transport, "host", None)
    if "#vm=" in transport.target and host is not None:
        # PowerShell Direct (windows.direct): the host's transport carries it.
        return Check(
            "transport",
            Verdict.OK,
            f"PowerShell Direct into VM {getattr(transport, 'vm', '?')} through {host.target}",
        )
    scheme = transport.target.split(":", 1)[0]
    settings = getattr(transport, "settings", None)

    def setting(name: str, default: Any = None) -> Any:
        return getattr(settings, name, default)

    if scheme in ("sim", "sim-linux"):
        return Check("transport", Verdict.OK, "the built-in simulator: no real host is checked")
    if scheme == "local":
        return Check(
            "transport",
            Verdict.OK,
            f"PowerShell on this machine: {setting('executable', '?')}, "
            f"mode={setting('mode', 'persistent')}",
        )
    if scheme == "ssh":
        found = (
            f"OpenSSH to {setting('host', '?')}:{setting('port', 22)}, "
            f"shell={setting('shell', 'posix')}"
        )
        if not setting("verify_host_key", True):
            return Check(
                "transport",
                Verdict.WARNING,
                f"{found}; the host key is NOT verified",
                "Verify the host key: add its fingerprint to known_hosts "
                f"({_GUIDE}, 'The SSH host key').",
            )
        return Check("transport", Verdict.OK, f"{found}; host key checked against known_hosts")
    if scheme == "psrp":
        return _psrp_check(setting)
    return Check("transport", Verdict.OK, f"{type(transport).__name__} to {transport.target}")


def _psrp_check(setting: Callable[..., Any]) -> Check:
    via = setting("via", "wsman")
    if via == "ssh":
        return Check(
            "transport",
            Verdict.OK,
            f"PSRP over SSH to the '{setting('subsystem', 'powershell')}' subsystem; "
            "host key checked against known_hosts",
        )
    if via == "process":
        return Check("transport", Verdict.OK, f"PSRP to a local {setting('executable', 'pwsh')}")
    auth = setting("auth", "negotiate")
    if not setting("ssl", False):
        return Check(
            "transport",
            Verdict.WARNING,
            f"WinRM over HTTP, auth={auth}: messages are encrypted with the session key, "
            "but no certificate proves the host's identity",
            f"Add a WinRM HTTPS listener on the host and use ssl=true ({_GUIDE}, 'WinRM').",
        )
    if not setting("cert_validation", True):
        return Check(
            "transport",
            Verdict.WARNING,
            f"WinRM over HTTPS, auth={auth}, certificate NOT verified",
            f"Give the issuing CA with ca=PATH instead of cert_validation=false ({_GUIDE}).",
        )
    ca = setting("ca")
    trust = f"certificate checked against {ca}" if ca else "certificate checked (system CAs)"
    if auth == "credssp":
        return Check(
            "transport",
            Verdict.WARNING,
            f"WinRM over HTTPS, {trust}, auth=credssp delegates your credentials to the host",
            "Use negotiate or kerberos unless a second hop needs the credentials.",
        )
    return Check("transport", Verdict.OK, f"WinRM over HTTPS, auth={auth}, {trust}")


# -- reading the facts ---------------------------------------------------------


class _Facts:
    """Typed, forgiving access to the preflight object: a missing fact reads
    as unknown rather than failing the whole report."""

    def __init__(self, facts: Mapping[str, JsonValue]) -> None:
        self.facts = facts

    def text(self, key: str) -> str:
        value = self.facts.get(key)
        return value if isinstance(value, str) else ""

    def flag(self, key: str) -> bool | None:
        value = self.facts.get(key)
        return value if isinstance(value, bool) else None

    def number(self, key: str) -> int:
        value = self.facts.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    def objects(self, key: str) -> list[Mapping[str, JsonValue]]:
        value = self.facts.get(key)
        if isinstance(value, Mapping):
            value = [value]
        if not isinstance(value, Sequence) or isinstance(value, str):
            return []
        return [item for item in value if isinstance(item, Mapping)]

    def texts(self, key: str) -> list[str]:
        value = self.facts.get(key)
        if isinstance(value, str):
            return [value]
        if not isinstance(value, Sequence):
            return []
        return [item for item in value if isinstance(item, str)]


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


def _session_checks(facts: _Facts, who: str) -> list[Check]:
    computer, user = facts.text("ComputerName"), facts.text("UserName")
    checks = [Check("connection", Verdict.OK, f"{computer or who} answered as {user or '?'}")]
    edition, version = facts.text("PSEdition"), facts.text("PSVersion")
    build = facts.number("OSBuild")
    windows = f"Windows {facts.text('OSVersion') or '?'}"
    if edition == "Core":
        if build and build < _NATIVE_HYPERV_BUILD:
            checks.append(
                Check(
                    "powershell",
                    Verdict.FAIL,
                    f"PowerShell {version} on {windows}: no native Hyper-V module before "
                    f"build {_NATIVE_HYPERV_BUILD}",
                    "Use Windows PowerShell 5.1: executable=powershell for local:// and "
                    "ssh://, configuration=Microsoft.PowerShell for psrp://.",
                )
            )
        else:
            checks.append(Check("powershell", Verdict.OK, f"PowerShell {version} on {windows}"))
    elif _version(version)[:2] >= (5, 1):
        checks.append(Check("powershell", Verdict.OK, f"Windows PowerShell {version} on {windows}"))
    else:
        checks.append(
            Check(
                "powershell",
                Verdict.FAIL,
                f"PowerShell {version or '(unknown version)'} on {windows}",
                "Install Windows Management Framework 5.1 (Windows PowerShell 5.1).",
            )
        )
    mode = facts.text("LanguageMode") or "FullLanguage"
    checks.append(Check("language-mode", Verdict.OK, mode))
    return checks


def _probe_check(
    name: str, probes: Mapping[str, Mapping[str, JsonValue]], what: str, loaded: bool
) -> Check:
    probe = probes.get(name)
    if not loaded or probe is None:
        return Check(f"read:{name}", Verdict.SKIPPED, "the Hyper-V module did not load")
    if probe.get("Ok") is True:
        return Check(f"read:{name}", Verdict.OK, f"{what}: {probe.get('Count')}")
    message = str(probe.get("Message") or "")
    error_id = str(probe.get("ErrorId") or "")
    remedy = "See the error; the rights check says which account ran it."
    if "permission" in message.lower() or "PermissionDenied" in error_id or "denied" in message:
        remedy = "See the rights check."
    return Check(f"read:{name}", Verdict.FAIL, f"{message} ({error_id})", remedy)


_RIGHTS_REMEDY = (
    "Connect as a member of the host's Hyper-V Administrators group "
    "(Add-LocalGroupMember -Group 'Hyper-V Administrators' -Member USER, then log on again) "
    f"or as an administrator ({_GUIDE}, 'Rights')."
)
_MODULE_REMEDY = (
    "If this target is a Windows guest, check its Hyper-V host instead (doctor --guest "
    "checks a guest). On a host, install the Hyper-V PowerShell module: "
    "Install-WindowsFeature Hyper-V-PowerShell on "
    "Windows Server, Enable-WindowsOptionalFeature -Online -FeatureName "
    "Microsoft-Hyper-V-Management-PowerShell on Windows 10/11."
)


def _host_checks(facts: _Facts) -> list[Check]:
    checks = _session_checks(facts, "the host")
    user = facts.text("UserName") or "the account"
    if facts.flag("IsAdministrator"):
        checks.append(Check("rights", Verdict.OK, f"{user} is an elevated administrator"))
    elif facts.flag("IsHyperVAdministrator"):
        checks.append(Check("rights", Verdict.OK, f"{user} is a member of Hyper-V Administrators"))
    else:
        checks.append(
            Check(
                "rights",
                Verdict.FAIL,
                f"{user} is neither an elevated administrator nor in Hyper-V Administrators",
                _RIGHTS_REMEDY,
            )
        )
    loaded = facts.flag("HyperVModuleLoaded") is True
    if loaded:
        checks.append(Check("hyperv-module", Verdict.OK, "Hyper-V module loaded"))
    else:
        error_id = facts.text("HyperVModuleErrorId")
        remedy = _MODULE_REMEDY
        if "PowerShellCoreWithoutHyperV" in error_id:
            remedy = "Use Windows PowerShell 5.1 (see the powershell check)."
        checks.append(
            Check(
                "hyperv-module",
                Verdict.FAIL,
                f"{facts.text('HyperVModuleMessage')} ({error_id})",
                remedy,
            )
        )
    resolves = facts.text("GetVMResolvesTo")
    others = [c for c in facts.texts("GetVMCommands") if c.lower() != "hyper-v\\get-vm"]
    if not loaded:
        # With no usable Hyper-V module (PowerShell 7 without it, say), what
        # a plain Get-VM would resolve to says nothing about the library.
        checks.append(
            Check("get-vm", Verdict.SKIPPED, "the Hyper-V module did not load (see hyperv-module)")
        )
    elif resolves.lower() == "hyper-v\\get-vm":
        found = "a plain Get-VM runs Hyper-V\\Get-VM"
        if others:
            found += f" (also present: {', '.join(others)})"
        checks.append(Check("get-vm", Verdict.OK, found))
    elif resolves:
        checks.append(
            Check(
                "get-vm",
                Verdict.WARNING,
                f"a plain Get-VM runs {resolves}, not Hyper-V\\Get-VM; the library calls "
                "Hyper-V\\Get-VM and is not affected",
                "In your own scripts write Hyper-V\\Get-VM (and the other Hyper-V cmdlets) "
                "with the module name.",
            )
        )
    else:
        checks.append(Check("get-vm", Verdict.SKIPPED, "no command named Get-VM"))
    checks.extend(_direct_checks(facts))
    probes = {str(p.get("Operation")): p for p in facts.objects("Probes")}
    checks.append(_probe_check("list_vms", probes, "VMs read with Hyper-V\\Get-VM", loaded))
    checks.append(
        _probe_check(
            "get_integration_services",
            probes,
            "services read with Get-VMIntegrationService",
            loaded,
        )
    )
    checks.append(
        _probe_check(
            "set_integration_services",
            probes,
            "Enable-/Disable-VMIntegrationService found, not run",
            loaded,
        )
    )
    checks.append(_probe_check("copy_vm_file", probes, "Copy-VMFile found, not run", loaded))
    if not loaded:
        checks.append(
            Check("read:invoke_in_vm", Verdict.SKIPPED, "the Hyper-V module did not load")
        )
    elif facts.flag("DirectSupported"):
        checks.append(Check("read:invoke_in_vm", Verdict.OK, "Invoke-Command -VMId found; not run"))
    else:
        checks.append(
            Check(
                "read:invoke_in_vm",
                Verdict.WARNING,
                "Invoke-Command has no -VMId: PowerShell Direct is not available",
                "See the powershell-direct check.",
            )
        )
    return checks


def _direct_checks(facts: _Facts) -> list[Check]:
    build = facts.number("OSBuild")
    if not facts.flag("DirectSupported") or (build and build < _DIRECT_BUILD):
        return [
            Check(
                "powershell-direct",
                Verdict.WARNING,
                f"PowerShell Direct needs a Windows 10 or Windows Server 2016 host; this is "
                f"Windows {facts.text('OSVersion') or '?'}",
                "Reach Windows guests over the network instead (ssh:// or psrp:// to the guest).",
            ),
            Check("powershell-direct-guests", Verdict.SKIPPED, "the host has no PowerShell Direct"),
        ]
    checks = [
        Check("powershell-direct", Verdict.OK, f"Invoke-Command -VMId present (build {build})")
    ]
    vms = facts.objects("VMs")
    if not vms:
        checks.append(Check("powershell-direct-guests", Verdict.SKIPPED, "no VM could be listed"))
        return checks
    ready, off, older = [], [], []
    for vm in vms:
        name = str(vm.get("Name"))
        version = _version(str(vm.get("IntegrationServicesVersion") or ""))
        if vm.get("State") != "Running":
            off.append(name)
        elif version and version[0] >= 10:
            ready.append(name)
        else:
            older.append(name)
    parts = [f"ready: {', '.join(ready) or 'none'}"]
    if off:
        parts.append(f"not running: {', '.join(off)}")
    if older:
        parts.append(
            f"not Windows 10 / Server 2016 or newer, or version unknown: {', '.join(older)}"
        )
    if ready:
        checks.append(Check("powershell-direct-guests", Verdict.OK, "; ".join(parts)))
    else:
        checks.append(
            Check(
                "powershell-direct-guests",
                Verdict.WARNING,
                "; ".join(parts),
                "PowerShell Direct needs a running guest with Windows 10 / Windows Server "
                "2016 or newer and its vmicvmsession service enabled.",
            )
        )
    return checks


def _guest_checks(facts: _Facts) -> list[Check]:
    checks = _session_checks(facts, "the guest")
    user = facts.text("UserName") or "the account"
    if facts.flag("IsAdministrator"):
        checks.append(Check("rights", Verdict.OK, f"{user} is an elevated administrator"))
    else:
        checks.append(
            Check(
                "rights",
                Verdict.WARNING,
                f"{user} is not an elevated administrator: services can be read, not changed",
                "Connect as a guest administrator to start, stop, enable or disable services.",
            )
        )
    services = {str(s.get("Name")): s for s in facts.objects("Services")}
    build = facts.number("OSBuild")
    session = services.get(catalogue.POWERSHELL_DIRECT.windows_service)
    if (build and build < _DIRECT_BUILD) or session is None:
        checks.append(
            Check(
                "powershell-direct",
                Verdict.WARNING,
                f"Windows {facts.text('OSVersion') or '?'} without vmicvmsession: "
                "no PowerShell Direct into this guest",
                "PowerShell Direct needs Windows 10 / Windows Server 2016 or newer in the guest.",
            )
        )
    elif session.get("StartType") == "Disabled":
        checks.append(
            Check(
                "powershell-direct",
                Verdict.WARNING,
                "vmicvmsession is Disabled",
                "Enable it: hvintegration windows enable vmicvmsession.",
            )
        )
    else:
        checks.append(Check("powershell-direct", Verdict.OK, "vmicvmsession present"))
    if facts.text("ReadErrorId"):
        checks.append(
            Check(
                "read:get_guest_services",
                Verdict.FAIL,
                f"{facts.text('ReadMessage')} ({facts.text('ReadErrorId')})",
                "See the error.",
            )
        )
    else:
        total = len(catalogue.ALL_SERVICES)
        checks.append(
            Check(
                "read:get_guest_services",
                Verdict.OK,
                f"{len(services)} of {total} vmic* services present",
            )
        )
    if facts.flag("SetServiceFound") is False:
        checks.append(
            Check("read:set_guest_service", Verdict.FAIL, "Set-Service not found", "See the error.")
        )
    else:
        checks.append(Check("read:set_guest_service", Verdict.OK, "Set-Service found; not run"))
    return checks


# -- a round trip that failed --------------------------------------------------


def _error_checks(error: HvIntegrationError) -> list[Check]:
    """The checks one failure decides; the caller skips the rest."""
    text = str(error)
    if isinstance(error, HostKeyError):
        return [
            Check(
                "connection",
                Verdict.FAIL,
                text,
                "Compare the fingerprint shown with the host's own (ssh-keygen -l -f on the "
                f"host's key) and add the key to known_hosts ({_GUIDE}, 'The SSH host key'); "
                "for WinRM over HTTPS, give the issuing CA with ca=PATH.",
            )
        ]
    if isinstance(error, AuthenticationError):
        return [
            Check(
                "connection",
                Verdict.FAIL,
                text,
                "Check the user name, password or key; for WinRM, that auth= matches what the "
                "host accepts (negotiate by default).",
            )
        ]
    if isinstance(error, PowerShellNotFoundError):
        return [
            Check(
                "connection",
                Verdict.FAIL,
                text,
                "Install PowerShell or name it with executable= (powershell for Windows "
                "PowerShell 5.1).",
            )
        ]
    if isinstance(error, OperationTimeoutError):
        return [
            Check(
                "connection",
                Verdict.FAIL,
                text,
                "Check that the host is up and the port is open (WinRM 5985/5986, SSH 22); "
                "raise --timeout on a slow host.",
            )
        ]
    if isinstance(error, (TransportError, ProtocolError)):
        return [
            Check(
                "connection",
                Verdict.FAIL,
                text,
                "Check the host name and port, that the service listens (WinRM: "
                "Enable-PSRemoting; SSH: sshd), and the firewall "
                f"({_GUIDE}).",
            )
        ]
    if isinstance(error, (PowerShellDirectError, VMNotRunningError, NotFoundError)):
        return [
            Check(
                "connection",
                Verdict.FAIL,
                text,
                "PowerShell Direct needs the VM running, a Windows 10 / Windows Server 2016 or "
                "newer guest with vmicvmsession enabled, and a guest account; 'hvintegration "
                "doctor' on the host shows which VMs are ready.",
            )
        ]
    answered = Check("connection", Verdict.OK, "the target answered")
    error_id = getattr(error, "error_id", "")
    if isinstance(error, UnsupportedPowerShellError):
        if "PowerShellCoreWithoutHyperV" in error_id:
            return [
                answered,
                Check(
                    "powershell",
                    Verdict.FAIL,
                    text,
                    "Use Windows PowerShell 5.1: executable=powershell for local:// and "
                    "ssh://, configuration=Microsoft.PowerShell for psrp://.",
                ),
            ]
        return [
            answered,
            Check(
                "language-mode",
                Verdict.FAIL,
                text,
                "Connect where PowerShell runs in FullLanguage mode: WinRM's default "
                "Microsoft.PowerShell configuration rather than a JEA endpoint, or an account "
                f"outside the WDAC/AppLocker lockdown ({_GUIDE}).",
            ),
        ]
    if isinstance(error, HyperVModuleMissingError):
        return [answered, Check("hyperv-module", Verdict.FAIL, text, _MODULE_REMEDY)]
    if isinstance(error, PermissionDeniedError):
        return [answered, Check("rights", Verdict.FAIL, text, _RIGHTS_REMEDY)]
    return [
        answered,
        Check(
            "preflight",
            Verdict.FAIL,
            text,
            "The target could not run the preflight script; attach this report to a bug report.",
        ),
    ]


def _complete(found: list[Check], names: Sequence[str], reason: str) -> tuple[Check, ...]:
    by_name = {check.name: check for check in found}
    ordered = [
        by_name.pop(name) if name in by_name else Check(name, Verdict.SKIPPED, reason)
        for name in names
    ]
    return (*ordered, *by_name.values())


async def _run(transport: PowerShellTransport, side: str, *, timeout: float) -> PreflightReport:
    operation: Operation
    names: Sequence[str]
    if side == "host":
        operation, names, parameters = PREFLIGHT, HOST_CHECKS, {}
    else:
        services: list[JsonValue] = [spec.windows_service for spec in catalogue.ALL_SERVICES]
        operation, names, parameters = GUEST_PREFLIGHT, GUEST_CHECKS, {"Name": services}
    transport_check = _transport_check(transport)
    try:
        result = await transport.run_operation(operation, parameters, timeout=timeout)
        decoder = Decoder(transport.target, operation.name)
        if len(result.output) != 1:
            raise decoder.fail(f"expected one object, got {len(result.output)}")
        facts = dict(decoder.object(result.output[0], "the preflight facts"))
    except InvalidTargetError:
        # The wrong kind of target (a host for side="guest"): no check of
        # it can pass, and the caller named it wrongly, as with a bad URL.
        raise
    except HvIntegrationError as error:
        found = [*_error_checks(error), transport_check]
        failed = found[-2].name
        reason = f"not checked: the {failed} check failed"
        return PreflightReport(transport.target, side, _complete(found, names, reason))
    reader = _Facts(facts)
    checks = _host_checks(reader) if side == "host" else _guest_checks(reader)
    return PreflightReport(
        transport.target, side, _complete([*checks, transport_check], names, ""), facts
    )


async def preflight_host(
    transport: PowerShellTransport, *, timeout: float = DEFAULT_TIMEOUT
) -> PreflightReport:
    """Check a Hyper-V host through an open transport. One round trip.

    Args:
        transport: An open transport to the host.
        timeout: Seconds the round trip may take.

    Returns:
        The report; failures are verdicts, not exceptions.
    """
    return await _run(transport, "host", timeout=timeout)


async def preflight_guest(
    transport: PowerShellTransport, *, timeout: float = DEFAULT_TIMEOUT
) -> PreflightReport:
    """Check a Windows guest through an open transport. One round trip.

    Args:
        transport: An open transport to the guest (straight, or PowerShell
            Direct through its host).
        timeout: Seconds the round trip may take.

    Returns:
        The report; failures are verdicts, not exceptions.
    """
    return await _run(transport, "guest", timeout=timeout)


async def doctor(
    target: PowerShellTargetLike, *, side: str = "host", timeout: float = DEFAULT_TIMEOUT
) -> PreflightReport:
    """Connect to a target, check it, and close the connection again.

    Unlike :meth:`HyperVHost.connect <hvintegration.HyperVHost.connect>`, a
    connection that cannot be made is a ``connection`` verdict, not an
    exception.

    Args:
        target: A URL, target settings or a transport (closed afterwards).
        side: ``host`` for a Hyper-V host, ``guest`` for a Windows guest.
        timeout: Seconds the round trip may take.

    Returns:
        The report.

    Raises:
        InvalidTargetError: The URL is malformed or names no PowerShell
            transport, or the target is the other side (a Hyper-V host
            checked with ``side="guest"``).
        ValueError: ``side`` is neither ``host`` nor ``guest``.

    Example:
        >>> import asyncio
        >>> report = asyncio.run(doctor("sim://?guest=demovm", side="guest"))
        >>> report.ok, report.check("read:get_guest_services").found
        (True, '8 of 8 vmic* services present')
    """
    if side not in ("host", "guest"):
        raise ValueError(f"side must be 'host' or 'guest', not {side!r}")
    check_seconds(timeout, "timeout", operation="doctor")
    transport = powershell_transport_for(target)
    try:
        try:
            await transport.open()
        except HvIntegrationError as error:
            found = [*_error_checks(error), _transport_check(transport)]
            names = HOST_CHECKS if side == "host" else GUEST_CHECKS
            checks = _complete(found, names, f"not checked: the {found[-2].name} check failed")
            return PreflightReport(transport.target, side, checks)
        return await _run(transport, side, timeout=timeout)
    finally:
        await transport.aclose()
