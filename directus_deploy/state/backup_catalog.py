"""The backups on a host: listing, reading, re-verifying and pruning them."""

from __future__ import annotations

import json
import posixpath
from datetime import datetime, timezone

from directus_deploy.core import manifest as mf
from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.engines import engine_for, parse_counts
from directus_deploy.host.remote import q
from directus_deploy.host.script import (
    EMIT_FUNCTION,
    emit,
    json_object,
    parse_results,
    section,
    split_sections,
    with_emit,
)
from directus_deploy.state.layout import check_id
from directus_deploy.state.production import locate


def list_backups(remote, layout) -> tuple[list[dict], list[str]]:
    """Complete backups (their summaries, newest first) and leftover incomplete folders.
    A summary's `uploads_in` names the backup whose uploads folder it shares, if any."""
    return parse_backups(remote.query(backups_script(layout), what="list backups").stdout)


def backups_script(layout) -> str:
    return with_emit(
        f"cd {q(layout.backups)} 2>/dev/null || exit 0; "
        "for d in $(ls -1r); do "
        "  if [ -f \"$d/summary.json\" ]; then "
        + emit("backup", id='"$d"', summary='"$(cat -- "$d/summary.json")"',
               shares='"$(readlink -- "$d/uploads" 2>/dev/null)"',
               verified='"$(tail -n 1 -- "$d/verifications.jsonl" 2>/dev/null)"') + "; "
        # a folder without its summary is no backup: a deletion was interrupted halfway
        "  elif [ -d \"$d\" ]; then " + emit("incomplete", id='"$d"') + "; fi; "
        "done; for d in .tmp-*; do if [ -d \"$d\" ]; then " + emit("incomplete", id='"$d"') + "; fi; done; true"
    )


def parse_backups(out: str) -> tuple[list[dict], list[str]]:
    backups, incomplete = [], []
    for record in parse_results(out).records:
        if record["kind"] == "incomplete":
            incomplete.append(record["id"])
        elif record["kind"] == "backup":
            summary = json_object(record["summary"])
            if summary is None:
                continue  # a summary cut short (a full disk): no backup
            summary["id"] = record["id"]
            shares = record["shares"]
            summary["uploads_in"] = (shares.split("/")[1] if shares.startswith("../") else shares) or None
            last_check = json_object(record["verified"])
            if last_check is not None:
                summary["last_check"] = last_check
            backups.append(summary)
    return backups, incomplete


def read_manifest(remote, layout, backup_id: str) -> dict:
    check_id("backup", backup_id)
    path = posixpath.join(layout.backup_dir(backup_id), "manifest.json")
    text = remote.read_file(path, missing_ok=True)
    if text is None:
        raise Refused(f"{remote.name}: no backup {backup_id} in {layout.backups} (fab backup.list shows them)")
    try:
        manifest = json.loads(text)
    except ValueError:
        raise DeployError(f"{remote.name}: {path} is damaged (not JSON)") from None
    if not isinstance(manifest, dict) or manifest.get("id") != backup_id:
        # the id names folders on the host and here: only the folder's own, checked, is used
        raise Refused(f"{remote.name}: {path} names another backup ({str(manifest.get('id') if isinstance(manifest, dict) else '?')[:80]!r}): "
                      "damaged or edited; nothing was done")
    return manifest


