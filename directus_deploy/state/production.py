"""Where a production's state lives on its host, read from the production `.env` there.

A production is the folder Directus runs from (the `current` release, or an install folder
not adopted yet) and what its `.env` points at: the database, the local uploads folder, the
extensions folder with its marketplace installs in `.registry`. Paths in the `.env` are
relative to that folder, as Directus resolves them.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from dataclasses import dataclass, field

from directus_deploy.core import dotenv, url_secrets
from directus_deploy.core.errors import Refused
from directus_deploy.engines import object_storage
from directus_deploy.engines.object_storage import buckets_in
from directus_deploy.host.remote import Remote, q
from directus_deploy.state.layout import Layout
from directus_deploy.state.settings import READ_JS, Settings, find_process_shell, settings_from

HEALTH_PROBE_FILE = object_storage.HEALTH_PROBE_FILE  # written into uploads by every /server/health


@dataclass
class Production:
    root: str  # the folder Directus runs from (real path)
    env_file: str  # real path of the production .env
    env: dict = field(repr=False)  # parsed .env: holds secrets, never printed
    uploads: str | None  # the local storage root, if local storage is used
    extensions: str  # EXTENSIONS_PATH
    registry: str  # extensions/.registry: marketplace installs (may not exist)
    directus_version: str
    in_layout: bool
    release_id: str | None  # the current release's folder name, in the layout
    settings: Settings | None = field(default=None, repr=False)  # where they came from
    storages: dict = field(default_factory=dict)  # other local storage locations: {name: path}
    buckets: dict = field(default_factory=dict, repr=False)  # locations on S3: {name: object_storage.Bucket}
    # the database runs in a container of its own beside Directus: (settings, secret names) ->
    # shell words running a database client there (engines/base.py); None: reached from the host
    database_exec: object = field(default=None, repr=False, compare=False)
    # the host's port where this Directus answers, when not its PORT (a container's published port)
    served_port: int | None = None

    @property
    def has_files(self) -> bool:
        """Uploads anywhere this tool backs up: local folders or buckets."""
        return bool(self.uploads or self.storages or self.buckets)

    def storage_secret_env(self) -> dict[str, str]:
        return object_storage.secret_env(self.buckets)

    @property
    def db_client(self) -> str:
        return str(self.env.get("DB_CLIENT", "")).strip()

    def resolve(self, relative: str) -> str:
        return posixpath.normpath(posixpath.join(self.root, relative))


SECRET_ENV_KEYS = ("DB_PASSWORD", "SECRET", "KEY", "ADMIN_PASSWORD", "ADMIN_TOKEN", "DB_CONNECTION_STRING")


def parse_env(remote: Remote, text: str) -> dict:
    """A production .env's settings as Directus reads them (no ${VAR} expansion); its secrets are
    registered so no output shows them."""
    env = dotenv.parse(text)
    register_secrets(remote, env)
    return env


def register_secrets(remote: Remote, env: dict) -> None:
    """Remember the settings' secrets so no output shows them."""
    for key in SECRET_ENV_KEYS:
        remote.add_secret(env.get(key))
    for key, value in env.items():
        if key.endswith(("_PASSWORD", "_SECRET", "_TOKEN", "_KEY")):
            remote.add_secret(value)
        for secret in url_secrets.secrets_in(value):  # redis://:pass@host, whatever the key
            remote.add_secret(secret)


def paths_in(root: str, env: dict) -> dict:
    """Where Directus, run from `root`, finds uploads and extensions (relative paths in the
    .env are resolved against the folder it runs from)."""
    storage_locations = [s.strip() for s in str(env.get("STORAGE_LOCATIONS", "local")).split(",")]
    uploads = None
    if "local" in storage_locations and env.get("STORAGE_LOCAL_DRIVER", "local") == "local":
        uploads = posixpath.normpath(posixpath.join(root, storage_root(env)))
    # Symlinks (a release's uploads -> shared/uploads) are followed by every command that
    # uses these paths with a trailing slash or a `cd`; they need no resolving here.
    extensions = posixpath.normpath(posixpath.join(root, env.get("EXTENSIONS_PATH") or "./extensions"))
    return {"uploads": uploads, "extensions": extensions, "registry": posixpath.join(extensions, ".registry"),
            "storages": {name: posixpath.normpath(posixpath.join(root, relative))
                         for name, relative in other_local_locations(env).items()},
            "buckets": buckets_in(env)}


