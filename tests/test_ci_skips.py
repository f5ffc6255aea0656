"""The suite's own rule: under CI a skip fails the run unless its reason is allowed.

Each test runs a small suite with the project's tests/conftest.py through
pytest's ``pytester`` and reads its outcome.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py").read_text(encoding="utf-8")

SUITE = """
import os
import pytest


def test_passes():
    pass


def test_skips_in_the_body():
    pytest.skip("sshd is not installed")


@pytest.mark.skipif(True, reason="needs root")
def test_skipped_by_a_mark():
    pass


@pytest.fixture
def sandbox():
    pytest.skip("unshare is not available")


def test_skipped_by_a_fixture(sandbox):
    pass


@pytest.mark.skipif(True, reason="set HVINTEGRATION_TEST_WINRM to a Hyper-V host to run it")
def test_live_winrm():
    pass


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False
"""

MODULE_SKIP = """
import pytest

pytest.skip("the Debian packages are missing", allow_module_level=True)


def test_never_collected():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # The inner run needs none of this project's plugins.
    return pytester.runpytest("-p", "no:asyncio", "-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_under_ci_a_skip_fails_unless_allowed(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    result = run(suite, "-rA")
    # A skip in the body fails the test; a skip by mark or fixture happens
    # while the test is set up and is an error; the allowed one stays skipped.
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=1, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for reason in ("sshd is not installed", "needs root", "unshare is not available"):
        result.stdout.fnmatch_lines([f"*not on the allow-list*{reason}*"])
    result.stdout.fnmatch_lines(["SKIPPED*set HVINTEGRATION_TEST_WINRM*"])


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_outside_ci_skips_stay_skips(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    suite.makepyfile(test_module_skip=MODULE_SKIP)
    result = run(suite)
    result.assert_outcomes(passed=1, skipped=5, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_under_ci_a_module_skipped_at_collection_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_module_skip=MODULE_SKIP)
    result = run(pytester)
    result.assert_outcomes(errors=1)
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*not on the allow-list*the Debian packages are missing*"])


def test_an_allowed_skip_alone_passes_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.skipif(True, reason="set HVINTEGRATION_TEST_WINRM to a host")
        def test_live():
            pass

        def test_ok():
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, skipped=1)
    assert result.ret == pytest.ExitCode.OK
