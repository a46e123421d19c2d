"""`fab rollback`: back to an earlier release, chosen from the deploy log (not folder dates).

Code-only when the database holds no migration the target release does not know; otherwise
`--with-db` restores the backup taken right before the release that followed the target (after
a safety backup of the current state, which keeps every write made since).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from directus_deploy.core.errors import DeployError, Refused, RolledBack
from directus_deploy.core.source import Source
from directus_deploy.engines import engine_for, parse_counts
from directus_deploy.flows import steps
from directus_deploy.flows.restore import restore_backup
from directus_deploy.flows.switch import switch_to
from directus_deploy.state.backup_catalog import read_manifest
from directus_deploy.state.inventory import read_inventory

SUCCESS_ACTIONS = ("release", "adopt", "extensions-sync", "switch", "rollback")


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
    out = session.remote().script(engine.prelude(session.layout.backups) + engine.counts("@@live"),
                                  what="count rows", changes=False, secret_env=engine.secret_env()).stdout
    live = parse_counts(out, "@@live")
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
    console = session.console
    with console.step("choose the release to go back to") as step:
        current, target = choose(session, to_tag)
        step.detail = f"{current} -> {target.release} ({target.tag})" + ("" if target.present else ", deployed again from the tag")
        if target.unknown_migrations and not with_db:
            raise Refused(
                f"the database has {len(target.unknown_migrations)} migration(s) that {target.tag} does not know "
                f"({', '.join(target.unknown_migrations[:3])}); a code-only rollback could break it. Use --with-db to "
                f"restore the database as {target.tag} left it"
                + (f" (backup {target.db_backup})" if target.db_backup else "")
            )
    manifest = None
    if with_db:
        if not target.db_backup:
            raise Refused(f"no backup holds the database as {target.tag} left it (none was taken before the next release)")
        with console.step(f"read backup {target.db_backup}") as step:
            manifest = read_manifest(session.remote(), session.layout, target.db_backup)
            changes = writes_since(session, manifest)
            step.detail = f"taken {manifest['created_at']}"
        console.say(f"    writes since {manifest['created_at']} will be set aside (kept in a safety backup): "
                    + ("; ".join(changes) if changes else "no row counts changed"))
        if confirm and not session.dry_run:
            confirm(f"Restore the database from backup {target.db_backup} ({manifest['created_at']}) and go back to {target.tag}?")
    if session.dry_run:
        config = ", and put the system configuration back from backup " + str(target.db_backup) \
            if target.config_changed and not with_db else ""
        console.say(f"    would {'restore the database and ' if with_db else ''}switch to {target.release}{config}")
        return {"release": target.release}

    fleet = session.fleet()
    primary = fleet[0]
    release_id = target.release
    present = target.present and all(view.remote().is_dir(view.layout.release_dir(release_id)) for view in fleet[1:])
    if not present:
        tag = Source(session.config.source).resolve(target.tag)  # pruned somewhere: the tag again, everywhere
        made = ({primary: steps.deploy_code(primary, tag)} if len(fleet) == 1
                else steps.deploy_code_everywhere(session, fleet, tag))
        release_id = next(iter(made.values()))["release"]
    names = {view.name: steps.check_host_extensions(view, release_id, target.manifests if view is primary and
                                                    release_id == target.release else None) for view in fleet}
    outcome = {"action": "rollback", "release": release_id, "tag": target.tag, "commit": target.commit,
               "from": current, "with_db": with_db}
    if len(fleet) > 1:
        outcome["hosts"] = [view.name for view in fleet]
    try:
        if with_db:
            restore_everywhere(fleet, target, release_id, names, outcome)
        else:
            switch_everywhere(fleet, release_id, names, current)
            if target.config_changed:
                restore_config(primary, target, outcome)
    except Exception:
        for view in fleet:
            steps.record(view, {**outcome, "outcome": "failed"})
        raise
    # a code-only rollback leaves the database as it was
    outcome["migrations"] = steps.migrations_now(primary)[0] if with_db else target.migrations_now
    for view in fleet:
        steps.record(view, {**outcome, "outcome": "ok"})
    return outcome


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
