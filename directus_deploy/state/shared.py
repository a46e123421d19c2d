"""Shared state: what lives in `shared/` and which paths of a release link to it (docs/architecture.md).

A release never holds a real uploads folder, database file or `.env`: those paths are symlinks
into `shared/`, computed from the production `.env` (where Directus will look for them).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from directus_deploy.core.errors import Refused
from directus_deploy.state.layout import Layout
from directus_deploy.state.production import other_local_locations


@dataclass(frozen=True)
class Link:
    path: str  # inside the release, relative (e.g. "uploads", "extensions/.registry")
    target: str  # absolute path in shared/
    what: str


def _inside(relative: str) -> str | None:
    """A path relative to the release, or None if it points outside it (absolute or ../)."""
    if not relative or relative.startswith("/"):
        return None
    normal = posixpath.normpath(relative)
    if normal.startswith("..") or normal == ".":
        return None
    return normal


def shared_links(layout: Layout, env: dict) -> list[Link]:
    links = [Link(".env", layout.shared_env, "production .env")]
    locations = [s.strip() for s in str(env.get("STORAGE_LOCATIONS", "local")).split(",")]
    if "local" in locations and env.get("STORAGE_LOCAL_DRIVER", "local") == "local":
        uploads = _inside(env.get("STORAGE_LOCAL_ROOT") or "./uploads")
        if uploads:
            links.append(Link(uploads, layout.shared_uploads, "uploads"))
    if str(env.get("DB_CLIENT", "")).strip() == "sqlite3":
        filename = _inside(str(env.get("DB_FILENAME", "")))
        if filename:
            first, _, rest = filename.partition("/")
            if rest:  # database/data.db: the whole folder (with its -wal and -shm files)
                links.append(Link(first, layout.shared_database, "SQLite database folder"))
            else:
                raise Refused(
                    f"DB_FILENAME={filename} puts the SQLite file in the release folder itself; move it into "
                    "a folder (DB_FILENAME=./database/data.db) so releases can share it"
                )
    for name, root in other_local_locations(env).items():
        inside = _inside(root)
        if inside:
            links.append(Link(inside, layout.shared_storage(name), f"storage location {name}"))
    extensions = _inside(env.get("EXTENSIONS_PATH") or "./extensions")
    if extensions:
        links.append(Link(posixpath.join(extensions, ".registry"), layout.shared_registry, "marketplace extensions"))
    return links


def link_lines(release_dir: str, links: list[Link], q) -> list[str]:
    """Shell replacing each link path in the release (whatever the tag held there) by a
    relative symlink into shared/."""
    lines = []
    for link in links:
        path = posixpath.join(release_dir, link.path)
        target = posixpath.relpath(link.target, posixpath.dirname(path))
        lines.append(f"mkdir -p {q(posixpath.dirname(path))} && rm -rf -- {q(path)} && ln -s -- {q(target)} {q(path)}")
    return lines
