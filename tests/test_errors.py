"""The error hierarchy: builtin bases, messages with context, no lost details."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from hvintegration import errors


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.NotFoundError, LookupError),
        (errors.VMNotFoundError, LookupError),
        (errors.ServiceNotFoundError, LookupError),
        (errors.AmbiguousVMError, LookupError),
        (errors.InvalidTargetError, ValueError),
        (errors.PermissionDeniedError, PermissionError),
        (errors.OperationTimeoutError, TimeoutError),
        (errors.OperationTimeoutError, asyncio.TimeoutError),
        (errors.TransportError, ConnectionError),
        (errors.TransportClosedError, ConnectionError),
        (errors.TransportBrokenError, ConnectionError),
        (errors.ProtocolError, ConnectionError),
        (errors.AuthenticationError, ConnectionError),
        (errors.HostKeyError, ConnectionError),
    ],
)
def test_errors_subclass_the_fitting_builtin(cls: type, builtin: type) -> None:
    assert issubclass(cls, errors.HvIntegrationError)
    assert issubclass(cls, builtin)


def test_every_public_error_is_in_the_drawing() -> None:
    drawing = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in drawing, name


def test_message_carries_target_and_operation() -> None:
    error = errors.RemoteCommandError(
        "remote command failed: boom",
        error_id="X,Y",
        category="InvalidOperation",
        remote_message="boom",
        target="ssh://admin@hv01",
        operation="list_vms",
    )
    assert str(error) == (
        "remote command failed: boom [target ssh://admin@hv01, operation list_vms]"
    )
    assert (error.error_id, error.category, error.remote_message) == (
        "X,Y",
        "InvalidOperation",
        "boom",
    )


def test_long_choice_lists_are_cut() -> None:
    error = errors.VMNotFoundError("x", choices=[f"vm{n:03d}" for n in range(40)])
    assert "vm011" in str(error)
    assert "vm012" not in str(error)
    assert "28 more" in str(error)
    assert len(error.choices) == 40


def test_errors_survive_pickling() -> None:
    error = errors.VMNotFoundError("x", choices=["demovm"], target="sim://HV01", operation="op")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.VMNotFoundError
    assert str(copy) == str(error)
    assert copy.choices == ("demovm",)


def test_batch_error_lists_each_failure_and_keeps_the_result() -> None:
    failure = errors.VMNotFoundError("ghost")
    error = errors.BatchError("some failed", result=("done",), errors={"ghost": failure})
    assert error.result == ("done",)
    assert error.errors == {"ghost": failure}
    assert "ghost: no virtual machine named 'ghost'" in str(error)
