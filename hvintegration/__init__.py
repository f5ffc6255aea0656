"""hvintegration: manage Hyper-V integration services from asyncio Python.

One typed API for the three places integration services live: the Hyper-V
host (per-VM enable/disable), Windows guests and Linux guests, over pluggable
transports, with a built-in simulator (``sim://``).

Example:
    >>> import asyncio
    >>> from hvintegration import HyperVHost
    >>> async def main():
    ...     async with HyperVHost.connect("sim://") as host:
    ...         gsi = host.vm("demovm").integration_service("Guest Service Interface")
    ...         return (await gsi.enable()).enabled
    >>> asyncio.run(main())
    True
"""

from hvintegration import catalogue
from hvintegration._table import RecordList
from hvintegration.catalogue import ServiceRef, ServiceSpec
from hvintegration.diagnosis_records import Diagnosis, DiagnosisVerdict, ServiceDiagnosis
from hvintegration.errors import (
    AmbiguousVMError,
    AnswerTooLargeError,
    AuthenticationError,
    BatchError,
    DaemonControlError,
    DaemonNotFoundError,
    DestinationExistsError,
    FileCopyUnavailableError,
    GuestNotReadyError,
    HostKeyError,
    HvIntegrationError,
    InvalidParameterError,
    InvalidTargetError,
    KvpWriteError,
    NotFoundError,
    OperationStoppedError,
    OperationTimeoutError,
    PermissionDeniedError,
    PowerShellDirectError,
    ProtocolError,
    RemoteCommandError,
    ServiceNotFoundError,
    TransportBrokenError,
    TransportClosedError,
    TransportError,
    UnsafeChangeError,
    UnsupportedPowerShellError,
    VMNotFoundError,
    VMNotRunningError,
)
from hvintegration.fleet import Fleet, FleetResult, FleetTarget, load_inventory, load_policy
from hvintegration.host import (
    DEFAULT_TIMEOUT,
    DesiredState,
    DesiredStates,
    HyperVHost,
    IntegrationService,
    VirtualMachine,
    VMRef,
)
from hvintegration.linux import (
    DaemonState,
    KvpItem,
    LinuxDaemon,
    LinuxGuest,
    LinuxStatus,
)
from hvintegration.maintenance import Advice, advise
from hvintegration.preflight import doctor
from hvintegration.records import (
    ApplyResult,
    Check,
    FileCopy,
    IntegrationServiceState,
    KvpChange,
    KvpExchange,
    KvpWriteResult,
    PreflightReport,
    ServiceChange,
    Verdict,
    VMSummary,
)
from hvintegration.transport import Target, Transport, parse_target
from hvintegration.windows import (
    Credential,
    GuestService,
    GuestServiceState,
    PowerShellDirectTransport,
    WindowsGuest,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TIMEOUT",
    "Advice",
    "AmbiguousVMError",
    "AnswerTooLargeError",
    "ApplyResult",
    "AuthenticationError",
    "BatchError",
    "Check",
    "Credential",
    "DaemonControlError",
    "DaemonNotFoundError",
    "DaemonState",
    "DesiredState",
    "DesiredStates",
    "DestinationExistsError",
    "Diagnosis",
    "DiagnosisVerdict",
    "FileCopy",
    "FileCopyUnavailableError",
    "Fleet",
    "FleetResult",
    "FleetTarget",
    "GuestService",
    "GuestServiceState",
    "HostKeyError",
    "HvIntegrationError",
    "HyperVHost",
    "IntegrationService",
    "IntegrationServiceState",
    "InvalidParameterError",
    "InvalidTargetError",
    "KvpChange",
    "KvpExchange",
    "KvpItem",
    "KvpWriteError",
    "KvpWriteResult",
    "LinuxDaemon",
    "LinuxGuest",
    "LinuxStatus",
    "NotFoundError",
    "OperationStoppedError",
    "OperationTimeoutError",
    "PermissionDeniedError",
    "GuestNotReadyError",
    "PowerShellDirectError",
    "PowerShellDirectTransport",
    "PreflightReport",
    "ProtocolError",
    "RecordList",
    "RemoteCommandError",
    "ServiceChange",
    "ServiceDiagnosis",
    "ServiceNotFoundError",
    "ServiceRef",
    "ServiceSpec",
    "Target",
    "Transport",
    "TransportBrokenError",
    "TransportClosedError",
    "TransportError",
    "UnsafeChangeError",
    "UnsupportedPowerShellError",
    "VMNotFoundError",
    "VMNotRunningError",
    "VMRef",
    "VMSummary",
    "Verdict",
    "VirtualMachine",
    "WindowsGuest",
    "advise",
    "catalogue",
    "doctor",
    "load_inventory",
    "load_policy",
    "parse_target",
    "__version__",
]
