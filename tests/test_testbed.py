"""The test bed itself: each engine's seeded production serves its items, files and extensions,
and the fixture project has the tags the other suites deploy."""

from __future__ import annotations

import hashlib

import pytest

from testbed.databases import ENGINES
from testbed.project import git

EXPECTED_EXTENSIONS = {"directus-extension-hello", "directus-extension-audit-hook", "directus-extension-greeting"}


@pytest.mark.parametrize("engine", ENGINES)
def test_seeded_production_serves_items_and_file_bytes(bed, engine):
    production = bed.productions[engine]
    content = production.content()
    assert len(content["articles"]) == production.seeded.articles >= 20
    referenced = {article["image"] for article in content["articles"]}
    assert referenced == set(production.seeded.files)
    # every file's bytes, as served by Directus, are the bytes that were uploaded
    assert content["files"] == production.seeded.files
    # and on disk they are real files in the install's uploads folder
    on_disk = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (production.folder / "uploads").iterdir()}
    assert set(production.seeded.files.values()) <= on_disk


@pytest.mark.parametrize("engine", ENGINES)
def test_seeded_production_runs_on_its_engine_with_its_extensions(bed, engine):
    production = bed.productions[engine]
    health = production.api.get("/server/health")
    vendor_check = {"sqlite": "sqlite3", "postgres": "pg", "mysql": "mysql"}[engine]
    assert health["status"] == "ok"
    assert any(check.startswith(f"{vendor_check}:") for check in health["checks"])
    loaded = {entry["schema"]["name"] for entry in production.api.get("/extensions")["data"] if entry["schema"]}
    assert loaded == EXPECTED_EXTENSIONS
    assert production.api.get("/hello", auth=False)["message"] == "hello from v1"
    assert production.api.get("/greeting", auth=False)["greeting"] == "installed from the marketplace"
    assert (production.folder / "extensions" / ".registry" / production.registry_folder / "package.json").exists()
    assert production.query_db("SELECT COUNT(*) FROM articles") == [[str(production.seeded.articles)]]


@pytest.mark.parametrize("engine", ENGINES)
def test_fixture_project_has_v1_and_v2(bed, engine):
    repo = bed.project_dir(engine)
    assert set(git(repo, "tag").split()) == {"v1", "v2"}
    changed = set(git(repo, "diff", "--name-only", "v1", "v2").split())
    assert changed == {
        "extensions/directus-extension-hello/dist/index.js",
        "extensions/directus-extension-hello/package.json",
        "snapshots/schema.yaml",
    }
    assert "hello from v2" in git(repo, "show", "v2:extensions/directus-extension-hello/dist/index.js")
    assert "collection: tags" not in git(repo, "show", "v1:snapshots/schema.yaml")
    assert "collection: tags" in git(repo, "show", "v2:snapshots/schema.yaml")
