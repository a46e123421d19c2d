"""The deploy and extensions namespaces on the real test bed: adopting a running install,
releases v1 -> v2, and the guards that stop a bad release before users see it."""

from __future__ import annotations

import json
import os
import stat

import pytest

from testbed.project import add_tag, snapshot_without_field

from .helpers import CRASHING_HOOK, HELLO_V3, fab_ok, hello, one_line, private_setups, run_fab, tree_fingerprint


@pytest.fixture(scope="module")
def deployed(bed, tmp_path_factory):
    """Fresh SQLite and PostgreSQL productions, each with its own copy of the project."""
    made = bed.new_productions(("sqlite", "postgres"))
    setups = private_setups(bed, made, tmp_path_factory.mktemp("deploy"))
    yield setups
    for production in made.values():
        production.destroy()








@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_adopt_takes_a_running_install_into_the_layout_losing_nothing(deployed, engine):
    setup = deployed[engine]
    production, srv = setup["production"], setup["srv"]
    before = production.content()
    result = fab_ok("deploy.adopt", f"--from={production.folder}", env_file=setup["env"])
    assert "tag v1" in result.stdout  # found the tag that matches what runs

    assert production.content() == before
    assert hello(production) == "hello from v1"
    loaded = {e["schema"]["name"] for e in production.api.get("/extensions")["data"] if e["schema"]}
    assert "directus-extension-greeting" in loaded  # the marketplace install survived

    current = srv / "current"
    assert current.is_symlink() and (srv / os.readlink(current)).is_dir()
    release = current.resolve()
    for name in (".env", "uploads", "node_modules", "extensions/.registry"):
        assert (release / name).is_symlink(), name
    assert stat.S_IMODE((srv / "shared" / ".env").stat().st_mode) == 0o600
    assert not (production.folder / ".env").exists() and not (production.folder / "uploads").exists()
    app = next(p for p in production.pm2.processes() if p["name"] == production.app)
    assert app["pm2_env"]["pm_cwd"] == str(release)  # pm2 runs the release's real path
    log = [json.loads(line) for line in (srv / ".deploy" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["action"] == "adopt" and log[-1]["outcome"] == "ok" and log[-1]["backup"]


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_v1_to_v2_brings_the_new_endpoint_and_collection(deployed, engine):
    setup = deployed[engine]
    production = setup["production"]
    before = production.content()
    fab_ok("deploy.code", "--tag=v2", env_file=setup["env"])
    plan = fab_ok("deploy.migrate", "--dry-run", env_file=setup["env"])
    assert "Create collection tags" in plan.stdout
    fab_ok("deploy.migrate", env_file=setup["env"])
    fab_ok("deploy.switch", env_file=setup["env"])
    assert hello(production) == "hello from v2"
    assert production.api.get("/collections/tags")["data"]["collection"] == "tags"
    assert production.content() == before
    listing = fab_ok("deploy.releases", env_file=setup["env"]).stdout
    assert "current" in listing and "last good" in listing


def test_an_invalid_extension_manifest_is_refused_before_anything_changes(deployed):
    setup = deployed["sqlite"]
    add_tag(setup["project"], "v3-bad-manifest", {
        "extensions/directus-extension-broken/package.json": json.dumps({"name": "directus-extension-broken", "version": "1.0.0"}),
        "extensions/directus-extension-hello/dist/index.js": HELLO_V3,
    })
    before = tree_fingerprint(setup["srv"], ignore=("backups",))
    result = run_fab("deploy.code", "--tag=v3-bad-manifest", env_file=setup["env"])
    assert result.returncode == 2
    line = one_line(result)
    assert "directus-extension-broken" in line and "directus:extension" in line
    assert tree_fingerprint(setup["srv"], ignore=("backups",)) == before
    assert hello(setup["production"]) == "hello from v2"


def test_a_destructive_schema_change_is_refused_unless_allowed(deployed):
    setup = deployed["postgres"]
    production = setup["production"]
    add_tag(setup["project"], "v3-drop-body", {
        "snapshots/schema.yaml": snapshot_without_field(setup["project"], "v2", "articles", "body"),
    })
    fab_ok("deploy.code", "--tag=v3-drop-body", env_file=setup["env"])
    refused = run_fab("deploy.migrate", env_file=setup["env"])
    assert refused.returncode == 2
    assert "DROP 1 item(s): field articles.body" in one_line(refused)
    assert production.api.get("/fields/articles/body")["data"]["field"] == "body"

    fab_ok("deploy.migrate", "--allow-destructive", env_file=setup["env"])
    # the running (old) release still caches the old schema; the database has changed
    columns = production.query_db("SELECT column_name FROM information_schema.columns WHERE table_name = 'articles'")
    assert ["body"] not in columns and ["title"] in columns
    assert production.query_db("SELECT COUNT(*) FROM articles") == [["24"]]  # rows kept, one column gone


def test_a_release_that_fails_to_start_is_switched_back(deployed):
    setup = deployed["sqlite"]
    production = setup["production"]
    add_tag(setup["project"], "v3-crash", {**CRASHING_HOOK, "extensions/directus-extension-hello/dist/index.js": HELLO_V3})
    fab_ok("deploy.code", "--tag=v3-crash", env_file=setup["env"])
    result = run_fab("deploy.switch", env_file=setup["env"])
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr
    assert "switched back to" in result.stdout and "production is back on" in one_line(result)
    assert hello(production) == "hello from v2"
    releases = fab_ok("deploy.releases", env_file=setup["env"]).stdout
    crashed = next(line for line in releases.splitlines() if "v3-crash" in line)
    assert "failed" in crashed


def test_extensions_are_built_when_their_entry_file_is_missing(deployed):
    setup = deployed["sqlite"]
    add_tag(setup["project"], "v3-build", {
        "extensions/directus-extension-hello/dist/index.js": None,
        "extensions/directus-extension-hello/src/index.js": HELLO_V3,
        "extensions/directus-extension-hello/package.json": json.dumps({
            "name": "directus-extension-hello", "version": "3.0.0", "type": "module",
            "scripts": {"build": "mkdir -p dist && cp src/index.js dist/index.js"},
            "directus:extension": {"type": "endpoint", "path": "dist/index.js", "source": "src/index.js", "host": "^12.0.0"}}),
    })
    result = fab_ok("deploy.code", "--tag=v3-build", env_file=setup["env"])
    assert "built extensions/directus-extension-hello" in result.stdout
    release = max((setup["srv"] / "releases").glob("*-v3-build"))
    assert "hello from v3" in (release / "extensions/directus-extension-hello/dist/index.js").read_text()


def test_an_extension_hotfix_is_a_new_release_cloned_from_the_current_one(deployed):
    setup = deployed["postgres"]
    production = setup["production"]
    srv = setup["srv"]
    current = srv / os.readlink(srv / "current")
    add_tag(setup["project"], "v2-hotfix", {"extensions/directus-extension-hello/dist/index.js": HELLO_V3}, base="v2")
    result = fab_ok("extensions.sync", "--tag=v2-hotfix", env_file=setup["env"])
    assert "1 files changed under extensions/" in result.stdout
    assert hello(production) == "hello from v3"
    new = srv / os.readlink(srv / "current")
    assert new != current and json.loads((new / "REVISION").read_text())["base_release"] == current.name
    assert os.readlink(new / "node_modules") == os.readlink(current / "node_modules")
    # the old release is untouched (releases are immutable)
    assert "hello from v2" in (current / "extensions/directus-extension-hello/dist/index.js").read_text()
    # a tag that changes more than extensions/ is refused
    refused = run_fab("extensions.sync", "--tag=v3-drop-body", env_file=setup["env"])
    assert refused.returncode == 2 and "more than extensions/" in one_line(refused)


def test_dry_run_uploads_nothing_and_changes_nothing(deployed):
    setup = deployed["sqlite"]
    before = tree_fingerprint(setup["srv"])
    result = fab_ok("deploy.code", "--tag=v2", "--dry-run", env_file=setup["env"])
    assert "would upload" in result.stdout
    assert tree_fingerprint(setup["srv"]) == before


def test_cleanup_keeps_current_and_last_good_and_drops_failed_ones(bed, deployed):
    setup = deployed["sqlite"]
    srv = setup["srv"]
    keep_one = bed.tool_env(setup["production"], srv.parent, DEPLOY_SOURCE=str(setup["project"]), KEEP_RELEASES="1")
    current = os.readlink(srv / "current").split("/")[-1]
    fab_ok("deploy.cleanup", env_file=keep_one)
    left = sorted(p.name for p in (srv / "releases").iterdir())
    assert current in left
    assert not any("v3-crash" in name or "v3-build" in name for name in left)
    assert len(left) == 2  # the current one and the last good one (v1)
    stores = list((srv / "shared" / "deps").iterdir())
    assert len(stores) == 1 and (stores[0] / ".complete").exists()


def test_the_running_directus_and_the_cli_agree_on_whether_a_snapshot_changes_anything(deployed):
    """The schema plan asks the running Directus first (POST /schema/diff) and starts the new
    release's CLI only when that finds changes: on the same snapshots both must say the same."""
    import yaml

    from directus_deploy.flows.schema import read_plan

    from .helpers import session_for

    setup = deployed["sqlite"]
    current = (setup["srv"] / "current").resolve()
    scratch = setup["folder"] / "plan-check"  # the current release, its snapshot replaced
    (scratch / "snapshots").mkdir(parents=True)
    for entry in current.iterdir():
        if entry.name != "snapshots":
            (scratch / entry.name).symlink_to(entry)
    unchanged = (current / "snapshots" / "schema.yaml").read_text()
    noted, dropped = yaml.safe_load(unchanged), yaml.safe_load(unchanged)
    noted["collections"][0]["meta"]["note"] = "changed by the test"
    victim = next(f for f in dropped["fields"] if f["collection"] == "articles" and f["field"] != "id")
    dropped["fields"].remove(victim)
    session = session_for(setup["env"])
    try:
        remote, runtime, service = session.remote(), session.runtime, session.service
        for name, text in (("unchanged", unchanged), ("a note changed", yaml.safe_dump(noted, sort_keys=False)),
                           ("a field dropped", yaml.safe_dump(dropped, sort_keys=False))):
            (scratch / "snapshots" / "schema.yaml").write_text(text)
            by_cli = read_plan(remote, runtime, str(scratch))
            asked_first = read_plan(remote, runtime, str(scratch), service=service)
            assert (asked_first.checked_by == "http") == by_cli.empty, name
            assert (asked_first.changes, asked_first.deletions) == (by_cli.changes, by_cli.deletions), name
            assert by_cli.empty == (name == "unchanged"), (name, by_cli.changes)
        assert by_cli.deletions == [f"field articles.{victim['field']}"]
    finally:
        session.close()
