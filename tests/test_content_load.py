"""The content team keeps working during a release: editors write through nginx to a blue/green
production while a release with a schema change and a migration goes out and is rolled back.
Not one write fails, not one acknowledged write is lost, every file row has its bytes.
bench/content_load.py measures the same with restart, and `rollback --with-db`.

On PostgreSQL: with SQLite, Directus's own CLI (the schema apply) and the serving instance
contend for the one database file, and Directus sets no busy timeout, so under this write load
the apply sometimes fails ("Failed to create collection") and the tool puts the database back
(docs/benchmarks.md has the figures). That is Directus's limit with SQLite, not the tool's."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from testbed.content import Api
from testbed.editors import Editors, check, missing_items
from testbed.project import add_migration_tags

from .helpers import behind_nginx_bluegreen, fab_ok, hello

EDITORS = 2  # the benchmark runs 4; two keep the suite short and still write every ~100 ms


@pytest.fixture(scope="module")
def postgres_blue_green(bed, nginx, tmp_path_factory):
    """A PostgreSQL production adopted with DEPLOY_STRATEGY=bluegreen, behind nginx."""
    yield from behind_nginx_bluegreen(bed, nginx, tmp_path_factory.mktemp("content-load"), "postgres")


def test_editors_see_no_error_and_lose_nothing_during_release_and_rollback(postgres_blue_green):
    setup = postgres_blue_green
    migrating, code_only = add_migration_tags(setup["project"])
    api = Api(setup["url"], setup["production"].token)
    with Editors(api, EDITORS) as editors:
        time.sleep(0.5)  # writing already when the release starts
        fab_ok("release", f"--tag={migrating}", "--yes", env_file=setup["env"])
        fab_ok("release", f"--tag={code_only}", "--yes", env_file=setup["env"])  # a target that knows the migration
        fab_ok("rollback", "--yes", env_file=setup["env"])
        time.sleep(0.5)
    assert hello(setup["production"]) == "hello from v2"  # back on v3-migrate, which kept v2's endpoint

    report = check(api, editors.writes)
    done = Counter(w.kind for w in editors.writes if w.acknowledged)
    assert set(done) == {"create", "update", "upload", "delete"}, done
    assert any(w.size > 1_000_000 for w in editors.writes if w.acknowledged), "no upload over 1 MB"
    assert report.failed == 0, [(w.kind, w.error[:200]) for w in report.failures[:5]]
    assert report.lost == [], report.lost[:5]
    assert report.rows_without_bytes == [], report.rows_without_bytes[:5]

    # the check sees a loss: an acknowledged article removed behind the editors' back
    kept = {w.item for w in editors.writes if w.kind == "delete"}
    victim = next(w for w in editors.writes if w.kind == "create" and w.acknowledged and w.item not in kept)
    api.request("DELETE", f"/items/articles/{victim.item}")
    assert victim in [write for write, _ in missing_items(api, editors.writes)]
