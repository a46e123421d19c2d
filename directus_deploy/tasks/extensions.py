"""Custom extensions: build, validate every manifest before the switch, sync, list."""

import tempfile
from pathlib import Path

from directus_deploy.core.errors import Refused
from directus_deploy.core.source import Source
from directus_deploy.flows import steps
from directus_deploy.flows.extensions_sync import loaded_extensions, sync_extensions
from directus_deploy.flows.session import open_session
from directus_deploy.flows.switch import current_release
from directus_deploy.state import lock
from directus_deploy.state.releases import prepare_code

from .base import task


@task(help={"tag": "tag whose extensions to build (default: the newest tag)"})
def build(c, tag=""):
    """Build extensions whose entry file is missing and that have a build script."""
    with open_session() as session:
        resolved = Source(session.config.source).resolve(tag or None)
        with tempfile.TemporaryDirectory(prefix="directus-deploy-") as work:
            with session.console.step(f"check and build the extensions of {resolved.name}") as step:
                code = prepare_code(Source(session.config.source), resolved, Path(work), session.console.say)
                step.detail = f"{len(code.extensions)} valid; built: {', '.join(code.built) or 'none needed'}"


@task(help={"tag": "tag holding the changed extensions; it may differ from the current release only "
                   "under extensions/", "dry-run": "print the plan; change nothing"})
def sync(c, tag="", dry_run=False):
    """Ship changed extensions as a new release cloned from the current one."""
    with open_session(dry_run=dry_run) as session:
        resolved = Source(session.config.source).resolve(tag or None)
        with lock.held(session, f"extensions.sync {resolved.name}"):
            outcome = sync_extensions(session, resolved)
        if not dry_run:
            session.console.summary("Extensions shipped", [("release", outcome["release"]),
                                                           ("changed", ", ".join(outcome["changed"]))])


@task(name="list")
def list_(c):
    """List extensions on disk and as loaded by the running Directus."""
    with open_session() as session:
        rows = loaded_extensions(session)
        session.console.table(["extension", "version", "type", "source", "folder", "loaded"], rows)


@task(help={"tag": "also check this tag's extensions locally before deploying it"})
def verify(c, tag=""):
    """Validate every extension manifest (one bad package.json disables them all)."""
    with open_session() as session:
        if tag:
            resolved = Source(session.config.source).resolve(tag)
            with tempfile.TemporaryDirectory(prefix="directus-deploy-") as work:
                with session.console.step(f"check the extensions of tag {resolved.name}") as step:
                    code = prepare_code(Source(session.config.source), resolved, Path(work), session.console.say)
                    step.detail = f"{len(code.extensions)} valid"
        release_id = current_release(session.remote(), session.layout)
        if not release_id:
            raise Refused("no current release on the host to check")
        with session.console.step(f"check the extensions of the current release {release_id} and .registry") as step:
            names = steps.check_host_extensions(session, release_id)
            step.detail = f"{len(names)} valid: {', '.join(names)}"
