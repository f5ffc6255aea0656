"""The remedies of a diagnosis: each step in three spellings.

:mod:`hvintegration.diagnosis` decides the verdicts; this module spells the
steps that fix them as the library call, the ``hvintegration`` command and
the vendor's manual way (a Hyper-V cmdlet, a Windows service cmdlet, or the
Linux daemon run as root). The texts are for a person to read and copy:
nothing here runs them, and names in them are quoted for the shell they are
meant for. A VM is named by its name where the name is its own, else by its
id (``Hyper-V\\Get-VM -Id ... |`` by hand).
"""

from __future__ import annotations

import shlex
import uuid
from typing import Union

from hvintegration import catalogue
from hvintegration.diagnosis_records import GuestSide, Remedy
from hvintegration.linux.guest import LinuxGuest
from hvintegration.linux.records import LinuxStatus
from hvintegration.maintenance import Advice, Mechanism
from hvintegration.windows.guest import WindowsGuest

__all__ = [
    "KERNEL_ONLY",
    "RemedyContext",
    "enable_on_host",
    "guest_steps",
    "linux_start",
    "power_on",
    "ps_quote",
    "py",
    "update_steps",
    "windows_start",
]

GuestConnection = Union[WindowsGuest, LinuxGuest]

KERNEL_ONLY = (catalogue.HEARTBEAT, catalogue.SHUTDOWN, catalogue.TIME_SYNCHRONIZATION)
"""The services a Linux guest's ``hv_utils`` driver serves alone, with no daemon."""


def ps_quote(text: str) -> str:
    """``text`` as a single-quoted PowerShell literal, for display only.

    Every quote PowerShell treats as ' (U+0027 and U+2018 to U+201B) is
    doubled.
    """
    out = "".join(ch * 2 if ch in "'\u2018\u2019\u201a\u201b" else ch for ch in text)
    return f"'{out}'"


def py(text: str) -> str:
    """``text`` as a Python literal, for a remedy's library call."""
    return repr(text)


class RemedyContext:
    """What the remedies need to spell themselves: names and targets.

    A VM is named by its name where that names it alone, else by its id
    (``vm_id``): a name two VMs share would reach the wrong one, or none.

    Attributes:
        direct: Whether a Windows guest can be reached with PowerShell
            Direct (``windows --vm``): ``False`` when the guest's or the
            host's OS is known to predate it (Windows 10 and Windows Server
            2016 at both ends, "Manage Windows virtual machines with
            PowerShell Direct",
            https://learn.microsoft.com/en-us/virtualization/hyper-v-on-windows/user-guide/powershell-direct).
    """

    def __init__(
        self,
        host_target: str,
        name: str,
        guest: GuestConnection | None,
        vm_id: uuid.UUID | None = None,
        *,
        direct: bool = True,
    ) -> None:
        self.vm = name
        self.vm_id = vm_id
        self.ref = name if vm_id is None else str(vm_id)
        self.host_target = host_target
        self.guest = guest
        self.direct = direct

    def cli(self, target: str, *words: str) -> str:
        """An ``hvintegration`` command line for ``target``, quoted for a POSIX shell."""
        return shlex.join(["hvintegration", "--target", target, *words])

    def cmdlet(self, cmdlet: str, name_parameter: str, rest: str = "") -> str:
        """A Hyper-V cmdlet on this VM: by name, or piped from ``Get-VM -Id``."""
        if self.vm_id is None:
            return f"Hyper-V\\{cmdlet} -{name_parameter} {ps_quote(self.vm)}{rest}"
        return f"Hyper-V\\Get-VM -Id {ps_quote(self.ref)} | Hyper-V\\{cmdlet}{rest}"


def enable_on_host(ctx: RemedyContext, spec: catalogue.ServiceSpec) -> Remedy:
    """Enable ``spec`` for the VM on the host (``Enable-VMIntegrationService``)."""
    return Remedy(
        "host",
        f"enable {spec.name} for the VM on the host",
        f"await host.vm({py(ctx.ref)}).integration_service({py(spec.name)}).enable()",
        ctx.cli(ctx.host_target, "host", "enable", ctx.ref, spec.name),
        ctx.cmdlet("Enable-VMIntegrationService", "VMName", f" -Name {ps_quote(spec.name)}"),
    )


