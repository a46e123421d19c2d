"""Rehearsal on the real test bed: the release first runs against a copy of production (a
scratch database made from the backup), and production is touched only if that passes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from testbed.project import add_tag

from .helpers import hello, one_line, private_setups, run_fab, tree_fingerprint
from .reliability import fab_process, run_until

# fails only where there is data to convert: on the developer's empty database it passes
THROWS_ON_ROWS = (
    "module.exports = { async up(knex) { const row = await knex('articles').count('* as n').first();"
    " if (Number(row.n) > 0) throw new Error('injected: cannot convert the ' + row.n + ' existing articles'); },"
    " async down() {} };\n"
)
VOLATILE = ("directus_activity", "directus_sessions", "directus_revisions")


@pytest.fixture(scope="module")
def rehearsed(bed, tmp_path_factory):
    made = bed.new_productions(("sqlite", "postgres"))
    setups = private_setups(bed, made, tmp_path_factory.mktemp("rehearsal"), adopt=True)
    yield setups
    for production in made.values():
        production.destroy()


def sqlite_counts(database: Path) -> dict:
    tables = subprocess.run(["sqlite3", str(database), "SELECT name FROM sqlite_master WHERE type='table'"],
                            capture_output=True, text=True, check=True).stdout.split()
    return {t: subprocess.run(["sqlite3", str(database), f'SELECT COUNT(*) FROM "{t}"'], capture_output=True,
                              text=True, check=True).stdout.strip() for t in tables if t not in VOLATILE}


def rehearsal_processes(work: Path) -> list[int]:
    """Processes started with the rehearsal's settings (its CONFIG_PATH in their environment)."""
    marker = f"CONFIG_PATH={work}/directus.env".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def scratch_databases() -> list[str]:
    out = subprocess.run(["psql", "-X", "-At", "-d", "postgres", "-c", "SELECT datname FROM pg_database"],
                         capture_output=True, text=True, check=True).stdout
    return [name for name in out.split() if name.endswith("_scratch_rehearsal")]


def test_a_migration_failing_on_production_data_fails_in_rehearsal(rehearsed):
    setup = rehearsed["sqlite"]
    production, srv = setup["production"], setup["srv"]
    add_tag(setup["project"], "v3-converts", {"migrations/20990401A-convert-articles.js": THROWS_ON_ROWS})
    database = srv / "shared" / "database" / "data.db"
    ignore = ("database", "deps")
    before = (tree_fingerprint(srv / "shared", ignore=ignore), sqlite_counts(database), (srv / "current").readlink(),
              production.content(), hello(production))

    result = run_fab("release", "--tag=v3-converts", "--rehearse", "--yes", env_file=setup["env"])
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr
    line = one_line(result)
    assert "rehearsal on a copy of production failed at migrations" in line, line
    assert "injected: cannot convert the 24 existing articles" in line and "production was not touched" in line
    assert "==> run migrations" not in result.stdout  # production's own never started

    probe = srv / "shared" / "uploads" / "directus-health-file"  # rewritten by every health check
    after_tree = {k: v for k, v in tree_fingerprint(srv / "shared", ignore=ignore).items() if k != str(probe.relative_to(srv / "shared"))}
    before_tree = {k: v for k, v in before[0].items() if k != str(probe.relative_to(srv / "shared"))}
    assert after_tree == before_tree
    assert sqlite_counts(database) == before[1]
    assert (srv / "current").readlink() == before[2]
    assert production.content() == before[3] and hello(production) == before[4]
    assert not (srv / ".deploy" / "rehearsal").exists() and not rehearsal_processes(srv / ".deploy" / "rehearsal")
    last = json.loads((srv / ".deploy" / "log.jsonl").read_text().splitlines()[-1])
    assert last["outcome"] == "rehearsal-failed" and last["tag"] == "v3-converts"


def test_a_good_release_rehearses_then_deploys(rehearsed):
    setup = rehearsed["postgres"]
    production = setup["production"]
    before = production.content()
    # DEPLOY_REHEARSE=changes: v2 changes the schema snapshot, so it rehearses
    result = run_fab("release", "--tag=v2", "--yes", "--json", env_file=setup["env"], env={"DEPLOY_REHEARSE": "changes"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    summary = json.loads(result.stdout)
    assert summary["rehearsal"].startswith("passed on a copy of backup " + summary["backup"]), summary["rehearsal"]
    rehearsal_steps = [name for name in summary["steps"] if name.startswith("rehearse:")]
    assert len(rehearsal_steps) == 5 and "rehearsing on a copy of production first: it changes schema snapshot" in result.stderr
    assert hello(production) == "hello from v2"
    assert production.content() == before
    assert scratch_databases() == [] and not (setup["srv"] / ".deploy" / "rehearsal").exists()

    again = run_fab("release", "--tag=v2", "--yes", "--json", env_file=setup["env"], env={"DEPLOY_REHEARSE": "changes"})
    assert json.loads(again.stdout)["rehearsal"].startswith("not run (no change"), again.stdout[-500:]


def test_ctrl_c_during_rehearsal_leaves_no_scratch_database_or_process(rehearsed):
    setup = rehearsed["postgres"]
    production, work = setup["production"], setup["srv"] / ".deploy" / "rehearsal"
    add_tag(setup["project"], "v3-interrupted", {"extensions/directus-extension-hello/dist/index.js":
                                                 "export default { id: 'hello', handler: (r) => { r.get('/', (_q, res) => "
                                                 "res.json({ message: 'hello from v3' })); } };\n"})
    release = fab_process(setup["env"], "release", "--tag=v3-interrupted", "--rehearse", "--yes")
    run_until(release, "==> rehearse: start the new release on the copy")
    assert scratch_databases(), "the scratch database exists by now"
    time.sleep(1.5)  # Directus is booting on the copy
    assert rehearsal_processes(work), "the copy's Directus should be running by now"
    release.send_signal(signal.SIGINT)
    output, _ = release.communicate(timeout=300)
    assert release.returncode == 130, output[-2000:]
    assert "rehearse: remove the copy" in output
    assert scratch_databases() == []
    assert rehearsal_processes(work) == [] and not work.exists()
    assert hello(production) == "hello from v2"
    assert not (setup["srv"] / ".deploy" / "lock").exists()
