"""Releases on the host: set up, adopt an install, upload code, migrate, switch, clean up."""

from .base import not_built, task


@task
def setup(c):
    """Prepare a new host: the folder layout and the production .env (0600)."""
    not_built("deploy.setup")


@task(help={"from": "folder of the Directus install running today"})
def adopt(c, from_=""):
    """Take an existing Directus install into the layout, after a verified backup."""
    not_built("deploy.adopt")


@task(help={"tag": "git tag to deploy"})
def code(c, tag=""):
    """Upload a tag's code as a new release and link shared state and dependencies."""
    not_built("deploy.code")


@task
def migrate(c):
    """Check the schema plan (refusing deletions), run migrations, apply the snapshot."""
    not_built("deploy.migrate")


@task
def switch(c):
    """Switch current to the new release atomically, restart, and pass the health gate."""
    not_built("deploy.switch")


@task
def releases(c):
    """List releases, marking the current and the last good one."""
    not_built("deploy.releases")


@task
def cleanup(c):
    """Delete old releases beyond KEEP_RELEASES and unused dependency stores."""
    not_built("deploy.cleanup")


@task(help={"force": "break the lock after showing who holds it"})
def unlock(c, force=False):
    """Show the deploy lock's owner; --force breaks a stale lock."""
    not_built("deploy.unlock")


@task
def log(c):
    """Show the deploy log: who released what, when, and how it went."""
    not_built("deploy.log")
