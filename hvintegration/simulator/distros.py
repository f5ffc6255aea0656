"""Linux distribution profiles for simulated guests: how each packages the Hyper-V daemons.

Each profile records documented packaging facts, cited beside it.
"""

from __future__ import annotations

from types import MappingProxyType

import attrs

from hvintegration.linux.names import resolve_daemon

__all__ = ["DISTROS", "Distro"]

_HELPERS = ("hv_get_dhcp_info", "hv_get_dns_info", "hv_set_ifconfig")


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
        wrappers: Paths that are scripts running another path.
        driver: ``module`` or ``built-in``.
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
            # SUSE: daemons outside PATH in /usr/lib/hyper-v/bin; kernels
            # from 6.10 replace hv_fcopy_daemon by hv_fcopy_uio_daemon.
            Distro(
                "sles-15",
                "SUSE Linux Enterprise Server 15 SP6",
                "6.4.0-150600.23-default",
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
