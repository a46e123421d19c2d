"""`fab release`: the whole chain of docs/architecture.md, one named step after another (RELEASE,
below: a declared list of steps that flows/pipeline.py runs).

    guards -> lock -> verified backup, and meanwhile: code, extensions, schema plan -> schema gate
           -> rehearsal on a copy (when asked for) -> migrations -> system configuration
           -> switch + health gate -> verify nothing was lost -> record -> clean up -> unlock

Until the switch, production serves the old release untouched. A failure after changes began
puts production back: the code by switching back, the database from the backup taken at the
start (after a safety backup of the state being replaced) when migrations had run.

With several hosts (DEPLOY_HOSTS), the primary does what must happen once (the database's
backup, migrations, the schema, the system configuration); every host gets its own backup of
what it alone holds, and the code, uploaded and unpacked on all of them in parallel before any
switches; then the switch rolls, a host (or --batch of them) at a time, each passing its gate
before the next; a failure switches the hosts already switched back.
"""

from __future__ import annotations

import secrets
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from directus_deploy.core.errors import DeployError, Refused, RolledBack
from directus_deploy.core.source import Source, Tag, is_commit
from directus_deploy.flows import rehearsal, steps, system_config
from directus_deploy.flows.backup import take_backup
from directus_deploy.flows.pipeline import PLAN_HEADERS, Pipeline, Step, on_each_host
from directus_deploy.flows.restore import restore_backup
from directus_deploy.flows.schema import SchemaPlan
from directus_deploy.flows.switch import current_release, switch_to
from directus_deploy.runtimes import instances
from directus_deploy.state import lock
from directus_deploy.state.backup_catalog import prune_lines, prune_plan
from directus_deploy.state.inventory import read_inventory
from directus_deploy.state.lock import serial_lock
from directus_deploy.state.preservation import check_preservation
from directus_deploy.state.probe import TOOLS, read_host_facts, require_node
from directus_deploy.state.production import moved_to
from directus_deploy.state.releases import cleanup_lines, cleanup_plan
from directus_deploy.state.retention import log_problem
from directus_deploy.traffic import nginx

DEPS_DISK = 1536 << 20  # a new dependency store (npm ci of Directus) takes about this much
CODE_DISK = 64 << 20  # a release reusing its dependencies: the code, a few MB

# The release, top to bottom. Each step puts back what its own failure leaves half done (the
# database after failed migrations, every switched host after a failed gate); when a step
# fails, the runner then undoes what the completed ones left: the unused release, the lock.
RELEASE = Pipeline([
    Step("check the tag", lambda run: check_tag(run),
         plan="the tag exists (a local tag unlike origin's is warned about); the configuration reads"),
    Step("connect", lambda run: connect(run),
         plan="SSH to every host (DEPLOY_HOSTS), the primary first"),
    Step("check the primary", lambda run: check_host(run.primary, run),
         plan="node, npm/tar/zstd/rsync, free disk, the layout, production healthy (nginx too, blue/green)"),
    Step("check the other hosts", lambda run, view: check_host(view, run), scope="each",
         hosts=lambda run: run.fleet[1:], plan="the same checks on every other host"),
    Step("lock", lambda run: take_lock(run), undo=lambda run: run.lock.close(),
         plan="the deploy lock (.deploy/lock) on every host"),
    Step("back up", lambda run: back_up(run),
         plan="verified backup: the database on the primary; each host what it alone holds"),
    Step("deploy the code", lambda run: deploy_code(run), undo=lambda run: discard_unused_release(run), beside=True,
         plan="while the backup runs: pack the tag once; upload and unpack it on every host in parallel"),
    Step("check the extensions", lambda run: check_extensions(run), beside=True,
         plan="every extension manifest Directus will load, on each host"),
    Step("read the schema plan", lambda run: plan_schema(run), beside=True,
         plan="what the tag's schema snapshot changes; drops refused without --allow-destructive"),
    Step("schema gate", lambda run: confirm_schema(run),
         plan="drops allowed by --allow-destructive are confirmed (or --yes)"),
    Step("rehearse", lambda run: rehearse(run),
         plan="the release on a copy of production first, when asked for (--rehearse, DEPLOY_REHEARSE)"),
    Step("migrate", lambda run: migrate(run),
         plan="migrations and the schema apply, once; if they fail, the database back from the backup"),
    Step("system configuration", lambda run: apply_system_config(run),
         plan="config/system applied (merge; mirror with --allow-destructive)"),
    Step("switch", lambda run: switch(run),
         plan="switch and health gate, --batch hosts at a time; a failure puts every switched host back"),
    Step("verify", lambda run: verify(run),
         plan="every row, upload and extension still there; else code and database go back"),
    Step("record", lambda run: record(run), plan="one line in every host's deploy log"),
    Step("clean up", lambda run, view: clean_up_on(run, view), scope="each",
         plan="releases and backups beyond KEEP_RELEASES / KEEP_BACKUPS, on every host"),
    Step("unlock", lambda run: run.lock.close(), plan="the deploy lock given back"),
], hosts=lambda run: run.fleet)


