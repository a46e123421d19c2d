"""Restoring a backup over production, never without a safety backup of what it replaces.

Order: check the backup, stop Directus (when the database or .env goes back: nothing may write
between the safety backup and the restore), take a verified safety backup of the current state,
put back the chosen parts (database, uploads, marketplace extensions, .env), start Directus,
pass the health gate, and check that production now holds exactly what the backup holds. The
system configuration goes back through Directus's API while it runs (mirror mode).
"""

from __future__ import annotations

import posixpath

from directus_deploy.core import manifest as mf
from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.engines import engine_for, object_storage, parse_counts
from directus_deploy.flows import system_config
from directus_deploy.flows.adoption_plan import plan_adoption
from directus_deploy.flows.backup import take_backup
from directus_deploy.host.remote import q
from directus_deploy.state.backup_catalog import read_manifest
from directus_deploy.state.layout import check_id
from directus_deploy.state.lock import serial_lock
from directus_deploy.state.preservation import check_preservation, table_problems
from directus_deploy.state.production import HEALTH_PROBE_FILE, locate, storage_root
from directus_deploy.state.releases import point_current

RESTORABLE = ("db", "files", "extensions", "env", "config")
RESTORED = "restored"  # the label of the row counts read from the restored database, Directus stopped


def stops_directus(parts) -> bool:
    """Whether restoring `parts` needs Directus stopped (from before the safety backup to the start)."""
    return bool({"db", "env"} & set(parts))


def parse_parts(only: str) -> tuple[str, ...]:
    if not only:
        return RESTORABLE
    parts = tuple(p.strip() for p in only.split(",") if p.strip())
    unknown = [p for p in parts if p not in RESTORABLE]
    if unknown:
        raise Refused(f"--only: unknown part(s) {', '.join(unknown)}; choose from {','.join(RESTORABLE)}")
    return parts


def uploads_taken_from(manifest: dict, in_layout: bool) -> str | None:
    """The STORAGE_LOCAL_ROOT a backup's uploads were taken with, normalized, as it reads in the
    layout when the backup was taken before adoption; None when the backup cannot tell.
    Backups made before the manifest recorded it are read from the folder they name
    (`source`, under `production_root` for a relative setting)."""
    uploads, base = manifest.get("uploads") or {}, str(manifest.get("production_root") or "")
    root = uploads.get("storage_root")
    if not root and uploads.get("source") and base.startswith("/"):
        source = str(uploads["source"])
        root = posixpath.relpath(source, base) if source.startswith(base.rstrip("/") + "/") else source
    if not root:
        return None
    if in_layout and not manifest.get("release") and base.startswith("/"):
        # taken from the install before adoption, which made a path into the install relative
        root = next((r.new for r in plan_adoption(base, {"STORAGE_LOCAL_ROOT": root}).rewrites), root)
    return posixpath.normpath(root)


def check_uploads_target(manifest: dict, production, backup_id: str, to: str | None) -> None:
    """Uploads go back only where they were taken from: when the production .env's
    STORAGE_LOCAL_ROOT names another folder now (storage moved), or the backup cannot say, only
    with --to naming that folder (a restore replaces its whole content)."""
    now = storage_root(production.env)
    if to:
        if posixpath.normpath(to) not in (now, production.uploads):
            raise Refused(f"--to={to} is not where production keeps uploads now: its .env says STORAGE_LOCAL_ROOT={now} "
                          f"({production.uploads}); pass --to={now} to restore the uploads there")
        return
    then = uploads_taken_from(manifest, production.in_layout)
    if then is None:
        raise Refused(f"backup {backup_id} does not say which STORAGE_LOCAL_ROOT its uploads were taken from; "
                      f"to replace the uploads in {production.uploads} with them, pass --to={now}")
    if then != now:
        raise Refused(f"backup {backup_id} holds uploads taken from STORAGE_LOCAL_ROOT={then}, but the production .env "
                      f"now says STORAGE_LOCAL_ROOT={now}: to replace the uploads there with them, pass --to={now}")


