"""Releases on the host: set up, adopt an install, upload code, migrate, switch, clean up."""

from pathlib import Path

from directus_deploy.core.errors import Refused
from directus_deploy.core.source import Source
from directus_deploy.flows import steps
from directus_deploy.flows.adopt import adopt as adopt_install
from directus_deploy.flows.backup import take_backup
from directus_deploy.flows.session import open_session
from directus_deploy.flows.setup import setup_host
from directus_deploy.runtimes import instances
from directus_deploy.state import deploylog, lock
from directus_deploy.state.backup_catalog import age
from directus_deploy.state.releases import last_good, list_releases, release_outcomes
from directus_deploy.state.retention import cleanup as cleanup_releases
from directus_deploy.traffic.nginx import install_upstream

from .base import task

DRY_HELP = "print the plan; change nothing on the host, upload nothing"
RELEASE_HELP = "release id (default: the newest release that is not current)"


@task(help={"env-file": "local file holding the production .env to install on the host (0600)", "dry-run": DRY_HELP})
def setup(c, env_file="", dry_run=False):
    """Prepare a new host: the folder layout and the production .env (0600)."""
    if not env_file:
        raise Refused("--env-file is required: the production .env to install on the host")
    with open_session(dry_run=dry_run) as session:
        with session.console.step(f"set up {session.layout.root}") as step:
            made = setup_host(session, Path(env_file))
            step.detail = f"{len(made)} folders and files"
        if session.config.strategy == "bluegreen":
            _upstream(session, port=instances.colors(session.config)[0].port)
        session.console.say("next: fab release --tag=<tag> (the first release installs Directus's tables)")


@task(help={"from": "folder of the Directus install running today, on the host",
            "tag": "the tag that install runs (default: the newest tag matching its files)",
            "dry-run": DRY_HELP})
def adopt(c, from_="", tag="", dry_run=False):
    """Take an existing Directus install into the layout, after a verified backup."""
    if not from_:
        raise Refused("--from is required: the folder of the install on the host")
    with open_session(dry_run=dry_run) as session:
        with lock.held(session, f"adopt {from_}"):
            outcome = adopt_install(session, from_, tag or None)
            if session.config.strategy == "bluegreen" and not dry_run:
                _upstream(session)
        if not dry_run:
            session.console.summary("Adopted", [("release", outcome["release"]), ("backup before", outcome["backup"]),
                                                ("round trips", str(session.round_trips))])


@task(help={"dry-run": DRY_HELP})
def upstream(c, dry_run=False):
    """Show nginx's upstream for blue/green; write its include if it is missing."""
    with open_session(dry_run=dry_run) as session:
        if session.config.strategy != "bluegreen":
            raise Refused("DEPLOY_STRATEGY is not bluegreen: there is no nginx upstream to manage")
        with lock.held(session, "deploy.upstream"):
            state = _upstream(session)
        if not state.routed:
            session.console.say(f"next: point your nginx site at it (proxy_pass http://{session.config.nginx_upstream};), "
                                "reload nginx, then fab release")


def _upstream(session, port=None):
    config = session.config
    with session.console.step(f"nginx upstream {config.nginx_upstream} in {config.nginx_upstream_file}") as step:
        state, written = install_upstream(session, port)
        serving = instances.serving(session.runtime.instances(), state.live_port) if state.live_port else None
        step.detail = ("written: " if written else "") + (f"-> 127.0.0.1:{state.live_port} ({serving.name})"
                                                           if serving else "missing")
        step.detail += f"; nginx routes requests to it: {'yes' if state.routed else 'not yet'}"
    return state


@task(help={"tag": "git tag to deploy (default: the newest tag)", "dry-run": DRY_HELP})
def code(c, tag="", dry_run=False):
    """Upload a tag's code as a new release and link shared state and dependencies."""
    with open_session(dry_run=dry_run) as session:
        resolved = Source(session.config.source).resolve(tag or None)
        with lock.held(session, f"deploy.code {resolved.name}"):
            revision = steps.deploy_code(session, resolved)
        session.console.summary("Release made (not switched yet: fab deploy.migrate, fab deploy.switch)",
                                [("release", revision["release"])])


@task(help={"release": RELEASE_HELP, "allow-destructive": "let the schema apply drop collections, fields or relations",
            "dry-run": "show the schema plan only"})
def migrate(c, release="", allow_destructive=False, dry_run=False):
    """Check the schema plan (refusing deletions), run migrations, apply the snapshot."""
    with open_session(dry_run=dry_run) as session:
        with lock.held(session, "deploy.migrate"):
            release_id = steps.pick_release(session, release or None)
            plan = steps.schema_plan(session, release_id, allow_destructive)
            if dry_run:
                return
            if plan.installed:
                take_backup(session, reason=f"pre-migrate-{release_id[17:]}", for_release=release_id)
            steps.migrate(session, release_id, plan)


