"""The public surface: __all__ lists exactly the public names, each documented."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

import pytest

import hvintegration

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(hvintegration.__path__, "hvintegration.")
    if not any(part.startswith("_") for part in info.name.split(".")[1:])
)


def test_root_all_matches_the_public_names() -> None:
    public = {
        name
        for name, value in vars(hvintegration).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(hvintegration.__all__) == public | {"catalogue", "__version__"}
    assert len(hvintegration.__all__) == len(set(hvintegration.__all__))


@pytest.mark.parametrize("module_name", MODULES)
def test_every_module_lists_real_documented_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no docstring"
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name}"
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"
            for member_name, member in vars(value).items() if inspect.isclass(value) else ():
                # Test methods of the conformance suite are named for what they check.
                if member_name.startswith(("_", "test_")) or not callable(member):
                    continue
                assert inspect.getdoc(member), f"{module_name}.{name}.{member_name} undocumented"
