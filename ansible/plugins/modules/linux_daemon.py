#!/usr/bin/python
# Copyright: the hvintegration authors
# MIT License (see the LICENSE file of hvintegration)

from __future__ import annotations

# Ansible's layout: the documentation strings come before the imports.
# ruff: noqa: E402

DOCUMENTATION = r"""
module: linux_daemon
short_description: Start, stop or restart a Linux guest's Hyper-V integration daemon
version_added: 0.1.0
description:
  - Brings C(hv_kvp_daemon), C(hv_vss_daemon) or C(hv_fcopy_daemon) (or the
    Red Hat C(hypervkvpd)... names) of a Linux guest to a state, through
    systemd where the guest runs it and signals and a direct start where it
    does not, as the hvintegration library does.
  - Runs where the library is installed (usually the controller) and reaches
    the guest through I(target), C(ssh://user@guest) or C(local://).
options:
  target:
    description: The Linux guest as a URL (C(ssh://root@guest), C(local://), C(sim-linux://)).
    type: str
    required: true
  password:
    description: The SSH password for I(target), if it needs one.
    type: str
  timeout:
    description: Seconds each command may take.
    type: float
    default: 60
  name:
    description:
      - The daemon, by any name (C(kvp), C(hv_kvp_daemon), C(hypervkvpd), a unit, a service).
    type: str
    required: true
  state:
    description: C(restarted) always stops and starts it again.
    type: str
    required: true
    choices: [started, stopped, restarted]
  force:
    description:
      - Needed to stop or restart the Key-Value Pair Exchange daemon, through which the host
        learns the guest's addresses.
    type: bool
    default: false
  grace:
    description: Seconds to wait after SIGTERM.
    type: float
    default: 10
  kill:
    description: SIGKILL instances still running after I(grace) instead of failing.
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
- name: The VSS daemon must not run on database guests
  hvintegration.hyperv.linux_daemon:
    target: "ssh://root@{{ inventory_hostname }}"
    name: vss
    state: stopped
"""

RETURN = r"""
daemon:
  description: The daemon afterwards (in check mode, as it is now).
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hvintegration.hyperv.plugins.module_utils.common import (
    TARGET_OPTIONS,
    require_library,
    run,
    target_of,
)


async def converge(module):
    from hvintegration import DaemonNotFoundError, LinuxGuest, UnsafeChangeError

    params = module.params
    async with LinuxGuest.connect(target_of(module), timeout=params["timeout"]) as guest:
        daemon = guest.daemon(params["name"])
        before = await daemon.state()
        state = params["state"]
        changed = {
            "started": not before.running,
            "stopped": before.running,
            "restarted": True,
        }[state]
        risky = state in ("stopped", "restarted") and daemon.spec.service.critical
        if changed and risky and not params["force"]:
            raise UnsafeChangeError(
                [daemon.spec.service.name], target=guest.target, operation="linux_daemon"
            )
        starts = changed and state in ("started", "restarted")
        if starts and module.check_mode and before.program is None and before.unit is None:
            # What the real run would fail with: a daemon that is not
            # installed (or only where others than root could write it)
            # cannot be started, so check mode does not promise it.
            untrusted = [i.path for i in before.installed if not i.trusted]
            name = daemon.spec.name
            raise DaemonNotFoundError(
                name,
                reason=(
                    f"{name} is installed only where others than root could have written it "
                    f"({', '.join(untrusted)}); it is never started"
                    if untrusted
                    else f"{name} is not installed"
                ),
                target=guest.target,
                operation=f"{'start' if state == 'started' else 'restart'} {name}",
            )
        after = before
        if changed and not module.check_mode:
            if state == "started":
                after = await daemon.start()
            elif state == "stopped":
                after = await daemon.stop(
                    force=params["force"], grace=params["grace"], kill=params["kill"]
                )
            else:
                after = await daemon.restart(
                    force=params["force"], grace=params["grace"], kill=params["kill"]
                )
        return before, after, changed


def main():
    module = AnsibleModule(
        argument_spec={
            **TARGET_OPTIONS,
            "name": {"type": "str", "required": True},
            "state": {
                "type": "str",
                "required": True,
                "choices": ["started", "stopped", "restarted"],
            },
            "force": {"type": "bool", "default": False},
            "grace": {"type": "float", "default": 10.0},
            "kill": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    require_library(module)
    before, after, changed = run(module, converge(module))
    result = {"changed": changed, "daemon": after.as_dict()}
    if module._diff:
        running_after = (
            after.running if not module.check_mode else module.params["state"] != "stopped"
        )
        result["diff"] = {
            "before": {"running": before.running},
            "after": {"running": running_after},
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
