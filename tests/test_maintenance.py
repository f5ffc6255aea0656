"""Maintenance advice: the how-to's three tables, later hosts, Linux guests, names, CLI."""

from __future__ import annotations

import io
import json

import attrs
import pytest

import hvintegration
from hvintegration import NotFoundError
from hvintegration.cli import EXIT_CODES, run
from hvintegration.maintenance import (
    Advice,
    Mechanism,
    advise,
    known_guest_oses,
    known_host_oses,
    resolve_guest_os,
    resolve_host_os,
)
from hvintegration.maintenance_data import ROWS

WU = "Windows Update"
DISK = "Integration Services disk"

# The how-to's tables, written out by hand from the Traditional Chinese text
# ("整合服務光碟" is the Integration Services disk; "需要「資料交換」整合服務。*"
# is "Requires the Data Exchange integration service.*"). Names are spelled as
# the tables spell them. (host, guest, mechanism, Data Exchange required)
SEED_TABLES = [
    # Virtual machines running on Windows 10 hosts
    ("Windows 10", "Windows 10", WU, False),
    ("Windows 10", "Windows 8.1", WU, False),
    ("Windows 10", "Windows 8", WU, True),
    ("Windows 10", "Windows 7", WU, True),
    ("Windows 10", "Windows Vista (SP 2)", WU, True),
    ("Windows 10", "Windows Server 2012 R2", WU, False),
    ("Windows 10", "Windows Server 2012", WU, True),
    ("Windows 10", "Windows Server 2008 R2", WU, True),
    ("Windows 10", "Windows Server 2008 (SP 2)", WU, True),
    ("Windows 10", "Windows Home Server 2011", WU, True),
    ("Windows 10", "Windows Small Business Server 2011", WU, True),
    # Virtual machines running on Windows 8.1 hosts
    ("Windows 8.1", "Windows 10", WU, False),
    ("Windows 8.1", "Windows 8.1", WU, False),
    ("Windows 8.1", "Windows 8", DISK, False),
    ("Windows 8.1", "Windows 7", DISK, False),
    ("Windows 8.1", "Windows Vista (SP 2)", DISK, False),
    ("Windows 8.1", "Windows XP (SP 2, SP 3)", DISK, False),
    ("Windows 8.1", "Windows Server 2012 R2", WU, False),
    ("Windows 8.1", "Windows Server 2012", DISK, False),
    ("Windows 8.1", "Windows Server 2008 R2", DISK, False),
    ("Windows 8.1", "Windows Server 2008 (SP 2)", DISK, False),
    ("Windows 8.1", "Windows Home Server 2011", DISK, False),
    ("Windows 8.1", "Windows Small Business Server 2011", DISK, False),
    ("Windows 8.1", "Windows Server 2003 R2 (SP 2)", DISK, False),
    ("Windows 8.1", "Windows Server 2003 (SP 2)", DISK, False),
    # Virtual machines running on Windows 8 hosts
    ("Windows 8", "Windows 8.1", WU, False),
    ("Windows 8", "Windows 8", DISK, False),
    ("Windows 8", "Windows 7", DISK, False),
    ("Windows 8", "Windows Vista (SP 2)", DISK, False),
    ("Windows 8", "Windows XP (SP 2, SP 3)", DISK, False),
    ("Windows 8", "Windows Server 2012 R2", WU, False),
    ("Windows 8", "Windows Server 2012", DISK, False),
    ("Windows 8", "Windows Server 2008 R2", DISK, False),
    ("Windows 8", "Windows Server 2008 (SP 2)", DISK, False),
    ("Windows 8", "Windows Home Server 2011", DISK, False),
    ("Windows 8", "Windows Small Business Server 2011", DISK, False),
    ("Windows 8", "Windows Server 2003 R2 (SP 2)", DISK, False),
    ("Windows 8", "Windows Server 2003 (SP 2)", DISK, False),
]


@pytest.mark.parametrize(
    ("host", "guest", "mechanism", "data_exchange"),
    SEED_TABLES,
    ids=[f"{host} host / {guest}" for host, guest, _, _ in SEED_TABLES],
)
def test_every_row_of_the_seed_tables(
    host: str, guest: str, mechanism: str, data_exchange: bool
) -> None:
    advice = advise(host_os=host, guest_os=guest)
    assert (advice.host_os, advice.guest_os) == (host, guest)
    assert advice.mechanism.value == mechanism
    assert advice.data_exchange is data_exchange
    assert advice.seed is True
    assert "Managing Hyper-V Integration Services" in advice.sources[0].title
    if data_exchange:
        # The note and its footnote: the offline cab when Data Exchange cannot be on.
        assert advice.notes[0] == "Requires the Data Exchange integration service.*"
        assert "KB3071740" in advice.notes[1]
        assert "cab" in advice.notes[1]
        assert any("3071740" in source.url for source in advice.sources)
    if mechanism == DISK:
        assert any("hh846766" in note for note in advice.notes)


