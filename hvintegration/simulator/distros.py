"""Linux distribution profiles for simulated guests: how each packages the Hyper-V daemons.

Each profile records documented packaging facts, cited beside it.
"""

from __future__ import annotations

from types import MappingProxyType

import attrs

from hvintegration.linux.names import resolve_daemon

__all__ = ["DISTROS", "Distro"]

_HELPERS = ("hv_get_dhcp_info", "hv_get_dns_info", "hv_set_ifconfig")
_NIX_BIN = "/nix/store/3x2k7cmbj5mgp0mz3r5l2d0bx0lvcz9g-hyperv-daemons-bin-6.6.52/bin"


@attrs.frozen
class Distro:
    """How one distribution packages the Hyper-V daemons.

    Attributes:
        key: Short identifier used in ``sim-linux://?distro=KEY``.
        name: The product name.
        kernel: ``uname -r``.
        systemd: Whether systemd is PID 1.
        programs: Daemon program name to installed path.
        helpers: Helper script paths.
        units: Daemon program name to systemd unit.
        wrappers: Paths that are scripts running another path (Ubuntu's
            ``/usr/sbin/hv_*`` wrappers run ``/usr/lib/linux-tools/<kernel>/``).
        driver: ``module`` or ``built-in``.
        fcopy_interface: How the kernel offers file copy: ``node``
            (``/dev/vmbus/hv_fcopy``, before 6.10) or ``uio`` (the
            ``uio_hv_generic`` driver, 6.10 and later).
        wrapped: Programs are makeWrapper scripts (NixOS) that run
            ``.NAME-wrapped`` with ``exec -a "$0"``.
    """

    key: str
    name: str
    kernel: str
    systemd: bool
    programs: MappingProxyType[str, str]
    helpers: tuple[str, ...]
    units: MappingProxyType[str, str]
    wrappers: frozenset[str] = frozenset()
    driver: str = "module"
    fcopy_interface: str = "node"
    wrapped: bool = False


def _map(**items: str) -> MappingProxyType[str, str]:
    return MappingProxyType(items)


