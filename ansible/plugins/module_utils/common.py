# Copyright: the hvintegration authors
# MIT License (see the LICENSE file of hvintegration)
"""What every module of the collection shares: its options, the target, running the library."""

from __future__ import annotations

import asyncio
import traceback

try:
    import attrs

    from hvintegration.errors import HvIntegrationError
    from hvintegration.fleet.records import plain
    from hvintegration.transport import parse_target
except ImportError:  # reported by require_library(), as Ansible modules do
    LIBRARY_ERROR = traceback.format_exc()
else:
    LIBRARY_ERROR = None

TARGET_OPTIONS = {
    "target": {"type": "str", "required": True},
    "password": {"type": "str", "no_log": True},
    "timeout": {"type": "float", "default": 60.0},
}
"""The options every module takes: where, the password, seconds per operation."""


def require_library(module):
    """Fail the module with the install hint when hvintegration is missing."""
    if LIBRARY_ERROR is not None:
        module.fail_json(
            msg="the hvintegration Python library is needed on the machine that runs this "
            "module (pip install hvintegration)",
            exception=LIBRARY_ERROR,
        )


def target_of(module):
    """The module's target: its URL, or target settings carrying the password."""
    url = module.params["target"]
    password = module.params.get("password")
    if password is None:
        return url
    settings = parse_target(url)
    if not (attrs.has(type(settings)) and "password" in attrs.fields_dict(type(settings))):
        module.fail_json(msg=f"{url.partition('://')[0]}:// takes no password")
    return attrs.evolve(settings, password=password)


def run(module, coroutine):
    """Run the library's coroutine; a library error fails the module with its message."""
    try:
        return asyncio.run(coroutine)
    except HvIntegrationError as error:
        module.fail_json(msg=str(error), error=type(error).__name__)
    except ValueError as error:
        module.fail_json(msg=str(error), error=type(error).__name__)
    return None  # not reached: fail_json exits


def json_ready(value):
    """A library record as plain JSON data (ids as text, services by key)."""
    return plain(value)
