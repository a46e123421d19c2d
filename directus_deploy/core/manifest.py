"""Backup manifests: what a backup holds, with sizes and sha256, and the file listings behind them.

A listing maps a relative path to (size, mtime, sha256). Files whose size and mtime match the
previous backup's manifest are the ones rsync hard-linked to it; their hash is taken from that
manifest instead of being recomputed, which keeps an unchanged backup nearly free.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

FORMAT = 1
# "config": Directus's system configuration (system_config.py), taken when production keeps
# one in its release (config/system/) or the release about to go live brings one
PARTS = ("db", "files", "extensions", "env", "schema", "config")
# one sha256 over every file of an exported system configuration (paths and contents)
# (NUL-separated: a file name may hold spaces)
CONFIG_DIGEST = "cd {folder} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum -- | sha256sum | cut -c1-64"
# Directus writes these on its own (sessions, activity, health probes): their counts move
# while a backup runs, so they are compared loosely when checking a dump against live counts.
VOLATILE_TABLES = frozenset({
    "directus_activity", "directus_sessions", "directus_revisions", "directus_notifications",
    "directus_oauth_tokens", "directus_oauth_codes", "directus_oauth_consents",
})


def new_backup_id(reason: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    slug = re.sub(r"[^a-z0-9.]+", "-", reason.lower()).strip("-.")[:60] or "manual"
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{slug}"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_at(epoch: float) -> str:
    """An epoch time as utc_now writes it (the second it falls in)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Entry:
    size: int
    mtime: str
    sha256: str | None = None


def parse_listing(blob: str) -> dict[str, Entry]:
    """`find -printf '%P\\0%s\\0%T@\\0'` output -> {path: Entry}."""
    fields = blob.split("\0")
    listing = {}
    for index in range(0, len(fields) - 2, 3):
        path, size, mtime = fields[index:index + 3]
        if path:
            listing[path.lstrip("\n")] = Entry(int(size), mtime)
    return listing


def parse_hashes(blob: str) -> dict[str, str]:
    """`sha256sum -z` output (run with paths starting ./) -> {path: sha256}."""
    hashes = {}
    for record in blob.split("\0"):
        record = record.lstrip("\n")
        if len(record) > 66 and record[64:66] in ("  ", " *"):
            hashes[record[66:].removeprefix("./")] = record[:64]
    return hashes


def listing_to_json(listing: dict[str, Entry]) -> dict:
    return {path: [e.size, e.mtime, e.sha256] for path, e in sorted(listing.items())}


def listing_from_json(data: dict) -> dict[str, Entry]:
    return {path: Entry(size, mtime, digest) for path, (size, mtime, digest) in data.items()}


def fill_hashes(listing: dict[str, Entry], computed: dict[str, str], previous: dict[str, Entry]) -> list[str]:
    """Give every entry its hash: computed for copied files, inherited for unchanged ones.
    Returns the paths still without a hash (to compute in another pass)."""
    missing = []
    for path, entry in listing.items():
        if path in computed:
            entry.sha256 = computed[path]
            continue
        before = previous.get(path)
        if before and before.sha256 and before.size == entry.size and before.mtime == entry.mtime:
            entry.sha256 = before.sha256
        else:
            missing.append(path)
    return missing


def same_listing(live: dict[str, Entry], previous: dict[str, Entry]) -> bool:
    return live.keys() == previous.keys() and all(
        (e.size, e.mtime) == (previous[p].size, previous[p].mtime) for p, e in live.items()
    )


def listing_digest(listing: dict[str, Entry]) -> str:
    """sha256 of `find -printf '%P\\t%s\\t%T@\\0' | LC_ALL=C sort -z`, computed here."""
    import hashlib

    records = sorted(f"{path}\t{entry.size}\t{entry.mtime}".encode() + b"\0" for path, entry in listing.items())
    return hashlib.sha256(b"".join(records)).hexdigest()


def bytes_to_copy(live: dict[str, Entry], previous: dict[str, Entry]) -> int:
    """What an incremental copy will write: new files and files whose size or mtime changed."""
    total = 0
    for path, entry in live.items():
        before = previous.get(path)
        if not before or before.size != entry.size or before.mtime != entry.mtime:
            total += entry.size
    return total


def compare_counts(backup: dict[str, int], before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Problems with a dump's row counts against live counts taken just before and after it."""
    problems = []
    live_tables = set(before) | set(after)
    for table in sorted(live_tables - set(backup)):
        if table in before and table in after:
            problems.append(f"table {table} is missing from the dump")
    for table, count in sorted(backup.items()):
        low = min(before.get(table, count), after.get(table, count))
        high = max(before.get(table, count), after.get(table, count))
        if table in VOLATILE_TABLES:
            continue
        if not low <= count <= high:
            problems.append(f"table {table}: dump has {count} rows, live had {before.get(table)} before and {after.get(table)} after")
    return problems


def file_parts(manifest: dict) -> list[str]:
    """The parts of a backup that are folders of files, as named in the manifest and in the
    backup folder: uploads, extensions, and storage/<location> for each other local location."""
    return [p for p in ("uploads", "extensions") if manifest.get(p)] + sorted(
        k for k in manifest if k.startswith("storage/") and manifest[k])


def summary_of(manifest: dict) -> dict:
    """The small record `backup.list` reads (a manifest can be megabytes)."""
    keys = ("id", "reason", "created_at", "created_by", "release", "for_release", "engine",
            "directus_version", "parts", "totals", "verified", "keep")
    summary = {key: manifest.get(key) for key in keys}
    summary["migration_head"] = (manifest.get("database") or {}).get("migration_head")
    return summary


def dumps(data: dict) -> str:
    # compact: Python's C encoder only runs without indent, and a manifest can hold 100k files
    return json.dumps(data, separators=(",", ":")) + "\n"
