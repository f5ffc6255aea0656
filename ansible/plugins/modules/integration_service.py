#!/usr/bin/python
# Copyright: the hvintegration authors
# MIT License (see the LICENSE file of hvintegration)

from __future__ import annotations

# Ansible's layout: the documentation strings come before the imports.
# ruff: noqa: E402

DOCUMENTATION = r"""
module: integration_service
short_description: Bring a VM's Hyper-V integration services to a desired state
version_added: 0.1.0
description:
  - Reads every integration service of one VM from its Hyper-V host and
    turns on or off, in one round trip, only those that differ from what is
    asked (C(Enable-VMIntegrationService), C(Disable-VMIntegrationService)).
  - Services are named by any name the hvintegration catalogue knows (the
    English name, an older name such as C(Data Exchange), the C(vmic*)
    service name or the integration component GUID), so localised hosts work.
  - Runs where the hvintegration library is installed, usually the
    controller (C(connection=local)); it reaches the host through I(target).
options:
  target:
    description:
      - The Hyper-V host as a URL (C(psrp://user@host?ssl=true),
        C(ssh://user@host?shell=powershell), C(sim://)).
    type: str
    required: true
  password:
    description: The password for I(target), if it needs one.
    type: str
  timeout:
    description: Seconds each operation may take.
    type: float
    default: 60
  vm:
    description: The VM's name or id.
    type: str
    required: true
  services:
    description:
      - Service name to whether it must be enabled. Any name the catalogue knows (English,
        older, C(vmic*), GUID); one service under two names (C(VSS) and C(vmicvss)) fails
        with C(InvalidParameterError).
    type: dict
    required: true
  force:
    description:
      - Allow turning off Heartbeat, Shutdown or Key-Value Pair Exchange,
        which the host needs to manage the VM. Without it such a request
        fails before anything is changed, in check mode too.
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
- name: Turn on Guest Service Interface and VSS for web01
  hvintegration.hyperv.integration_service:
    target: "psrp://admin@hv01.example.com?ssl=true"
    password: "{{ vault_hyperv_password }}"
    vm: web01
    services:
      Guest Service Interface: true
      VSS: true
"""

RETURN = r"""
services:
  description:
    - The services asked about, as the host reports them afterwards (in check mode, as they
      would be).
  returned: success
  type: list
  elements: dict
changes:
  description: The services that were (in check mode, would be) changed, by name.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.hvintegration.hyperv.plugins.module_utils.common import (
    TARGET_OPTIONS,
    require_library,
    run,
    target_of,
)


async def converge(module):
    from hvintegration import HyperVHost, UnsafeChangeError, catalogue
    from hvintegration.errors import InvalidParameterError, ServiceNotFoundError

    params = module.params
    wanted = {}
    for name, on in params["services"].items():
        spec = catalogue.resolve_host(name)
        if spec in wanted:
            # {VSS: true, vmicvss: false}: one service twice, two answers.
            raise InvalidParameterError(
                f"services names {spec.name} twice (under two of its names)",
                operation="integration_service",
            )
        wanted[spec] = boolean(on)
    async with HyperVHost.connect(target_of(module), timeout=params["timeout"]) as host:
        vm = host.vm(params["vm"])
        states = {s.service: s for s in await vm.integration_services() if s.service}
        for spec in wanted:
            if spec not in states:
                raise ServiceNotFoundError(
                    spec.name,
                    reason=f"the VM {params['vm']} has no {spec.name}",
                    target=host.target,
                )
        differ = {spec: on for spec, on in wanted.items() if states[spec].enabled != on}
        critical = sorted(spec.name for spec, on in differ.items() if spec.critical and not on)
        if critical and not params["force"]:
            raise UnsafeChangeError(critical, target=host.target, operation="integration_service")
        after = {spec: states[spec].enabled for spec in wanted}
        if differ and not module.check_mode:
            result = await vm.apply(differ, force=params["force"])
            for item in result.items:
                after[item.state.service] = item.state.enabled
        else:
            after.update(differ)
        return states, wanted, differ, after


def main():
    module = AnsibleModule(
        argument_spec={
            **TARGET_OPTIONS,
            "vm": {"type": "str", "required": True},
            "services": {"type": "dict", "required": True},
            "force": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    require_library(module)
    states, wanted, differ, after = run(module, converge(module))
    result = {
        "changed": bool(differ),
        "changes": [spec.name for spec in differ],
        "services": [
            {
                "name": spec.name,
                "enabled": after[spec],
                "status": states[spec].primary_status,
                "component_id": str(spec.component_id),
            }
            for spec in wanted
        ],
    }
    if module._diff:
        result["diff"] = {
            "before": {spec.name: states[spec].enabled for spec in wanted},
            "after": {spec.name: after[spec] for spec in wanted},
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
