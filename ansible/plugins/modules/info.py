#!/usr/bin/python
# Copyright: the hvintegration authors
# MIT License (see the LICENSE file of hvintegration)

from __future__ import annotations

# Ansible's layout: the documentation strings come before the imports.
# ruff: noqa: E402

DOCUMENTATION = r"""
module: info
short_description: Read Hyper-V integration services from a host, a Windows guest or a Linux guest
version_added: 0.1.0
description:
  - On a host, every integration service of the VMs asked for (one round
    trip); in a Windows guest, its C(vmic*) services; in a Linux guest, the
    C(hv_utils) driver and the integration daemons. Changes nothing.
options:
  target:
    description: The host or guest as a URL.
    type: str
    required: true
  password:
    description: The password for I(target), if it needs one.
    type: str
  timeout:
    description: Seconds each operation may take.
    type: float
    default: 60
  kind:
    description:
      - What I(target) is; guessed from the URL when absent (C(sim-linux://) and a POSIX
        C(ssh://) are Linux guests, C(sim://?guest=VM) a Windows guest, the rest hosts).
    type: str
    choices: [host, windows, linux]
  vms:
    description: On a host, the VMs to read; all when absent.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
requirements:
  - hvintegration
author:
  - The hvintegration authors
"""

EXAMPLES = r"""
- name: Which VMs have Guest Service Interface off?
  hvintegration.hyperv.info:
    target: "psrp://admin@hv01.example.com?ssl=true"
    password: "{{ vault_hyperv_password }}"
  register: hv01

- ansible.builtin.debug:
    msg: >-
      {{ hv01.services | selectattr('name', 'eq', 'Guest Service Interface')
         | rejectattr('enabled') | map(attribute='vm') }}
"""

RETURN = r"""
kind:
  description: C(host), C(windows) or C(linux).
  returned: always
  type: str
services:
  description:
    - On a host, one entry per service per VM (vm, name, enabled, status...); in a Windows
      guest, one per vmic* service.
  returned: host and windows
  type: list
  elements: dict
status:
  description: In a Linux guest, the driver and each daemon.
  returned: linux
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvintegration.hyperv.plugins.module_utils.common import (
    TARGET_OPTIONS,
    json_ready,
    require_library,
    run,
    target_of,
)


async def read(module, kind):
    from hvintegration import HyperVHost, LinuxGuest, WindowsGuest

    target, timeout = target_of(module), module.params["timeout"]
    if kind == "host":
        async with HyperVHost.connect(target, timeout=timeout) as host:
            states = await host.integration_services(module.params["vms"])
        return {
            "services": [
                {
                    "vm": s.vm_name,
                    "vm_id": str(s.vm_id),
                    "name": s.display_name,
                    "host_name": s.name,
                    "enabled": s.enabled,
                    "status": s.primary_status,
                    "healthy": s.healthy,
                }
                for s in states
            ]
        }
    if kind == "windows":
        async with WindowsGuest.connect(target, timeout=timeout) as guest:
            return {"services": [json_ready(s) for s in await guest.services()]}
    async with LinuxGuest.connect(target, timeout=timeout) as guest:
        status = await guest.status()
    return {
        "status": {
            "driver": json_ready(status.driver),
            "systemd": status.systemd,
            "daemons": [d.as_dict() for d in status.daemons],
        }
    }


def main():
    module = AnsibleModule(
        argument_spec={
            **TARGET_OPTIONS,
            "kind": {"type": "str", "choices": ["host", "windows", "linux"]},
            "vms": {"type": "list", "elements": "str"},
        },
        supports_check_mode=True,
    )
    require_library(module)
    from hvintegration.fleet import infer_kind

    kind = module.params["kind"] or infer_kind(module.params["target"])
    module.exit_json(changed=False, kind=kind, **run(module, read(module, kind)))


if __name__ == "__main__":
    main()
