"""The Ansible collection in ansible/: built with ansible-galaxy, run by ansible-playbook.

The playbooks run the collection's modules for real (Ansible packs each
module and runs it in a child Python, this test's interpreter), against
simulated hosts and guests kept in state files, and against the Linux guest
sandbox over real sshd. Each converge runs twice (the second run must report
no change) and in check mode (which must change nothing).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvintegration import HyperVHost, LinuxGuest, WindowsGuest, catalogue
from hvintegration.testing.linux_guest import GuestSandbox, sandbox_unavailable_reason

# Each playbook run starts Ansible and a Python per task: minutes, not seconds.
pytestmark = pytest.mark.timeout(600)

COLLECTION = Path(__file__).resolve().parent.parent / "ansible"
BIN = Path(sys.executable).parent


def _environment(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "ANSIBLE_COLLECTIONS_PATH": str(home / "collections"),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "1",
    }


def _galaxy(*arguments: str) -> list[str]:
    return [str(BIN / "ansible-galaxy"), "collection", *arguments]


@pytest.fixture(scope="module")
def ansible_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ansible")
    built = subprocess.run(
        [*_galaxy("build", str(COLLECTION)), "--output-path", str(home)],
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tarball = home / "hvintegration-hyperv-0.1.0.tar.gz"
    installed = subprocess.run(
        [*_galaxy("install", str(tarball)), "-p", str(home / "collections")],
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return home


def playbook(home: Path, name: str, text: str, *options: str) -> tuple[dict[str, int], str]:
    """Run a playbook on localhost; the recap's counts and the whole output."""
    path = home / name
    path.write_text(textwrap.dedent(text))
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(path), *options],
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    recap = re.search(r"localhost\s+:\s+(.*)$", done.stdout, re.MULTILINE)
    assert recap is not None, done.stdout + done.stderr
    counts = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", recap.group(1))}
    return counts, done.stdout + done.stderr


HEADER = f"""
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: {sys.executable}
"""