def power_on(ctx: RemedyContext, state: str) -> list[Remedy]:
    """Start an off or saved VM, resume a paused one; nothing for a VM in passing states.

    Example:
        >>> [r.manual for r in power_on(RemedyContext("sim://HV01", "web1", None), "Paused")]
        ["Hyper-V\\\\Resume-VM -Name 'web1'"]
    """
    # The library reads and switches integration services; it does not
    # change a VM's power state, so these steps are the host's cmdlets only.
    if state == "Paused":
        verb, cmdlet = "resume", "Resume-VM"
    elif state in ("Off", "Saved"):
        verb, cmdlet = "start", "Start-VM"
    else:
        return []
    return [
        Remedy(
            "host",
            f"{verb} the VM on the host (by hand: the library does not change a VM's power state)",
            "",
            "",
            ctx.cmdlet(cmdlet, "Name"),
        )
    ]


def windows_start(
    ctx: RemedyContext,
    spec: catalogue.ServiceSpec,
    side: GuestSide | None,
    *,
    restart: bool = False,
) -> list[Remedy]:
    """Start (or restart) the Windows guest's ``vmic*`` service, allowing it to start first."""
    name = spec.windows_service
    steps = []
    connected = isinstance(ctx.guest, WindowsGuest)
    guest_cli = ["windows"] if connected else ["windows", "--vm", ctx.ref]
    target = ctx.guest.target if isinstance(ctx.guest, WindowsGuest) else ctx.host_target

    def cli(*words: str) -> str:
        # Without a guest connection the command reaches the guest with
        # PowerShell Direct; a guest or host older than it gets the manual
        # step only (connect to the guest over WinRM with --guest instead).
        if not connected and not ctx.direct:
            return ""
        return ctx.cli(target, *guest_cli, *words)

    where = (
        ""
        if connected or ctx.direct
        else " (in the guest itself, or over WinRM: PowerShell Direct cannot reach this VM)"
    )
    if side is not None and "Disabled" in side.state:
        steps.append(
            Remedy(
                "guest",
                f"allow {name} to start again (startup type Manual){where}",
                f"await guest.service({py(name)}).enable()",
                cli("enable", name),
                f"Set-Service -Name {name} -StartupType Manual",
            )
        )
    verb, cmdlet = ("restart", "Restart-Service") if restart else ("start", "Start-Service")
    steps.append(
        Remedy(
            "guest",
            f"{verb} {name} in the Windows guest{where}",
            f"await guest.service({py(name)}).{verb}()",
            cli(verb, name),
            f"{cmdlet} -Name {name}",
        )
    )
    return steps


def linux_start(
    ctx: RemedyContext,
    spec: catalogue.ServiceSpec,
    status: LinuxStatus | None,
    packages: tuple[str, ...],
    *,
    restart: bool = False,
) -> list[Remedy]:
    """Start (or restart) the Linux guest's daemon for ``spec``; load the driver or install
    the package first where the status says so."""
    side = spec.linux
    if side is None:
        return []
    # Without a connected Linux guest there is no URL to name: the step is
    # the library call and the manual way, never a command with a
    # placeholder that would fail as written.
    target = ctx.guest.target if isinstance(ctx.guest, LinuxGuest) else ""

    def cli(*words: str) -> str:
        return ctx.cli(target, *words) if target else ""

    steps = []
    if status is not None and not status.driver.loaded:
        steps.append(
            Remedy(
                "guest",
                f"load the {side.driver} driver (every integration service needs it)",
                "",
                "",
                f"modprobe {side.driver}",
            )
        )
    if spec in KERNEL_ONLY or not side.daemons:
        if not steps:
            steps.append(
                Remedy(
                    "guest",
                    f"the kernel's {side.driver} driver serves {spec.name}: check that it is "
                    "loaded and bound",
                    "await guest.driver()",
                    cli("linux", "status"),
                    f"lsmod | grep {side.driver}",
                )
            )
        return steps
    daemon = None if status is None else next(d for d in status.daemons if d.daemon.service is spec)
    name = side.daemons[-1] if daemon is None else daemon.name
    if daemon is not None and daemon.program is None:
        wanted = ", ".join(packages) or "hyperv-daemons, hyperv-tools or linux-cloud-tools-..."
        steps.append(
            Remedy(
                "guest",
                f"install {name}: the distribution's Hyper-V daemon package ({wanted})",
                "",
                "",
                f"install {wanted} with the distribution's package manager",
            )
        )
        return steps
    manual = f"{daemon.program}" if daemon is not None and daemon.program else name
    if daemon is not None and daemon.running and restart:
        pid_of = f"kill -15 $(pidof {name}); "
    else:
        pid_of = ""
    if status is not None and status.systemd and daemon is not None and daemon.unit is not None:
        manual_text = f"systemctl {'restart' if restart else 'start'} {daemon.unit.name}"
    else:
        manual_text = f"{pid_of}{manual}"
    verb = "restart" if restart else "start"
    # A restart stops the daemon first; for a critical service's daemon
    # (Key-Value Pair Exchange: the host learns the guest's addresses
    # through it) the library asks for force before it stops one.
    forced = restart and spec.critical
    action = f"{verb} {name} as root in the Linux guest"
    if forced:
        action += " (force: it stops the daemon the host reads the guest's addresses from)"
    steps.append(
        Remedy(
            "guest",
            action,
            f"await guest.daemon({py(name)}).{verb}({'force=True' if forced else ''})",
            cli("linux", verb, name, *(["--force"] if forced else [])),
            manual_text,
        )
    )
    return steps


