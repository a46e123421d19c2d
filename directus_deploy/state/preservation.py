"""Checking that production still holds everything a backup recorded: every table with its
rows, every upload with its bytes, every marketplace extension.

`exact=True` (after a restore): counts equal, every file hashed again. `exact=False` (after a
release or an adoption, with Directus running): counts at least what they were (minus what the
schema gate allowed to drop), every recorded file present with its size; files whose size or
mtime moved are hashed again and must still have their recorded sha256.
"""

from __future__ import annotations

import posixpath

from directus_deploy.core import manifest as mf
from directus_deploy.engines import engine_for, object_storage, parse_counts, parse_migrations
from directus_deploy.host.remote import q
from directus_deploy.host.script import parse_results, section, split_sections
from directus_deploy.state.production import HEALTH_PROBE_FILE

SKIP_PROBE = f"! -path ./{HEALTH_PROBE_FILE}"


def table_problems(expected: dict[str, int], live: dict[str, int], *, exact: bool,
                   allowed_losses: dict | None = None) -> list[str]:
    """Tables gone or with fewer rows than `expected` (other counts with `exact`), beyond what
    `allowed_losses` permits (None: any loss, the table may even be gone)."""
    allowed_losses = allowed_losses or {}
    problems = []
    for table, count in sorted(expected.items()):
        may_lose = allowed_losses.get(table, 0)
        if may_lose is None:
            continue
        if table not in live:
            problems.append(f"table {table} is gone")
        elif table in mf.VOLATILE_TABLES:
            continue
        elif (live[table] != count) if exact else (live[table] < count - may_lose):
            problems.append(f"{table}: {live[table]} rows, {count} before")
    return problems


def check_preservation(session, production, manifest: dict, *, exact: bool, parts=("db", "files", "extensions"),
                       allowed_losses: dict | None = None, migrations: list | None = None) -> list[tuple[str, str, str]]:
    """(what, OK|FAIL, detail) rows, one round trip. `allowed_losses`: rows a table may lose
    (None: any, the table may even be gone), for deletions the schema gate was allowed to make.
    `migrations`, if a list, receives the Directus migrations the database has applied (read in
    the same round trip)."""
    remote = session.remote()
    engine = engine_for(production) if "db" in parts and manifest.get("database") else None
    lines = []
    if engine:
        lines += [engine.prelude(session.layout.backups), engine.counts()]
        if migrations is not None:
            lines.append(engine.migrations())
    folders = {}  # part -> the live folder it was copied from: uploads, and each other local location
    if "files" in parts:
        if manifest.get("uploads") and production.uploads:
            folders["uploads"] = production.uploads
        for part in mf.file_parts(manifest):
            if part.startswith("storage/") and part.removeprefix("storage/") in production.storages:
                folders[part] = production.storages[part.removeprefix("storage/")]
    buckets = {}  # part -> Bucket, for locations on S3: the backup's copy compared with the bucket
    if "files" in parts:
        backup_folder = session.layout.backup_dir(manifest["id"])
        for part in mf.file_parts(manifest):
            name = part.removeprefix("storage/")
            if part.startswith("storage/") and name in production.buckets:
                buckets[part] = production.buckets[name]
                lines += object_storage.check_lines(production.buckets[name], posixpath.join(backup_folder, part), exact)
    for part, folder in folders.items():
        if exact:
            lines += [section(f"{part}-hashes"),
                      f"cd {q(folder)} && find . -type f {SKIP_PROBE} -print0 | xargs -0 -r sha256sum -z --"]
        else:
            lines += [section(part), f"cd {q(folder)} && find . -type f {SKIP_PROBE} -printf '%P\\0%s\\0%T@\\0'"]
    if "extensions" in parts and manifest.get("extensions"):
        lines += [section("registry"), f"ls -1 {q(production.registry)} 2>/dev/null || true"]
    out = remote.script("\n".join(lines) or "true", what="check what production holds", changes=False,
                        secret_env={**(engine.secret_env() if engine else {}), **production.storage_secret_env()} or None
                        ).stdout
    found, reported = split_sections(out), parse_results(out)
    if migrations is not None:
        migrations.extend(parse_migrations(reported))
    checks = []
    if engine:
        live = parse_counts(reported)
        expected = manifest["database"]["tables"]
        problems = table_problems(expected, live, exact=exact, allowed_losses=allowed_losses)
        checks.append(("database", "OK" if not problems else "FAIL",
                       f"{len(expected)} tables, every row still there" if not problems else "; ".join(problems[:5])))
    for part, folder in folders.items():
        checks.append(_files_check(remote, part, folder, manifest[part]["files"], found))
    differences = {record["location"]: record["differences"] for record in reported.all("bucket")}
    for part, bucket in buckets.items():
        count = differences.get(bucket.location, "?").strip()
        checks.append((part, "OK" if count == "0" else "FAIL",
                       f"{len(manifest[part]['files'])} objects in bucket {bucket.bucket} match the backup by checksum"
                       if count == "0" else f"{count} objects missing or different in bucket {bucket.bucket}"))
    if "registry" in found:
        present = set(found["registry"].split())
        wanted = set(manifest["extensions"].get("registry", []))
        gone = sorted(wanted - present)
        checks.append(("marketplace extensions", "OK" if not gone else "FAIL",
                       f"{len(wanted)} in .registry" if not gone else f"gone: {', '.join(gone)}"))
    return checks


def _files_check(remote, part: str, folder: str, recorded_json: dict, found: dict) -> tuple[str, str, str]:
    """One folder of files against the backup: every file's sha256 (exact), or every file
    present with its size and time, hashing only those that moved."""
    if f"{part}-hashes" in found:
        live_hashes = mf.parse_hashes(found[f"{part}-hashes"])
        expected = {p: v[2] for p, v in recorded_json.items() if p != HEALTH_PROBE_FILE}
        bad = sorted(p for p in set(expected) | set(live_hashes) if expected.get(p) != live_hashes.get(p))
        return (part, "OK" if not bad else "FAIL",
                f"{len(expected)} files with their recorded sha256" if not bad else f"{len(bad)} files differ: {', '.join(bad[:3])}")
    live = mf.parse_listing(found.get(part, ""))
    recorded = mf.listing_from_json(recorded_json)
    missing = sorted(p for p in recorded if p not in live and p != HEALTH_PROBE_FILE)
    moved = [p for p in recorded if p in live and (live[p].size, live[p].mtime) != (recorded[p].size, recorded[p].mtime)]
    changed, updated = [], []
    if moved:  # rare: hash just those again
        rehashed = mf.parse_hashes(remote.script(
            f"cd {q(folder)} && xargs -0 -r sha256sum -z --", stdin="\0".join("./" + p for p in moved),
            what=f"hash changed files of {part}", changes=False).stdout)
        different = [p for p in moved if rehashed.get(p) != recorded[p].sha256]
        # written after the backup listed it (an editor replacing a file, or an upload still
        # arriving while the backup ran): newer bytes, not lost ones
        updated = [p for p in different if float(live[p].mtime) > float(recorded[p].mtime)]
        changed = [p for p in different if p not in updated]
    problems = [f"missing: {', '.join(missing[:3])}"] if missing else []
    problems += [f"changed: {', '.join(changed[:3])}"] if changed else []
    since = f"; {len(updated)} written since the backup" if updated else ""
    return (part, "OK" if not problems else "FAIL",
            f"{len(recorded)} files present with their bytes{since}" if not problems else "; ".join(problems))