def test_the_data_has_exactly_the_seed_rows_marked_as_seed() -> None:
    seed = {(row.host, row.guest) for row in ROWS if row.seed}
    expected = {
        (resolve_host_os(host).key, resolve_guest_os(guest).key)
        for host, guest, _, _ in SEED_TABLES
    }
    assert seed == expected
    assert len(expected) == len(SEED_TABLES) == 38


def test_no_pair_has_two_rows_and_every_row_cites_a_source() -> None:
    pairs = [(row.host, row.guest) for row in ROWS]
    assert len(pairs) == len(set(pairs))
    for row in ROWS:
        assert row.sources, row
        assert all(source.url.startswith("https://") for source in row.sources), row
        assert row.notes or row.mechanism is not Mechanism.UNKNOWN, row


def test_later_vendor_revision_disagreements_are_noted_not_hidden() -> None:
    advice = advise(host_os="Windows 8.1", guest_os="Windows 8.1")
    assert advice.mechanism is Mechanism.WINDOWS_UPDATE  # the how-to's answer
    assert any("Integration Services disk" in note for note in advice.notes)
    assert any("/windows-server/" in source.url for source in advice.sources)


@pytest.mark.parametrize(
    ("host", "guest", "mechanism", "data_exchange"),
    [
        # The Windows Server edition's table for Windows 10/Windows Server 2016/2019 hosts.
        ("Windows Server 2016", "Windows 7", WU, True),
        ("Windows Server 2019", "Windows Server 2012", WU, True),
        ("Windows Server 2019", "Windows Server 2008 R2 SP1", WU, True),
        ("Windows Server 2016", "Windows Server 2008", WU, False),
        ("Windows Server 2019", "Windows Server 2016", WU, False),
        # Its tables for Windows Server 2012 R2 and 2012 hosts.
        ("Windows Server 2012 R2", "Windows 10", WU, False),
        ("Windows Server 2012 R2", "Windows Server 2012 R2", DISK, False),
        ("Windows Server 2012", "Windows Server 2012 R2", DISK, False),
        # Hosts no vendor table covers: built-in guests, Windows Update.
        ("Windows 11", "Windows 11", WU, False),
        ("Windows Server 2022", "Windows Server 2025", WU, False),
        ("Windows Server 2025", "Windows Server 2012", WU, False),
        ("Windows Server 2025", "Windows Server 2008 R2", WU, False),
        # Where no vendor page says how: unknown, not a guess.
        ("Windows Server 2022", "Windows 7", "unknown", False),
        ("Windows Server 2022", "Windows 8", "unknown", False),
        ("Windows 8", "Windows 10", "unknown", False),
        # The supported-guests list's own limits.
        ("Windows Server 2019", "Windows Server 2025", "unknown", False),
        ("Windows Server 2016", "Windows 11", "unknown", False),
    ],
)
def test_hosts_after_the_seed(host: str, guest: str, mechanism: str, data_exchange: bool) -> None:
    advice = advise(host_os=host, guest_os=guest)
    assert advice.mechanism.value == mechanism
    assert advice.data_exchange is data_exchange
    assert advice.seed is False
    if mechanism == "unknown":
        assert advice.notes  # says why nobody can tell
    else:
        assert advice.sources


@pytest.mark.parametrize(
    ("guest", "packages"),
    [
        ("Ubuntu 24.04", ("linux-tools-virtual", "linux-cloud-tools-virtual")),
        ("Debian GNU/Linux 12", ("hyperv-daemons",)),
        ("Red Hat Enterprise Linux 9", ("hyperv-daemons",)),
        ("rhel8", ("hyperv-daemons",)),
        ("CentOS Stream 9", ("hyperv-daemons",)),
        ("Fedora Linux 40", ("hyperv-daemons",)),
        ("SUSE Linux Enterprise Server 15 SP5", ("hyper-v",)),
        ("openSUSE Leap 15.6", ()),
        ("Oracle Linux Server 9.4", ()),
        ("Linux", ()),
    ],
)
@pytest.mark.parametrize("host", ["Windows 10", "Windows Server 2025"])
def test_linux_guests(host: str, guest: str, packages: tuple[str, ...]) -> None:
    advice = advise(host_os=host, guest_os=guest)
    assert advice.mechanism is Mechanism.PACKAGE_MANAGER
    assert advice.packages == packages
    assert advice.data_exchange is False
    assert any("kernel" in note for note in advice.notes)
    if not packages:
        assert any("unknown" in note for note in advice.notes)
    else:
        assert len(advice.sources) >= 3


