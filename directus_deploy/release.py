"""`fab release`: the whole chain of DESIGN §3, one named step after another.

    guards -> lock -> verified backup -> code -> extensions -> schema gate
           -> rehearsal on a copy (when asked for) -> migrations -> system configuration
           -> switch + health gate -> verify nothing was lost -> record -> clean up -> unlock

Until the switch, production serves the old release untouched. A failure after changes began
puts production back: the code by switching back, the database from the backup taken at the
start (after a safety backup of the state being replaced) when migrations had run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import bluegreen, instances, lock, rehearsal, steps, system_config
from .lock import serial_lock
from .backup import take_backup
from .backup_catalog import prune_lines, prune_plan
from .inventory import read_inventory
from .errors import DeployError, Refused, RolledBack
from .preservation import check_preservation
from .probe import read_host_facts, require_node
from .production import moved_to
from .releases import cleanup_lines, cleanup_plan
from .restore import restore_backup
from .schema import SchemaPlan
from .source import Source, Tag
from .switch import current_release, switch_to

DEPS_DISK = 1536 << 20  # a new dependency store (npm ci of Directus) takes about this much
CODE_DISK = 64 << 20  # a release reusing its dependencies: the code, a few MB


@dataclass
class ReleaseRun:
    tag: Tag
    allow_destructive: bool
    previous: str | None = None  # the release live before this one
    previous_commit: str | None = None
    backup: dict | None = None
    release_id: str | None = None
    revision: dict = field(default_factory=dict)
    plan: SchemaPlan | None = None
    migrated: dict = field(default_factory=dict)
    switched: bool = False
    checks: list = field(default_factory=list)
    migrations_after: list = field(default_factory=list)  # what the database has applied, after the release
    carries_config: bool = False  # the tag has a system configuration export (config/system)
    system_config: dict = field(default_factory=dict)  # what applying it did
    rehearse: str = "never"  # never | changes | always
    rehearsal: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def release(session, tag_name: str | None, *, allow_destructive: bool = False, confirm=None,
            rehearse_mode: str | None = None) -> ReleaseRun:
    console = session.console
    source = Source(session.config.source)
    with console.step("check the tag and the configuration") as step:
        tag = source.resolve(tag_name)
        run = ReleaseRun(tag, allow_destructive, rehearse=rehearse_mode or session.config.rehearse)
        mismatch = source.remote_tag_mismatch(tag)
        if mismatch:
            run.warnings.append(mismatch)
            console.say(f"    warning: {mismatch}")
        run.carries_config = bool(source.files(tag, system_config.EXPORT_DIR + "/data"))
        step.detail = f"{tag.name} = {tag.commit[:10]}" + (f"; brings {system_config.EXPORT_DIR}" if run.carries_config else "")
    check_host(session, run)
    with lock.held(session, f"release {tag.name}"):
        back_up(session, run)
        deploy_code(session, run)
        try:
            check_extensions(session, run)
            plan_schema(session, run, confirm)
            rehearse(session, run)
            migrate(session, run)
            apply_system_config(session, run, confirm)
            switch(session, run)
        except BaseException:
            discard_unused_release(session, run)
            raise
        verify(session, run)
        record(session, run)
        clean_up(session, run)
    return run


def check_host(session, run: ReleaseRun) -> None:
    remote, layout = session.remote(), session.layout
    with session.console.step("check the host: tools, disk, layout, production health") as step:
        facts = read_host_facts(remote, layout.root)
        require_node(remote, facts)
        for tool in ("npm", "tar", "zstd", "rsync"):
            if tool not in facts.tools:
                raise Refused(f"{remote.name}: {tool} not found on the host")
        if not facts.layout_exists:
            raise Refused(f"{remote.name}: {layout.root} is not set up; run fab deploy.setup or fab deploy.adopt first")
        lockfile = Source(session.config.source).lockfile_hash(run.tag)[:16]
        reuses = any(store.startswith(lockfile + "-") for store in facts.dependency_stores)
        need = CODE_DISK if reuses else DEPS_DISK
        if facts.free_kib * 1024 < need:
            raise Refused(f"{remote.name}: only {facts.free_kib // 1024} MiB free at {facts.disk_of}; this release needs "
                          f"about {need >> 20} MiB{'' if reuses else ' (a new dependency store)'}; free some space")
        run.previous = facts.current_release
        run.previous_commit = facts.current_revision.get("commit")
        if run.previous:
            # after whatever an interrupted run left running on the host (a restart) is done
            service = session.service
            gate = remote.script(serial_lock(layout, wait_only=True) + "\n" + service.health_check([], 30), changes=False,
                                 check=False, secret_env=service.secret_env, what="check production's health")
            service.health_report(remote, gate)
        step.detail = (f"node {facts.node_version}, {facts.free_kib >> 20} GiB free, "
                       + (f"production healthy on {run.previous}" if run.previous else "first release"))
    if session.switch_method == "bluegreen":
        with session.console.step("check nginx for the blue/green switch") as step:
            upstream = bluegreen.check_ready(session)
            serving = instances.serving(session.config, upstream.live_port)
            step.detail = (f"{session.config.nginx_upstream} -> {serving}; nginx -t ok; "
                           f"the release will start on {instances.idle(session.config, serving)}")


def back_up(session, run: ReleaseRun) -> None:
    if not run.previous:
        session.console.say("==> no production yet: nothing to back up")
        return
    run.backup = take_backup(session, reason=f"pre-release-{run.tag.name}", for_release=run.tag.name,
                             system_config=run.carries_config)


def deploy_code(session, run: ReleaseRun) -> None:
    run.revision = steps.deploy_code(session, run.tag)
    run.release_id = run.revision["release"]


def check_extensions(session, run: ReleaseRun) -> None:
    if session.dry_run:
        return
    with session.console.step("check every extension manifest on the host") as step:
        run.revision["loadable"] = steps.check_host_extensions(session, run.release_id,
                                                               run.revision.pop("manifests_on_host", None))
        step.detail = f"{len(run.revision['loadable'])} valid"


def plan_schema(session, run: ReleaseRun, confirm) -> None:
    if session.dry_run:
        session.console.say("    would read the schema plan, run migrations and apply the snapshot")
        return
    run.plan = steps.schema_plan(session, run.release_id, run.allow_destructive)
    if run.plan.deletions and session.switch_method == "bluegreen":
        # blue/green runs the old release on the migrated database until the switch
        raise Refused(f"the schema apply drops {', '.join(run.plan.deletions)}, and with blue/green the old release "
                      "would keep serving without them until the switch; release this one with --restart")
    if run.plan.deletions and confirm:
        confirm(f"The schema apply will DROP {', '.join(run.plan.deletions)} and their data. Continue?")


def rehearse(session, run: ReleaseRun) -> None:
    """On a copy of production first, when asked for (DEPLOY_REHEARSE, --rehearse)."""
    if session.dry_run or not run.backup:
        return
    go, why = rehearsal.wanted(session, run.release_id, run.rehearse)
    if not go:
        run.rehearsal = {"outcome": "not run", "why": why}
        return
    session.console.say(f"    rehearsing on a copy of production first: {why}")
    try:
        run.rehearsal = rehearsal.rehearse(session, run.release_id, run.backup, run.revision["loadable"], run.plan)
    except DeployError:
        steps.record(session, _entry(session, run, "rehearsal-failed"))
        raise


def migrate(session, run: ReleaseRun) -> None:
    if session.dry_run:
        return
    try:
        run.migrated = steps.migrate(session, run.release_id, run.plan)
    except Exception as failure:
        # migrations are not transactional: a half-migrated database goes back to the backup
        if not run.backup:
            raise
        put_database_back(session, run, f"migrations failed ({failure})")
        steps.record(session, _entry(session, run, "rolled-back"))
        raise RolledBack(f"{failure}; the database is back as backup {run.backup['id']} held it, "
                         f"production still runs {run.previous}") from None
    except KeyboardInterrupt:
        if run.backup:
            session.console.say(f"    interrupted: the migrations run on to their end on the host; {run.previous} "
                                f"still serves; to undo them: fab backup.restore --id={run.backup['id']} --only=db")
        raise


def apply_system_config(session, run: ReleaseRun, confirm) -> None:
    """Roles, policies, flows, settings... from the release's config/system, after the schema
    they refer to: merge (adds and updates) unless deletions were allowed (mirror)."""
    if session.dry_run or not run.carries_config:
        return
    export = session.layout.release_dir(run.release_id) + "/" + system_config.EXPORT_DIR
    mode = "mirror" if run.allow_destructive else "merge"
    try:
        if mode == "mirror":
            with session.console.step("plan the system configuration (mirror: deletions allowed)") as step:
                plan = system_config.apply(session, export, mode, plan_only=True)["plan"]
                step.detail = system_config.plan_text(plan)
            doomed = [f"{n['deleted']} {c}" for c, n in plan.items() if n["deleted"]]
            if doomed and confirm:
                confirm(f"The system configuration push will DELETE {', '.join(doomed)} in production. Continue?")
        with session.console.step(f"apply the system configuration ({SYSTEM_CONFIG_MODES[mode]})") as step:
            run.system_config = system_config.apply(session, export, mode)
            run.system_config["mode"] = mode
            presets = run.system_config.get("presets") or {}
            step.detail = (system_config.plan_text(run.system_config["plan"])
                           + (f"; presets +{presets.get('created', 0)} ~{presets.get('updated', 0)}" if presets else ""))
    except Exception as failure:
        if not run.backup:
            raise
        # the configuration lives in the database: what was half pushed goes back with it
        put_database_back(session, run, f"the system configuration failed ({failure})")
        steps.record(session, _entry(session, run, "rolled-back"))
        raise RolledBack(f"{failure}; the database is back as backup {run.backup['id']} held it, "
                         f"production still runs {run.previous}") from None


SYSTEM_CONFIG_MODES = {"merge": "merge: adds and updates, never deletes", "mirror": "mirror: production made to match"}


def switch(session, run: ReleaseRun) -> None:
    if session.dry_run:
        session.console.say("    would switch to the new release and pass the health gate")
        return
    try:
        steps.switch(session, run.release_id, run.revision["loadable"], run.previous)
        run.switched = True
    except RolledBack:
        if run.backup and _migrations_ran(run):
            put_database_back(session, run, "the new release failed its health gate after migrations ran")
        steps.record(session, _entry(session, run, "rolled-back"))
        raise
    except KeyboardInterrupt:
        roll_back_code(session, run, "interrupted during the switch")
        raise


def verify(session, run: ReleaseRun) -> None:
    if session.dry_run or not run.backup:
        return
    with session.console.step("check every row, upload and extension is still there") as step:
        now_serving = moved_to(session.production, session.layout.release_dir(run.release_id), run.release_id)
        run.checks = check_preservation(session, now_serving, run.backup, exact=False,
                                        allowed_losses=run.plan.allowed_losses() if run.plan else None,
                                        migrations=run.migrations_after)
        step.detail = "; ".join(f"{c[0]} {c[1]}" for c in run.checks)
    failed = [c for c in run.checks if c[1] != "OK"]
    if failed:
        roll_back_code(session, run, f"verification failed: {failed[0][0]}: {failed[0][2]}")
        put_database_back(session, run, "verification failed")
        steps.record(session, _entry(session, run, "rolled-back"))
        raise RolledBack(f"{failed[0][0]}: {failed[0][2]}; production is back on {run.previous} with the database "
                         f"of backup {run.backup['id']}")


def record(session, run: ReleaseRun) -> None:
    if session.dry_run:
        return
    with session.console.step("record the release in the deploy log"):
        steps.record(session, _entry(session, run, "ok"))


def clean_up(session, run: ReleaseRun) -> None:
    if session.dry_run:
        return
    with session.console.step("clean up old releases and backups") as step:
        stock = read_inventory(session.remote(), session.layout)
        config = session.config
        releases = cleanup_plan(stock.releases, stock.entries, config.keep_releases)
        kept = {r["id"] for r in stock.releases} - set(releases)
        backups = prune_plan(stock.backups, stock.entries, kept, config.keep_backups, session.console.say)
        lines = cleanup_lines(session.layout, releases) + prune_lines(session.layout, stock.backups, backups,
                                                                      stock.incomplete_backups)
        session.remote().script("\n".join(lines), what="delete old releases and backups")
        step.detail = f"{len(releases)} releases and {len(backups)} backups removed"


# -- putting things back --------------------------------------------------------------------

def discard_unused_release(session, run: ReleaseRun) -> None:
    """A release refused or failed before it ever went live leaves nothing behind."""
    if session.dry_run or not run.release_id or run.switched:
        return
    remote, layout = session.remote(), session.layout
    try:
        if current_release(remote, layout) != run.release_id and not _went_live(session, run):
            remote.run(["rm", "-rf", "--", layout.release_dir(run.release_id)], what="remove the unused release")
            session.console.say(f"    removed release {run.release_id} (never went live)")
    except Exception:  # noqa: BLE001 - the original failure matters more; cleanup removes it later
        pass


def _went_live(session, run: ReleaseRun) -> bool:
    """True once the switch was attempted (a switched-back release is kept, marked failed)."""
    return any(step.name.startswith("switch to") for step in session.console.steps)


def _migrations_ran(run: ReleaseRun) -> bool:
    """Whether the database changed: migrations, the schema apply, or the system configuration."""
    return bool(run.migrated.get("migrations") or run.migrated.get("bootstrap") or "schema apply" in run.migrated
                or run.system_config)


def roll_back_code(session, run: ReleaseRun, why: str) -> None:
    if not run.previous:
        return
    session.console.say(f"    {why}: switching back to {run.previous}")
    switch_to(session, run.previous, [], previous=run.previous)  # if even that fails, stay and say so


def put_database_back(session, run: ReleaseRun, why: str) -> None:
    session.console.say(f"    {why}: restoring the database from backup {run.backup['id']}")
    outcome = restore_backup(session, run.backup["id"], parts=("db",))
    run.warnings.append(f"database restored from {run.backup['id']}; the state before that is in {outcome['safety_backup']}")


def _entry(session, run: ReleaseRun, outcome: str) -> dict:
    return {
        "action": "release", "release": run.release_id, "tag": run.tag.name, "commit": run.tag.commit,
        "from": run.previous, "backup": run.backup["id"] if run.backup else None, "outcome": outcome,
        "schema_changes": run.plan.changes if run.plan else [],
        "migrations_applied": run.migrated.get("migrations") or run.migrated.get("bootstrap") or [],
        # what the database holds now: a later code-only rollback to this release checks it
        "migrations": (run.migrations_after or steps.migrations_now(session)[0]) if outcome == "ok" else None,
        "rehearsal": run.rehearsal or None,
        "system_config": ({"mode": run.system_config.get("mode"), "plan": run.system_config.get("plan")}
                          if run.system_config else None),
        "timings": {step.name: round(step.seconds, 2) for step in session.console.steps},
    }
