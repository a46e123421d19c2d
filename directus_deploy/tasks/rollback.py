"""Go back to an earlier release: code only, or with the database when migrations require it."""

import signal

from directus_deploy.flows import steps
from directus_deploy.flows.rollback import candidates
from directus_deploy.flows.rollback import rollback as run_rollback
from directus_deploy.flows.session import open_session
from directus_deploy.state import lock
from directus_deploy.state.backup_catalog import age

from .base import confirm, task


@task(
    default=True,
    help={
        "to": "tag to go back to (default: the previous good release, from the deploy log)",
        "with-db": "also restore the database backup taken before the later release (after a safety backup)",
        "dry-run": "print the plan; change nothing",
        "yes": "answer prompts with their default (for CI); never waits for input",
        "restart": "restart the serving Directus in place, even with DEPLOY_STRATEGY=bluegreen",
    },
)
def rollback(c, to="", with_db=False, dry_run=False, yes=False, restart=False):
    """Roll back to an earlier release (code; --with-db for the database too)."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with open_session(dry_run=dry_run, restart=restart, several_hosts=True) as session:
        with lock.held(session, f"rollback to {to or 'previous'}"):
            outcome = run_rollback(session, to or None, with_db, lambda q: confirm(q, yes))
        if not dry_run:
            facts = [("now on", outcome["release"]), ("was on", outcome["from"])]
            if with_db:
                facts += [("database from backup", outcome["backup_restored"]),
                          ("state before, kept in", outcome["safety_backup"])]
            session.console.summary("Rollback complete", facts)


@task(name="list")
def list_(c):
    """Show the releases that can be rolled back to."""
    with open_session() as session:
        current, targets = candidates(session)
        now = set(steps.migrations_now(session)[0]) if current else set()
        rows = []
        for target in targets:
            known = target.entry.get("migrations")
            code_only = "?" if known is None else ("yes" if now <= set(known) else "no: needs --with-db")
            rows.append([target.tag, target.release, age(target.entry.get("at")),
                         "yes" if target.present else "pruned (redeployed from tag)", code_only, target.db_backup or "-"])
        session.console.say(f"current: {current or 'none'}")
        if rows:
            session.console.table(["tag", "release", "age", "folder", "code-only", "database backup"], rows)
        else:
            session.console.say("nothing to roll back to yet")
