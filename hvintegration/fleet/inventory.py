"""Inventories: which targets a fleet has, in groups, with credentials by reference.

Two formats:

- **TOML** (``.toml``), this library's own: targets with URLs, groups, and
  settings at three levels (``[defaults]``, ``[groups.NAME]``,
  ``[targets.NAME]``; the most specific wins). A password is never written
  in the file: it is a reference, ``{ env = "VAR" }``, ``{ file = "PATH" }``
  or ``{ prompt = true }``, resolved when the fleet is built.
- **Ansible** (INI or YAML, any other name), read through ansible-core's own
  inventory API (``pip install 'hvintegration[ansible]'``), so groups,
  children, ``group_vars``/``host_vars`` and patterns mean what they mean to
  Ansible. See :func:`load_ansible_inventory` for how its variables map to
  URLs.

Example:
    >>> import tempfile, pathlib
    >>> text = '''
    ... [groups.lab]
    ... timeout = 30
    ... [targets.hv01]
    ... url = "sim://HV01?vms=2"
    ... groups = ["lab"]
    ... '''
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "fleet.toml"
    >>> _ = path.write_text(text)
    >>> inventory = load_inventory(path)
    >>> [(e.name, e.kind, e.groups, e.timeout) for e in inventory.entries]
    [('hv01', 'host', ('lab',), 30.0)]
"""

from __future__ import annotations

import getpass
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import attrs

from hvintegration.errors import InvalidTargetError
from hvintegration.fleet.fleet import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TARGET_TIMEOUT,
    Fleet,
    FleetTarget,
    ProgressCallback,
    infer_kind,
)
from hvintegration.fleet.records import KINDS
from hvintegration.transport import Target, parse_target

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CredentialRef",
    "Inventory",
    "InventoryEntry",
    "InventoryError",
    "load_ansible_inventory",
    "load_inventory",
    "load_toml_inventory",
]

Prompt = Callable[[str], str]
"""Asks a person for a secret, given the question (``getpass.getpass``)."""


class InventoryError(InvalidTargetError):
    """An inventory cannot be used: the message names the file, the entry and the fault.

    Also an :class:`~hvintegration.errors.InvalidTargetError` (and so a
    ``ValueError``).
    """


_SOURCES = ("env", "file", "prompt")


@attrs.frozen
class CredentialRef:
    """Where a password comes from, never the password itself.

    Attributes:
        source: ``env`` (an environment variable), ``file`` (the file's
            text, one trailing newline removed) or ``prompt`` (asked when
            the fleet is built).
        value: The variable's name or the file's path; for a prompt, the
            place that declares it (``[groups.lab]``, a host's name), so
            that the targets sharing one declaration are asked once and
            two declarations are asked twice.

    Example:
        >>> import os
        >>> os.environ["HV_DEMO_SECRET"] = "s3cret"
        >>> ref = CredentialRef("env", "HV_DEMO_SECRET")
        >>> ref.resolve("hv01"), "s3cret" in repr(ref)
        ('s3cret', False)
    """

    source: str
    value: str = ""

    def __attrs_post_init__(self) -> None:
        if self.source not in _SOURCES:
            raise InventoryError(
                f"unknown credential source {self.source!r} (valid: {', '.join(_SOURCES)})"
            )
        if self.source != "prompt" and not self.value:
            raise InventoryError(f"a credential from {self.source} needs a name or path")

    def resolve(self, who: str, prompt: Prompt | None = None) -> str:
        """Read the password now.

        Args:
            who: Whose password, for messages and the prompt (never secret).
            prompt: Asks for a ``prompt`` reference; without one, such a
                reference fails.

        Returns:
            The password.

        Raises:
            InventoryError: The variable is unset, the file unreadable, or
                a prompt is needed and none is possible.
        """
        if self.source == "env":
            secret = os.environ.get(self.value)
            if secret is None:
                raise InventoryError(
                    f"the password of {who} comes from ${self.value}, which is not set"
                )
            return secret
        if self.source == "file":
            try:
                text = Path(self.value).read_text(encoding="utf-8")
            except OSError as exc:
                raise InventoryError(
                    f"the password of {who} comes from {self.value}: {exc.strerror or exc}"
                ) from None
            except UnicodeDecodeError:
                # Say where, never which byte: it is part of the password.
                raise InventoryError(
                    f"the password of {who} comes from {self.value}, which is not UTF-8 text"
                ) from None
            # The first line, as --password-file reads it: it ends at "\n"
            # or "\r\n" only (never at a form feed, NEL or U+2028, which
            # may belong to the password); a byte order mark is not in it.
            return text.removeprefix("\ufeff").split("\n", 1)[0].removesuffix("\r")
        if prompt is None:
            raise InventoryError(
                f"the password of {who} must be typed, and nobody can be asked here "
                "(no terminal); use { env = ... } or { file = ... } instead"
            )
        return prompt(f"password for {who}: ")


