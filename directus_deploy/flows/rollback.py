"""`fab rollback`: back to an earlier release, chosen from the deploy log (not folder dates).

Code-only when the database holds no migration the target release does not know; otherwise
`--with-db` restores the backup taken right before the release that followed the target (after
a safety backup of the current state, which keeps every write made since).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from directus_deploy.core.errors import DeployError, Refused, RolledBack
from directus_deploy.core.source import Source
from directus_deploy.engines import engine_for, parse_counts
from directus_deploy.flows import steps
from directus_deploy.flows.pipeline import PLAN_HEADERS, Pipeline, Step
from directus_deploy.flows.restore import restore_backup
from directus_deploy.flows.switch import switch_to
from directus_deploy.state.backup_catalog import read_manifest
from directus_deploy.state.inventory import read_inventory

SUCCESS_ACTIONS = ("release", "adopt", "extensions-sync", "switch", "rollback")

# The rollback, top to bottom (flows/pipeline.py runs it; tasks/rollback.py holds the lock).
ROLLBACK = Pipeline([
    Step("choose", lambda run: choose_target(run),
         plan="the release to go back to, from the deploy log; code-only refused if the database has "
              "migrations it does not know (then --with-db)"),
    Step("read the backup", lambda run: read_backup(run),
         plan="with --with-db: the backup taken before the next release, and the writes it sets aside (confirmed)"),
    Step("connect", lambda run: connect(run), plan="SSH to every host, the primary first (a dry run stops here)"),
    Step("deploy again", lambda run: deploy_again(run),
         plan="a release pruned on some host: its tag deployed again, on every host"),
    Step("check the extensions", lambda run: check_extensions(run),
         plan="the extension manifests of the release, on each host"),
    Step("go back", lambda run: go_back(run),
         plan="switch host after host, each through its gate (with --with-db: the database restored, then started); "
              "a failure is recorded"),
    Step("record", lambda run: record(run), plan="one line in every host's deploy log"),
])


@dataclass
class Target:
    release: str  # release folder id
    tag: str
    commit: str | None
    entry: dict  # the deploy log entry that made it live
    present: bool  # its folder still exists (else it is deployed again from the tag)
    unknown_migrations: list = field(default_factory=list)  # in the database, not known to the target
    db_backup: str | None = None  # the backup that holds the database as the target left it
    migrations_now: list = field(default_factory=list)  # what the database has applied now
    manifests: str | None = None  # the target's extension manifests, read with the migrations
    config_changed: bool = False  # a later release pushed system configuration (roles, flows...)


def candidates(session) -> tuple[str | None, list[Target]]:
    """The current release and every earlier successful one, newest first."""
    stock = read_inventory(session.remote(), session.layout)
    entries = stock.entries
    present = {r["id"] for r in stock.releases}
    current = next((r["id"] for r in stock.releases if r["current"]), None)
    targets: dict[str, Target] = {}
    for index, entry in enumerate(entries):
        if entry.get("action") not in SUCCESS_ACTIONS or entry.get("outcome") != "ok" or not entry.get("release"):
            continue
        later = entries[index + 1:]
        follower = next((e for e in later if e.get("action") == "release" and e.get("backup")
                         and e.get("release") != entry["release"]), None)
        targets[entry["release"]] = Target(
            release=entry["release"], tag=entry.get("tag") or entry["release"].split("-", 1)[1],
            commit=entry.get("commit"), entry=entry, present=entry["release"] in present,
            db_backup=follower.get("backup") if follower else None,
            config_changed=any(e.get("system_config") and e.get("outcome") == "ok" for e in later),
        )
    ordered = sorted((t for t in targets.values() if t.release != current), key=lambda t: t.release, reverse=True)
    return current, ordered


def choose(session, to_tag: str | None) -> tuple[str, Target]:
    current, targets = candidates(session)
    if not current:
        raise Refused("no current release: nothing to roll back")
    if to_tag:
        match = [t for t in targets if t.tag == to_tag]
        if not match:
            known = ", ".join(sorted({t.tag for t in targets})) or "none"
            raise Refused(f"no successful release of tag {to_tag} in the deploy log (can roll back to: {known})")
        target = match[0]
    else:
        older = [t for t in targets if t.release < current]
        if not older:
            raise Refused("no earlier successful release in the deploy log to roll back to")
        target = older[0]
    now, target.manifests = steps.migrations_now(session, manifests_of=target.release if target.present else None)
    target.migrations_now = now
    known = target.entry.get("migrations")
    if known is not None:
        target.unknown_migrations = [m for m in now if m not in set(known)]
    return current, target


def writes_since(session, manifest: dict) -> list[str]:
    """Tables with rows added or removed since the backup: what a database rollback sets aside."""
    production = steps.production_now(session)
    engine = engine_for(production)
    out = session.remote().script(engine.prelude(session.layout.backups) + engine.counts(),
                                  what="count rows", changes=False, secret_env=engine.secret_env()).stdout
    live = parse_counts(out)
    then = manifest["database"]["tables"]
    changes = []
    for table in sorted(set(live) | set(then)):
        if table.startswith("directus_") and table in ("directus_activity", "directus_sessions", "directus_revisions"):
            continue
        delta = live.get(table, 0) - then.get(table, 0)
        if table not in then:
            changes.append(f"{table}: new table, {live[table]} rows")
        elif table not in live:
            changes.append(f"{table}: gone now ({then[table]} rows then)")
        elif delta:
            changes.append(f"{table}: {delta:+d} rows")
    return changes


def restore_config(session, target: Target, outcome: dict) -> None:
    """The roles, policies, flows... that later releases replaced, back as the target had them
    (a database rollback brings them back with the database)."""
    if not target.db_backup:
        session.console.say("    warning: no backup holds the system configuration as the target had it; left as it is")
        return
    restored = restore_backup(session, target.db_backup, parts=("config",))
    outcome.update(config_restored=target.db_backup, config_safety_backup=restored["safety_backup"])


def rollback(session, to_tag: str | None, with_db: bool, confirm) -> dict:
    run = RollbackRun(session, to_tag, with_db, confirm)
    if session.dry_run:
        session.console.say("The rollback, step by step:")
        session.console.table(PLAN_HEADERS, ROLLBACK.plan())
    ROLLBACK.run(run, say=session.console.say, report=run.step_results)
    return run.outcome


@dataclass
class RollbackRun:
    session: object
    to_tag: str | None
    with_db: bool
    confirm: Callable | None = None
    current: str | None = None  # the release serving now
    target: Target | None = None
    fleet: list = field(default_factory=list)  # one view per host, the primary first
    release_id: str | None = None  # the target's folder (a new one when its tag is deployed again)
    names: dict = field(default_factory=dict)  # host -> the extensions the gate expects
    outcome: dict = field(default_factory=dict)  # the deploy log entry, and what the task prints
    step_results: list = field(default_factory=list)  # the runner's StepResults (pipeline.py)


def choose_target(run: RollbackRun) -> None:
    session, with_db = run.session, run.with_db
    with session.console.step("choose the release to go back to") as step:
        run.current, run.target = choose(session, run.to_tag)
        target = run.target
        step.detail = f"{run.current} -> {target.release} ({target.tag})" + ("" if target.present else ", deployed again from the tag")
        if target.unknown_migrations and not with_db:
            raise Refused(
                f"the database has {len(target.unknown_migrations)} migration(s) that {target.tag} does not know "
                f"({', '.join(target.unknown_migrations[:3])}); a code-only rollback could break it. Use --with-db to "
                f"restore the database as {target.tag} left it"
                + (f" (backup {target.db_backup})" if target.db_backup else "")
            )


def read_backup(run: RollbackRun) -> None:
    session, target, console = run.session, run.target, run.session.console
    if not run.with_db:
        return
    if not target.db_backup:
        raise Refused(f"no backup holds the database as {target.tag} left it (none was taken before the next release)")
    with console.step(f"read backup {target.db_backup}") as step:
        manifest = read_manifest(session.remote(), session.layout, target.db_backup)
        changes = writes_since(session, manifest)
        step.detail = f"taken {manifest['created_at']}"
    # the dump's own time: a write after it is not in the backup, even before created_at
    since = (manifest.get("database") or {}).get("taken_at") or manifest["created_at"]
    console.say(f"    writes since {since} will be set aside (kept in a safety backup): "
                + ("; ".join(changes) if changes else "no row counts changed"))
    if run.confirm and not session.dry_run:
        run.confirm(f"Restore the database from backup {target.db_backup} ({manifest['created_at']}) and go back to {target.tag}?")


def connect(run: RollbackRun) -> None:
    """Every host, the primary first; a dry run says what it would do and stops here (no host
    is connected, none of the steps below does anything)."""
    session, target = run.session, run.target
    run.release_id = target.release
    if session.dry_run:
        config = ", and put the system configuration back from backup " + str(target.db_backup) \
            if target.config_changed and not run.with_db else ""
        session.console.say(f"    would {'restore the database and ' if run.with_db else ''}switch to {target.release}{config}")
        run.outcome = {"release": target.release}
        return
    run.fleet = session.fleet()


def deploy_again(run: RollbackRun) -> None:
    """A target pruned on any host: its tag deployed again, everywhere."""
    if not run.fleet:
        return
    session, fleet, primary = run.session, run.fleet, run.fleet[0]
    present = run.target.present and all(view.remote().is_dir(view.layout.release_dir(run.release_id))
                                         for view in fleet[1:])
    if present:
        return
    tag = Source(session.config.source).resolve(run.target.tag)
    made = ({primary: steps.deploy_code(primary, tag)} if len(fleet) == 1
            else steps.deploy_code_everywhere(session, fleet, tag))
    run.release_id = next(iter(made.values()))["release"]


def check_extensions(run: RollbackRun) -> None:
    target, release_id = run.target, run.release_id
    run.names = {view.name: steps.check_host_extensions(view, release_id, target.manifests if view is run.fleet[0]
                                                        and release_id == target.release else None)
                 for view in run.fleet}


def go_back(run: RollbackRun) -> None:
    """The switch (and the system configuration put back), or the database restore; a failure
    is recorded in every host's deploy log."""
    if not run.fleet:
        return
    fleet, target, release_id = run.fleet, run.target, run.release_id
    run.outcome = {"action": "rollback", "release": release_id, "tag": target.tag, "commit": target.commit,
                   "from": run.current, "with_db": run.with_db}
    if len(fleet) > 1:
        run.outcome["hosts"] = [view.name for view in fleet]
    try:
        if run.with_db:
            restore_everywhere(fleet, target, release_id, run.names, run.outcome)
        else:
            switch_everywhere(fleet, release_id, run.names, run.current)
            if target.config_changed:
                restore_config(fleet[0], target, run.outcome)
    except Exception:
        for view in fleet:
            steps.record(view, {**run.outcome, "outcome": "failed"})
        raise


