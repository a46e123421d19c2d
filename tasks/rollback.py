"""Go back to an earlier release: code only, or with the database when migrations require it."""

from .base import not_built, task


@task(
    default=True,
    help={
        "to": "tag to go back to (default: the previous good release)",
        "with-db": "also restore the database backup taken before the later release",
        "dry-run": "print the plan; change nothing",
        "yes": "answer prompts with their default (for CI)",
    },
)
def rollback(c, to="", with_db=False, dry_run=False, yes=False):
    """Roll back to an earlier release (code; --with-db for the database too)."""
    not_built("rollback")


@task(name="list")
def list_(c):
    """Show the releases that can be rolled back to."""
    not_built("rollback.list")