@attrs.frozen
class InventoryEntry:
    """One target of an inventory, its settings merged (target over groups over defaults).

    Attributes:
        name: The target's name.
        url: Its URL, with no password in it.
        kind: ``host``, ``windows`` or ``linux``.
        groups: The groups it belongs to.
        timeout: Seconds for all its work in one fleet run, or ``None``.
        operation_timeout: Seconds per operation, or ``None``.
        user: A login name that replaces none given in the URL.
        password: Where its password comes from, or ``None``.
        problem: Why the target cannot be used (an Ansible host whose
            connection has no transport here), empty when it can; such an
            entry has no URL, and a fleet that selects it fails with this
            message while one that does not is unaffected.
    """

    name: str
    url: str
    kind: str
    groups: tuple[str, ...] = ()
    timeout: float | None = None
    operation_timeout: float | None = None
    user: str | None = None
    password: CredentialRef | None = None
    problem: str = ""

    def target(
        self, prompt: Prompt | None = None, *, secrets: dict[CredentialRef, str] | None = None
    ) -> str | Target:
        """The URL, or target settings carrying the user and the password.

        Args:
            prompt: Asks for a ``prompt`` password (see :meth:`CredentialRef.resolve`).
            secrets: Passwords already read, by reference; a password read
                now is added, so that targets sharing a reference ask once.

        Raises:
            InventoryError: The scheme takes no credentials, or the password
                cannot be read.
        """
        if self.user is None and self.password is None:
            return self.url
        # Settings records are attrs classes; those with a password take one.
        settings = cast(Any, parse_target(self.url))
        if not (attrs.has(type(settings)) and "password" in attrs.fields_dict(type(settings))):
            scheme = self.url.partition("://")[0]
            raise InventoryError(
                f"{self.name}: {scheme}:// takes no user or password", target=self.url
            )
        changes: dict[str, Any] = {}
        if self.user is not None and not getattr(settings, "user", None):
            changes["user"] = self.user
        ref = self.password
        if ref is not None:
            known = secrets if secrets is not None else {}
            if ref not in known:
                known[ref] = ref.resolve(self.name, prompt)
            changes["password"] = known[ref]
        return cast(Target, attrs.evolve(settings, **changes))


def _interactive_prompt() -> Prompt | None:
    return getpass.getpass if sys.stdin is not None and sys.stdin.isatty() else None