def record(run: RollbackRun) -> None:
    if not run.fleet:
        return
    # a code-only rollback leaves the database as it was
    run.outcome["migrations"] = steps.migrations_now(run.fleet[0])[0] if run.with_db else run.target.migrations_now
    for view in run.fleet:
        steps.record(view, {**run.outcome, "outcome": "ok"})


def switch_everywhere(fleet, release_id: str, names: dict, current: str) -> None:
    """One host after the other, each through its gate; if one fails, those already back on
    the target go forward again to what they served."""
    done = []
    for view in fleet:
        try:
            steps.switch(view, release_id, names[view.name])
        except DeployError as failure:
            for switched in reversed(done):
                switched.console.say(f"    {view.name} failed: switching back to {current}")
                switch_to(switched, current, [], previous=current)
            if done:
                raise RolledBack(f"{failure}; the hosts already switched are back on {current}") from None
            raise
        done.append(view)


def restore_everywhere(fleet, target: Target, release_id: str, names: dict, outcome: dict) -> None:
    """The database as the target left it, on the primary with the target's code; the other
    hosts stopped meanwhile (they would serve a database being replaced), then started on it."""
    primary, others = fleet[0], fleet[1:]
    for view in others:
        view.remote().script(view.service.stop() or "true", what="stop Directus for the database restore")
    try:
        restored = restore_backup(primary, target.db_backup, parts=("db",), start_release=release_id)
        outcome.update(backup_restored=target.db_backup, safety_backup=restored["safety_backup"])
    finally:
        for view in others:
            steps.switch(view, release_id, names[view.name], previous=release_id)