def restore_backup(session, backup_id: str, parts=RESTORABLE, install: str | None = None,
                   start_release: str | None = None, uploads_to: str | None = None) -> dict:
    """Returns {"safety_backup": id, "checks": [...]}. The caller holds the deploy lock.
    `start_release`: switch `current` to that release while Directus is stopped, and start it
    (a database rollback goes with the code that matches it). `uploads_to`: --to, the uploads
    folder when it is not where the backup took them from."""
    remote, layout, console = session.remote(), session.layout, session.console
    with console.step(f"check backup {backup_id}") as step:
        manifest = read_manifest(remote, layout, backup_id)
        production = locate(remote, layout, install)
        available = {"db": "database", "files": "uploads", "extensions": "extensions", "env": "env", "config": "config"}
        holds = {p: bool(manifest.get(available[p])) for p in parts}
        if "files" in holds:  # uploads, and any other storage location (a folder or a bucket)
            holds["files"] = any(part != "extensions" for part in mf.file_parts(manifest))
        if holds.get("env") and production.in_layout and not manifest.get("release"):
            # taken from the install before adoption: its settings name paths (./data.db, a YAML
            # file...) that the layout replaced; shared/.env holds them as releases need them
            if parts == ("env",):
                raise Refused(f"backup {backup_id} was taken before adoption: its .env is the install's, with paths "
                              "the layout replaced; edit shared/.env (fab config.push) instead")
            holds["env"] = False
            console.say("    .env not restored: this backup was taken before adoption, its paths are the install's")
        parts = tuple(p for p in parts if holds[p])
        if not parts:
            raise Refused(f"backup {backup_id} holds none of the parts asked for")
        engine = engine_for(production) if "db" in parts else None
        if engine and engine.name != manifest["database"]["engine"]:
            raise Refused(f"backup {backup_id} is a {manifest['database']['engine']} dump; production uses {engine.name}")
        if "files" in parts and not production.has_files:
            raise Refused("production has no uploads folder or bucket to restore files into")
        if "files" in parts and production.uploads and manifest.get("uploads"):
            check_uploads_target(manifest, production, backup_id, uploads_to)
        elif uploads_to:
            raise Refused(f"--to names where uploads go, and this restore writes none (backup {backup_id} holds no "
                          "uploads, production keeps none in a folder, or --only leaves files out)")
        step.detail = f"restoring {', '.join(parts)} from {manifest['created_at']} ({manifest['reason']})"

    if session.dry_run:
        console.say(f"    would take a safety backup, stop Directus, restore {', '.join(parts)}, start and verify")
        return {"safety_backup": None, "checks": []}

    safety_parts = mf.PARTS
    if engine and engine.name == "sqlite" and not remote.exists(engine.file):
        # a database file that is gone holds nothing to lose; everything else is still saved
        console.say(f"    {engine.file} is missing: the safety backup covers everything but the database")
        safety_parts = tuple(p for p in mf.PARTS if p != "db")
    stop = session.service.stop() if stops_directus(parts) else None
    if stop:
        # before the safety backup: a write between the two would be in neither
        with console.step("stop Directus: nothing writes from the safety backup to the restore"):
            remote.script(stop, what="stop Directus")
        # the schema snapshot and the configuration export go through Directus (its API, or a CLI
        # started beside a stopped service): the database dump holds both
        safety_parts = tuple(p for p in safety_parts if p not in ("schema", "config"))
    try:
        safety = take_backup(session, reason=f"pre-restore-{backup_id[:16]}", parts=safety_parts, install=install,
                             keep=f"the state before restoring {backup_id}")
    except BaseException:
        if stop:  # nothing was restored: production as it was, served again
            remote.script(session.service.start(production.root) + " || true", what="start Directus again",
                          check=False)
        raise
    console.say(f"    safety backup {safety['id']} holds the state being replaced")

    folder = layout.backup_dir(backup_id)
    checks = []
    state_parts = tuple(p for p in parts if p != "config")
    if state_parts:
        checks = _restore_state(session, manifest, folder, production, engine, state_parts, start_release, safety)
    if "config" in parts and "db" not in parts:  # a restored database holds its configuration already
        with console.step("put the system configuration back (mirror: what the backup holds, nothing else)") as step:
            outcome = system_config.apply(session, folder + "/config", "mirror")
            step.detail = system_config.plan_text(outcome["plan"])
            checks.append(("system configuration", "OK", "pushed from the backup"))
    return {"safety_backup": safety["id"], "checks": checks}