@dataclass
class ReleaseRun:
    session: object = None
    tag_name: str | None = None  # as asked for (None: the newest tag)
    tag: Tag | None = None
    allow_destructive: bool = False
    confirm: Callable | None = None  # asks before a destructive change (None: never asks)
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
    fleet: list = field(default_factory=list)  # one view per host (session.fleet()), the primary first
    batch: int = 1  # hosts switched at a time
    previous_on: dict = field(default_factory=dict)  # host -> the release it served before
    revisions: dict = field(default_factory=dict)  # host -> the REVISION made there
    host_backups: dict = field(default_factory=dict)  # host -> its own backup (hosts other than the primary)
    switched_hosts: list = field(default_factory=list)  # views that went live on the release
    shared_uploads: bool | None = None  # every host sees the primary's uploads folder (one storage)
    lock: ExitStack = field(default_factory=ExitStack)  # the deploy lock, while held
    step_results: list = field(default_factory=list)  # the runner's StepResults (pipeline.py)

    @property
    def primary(self):
        return self.fleet[0]


def release(session, tag_name: str | None, *, allow_destructive: bool = False, confirm=None,
            rehearse_mode: str | None = None, batch: int = 1) -> ReleaseRun:
    run = ReleaseRun(session, tag_name, allow_destructive=allow_destructive, confirm=confirm,
                     rehearse=rehearse_mode or session.config.rehearse, batch=batch)
    if session.dry_run:
        session.console.say("The release, step by step:")
        session.console.table(PLAN_HEADERS, RELEASE.plan())
    # a dry run's plan reads best in order; a real run dumps the database and uploads the code at once
    RELEASE.run(run, say=session.console.say, report=run.step_results, parallel=not session.dry_run)
    return run


def check_tag(run: ReleaseRun) -> None:
    session = run.session
    console = session.console
    source = Source(session.config.source)
    with console.step("check the tag and the configuration") as step:
        runtime = session.runtime
        if run.rehearse != "never" and not runtime.RELEASE_HOLDS_DEPENDENCIES:
            # the rehearsal starts the release's own node_modules against a copy of the database
            raise Refused(f"a rehearsal is not built for DIRECTUS_SERVICE={runtime.NAME} yet: release without "
                          "--rehearse (DEPLOY_REHEARSE=never)")
        tag = run.tag = source.resolve(run.tag_name)
        mismatch = source.remote_tag_mismatch(tag)
        if mismatch:
            run.warnings.append(mismatch)
            console.say(f"    warning: {mismatch}")
        run.carries_config = bool(source.files(tag, system_config.EXPORT_DIR + "/data"))
        step.detail = f"{tag.name} = {tag.commit[:10]}" + (f"; brings {system_config.EXPORT_DIR}" if run.carries_config else "")


def connect(run: ReleaseRun) -> None:
    run.fleet = run.session.fleet()


def take_lock(run: ReleaseRun) -> None:
    """Held from here to the "unlock" step; given back by the undo when a step fails."""
    run.lock.enter_context(lock.held(run.session, f"release {run.tag.name}"))


