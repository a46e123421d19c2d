"""What the tool reads from a host in one round trip, with the SSH channel replaced by a local
shell over a temporary folder: the inventory (releases, backups, deploy log), the host's facts,
the shared links a release gets (made by their shell), and the preservation check of a SQLite
production and its uploads against a backup's manifest."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from directus_deploy.core import manifest as mf
from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q
from directus_deploy.state import deploylog
from directus_deploy.state.inventory import read_inventory
from directus_deploy.state.layout import Layout
from directus_deploy.state.preservation import check_preservation, table_problems
from directus_deploy.state.probe import HostFacts, read_host_facts, require_node
from directus_deploy.state.production import HEALTH_PROBE_FILE, Production, paths_in
from directus_deploy.state.shared import link_lines, shared_links

from .local import LocalRemote, fake_command, path_with, run, strict

R1, R2 = "20260101T120000Z-v1", "20260102T120000Z-v2"
B1 = "20260101T110000Z-pre-release"


def test_the_inventory_reads_releases_backups_and_log_in_one_round_trip(tmp_path):
    layout, remote = Layout(str(tmp_path)), LocalRemote()
    for release in (R1, R2):
        os.makedirs(os.path.join(layout.releases, release))
        with open(os.path.join(layout.releases, release, "REVISION"), "w") as handle:
            json.dump({"tag": release[-2:]}, handle)
    os.symlink(f"releases/{R2}", layout.current)
    os.makedirs(os.path.join(layout.backups, B1))
    with open(os.path.join(layout.backups, B1, "summary.json"), "w") as handle:
        json.dump({"reason": "pre-release"}, handle)
    os.makedirs(os.path.join(layout.backups, "20260101T100000Z-broken"))
    deploylog.append(remote, layout, {"action": "release", "release": R2, "backup": B1, "outcome": "ok"})
    trips = remote.log.round_trips
    stock = read_inventory(remote, layout)
    assert remote.log.round_trips == trips + 1
    assert [(r["id"], r["current"], r["revision"]["tag"]) for r in stock.releases] == [(R1, False, "v1"), (R2, True, "v2")]
    assert [b["id"] for b in stock.backups] == [B1] and stock.incomplete_backups == ["20260101T100000Z-broken"]
    assert stock.entries[0]["backup"] == B1


def test_the_inventory_of_an_empty_host_is_empty(tmp_path):
    stock = read_inventory(LocalRemote(), Layout(str(tmp_path / "nothing")))
    assert (stock.releases, stock.backups, stock.incomplete_backups, stock.entries) == ([], [], [], [])


def test_host_facts_read_tools_node_disk_layout_stores_and_current(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "node", 'echo v22.11.0')
    deploy = tmp_path / "srv" / "directus"
    os.makedirs(deploy / "shared" / "deps" / "k1-node22")
    (deploy / "shared" / "deps" / "k1-node22" / ".complete").touch()
    os.makedirs(deploy / "shared" / "deps" / "k2-node22")  # not complete: not listed
    os.makedirs(deploy / "releases" / R1)
    (deploy / "releases" / R1 / "REVISION").write_text('{\n "tag": "v1"\n}\n')
    os.symlink(f"releases/{R1}", deploy / "current")
    remote = LocalRemote(env=path_with(bin_dir))
    facts = read_host_facts(remote, str(deploy), tools={"node": "", "tar": "", "no-such-tool-here": ""})
    assert facts.node_version == "v22.11.0" and facts.node_major == 22
    assert set(facts.tools) == {"node", "tar"} and facts.tools["node"] == str(bin_dir / "node")
    assert facts.layout_exists and facts.dependency_stores == ["k1-node22"]
    assert facts.current_release == R1 and facts.current_revision == {"tag": "v1"}
    assert facts.disk_of == str(deploy) and facts.free_kib > 0
    require_node(remote, facts)


def test_host_facts_where_nothing_is_set_up_yet(tmp_path):
    facts = read_host_facts(LocalRemote(), str(tmp_path / "not" / "yet"), tools={"tar": ""})
    assert not facts.layout_exists and facts.current_release is None and facts.disk_of == str(tmp_path)


@pytest.mark.parametrize("tools, version, says", [({}, "", "node not found"),
                                                  ({"node": "/usr/bin/node"}, "v20.1.0", "too old")])
def test_node_missing_or_too_old_is_refused(tools, version, says):
    with pytest.raises(Refused, match=says):
        require_node(LocalRemote(), HostFacts(tools=tools, node_version=version))


# -- shared links -------------------------------------------------------------------------------

def test_a_release_links_env_uploads_database_registry_and_other_locations(tmp_path):
    layout = Layout(str(tmp_path))
    env = {"DB_CLIENT": "sqlite3", "DB_FILENAME": "./database/data.db", "STORAGE_LOCATIONS": "local,archive",
           "STORAGE_LOCAL_ROOT": "./media/files", "STORAGE_ARCHIVE_DRIVER": "local", "STORAGE_ARCHIVE_ROOT": "./arch",
           "EXTENSIONS_PATH": "./ext"}
    links = shared_links(layout, env)
    assert [(link.path, link.target) for link in links] == [
        (".env", layout.shared_env), ("media/files", layout.shared_uploads), ("database", layout.shared_database),
        ("arch", layout.shared_storage("archive")), ("ext/.registry", layout.shared_registry)]
    release = tmp_path / "releases" / R1
    (release / "media" / "files").mkdir(parents=True)
    (release / "media" / "files" / "from-the-tag.jpg").write_text("x")
    for target in (layout.shared_uploads, layout.shared_database, layout.shared_storage("archive"), layout.shared_registry):
        os.makedirs(target)
    open(layout.shared_env, "w").write("PORT=1\n")
    open(os.path.join(layout.shared_uploads, "real.jpg"), "w").write("real")
    run(strict(*link_lines(str(release), links, q)))
    assert os.readlink(release / "media" / "files") == os.path.relpath(layout.shared_uploads, release / "media")
    assert os.listdir(release / "media" / "files") == ["real.jpg"]
    assert (release / ".env").read_text() == "PORT=1\n" and os.readlink(release / "ext" / ".registry").startswith("../")
    assert os.path.samefile(release / "database", layout.shared_database)


def test_no_link_is_made_through_a_symlinked_folder_of_the_release(tmp_path):
    """A release whose `extensions` is a link to another install's extensions: its `.registry`
    is neither deleted nor replaced; the script stops with one line."""
    layout = Layout(str(tmp_path / "srv"))
    links = shared_links(layout, {"DB_CLIENT": "pg", "STORAGE_LOCAL_ROOT": "./media/files"})
    os.makedirs(layout.shared_registry)
    legacy = tmp_path / "legacy" / "extensions"
    (legacy / ".registry" / "abc").mkdir(parents=True)
    (legacy / ".registry" / "abc" / "index.js").write_text("mine")
    release = tmp_path / "srv" / "releases" / R1
    release.mkdir(parents=True)
    (release / "extensions").symlink_to(legacy)
    result = run(strict(*link_lines(str(release), links, q)), check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == ("extensions is a symlink in the release; refusing to replace "
                                                      "extensions/.registry through it")
    assert (legacy / ".registry" / "abc" / "index.js").read_text() == "mine" and not (legacy / ".registry").is_symlink()
    # a deeper path: every folder on the way is checked
    release = tmp_path / "srv" / "releases" / R2
    release.mkdir(parents=True)
    (release / "media").symlink_to(legacy)
    result = run(strict(*link_lines(str(release), links, q)), check=False)
    assert result.returncode != 0 and "media is a symlink in the release" in result.stderr
    assert sorted(os.listdir(legacy)) == [".registry"] and not (release / "extensions").exists()


def test_a_link_step_that_fails_stops_the_script(tmp_path):
    layout = Layout(str(tmp_path / "srv"))
    release = tmp_path / "release"
    release.mkdir()
    (release / "extensions").write_text("a file where a folder goes")
    links = shared_links(layout, {"DB_CLIENT": "pg"})
    result = run(strict(*link_lines(str(release), links, q), "echo went-on"), check=False)
    assert result.returncode != 0 and "went-on" not in result.stdout


def test_paths_outside_the_release_get_no_link_and_other_drivers_none(tmp_path):
    layout = Layout(str(tmp_path))
    env = {"STORAGE_LOCAL_ROOT": "/var/uploads", "EXTENSIONS_PATH": "../ext", "DB_CLIENT": "pg"}
    assert [link.path for link in shared_links(layout, env)] == [".env"]
    s3 = {"STORAGE_LOCATIONS": "s3", "STORAGE_S3_DRIVER": "s3"}
    assert [link.path for link in shared_links(layout, s3)] == [".env", "extensions/.registry"]


def test_a_sqlite_file_in_the_release_folder_itself_is_refused(tmp_path):
    with pytest.raises(Refused, match="DB_FILENAME=data.db"):
        shared_links(Layout(str(tmp_path)), {"DB_CLIENT": "sqlite3", "DB_FILENAME": "./data.db"})


def test_paths_in_resolve_against_the_folder_directus_runs_from():
    paths = paths_in("/srv/d/current", {"STORAGE_LOCAL_ROOT": "../uploads", "STORAGE_LOCATIONS": "local,b",
                                        "STORAGE_B_DRIVER": "local", "STORAGE_B_ROOT": "/abs/b"})
    assert paths["uploads"] == "/srv/d/uploads" and paths["extensions"] == "/srv/d/current/extensions"
    assert paths["registry"] == "/srv/d/current/extensions/.registry" and paths["storages"] == {"b": "/abs/b"}
    with pytest.raises(Refused, match="STORAGE_B_ROOT"):
        paths_in("/x", {"STORAGE_LOCATIONS": "b", "STORAGE_B_DRIVER": "local"})


# -- preservation -------------------------------------------------------------------------------

def test_table_problems_allow_growth_and_permitted_losses_only():
    expected = {"articles": 10, "tags": 5, "old": 3, "directus_fields": 40, "directus_activity": 99}
    live = {"articles": 12, "tags": 4, "directus_fields": 38, "directus_activity": 1}
    assert table_problems(expected, live, exact=False, allowed_losses={"old": None, "directus_fields": 2}) == [
        "tags: 4 rows, 5 before"]
    assert table_problems(expected, live, exact=True, allowed_losses={"old": None, "directus_fields": 2}) == [
        "articles: 12 rows, 10 before", "directus_fields: 38 rows, 40 before", "tags: 4 rows, 5 before"]
    assert table_problems({"gone": 1}, {}, exact=False) == ["table gone is gone"]


@pytest.fixture
def production(tmp_path):
    root = tmp_path / "current"
    (root / "database").mkdir(parents=True)
    (root / "uploads" / "sub").mkdir(parents=True)
    (root / "uploads" / "a.jpg").write_text("A")
    (root / "uploads" / "sub" / "b c.png").write_text("BB")
    (root / "uploads" / HEALTH_PROBE_FILE).write_text("rewritten by every /server/health")
    with sqlite3.connect(root / "database" / "data.db") as connection:
        connection.executescript("CREATE TABLE articles (x); INSERT INTO articles VALUES (1), (2);")
    env = {"DB_CLIENT": "sqlite3", "DB_FILENAME": "./database/data.db"}
    return Production(root=str(root), env_file=str(root / ".env"), env=env, directus_version="12", in_layout=True,
                      release_id=R1, **paths_in(str(root), env))


def manifest_of(production) -> dict:
    uploads = production.uploads
    listing = mf.parse_listing(run(f"cd {q(uploads)} && find . -type f ! -path ./directus-health-file "
                                   "-printf '%P\\0%s\\0%T@\\0'").stdout)
    hashes = mf.parse_hashes(run(f"cd {q(uploads)} && find . -type f -print0 | xargs -0 sha256sum -z --").stdout)
    mf.fill_hashes(listing, hashes, {})
    return {"id": B1, "database": {"tables": {"articles": 2}}, "uploads": {"files": mf.listing_to_json(listing)}}


def session(tmp_path):
    return SimpleNamespace(remote=LocalRemote, layout=Layout(str(tmp_path)))


def verdicts(rows):
    return {what: outcome for what, outcome, _ in rows}


def test_preservation_passes_when_production_still_holds_the_backup(tmp_path, production):
    manifest = manifest_of(production)
    assert HEALTH_PROBE_FILE not in manifest["uploads"]["files"]
    (Path(production.uploads) / HEALTH_PROBE_FILE).write_text("changed by a health check")
    assert verdicts(check_preservation(session(tmp_path), production, manifest, exact=True)) == {
        "database": "OK", "uploads": "OK"}
    with sqlite3.connect(os.path.join(production.root, "database", "data.db")) as connection:
        connection.execute("INSERT INTO articles VALUES (3)")  # growth is fine after a release
    open(os.path.join(production.uploads, "new.jpg"), "w").write("new")
    assert verdicts(check_preservation(session(tmp_path), production, manifest, exact=False)) == {
        "database": "OK", "uploads": "OK"}
    assert verdicts(check_preservation(session(tmp_path), production, manifest, exact=True)) == {
        "database": "FAIL", "uploads": "FAIL"}


def test_preservation_fails_on_a_lost_row_a_missing_file_or_changed_bytes(tmp_path, production):
    manifest = manifest_of(production)
    with sqlite3.connect(os.path.join(production.root, "database", "data.db")) as connection:
        connection.execute("DELETE FROM articles WHERE x = 1")
    os.remove(os.path.join(production.uploads, "a.jpg"))
    rows = check_preservation(session(tmp_path), production, manifest, exact=False)
    assert verdicts(rows) == {"database": "FAIL", "uploads": "FAIL"}
    assert "articles: 1 rows, 2 before" in rows[0][2] and "missing: a.jpg" in rows[1][2]


def test_preservation_rehashes_a_file_whose_time_moved(tmp_path, production):
    manifest = manifest_of(production)
    path = os.path.join(production.uploads, "sub", "b c.png")
    os.utime(path, (1, 1))  # touched, same bytes
    assert verdicts(check_preservation(session(tmp_path), production, manifest, exact=False))["uploads"] == "OK"
    open(path, "w").write("XX")  # same size, other bytes
    os.utime(path, (2, 2))
    rows = check_preservation(session(tmp_path), production, manifest, exact=False)
    assert rows[1][1] == "FAIL" and "changed: sub/b c.png" in rows[1][2]


def test_preservation_after_a_release_takes_bytes_written_since_the_backup_as_newer_not_lost(tmp_path, production):
    """An upload still arriving while the backup listed it, or a file an editor replaced: its
    time moved forward with its bytes. Other bytes under an older or equal time stay a failure."""
    manifest = manifest_of(production)
    path = os.path.join(production.uploads, "sub", "b c.png")
    recorded = float(manifest["uploads"]["files"]["sub/b c.png"][1])
    open(path, "w").write("the rest of the upload")
    os.utime(path, (recorded + 5, recorded + 5))
    rows = check_preservation(session(tmp_path), production, manifest, exact=False)
    assert rows[1][1] == "OK" and "1 written since the backup" in rows[1][2], rows
    assert verdicts(check_preservation(session(tmp_path), production, manifest, exact=True))["uploads"] == "FAIL"
