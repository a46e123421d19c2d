"""Back up production (database, uploads, extensions, .env, schema), verify, restore, prune."""

from .base import not_built, task


@task
def all(c):
    """Back up everything a release could lose, then verify it by a restore (what release runs)."""
    not_built("backup.all")


@task
def db(c):
    """Back up the production database (read from the host's .env) and verify the dump."""
    not_built("backup.db")


@task
def files(c):
    """Back up uploads as an incremental snapshot (hard links only between backups)."""
    not_built("backup.files")


@task
def extensions(c):
    """Back up extensions, including marketplace installs in extensions/.registry."""
    not_built("backup.extensions")


@task(name="list")
def list_(c):
    """List backups: id, reason, age, size, verified or not, release they belong to."""
    not_built("backup.list")


@task(help={"id": "backup id, as backup.list shows it"})
def verify(c, id=""):
    """Re-check a backup: checksums, and a restore of its dump into a scratch database."""
    not_built("backup.verify")


@task(help={"id": "backup id", "only": "comma-separated parts: db,files,extensions,env"})
def restore(c, id="", only=""):
    """Restore a backup, after a safety backup of the current state."""
    not_built("backup.restore")


@task(help={"id": "backup id"})
def pull(c, id=""):
    """Download a backup to this machine, with progress; resumes an interrupted download."""
    not_built("backup.pull")


@task
def prune(c):
    """Delete old backups beyond KEEP_BACKUPS, never one a kept release needs."""
    not_built("backup.prune")