def check_host(session, run: ReleaseRun) -> None:
    remote, layout = session.remote(), session.layout
    with session.console.step("check the host: tools, disk, layout, production health") as step:
        runtime = session.runtime
        facts = read_host_facts(remote, layout.root, {**TOOLS, **runtime.TOOLS})
        require_node(remote, facts)
        needed = ("npm", "tar", "zstd", "rsync") if runtime.RELEASE_HOLDS_DEPENDENCIES else ("tar", "zstd", "rsync")
        for tool in (*needed, *runtime.TOOLS):
            if tool not in facts.tools:
                raise Refused(f"{remote.name}: {tool} not found on the host")
        if not facts.layout_exists:
            raise Refused(f"{remote.name}: {layout.root} is not set up; run fab deploy.setup or fab deploy.adopt first")
        reuses = True  # an image holds Directus: a release is its code alone
        if runtime.RELEASE_HOLDS_DEPENDENCIES:
            lockfile = Source(session.config.source).lockfile_hash(run.tag)[:16]
            reuses = any(store.startswith(lockfile + "-") for store in facts.dependency_stores)
        need = CODE_DISK if reuses else DEPS_DISK
        if facts.free_kib * 1024 < need:
            raise Refused(f"{remote.name}: only {facts.free_kib // 1024} MiB free at {facts.disk_of}; this release needs "
                          f"about {need >> 20} MiB{'' if reuses else ' (a new dependency store)'}; free some space")
        previous = facts.current_release
        run.previous_on[session.name] = previous
        if session is run.primary:
            commit = facts.current_revision.get("commit")
            run.previous, run.previous_commit = previous, commit if is_commit(commit) else None
        elif previous != run.previous:
            run.warnings.append(f"{session.name} serves {previous}, the primary {run.previous}")
            session.console.say(f"    warning: this host serves {previous}, the primary {run.previous}")
        if previous:
            # after whatever an interrupted run left running on the host (a restart) is done
            service = session.service
            gate = remote.script(serial_lock(layout, wait_only=True) + "\n" + service.health_check([], 30), changes=False,
                                 check=False, secret_env=service.secret_env, what="check production's health")
            service.health_report(remote, gate)
        step.detail = (f"node {facts.node_version}, {facts.free_kib >> 20} GiB free, "
                       + (f"production healthy on {previous}" if previous else "first release"))
    if session.switch_method == "bluegreen":
        with session.console.step("check nginx for the blue/green switch") as step:
            upstream = nginx.check_ready(session)
            every = session.runtime.instances()
            serving = instances.serving(every, upstream.live_port)
            step.detail = (f"{session.config.nginx_upstream} -> {serving}; nginx -t ok; "
                           f"the release will start on {instances.idle(every, serving)}")


def back_up(run: ReleaseRun) -> None:
    session = run.session
    if not run.previous:
        session.console.say("==> no production yet: nothing to back up")
        return
    reason = f"pre-release-{run.tag.name}"
    others = run.fleet[1:]
    if not others or session.dry_run:  # one host, or a dry run (which writes no mark to look for)
        run.backup = take_backup(run.primary, reason=reason, for_release=run.tag.name, system_config=run.carries_config)
        return
    steps.production_now(run.primary)
    run.shared_uploads = uploads_shared(run)
    parts = ("extensions", "env") if run.shared_uploads else ("files", "extensions", "env")

    def back_up_on(view) -> dict | None:  # the database and all on the primary; what each other host holds alone
        if view is run.primary:
            return take_backup(view, reason=reason, for_release=run.tag.name, system_config=run.carries_config)
        return take_backup(view, reason=reason, parts=parts, for_release=run.tag.name)

    run.backup, *taken = on_each_host(run.fleet, back_up_on)
    run.host_backups = {view.name: backup for view, backup in zip(others, taken)}


def uploads_shared(run: ReleaseRun) -> bool:
    """Whether every host's uploads folder is the primary's (one network storage, or no local
    uploads at all): a marker file written there on the primary, looked for on the others."""
    production = run.primary.production
    if not production or not production.uploads:
        return True
    marker = f"{production.uploads}/.directus-deploy-shared-{secrets.token_hex(6)}"
    primary = run.primary.remote()
    primary.run(["touch", "--", marker], what="mark the uploads folder")
    try:
        seen = [view.remote().query(["test", "-f", marker], check=False).ok for view in run.fleet[1:]]
    finally:
        primary.run(["rm", "-f", "--", marker], what="remove the mark", check=False)
    shared = all(seen)
    run.primary.console.say("    uploads: one storage for every host (backed up once, here)" if shared else
                            "    uploads: each host has its own (each backs up its own)")
    return shared


