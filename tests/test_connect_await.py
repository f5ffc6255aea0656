"""Forgetting ``await`` on ``connect()``: the error says what to write.

A type checker already rejects these mistakes (hence the ignores); the
run-time errors are for notebooks and untyped scripts.
"""

from __future__ import annotations

import gc
import warnings
from typing import Any

import pytest

from hvintegration import HyperVHost, LinuxGuest, WindowsGuest


@pytest.mark.parametrize(
    ("cls", "url", "var"),
    [
        (HyperVHost, "sim://", "host"),
        (WindowsGuest, "sim://?guest=demovm", "guest"),
        (LinuxGuest, "sim-linux://", "guest"),
    ],
)
def test_attribute_of_an_unopened_connection_says_what_to_write(
    cls: Any, url: str, var: str
) -> None:
    connection = cls.connect(url)
    with pytest.raises(TypeError) as caught:
        connection.vm  # noqa: B018 - the access itself is the mistake
    message = str(caught.value)
    assert f"async with {cls.__name__}.connect(url) as {var}:" in message
    assert f"{var} = await {cls.__name__}.connect(url)" in message
    assert "has no .vm" in message


async def test_calling_a_method_of_an_unopened_host_leaves_no_coroutine_behind() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        connection = HyperVHost.connect("sim://")
        with pytest.raises(TypeError, match=r"host = await HyperVHost\.connect\(url\)"):
            await connection.list_vms()  # type: ignore[attr-defined]
        with pytest.raises(TypeError, match="not callable"):
            connection()  # type: ignore[operator]
        with pytest.raises(TypeError, match="`async with`, not `with`"), connection:  # type: ignore[attr-defined]
            pass
        del connection
        gc.collect()


async def test_the_connection_still_opens_after_the_mistake() -> None:
    connection = HyperVHost.connect("sim://")
    with pytest.raises(TypeError):
        connection.vm  # type: ignore[attr-defined]  # noqa: B018
    async with connection as host:
        assert [vm.name for vm in await host.list_vms()] == ["demovm"]


def test_probes_for_private_names_get_attribute_error() -> None:
    connection = HyperVHost.connect("sim://")
    assert not hasattr(connection, "_repr_html_")
    assert getattr(connection, "_ipython_display_", None) is None
    assert "not open" in repr(connection)
