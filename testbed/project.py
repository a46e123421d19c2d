"""The fixture Directus *project*: a git repository with tags v1 and v2.

v1 is what the existing production runs: the project's files and the schema snapshot taken
from that production (snapshots are database-vendor specific, so each engine's production
gets its own repository). v2 changes the `hello` endpoint's answer and adds a `tags`
collection to the snapshot.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import yaml

from .toolchain import FIXTURE_PROJECT

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Fixture Developer", "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Fixture Developer", "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_IDENTITY}
    result = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def add_tags_collection(snapshot: dict) -> dict:
    """v2's schema: v1 plus a `tags` collection (id, name), typed like articles' id and title."""
    changed = copy.deepcopy(snapshot)
    articles = next(c for c in snapshot["collections"] if c["collection"] == "articles")
    tags = copy.deepcopy(articles)
    tags["collection"] = "tags"
    tags["meta"].update(collection="tags", icon="sell", note="Added in v2")
    tags["schema"] = {"name": "tags"}
    changed["collections"].append(tags)
    for source, name in (("id", "id"), ("title", "name")):
        field = copy.deepcopy(next(f for f in snapshot["fields"] if f["collection"] == "articles" and f["field"] == source))
        field.update(collection="tags", field=name)
        field["meta"].update(collection="tags", field=name)
        field["schema"].update(name=name, table="tags")
        changed["fields"].append(field)
    return changed


def make_project_repo(dest: Path, v1_snapshot: Path) -> Path:
    """Create the repository at `dest` from the fixture files and the production's snapshot."""
    shutil.rmtree(dest, ignore_errors=True)
    # plain copies (new mtimes): git must see v2's same-sized files as changed
    shutil.copytree(FIXTURE_PROJECT / "base", dest, copy_function=shutil.copy)
    (dest / "snapshots").mkdir(exist_ok=True)
    snapshot = yaml.safe_load(v1_snapshot.read_text())
    # one YAML writer for both tags, so `git diff v1 v2` shows just the schema change
    (dest / "snapshots" / "schema.yaml").write_text(yaml.safe_dump(snapshot, sort_keys=False))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "v1: articles with images, hello endpoint, audit hook")
    git(dest, "tag", "-a", "v1", "-m", "v1")

    shutil.copytree(FIXTURE_PROJECT / "v2", dest, dirs_exist_ok=True, copy_function=shutil.copy)
    (dest / "snapshots" / "schema.yaml").write_text(yaml.safe_dump(add_tags_collection(snapshot), sort_keys=False))
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "v2: hello says v2; tags collection")
    git(dest, "tag", "-a", "v2", "-m", "v2")
    return dest


def clone_project(repo: Path, dest: Path) -> Path:
    """A private copy of a fixture project, for tests that add tags of their own."""
    subprocess.run(["git", "clone", "-q", str(repo), str(dest)], check=True)
    git(dest, "fetch", "-q", "--tags")
    return dest


def hook_extension(name: str, body: str) -> dict:
    """The files of a hook extension `name` (changes for add_tag): its manifest, and `body`
    as its built entry file."""
    manifest = {"name": name, "version": "1.0.0", "type": "module",
                "directus:extension": {"type": "hook", "path": "dist/index.js", "source": "src/index.js", "host": "^12.0.0"}}
    return {f"extensions/{name}/package.json": json.dumps(manifest), f"extensions/{name}/dist/index.js": body}


def add_tag(repo: Path, tag: str, changes: dict, base: str = "v2") -> str:
    """Commit `changes` ({path: text, or None to delete}) on top of `base` and tag it."""
    git(repo, "checkout", "-q", "--detach", base)
    for path, content in changes.items():
        target = repo / path
        if content is None:
            git(repo, "rm", "-q", "-r", "--", path)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        git(repo, "add", "--", path)
    git(repo, "commit", "-q", "-m", f"{tag}: test change")
    git(repo, "tag", "-a", tag, "-m", tag)
    return git(repo, "rev-parse", "HEAD").strip()


def snapshot_without_field(repo: Path, tag: str, collection: str, field: str) -> str:
    """The schema snapshot of `tag` with one field removed (a destructive change)."""
    snapshot = yaml.safe_load(git(repo, "show", f"{tag}:snapshots/schema.yaml"))
    snapshot["fields"] = [f for f in snapshot["fields"] if not (f["collection"] == collection and f["field"] == field)]
    return yaml.safe_dump(snapshot, sort_keys=False)


# What a 12.x snapshot holds that Directus 11.17.4 neither has nor writes: the system fields
# of the tables 12's migrations add (indexed OAuth columns), and collection settings of 12.
_NEWER_SYSTEM_FIELDS = ("directus_oauth_", ("directus_sessions", "oauth_client"))
_NEWER_COLLECTION_META = ("autosave_revision_interval", "status")


def snapshot_of_directus_11(repo: Path, tag: str, version: str) -> str:
    """The schema snapshot of `tag` as Directus 11 (`version`) takes it of the same schema:
    applying a 12.x snapshot on 11 fails on the system fields 11 does not have."""
    snapshot = yaml.safe_load(git(repo, "show", f"{tag}:snapshots/schema.yaml"))
    prefix, (collection, field) = _NEWER_SYSTEM_FIELDS
    snapshot["directus"] = version
    snapshot["systemFields"] = [f for f in snapshot.get("systemFields", [])
                                if not f["collection"].startswith(prefix)
                                and (f["collection"], f["field"]) != (collection, field)]
    for entry in snapshot["collections"]:
        for key in _NEWER_COLLECTION_META:
            (entry.get("meta") or {}).pop(key, None)
    return yaml.safe_dump(snapshot, sort_keys=False)


# A project migration (MIGRATIONS_PATH defaults to ./migrations in the release): a new table,
# filled while the old release may still be serving.
NOTES_MIGRATION = """module.exports = {
  async up(knex) {
    await knex.schema.createTable('release_notes', (table) => { table.increments('id'); table.string('text'); });
    await knex('release_notes').insert({ text: 'v3 introduced release notes' });
  },
  async down(knex) { await knex.schema.dropTable('release_notes'); },
};
"""
HELLO_V4 = "export default { id: 'hello', handler: (router) => { router.get('/', (_q, res) => res.json({ message: 'hello from v4' })); } };\n"


def add_migration_tags(repo: Path) -> tuple[str, str]:
    """Tags for a release with a schema change and a migration, and one after it:
    `v3-migrate` (v2's `tags` collection and a migration making `release_notes`) and `v4-code`
    (v3-migrate with another hello answer; code only). A code-only rollback needs a target
    that knows the database's migrations: from v4-code back to v3-migrate."""
    add_tag(repo, "v3-migrate", {"migrations/20990101A-release-notes.js": NOTES_MIGRATION})
    add_tag(repo, "v4-code", {"extensions/directus-extension-hello/dist/index.js": HELLO_V4}, base="v3-migrate")
    return "v3-migrate", "v4-code"