@attrs.frozen
class Inventory:
    """The targets of an inventory file, with the fleet-wide settings.

    Attributes:
        entries: The targets, in file order.
        max_connections: Targets open at once.
        timeout: Seconds one target's whole work may take.
        operation_timeout: Seconds per operation, or ``None`` for the
            library's default.
        source: The file it came from.
    """

    entries: tuple[InventoryEntry, ...]
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    timeout: float = DEFAULT_TARGET_TIMEOUT
    operation_timeout: float | None = None
    source: str = ""

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Each group's target names, groups sorted by name."""
        found: dict[str, list[str]] = {}
        for entry in self.entries:
            for group in entry.groups:
                found.setdefault(group, []).append(entry.name)
        return {group: tuple(found[group]) for group in sorted(found)}

    def fleet(
        self,
        *,
        group: str | None = None,
        kind: str | None = None,
        names: Iterable[str] | None = None,
        prompt: Prompt | None = None,
        progress: ProgressCallback | None = None,
        max_connections: int | None = None,
        operation_timeout: float | None = None,
        credentials: bool = True,
    ) -> Fleet:
        """A fleet of the inventory's targets, with their credentials read now.

        Only the targets selected are in the fleet, and only their passwords
        are read: a fleet of Linux guests never asks for a host's password,
        nor fails because a host's password file is missing.

        Args:
            group: Only this group's targets.
            kind: Only targets of this kind (``host``, ``windows`` or
                ``linux``).
            names: Only the targets of these names (all when ``None``).
            prompt: Asks for ``{ prompt = true }`` passwords; by default
                ``getpass.getpass`` on a terminal, else such a password fails.
                Each reference is asked once, however many targets share it.
            progress: The fleet's progress callback.
            max_connections: Overrides the inventory's setting (``0`` is
                refused, not taken for "unset").
            operation_timeout: Seconds per operation for every target,
                over the inventory's settings at every level (a command
                line's ``--timeout``).
            credentials: ``False`` reads no password: the fleet is an
                outline to choose targets from (by name, kind and group, as
                :meth:`Policy.scope <hvintegration.fleet.policy.Policy.scope>`
                does) before building the fleet that runs; its targets log
                in with what their URLs hold.

        Raises:
            InventoryError: An unknown group or target name, a password that
                cannot be read (the message names the inventory), or a
                selected target the inventory could not map to a URL.
            ValueError: ``max_connections`` below 1, an unknown kind, or a
                timeout that is not a positive number.
        """
        if group is not None and group not in self.groups:
            known = ", ".join(self.groups) or "none"
            raise InventoryError(f"no group {group!r} in {self.source} (groups: {known})")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown target kind {kind!r} (valid: {', '.join(KINDS)})")
        if isinstance(names, str):
            raise TypeError("names is a list of target names; wrap one name in a list")
        wanted = None if names is None else set(names)
        unknown = sorted((wanted or set()) - {entry.name for entry in self.entries})
        if unknown:
            raise InventoryError(f"no target named {', '.join(unknown)} in {self.source}")
        ask = prompt if prompt is not None else _interactive_prompt()
        secrets: dict[CredentialRef, str] = {}
        members = []
        for entry in self.entries:
            if group is not None and group not in entry.groups:
                continue
            if kind is not None and entry.kind != kind:
                continue
            if wanted is not None and entry.name not in wanted:
                continue
            if entry.problem:
                raise InventoryError(f"{self.source}: host {entry.name}: {entry.problem}")
            try:
                target = entry.target(ask, secrets=secrets) if credentials else entry.url
            except InventoryError as exc:
                raise InventoryError(f"{self.source}: {exc.message}", target=exc.target) from None
            members.append(
                FleetTarget(
                    target,
                    name=entry.name,
                    kind=entry.kind,
                    groups=entry.groups,
                    timeout=entry.timeout,
                    operation_timeout=(
                        entry.operation_timeout if operation_timeout is None else None
                    ),
                )
            )
        options: dict[str, Any] = {}
        if operation_timeout is not None:
            options["operation_timeout"] = operation_timeout
        elif self.operation_timeout is not None:
            options["operation_timeout"] = self.operation_timeout
        return Fleet(
            members,
            max_connections=self.max_connections if max_connections is None else max_connections,
            timeout=self.timeout,
            progress=progress,
            **options,
        )


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read an inventory: TOML for ``*.toml``, Ansible (INI or YAML) otherwise.

    Raises:
        InventoryError: The file is missing or unusable (the message says
            where and why), or an Ansible inventory is given without
            ansible-core installed.
    """
    if Path(path).suffix.lower() == ".toml":
        return load_toml_inventory(path)
    return load_ansible_inventory(path)


# -- TOML ---------------------------------------------------------------------

_SETTINGS = {"kind", "timeout", "operation_timeout", "user", "password"}
_TOP = {"defaults", "groups", "targets"}
_DEFAULTS = _SETTINGS | {"max_connections"}
_GROUP = _SETTINGS | {"targets"}
_TARGET = _SETTINGS | {"url", "groups"}


class _Reader:
    """Checks one TOML inventory's values, naming the file and place of a fault."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> InventoryError:
        return InventoryError(f"{self.path}: {where}: {message}")

    def table(self, value: object, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a table, not {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(
                where, f"unknown key {unknown[0]!r} (valid: {', '.join(sorted(allowed))})"
            )
        return value

    def settings(self, table: Mapping[str, Any], where: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if "kind" in table:
            if table["kind"] not in KINDS:
                raise self.fail(where, f"kind must be one of {', '.join(KINDS)}")
            found["kind"] = table["kind"]
        for key in ("timeout", "operation_timeout"):
            if key in table:
                value = table[key]
                if (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not math.isfinite(value)
                    or value <= 0
                ):
                    raise self.fail(where, f"{key} must be a positive number of seconds")
                found[key] = float(value)
        if "user" in table:
            if not isinstance(table["user"], str) or not table["user"]:
                raise self.fail(where, "user must be a non-empty string")
            found["user"] = table["user"]
        if "password" in table:
            found["password"] = self.credential(table["password"], where)
        return found

    def credential(self, value: object, where: str) -> CredentialRef:
        if isinstance(value, str):
            raise self.fail(
                where,
                "a password is never written in the inventory; refer to it: "
                'password = { env = "VAR" }, { file = "PATH" } or { prompt = true }',
            )
        table = self.table(value, f"{where}.password", set(_SOURCES))
        if len(table) != 1:
            raise self.fail(f"{where}.password", "name exactly one of env, file, prompt")
        ((source, name),) = table.items()
        if source == "prompt":
            if name is not True:
                raise self.fail(f"{where}.password", "prompt must be true")
            return CredentialRef("prompt", where)
        if not isinstance(name, str) or not name:
            raise self.fail(f"{where}.password", f"{source} must be a non-empty string")
        if source == "file":
            name = str((self.path.parent / os.path.expanduser(name)).resolve())
        return CredentialRef(source, name)

    def names(self, value: object, where: str) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(where, "must be a list of names")
        return list(value)


def load_toml_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read a TOML inventory.

    Format::

        [defaults]                  # optional: max_connections and any setting
        max_connections = 32
        timeout = 120               # seconds per target per run
        [groups.hyperv]             # settings shared by a group
        user = "admin"
        password = { env = "HV_PASSWORD" }
        [targets.hv01]
        url = "psrp://hv01.example.com?ssl=true"
        groups = ["hyperv"]         # or list the target under [groups.X] targets = [...]

    Settings are ``kind`` (``host``, ``windows``, ``linux``; guessed from
    the URL when absent), ``timeout``, ``operation_timeout``, ``user`` and
    ``password``; a target's own win over its groups' (in the order it
    lists them), which win over ``[defaults]``. Relative password files are
    found beside the inventory.

    Raises:
        InventoryError: The file is missing or not TOML, a key is unknown, a
            value malformed, a password written inline (in ``password`` or
            in a URL), a target lacks a URL, or a group is named but not
            defined.
    """
    file = Path(path)
    reader = _Reader(file)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InventoryError(f"{file}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{file}: not TOML: {exc}") from None
    reader.table(data, "the file", _TOP)
    defaults_table = reader.table(data.get("defaults", {}), "[defaults]", _DEFAULTS)
    defaults = reader.settings(defaults_table, "[defaults]")
    max_connections = defaults_table.get("max_connections", DEFAULT_MAX_CONNECTIONS)
    if isinstance(max_connections, bool) or not isinstance(max_connections, int):
        raise reader.fail("[defaults]", "max_connections must be a whole number")
    if max_connections < 1:
        raise reader.fail("[defaults]", "max_connections must be at least 1")
    groups: dict[str, dict[str, Any]] = {}
    members: dict[str, list[str]] = {}
    group_tables = data.get("groups", {})
    reader.table(
        group_tables, "[groups]", set(group_tables) if isinstance(group_tables, dict) else set()
    )
    for name, value in group_tables.items():
        where = f"[groups.{name}]"
        table = reader.table(value, where, _GROUP)
        groups[name] = reader.settings(table, where)
        for target in reader.names(table.get("targets", []), f"{where} targets"):
            members.setdefault(target, []).append(name)
    targets = data.get("targets", {})
    reader.table(targets, "[targets]", set(targets) if isinstance(targets, dict) else set())
    unknown_members = sorted(set(members) - set(targets))
    if unknown_members:
        raise reader.fail(
            f"[groups.{members[unknown_members[0]][0]}]",
            f"lists {unknown_members[0]!r}, which is not under [targets]",
        )
    entries = []
    for name, value in targets.items():
        where = f"[targets.{name}]"
        table = reader.table(value, where, _TARGET)
        url = table.get("url")
        if not isinstance(url, str) or "://" not in url:
            raise reader.fail(where, "needs url = a target URL such as ssh://user@host")
        if urllib.parse.urlsplit(url).password is not None:
            raise reader.fail(
                where, "the URL holds a password; remove it and use password = { env = ... }"
            )
        listed = reader.names(table.get("groups", []), f"{where} groups")
        in_groups = list(dict.fromkeys([*listed, *members.get(name, [])]))
        undefined = [group for group in in_groups if group not in groups]
        if undefined:
            raise reader.fail(where, f"group {undefined[0]!r} is not defined under [groups]")
        merged = dict(defaults)
        for group in reversed(in_groups):
            merged.update(groups[group])
        merged.update(reader.settings(table, where))
        try:
            parse_target(url)
        except InvalidTargetError as exc:
            raise reader.fail(where, exc.message) from None
        entries.append(
            InventoryEntry(
                name=name,
                url=url,
                kind=merged.get("kind") or infer_kind(url),
                groups=tuple(in_groups),
                timeout=merged.get("timeout"),
                operation_timeout=merged.get("operation_timeout"),
                user=merged.get("user"),
                password=merged.get("password"),
            )
        )
    return Inventory(
        tuple(entries),
        max_connections=max_connections,
        timeout=defaults.get("timeout", DEFAULT_TARGET_TIMEOUT),
        operation_timeout=defaults.get("operation_timeout"),
        source=str(file),
    )


# -- Ansible ------------------------------------------------------------------


def load_ansible_inventory(path: str | os.PathLike[str]) -> Inventory:
    """Read an Ansible inventory (INI or YAML) through ansible-core's own API.

    ansible-core is GPLv3 and optional: ``pip install 'hvintegration[ansible]'``.
    Each host's variables are merged as Ansible merges inventory variables
    (groups by depth and priority, then the host), and map to a URL:

    ==========================================  ==================================
    Ansible                                      URL
    ==========================================  ==================================
    ``ansible_connection=psrp``                  ``psrp://user@host:port`` (WinRM);
                                                 HTTPS (``ssl=true``) unless
                                                 ``ansible_psrp_protocol=http`` or
                                                 port 5985; ``ansible_psrp_auth``
    ``ansible_connection=winrm``                 ``psrp://`` as above, with
                                                 ``ansible_winrm_scheme`` and
                                                 ``ansible_winrm_transport``
    ``ansible_connection=ssh`` (the default)     ``ssh://user@host:port``; with
                                                 ``ansible_shell_type=powershell``
                                                 or ``cmd``, a Windows ``shell=``
    ``ansible_connection=local``                 ``local://``
    ==========================================  ==================================

    ``ansible_host``, ``ansible_user`` and ``ansible_port`` (and their
    ``ansible_ssh_*`` spellings) give the address, login and port;
    ``ansible_ssh_private_key_file`` adds ``key=``. The kind is ``host`` for
    PSRP, WinRM and Windows shells, ``linux`` for a POSIX ``ssh`` or
    ``local``. This library's own variables win: ``hvintegration_url`` (the
    whole URL), ``hvintegration_kind``, ``hvintegration_timeout``,
    ``hvintegration_operation_timeout`` and a password reference
    ``hvintegration_password_env`` / ``_file`` / ``_prompt``. Ansible's own
    password variables are not read (they are usually vaulted).

    Raises:
        InventoryError: ansible-core is not installed, the file does not
            exist, Ansible could not parse it, or a variable is malformed.
    """
    file = Path(path)
    if not file.exists():
        raise InventoryError(f"{file}: no such inventory")
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.vars.manager import VariableManager
    except ImportError:
        raise InventoryError(
            f"{file}: reading an Ansible inventory needs ansible-core (GPLv3): "
            "pip install 'hvintegration[ansible]', or write a TOML inventory"
        ) from None
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(file)])
    hosts = manager.get_hosts()
    if not hosts and file.is_file() and file.read_text(encoding="utf-8", errors="replace").strip():
        raise InventoryError(f"{file}: Ansible found no host in it (is it an inventory?)")
    # The variable manager runs the vars plugins, so group_vars/ and
    # host_vars/ beside the inventory count, as they do for ansible-playbook.
    variable_manager = VariableManager(loader=loader, inventory=manager)
    entries = []
    for host in hosts:
        groups = host.get_groups()
        variables = variable_manager.get_vars(host=host, include_hostvars=False)
        names = tuple(g.name for g in groups if g.name not in ("all", "ungrouped"))
        try:
            entries.append(_ansible_entry(file, host.name, dict(variables), names))
        except _Unsupported as exc:
            # Only a fleet that selects this host fails: the rest stay usable.
            entries.append(InventoryEntry(host.name, "", "host", names, problem=str(exc)))
    return Inventory(tuple(entries), source=str(file))


class _Unsupported(Exception):
    """An Ansible host this library has no transport for."""


def _ansible_entry(
    file: Path, name: str, variables: Mapping[str, Any], groups: tuple[str, ...]
) -> InventoryEntry:
    def fail(message: str) -> InventoryError:
        return InventoryError(f"{file}: host {name}: {message}")

    def number(key: str) -> float | None:
        if key not in variables:
            return None
        try:
            value = float(variables[key])
        except (TypeError, ValueError):
            raise fail(f"{key} must be a number of seconds") from None
        if not math.isfinite(value) or value <= 0:
            raise fail(f"{key} must be a positive number of seconds, not {variables[key]!r}")
        return value

    url, kind = _ansible_url(name, variables, fail)
    kind = str(variables.get("hvintegration_kind", kind))
    if kind not in KINDS:
        raise fail(f"hvintegration_kind must be one of {', '.join(KINDS)}")
    password = None
    for source in _SOURCES:
        key = f"hvintegration_password_{source}"
        if key in variables:
            if password is not None:
                raise fail("name only one hvintegration_password_* variable")
            value = variables[key]
            if source == "prompt":
                # One prompt per host: Ansible does not say where it was set.
                password = CredentialRef("prompt", name) if _truthy(value) else None
            else:
                text = str(value)
                if source == "file":
                    text = str((file.parent / os.path.expanduser(text)).resolve())
                password = CredentialRef(source, text)
    try:
        parse_target(url)
    except InvalidTargetError as exc:
        raise fail(exc.message) from None
    return InventoryEntry(
        name=name,
        url=url,
        kind=kind,
        groups=groups,
        timeout=number("hvintegration_timeout"),
        operation_timeout=number("hvintegration_operation_timeout"),
        password=password,
    )


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _first(variables: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = variables.get(key)
        if isinstance(value, (list, tuple)):
            # A list variable (ansible_winrm_transport: [kerberos, ntlm]):
            # its first choice.
            value = next((item for item in value if item not in (None, "")), None)
        if value not in (None, ""):
            return str(value)
    return None


# A host name or an IPv4 or IPv6 address: nothing that could end the
# authority part of a URL and start a query, a path or a login.
_ADDRESS = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?|[0-9A-Fa-f:.]+(?:%[\w.-]+)?")


def _ansible_url(
    name: str, variables: Mapping[str, Any], fail: Callable[[str], InventoryError]
) -> tuple[str, str]:
    explicit = _first(variables, "hvintegration_url")
    if explicit is not None:
        if urllib.parse.urlsplit(explicit).password is not None:
            raise fail(
                "hvintegration_url holds a password; remove it and use "
                "hvintegration_password_env, _file or _prompt"
            )
        return explicit, infer_kind(explicit)
    connection = (_first(variables, "ansible_connection") or "ssh").lower()
    address = _first(variables, "ansible_host", "ansible_ssh_host") or name
    user = _first(variables, "ansible_user", "ansible_ssh_user")
    port = _first(variables, "ansible_port", "ansible_ssh_port")
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise fail(f"ansible_port must be a port number (1-65535), not {port!r}")
    if not _ADDRESS.fullmatch(address):
        # Checked, never pasted raw: a ?, #, @ or / would change the URL.
        raise fail(f"ansible_host must be a host name or an IP address, not {address!r}")
    host = f"[{address}]" if ":" in address else address
    login = f"{urllib.parse.quote(user, safe='')}@" if user else ""
    where = f"{login}{host}{f':{port}' if port else ''}"
    query: dict[str, str] = {}
    if connection in ("psrp", "winrm"):
        # Both plugins default to HTTPS unless the port is 5985:
        # https://docs.ansible.com/ansible/latest/plugins/connection/psrp.html
        # https://docs.ansible.com/ansible/latest/plugins/connection/winrm.html
        if connection == "psrp":
            protocol = _first(variables, "ansible_psrp_protocol")
            https = protocol.lower() == "https" if protocol else port != "5985"
            auth = _first(variables, "ansible_psrp_auth")
        else:
            scheme = _first(variables, "ansible_winrm_scheme")
            https = scheme.lower() == "https" if scheme else port != "5985"
            auth = _first(variables, "ansible_winrm_transport")
        if https:
            query["ssl"] = "true"
        if auth:
            query["auth"] = auth.split(",")[0].strip().lower()
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"psrp://{where}{suffix}", "host"
    if connection in ("ssh", "paramiko", "paramiko_ssh"):
        shell = (_first(variables, "ansible_shell_type") or "sh").lower()
        kind = "linux"
        if shell in ("powershell", "cmd"):
            query["shell"] = shell
            kind = "host"
        key = _first(variables, "ansible_ssh_private_key_file", "ansible_private_key_file")
        if key is not None:
            query["key"] = os.path.expanduser(key)
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"ssh://{where}{suffix}", kind
    if connection == "local":
        return "local://", "linux"
    raise _Unsupported(
        f"ansible_connection={connection} has no hvintegration transport "
        "(psrp, winrm, ssh and local do; or set hvintegration_url)"
    )