def test_the_collection_builds_with_every_module(ansible_home: Path) -> None:
    with tarfile.open(ansible_home / "hvintegration-hyperv-0.1.0.tar.gz") as tarball:
        names = set(tarball.getnames())
    assert {
        "MANIFEST.json",
        "plugins/modules/integration_service.py",
        "plugins/modules/linux_daemon.py",
        "plugins/modules/windows_service.py",
        "plugins/modules/info.py",
        "plugins/module_utils/common.py",
    } <= names
    for module in ("integration_service", "linux_daemon", "windows_service", "info"):
        doc = subprocess.run(
            [str(BIN / "ansible-doc"), f"hvintegration.hyperv.{module}"],
            env=_environment(ansible_home),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert doc.returncode == 0, doc.stderr
        assert "target" in doc.stdout


def _converge(state: Path, vss: bool, timesync: str) -> str:
    host = f"sim://HV01?state={state / 'hv01.json'}"
    return (
        HEADER
        + f"""
  tasks:
    - name: host services
      hvintegration.hyperv.integration_service:
        target: "{host}"
        vm: demovm
        services:
          Guest Service Interface: true
          vmicvss: {str(vss).lower()}
    - name: Linux daemon
      hvintegration.hyperv.linux_daemon:
        target: "sim-linux://web?state={state / "web.json"}"
        name: vss
        state: stopped
    - name: Windows guest service
      hvintegration.hyperv.windows_service:
        target: "{host}&guest=demovm"
        name: vmictimesync
        state: {timesync}
"""
    )


async def _read(state: Path) -> tuple[dict[str, bool], bool, bool]:
    host_url = f"sim://HV01?state={state / 'hv01.json'}"
    async with HyperVHost.connect(host_url) as host:
        services = {
            s.display_name: s.enabled for s in await host.vm("demovm").integration_services()
        }
    async with LinuxGuest.connect(f"sim-linux://web?state={state / 'web.json'}") as guest:
        vss_running = (await guest.daemon("vss").state()).running
    async with WindowsGuest.connect(f"{host_url}&guest=demovm") as windows:
        timesync = (await windows.service(catalogue.TIME_SYNCHRONIZATION).refresh()).running
    return services, vss_running, timesync


def test_converge_is_idempotent_and_check_mode_changes_nothing(
    ansible_home: Path, tmp_path: Path
) -> None:
    counts, output = playbook(ansible_home, "converge.yml", _converge(tmp_path, True, "stopped"))
    assert (counts["changed"], counts["failed"]) == (3, 0), output
    services, vss_running, timesync = asyncio.run(_read(tmp_path))
    assert services["Guest Service Interface"] is True
    assert not vss_running
    assert not timesync

    counts, output = playbook(ansible_home, "converge.yml", _converge(tmp_path, True, "stopped"))
    assert (counts["changed"], counts["failed"]) == (0, 0), output

    # Check mode with a different desired state: reported, with a diff, not done.
    counts, output = playbook(
        ansible_home, "other.yml", _converge(tmp_path, False, "started"), "--check", "--diff"
    )
    assert (counts["changed"], counts["failed"]) == (2, 0), output
    assert '-    "VSS": true' in output
    assert '+    "VSS": false' in output
    assert asyncio.run(_read(tmp_path)) == (services, vss_running, timesync)


def test_critical_services_need_force_and_info_reads(ansible_home: Path, tmp_path: Path) -> None:
    host = f"sim://HV01?vms=2&state={tmp_path / 'hv.json'}"
    minimal = f"sim-linux://m1?distro=minimal&state={tmp_path / 'm1.json'}"
    counts, output = playbook(
        ansible_home,
        "force.yml",
        HEADER
        + f"""
  tasks:
    - name: refused without force, in check mode too
      hvintegration.hyperv.integration_service:
        target: "{host}"
        vm: vm001
        services: {{Heartbeat: false}}
      check_mode: true
      register: refused
      ignore_errors: true
    - ansible.builtin.assert:
        that:
          - refused is failed
          - "'without force' in refused.msg"
          - refused.error == 'UnsafeChangeError'
    - name: an unknown VM fails with the library's error
      hvintegration.hyperv.integration_service:
        target: "{host}"
        vm: nosuchvm
        services: {{VSS: true}}
      register: missing
      ignore_errors: true
    - ansible.builtin.assert:
        that:
          - missing.error == 'VMNotFoundError'
    - name: one service under two names is refused
      hvintegration.hyperv.integration_service:
        target: "{host}"
        vm: vm001
        services: {{VSS: true, vmicvss: false}}
      register: twice
      ignore_errors: true
    - ansible.builtin.assert:
        that:
          - twice.error == 'InvalidParameterError'
          - "'names VSS twice' in twice.msg"
    - name: a daemon that is not installed fails in check mode as it fails for real
      hvintegration.hyperv.linux_daemon:
        target: "{minimal}"
        name: vss
        state: started
      check_mode: true
      register: absent
      ignore_errors: true
    - ansible.builtin.assert:
        that:
          - absent is failed
          - absent.error == 'DaemonNotFoundError'
          - "'hv_vss_daemon is not installed' in absent.msg"
    - name: with force
      hvintegration.hyperv.integration_service:
        target: "{host}"
        vm: vm001
        services: {{Heartbeat: false}}
        force: true
    - hvintegration.hyperv.info:
        target: "{host}"
        vms: [vm001]
      register: facts
    - ansible.builtin.assert:
        that:
          - facts.kind == 'host'
          - facts.services | length == 6
          - (facts.services | selectattr('name', 'eq', 'Heartbeat') | first).enabled == false
    - hvintegration.hyperv.info:
        target: "sim-linux://web?distro=rhel-9"
      register: linux
    - ansible.builtin.assert:
        that:
          - linux.kind == 'linux'
          - linux.status.daemons | map(attribute='daemon') | list == ['hypervfcopyd', \
'hypervkvpd', 'hypervvssd']
""",
    )
    assert counts["failed"] == 0, output
    assert counts["ignored"] == 4, output
    assert counts["changed"] == 1, output


@pytest.fixture
def sandbox() -> Iterator[GuestSandbox]:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with GuestSandbox() as running:
        yield running


def test_linux_daemons_in_the_guest_sandbox_over_real_sshd(
    ansible_home: Path, sandbox: GuestSandbox
) -> None:
    url = sandbox.url()
    play = (
        HEADER
        + f"""
  tasks:
    - hvintegration.hyperv.linux_daemon:
        target: "{url}"
        name: kvp
        state: started
    - hvintegration.hyperv.linux_daemon:
        target: "{url}"
        name: hv_vss_daemon
        state: stopped
"""
    )
    counts, output = playbook(ansible_home, "guest.yml", play)
    assert (counts["changed"], counts["failed"]) == (1, 0), output
    counts, output = playbook(ansible_home, "guest.yml", play)
    assert (counts["changed"], counts["failed"]) == (0, 0), output

    stop = (
        HEADER
        + f"""
  tasks:
    - hvintegration.hyperv.linux_daemon:
        target: "{url}"
        name: kvp
        state: stopped
        force: true
"""
    )
    counts, output = playbook(ansible_home, "stop.yml", stop, "--check")
    assert (counts["changed"], counts["failed"]) == (1, 0), output

    async def kvp_running() -> bool:
        async with LinuxGuest.connect(url) as guest:
            return (await guest.daemon("kvp").state()).running

    assert asyncio.run(kvp_running())
    counts, output = playbook(ansible_home, "stop.yml", stop)
    assert (counts["changed"], counts["failed"]) == (1, 0), output
    assert not asyncio.run(kvp_running())
