"""Backup benchmark: incremental backups of a large production next to a plain full copy.

    .venv/bin/python bench/backup_bench.py [--files 20000] [--size-mb 2048]

Builds the test bed's SQLite production (or reuses DIRECTUS_DEPLOY_TESTBED), fills its uploads
with generated files, then measures in the same run, on the same disk:
  1. the first backup            vs  cp -a of the uploads folder
  2. a second, nothing changed   vs  cp -a
  3. a third after 1 % of files changed  vs  cp -a
Time is the tool's whole backup (database dump and scratch restore, uploads, extensions, .env;
the schema snapshot is left out: it costs the same few seconds whatever the uploads) measured
through Fabric and SSH like a real run. Bytes written are counted on disk (new blocks).
Prints a table with ratios; docs/benchmarks.md keeps the latest figures.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from directus_deploy.flows.backup import take_backup  # noqa: E402
from directus_deploy.flows.session import Session  # noqa: E402
from directus_deploy.runtimes import load_config  # noqa: E402
from testbed.bed import TestBed  # noqa: E402

PARTS = ("db", "files", "extensions", "env")


def disk_used(path: Path) -> int:
    """Bytes of blocks in use on the filesystem holding `path` (what a step really wrote)."""
    stats = os.statvfs(path)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def generate(uploads: Path, count: int, total_mb: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    average = total_mb * (1 << 20) // count
    block = os.urandom(1 << 20)
    for number in range(count):
        size = max(1024, int(average * rng.uniform(0.5, 1.5)))
        offset = rng.randrange(0, (1 << 20) - min(size, 1 << 19))
        data = (block[offset:] + block) * (size // (1 << 20) + 1)
        with open(uploads / f"bench-{number:06d}.bin", "wb") as handle:
            handle.write(data[:size])


def change_one_percent(uploads: Path, seed: int = 11) -> int:
    files = sorted(uploads.glob("bench-*.bin"))
    chosen = random.Random(seed).sample(files, max(1, len(files) // 100))
    for path in chosen:
        with open(path, "r+b") as handle:
            handle.write(os.urandom(4096))
    return len(chosen)


def timed_backup(session_config, reason: str, install: str, scratch: Path) -> tuple[float, int, dict]:
    session = Session(config=session_config)
    try:
        session.console.stream = open(os.devnull, "w")
        os.sync()
        used = disk_used(scratch)
        started = time.monotonic()
        manifest = take_backup(session, reason=reason, parts=PARTS, install=install)
        os.sync()  # until the data is on disk, as for the copy
        seconds = time.monotonic() - started
        return seconds, disk_used(scratch) - used, manifest
    finally:
        session.close()


def timed_copy(source: Path, target: Path) -> tuple[float, int]:
    os.sync()
    used = disk_used(target.parent)
    started = time.monotonic()
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    os.sync()
    seconds = time.monotonic() - started
    return seconds, disk_used(target.parent) - used


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--size-mb", type=int, default=2048)
    args = parser.parse_args()

    reuse = os.environ.get("DIRECTUS_DEPLOY_TESTBED")
    work = Path(tempfile.mkdtemp(prefix="backup-bench-", dir=os.environ.get("BENCH_DIR")))
    bed = TestBed.attach(Path(reuse)) if reuse else TestBed(work / "bed", ("sqlite",)).up()
    production = bed.new_productions(("sqlite",))["sqlite"]
    try:
        uploads = production.folder / "uploads"
        print(f"generating {args.files} files, {args.size_mb} MB in {uploads} ...", flush=True)
        generate(uploads, args.files, args.size_mb)
        env_file = bed.tool_env(production, work / "tool")
        config = load_config({"DEPLOY_ENV_FILE": str(env_file)})
        copies = work / "copies"
        copies.mkdir()
        rows = []
        for label, prepare in (
            ("first backup", lambda: None),
            ("second, nothing changed", lambda: None),
            ("third, 1 % of files changed", lambda: change_one_percent(uploads)),
        ):
            prepare()
            backup_s, backup_bytes, manifest = timed_backup(config, label.split(",")[0].replace(" ", "-"),
                                                            str(production.folder), work)
            copy_s, copy_bytes = timed_copy(uploads, copies / label.split()[0])
            rows.append((label, backup_s, backup_bytes, copy_s, copy_bytes, manifest))
            shutil.rmtree(copies / label.split()[0])

        print()
        print(f"{args.files} files, {args.size_mb} MB of uploads; backup = db + uploads + extensions + .env, over SSH")
        header = (f"{'run':<28} {'backup s':>8} {'files s':>8} {'cp -a s':>8} {'backup/cp':>9} {'files/cp':>8} "
                  f"{'backup MB':>9} {'cp -a MB':>8} {'bytes':>7} {'copied':>6} {'linked':>6}")
        print(header)
        print("-" * len(header))
        for label, backup_s, backup_bytes, copy_s, copy_bytes, manifest in rows:
            uploads_part, files_s = manifest["uploads"], manifest["timings"]["files"]
            print(f"{label:<28} {backup_s:8.2f} {files_s:8.2f} {copy_s:8.2f} {backup_s / copy_s:9.1%} {files_s / copy_s:8.1%} "
                  f"{backup_bytes / 1e6:9.1f} {copy_bytes / 1e6:8.1f} {max(backup_bytes, 0) / copy_bytes:7.2%} "
                  f"{uploads_part['copied']:6d} {uploads_part['linked']:6d}")
        print("backup s: the whole backup through fab's code over SSH (database dump and its scratch restore,")
        print("uploads, extensions, .env, manifest); files s: the uploads+extensions+.env part, timed on the host")
    finally:
        production.destroy()
        if not reuse:
            bed.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