@task(help={"tag": "git tag to rehearse (default: the newest tag)",
            "backup": "backup to make the copy from (default: a new verified backup)"})
def rehearse(c, tag="", backup=""):
    """Rehearse a release on a copy of production on the host; production is untouched."""
    with open_session() as session:
        resolved = Source(session.config.source).resolve(tag or None)
        with lock.held(session, f"deploy.rehearse {resolved.name}"):
            outcome = steps.rehearse_alone(session, resolved, backup or None)
        session.console.summary(f"Rehearsal of {resolved.name} passed; production untouched",
                                [("copy of backup", outcome["backup"]), ("schema changes", "; ".join(outcome["plan"]) or "none"),
                                 ("rehearsal", f"{outcome['seconds']:.1f}s")])


@task(help={"release": RELEASE_HELP, "dry-run": DRY_HELP})
def switch(c, release="", dry_run=False):
    """Switch current to the new release atomically, restart, and pass the health gate."""
    with open_session(dry_run=dry_run) as session:
        with lock.held(session, "deploy.switch"):
            release_id = steps.pick_release(session, release or None)
            names = steps.check_host_extensions(session, release_id)
            if dry_run:
                steps.switch(session, release_id, names)
                return
            try:
                report = steps.switch(session, release_id, names)
            except Exception:
                steps.record(session, {"action": "switch", "release": release_id, "outcome": "failed"})
                raise
            steps.record(session, {"action": "switch", "release": release_id, "from": report["previous"], "outcome": "ok",
                                   "migrations": steps.migrations_now(session)[0]})


@task(name="releases")
def releases_(c):
    """List releases, marking the current and the last good one."""
    with open_session() as session:
        remote = session.remote()
        releases = list_releases(remote, session.layout)
        outcomes = release_outcomes(deploylog.read_entries(remote, session.layout))
        good = last_good(releases, outcomes)
        rows = []
        for release in reversed(releases):
            revision = release["revision"]
            marks = ["current"] if release["current"] else []
            if release["id"] == good:
                marks.append("last good")
            rows.append([release["id"], revision.get("tag", "?"), (revision.get("commit") or "")[:10],
                         age(revision.get("created_at")), revision.get("deps", "?"),
                         outcomes.get(release["id"], "not switched"), ", ".join(marks)])
        if rows:
            session.console.table(["release", "tag", "commit", "age", "dependencies", "outcome", ""], rows)
        else:
            session.console.say(f"no releases in {session.layout.releases}")


@task(help={"dry-run": "list what would be deleted"})
def cleanup(c, dry_run=False):
    """Delete old releases beyond KEEP_RELEASES and unused dependency stores."""
    with open_session(dry_run=dry_run) as session:
        with lock.held(session, "deploy.cleanup"):
            with session.console.step(f"clean up releases (keep {session.config.keep_releases})") as step:
                removed = cleanup_releases(session, session.config.keep_releases)
                step.detail = f"{'would delete' if dry_run else 'deleted'}: {', '.join(removed) or 'nothing'}"


@task(help={"force": "break the lock after showing who holds it"})
def unlock(c, force=False):
    """Show the deploy lock's owner on every host; --force breaks a stale lock."""
    with open_session(several_hosts=True) as session:
        hosts = session.lock_hosts()
        held_on = []
        for name, remote in hosts:
            where = f" on {name}" if len(hosts) > 1 else ""
            held, owner = lock.read_owner(remote, session.layout)
            if held:
                session.console.say(f"the deploy lock{where} is held by {lock.describe_owner(owner)}")
                held_on.append((name, remote, where))
            else:
                session.console.say(f"the deploy lock{where} is free")
        if held_on and not force:
            raise Refused("not broken; if that run is dead, run fab deploy.unlock --force")
        for _name, remote, where in held_on:
            lock.break_lock(remote, session.layout)
            session.console.say(f"lock{where} broken")


@task(help={"limit": "how many entries to show (newest last)"})
def log(c, limit=20):
    """Show the deploy log: who released what, when, and how it went."""
    with open_session() as session:
        entries = deploylog.read_entries(session.remote(), session.layout)[-int(limit):]
        rows = [[e.get("at", ""), e.get("by", ""), e.get("action", ""), e.get("from") or "-",
                 e.get("release") or e.get("backup_restored") or "-", e.get("backup") or "-", e.get("outcome", ""),
                 f"{sum((e.get('timings') or {}).values()):.0f}s" if e.get("timings") else ""] for e in entries]
        if rows:
            session.console.table(["at", "by", "action", "from", "to", "backup", "outcome", "took"], rows)
        else:
            session.console.say("the deploy log is empty")