def _restore_state(session, manifest, folder, production, engine, parts, start_release, safety) -> list:
    """Database, uploads, marketplace extensions, .env: Directus stopped around them (one
    script that runs to its end), started again, gated, and checked against the backup."""
    remote, layout, console, service = session.remote(), session.layout, session.console, session.service
    work = posixpath.join(layout.backups, f".tmp-restore-{check_id('backup', manifest['id'])}")  # the folder's own id (read_manifest)
    # stopped since before the safety backup; said again in the script that runs to its end
    stop = service.stop() if stops_directus(parts) else None
    lines = [f"mkdir -p -m 0700 {q(work)}"]
    if engine:
        lines.append(engine.prelude(work, must_exist=False))
    if stop:
        lines.append(stop)
    if "db" in parts:
        lines.append(engine.restore(posixpath.join(folder, manifest["database"]["file"]), work))
        # counted before Directus starts: once it serves, users write and exact counts move
        lines.append(engine.counts(RESTORED))
    if "files" in parts and production.uploads and manifest.get("uploads"):
        # copies, never links: a restored upload must not share an inode with the backup
        lines.append(f"rsync -a --delete --checksum --chmod=D0755,F0644 --exclude=/{HEALTH_PROBE_FILE} -- "
                     f"{q(folder + '/uploads/')} {q(production.uploads + '/')}")
    if "files" in parts:
        for part in mf.file_parts(manifest):
            name = part.removeprefix("storage/")
            if part.startswith("storage/") and name in production.buckets:
                lines += object_storage.restore_lines(production.buckets[name], folder + "/" + part + "/")
            if part.startswith("storage/") and name in production.storages:
                lines.append(f"mkdir -p {q(production.storages[name])} && rsync -a --delete --checksum "
                             f"--chmod=D0755,F0644 --exclude=/{HEALTH_PROBE_FILE} -- "
                             f"{q(folder + '/' + part + '/')} {q(production.storages[name] + '/')}")
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
    start_in = production.root
    if start_release:  # a database rollback goes live with the code that matches it
        start_in = layout.release_dir(start_release)
        lines.append(point_current(layout, start_release))
    # One script that runs to its end even if this side goes away: whatever happened to the
    # restore, Directus is started again (on the restored state, or on the untouched one).
    script = "\n".join([
        serial_lock(layout),
        "rc=0; {",
        *lines,
        "} || rc=$?",
        service.start(start_in) + " || true",
        "echo",
        f"{service.health_check(expected_extensions(manifest))} || true",
        "exit $rc",
    ])
    with console.step(f"restore {', '.join(parts)}" + (" (Directus stopped)" if stop else "") + ", start Directus") as step:
        secrets = {**(engine.secret_env() if engine else {}), **service.secret_env, **production.storage_secret_env()}
        result = remote.script(script, what="restore", secret_env=secrets, critical=True, check=False)
        if not result.ok:
            raise DeployError(f"{remote.name}: restore failed ({remote.error_line(result)}); Directus was started "
                              f"again; the state before the restore is in backup {safety['id']}")
        report = service.health_report(remote, result)
        step.detail = f"healthy after {report['seconds']:.1f}s"
    if "db" in parts:
        service.clear_cache(session)
    with console.step("check production against the backup") as step:
        checks = check_preservation(session, production, manifest, exact=True, parts=tuple(p for p in parts if p != "db"))
        if "db" in parts:
            expected = manifest["database"]["tables"]
            problems = table_problems(expected, parse_counts(result.stdout, RESTORED), exact=True)
            checks.insert(0, ("database", "FAIL" if problems else "OK", "; ".join(problems[:5]) if problems else
                              f"{len(expected)} tables, every row as the backup holds it (counted before the start)"))
        failed = [c for c in checks if c[1] != "OK"]
        step.detail = "; ".join(f"{c[0]} {c[1]}" for c in checks)
        if failed:
            raise DeployError(f"restore check failed: {failed[0][0]}: {failed[0][2]}; "
                              f"the state before the restore is in backup {safety['id']}")
    return checks


def expected_extensions(manifest: dict) -> list[str]:
    """Names of the extensions the backup held (package.json names), for the health gate."""
    return list((manifest.get("extensions") or {}).get("names", []))