def guest_steps(
    ctx: RemedyContext,
    spec: catalogue.ServiceSpec,
    side: GuestSide | None,
    family: str,
    status: LinuxStatus | None,
    packages: tuple[str, ...],
    *,
    restart: bool = False,
) -> list[Remedy]:
    """The guest's steps for ``spec``: Windows, Linux, or both when the family is unknown."""
    steps: list[Remedy] = []
    if family in ("windows", "") and spec.windows_service:
        steps += windows_start(ctx, spec, side, restart=restart)
    if family in ("linux", ""):
        steps += linux_start(ctx, spec, status, packages, restart=restart)
    return steps


def update_steps(
    ctx: RemedyContext,
    advice: Advice | None,
    *,
    family: str,
    host_os: str,
    guest_os: str,
    kvp_enabled: bool,
) -> list[Remedy]:
    """The steps that update a guest's integration services (a protocol mismatch).

    Args:
        ctx: How to name the VM and the targets.
        advice: The update path, where both OS names are known.
        family: ``windows``, ``linux`` or ``""``.
        host_os: The host's OS as given; empty when not.
        guest_os: The guest's OS as given or published; empty when not.
        kvp_enabled: Whether Key-Value Pair Exchange is enabled on the host:
            only when it is not does a path that needs it enable it first.
    """
    if advice is None:
        missing = [
            option
            for option, have in (("--host-os", host_os), ("--guest-os", guest_os))
            if not have
        ]
        if family == "linux":
            manual = "update the kernel and the distribution's Hyper-V daemon package"
        else:
            manual = "Windows Update, or the integration services disk on older hosts"
        # No call with a placeholder in it: it would fail as written.
        return [
            Remedy(
                "guest",
                "update the guest's integration services; the update path depends on the host "
                f"and guest OS (give {' and '.join(missing) or 'both'} to get it)",
                "",
                "",
                manual,
            )
        ]
    call = f"advise(host_os={py(advice.host_os)}, guest_os={py(advice.guest_os)})"
    cli = shlex.join(
        ["hvintegration", "advise", "--host-os", advice.host_os, "--guest-os", advice.guest_os]
    )
    steps = []
    if advice.data_exchange and not kvp_enabled:
        steps.append(enable_on_host(ctx, catalogue.KEY_VALUE_PAIR_EXCHANGE))
    if advice.mechanism is Mechanism.WINDOWS_UPDATE:
        manual = "install the updates Windows Update offers in the guest"
        if advice.data_exchange:
            manual += " (needs Key-Value Pair Exchange enabled; else the KB3071740 cab)"
    elif advice.mechanism is Mechanism.INTEGRATION_SERVICES_DISK:
        manual = (
            "Hyper-V Manager: Action > Insert Integration Services Setup Disk, then run the "
            "setup in the guest"
        )
    elif advice.mechanism is Mechanism.PACKAGE_MANAGER:
        manual = f"update the kernel and {', '.join(advice.packages) or 'the Hyper-V daemons'}"
    else:
        manual = "; ".join(advice.notes)
    steps.append(
        Remedy(
            "guest",
            f"update the guest's integration services: {advice.mechanism.value}",
            call,
            cli,
            manual,
        )
    )
    return steps
