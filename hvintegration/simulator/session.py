"""The PowerShell session a simulated host offers, and what ``preflight`` reports of it.

A real host may refuse the library before any Hyper-V cmdlet runs: the
session is constrained, PowerShell 7 has no native Hyper-V module on an old
build, the Hyper-V module is not installed, or the account has no rights.
:func:`session_refusal` answers an operation the way the shipped prelude
(``operations/scripts/_prelude.ps1``) and Hyper-V do then, and the
``preflight`` handlers report the same facts without failing, as
``preflight.ps1`` and ``guest_preflight.ps1`` do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from hvintegration.operations import OPERATIONS
from hvintegration.simulator.world import HostModel, SimulatedVM
from hvintegration.transport.base import ErrorRecord, JsonValue, OperationResult

__all__ = [
    "EDITIONS",
    "GUEST_PREFLIGHT_HANDLERS",
    "HOST_VERSIONS",
    "LANGUAGE_MODES",
    "PREFLIGHT_HANDLERS",
    "RIGHTS",
    "access_denied_record",
    "guest_preflight",
    "language_record",
    "preflight",
    "session_refusal",
]

# The Windows version each host release reports ([Environment]::OSVersion):
# major.minor.build from the vendor's release information for each release.
HOST_VERSIONS: Mapping[str, str] = MappingProxyType(
    {
        "windows-server-2012": "6.2.9200",
        "windows-8": "6.2.9200",
        "windows-server-2012-r2": "6.3.9600",
        "windows-8.1": "6.3.9600",
        "windows-10": "10.0.19045",
        "windows-server-2016": "10.0.14393",
        "windows-server-2019": "10.0.17763",
        "windows-11": "10.0.22631",
        "windows-server-2022": "10.0.20348",
        "windows-server-2025": "10.0.26100",
    }
)
"""``OSVersion`` of each simulated host OS, by key."""

RIGHTS = ("administrator", "hyperv-administrators", "none")
"""What the simulated account may do: an elevated administrator, a member of
Hyper-V Administrators, or neither."""

LANGUAGE_MODES = ("FullLanguage", "ConstrainedLanguage", "RestrictedLanguage", "NoLanguage")
"""The language modes a simulated session may run in (about_Language_Modes)."""

EDITIONS: Mapping[str, str] = MappingProxyType({"Desktop": "5.1.20348.2849", "Core": "7.4.6"})
"""``PSEdition`` to the ``PSVersion`` the simulator reports for it."""

# PowerShell 7 runs the Hyper-V module natively from Windows Server 2019 /
# Windows 10 1809 (build 17763) on ("PowerShell 7 module compatibility").
_NATIVE_HYPERV_BUILD = 17763
_PREFLIGHTS = frozenset({"preflight", "guest_preflight"})
_WRITE_ERROR = "Microsoft.PowerShell.Commands.WriteErrorException"


def access_denied_record(host_name: str) -> ErrorRecord:
    """What Hyper-V answers a user who is neither an administrator nor a
    member of Hyper-V Administrators."""
    return ErrorRecord(
        "You do not have the required permission to complete this task. Contact the "
        f"administrator of the authorization policy for the computer '{host_name}'.",
        error_id="InvalidOperation,Microsoft.HyperV.PowerShell.Commands.GetVM",
        category="PermissionDenied",
        exception_type="Microsoft.HyperV.PowerShell.VirtualizationException",
    )


def _build(host: HostModel) -> int:
    return int(HOST_VERSIONS[host.os.key].split(".")[2])


def language_record(mode: str) -> ErrorRecord:
    """What a session in language ``mode`` (not ``FullLanguage``) answers a shipped script.

    The prelude's language check writes its own record; a JEA endpoint
    (``NoLanguage``) refuses any script before it
    (``Command.CreateCommandProcessor`` in PowerShell's
    ``engine/hostifaces/Command.cs``).

    Args:
        mode: The language mode.

    Returns:
        The terminating error record.
    """
    if mode == "NoLanguage":
        return ErrorRecord(
            "The syntax is not supported by this runspace. This can occur if the runspace is "
            "in no-language mode.",
            error_id="ScriptsNotAllowed",
            category="ParserError",
            exception_type="System.Management.Automation.ParseException",
        )
    return ErrorRecord(
        f"This PowerShell session runs in {mode} mode; the library needs FullLanguage: "
        "connect to an endpoint that is not constrained (the default Microsoft.PowerShell "
        "session configuration, not a JEA endpoint).",
        error_id="HvIntegration.LanguageModeUnsupported",
        category="PermissionDenied",
        exception_type=_WRITE_ERROR,
        target_object=mode,
    )


def _module_record(host: HostModel) -> ErrorRecord | None:
    """What the prelude's Import-HvHyperV fails with on ``host``, if anything."""
    name = host.name
    build = _build(host)
    if host.edition == "Core" and build < _NATIVE_HYPERV_BUILD:
        return ErrorRecord(
            f"PowerShell {EDITIONS['Core']} on '{name}' (Windows build {build}) has no native "
            f"Hyper-V module; it needs Windows build {_NATIVE_HYPERV_BUILD} or newer. Use "
            "Windows PowerShell 5.1 instead: executable=powershell for local:// and ssh://, "
            "or the default WinRM endpoint configuration=Microsoft.PowerShell for psrp://.",
            error_id="HvIntegration.PowerShellCoreWithoutHyperV,Import-HvHyperV",
            category="NotImplemented",
            exception_type=_WRITE_ERROR,
            target_object=name,
        )
    if not host.hyperv_module:
        return ErrorRecord(
            f"The Hyper-V PowerShell module (Hyper-V) is not installed on '{name}': The "
            "specified module 'Hyper-V' was not loaded because no valid module file was found "
            "in any module directory. Install the Hyper-V management tools (Windows feature "
            "Hyper-V-PowerShell, or Microsoft-Hyper-V-Management-PowerShell).",
            error_id="HvIntegration.HyperVModuleMissing,Import-HvHyperV",
            category="ObjectNotFound",
            exception_type=_WRITE_ERROR,
            target_object=name,
        )
    return None