DISTROS = MappingProxyType(
    {
        d.key: d
        for d in (
            # Debian's hyperv-daemons: /usr/sbin/hv_*_daemon, helpers in
            # /usr/libexec/hypervkvpd, units hv-*-daemon.service.
            Distro(
                "debian-12",
                "Debian 12 with hyperv-daemons",
                "6.1.0-27-amd64",
                True,
                _map(
                    hv_kvp_daemon="/usr/sbin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/sbin/hv_vss_daemon",
                    hv_fcopy_daemon="/usr/sbin/hv_fcopy_daemon",
                ),
                tuple(f"/usr/libexec/hypervkvpd/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hv-kvp-daemon.service",
                    hv_vss_daemon="hv-vss-daemon.service",
                    hv_fcopy_daemon="hv-fcopy-daemon.service",
                ),
            ),
            # The seed's guest: Ubuntu 14.04 (upstart, no systemd), where
            # /usr/sbin/hv_kvp_daemon is a wrapper for the binary under
            # /usr/lib/linux-tools/<kernel>/.
            Distro(
                "ubuntu-14.04",
                "Ubuntu 14.04 with linux-cloud-tools",
                "3.13.0-32-generic",
                False,
                _map(
                    hv_kvp_daemon="/usr/sbin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/sbin/hv_vss_daemon",
                    hv_fcopy_daemon="/usr/sbin/hv_fcopy_daemon",
                ),
                tuple(f"/usr/sbin/{h}" for h in _HELPERS),
                _map(),
                frozenset(
                    {
                        "/usr/sbin/hv_kvp_daemon",
                        "/usr/sbin/hv_vss_daemon",
                        "/usr/sbin/hv_fcopy_daemon",
                    }
                ),
            ),
            # RHEL and Fedora: hypervkvpd, hypervvssd, hypervfcopyd.
            Distro(
                "rhel-9",
                "Red Hat Enterprise Linux 9 with hyperv-daemons",
                "5.14.0-427.el9.x86_64",
                True,
                _map(
                    hv_kvp_daemon="/usr/sbin/hypervkvpd",
                    hv_vss_daemon="/usr/sbin/hypervvssd",
                    hv_fcopy_daemon="/usr/sbin/hypervfcopyd",
                ),
                tuple(f"/usr/libexec/hypervkvpd/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hypervkvpd.service",
                    hv_vss_daemon="hypervvssd.service",
                    hv_fcopy_daemon="hypervfcopyd.service",
                ),
            ),
            # Debian 10 (hyperv-daemons 4.19): the same programs, units named
            # hyperv-daemons.hv-*-daemon.service (Debian 11's units declare
            # Conflicts= with these names).
            Distro(
                "debian-10",
                "Debian 10 with hyperv-daemons",
                "4.19.0-27-amd64",
                True,
                _map(
                    hv_kvp_daemon="/usr/sbin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/sbin/hv_vss_daemon",
                    hv_fcopy_daemon="/usr/sbin/hv_fcopy_daemon",
                ),
                tuple(f"/usr/lib/hyperv-daemons/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hyperv-daemons.hv-kvp-daemon.service",
                    hv_vss_daemon="hyperv-daemons.hv-vss-daemon.service",
                    hv_fcopy_daemon="hyperv-daemons.hv-fcopy-daemon.service",
                ),
            ),
            # Ubuntu 24.04 (linux-cloud-tools-common): /usr/sbin/hv_* are
            # wrappers for /usr/lib/linux-tools/<kernel>/, units
            # hv-*-daemon.service.
            Distro(
                "ubuntu-24.04",
                "Ubuntu 24.04 with linux-cloud-tools",
                "6.8.0-31-generic",
                True,
                _map(
                    hv_kvp_daemon="/usr/sbin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/sbin/hv_vss_daemon",
                    hv_fcopy_daemon="/usr/sbin/hv_fcopy_daemon",
                ),
                tuple(f"/usr/sbin/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hv-kvp-daemon.service",
                    hv_vss_daemon="hv-vss-daemon.service",
                    hv_fcopy_daemon="hv-fcopy-daemon.service",
                ),
                frozenset(
                    {
                        "/usr/sbin/hv_kvp_daemon",
                        "/usr/sbin/hv_vss_daemon",
                        "/usr/sbin/hv_fcopy_daemon",
                    }
                ),
            ),
            # SUSE's hyper-v package (hyper-v.spec): programs in
            # /usr/lib/hyper-v/bin, both hv_fcopy_daemon.service
            # (ConditionPathExists=/dev/vmbus/hv_fcopy) and
            # hv_fcopy_uio_daemon.service (the uio_hv_generic driver, and
            # not /dev/vmbus/hv_fcopy). SLES 15 SP6's kernel 6.4 still has
            # /dev/vmbus/hv_fcopy, so hv_fcopy_daemon.service runs.
            Distro(
                "sles-15-sp6",
                "SUSE Linux Enterprise Server 15 SP6 with hyper-v",
                "6.4.0-150600.23-default",
                True,
                _map(
                    hv_kvp_daemon="/usr/lib/hyper-v/bin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/lib/hyper-v/bin/hv_vss_daemon",
                    hv_fcopy_uio_daemon="/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon",
                    hv_fcopy_daemon="/usr/lib/hyper-v/bin/hv_fcopy_daemon",
                ),
                tuple(f"/usr/lib/hyper-v/bin/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hv_kvp_daemon.service",
                    hv_vss_daemon="hv_vss_daemon.service",
                    hv_fcopy_uio_daemon="hv_fcopy_uio_daemon.service",
                    hv_fcopy_daemon="hv_fcopy_daemon.service",
                ),
            ),
            # NixOS (nixpkgs hyperv-daemons): programs in the Nix store,
            # outside every directory the status scans, found through the
            # units' ExecStart; hv_kvp_daemon is a makeWrapper script whose
            # exec -a "$0" runs .hv_kvp_daemon-wrapped; units hv-kvp.service,
            # hv-vss.service, hv-fcopy.service.
            Distro(
                "nixos-24.05",
                "NixOS 24.05 with virtualisation.hypervGuest",
                "6.6.52",
                True,
                _map(
                    hv_kvp_daemon=f"{_NIX_BIN}/hv_kvp_daemon",
                    hv_vss_daemon=f"{_NIX_BIN}/hv_vss_daemon",
                    hv_fcopy_daemon=f"{_NIX_BIN}/hv_fcopy_daemon",
                ),
                (),
                _map(
                    hv_kvp_daemon="hv-kvp.service",
                    hv_vss_daemon="hv-vss.service",
                    hv_fcopy_daemon="hv-fcopy.service",
                ),
                wrapped=True,
            ),
            # SUSE with a kernel of 6.10 or later: only the uio file copy
            # daemon, and the uio_hv_generic driver instead of
            # /dev/vmbus/hv_fcopy.
            Distro(
                "sles-15",
                "SUSE Linux Enterprise Server 15 with a 6.12 kernel",
                "6.12.0-150700.1-default",
                True,
                _map(
                    hv_kvp_daemon="/usr/lib/hyper-v/bin/hv_kvp_daemon",
                    hv_vss_daemon="/usr/lib/hyper-v/bin/hv_vss_daemon",
                    hv_fcopy_uio_daemon="/usr/lib/hyper-v/bin/hv_fcopy_uio_daemon",
                ),
                tuple(f"/usr/lib/hyper-v/bin/{h}" for h in _HELPERS),
                _map(
                    hv_kvp_daemon="hv_kvp_daemon.service",
                    hv_vss_daemon="hv_vss_daemon.service",
                    hv_fcopy_uio_daemon="hv_fcopy_uio_daemon.service",
                ),
                fcopy_interface="uio",
            ),
            Distro(
                "minimal",
                "A minimal image: hv_utils built in, no daemons installed",
                "6.6.0",
                False,
                _map(),
                (),
                _map(),
                driver="built-in",
            ),
        )
    }
)
"""Every simulated distribution by key."""


# Resolve names eagerly so that a catalogue change that breaks the profiles
# fails at import, not in a user's notebook.
for _distro in DISTROS.values():
    for _program in _distro.programs:
        resolve_daemon(_program)