def test_linux_guest_on_a_seed_host_carries_the_seed_footnote() -> None:
    advice = advise(host_os="Windows 10", guest_os="Ubuntu 14.04")
    assert any(note.startswith("** ") and "dn531030" in note for note in advice.notes)
    assert advice.seed is False  # the how-to's tables have no Linux row


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("Windows Server 2008 R2", "windows-server-2008-r2"),
        ("2008r2", "windows-server-2008-r2"),
        ("2008 R2", "windows-server-2008-r2"),
        ("Windows Server 2008 R2 with Service Pack 1 (SP 1)", "windows-server-2008-r2"),
        ("win7", "windows-7"),
        ("Windows 7 SP1", "windows-7"),
        ("Microsoft Windows 7 Enterprise", "windows-7"),
        ("Windows Server 2012 R2 Datacenter", "windows-server-2012-r2"),
        ("Microsoft Windows Server 2022 Datacenter", "windows-server-2022"),
        ("Windows Server 2022 Datacenter: Azure Edition", "windows-server-2022"),
        ("Windows Server® 2008 Standard", "windows-server-2008"),
        ("Windows 10 Pro", "windows-10"),
        ("Windows 10 Enterprise LTSC 2019", "windows-10"),
        ("Windows 11 Pro for Workstations", "windows-11"),
        ("Windows 11 version 24H2", "windows-11"),
        ("WINDOWS 8.1", "windows-8.1"),
        ("Windows 8", "windows-8"),
        ("Windows Vista Business SP2", "windows-vista"),
        ("Windows XP Professional SP3", "windows-xp"),
        ("Windows Server 2003 R2 (32-bit)", "windows-server-2003-r2"),
        ("Windows Small Business Server 2011 Essentials", "windows-sbs-2011"),
        ("windows-server-2016", "windows-server-2016"),
        ("Ubuntu 24.04", "ubuntu"),
        ("Ubuntu 24.04.1 LTS", "ubuntu"),
        ("Red Hat Enterprise Linux 9", "rhel"),
        ("Red Hat Enterprise Linux Server 7.9", "rhel"),
        ("Debian GNU/Linux", "debian"),
        # Installation options, flavours, code names and year-only releases.
        ("Windows Server 2019 Datacenter (Desktop Experience)", "windows-server-2019"),
        ("Windows 2012 R2", "windows-server-2012-r2"),
        ("Win2k8r2", "windows-server-2008-r2"),
        ("Windows Server 2k8 R2", "windows-server-2008-r2"),
        ("Server 2016", "windows-server-2016"),
        ("Ubuntu Server 22.04", "ubuntu"),
        ("Ubuntu 24.04 LTS (Noble Numbat)", "ubuntu"),
        ("Debian GNU/Linux 12 (bookworm)", "debian"),
        ("Fedora Linux 40 (Server Edition)", "fedora"),
        ("Red Hat Enterprise Linux 9.4 (Plow)", "rhel"),
        ("SUSE Linux Enterprise Server 15 SP5", "sles"),
        # Distributions the tables do not name: the generic Linux entry.
        ("Rocky Linux 9", "linux"),
        ("AlmaLinux 9", "linux"),
    ],
)
def test_guest_names_in_their_common_spellings(spelling: str, key: str) -> None:
    assert resolve_guest_os(spelling).key == key


@pytest.mark.parametrize(
    ("spelling", "key"),
    [
        ("Windows 10", "windows-10"),
        ("win10", "windows-10"),
        ("2019", "windows-server-2019"),
        ("Microsoft Windows Server 2019 Datacenter", "windows-server-2019"),
        ("Hyper-V Server 2016", "windows-server-2016"),
        ("Windows Server 2012 R2 Standard", "windows-server-2012-r2"),
        ("ws2025", "windows-server-2025"),
        ("Windows 11 Enterprise", "windows-11"),
        ("Server 2016", "windows-server-2016"),
        ("Windows Server 2019 Datacenter (Desktop Experience)", "windows-server-2019"),
        ("Windows 2012 R2", "windows-server-2012-r2"),
        ("w2k12r2", "windows-server-2012-r2"),
    ],
)
def test_host_names_in_their_common_spellings(spelling: str, key: str) -> None:
    assert resolve_host_os(spelling).key == key


