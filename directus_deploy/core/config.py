"""The tool's own configuration: `.env.deploy` in the Directus project, on the machine that runs `fab`.

Every key is declared once in `KEYS` below, with its default and its check. The file is found
in the folder `fab` runs from or a parent up to the project's git repository (DEPLOY_ENV_FILE
names another); it is committed, so secrets go in the same name plus `.local` (git-ignored),
which wins over it, or in the process environment, which wins over both (a CI secret, say).
Files are read with python-dotenv. Anything wrong (a required key missing, a key nobody
declared in one of our prefixes, a value of the wrong shape) stops with a `ConfigError`
naming the key and the fix.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dotenv import dotenv_values

from directus_deploy.core import url_secrets
from directus_deploy.core.errors import ConfigError

ENV_FILE_VARIABLE = "DEPLOY_ENV_FILE"
DEFAULT_ENV_FILE = ".env.deploy"
LOCAL_SUFFIX = ".local"  # the secrets file beside a configuration file: <file>.local
# Keys with these prefixes belong to this tool; an undeclared one is a typo, not a stranger.
OWN_PREFIXES = ("DEPLOY_", "DIRECTUS_", "KEEP_")

_HOST_RE = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9._-]*)(?::(?P<port>[0-9]+))?$"
)
# Paths go into remote commands quoted, but a layout root should still be a plain path.
_SAFE_PATH_RE = re.compile(r"^/[A-Za-z0-9._/+@-]+$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


@dataclass(frozen=True)
class HostSpec:
    """One entry of DEPLOY_HOSTS: an ssh_config alias or user@host:port."""

    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port else text


def _hosts(value: str) -> tuple[HostSpec, ...]:
    hosts = []
    for entry in (part.strip() for part in value.split(",")):
        match = _HOST_RE.fullmatch(entry)
        if not match:
            raise ValueError(f"{entry!r} is not user@host[:port] or an ssh_config alias")
        port = match["port"]
        if port is not None and not 0 < int(port) < 65536:
            raise ValueError(f"port {port} in {entry!r} is not between 1 and 65535")
        hosts.append(HostSpec(match["host"], match["user"], int(port) if port else None))
    if len({str(h) for h in hosts}) != len(hosts):
        raise ValueError("a host is listed twice")
    return tuple(hosts)


def _layout_root(value: str) -> str:
    if not _SAFE_PATH_RE.fullmatch(value) or "/../" in value + "/" or value.rstrip("/") == "":
        raise ValueError("must be an absolute path of letters, digits and ._/+@- (not /)")
    return value.rstrip("/")


def _absolute_dir(value: str) -> str:
    if not _SAFE_PATH_RE.fullmatch(value):
        raise ValueError("must be an absolute path of letters, digits and ._/+@-")
    return value.rstrip("/") or "/"


def _local_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


def _local_dir(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ValueError(f"no such folder: {path}")
    return path.resolve()


def parse_choice(*options: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return check


def _url(value: str) -> str:
    if not re.match(r"^https?://[A-Za-z0-9.\[\]:-]+(/[^\s]*)?$", value):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


def _count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError("must be a whole number of at least 1")
    return int(value)


def parse_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError("must be a name of letters, digits and ._@-")
    return value


def _token(value: str) -> str:
    if len(value) < 8 or any(ch.isspace() for ch in value):
        raise ValueError("must be a static token of at least 8 characters without spaces")
    return value


def _two_ports(value: str) -> tuple[int, int]:
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != 2 or not all(part.isdigit() and 0 < int(part) < 65536 for part in parts) or parts[0] == parts[1]:
        raise ValueError("must be two different ports, comma-separated")
    return int(parts[0]), int(parts[1])


def _absolute_file(value: str) -> str:
    if not _SAFE_PATH_RE.fullmatch(value) or value.endswith("/"):
        raise ValueError("must be the absolute path of a file, of letters, digits and ._/+@-")
    return value


def parse_line(value: str) -> str:
    if "\n" in value:
        raise ValueError("must be one line")
    return value


@dataclass(frozen=True)
class Key:
    name: str
    field: str  # its attribute on Config
    parse: Callable[[str], object]
    default: str | None = None  # None: required (unless `optional`)
    optional: bool = False
    example: str = ""  # shown in the fix hint of an error
    local_path: bool = False  # a path on this machine: relative to the file that sets it


KEYS = (
    Key("DEPLOY_HOSTS", "hosts", _hosts, example="deploy@prod.example.com"),
    Key("DEPLOY_PRIMARY", "primary", parse_line, optional=True, example="app1.example.com"),
    Key("DEPLOY_SSH_CONFIG", "ssh_config", _local_file, optional=True, example="~/.ssh/config", local_path=True),
    Key("DEPLOY_PATH", "deploy_path", _layout_root, default="/srv/directus", example="/srv/directus"),
    # default: the git repository the configuration file is in (load() fills it in)
    Key("DEPLOY_SOURCE", "source", _local_dir, optional=True, example=".", local_path=True),
    Key("DEPLOY_NODE_PATH", "node_path", _absolute_dir, optional=True, example="/opt/node-22/bin"),
    Key("DIRECTUS_URL", "directus_url", _url, default="http://127.0.0.1:8055", example="http://127.0.0.1:8055"),
    Key("DIRECTUS_TOKEN", "directus_token", _token, example="<an admin user's static token>"),
    Key("DEPLOY_STRATEGY", "strategy", parse_choice("restart", "bluegreen"), default="restart", example="bluegreen"),
    Key("DEPLOY_BLUEGREEN_PORTS", "bluegreen_ports", _two_ports, default="8056,8057", example="8056,8057"),
    Key("DEPLOY_NGINX_UPSTREAM_FILE", "nginx_upstream_file", _absolute_file, default="/etc/nginx/directus/upstream.conf",
        example="/etc/nginx/directus/upstream.conf"),
    Key("DEPLOY_NGINX_UPSTREAM", "nginx_upstream", parse_name, default="directus", example="directus"),
    Key("DEPLOY_NGINX_CONF", "nginx_conf", _absolute_file, optional=True, example="/etc/nginx/nginx.conf"),
    Key("DEPLOY_DRAIN_SECONDS", "drain_seconds", _count, default="30", example="30"),
    Key("DEPLOY_REHEARSE", "rehearse", parse_choice("never", "changes", "always"), default="never", example="changes"),
    Key("DIRECTUS_DEV_URL", "dev_url", _url, optional=True, example="http://localhost:8055"),
    Key("DIRECTUS_DEV_TOKEN", "dev_token", _token, optional=True, example="<the development admin's static token>"),
    Key("KEEP_RELEASES", "keep_releases", _count, default="5", example="5"),
    Key("KEEP_BACKUPS", "keep_backups", _count, default="10", example="10"),
)
SECRET_KEYS = ("DIRECTUS_TOKEN", "DIRECTUS_DEV_TOKEN")


@dataclass(frozen=True)
class Config:
    """Every key of KEYS, parsed, under its `field` name; and the file they came from."""

    hosts: tuple[HostSpec, ...]
    primary: HostSpec | None  # DEPLOY_PRIMARY among the hosts (None: the first)
    ssh_config: Path | None
    deploy_path: str
    source: Path
    node_path: str | None
    directus_url: str
    directus_token: str
    strategy: str
    bluegreen_ports: tuple[int, int]
    nginx_upstream_file: str
    nginx_upstream: str
    nginx_conf: str | None
    drain_seconds: int
    rehearse: str
    dev_url: str | None
    dev_token: str | None
    keep_releases: int
    keep_backups: int
    env_file: Path | None
    # the keys of the runtime that runs Directus (declared in runtimes/), by field name
    runtime_settings: dict = field(default_factory=dict, compare=False)

    def __getattr__(self, name: str):
        settings = self.__dict__.get("runtime_settings") or {}
        if name in settings:
            return settings[name]
        raise AttributeError(name)

    @property
    def primary_host(self) -> HostSpec:
        """The host that does what must happen once: the database's backup, migrations, schema."""
        return self.primary or self.hosts[0]

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed or logged."""
        return tuple(s for s in (self.directus_token, self.dev_token) if s)


def env_file_path(environ: dict[str, str] | None = None, start: Path | None = None) -> Path | None:
    """DEPLOY_ENV_FILE, else the nearest `.env.deploy` in `start` (the current folder) or a
    parent, up to the git repository's top; None when there is none."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_FILE_VARIABLE):
        return Path(environ[ENV_FILE_VARIABLE]).expanduser()
    folder = Path(start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / DEFAULT_ENV_FILE).is_file():
            return candidate / DEFAULT_ENV_FILE
        if (candidate / ".git").exists():  # never a file of another project above this one
            return None
    return None


