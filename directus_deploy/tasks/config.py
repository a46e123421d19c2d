"""Platform configuration: the production .env from the project's template, and Directus's
system configuration (roles, policies, flows...) exported from a development instance."""

from directus_deploy.core.errors import Refused
from directus_deploy.core.source import Source
from directus_deploy.flows import production_env, system_config
from directus_deploy.flows.session import open_session
from directus_deploy.state import lock

from .base import confirm, task

TEMPLATE_HELP = {
    "tag": "tag whose config/production.env to use (default: the newest tag)",
    "file": "a local template file instead of the tag's",
}


@task(help=TEMPLATE_HELP)
def diff(c, tag="", file=""):
    """Show what config.push would change in the production .env (secret values masked)."""
    with open_session() as session:
        tag_ = None if file else Source(session.config.source).resolve(tag or None)
        _, origin, changes = production_env.read_both(session, tag_, file or None)
        _show(session, origin, changes)


@task(help={**TEMPLATE_HELP, "allow-secret-change": "let the template change SECRET",
            "allow-db-change": "let the template change DB_* settings",
            "dry-run": "show the changes; write nothing", "yes": "do not ask before writing"})
def push(c, tag="", file="", allow_secret_change=False, allow_db_change=False, dry_run=False, yes=False):
    """Update the production .env from the template: backup, write, restart, health gate."""
    with open_session(dry_run=dry_run) as session:
        tag_ = None if file else Source(session.config.source).resolve(tag or None)
        with lock.held(session, "config.push"):
            host_text, origin, changes = production_env.read_both(session, tag_, file or None)
            _show(session, origin, changes)
            production_env.refuse_protected(changes, allow_secret_change, allow_db_change)
            if not [c for c in changes if c.kind != "host-only"]:
                session.console.say("nothing to change")
                return
            if dry_run:
                session.console.say("    would back up the .env, write the new one and restart Directus on it")
                return
            confirm("Write the new production .env and restart Directus?", yes)
            outcome = production_env.push(session, host_text, changes, origin)
        session.console.summary("Production .env updated", [("from", origin), ("previous .env in backup", outcome["backup"])])


@task(help={"project": "the project to write config/system into (default: DEPLOY_SOURCE)"})
def pull(c, project=""):
    """Export the system configuration of the development Directus into config/system."""
    with open_session(several_hosts=True) as session:
        config = session.config
        if not config.dev_url or not config.dev_token:
            raise Refused("config.pull needs DIRECTUS_DEV_URL and DIRECTUS_DEV_TOKEN (a development admin's token)")
        target = Source(project or config.source).path
        with session.console.step(f"export the system configuration of {config.dev_url}") as step:
            counts = system_config.pull_from_development(config.dev_url, config.dev_token, target, session.console.say)
            step.detail = ", ".join(f"{n} {name.removeprefix('directus_')}" for name, n in counts.items() if n)
        session.console.say(f"written to {target / system_config.EXPORT_DIR}; commit it and tag a release to deploy it")


def _show(session, origin, changes):
    session.console.say(f"production .env against {origin}:")
    rows = production_env.describe(changes)
    if [c for c in changes if c.kind != "host-only"]:
        session.console.table(["key", "change", "on the host", "template"], rows)
    else:
        session.console.say("  no difference" + (f" ({len(rows)} keys only on the host, kept)" if rows else ""))
