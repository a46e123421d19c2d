"""Custom extensions: build, validate every manifest before the switch, sync, list."""

from .base import not_built, task


@task
def build(c):
    """Build extensions whose entry file is missing and that have a build script."""
    not_built("extensions.build")


@task
def sync(c):
    """Ship changed extensions as a new release cloned from the current one."""
    not_built("extensions.sync")


@task(name="list")
def list_(c):
    """List extensions on disk and as loaded by the running Directus."""
    not_built("extensions.list")


@task
def verify(c):
    """Validate every extension manifest (one bad package.json disables them all)."""
    not_built("extensions.verify")
