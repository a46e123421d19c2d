"""Where things live under DEPLOY_PATH on a production host (docs/architecture.md). One place per path."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from directus_deploy.core.errors import Refused

# Release and backup ids become folder names: keep them plain, so a user-typed id can never
# walk out of its folder (`../../etc`) or smuggle shell syntax.
_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9._-]{1,80}$")


def is_id(value) -> bool:
    return isinstance(value, str) and bool(_ID_RE.fullmatch(value)) and ".." not in value


def check_id(kind: str, value: str) -> str:
    if not is_id(value):
        raise Refused(f"{kind} id {value!r} is not of the form 20260101T120000Z-name; list them to copy one")
    return value


@dataclass(frozen=True)
class Layout:
    root: str

    # shared_deps as a release's `node_modules` link names it: relative (up from releases/<id>
    # to the root, then shared/deps/<key>/node_modules), so the layout keeps working if
    # DEPLOY_PATH moves
    DEPS_FROM_RELEASE = posixpath.join("..", "..", "shared", "deps")

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    @property
    def releases(self) -> str:
        return self._path("releases")

    def release_dir(self, release_id: str) -> str:
        return self._path("releases", check_id("release", release_id))

    @property
    def current(self) -> str:
        return self._path("current")

    @property
    def shared(self) -> str:
        return self._path("shared")

    @property
    def shared_env(self) -> str:
        return self._path("shared", ".env")

    @property
    def shared_uploads(self) -> str:
        return self._path("shared", "uploads")

    def shared_storage(self, location: str) -> str:
        """A local storage location other than `local` (STORAGE_LOCATIONS=local,archive)."""
        return self._path("shared", "storage", location)

    @property
    def shared_database(self) -> str:
        return self._path("shared", "database")

    @property
    def shared_registry(self) -> str:
        return self._path("shared", "extensions-registry")

    @property
    def shared_services(self) -> str:
        """The data the services beside Directus keep in folders of the project (./data/database)."""
        return self._path("shared", "services")

    @property
    def shared_deps(self) -> str:
        return self._path("shared", "deps")

    @property
    def backups(self) -> str:
        return self._path("backups")

    def backup_dir(self, backup_id: str) -> str:
        return self._path("backups", check_id("backup", backup_id))

    @property
    def tool_dir(self) -> str:
        return self._path(".deploy")

    @property
    def lock_dir(self) -> str:
        return self._path(".deploy", "lock")

    @property
    def bluegreen_config(self) -> str:
        """Directus's settings file for a blue/green instance (runtimes/instances.py)."""
        return self._path(".deploy", "bluegreen.cjs")

    @property
    def rehearsal_dir(self) -> str:
        """The rehearsal's scratch state: its .env, database copy, storage, processes."""
        return self._path(".deploy", "rehearsal")

    @property
    def log_file(self) -> str:
        return self._path(".deploy", "log.jsonl")