def local_file_of(path: Path) -> Path:
    """The secrets file beside a configuration file."""
    return path.with_name(path.name + LOCAL_SUFFIX)


def repository_of(folder: Path) -> Path:
    """The git repository `folder` is in (its top folder), or `folder` when it is in none."""
    folder = folder.resolve()
    return next((candidate for candidate in (folder, *folder.parents) if (candidate / ".git").exists()), folder)


def load(environ: dict[str, str] | None = None, *, extra_keys: tuple[Key, ...] = (), checks=()) -> Config:
    """Read, check and return the configuration, or raise ConfigError with the fix.

    `extra_keys`: keys declared by a higher layer (the runtimes'); `checks`: functions given the
    parsed values by key name and the file's name, raising ConfigError when they do not fit."""
    keys = KEYS + tuple(extra_keys)
    declared = {key.name for key in keys}
    environ = dict(os.environ if environ is None else environ)
    path = env_file_path(environ)
    if path is not None and not path.is_file():
        raise ConfigError(f"{ENV_FILE_VARIABLE}={path}: no such file")
    # each file's values, the secrets file's last so that they win; the environment wins over both
    files = [(each, _read_env_file(each)) for each in (path, path and local_file_of(path)) if each and each.is_file()]

    for each, file_values in files:
        for name in file_values:
            if name.startswith(OWN_PREFIXES) and name not in declared and name != ENV_FILE_VARIABLE:
                raise ConfigError(f"{each}: unknown key {name}{_suggest(name, declared)}")

    values: dict[str, object] = {}
    for key in keys:
        raw, origin = environ.get(key.name), None
        if raw is None:
            for each, file_values in files:  # the last file that sets it wins (an empty line sets nothing)
                if file_values.get(key.name, "").strip():
                    raw, origin = file_values[key.name], each
        if raw is not None:
            raw = raw.strip()
        if raw and key.local_path and origin is not None and not raw.startswith(("/", "~")):
            raw = str(origin.parent / raw)
        if not raw:
            if key.default is None and not key.optional:
                hint = f"add {key.name}={key.example} to {_where(path, for_fix=True, secret=key.name in SECRET_KEYS)}"
                raise ConfigError(f"{_where(path)}: {key.name} is required; {hint}")
            raw = key.default
        if raw is None:
            values[key.name] = None
            continue
        try:
            values[key.name] = key.parse(raw)
        except ValueError as why:
            shown = "<hidden>" if key.name in SECRET_KEYS else repr(url_secrets.masked(raw))
            raise ConfigError(
                f"{_where(path)}: {key.name}={shown} {why} (for example {key.name}={key.example})"
            ) from None

    for check in checks:
        check(values, _where(path))

    primary = None
    if values["DEPLOY_PRIMARY"] and len(values["DEPLOY_HOSTS"]) > 1:  # one host: it is the primary
        primary = next((h for h in values["DEPLOY_HOSTS"] if str(h) == values["DEPLOY_PRIMARY"]), None)
        if primary is None:
            raise ConfigError(f"{_where(path)}: DEPLOY_PRIMARY={values['DEPLOY_PRIMARY']} is not one of DEPLOY_HOSTS "
                              f"({', '.join(str(h) for h in values['DEPLOY_HOSTS'])})")

    if values["DEPLOY_STRATEGY"] == "bluegreen":
        url_port = re.match(r"^https?://[^/]*:([0-9]+)", values["DIRECTUS_URL"])
        if url_port and int(url_port[1]) in values["DEPLOY_BLUEGREEN_PORTS"]:
            raise ConfigError(f"{_where(path)}: with DEPLOY_STRATEGY=bluegreen, DIRECTUS_URL is Directus through nginx, "
                              f"not one of DEPLOY_BLUEGREEN_PORTS ({values['DIRECTUS_URL']})")

    settings = {key.field: values[key.name] for key in KEYS}
    settings["primary"] = primary
    if settings["source"] is None:
        settings["source"] = repository_of(path.parent if path is not None else Path.cwd())
    runtime_settings = {key.field: values[key.name] for key in extra_keys}
    return Config(**settings, env_file=path, runtime_settings=runtime_settings)


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError as why:
        raise ConfigError(f"{path}: cannot be read ({why.strerror})") from None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and "=" not in stripped:
            raise ConfigError(f"{path}:{number}: not a KEY=value line; fix or comment it out")
    return {k: (v or "") for k, v in dotenv_values(path).items()}


def _where(path: Path | None, for_fix: bool = False, secret: bool = False) -> str:
    if path is not None:
        return str(local_file_of(path)) if for_fix and secret else str(path)
    if for_fix:
        return f"{DEFAULT_ENV_FILE}{LOCAL_SUFFIX if secret else ''} or the environment (directus-deploy init writes both files)"
    return f"config (no {DEFAULT_ENV_FILE} here or above, no {ENV_FILE_VARIABLE})"


def _suggest(name: str, declared) -> str:
    close = difflib.get_close_matches(name, sorted(declared), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]}?"
    return f"; the {DEFAULT_ENV_FILE} that directus-deploy init writes lists every key this tool reads"
