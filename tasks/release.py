"""The whole release: guards, lock, verified backup, code, extensions, schema, switch, verify."""

from .base import not_built, task


@task(
    help={
        "tag": "git tag to release (default: the newest tag)",
        "dry-run": "print the plan; change nothing, upload nothing",
        "yes": "answer prompts with their default (for CI)",
        "allow-destructive": "let the schema apply drop collections, fields or relations",
    }
)
def release(c, tag="", dry_run=False, yes=False, allow_destructive=False):
    """Release a tag to production: backup, deploy, migrate, switch, verify, record."""
    not_built("release")
