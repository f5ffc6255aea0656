"""Inventories: TOML with groups and credential references, Ansible through ansible-core."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from hvintegration.fleet import (
    CredentialRef,
    InventoryError,
    load_ansible_inventory,
    load_inventory,
)
from hvintegration.transport.psrp import PSRPTarget
from hvintegration.transport.ssh import SSHTarget


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


FULL = """
    [defaults]
    max_connections = 5
    timeout = 90

    [groups.hyperv]
    kind = "host"
    user = "admin"
    password = { env = "HVI_TEST_PASSWORD" }
    timeout = 60
    targets = ["hv02"]

    [groups.fast]
    timeout = 10

    [groups.linux]
    password = { file = "secrets/linux.txt" }

    [targets.hv01]
    url = "psrp://hv01.example.com?ssl=true"
    groups = ["fast", "hyperv"]

    [targets.hv02]
    url = "ssh://hv02.example.com?shell=powershell"
    operation_timeout = 20

    [targets.web1]
    url = "ssh://ops@web1.example.com:2222"
    groups = ["linux"]

    [targets.lab]
    url = "sim://LAB?vms=2"
"""


def test_toml_settings_merge_target_over_groups_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "linux.txt").write_text("linux-pw\n")
    monkeypatch.setenv("HVI_TEST_PASSWORD", "hv-pw")
    inventory = load_inventory(_write(tmp_path, "fleet.toml", FULL))
    assert inventory.max_connections == 5
    assert inventory.timeout == 90
    entries = {e.name: e for e in inventory.entries}
    assert list(entries) == ["hv01", "hv02", "web1", "lab"]
    # hv01 lists fast before hyperv: the first group listed wins.
    assert entries["hv01"].timeout == 10
    assert entries["hv02"].timeout == 60
    assert entries["hv02"].groups == ("hyperv",)
    assert entries["hv02"].operation_timeout == 20
    assert entries["hv02"].kind == "host"
    assert entries["web1"].kind == "linux"
    assert entries["lab"].timeout == 90
    secret_file = str((tmp_path / "secrets" / "linux.txt").resolve())
    assert entries["web1"].password == CredentialRef("file", secret_file)
    assert inventory.groups == {
        "fast": ("hv01",),
        "hyperv": ("hv01", "hv02"),
        "linux": ("web1",),
    }

    fleet = inventory.fleet()
    assert fleet.max_connections == 5
    members = {t.name: t for t in fleet}
    hv01 = members["hv01"].target
    assert isinstance(hv01, PSRPTarget)
    assert (hv01.user, hv01.password, hv01.ssl) == ("admin", "hv-pw", True)
    hv02 = members["hv02"].target
    assert isinstance(hv02, SSHTarget)
    assert (hv02.user, hv02.password, hv02.shell) == ("admin", "hv-pw", "powershell")
    web1 = members["web1"].target
    assert isinstance(web1, SSHTarget)
    # A user in the URL wins over a group's.
    assert (web1.user, web1.password, web1.port) == ("ops", "linux-pw", 2222)
    assert members["lab"].target == "sim://LAB?vms=2"
    for secret in ("hv-pw", "linux-pw"):
        assert secret not in repr(fleet)
        assert secret not in repr(list(fleet))
    assert [t.name for t in inventory.fleet(group="hyperv")] == ["hv01", "hv02"]


async def test_a_toml_inventory_drives_a_fleet(tmp_path: Path) -> None:
    inventory = load_inventory(
        _write(
            tmp_path,
            "lab.toml",
            """
            [targets.a]
            url = "sim://A?vms=1"
            [targets.b]
            url = "sim://B"
            [targets.web]
            url = "sim-linux://web?distro=ubuntu-24.04"
            """,
        )
    )
    fleet = inventory.fleet()
    services = await fleet.integration_services()
    assert services.ok
    assert {(row.target, row.vm) for row in services.rows} == {
        ("a", "demovm"),
        ("a", "vm001"),
        ("b", "demovm"),
    }
    status = await fleet.linux_status()
    assert {row.target for row in status.rows} == {"web"}


def test_a_prompted_password_is_asked_once_per_reference(tmp_path: Path) -> None:
    inventory = load_inventory(
        _write(
            tmp_path,
            "p.toml",
            """
            [groups.win]
            password = { prompt = true }
            [targets.hv01]
            url = "psrp://admin@hv01"
            groups = ["win"]
            [targets.hv02]
            url = "psrp://admin@hv02"
            groups = ["win"]
            """,
        )
    )
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return "typed"

    fleet = inventory.fleet(prompt=prompt)
    assert asked == ["password for hv01: "]
    assert [getattr(t.target, "password", None) for t in fleet] == ["typed", "typed"]
    # No terminal and no prompt function: a clear error, not a hang.
    with pytest.raises(InventoryError, match="nobody can be asked"):
        inventory.entries[0].target(None)


def test_a_missing_secret_names_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HVI_TEST_UNSET", raising=False)
    path = _write(
        tmp_path,
        "s.toml",
        """
        [targets.hv01]
        url = "psrp://admin@hv01"
        password = { env = "HVI_TEST_UNSET" }
        [targets.hv02]
        url = "psrp://admin@hv02"
        password = { file = "nowhere.txt" }
        """,
    )
    inventory = load_inventory(path)
    with pytest.raises(InventoryError, match=r"\$HVI_TEST_UNSET, which is not set"):
        inventory.fleet()
    with pytest.raises(InventoryError, match=r"nowhere\.txt: No such file"):
        inventory.entries[1].target()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[targets.a]\nurl = "psrp://admin@hv01"\npassword = "s3cret"\n', "never written"),
        ('[targets.a]\nurl = "psrp://admin:s3cret@hv01"\n', "URL holds a password"),
        ('[targets.a]\nurl = "sim://"\ncolour = "red"\n', "unknown key 'colour'"),
        ("[targets.a]\nkind = 'host'\n", "needs url"),
        ('[targets.a]\nurl = "sim://"\ngroups = ["nope"]\n', "group 'nope' is not defined"),
        ('[groups.g]\ntargets = ["ghost"]\n', "'ghost', which is not under"),
        ('[targets.a]\nurl = "sim://"\nkind = "router"\n', "kind must be one of"),
        ('[targets.a]\nurl = "sim://"\ntimeout = -3\n', "positive number"),
        ('[targets.a]\nurl = "sim://?os=amiga"\n', "unknown simulated host OS"),
        ("[defaults]\nmax_connections = 0\n", "at least 1"),
        ('[targets.a]\nurl = "sim://"\npassword = { env = "A", file = "b" }\n', "exactly one"),
        ("this is = not [toml", "not TOML"),
        ("[servers]\n", "unknown key 'servers'"),
    ],
)
def test_bad_toml_inventories_say_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=message) as caught:
        load_inventory(path)
    assert str(path) in str(caught.value)
    assert "s3cret" not in str(caught.value)


def test_credentials_on_a_scheme_without_them(tmp_path: Path) -> None:
    path = _write(tmp_path, "u.toml", '[targets.a]\nurl = "sim://"\nuser = "admin"\n')
    with pytest.raises(InventoryError, match="sim:// takes no user or password"):
        load_inventory(path).fleet()


def test_an_unknown_group_and_a_missing_file(tmp_path: Path) -> None:
    inventory = load_inventory(_write(tmp_path, "g.toml", '[targets.a]\nurl = "sim://"\n'))
    with pytest.raises(InventoryError, match="no group 'prod'"):
        inventory.fleet(group="prod")
    with pytest.raises(InventoryError, match="No such file"):
        load_inventory(tmp_path / "absent.toml")


ANSIBLE_INI = """
    [hyperv]
    hv01 ansible_host=10.0.0.1 ansible_connection=psrp ansible_user=admin
    hv02 ansible_connection=winrm ansible_port=5985 ansible_winrm_transport=ntlm

    [linux]
    web1 ansible_host=192.0.2.5 ansible_user=ops ansible_port=2222
    lab hvintegration_url=sim-linux://lab

    [winssh]
    hv03 ansible_shell_type=powershell ansible_ssh_private_key_file=/keys/id

    [prod:children]
    hyperv

    [hyperv:vars]
    hvintegration_timeout=45
    hvintegration_password_env=HV_PASS