def storage_root(env: dict) -> str:
    """STORAGE_LOCAL_ROOT, normalized (default ./uploads): where uploads are, relative to the
    folder Directus runs from, or absolute."""
    return posixpath.normpath(str(env.get("STORAGE_LOCAL_ROOT") or "./uploads"))


_LOCATION = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def other_local_locations(env: dict) -> dict[str, str]:
    """{location: root as the .env gives it} for each local storage location besides `local`
    (STORAGE_LOCATIONS=local,archive with STORAGE_ARCHIVE_DRIVER=local)."""
    found = {}
    for name in (s.strip() for s in str(env.get("STORAGE_LOCATIONS", "local")).split(",")):
        key = name.upper().replace("-", "_")
        if not name or name == "local" or env.get(f"STORAGE_{key}_DRIVER") != "local":
            continue
        if not _LOCATION.match(name) or not env.get(f"STORAGE_{key}_ROOT"):
            raise Refused(f"storage location {name!r}: a local location needs a plain name (a-z, 0-9, - and _) "
                          f"and STORAGE_{key}_ROOT")
        found[name] = str(env[f"STORAGE_{key}_ROOT"])
    return found


def moved_to(production: "Production", root: str, release_id: str | None) -> "Production":
    """The same production, run from another release folder (same .env, same shared state)."""
    return dataclasses.replace(production, root=root, release_id=release_id, in_layout=release_id is not None,
                               **paths_in(root, production.env))


def locate(remote: Remote, layout: Layout, install: str | None = None) -> Production:
    """Find the production: the layout's current release, or an install folder given by the user."""
    if install:
        if not install.startswith("/"):
            raise Refused(f"--install={install!r} must be an absolute path on the host")
        root_expr = q(install)
    else:
        root_expr = q(layout.current)
    # one round trip: the folder, the Directus version, and the settings Directus runs with
    reader = remote.settings_reader
    if reader:
        settings_part = "echo '---settings---'; " + reader.settings_script('"$root"')
    else:
        settings_part = (
            'v=$(sed -n \'s/^ *"version": *"\\([^"]*\\)".*/\\1/p\' "$root/node_modules/directus/package.json" 2>/dev/null | head -1); '
            'echo "version=$v"; ' + find_process_shell() + '; echo "---settings---"; '
            f'cd "$root" && node -e {q(READ_JS)} "$root" "$pid"'
        )
    script = (
        f"root=$(readlink -f -- {root_expr}) && test -d \"$root\" || {{ echo NO_ROOT; exit 0; }}; "
        'echo "root=$root"; ' + settings_part
    )
    out = remote.query(script, what="read the production's settings").stdout
    head, _, settings_json = out.partition("---settings---\n")
    if "NO_ROOT" in head:
        where = install or layout.current
        fix = "check the folder" if install else "run fab deploy.setup or fab deploy.adopt --from=<install folder>"
        raise Refused(f"{remote.name}: no Directus production at {where}; {fix}")
    facts = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    if reader:
        found = reader.read_settings(facts["root"], settings_json)
        facts["version"] = found.get("version", "")
    else:
        try:
            found = json.loads(settings_json.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise Refused(f"{remote.name}: cannot read Directus's settings in {facts['root']} with node "
                          "(is Node on the host's PATH, or DEPLOY_NODE_PATH set?)") from None
    settings = settings_from(found, lambda text: parse_env(remote, text))
    if settings.format == "missing" and not settings.from_process:
        raise Refused(f"{remote.name}: {settings.config_path} is missing; Directus has no configuration there")
    env = settings.env
    register_secrets(remote, env)

    root = facts["root"]
    release_id = posixpath.basename(root) if root.startswith(layout.releases + "/") else None
    database_exec = reader.database_exec(found["database_service"]) if reader and found.get("database_service") else None
    return Production(
        root=root,
        database_exec=database_exec,
        served_port=found.get("served_port"),
        env_file=found.get("real_path") or settings.config_path,
        settings=settings,
        env=env,
        **paths_in(root, env),
        directus_version=facts.get("version", ""),
        in_layout=release_id is not None,
        release_id=release_id,
    )