def deploy_code(run: ReleaseRun) -> None:
    session = run.session
    if len(run.fleet) == 1:
        made = {run.primary: steps.deploy_code(run.primary, run.tag)}
    else:
        made = steps.deploy_code_everywhere(session, run.fleet, run.tag)
    run.revisions = {view.name: revision for view, revision in made.items()}
    run.revision = run.revisions[run.primary.name]
    run.release_id = run.revision["release"]


def check_extensions(run: ReleaseRun) -> None:
    if run.primary.dry_run:
        return
    for view in run.fleet:
        revision = run.revisions[view.name]
        with view.console.step("check every extension manifest on the host") as step:
            revision["loadable"] = steps.check_host_extensions(view, run.release_id, revision.pop("manifests_on_host", None))
            step.detail = f"{len(revision['loadable'])} valid"


def plan_schema(run: ReleaseRun) -> None:
    """While the backup runs: the running Directus (or the release's CLI) says what the tag's
    snapshot changes; the backup does not change the schema, and the lock keeps others off."""
    session = run.primary
    if session.dry_run:
        session.console.say("    would read the schema plan, run migrations and apply the snapshot")
        return
    run.plan = steps.schema_plan(session, run.release_id, run.allow_destructive)
    if run.plan.deletions and session.switch_method == "bluegreen":
        # blue/green runs the old release on the migrated database until the switch
        raise Refused(f"the schema apply drops {', '.join(run.plan.deletions)}, and with blue/green the old release "
                      "would keep serving without them until the switch; release this one with --restart")


def confirm_schema(run: ReleaseRun) -> None:
    """Asked once the backup is done: its output and the question do not interleave."""
    if run.plan and run.plan.deletions and run.confirm:
        run.confirm(f"The schema apply will DROP {', '.join(run.plan.deletions)} and their data. Continue?")


def rehearse(run: ReleaseRun) -> None:
    """On a copy of production first, when asked for (DEPLOY_REHEARSE, --rehearse)."""
    session = run.primary
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
        record_everywhere(run, "rehearsal-failed")
        raise


def migrate(run: ReleaseRun) -> None:
    session = run.primary
    if session.dry_run:
        return
    try:
        run.migrated = steps.migrate(session, run.release_id, run.plan)
    except Exception as failure:
        # migrations are not transactional: a half-migrated database goes back to the backup
        if not run.backup:
            raise
        raise database_put_back(run, f"migrations failed ({failure})", failure) from None
    except KeyboardInterrupt:
        if run.backup:
            session.console.say(f"    interrupted: the migrations run on to their end on the host; {run.previous} "
                                f"still serves; to undo them: fab backup.restore --id={run.backup['id']} --only=db")
        raise


def apply_system_config(run: ReleaseRun) -> None:
    """Roles, policies, flows, settings... from the release's config/system, after the schema
    they refer to: merge (adds and updates) unless deletions were allowed (mirror)."""
    session, confirm = run.primary, run.confirm
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
        raise database_put_back(run, f"the system configuration failed ({failure})", failure) from None


SYSTEM_CONFIG_MODES = {"merge": "merge: adds and updates, never deletes", "mirror": "mirror: production made to match"}


def switch(run: ReleaseRun) -> None:
    session = run.session
    if session.dry_run:
        session.console.say("    would switch to the new release and pass the health gate"
                            + (f", {run.batch} host(s) at a time" if len(run.fleet) > 1 else ""))
        return
    try:
        for batch in batches(run.fleet, run.batch):
            switch_batch(run, batch)
        run.switched = True
        if _migrations_ran(run):
            run.primary.service.clear_cache(run.primary)  # one cache, shared by every host
    except DeployError as failure:
        several = len(run.fleet) > 1
        if not several and not isinstance(failure, RolledBack):
            raise  # not even the previous release is healthy: nothing to put back automatically
        roll_back_code(run, "another host failed" if several else str(failure))
        if run.backup and _migrations_ran(run):
            put_database_back(run, "the new release failed its health gate after migrations ran")
        record_everywhere(run, "rolled-back")
        if several:
            raise RolledBack(f"{failure}; every host is back on the release it served") from None
        raise
    except KeyboardInterrupt:
        roll_back_code(run, "interrupted during the switch")
        raise