def age(created_at: str | None) -> str:
    if not created_at:
        return "?"
    try:
        then = datetime.strptime(created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "?"
    seconds = (datetime.now(timezone.utc) - then).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def verify_backup(session, backup_id: str, install: str | None = None) -> list[tuple[str, str, str]]:
    """Check a backup completely: every checksum recomputed, the dump restored into a scratch
    database with row counts equal to the manifest's. Returns (part, OK|FAIL, detail) rows."""
    remote, layout = session.remote(), session.layout
    manifest = read_manifest(remote, layout, backup_id)
    folder = layout.backup_dir(backup_id)
    results: list[tuple[str, str, str]] = []
    engine = None
    lines = [EMIT_FUNCTION]
    if manifest.get("database"):
        production = locate(remote, layout, install)
        engine = engine_for(production)
        if engine.name != manifest["database"]["engine"]:
            raise Refused(f"backup {backup_id} is a {manifest['database']['engine']} dump; production uses {engine.name}")
        dump = posixpath.join(folder, manifest["database"]["file"])
        work = posixpath.join(layout.backups, f".tmp-verify-{backup_id}")
        lines += [
            section("db"),
            f"mkdir -p -m 0700 {q(work)}",
            engine.prelude(work),
            emit("dump", sha256=f'"$(sha256sum -- {q(dump)} | cut -c1-64)"'),
            f"rc=0; {{ {engine.scratch_restore_counts(dump, work, 'scratch')}; }} || rc=$?; rm -rf -- {q(work)}; "
            "[ $rc = 0 ] || " + emit("scratch-failed"),
        ]
    lines.append(section("files"))
    for part in mf.file_parts(manifest):  # `cd` follows an uploads folder shared with an older backup
        if part in manifest:
            lines.append(f"(cd {q(folder + '/' + part)} && find . -type f -print0 | xargs -0 -r sha256sum -z -- "
                         f"| sed -z 's|^\\([0-9a-f]*  \\)[.]/|\\1./{part}/|')")
    lines.append(f"cd {q(folder)} && sha256sum -z -- ./env ./schema.yaml 2>/dev/null || true")
    if manifest.get("config"):
        lines.append("echo; " + emit("config", sha256=f'"$({mf.CONFIG_DIGEST.format(folder=q(folder + "/config"))})"'))
    out = remote.script("\n".join(lines), what="verify the backup",
                        secret_env=engine.secret_env() if engine else None).stdout
    reported = parse_results(out)
    if engine:
        db = manifest["database"]
        dump_hash = (reported.first("dump") or {}).get("sha256", "")
        results.append(("db checksum", *_verdict(dump_hash == db["sha256"], "dump matches its sha256", "dump differs from its sha256")))
        counts = parse_counts(out, "scratch")
        if reported.has("scratch-failed") or not counts:
            results.append(("db restore", "FAIL", "the dump does not restore into a scratch database"))
        else:
            differ = sorted(t for t in set(counts) | set(db["tables"]) if counts.get(t) != db["tables"].get(t))
            results.append(("db restore", *_verdict(not differ, f"{len(counts)} tables, row counts match the manifest",
                                                     "row counts differ: " + ", ".join(differ[:5]))))
    hashes = mf.parse_hashes(split_sections(out).get("files", ""))
    for part in mf.file_parts(manifest):
        expected = {f"{part}/{p}": v[2] for p, v in manifest[part]["files"].items()}
        found = {p: h for p, h in hashes.items() if p.startswith(part + "/")}
        bad = sorted(p for p in expected if found.get(p) != expected[p])
        results.append((part, *_verdict(not bad, f"{len(expected)} files match their sha256",
                                         f"{len(bad)} of {len(expected)} files missing or changed: {', '.join(bad[:3])}")))
    for part, name in (("env", "env"), ("schema", "schema.yaml")):
        if part in manifest:
            ok = hashes.get(name) == manifest[part]["sha256"]
            results.append((part, *_verdict(ok, "matches its sha256", "missing or changed")))
    if manifest.get("config"):
        digest = (reported.first("config") or {}).get("sha256", "")
        results.append(("system configuration", *_verdict(digest == manifest["config"]["sha256"],
                                                          f"{manifest['config']['files']} files match their sha256",
                                                          "missing or changed")))
    record = {"at": mf.utc_now(), "ok": all(r[1] == "OK" for r in results), "parts": {r[0]: r[1] for r in results}}
    remote.run(f"umask 077 && cat >> {q(posixpath.join(folder, 'verifications.jsonl'))}",
               stdin=json.dumps(record) + "\n", what="record the verification")
    return results


def _verdict(ok: bool, good: str, bad: str) -> tuple[str, str]:
    return ("OK", good) if ok else ("FAIL", bad)


def protected_backups(backups: list[dict], entries: list[dict], kept_releases: set[str]) -> dict[str, str]:
    """Backups that must survive pruning, with the reason: the newest one, and each backup
    taken right before a release that is still kept (its database rollback needs it)."""
    keep = {}
    if backups:
        keep[backups[0]["id"]] = "newest"
    for summary in backups:
        if summary.get("keep"):  # a safety backup: only an explicit backup.delete removes it
            keep[summary["id"]] = f"safety backup of {summary['keep']} (fab backup.delete --id={summary['id']} removes it)"
    for entry in entries:
        backup_id, release = entry.get("backup"), entry.get("release")
        if backup_id and release in kept_releases:
            keep.setdefault(backup_id, f"database rollback of release {release}")
    return keep


def prune_plan(backups: list[dict], entries: list[dict], kept_releases: set[str], keep_count: int, say) -> list[str]:
    """The backups to delete: beyond the `keep_count` newest, unless a kept release needs them."""
    protected = protected_backups(backups, entries, kept_releases)
    doomed = []
    for position, summary in enumerate(backups):
        if position < keep_count:
            continue
        if summary["id"] in protected:
            say(f"    keeping {summary['id']}: {protected[summary['id']]}")
            continue
        doomed.append(summary["id"])
    return doomed


def prune_lines(layout, backups: list[dict], doomed: list[str], incomplete: list[str]) -> list[str]:
    """Shell deleting backups so that an interruption at any point leaves no broken backup
    that looks good: each first loses its summary (it stops being listed as a backup), then
    hands a shared uploads folder over, then is renamed out of the way and removed."""
    if not doomed and not incomplete:
        return []
    lines = [f"rm -f -- {q(layout.backup_dir(b) + '/summary.json')}" for b in doomed]
    lines += hand_over_shared_uploads(layout, backups, set(doomed))
    for name in doomed + incomplete:
        folder = posixpath.join(layout.backups, name)
        gone = posixpath.join(layout.backups, ".tmp-deleting-" + name.lstrip("."))
        lines.append(f"mv -T -- {q(folder)} {q(gone)} && rm -rf -- {q(gone)}")
    return lines


def hand_over_shared_uploads(layout, backups: list[dict], doomed: set[str]) -> list[str]:
    """Shell that keeps uploads folders other backups still share: before a backup is deleted,
    its uploads folder is moved (a rename, nothing copied) into the oldest kept backup that
    shares it, and the other sharers are pointed there."""
    lines = []
    for owner in sorted(doomed):
        heirs = sorted(b["id"] for b in backups if b.get("uploads_in") == owner and b["id"] not in doomed)
        if not heirs:
            continue
        heir, others = heirs[0], heirs[1:]
        lines.append(f"rm -- {q(layout.backup_dir(heir) + '/uploads')} && "
                     f"mv -T -- {q(layout.backup_dir(owner) + '/uploads')} {q(layout.backup_dir(heir) + '/uploads')}")
        for other in others:
            link = layout.backup_dir(other) + "/uploads"
            lines.append(f"ln -s -- {q('../' + heir + '/uploads')} {q(link + '.new')} && mv -T -- {q(link + '.new')} {q(link)}")
    return lines