def test_another_distribution_gets_the_generic_linux_answer() -> None:
    advice = advise(host_os="Windows Server 2022", guest_os="Rocky Linux 9")
    assert (advice.guest_os, advice.mechanism, advice.packages) == (
        "Linux (other distribution)",
        Mechanism.PACKAGE_MANAGER,
        (),
    )
    # Not Linux at all: still unknown, with the known names.
    with pytest.raises(NotFoundError, match="unknown guest OS 'NixOS'"):
        advise(host_os="Windows Server 2022", guest_os="NixOS")


@pytest.mark.parametrize("bad", [None, 2019, b"2019"])
def test_a_name_that_is_not_text_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="an OS name is a str"):
        advise(host_os=bad, guest_os="Ubuntu")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="an OS name is a str"):
        advise(host_os="2019", guest_os=bad)  # type: ignore[arg-type]


def test_windows_8_and_8_1_stay_apart() -> None:
    assert resolve_guest_os("Windows 8").key != resolve_guest_os("Windows 8.1").key
    assert resolve_host_os("win8").key == "windows-8"


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"host_os": "Windows 7", "guest_os": "Windows 7"}, "Hyper-V host OS"),
        ({"host_os": "Windows 10", "guest_os": "Solaris 11"}, "guest OS"),
        ({"host_os": "Windows 10", "guest_os": "Windows 2000"}, "guest OS"),
        ({"host_os": "Windows 10", "guest_os": "Ubuntu Touch"}, "guest OS"),
        ({"host_os": "", "guest_os": "Windows 7"}, "Hyper-V host OS"),
    ],
)
def test_an_unknown_name_lists_the_known_ones(kwargs: dict[str, str], kind: str) -> None:
    with pytest.raises(NotFoundError) as caught:
        advise(**kwargs)
    error = caught.value
    assert isinstance(error, LookupError)
    assert f"unknown {kind}" in str(error)
    known = known_host_oses() if "host" in kind else known_guest_oses()
    assert error.choices == known
    assert all(name in str(error) for name in known)
    assert error.operation == "advise"


def test_the_record_is_frozen_and_renders() -> None:
    advice = advise(host_os="Windows 10", guest_os="Windows 7")
    assert repr(advice) == (
        "<Advice Windows 10 / Windows 7: Windows Update (Data Exchange required)>"
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        advice.mechanism = Mechanism.UNKNOWN  # type: ignore[misc]
    page = advice._repr_html_()
    assert page.startswith("<table>")
    assert "<td>Windows Update</td>" in page
    assert "https://support.microsoft.com/kb/3071740" in page
    assert attrs.evolve(advice, notes=("<b>",))._repr_html_().count("&lt;b&gt;") == 1


def test_exported_from_the_package_root() -> None:
    assert hvintegration.advise is advise
    assert hvintegration.Advice is Advice
    assert "advise" in hvintegration.__all__


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(list(argv), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_cli_prints_the_row_notes_and_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HVINTEGRATION_TARGET", raising=False)
    status, out, err = _run("advise", "--host-os", "Windows 10", "--guest-os", "Windows 7 SP1")
    assert (status, err) == (0, "")  # no target, and no note about a simulator
    lines = out.splitlines()
    assert lines[0].split() == [
        "HostOS",
        "GuestOS",
        "UpdateMechanism",
        "DataExchangeRequired",
        "Packages",
    ]
    assert lines[2].split() == ["Windows", "10", "Windows", "7", "Windows", "Update", "True"]
    assert "Notes:" in lines
    assert "Sources:" in lines
    assert any("KB3071740" in line for line in lines)


def test_cli_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HVINTEGRATION_TARGET", "nosuchscheme://unused")
    status, out, err = _run("--json", "advise", "--host-os", "2019", "--guest-os", "Ubuntu 24.04")
    assert (status, err) == (0, "")
    # One answer, one record: an object, as `linux status` prints its.
    record = json.loads(out)
    assert record["mechanism"] == "package manager"
    assert record["packages"] == ["linux-tools-virtual", "linux-cloud-tools-virtual"]
    assert record["sources"][0]["url"].startswith("https://learn.microsoft.com/")


def test_cli_unknown_os_is_not_found() -> None:
    status, out, err = _run("advise", "--host-os", "Windows 95", "--guest-os", "win7")
    assert status == EXIT_CODES["not_found"]
    assert out == ""
    assert err.startswith("hvintegration: error: unknown Hyper-V host OS 'Windows 95'")
    assert "Windows Server 2025" in err


def test_cli_needs_both_names() -> None:
    status, _, err = _run("advise", "--host-os", "Windows 10")
    assert status == EXIT_CODES["usage"]
    assert "--guest-os" in err
