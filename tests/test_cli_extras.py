"""Without an optional extra, ssh:// and psrp:// say which one to install, in
one line, on the command line and in Python; with it, they parse as before.

Each case runs in a child process in which the extra's modules cannot be
imported (``sys.modules[name] = None``, as if they were not installed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from hvintegration.cli import EXIT_CODES
from hvintegration.transport import parse_target


def _without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    hide = "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    program = f"import sys\n{hide}{textwrap.dedent(code)}"
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )


CLI = "from hvintegration.cli import main\nsys.argv = ['hvintegration', *sys.argv[1:]]\nmain()\n"


@pytest.mark.parametrize(
    ("hidden", "url", "extra"),
    [
        (["asyncssh"], "ssh://admin@hv01?shell=powershell", "pip install 'hvintegration[ssh]'"),
        (["psrp", "pypsrp"], "psrp://admin@hv01?ssl=true", "pip install 'hvintegration[psrp]'"),
        (["psrpcore"], "psrp://admin@hv01", "pip install 'hvintegration[psrp]'"),
        (["asyncssh"], "psrp://admin@hv01?via=ssh", "pip install 'hvintegration[psrp,ssh]'"),
    ],
)
def test_the_command_line_names_the_extra(hidden: list[str], url: str, extra: str) -> None:
    code = f"sys.argv[1:] = ['-t', {url!r}, 'host', 'vms']\n{CLI}"
    done = _without(hidden, code)
    assert done.returncode == EXIT_CODES["usage"]
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("hvintegration: error: ")
    assert extra in done.stderr
    assert "Traceback" not in done.stderr


def test_python_raises_invalid_target_naming_the_extra() -> None:
    done = _without(
        ["asyncssh"],
        """
        import asyncio
        from hvintegration import HyperVHost, InvalidTargetError

        async def main():
            try:
                await HyperVHost.connect("ssh://admin@hv01?shell=powershell")
            except InvalidTargetError as error:
                print(error)

        asyncio.run(main())
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "ssh:// needs the optional package asyncssh: pip install 'hvintegration[ssh]'"
    )


def test_the_simulator_needs_no_extra() -> None:
    done = _without(
        ["asyncssh", "psrp", "pypsrp", "psrpcore"],
        f"sys.argv[1:] = ['-t', 'sim://', 'host', 'vms']\n{CLI}",
    )
    assert done.returncode == 0, done.stderr
    assert "demovm" in done.stdout


def test_with_the_extras_installed_the_urls_parse() -> None:
    assert parse_target("ssh://admin@hv01?shell=powershell").url.startswith("ssh://admin@hv01")
    assert parse_target("psrp://admin@hv01?ssl=true").url.startswith("psrp://admin@hv01")


def test_the_message_names_the_packages_pip_knows() -> None:
    done = _without(
        ["psrp", "psrpcore"],
        """
        from hvintegration.transport import parse_target
        try:
            parse_target('psrp://admin@hv01?ssl=true')
        except ValueError as error:
            print(error.message)
        """,
    )
    assert done.stdout == (
        "psrp:// needs the optional packages pypsrp, psrpcore: pip install 'hvintegration[psrp]'\n"
    ), done.stderr


@pytest.mark.parametrize(
    ("hidden", "url", "extra"),
    [
        (["psrp", "psrpcore"], "psrp://admin@hv01?ssl=true", "'hvintegration[psrp]'"),
        (["asyncssh"], "psrp://admin@hv01?via=ssh", "'hvintegration[psrp,ssh]'"),
    ],
)
def test_psrp_settings_import_without_the_extra_and_using_them_names_it(
    hidden: list[str], url: str, extra: str
) -> None:
    done = _without(
        hidden,
        f"""
        from hvintegration.transport.psrp import PSRPTarget
        from hvintegration.transport import parse_target
        target = PSRPTarget.from_url(__import__('urllib.parse').parse.urlsplit({url!r}))
        print(target.url)
        for use in (target.open, target.connection_info):
            try:
                use()
            except ValueError as error:
                print(type(error).__name__, error.message)
        """,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("psrp://admin@hv01")
    assert len(lines) == 3
    for line in lines[1:]:
        assert line.startswith("InvalidTargetError psrp:// needs the optional package")
        assert extra in line
