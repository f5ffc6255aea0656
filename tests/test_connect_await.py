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


@pytest.mark.parametrize(
    ("cls", "url"),
    [(HyperVHost, "sim://"), (WindowsGuest, "sim://?guest=demovm"), (LinuxGuest, "sim-linux://")],
)
def test_probing_an_unopened_connection_answers_as_for_any_missing_name(cls: Any, url: str) -> None:
    connection = cls.connect(url)
    assert not hasattr(connection, "vm")
    assert getattr(connection, "services", None) is None
    with pytest.raises(TypeError, match="not open yet"):
        connection.status  # noqa: B018


async def test_a_connection_used_after_its_block_says_it_was_closed() -> None:
    connection: Any = HyperVHost.connect("sim://")
    async with connection as host:
        assert len(await host.list_vms()) == 1
        with pytest.raises(AttributeError, match="is what opening it gave"):
            connection.list_vms  # noqa: B018
    with pytest.raises(TypeError, match="was closed when its `async with` block ended") as caught:
        connection.vm("demovm")
    assert "not open yet" not in str(caught.value)
    assert repr(connection).endswith("closed>")


async def test_diagnose_given_an_unopened_guest_says_to_await_it() -> None:
    from hvintegration.simulator import SimulatedHost

    lab = SimulatedHost()
    async with HyperVHost.connect(lab) as host:
        for guest in (
            LinuxGuest.connect("sim-linux://"),
            WindowsGuest.connect("sim://?guest=demovm"),
        ):
            name = type(guest._resource).__name__
            with pytest.raises(TypeError, match=f"guest = await {name}.connect"):
                await host.vm("demovm").diagnose(guest)  # type: ignore[arg-type]
    assert lab.round_trips == 0


async def test_awaiting_a_powershell_direct_guest_says_what_to_write() -> None:
    from hvintegration.windows import Credential

    async with HyperVHost.connect("sim://") as host:
        credential = Credential("Administrator", "hvintegration")
        with pytest.raises(
            TypeError, match=r"guest = WindowsGuest\.direct\(host, vm, credential\)"
        ):
            await WindowsGuest.direct(host, "demovm", credential)  # type: ignore[misc]
        with pytest.raises(TypeError, match="nothing to await"):
            await host.vm("demovm").windows(credential)  # type: ignore[misc]
        guest = WindowsGuest.direct(host, "demovm", credential)
        assert len(await guest.services()) == 8
