"""Back up production (database, uploads, extensions, .env, schema), verify, restore, prune."""

from pathlib import Path

from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.flows.backup import take_backup
from directus_deploy.flows.pull import pull_backup
from directus_deploy.flows.restore import parse_parts, restore_backup
from directus_deploy.flows.session import open_session
from directus_deploy.state import lock
from directus_deploy.state.backup_catalog import age, list_backups, verify_backup
from directus_deploy.state.layout import check_id
from directus_deploy.state.retention import delete_backup, prune_backups

from .base import confirm, task

INSTALL_HELP = "an existing Directus install folder on the host, not adopted yet (default: the current release)"
DRY_HELP = "print the plan; change nothing on the host"


def _backup(parts, reason, install, dry_run, title):
    with open_session(dry_run=dry_run) as session:
        with lock.held(session, f"backup ({reason})"):
            manifest = take_backup(session, reason=reason, parts=parts, install=install or None)
        if manifest:
            totals = manifest["totals"]
            facts = [("backup", manifest["id"]), ("parts", ", ".join(manifest["parts"])),
                     ("written", f"{totals['bytes_written'] / (1 << 20):.1f} MiB"),
                     ("round trips", str(session.round_trips))]
            session.console.summary(title, facts)


@task(help={"install": INSTALL_HELP, "reason": "why (shown by backup.list)", "dry-run": DRY_HELP})
def all(c, install="", reason="manual", dry_run=False):
    """Back up everything a release could lose, then verify it by a restore (what release runs)."""
    _backup(("db", "files", "extensions", "env", "schema", "config"), reason, install, dry_run, "Backup complete and verified")


@task(help={"install": INSTALL_HELP, "reason": "why (shown by backup.list)", "dry-run": DRY_HELP})
def db(c, install="", reason="manual-db", dry_run=False):
    """Back up the production database (read from the host's .env) and verify the dump."""
    _backup(("db",), reason, install, dry_run, "Database backup complete and verified")


@task(help={"install": INSTALL_HELP, "reason": "why (shown by backup.list)", "dry-run": DRY_HELP})
def files(c, install="", reason="manual-files", dry_run=False):
    """Back up uploads as an incremental snapshot (hard links only between backups)."""
    _backup(("files",), reason, install, dry_run, "Uploads backup complete")


@task(help={"install": INSTALL_HELP, "reason": "why (shown by backup.list)", "dry-run": DRY_HELP})
def extensions(c, install="", reason="manual-extensions", dry_run=False):
    """Back up extensions, including marketplace installs in extensions/.registry."""
    _backup(("extensions",), reason, install, dry_run, "Extensions backup complete")


@task(name="list")
def list_(c):
    """List backups: id, reason, age, size, verified or not, release they belong to."""
    with open_session() as session:
        backups, incomplete = list_backups(session.remote(), session.layout)
        rows = []
        for b in backups:
            totals = b.get("totals") or {}
            check = b.get("last_check")
            verified = "yes" if b.get("verified") else "no"
            if check:
                verified = f"{'OK' if check.get('ok') else 'FAILED'} {check.get('at', '')}"
            rows.append([b["id"], b.get("reason", ""), age(b.get("created_at")),
                         f"{totals.get('bytes', 0) / (1 << 20):.1f} MiB", f"{totals.get('bytes_written', 0) / (1 << 20):.1f} MiB",
                         verified, b.get("release") or "-", ",".join(b.get("parts") or [])])
        if not rows:
            session.console.say(f"no backups in {session.layout.backups}")
        else:
            session.console.table(["id", "reason", "age", "size", "written", "verified", "release", "parts"], rows)
        for folder in incomplete:
            session.console.say(f"incomplete (not a backup; backup.prune removes it): {folder}")


@task(help={"id": "backup id, as backup.list shows it", "install": INSTALL_HELP})
def verify(c, id="", install=""):
    """Re-check a backup: checksums, and a restore of its dump into a scratch database."""
    backup_id = _required_id(id)
    with open_session() as session:
        with lock.held(session, f"verify backup {backup_id}"):
            with session.console.step(f"verify backup {backup_id}"):
                results = verify_backup(session, backup_id, install=install or None)
        session.console.table(["part", "result", "detail"], [list(r) for r in results])
        if any(r[1] != "OK" for r in results):
            raise DeployError(f"backup {backup_id} FAILED verification; do not rely on it")


@task(help={
    "id": "backup id to restore",
    "only": "comma-separated parts: db,files,extensions,env,config (default: all)",
    "install": INSTALL_HELP,
    "dry-run": DRY_HELP,
    "yes": "do not ask for confirmation (for CI)",
    "to": "the uploads folder to restore into, when the production .env's STORAGE_LOCAL_ROOT no longer names "
          "the one the backup was taken from (storage moved), or the backup does not record it: the "
          "STORAGE_LOCAL_ROOT the .env has now; its content is replaced. Without it such a restore is refused",
})
def restore(c, id="", only="", install="", dry_run=False, yes=False, to=""):
    """Restore a backup, after a safety backup of the current state; uploads only into the folder they came from (or --to)."""
    backup_id = _required_id(id)
    parts = parse_parts(only)
    with open_session(dry_run=dry_run) as session:
        if not dry_run:
            confirm(f"Restore {', '.join(parts)} from backup {backup_id} over production on "
                    f"{session.config.primary_host}? A safety backup is taken first.", yes)
        with lock.held(session, f"restore {backup_id}"):
            outcome = restore_backup(session, backup_id, parts, install=install or None, uploads_to=to or None)
        if not dry_run:
            session.console.summary("Restore complete", [("restored from", backup_id),
                                                         ("safety backup", outcome["safety_backup"])])


@task(help={"id": "backup id to download", "to": "local folder (default ./backups)"})
def pull(c, id="", to="backups"):
    """Download a backup to this machine, with progress; resumes an interrupted download."""
    backup_id = _required_id(id)
    with open_session() as session:
        with session.console.step(f"download backup {backup_id}") as step:
            result = pull_backup(session, backup_id, Path(to))
            step.detail = (f"{result['files']} files, {result['bytes'] / (1 << 20):.1f} MiB "
                           f"({result['skipped']} already here, {result['resumed']} resumed)")
        session.console.say(f"backup in {result['folder']}")


@task(help={"dry-run": "list what would be deleted; delete nothing"})
def prune(c, dry_run=False):
    """Delete old backups beyond KEEP_BACKUPS, never one a kept release needs."""
    with open_session(dry_run=dry_run) as session:
        with lock.held(session, "prune backups"):
            with session.console.step(f"prune backups (keep {session.config.keep_backups})") as step:
                removed = prune_backups(session, session.config.keep_backups)
                step.detail = f"{'would delete' if dry_run else 'deleted'} {len(removed)}: {', '.join(removed) or 'none'}"


@task(help={"id": "backup id to delete, as backup.list shows it", "dry-run": "show what would be deleted",
            "yes": "do not ask for confirmation (for CI)"})
def delete(c, id="", dry_run=False, yes=False):
    """Delete one backup, a safety backup too (never one a kept release's rollback needs)."""
    backup_id = _required_id(id)
    with open_session(dry_run=dry_run) as session:
        with lock.held(session, f"delete backup {backup_id}"):
            if not dry_run:
                confirm(f"Delete backup {backup_id} for good?", yes)
            with session.console.step(f"delete backup {backup_id}") as step:
                delete_backup(session, backup_id)
                step.detail = "would delete it" if dry_run else "deleted"


def _required_id(value: str) -> str:
    if not value:
        raise Refused("--id is required (fab backup.list shows the ids)")
    return check_id("backup", value)