"""

ANSIBLE_YAML = """
    all:
      children:
        hyperv:
          hosts:
            hv01:
              ansible_host: 10.0.0.1
              ansible_connection: psrp
              ansible_user: admin
            hv02:
              ansible_connection: winrm
              ansible_port: 5985
              ansible_winrm_transport: ntlm
          vars:
            hvintegration_timeout: 45
            hvintegration_password_env: HV_PASS
        linux:
          hosts:
            web1: {ansible_host: 192.0.2.5, ansible_user: ops, ansible_port: 2222}
            lab: {hvintegration_url: "sim-linux://lab"}
        winssh:
          hosts:
            hv03:
              ansible_shell_type: powershell
              ansible_ssh_private_key_file: /keys/id
        prod:
          children:
            hyperv: {}
"""


@pytest.mark.parametrize(
    ("name", "text"), [("hosts.ini", ANSIBLE_INI), ("hosts.yml", ANSIBLE_YAML)]
)
def test_ansible_inventories_map_to_urls(tmp_path: Path, name: str, text: str) -> None:
    inventory = load_inventory(_write(tmp_path, name, text))
    entries = {e.name: e for e in inventory.entries}
    assert entries["hv01"].url == "psrp://admin@10.0.0.1?ssl=true"
    assert entries["hv02"].url == "psrp://hv02:5985?auth=ntlm"
    assert entries["web1"].url == "ssh://ops@192.0.2.5:2222"
    assert entries["lab"].url == "sim-linux://lab"
    assert entries["hv03"].url == "ssh://hv03?shell=powershell&key=%2Fkeys%2Fid"
    assert {n: e.kind for n, e in entries.items()} == {
        "hv01": "host",
        "hv02": "host",
        "web1": "linux",
        "lab": "linux",
        "hv03": "host",
    }
    assert set(entries["hv01"].groups) == {"hyperv", "prod"}
    assert entries["hv01"].timeout == 45
    assert entries["hv02"].password == CredentialRef("env", "HV_PASS")
    assert entries["web1"].password is None
    assert inventory.groups["prod"] == inventory.groups["hyperv"]


async def test_an_ansible_inventory_drives_a_fleet(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "lab.ini",
        """
        [hosts]
        a hvintegration_url=sim://A?vms=2
        b hvintegration_url=sim://B hvintegration_kind=host
        [guests]
        g hvintegration_url=sim://?guest=demovm
        """,
    )
    fleet = load_ansible_inventory(path).fleet()
    assert {t.name: t.kind for t in fleet} == {"a": "host", "b": "host", "g": "windows"}
    result = await fleet.integration_services()
    assert result.ok
    assert sorted({(row.target, row.vm) for row in result.rows}) == [
        ("a", "demovm"),
        ("a", "vm001"),
        ("a", "vm002"),
        ("b", "demovm"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("h hvintegration_kind=router", "hvintegration_kind must be one of"),
        ("h hvintegration_timeout=soon", "hvintegration_timeout must be a number"),
        ("h ansible_port=ssh", "ansible_port must be a port number"),
        ("h ansible_port=0", "ansible_port must be a port number"),
        ("h hvintegration_timeout=nan", "hvintegration_timeout must be a positive number"),
        ("h hvintegration_timeout=inf", "hvintegration_timeout must be a positive number"),
        # Checked, never pasted into the URL: each would change what it says.
        (
            'h "ansible_host=10.0.0.5?known_hosts=/tmp/evil&shell=powershell"',
            "ansible_host must be a host name or an IP address",
        ),
        ("h ansible_host=evil@10.0.0.5", "ansible_host must be a host name"),
        ("h ansible_host=10.0.0.5/x#y", "ansible_host must be a host name"),
        (
            "h hvintegration_url=ssh://root:hunter2@127.0.0.1:1",
            "hvintegration_url holds a password",
        ),
    ],
)
def test_bad_ansible_variables_name_the_host(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(InventoryError, match=f"host h: {message}"):
        load_ansible_inventory(_write(tmp_path, "bad.ini", f"[g]\n{line}\n"))


def test_without_ansible_core_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "hosts.ini", "[g]\nh\n")
    monkeypatch.setitem(sys.modules, "ansible.inventory.manager", None)
    with pytest.raises(InventoryError, match=r"pip install 'hvintegration\[ansible\]'"):
        load_inventory(path)


def test_an_ansible_file_that_is_no_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such inventory"):
        load_ansible_inventory(tmp_path / "absent.ini")


def test_a_password_in_hvintegration_url_never_reaches_a_message(tmp_path: Path) -> None:
    path = _write(tmp_path, "leak.ini", "[g]\nh hvintegration_url=ssh://root:hunter2@h:1\n")
    with pytest.raises(InventoryError) as caught:
        load_ansible_inventory(path)
    assert "hunter2" not in str(caught.value)


def test_an_unsupported_ansible_host_fails_only_when_selected(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "mixed.ini",
        """
        [hyperv]
        hv1 hvintegration_url=sim://HV1
        [containers]
        box ansible_connection=docker
        """,
    )
    inventory = load_ansible_inventory(path)
    assert [t.name for t in inventory.fleet(group="hyperv")] == ["hv1"]
    with pytest.raises(InventoryError, match="host box: ansible_connection=docker has no"):
        inventory.fleet()
    with pytest.raises(InventoryError, match=f"{path}: host box"):
        inventory.fleet(group="containers")


def test_ansible_group_vars_and_host_vars_are_read(tmp_path: Path) -> None:
    path = _write(tmp_path, "hosts.ini", "[hyperv]\nhv01\nhv02\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "group_vars" / "hyperv.yml").write_text(
        "hvintegration_timeout: 7\nansible_connection: psrp\n"
    )
    (tmp_path / "host_vars" / "hv01.yml").write_text('hvintegration_url: "sim://FROMHOSTVARS"\n')
    entries = {e.name: e for e in load_ansible_inventory(path).entries}
    assert entries["hv01"].url == "sim://FROMHOSTVARS"
    assert entries["hv02"].url == "psrp://hv02?ssl=true"
    assert entries["hv01"].timeout == entries["hv02"].timeout == 7


def test_a_list_winrm_transport_takes_its_first_choice(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "winrm.yml",
        """
        all:
          hosts:
            hv01:
              ansible_connection: winrm
              ansible_winrm_transport: [ntlm, kerberos]
              ansible_user: admin
        """,
    )
    (entry,) = load_ansible_inventory(path).entries
    assert entry.url == "psrp://admin@hv01?ssl=true&auth=ntlm"


def _password(target: object) -> str:
    assert isinstance(target, SSHTarget)
    assert target.password is not None
    return target.password


def test_each_declared_prompt_is_asked_once(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "prompt.toml",
        """
        [groups.lab]
        password = { prompt = true }
        targets = ["l1", "l2"]
        [targets.hv01]
        url = "ssh://admin@hv01?shell=powershell"
        password = { prompt = true }
        [targets.web]
        url = "ssh://root@web"
        password = { prompt = true }
        [targets.l1]
        url = "ssh://root@l1"
        [targets.l2]
        url = "ssh://root@l2"
        """,
    )
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return f"pw{len(asked)}"

    fleet = load_inventory(path).fleet(prompt=ask)
    passwords = {m.name: _password(m.target) for m in fleet}
    assert len(asked) == 3
    assert passwords["hv01"] != passwords["web"]
    assert passwords["l1"] == passwords["l2"] not in (passwords["hv01"], passwords["web"])


def test_ansible_prompts_are_asked_per_host(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "hosts.ini",
        "[g]\na ansible_user=x hvintegration_password_prompt=true\n"
        "b ansible_user=y hvintegration_password_prompt=true\n",
    )
    asked: list[str] = []
    fleet = load_ansible_inventory(path).fleet(prompt=lambda q: asked.append(q) or q)
    assert asked == ["password for a: ", "password for b: "]
    assert [_password(m.target) for m in fleet] == asked


def test_password_file_faults_name_the_inventory_and_hide_the_bytes(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"s\xe9cret\n")
    for name, message in (
        ("latin1.txt", "which is not UTF-8 text"),
        ("missing.txt", "No such file or directory"),
    ):
        path = _write(
            tmp_path,
            "inv.toml",
            f"""
            [targets.a]
            url = "ssh://root@h"
            password = {{ file = "{name}" }}
            """,
        )
        with pytest.raises(InventoryError) as caught:
            load_inventory(path).fleet()
        text = str(caught.value)
        assert text.startswith(f"{path}: ")
        assert message in text
        assert name in text
        assert "xe9" not in text
        assert "\xe9" not in text


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_toml_timeout_must_be_a_finite_positive_number(tmp_path: Path, value: str) -> None:
    path = _write(tmp_path, "t.toml", f'[targets.a]\nurl = "sim://"\ntimeout = {value}\n')
    with pytest.raises(InventoryError, match="timeout must be a positive number of seconds"):
        load_inventory(path)


def test_fleet_overrides_win_and_zero_connections_is_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "o.toml",
        """
        [defaults]
        operation_timeout = 30
        max_connections = 4
        [targets.a]
        url = "sim://A"
        operation_timeout = 20
        """,
    )
    inventory = load_inventory(path)
    fleet = inventory.fleet(operation_timeout=1)
    assert fleet.operation_timeout == 1
    assert [m.operation_timeout for m in fleet] == [None]  # the command line wins
    assert inventory.fleet().operation_timeout == 30
    assert [m.operation_timeout for m in inventory.fleet()] == [20]
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        inventory.fleet(max_connections=0)
    assert inventory.fleet().max_connections == 4


def test_a_fleet_of_some_targets_reads_only_their_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HV_UNSET_SECRET", raising=False)
    path = tmp_path / "fleet.toml"
    path.write_text(
        textwrap.dedent(
            """
            [targets.hv01]
            url = "ssh://admin@hv01.example.com?shell=powershell"
            kind = "host"
            password = { env = "HV_UNSET_SECRET" }
            [targets.web]
            url = "sim-linux://web"
            """
        )
    )
    inventory = load_inventory(path)
    with pytest.raises(InventoryError, match="HV_UNSET_SECRET"):
        inventory.fleet()
    assert [m.name for m in inventory.fleet(kind="linux")] == ["web"]
    assert [m.name for m in inventory.fleet(names=["web"])] == ["web"]
    outline = inventory.fleet(credentials=False)
    assert [(m.name, m.kind) for m in outline] == [("hv01", "host"), ("web", "linux")]
    with pytest.raises(InventoryError, match="no target named ghost"):
        inventory.fleet(names=["ghost"])
    with pytest.raises(ValueError, match="unknown target kind 'vm'"):
        inventory.fleet(kind="vm")
    with pytest.raises(TypeError, match="list of target names"):
        inventory.fleet(names="web")
