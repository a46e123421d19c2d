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


def parents(relative: str) -> list[str]:
    """The folders a path inside the release goes through: "a/b/c" -> ["a", "a/b"]."""
    parts = relative.split("/")[:-1]
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


def link_lines(release_dir: str, links: list[Link], q) -> list[str]:
    """Shell replacing each link path in the release (whatever the tag held there) by a
    relative symlink into shared/. Never through a symlinked folder of the release: `rm -rf
    extensions/.registry` with `extensions` a link to another folder would delete that folder's
    `.registry` and the link would be written there (the tag is checked before upload too,
    Source.check_links; this is the host's own guard). Any step failing stops the script."""
    lines = []
    for link in links:
        path = posixpath.join(release_dir, link.path)
        target = posixpath.relpath(link.target, posixpath.dirname(path))
        for folder in parents(link.path):
            why = f"{folder} is a symlink in the release; refusing to replace {link.path} through it"
            lines.append(f"if [ -L {q(posixpath.join(release_dir, folder))} ]; then echo {q(why)} >&2; exit 1; fi")
        lines.append(f"mkdir -p -- {q(posixpath.dirname(path))} && rm -rf -- {q(path)} && ln -s -- {q(target)} {q(path)} "
                     "|| exit 1")
    return lines