def session_refusal(host: HostModel, operation: str, *, guest: bool) -> ErrorRecord | None:
    """How the session on ``host`` refuses ``operation`` before it does anything.

    Args:
        host: The simulated host, whose session settings decide.
        operation: The operation name.
        guest: Whether the call runs inside a guest rather than on the host;
            there only the language mode applies.

    Returns:
        The terminating error record, or ``None`` when the operation runs.
        The preflight operations report these facts instead of failing,
        except for a language mode the prelude refuses.
    """
    if host.language_mode != "FullLanguage":
        return language_record(host.language_mode)
    known = OPERATIONS.get(operation)
    if guest or operation in _PREFLIGHTS or known is None or known.side != "host":
        return None
    module = _module_record(host)
    if module is not None:
        return module
    if host.rights == "none":
        return access_denied_record(host.name)
    return None


def _probe(operation: str, count: int, failure: ErrorRecord | None) -> dict[str, JsonValue]:
    return {
        "Operation": operation,
        "Ok": failure is None,
        "Count": count,
        "ErrorId": failure.error_id if failure else "",
        "Message": failure.message if failure else "",
    }


def _session(name: str, user: str, version: str, edition: str) -> dict[str, JsonValue]:
    return {
        "ComputerName": name,
        "UserName": user,
        "PSEdition": edition,
        "PSVersion": EDITIONS[edition],
        "LanguageMode": "FullLanguage",
        "OSVersion": version,
        "OSBuild": int(version.split(".")[2]),
    }


