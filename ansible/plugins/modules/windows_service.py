#!/usr/bin/python
# Copyright: the hvintegration authors
# MIT License (see the LICENSE file of hvintegration)

from __future__ import annotations

# Ansible's layout: the documentation strings come before the imports.
# ruff: noqa: E402

DOCUMENTATION = r"""
module: windows_service
short_description: A Windows guest's Hyper-V integration service (vmic*) to a desired state
version_added: 0.1.0
description:
  - Starts, stops or restarts one C(vmic*) service in a Windows guest
    (C(Start-Service), C(Stop-Service), C(Restart-Service)), and enables
    (startup type Manual, the trigger-start default) or disables it.
  - The guest is reached straight (C(psrp://), C(ssh://...?shell=powershell),
    C(sim://?guest=VM)); the module runs where the hvintegration library is
    installed.
options:
  target:
    description: The Windows guest as a URL.
    type: str
    required: true
  password:
    description: The password for I(target), if it needs one.
    type: str
  timeout:
    description: Seconds each operation may take.
    type: float
    default: 60
  name:
    description: The service, by its C(vmic*) name or any catalogue name.
    type: str
    required: true
  state:
    description: Whether it runs; C(restarted) always restarts it.
    type: str
    choices: [started, stopped, restarted]
  enabled:
    description: Whether it may start (startup type Manual) or is Disabled.
    type: bool
  force:
    description:
      - Needed to stop or disable Heartbeat, Shutdown, Key-Value Pair Exchange or PowerShell
        Direct.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
requirements:
  - hvintegration
author:
  - The hvintegration authors
"""

EXAMPLES = r"""
- name: Time synchronisation comes from the domain, not the host
  hvintegration.hyperv.windows_service:
    target: "psrp://admin@{{ inventory_hostname }}?ssl=true"
    password: "{{ vault_guest_password }}"
    name: vmictimesync
    state: stopped
    enabled: false
"""

RETURN = r"""
service:
  description: The service afterwards (in check mode, as it is now).
  returned: success
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


def _view(state):
    return {"running": state.running, "disabled": state.disabled}


async def converge(module):
    from hvintegration import UnsafeChangeError, WindowsGuest
    from hvintegration.errors import ServiceNotFoundError

    params = module.params
    async with WindowsGuest.connect(target_of(module), timeout=params["timeout"]) as guest:
        service = guest.service(params["name"])
        before = await service.refresh()
        if not before.present:
            raise ServiceNotFoundError(
                service.name, reason=f"the guest has no {service.name} service", target=guest.target
            )
        steps = []
        if params["enabled"] is True and before.disabled:
            steps.append("enable")
        state = params["state"]
        if state == "started" and not before.running:
            steps.append("start")
        elif state == "stopped" and before.running:
            steps.append("stop")
        elif state == "restarted":
            steps.append("restart")
        if params["enabled"] is False and not before.disabled:
            steps.append("disable")
        risky = [step for step in steps if step in ("stop", "disable")]
        if risky and service.spec.critical and not params["force"]:
            raise UnsafeChangeError(
                [service.spec.name], target=guest.target, operation="windows_service"
            )
        after = before
        expected = _view(before)
        for step in steps:
            if step in ("start", "restart"):
                expected["running"] = True
            elif step == "stop":
                expected["running"] = False
            else:
                expected["disabled"] = step == "disable"
            if module.check_mode:
                continue
            if step in ("stop", "disable"):
                after = await getattr(service, step)(force=params["force"])
            else:
                after = await getattr(service, step)()
        if not module.check_mode:
            expected = _view(after)
        return before, after, steps, expected


def main():
    module = AnsibleModule(
        argument_spec={
            **TARGET_OPTIONS,
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["started", "stopped", "restarted"]},
            "enabled": {"type": "bool"},
            "force": {"type": "bool", "default": False},
        },
        required_one_of=[("state", "enabled")],
        supports_check_mode=True,
    )
    require_library(module)
    before, after, steps, expected = run(module, converge(module))
    result = {"changed": bool(steps), "actions": steps, "service": json_ready(after)}
    if module._diff:
        result["diff"] = {"before": _view(before), "after": expected}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
