"""Suite-wide rules for the test run.

Skips are visible: under continuous integration (``CI`` set to ``true``, ``1``
or ``yes``) a skipped test fails the run, unless its reason matches the short
allow-list below. Without it, a CI machine that lacks root, sshd or the
Debian packages would skip a third of the suite and still pass.

A skip turns into a failure (or an error, when it happened while setting
the test up) whose message carries the original reason, so the summary says
what the machine is missing. Expected failures (``xfail``) are not skips and
are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

ALLOWED_SKIP_REASONS: tuple[str, ...] = (
    # The live test against a real Hyper-V host: CI has none to offer.
    "set HVINTEGRATION_TEST_WINRM",
)
"""Substrings of the skip reasons CI accepts; every other skip fails there."""


def ci_requires_every_test() -> bool:
    """Whether this run is under CI, where skips must be on the allow-list."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason text of a skipped report (``Skipped: `` removed)."""
    longrepr = report.longrepr
    # A skip's longrepr is (path, line, "Skipped: reason").
    whole = isinstance(longrepr, tuple) and len(longrepr) == 3
    text = str(longrepr[2]) if whole else str(longrepr)  # type: ignore[index]
    return text.removeprefix("Skipped: ")


def allowed(reason: str) -> bool:
    """Whether a skip with this reason may pass under CI."""
    return any(entry in reason for entry in ALLOWED_SKIP_REASONS)


def _enforce(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not ci_requires_every_test():
        return
    reason = skip_reason(report)
    if allowed(reason):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI={os.environ.get('CI')}, and the reason is not on the allow-list "
        f"in tests/conftest.py: {reason}"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Turn a test's skip into a failure under CI unless its reason is allowed."""
    report = yield
    _enforce(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """The same for a whole module skipped while it is collected."""
    report = yield
    _enforce(report)
    return report
