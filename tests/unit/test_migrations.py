"""Which migrations a release would run: its files as Directus picks them (its own, and the
project's in MIGRATIONS_PATH), less the versions the database has applied; the listing run in
a local bash over a release laid out as on a host; migrate_and_apply starting no Directus when
nothing is pending."""

from __future__ import annotations

import os

from directus_deploy.flows.schema import (
    SYSTEM_MIGRATIONS,
    SchemaPlan,
    migrate_and_apply,
    migration_files_lines,
    pending_migrations,
)
from directus_deploy.host.script import EMIT_FUNCTION, parse_results

from .local import LocalRemote, run, strict

SYSTEM = ["20201028A-remove-collection-foreign-keys.js", "20260909A-add-flows-module.js", "run.js", "index.d.ts"]


def test_nothing_is_pending_when_the_database_has_every_version():
    files = {"system": SYSTEM, "custom": []}
    assert pending_migrations(files, ["20201028A", "20260909A"]) == []


def test_new_files_of_directus_or_of_the_project_are_pending_in_version_order():
    files = {"system": SYSTEM + ["20261201A-add-x.js"], "custom": ["20250101B-backfill.cjs", "README.md", "notes.js"]}
    assert pending_migrations(files, ["20201028A", "20260909A"]) == ["20250101B", "20261201A"]


def test_unknown_means_run_them():
    assert pending_migrations(None, []) is None
    assert pending_migrations({"system": SYSTEM, "custom": []}, None) is None
    # no file of Directus's own: its migrations are not where they are looked for
    assert pending_migrations({"system": ["run.js"], "custom": ["20250101B-x.js"]}, []) is None


def test_the_listing_reports_the_release_files_and_the_project_migrations(tmp_path):
    release = tmp_path / "releases" / "r1"
    (release / SYSTEM_MIGRATIONS).mkdir(parents=True)
    for name in SYSTEM:
        (release / SYSTEM_MIGRATIONS / name).write_text("")
    (release / "db-migrations").mkdir()
    (release / "db-migrations" / "20250101B-odd name $(x).js").write_text("")
    out = run(strict(EMIT_FUNCTION, *migration_files_lines(str(release), "./db-migrations"))).stdout
    found = parse_results(out).all("migration-file")
    assert sorted(r["name"] for r in found if r["where"] == "system") == sorted(SYSTEM)
    assert [r["name"] for r in found if r["where"] == "custom"] == ["20250101B-odd name $(x).js"]
    assert not (tmp_path / "x").exists()
    # no migrations folder in the project: nothing custom, and the script goes on
    out = run(strict(EMIT_FUNCTION, *migration_files_lines(str(release), "./migrations"), "echo after")).stdout
    assert parse_results(out).lines == ["after"]


class NoDirectus:
    def cli(self, release_dir, *args):
        raise AssertionError(f"Directus started: {args}")


def test_nothing_pending_and_no_schema_change_starts_no_directus(tmp_path):
    remote = LocalRemote()
    plan = SchemaPlan(migration_files={"system": SYSTEM, "custom": []})
    outcome = migrate_and_apply(remote, None, NoDirectus(), str(tmp_path), plan,
                                pending_migrations(plan.migration_files, ["20201028A", "20260909A"]))
    assert outcome == {"migrations": []} and remote.commands == []


def test_pending_migrations_are_run_and_named_by_version(tmp_path):
    class EchoDirectus:
        def cli(self, release_dir, *args):
            return "echo " + " ".join(args)

    from directus_deploy.state.layout import Layout

    os.makedirs(tmp_path / ".deploy")
    remote = LocalRemote()
    plan = SchemaPlan(migration_files={"system": SYSTEM + ["20261201A-add-x.js"], "custom": []})
    outcome = migrate_and_apply(remote, Layout(str(tmp_path)), EchoDirectus(), str(tmp_path), plan,
                                pending_migrations(plan.migration_files, ["20201028A", "20260909A"]))
    assert outcome == {"migrations": ["20261201A"]}
    assert len(remote.commands) == 1 and "migrate:latest" in remote.commands[0]