def batches(fleet: list, size: int) -> list[list]:
    return [fleet[start:start + size] for start in range(0, len(fleet), max(1, size))]


def switch_batch(run: ReleaseRun, batch: list) -> None:
    """Switch the hosts of one batch (at the same time when more than one), each through its
    own health gate. A host that failed its gate has switched itself back; the others of the
    batch and of earlier ones count as switched, for the caller to switch back."""
    def one(view):
        run.switched_hosts.append(view)  # from here on it may be live: interrupted, it goes back
        try:
            steps.switch(view, run.release_id, run.revisions[view.name]["loadable"], run.previous_on.get(view.name))
        except DeployError as failure:
            if isinstance(failure, RolledBack):
                run.switched_hosts.remove(view)  # it put itself back
            if len(run.fleet) > 1:
                raise type(failure)(f"{view.name}: {failure}") from None
            raise

    if len(batch) == 1:
        one(batch[0])
        return
    outcomes = on_each_host(batch, lambda view: _caught(one, view))
    failures = [why for why in outcomes if why]  # each already names its host
    if failures:
        raise RolledBack("; ".join(failures))


def _caught(call, view) -> str | None:
    try:
        call(view)
    except DeployError as failure:
        return str(failure)
    return None


def verify(run: ReleaseRun) -> None:
    primary = run.primary
    if primary.dry_run or not run.backup:
        return

    def check(view) -> list:
        backup = run.backup if view is primary else run.host_backups.get(view.name)
        if not backup:
            return []
        parts = ("db", "files", "extensions") if view is primary else ("files", "extensions")
        with view.console.step("check every row, upload and extension is still there") as step:
            production = view.production or steps.production_now(view)
            now_serving = moved_to(production, view.layout.release_dir(run.release_id), run.release_id)
            checks = check_preservation(view, now_serving, backup, exact=False, parts=parts,
                                        allowed_losses=run.plan.allowed_losses() if run.plan else None,
                                        migrations=run.migrations_after if view is primary else None)
            step.detail = "; ".join(f"{c[0]} {c[1]}" for c in checks)
        return [(f"{view.name}: {c[0]}" if view is not primary else c[0], *c[1:]) for c in checks]

    for checks in on_each_host(run.fleet, check):
        run.checks += checks
    failed = [c for c in run.checks if c[1] != "OK"]
    if failed:
        roll_back_code(run, f"verification failed: {failed[0][0]}: {failed[0][2]}")
        put_database_back(run, "verification failed")
        record_everywhere(run, "rolled-back")
        raise RolledBack(f"{failed[0][0]}: {failed[0][2]}; production is back on {run.previous} with the database "
                         f"of backup {run.backup['id']}")


def record(run: ReleaseRun) -> None:
    if run.primary.dry_run:
        return
    with run.primary.console.step("record the release in the deploy log" + (" of every host" if len(run.fleet) > 1 else "")):
        record_everywhere(run, "ok")


def record_everywhere(run: ReleaseRun, outcome: str) -> None:
    """The same line in every host's deploy log (the primary's is the one that counts)."""
    entry = _entry(run, outcome)
    on_each_host(run.fleet, lambda view: steps.record(view, entry))


def clean_up_on(run: ReleaseRun, view) -> None:
    if view.dry_run:
        return
    with view.console.step("clean up old releases and backups") as step:
        stock = read_inventory(view.remote(), view.layout)
        problem = log_problem(stock, view.layout)
        if problem:  # the release is live and recorded: it stands; only the deleting waits
            warning = f"clean up skipped, nothing was deleted: {problem}; then run fab deploy.cleanup and fab backup.prune"
            run.warnings.append(warning)
            view.console.say(f"    warning: {warning}")
            step.detail = "skipped (the deploy log cannot be trusted)"
            return
        config = view.config
        releases = cleanup_plan(stock.releases, stock.entries, config.keep_releases)
        kept = {r["id"] for r in stock.releases} - set(releases)
        backups = prune_plan(stock.backups, stock.entries, kept, config.keep_backups, view.console.say)
        lines = (cleanup_lines(view.layout, releases, view.runtime.release_removed)
                 + prune_lines(view.layout, stock.backups, backups, stock.incomplete_backups))
        view.remote().script("\n".join(lines), what="delete old releases and backups")
        step.detail = f"{len(releases)} releases and {len(backups)} backups removed"


