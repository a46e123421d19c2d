"""`fab release` and `fab rollback` on the real test bed: the full chain on every engine, a
database-aware rollback, one release at a time, Ctrl-C, and a dry run that changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from testbed.databases import ENGINES
from testbed.project import add_tag, clone_project

from .helpers import FAB, REPO, fab_ok, hello, one_line, run_fab, tree_fingerprint

# A custom migration (MIGRATIONS_PATH defaults to ./migrations in the release): after it ran,
# an earlier release's code does not know the database any more.
MIGRATION = """module.exports = {
  async up(knex) {
    await knex.schema.createTable('release_notes', (table) => { table.increments('id'); table.string('text'); });
    await knex('release_notes').insert({ text: 'v3 introduced release notes' });
  },
  async down(knex) { await knex.schema.dropTable('release_notes'); },
};
"""


@pytest.fixture(scope="module")
def adopted(bed, tmp_path_factory):
    """A fresh production per engine, adopted into the layout, with its own project copy."""
    made = bed.new_productions()
    folder = tmp_path_factory.mktemp("release")
    setups = {}
    for engine, production in made.items():
        project = clone_project(bed.project_dir(engine), folder / engine / "project")
        add_tag(project, "v3-migrate", {"migrations/20990101A-release-notes.js": MIGRATION})
        env_file = bed.tool_env(production, folder / engine, DEPLOY_SOURCE=str(project))
        result = run_fab("deploy.adopt", f"--from={production.folder}", env_file=env_file)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr
        setups[engine] = {"production": production, "env": env_file, "srv": folder / engine / "srv"}
    yield setups
    for production in made.values():
        production.destroy()








def log_entries(srv) -> list[dict]:
    return [json.loads(line) for line in (srv / ".deploy" / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("engine", ENGINES)
def test_release_runs_the_whole_chain_and_loses_nothing(adopted, engine):
    setup = adopted[engine]
    production = setup["production"]
    before = production.content()
    result = fab_ok("release", "--tag=v2", "--yes", env_file=setup["env"])
    for step in ("check the host", "back up", "upload and unpack", "check every extension manifest",
                 "read the schema plan", "run migrations", "switch to", "check every row, upload and extension",
                 "record the release", "clean up"):
        assert step in result.stdout, step
    assert "Release complete" in result.stdout and "database: OK; uploads: OK; marketplace extensions: OK" in result.stdout
    assert hello(production) == "hello from v2"
    assert production.api.get("/collections/tags")["data"]["collection"] == "tags"
    assert production.content() == before
    entry = log_entries(setup["srv"])[-1]
    assert entry["action"] == "release" and entry["outcome"] == "ok" and entry["tag"] == "v2"
    assert entry["backup"] and entry["timings"] and entry["migrations"]
    assert not (setup["srv"] / ".deploy" / "lock").exists()


def test_json_summary_for_ci(adopted):
    setup = adopted["mysql"]
    result = fab_ok("release", "--tag=v2", "--yes", "--json", env_file=setup["env"])
    summary = json.loads(result.stdout)
    assert summary["outcome"] == "ok" and summary["tag"] == "v2" and summary["backup"] and summary["steps"]
    # releasing v1 over v2 would drop the tags collection: refused, and said so in JSON too
    refused = run_fab("release", "--tag=v1", "--yes", "--json", env_file=setup["env"])
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["outcome"] == "refused"
    assert len(list((setup["srv"] / "releases").glob("*-v1"))) == 1  # the adopted v1 only: the refused one is gone
    assert "switch to" in result.stderr  # progress goes to stderr, JSON alone on stdout


def test_dry_run_changes_nothing_on_the_host(adopted):
    setup = adopted["sqlite"]
    before = tree_fingerprint(setup["srv"])
    result = fab_ok("release", "--tag=v3-migrate", "--dry-run", env_file=setup["env"])
    assert "would upload" in result.stdout and "Release planned (dry run)" in result.stdout
    assert tree_fingerprint(setup["srv"]) == before


def test_rollback_code_only_then_refused_then_with_the_database(adopted):
    setup = adopted["postgres"]
    production, srv = setup["production"], setup["srv"]
    # code-only: v2 -> v1 (no migration between them)
    fab_ok("rollback", env_file=setup["env"])
    assert hello(production) == "hello from v1"
    fab_ok("release", "--tag=v2", "--yes", env_file=setup["env"])

    # v3 runs a migration; then an editor writes
    fab_ok("release", "--tag=v3-migrate", "--yes", env_file=setup["env"])
    assert production.query_db("SELECT text FROM release_notes") == [["v3 introduced release notes"]]
    production.api.json("POST", "/items/articles", {"title": "Written after v3", "body": "late"})
    articles_after = len(production.api.get("/items/articles?limit=-1")["data"])

    refused = run_fab("rollback", env_file=setup["env"])
    assert refused.returncode == 2
    assert "20990101A" in one_line(refused) and "--with-db" in one_line(refused)
    assert hello(production) == "hello from v2"  # nothing changed

    listing = fab_ok("rollback.list", env_file=setup["env"]).stdout
    assert "needs --with-db" in listing

    result = fab_ok("rollback", "--with-db", "--yes", env_file=setup["env"])
    assert "will be set aside" in result.stdout and "articles: +1 rows" in result.stdout
    assert hello(production) == "hello from v2"
    assert production.query_db("SELECT COUNT(*) FROM directus_migrations WHERE version = '20990101A'") == [["0"]]
    assert len(production.api.get("/items/articles?limit=-1")["data"]) == articles_after - 1
    entry = log_entries(srv)[-1]
    assert entry["action"] == "rollback" and entry["with_db"] and entry["outcome"] == "ok"
    # the late article is not lost: the safety backup holds it
    safety = json.loads((srv / "backups" / entry["safety_backup"] / "manifest.json").read_text())
    assert safety["database"]["tables"]["articles"] == articles_after


def test_two_releases_at_once_one_is_refused_with_the_owner(adopted):
    setup = adopted["mysql"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "DIRECTUS_", "KEEP_"))}
    env["DEPLOY_ENV_FILE"] = str(setup["env"])
    runs = [subprocess.Popen([*FAB, "release", "--tag=v2", "--yes"], cwd=REPO, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(run.wait(timeout=600), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, _, err in results if code == 2)
    assert "another deploy holds the lock" in refused and "release v2" in refused
    assert not (setup["srv"] / ".deploy" / "lock").exists()


def test_ctrl_c_in_the_middle_leaves_the_old_release_serving_and_the_lock_free(adopted):
    setup = adopted["sqlite"]
    production = setup["production"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "DIRECTUS_", "KEEP_"))}
    env["DEPLOY_ENV_FILE"] = str(setup["env"])
    serving = hello(production)
    run = subprocess.Popen([*FAB, "release", "--tag=v3-migrate", "--yes"], cwd=REPO, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = ""
    deadline = time.monotonic() + 300
    while "read the schema plan" not in seen and time.monotonic() < deadline:
        seen += run.stdout.readline()
    run.send_signal(signal.SIGINT)
    rest, _ = run.communicate(timeout=300)
    assert run.returncode == 130, seen + rest
    assert hello(production) == serving
    assert not (setup["srv"] / ".deploy" / "lock").exists()
    fab_ok("release", "--tag=v3-migrate", "--yes", env_file=setup["env"])
    adopted_db = setup["srv"] / "shared" / "database" / "data.db"  # the SQLite file moved into shared/
    assert production.database.query("SELECT COUNT(*) FROM release_notes", path=adopted_db) == [["1"]]


def test_bad_tags_are_refused_before_anything_happens(adopted):
    setup = adopted["mysql"]
    before = tree_fingerprint(setup["srv"])
    for tag, says in (("v9-does-not-exist", "does not exist"), ("v1;touch /tmp/pwned", "not a plain tag name"),
                      ("$(id)", "not a plain tag name"), ("v1 v2", "not a plain tag name")):
        result = run_fab("release", f"--tag={tag}", "--yes", env_file=setup["env"])
        assert result.returncode == 2, tag
        assert says in one_line(result)
    assert tree_fingerprint(setup["srv"]) == before


def test_a_stale_lock_is_shown_and_broken_only_on_request(adopted):
    setup = adopted["mysql"]
    lock_dir = setup["srv"] / ".deploy" / "lock"
    lock_dir.mkdir()
    (lock_dir / "owner.json").write_text(json.dumps({"user": "alice", "machine": "laptop", "pid": 4242,
                                                     "purpose": "release v9", "since": "2026-01-01T00:00:00Z"}))
    refused = run_fab("release", "--tag=v2", "--yes", env_file=setup["env"])
    assert refused.returncode == 2 and "alice@laptop (pid 4242) for release v9" in one_line(refused)
    shown = run_fab("deploy.unlock", env_file=setup["env"])
    assert shown.returncode == 2 and "alice@laptop" in shown.stdout and lock_dir.exists()
    fab_ok("deploy.unlock", "--force", env_file=setup["env"])
    assert not lock_dir.exists()


def test_a_release_that_loses_rows_is_rolled_back_with_its_database(adopted):
    """A migration that deletes content: the verification catches it, the code goes back and
    the database is restored from the backup taken at the start."""
    setup = adopted["sqlite"]
    production = setup["production"]
    project = setup["env"].parent / "project"
    add_tag(project, "v4-loses-rows", {"migrations/20990202A-oops.js":
                                       "module.exports = { async up(knex) { await knex('articles').where('id', '>', 20).del(); },"
                                       " async down() {} };\n"}, base="v3-migrate")
    before = production.content()
    serving = hello(production)
    result = run_fab("release", "--tag=v4-loses-rows", "--yes", env_file=setup["env"])
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    assert "verification failed" in result.stdout and "articles" in one_line(result)
    assert production.content() == before
    assert hello(production) == serving
    assert log_entries(setup["srv"])[-1]["outcome"] == "rolled-back"


def test_rollback_to_a_pruned_release_deploys_its_tag_again(adopted):
    setup = adopted["mysql"]
    production, srv = setup["production"], setup["srv"]
    fab_ok("release", "--tag=v2", "--yes", env_file=setup["env"])
    current = os.readlink(srv / "current").split("/")[-1]
    older = [p for p in (srv / "releases").iterdir() if p.name != current]
    for folder in older:  # as if cleanup had pruned them
        shutil.rmtree(folder)
    result = fab_ok("rollback", "--to=v1", env_file=setup["env"])
    assert "deployed again from the tag" in result.stdout
    assert hello(production) == "hello from v1"
