"""Content under load: editors keep writing while `fab release` and `fab rollback` run, restart
against blue/green; what they were told succeeded must still be there.

    .venv/bin/python bench/content_load.py [--editors 4] [--strategies restart,bluegreen]

For each strategy, a fresh SQLite production of the test bed behind nginx (Debian's package),
adopted into the layout as in bench/downtime.py. Four editors (testbed/editors.py) write through
nginx, each every 100-300 ms (create an article with an image, update one, upload a file, some
over 1 MB, delete a draft), from a second before each action to a second after it:

    release v3-migrate      v2's schema change (a `tags` collection) and a project migration
    rollback                code only, from v4-code (released in between, without editors) to v3-migrate
    rollback --with-db      to v1: the database back from the backup taken before v3-migrate

Every acknowledged write is then read back (article values, file bytes by sha256, deletes), and
every directus_files row must serve its bytes. After `rollback --with-db`, a write acknowledged
after the moment the tool names (the restored backup's dump) and missing now is "set aside" (the
tool lists those tables before it asks, and keeps them in its safety backup, read here); one not
found in that safety backup counts as lost. Without DIRECTUS_DEPLOY_TESTBED it builds its own bed.
A ping probe every 50 ms gives the window where Directus did not answer (a restart's gap).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.bed import TestBed  # noqa: E402
from testbed.content import Api  # noqa: E402
from testbed.editors import Editors, Report, check  # noqa: E402
from testbed.nginx import Nginx, adopted_behind  # noqa: E402
from testbed.probe import Probe  # noqa: E402
from testbed.project import add_migration_tags, clone_project  # noqa: E402
from testbed.tool import fab, fab_result  # noqa: E402


def measure(bed: TestBed, nginx: Nginx, strategy: str, work: Path, editors: int) -> dict:
    production = bed.new_productions(("sqlite",))["sqlite"]
    try:
        project = clone_project(bed.project_dir("sqlite"), work / strategy / "project")
        migrating, code_only = add_migration_tags(project)
        site, env_file = adopted_behind(nginx, bed, production, project, strategy, work / strategy)
        load = Load(Api(f"http://127.0.0.1:{site}", production.token), env_file, editors, work / strategy / "srv")
        notes = []
        release = load.run("release", ("release", f"--tag={migrating}", "--yes"), seed=1)
        if not release["ok"]:
            notes.append(f"release failed under load ({release['error']}); released again without editors")
            fab(env_file, "release", f"--tag={migrating}", "--yes")
        fab(env_file, "release", f"--tag={code_only}", "--yes")  # a target that knows the migration
        load.run("rollback", ("rollback", "--yes"), seed=2)
        load.run("rollback --with-db", ("rollback", "--with-db", "--yes"), seed=3)
        return {"runs": load.runs, "notes": notes}
    finally:
        for suffix in ("", "-blue", "-green"):
            bed.pm2.run("delete", production.app + suffix, check=False)
        production.destroy()


class Load:
    """Actions run under the editors' load, one after the other on one production."""

    def __init__(self, api: Api, env_file: Path, editors: int, srv: Path):
        self.api, self.env_file, self.editors, self.srv = api, env_file, editors, srv
        self.runs: dict[str, dict] = {}

    def run(self, name: str, args: tuple, seed: int) -> dict:
        """`fab args` while the editors write and a probe pings, a second of service around it;
        then every acknowledged write checked. An action that restored a database (a rollback
        --with-db, a failed release putting it back) sets aside what was acknowledged after that
        backup was taken: each such write must be in the safety backup it took first."""
        with Probe(self.api.url, ["/server/ping"]) as probe, Editors(self.api, self.editors, seed=seed) as team:
            time.sleep(1)
            began = time.time()
            seconds, result = fab_result(self.env_file, *args)
            time.sleep(1)
        output = result.stdout
        run = {"seconds": seconds, "began": began, "ok": result.returncode == 0, "output": output,
               "error": (result.stderr.strip().splitlines() or [""])[-1][:300], "writes": team.writes,
               "outage": outage(probe)}
        restored = re.search(r"==> check backup (\S+)", output)
        safety = re.search(r"safety backup (\S+) holds the state being replaced", output)
        if restored and safety:
            manifest = json.loads((self.srv / "backups" / restored.group(1) / "manifest.json").read_text())
            # the moment the tool names: its dump's start (older backups: when it was finished)
            since = (manifest.get("database") or {}).get("taken_at") or manifest["created_at"]
            taken = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            run.update(restored=restored.group(1), backup_taken=since, safety=safety.group(1),
                       safety_exists=(self.srv / "backups" / safety.group(1) / "manifest.json").exists())
            told = [line.strip() for line in output.splitlines() if "will be set aside" in line]
            if told:  # a rollback --with-db says what it sets aside before it asks
                run.update(told=told[0], told_first=output.index(told[0]) < output.index(safety.group(0))
                           and f"writes since {since} " in told[0])
            run["report"] = self.kept_aside(check(self.api, team.writes, taken.timestamp()), safety.group(1), team.writes)
            # what the restore did to the writes of the actions before it
            earlier = [w for previous in self.runs.values() for w in previous["writes"]]
            run["earlier"] = self.kept_aside(check(self.api, earlier, taken.timestamp()), safety.group(1), team.writes)
        else:
            run["report"] = check(self.api, team.writes)
        self.runs[name] = run
        return run

    def kept_aside(self, report: Report, safety: str, writes: list) -> Report:
        """A set-aside write that no safety backup of the run holds is lost (an earlier action
        that put the database back, a failed release, kept its writes in its own)."""
        every = [w for run in self.runs.values() for w in run["writes"]] + writes
        gone = report.set_aside
        for backup in [run["safety"] for run in self.runs.values() if run.get("safety")] + [safety]:
            gone = not_in_safety_backup(self.srv / "backups" / backup, self.srv / "shared" / "uploads",
                                        [(write, why) for write, why in gone], every)
            gone = [(write, why.removesuffix(NOT_KEPT)) for write, why in gone]
        gone = [(write, why + NOT_KEPT) for write, why in gone]
        report.lost += gone
        lost = {id(write) for write, _ in gone}
        report.set_aside = [entry for entry in report.set_aside if id(entry[0]) not in lost]
        return report


