"""Restoring a backup over production, never without a safety backup of what it replaces.

Order: check the backup, take a verified safety backup of the current state, stop Directus,
put back the chosen parts (database, uploads, marketplace extensions, .env), start Directus,
pass the health gate, and check that production now holds exactly what the backup holds.
"""

from __future__ import annotations

import posixpath

from . import manifest as mf
from .backup import take_backup
from .backup_catalog import read_manifest
from .engines import engine_for
from .errors import DeployError, Refused
from .preservation import check_preservation
from .production import HEALTH_PROBE_FILE, locate
from .remote import q
from .service import Service

RESTORABLE = ("db", "files", "extensions", "env")


def parse_parts(only: str) -> tuple[str, ...]:
    if not only:
        return RESTORABLE
    parts = tuple(p.strip() for p in only.split(",") if p.strip())
    unknown = [p for p in parts if p not in RESTORABLE]
    if unknown:
        raise Refused(f"--only: unknown part(s) {', '.join(unknown)}; choose from {','.join(RESTORABLE)}")
    return parts


def restore_backup(session, backup_id: str, parts=RESTORABLE, install: str | None = None,
                   start_release: str | None = None) -> dict:
    """Returns {"safety_backup": id, "checks": [...]}. The caller holds the deploy lock.
    `start_release`: switch `current` to that release while Directus is stopped, and start it
    (a database rollback goes with the code that matches it)."""
    remote, layout, console = session.remote(), session.layout, session.console
    service = Service(session.config)
    with console.step(f"check backup {backup_id}") as step:
        manifest = read_manifest(remote, layout, backup_id)
        production = locate(remote, layout, install)
        available = {"db": "database", "files": "uploads", "extensions": "extensions", "env": "env"}
        parts = tuple(p for p in parts if manifest.get(available[p]))
        if not parts:
            raise Refused(f"backup {backup_id} holds none of the parts asked for")
        engine = engine_for(production) if "db" in parts else None
        if engine and engine.name != manifest["database"]["engine"]:
            raise Refused(f"backup {backup_id} is a {manifest['database']['engine']} dump; production uses {engine.name}")
        if "files" in parts and not production.uploads:
            raise Refused("production has no local uploads folder to restore files into")
        step.detail = f"restoring {', '.join(parts)} from {manifest['created_at']} ({manifest['reason']})"

    if session.dry_run:
        console.say(f"    would take a safety backup, stop Directus, restore {', '.join(parts)}, start and verify")
        return {"safety_backup": None, "checks": []}

    safety_parts = mf.PARTS
    if engine and engine.name == "sqlite" and not remote.exists(engine.file):
        # a database file that is gone holds nothing to lose; everything else is still saved
        console.say(f"    {engine.file} is missing: the safety backup covers everything but the database")
        safety_parts = tuple(p for p in mf.PARTS if p != "db")
    safety = take_backup(session, reason=f"pre-restore-{backup_id[:16]}", parts=safety_parts, install=install)
    console.say(f"    safety backup {safety['id']} holds the state being replaced")

    folder = layout.backup_dir(backup_id)
    work = posixpath.join(layout.backups, f".tmp-restore-{backup_id}")
    stop = service.stop() if ({"db", "env"} & set(parts)) else None
    lines = [f"mkdir -p -m 0700 {q(work)}"]
    if engine:
        lines.append(engine.prelude(work, must_exist=False))
    if stop:
        lines.append(stop)
    if "db" in parts:
        lines.append(engine.restore(posixpath.join(folder, manifest["database"]["file"]), work))
    if "files" in parts:
        # copies, never links: a restored upload must not share an inode with the backup
        lines.append(f"rsync -a --delete --checksum --chmod=D0755,F0644 --exclude=/{HEALTH_PROBE_FILE} -- "
                     f"{q(folder + '/uploads/')} {q(production.uploads + '/')}")
    if "extensions" in parts:
        registry_backup = folder + "/extensions/.registry/"
        if production.in_layout and production.registry:
            # project extensions come with the release's code; the marketplace ones are state
            lines.append(f"[ -d {q(registry_backup)} ] && rsync -a --delete --checksum --chmod=D0755,F0644 -- "
                         f"{q(registry_backup)} {q(production.registry + '/')} || true")
        else:
            lines.append(f"rsync -a --delete --checksum --chmod=D0755,F0644 -- {q(folder + '/extensions/')} "
                         f"{q(production.extensions + '/')}")
    if "env" in parts:
        lines.append(f"install -m 0600 -- {q(folder + '/env')} {q(production.env_file + '.restoring')} && "
                     f"mv -f -- {q(production.env_file + '.restoring')} {q(production.env_file)}")
    lines.append(f"rm -rf -- {q(work)}")
    with console.step(f"restore {', '.join(parts)}" + (" (Directus stopped)" if stop else "")):
        try:
            remote.script("\n".join(lines), what="restore", secret_env=engine.secret_env() if engine else None)
        except BaseException:
            console.say(f"    restore did not complete; the state before it is in backup {safety['id']}: "
                        f"fab backup.restore --id={safety['id']}")
            raise
    with console.step("start Directus and pass the health gate") as step:
        start_in = production.root
        if start_release:
            remote.switch_symlink(layout.current, posixpath.join("releases", start_release))
            start_in = layout.release_dir(start_release)
        remote.script(service.start(start_in), what="start Directus")
        report = service.health_gate(remote, expected_extensions(manifest))
        step.detail = f"healthy after {report['seconds']:.1f}s"
    with console.step("check production against the backup") as step:
        checks = check_preservation(session, production, manifest, exact=True, parts=parts)
        failed = [c for c in checks if c[1] != "OK"]
        step.detail = "; ".join(f"{c[0]} {c[1]}" for c in checks)
        if failed:
            raise DeployError(f"restore check failed: {failed[0][0]}: {failed[0][2]}; "
                              f"the state before the restore is in backup {safety['id']}")
    return {"safety_backup": safety["id"], "checks": checks}


def expected_extensions(manifest: dict) -> list[str]:
    """Names of the extensions the backup held (package.json names), for the health gate."""
    return list((manifest.get("extensions") or {}).get("names", []))