def preflight(host: HostModel, parameters: Mapping[str, JsonValue]) -> OperationResult:
    """The preflight operation: facts about the host's session, never failing."""
    module = _module_record(host)
    denied = access_denied_record(host.name) if host.rights == "none" else None
    probes: list[JsonValue] = []
    vms: list[SimulatedVM] = []
    if module is None:
        if denied is None:
            vms = list(host.vms)
        services = sum(len(vm.enabled) for vm in vms)
        probes = [
            _probe("list_vms", len(vms), denied),
            _probe("get_integration_services", services, denied),
            # The write cmdlets exist wherever the module loads; whether the
            # account may use them is the rights check.
            _probe("set_integration_services", 2, None),
            _probe("copy_vm_file", 1, None),
        ]
    # VMware PowerCLI, when installed, is found first by a plain Get-VM
    # (issue 11's field report); Hyper-V's is still there, qualified.
    commands = []
    if host.powercli:
        commands.append("VMware.VimAutomation.Core\\Get-VM")
    if host.hyperv_module:
        commands.append("Hyper-V\\Get-VM")
    user = f"{host.name}\\{'Administrator' if host.rights == 'administrator' else 'operator'}"
    facts: dict[str, JsonValue] = {
        **_session(host.name, user, HOST_VERSIONS[host.os.key], host.edition),
        "IsAdministrator": host.rights == "administrator",
        "IsHyperVAdministrator": host.rights == "hyperv-administrators",
        "HyperVModuleLoaded": module is None,
        "HyperVModuleErrorId": module.error_id if module else "",
        "HyperVModuleMessage": module.message if module else "",
        "GetVMResolvesTo": commands[0] if commands else "",
        "GetVMCommands": list(commands),
        "DirectSupported": host.os.powershell_direct,
        "VMs": [
            {
                "Name": vm.name,
                "State": vm.state,
                "IntegrationServicesVersion": (
                    vm.guest.integration_services_version if vm.state == "Running" else ""
                ),
            }
            for vm in vms[:100]
        ],
        "VMCount": len(vms),
        "Probes": probes,
    }
    return OperationResult((facts,))


def _names(parameters: Mapping[str, JsonValue]) -> Sequence[JsonValue]:
    names = parameters.get("Name")
    if names is None:
        return []
    if isinstance(names, str) or not isinstance(names, Sequence):
        return [names]
    return names


def guest_preflight(
    vm: SimulatedVM, parameters: Mapping[str, JsonValue], administrator: bool
) -> OperationResult:
    """The guest_preflight operation: facts about a Windows guest's session."""
    state = vm.windows
    computer = state.computer_name if state is not None else vm.name
    services: list[JsonValue] = []
    if state is not None:
        for raw in _names(parameters):
            service = state.services.get(str(raw))
            if service is None:
                continue
            services.append(
                {
                    "Name": str(raw),
                    "Present": True,
                    "DisplayName": str(raw),
                    "Status": service.status,
                    "StartType": service.start_type,
                    "ComputerName": computer,
                }
            )
    # A guest reports its own Windows version; the simulator takes it from
    # the version its integration components report to the host.
    parts = (vm.guest.integration_services_version or "0.0.0").split(".")
    version = ".".join([*parts, "0", "0", "0"][:3])
    user = f"{computer}\\{'Administrator' if administrator else 'user'}"
    # Not a Windows guest: no Get-Service or Set-Service there, as the
    # other guest operations find (windows_behaviour's _windows).
    read_error = (
        ("", "")
        if state is not None
        else (
            "CommandNotFoundException",
            "The term 'Get-Service' is not recognized as a cmdlet on this system.",
        )
    )
    facts: dict[str, JsonValue] = {
        **_session(computer, user, version, "Desktop"),
        "IsAdministrator": administrator,
        "Services": services,
        "ReadErrorId": read_error[0],
        "ReadMessage": read_error[1],
        "SetServiceFound": state is not None,
    }
    return OperationResult((facts,))


PREFLIGHT_HANDLERS = MappingProxyType({"preflight": preflight})
"""The simulated host preflight, by operation name."""

GUEST_PREFLIGHT_HANDLERS = MappingProxyType({"guest_preflight": guest_preflight})
"""The simulated guest preflight, by operation name."""