def not_in_safety_backup(backup: Path, uploads: Path, set_aside: list, writes: list) -> list:
    """The set-aside writes the safety backup does not hold: an article as the write left it
    (or as a later write of the same editor left it; gone, if deleted), a file's row with its
    bytes still in uploads/."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "safety.sqlite"
        subprocess.run(["zstd", "-q", "-d", "-o", str(copy), str(backup / "db" / "database.sqlite.zst")], check=True)
        with sqlite3.connect(copy) as db:
            articles = {row[0]: dict(zip(("title", "body", "image"), row[1:]))
                        for row in db.execute("SELECT id, title, body, image FROM articles")}
            files = dict(db.execute("SELECT id, filename_disk FROM directus_files"))
    missing = []
    for write, why in set_aside:
        if write.kind == "upload":
            disk = uploads / files[write.file] if write.file in files else None
            kept = disk is not None and disk.exists() and sha256(disk.read_bytes()).hexdigest() == write.sha256
        else:
            # this write's state, or a later one of the same article (the editor wrote over it)
            states = [w.values for w in writes if w.item == write.item and w.start >= write.start]
            kept = articles.get(write.item) in states
        if not kept:
            missing.append((write, why + NOT_KEPT))
    return missing


NOT_KEPT = "; not in a safety backup either"


def outage(probe: Probe) -> tuple[float, float] | None:
    """(first, last) epoch seconds of the pings that got no good answer."""
    failed = probe.failures
    if not failed:
        return None
    return probe.started_epoch + failed[0].at, probe.started_epoch + failed[-1].at + failed[-1].seconds


def outside_outage(failures: list, span) -> list:
    """The failed writes that did not end while Directus gave no answer (a margin of 0.5 s)."""
    if not span:
        return list(failures)
    return [w for w in failures if not span[0] - 0.5 <= w.end <= span[1] + 0.5]


def window(span, began: float) -> str:
    return f"{span[0] - began:.1f}-{span[1] - began:.1f}s" if span else "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--editors", type=int, default=4, help="editors writing at once")
    parser.add_argument("--strategies", default="restart,bluegreen", help="which to measure, in order")
    options = parser.parse_args()
    strategies = [s.strip() for s in options.strategies.split(",") if s.strip()]
    work = Path(tempfile.mkdtemp(prefix="content-load-bench-"))
    reuse = os.environ.get("DIRECTUS_DEPLOY_TESTBED")
    bed = TestBed.attach(Path(reuse)) if reuse else TestBed(work / "bed", ("sqlite",)).up()
    nginx = Nginx(work / "nginx").start()
    try:
        results = {strategy: measure(bed, nginx, strategy, work, options.editors) for strategy in strategies}
    finally:
        nginx.stop()
        if not reuse:
            bed.destroy()
    print()
    print(f"{options.editors} editors through nginx, each writing every 100-300 ms, from 1 s before each action to 1 s after")
    print(f"{'strategy':<10} {'action':<19} {'fab s':>8} {'attempted':>9} {'acked':>6} {'failed':>6} {'lost':>5} "
          f"{'set aside':>9} {'longest wait s':>14} {'p50 ms':>7} {'p99 ms':>7}")
    print("-" * 111)
    for strategy, measured in results.items():
        for action, run in measured["runs"].items():
            report: Report = run["report"]
            seconds = f"{run['seconds']:.1f}" + ("" if run["ok"] else " !")
            print(f"{strategy:<10} {action:<19} {seconds:>8} {report.attempted:9d} {report.acknowledged:6d} "
                  f"{report.failed:6d} {len(report.lost):5d} {len(report.set_aside):9d} {report.longest_wait:14.2f} "
                  f"{report.p50_ms:7.0f} {report.p99_ms:7.0f}")
    print("(!: fab failed)")
    for strategy, measured in results.items():
        print()
        for note in measured["notes"]:
            print(f"{strategy}: {note}")
        for action, run in measured["runs"].items():
            report = run["report"]
            print(f"{strategy} {action}: failed writes {window(report.failure_window, run['began'])}, "
                  f"ping got no answer {window(run['outage'], run['began'])} (seconds after fab started); "
                  f"file rows without bytes: {len(report.rows_without_bytes)}")
            if not run["ok"]:
                print(f"    fab failed: {run['error']}")
            if "restored" in run:
                print(f"    restored backup {run['restored']} (taken {run['backup_taken']}); safety backup {run['safety']} "
                      f"{'exists' if run['safety_exists'] else 'MISSING'}")
                if "told" in run:
                    print(f"    said {'before' if run['told_first'] else 'AFTER'} restoring: {run['told']}")
                earlier: Report = run["earlier"]
                print(f"    writes of the earlier actions: {len(earlier.set_aside)} set aside (kept in the safety "
                      f"backup), {len(earlier.lost)} lost")
                for write, why in earlier.lost[:3]:
                    print(f"        lost: {write.kind} by editor {write.editor}: {why}")
            for write, why in report.lost[:5]:
                print(f"    lost: {write.kind} by editor {write.editor} at {write.end - run['began']:.2f}s: {why}")
            for problem in report.rows_without_bytes[:3]:
                print(f"    file row without bytes: {problem}")
            outside = outside_outage(report.failures, run["outage"])
            if outside:
                print(f"    {len(outside)} failed writes outside the outage: "
                      + "; ".join(f"{n}x {kind}: {error}" for (kind, error), n in
                                  Counter((w.kind, w.error[:90]) for w in outside).most_common(4)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