# -- putting things back --------------------------------------------------------------------

def discard_unused_release(run: ReleaseRun) -> None:
    """A release refused or failed before it ever went live leaves nothing behind."""
    if not run.fleet or run.primary.dry_run or not run.release_id or run.switched:
        return
    for view in run.fleet:
        remote, layout = view.remote(), view.layout
        try:
            if current_release(remote, layout) != run.release_id and not _went_live(view, run):
                remote.run(["rm", "-rf", "--", layout.release_dir(run.release_id)], what="remove the unused release")
                view.console.say(f"    removed release {run.release_id} (never went live)")
        except Exception:  # noqa: BLE001 - the original failure matters more; cleanup removes it later
            pass


def _went_live(view, run: ReleaseRun) -> bool:
    """True once the switch was attempted here (a switched-back release is kept, marked failed)."""
    return any(step.name.startswith(view.console.prefix + "switch to") for step in view.console.steps)


def _migrations_ran(run: ReleaseRun) -> bool:
    """Whether the database changed: migrations, the schema apply, or the system configuration."""
    return bool(run.migrated.get("migrations") or run.migrated.get("bootstrap") or "schema apply" in run.migrated
                or run.system_config)


def roll_back_code(run: ReleaseRun, why: str) -> None:
    """Every host that went live on the release goes back to what it served before."""
    for view in reversed(run.switched_hosts):
        previous = run.previous_on.get(view.name)
        if not previous:
            continue
        view.console.say(f"    {why}: switching back to {previous}")
        switch_to(view, previous, [], previous=previous)  # if even that fails, stay and say so
    run.switched_hosts = []


def put_database_back(run: ReleaseRun, why: str) -> None:
    """The database as the backup held it. With several hosts, the others' Directus stops
    first (they would serve a database being replaced) and starts again after."""
    primary, others = run.primary, run.fleet[1:]
    primary.console.say(f"    {why}: restoring the database from backup {run.backup['id']}")
    for view in others:
        view.remote().script(view.service.stop() or "true", what="stop Directus for the database restore")
    try:
        outcome = restore_backup(primary, run.backup["id"], parts=("db",))
    finally:
        for view in others:
            release_dir = view.layout.release_dir(current_release(view.remote(), view.layout))
            view.remote().script(view.service.start(release_dir), what="start Directus again",
                                 critical=True, check=False)
            view.service.health_gate(view.remote(), [])
    run.warnings.append(f"database restored from {run.backup['id']}; the state before that is in {outcome['safety_backup']}")


def database_put_back(run: ReleaseRun, why: str, failure: Exception) -> RolledBack:
    """After a change to the database failed halfway: the backup's database back, the
    release recorded as rolled back; the error to raise."""
    put_database_back(run, why)
    record_everywhere(run, "rolled-back")
    return RolledBack(f"{failure}; the database is back as backup {run.backup['id']} held it, "
                      f"production still runs {run.previous}")


def _entry(run: ReleaseRun, outcome: str) -> dict:
    primary = run.primary
    entry = {
        "action": "release", "release": run.release_id, "tag": run.tag.name, "commit": run.tag.commit,
        "from": run.previous, "backup": run.backup["id"] if run.backup else None, "outcome": outcome,
        "schema_changes": run.plan.changes if run.plan else [],
        "migrations_applied": run.migrated.get("migrations") or run.migrated.get("bootstrap") or [],
        # what the database holds now: a later code-only rollback to this release checks it
        "migrations": (run.migrations_after or steps.migrations_now(primary)[0]) if outcome == "ok" else None,
        "rehearsal": run.rehearsal or None,
        "system_config": ({"mode": run.system_config.get("mode"), "plan": run.system_config.get("plan")}
                          if run.system_config else None),
        "timings": {step.name: round(step.seconds, 2) for step in primary.console.steps},
    }
    if len(run.fleet) > 1:
        entry["primary"] = primary.name
        entry["hosts"] = {view.name: {"from": run.previous_on.get(view.name),
                                      "backup": (run.host_backups.get(view.name) or {}).get("id"),
                                      "live": view in run.switched_hosts or outcome == "ok"} for view in run.fleet}
    return entry
