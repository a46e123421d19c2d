"""The deploy steps, each usable on its own (fab deploy.code, deploy.migrate, deploy.switch)
and strung together by the release. Each prints its name, outcome and duration."""

from __future__ import annotations

import fnmatch
import posixpath
import tempfile
from pathlib import Path

from directus_deploy.core.errors import Refused
from directus_deploy.core.extensions import PRINT_MANIFESTS, check_printed, describe_problems
from directus_deploy.core.source import Source, Tag
from directus_deploy.flows.schema import SchemaPlan, migrate_and_apply, pending_migrations, read_plan, refuse_deletions
from directus_deploy.flows.switch import current_release, switch_to
from directus_deploy.host.remote import q
from directus_deploy.state import deploylog
from directus_deploy.state.production import locate, parse_env, register_secrets
from directus_deploy.state.releases import (
    create_release,
    create_release_everywhere,
    list_releases,
    prepare_code,
    release_id_for,
)
from directus_deploy.state.shared import shared_links


def read_shared_env(session, tag: Tag | None = None) -> dict:
    """The settings a new release links its shared state by: the production's, or the .env in
    shared/ (the release links to it). A runtime that reads its own settings (an image's) with no
    production yet reads them from the tag's files beside that .env (`tag`)."""
    known = session.production
    if known is not None and known.in_layout:
        return known.env  # read moments ago from the same file, through the release's link
    text = session.remote().read_file(session.layout.shared_env, missing_ok=True)
    if text is None:
        raise Refused(f"{session.layout.shared_env} is missing: set the host up first (fab deploy.setup or deploy.adopt)")
    env = parse_env(session.remote(), text)
    if session.runtime.READS_OWN_SETTINGS and tag is not None and not session.dry_run:
        try:
            return production_now(session).env
        except Refused:
            return tag_settings(session, tag)
    return env


def tag_settings(session, tag: Tag) -> dict:
    """Directus's settings as the runtime reads them from the tag's top-level files, in a
    scratch folder on the host beside a link to the production .env (no release exists yet)."""
    remote, source = session.remote(), Source(session.config.source)
    names = [p for p in source.files(tag) if "/" not in p
             and any(fnmatch.fnmatch(p, pattern) for pattern in session.runtime.DEFINED_BY)]
    scratch = posixpath.join(session.layout.releases, ".settings-" + tag.commit[:12])
    remote.script(f"rm -rf -- {q(scratch)} && mkdir -m 700 -- {q(scratch)} && "
                  f"ln -s -- {q(session.layout.shared_env)} {q(scratch + '/.env')}", what="make a scratch folder")
    try:
        for name in names:  # through standard input: such a file may hold secrets
            remote.write_file(posixpath.join(scratch, name), source.read(tag, name).decode("utf-8", "replace"),
                              mode="0600")
        out = remote.script("root=" + q(scratch) + "\n" + session.runtime.settings_script('"$root"'),
                            what="read the tag's settings", changes=False).stdout
    finally:
        remote.run(["rm", "-rf", "--", scratch], check=False)
    found = session.runtime.read_settings(scratch, out)
    register_secrets(remote, found["process"])
    return found["process"]


def in_shared(layout, env: dict, relative: str) -> str:
    """Where a path of the release's settings really is: in shared/ when a link takes it there."""
    normal = posixpath.normpath(relative)
    for link in shared_links(layout, env):
        if normal == link.path or normal.startswith(link.path + "/"):
            return link.target + normal[len(link.path):]
    return normal


def deploy_code(session, tag: Tag, *, base_release: str | None = None) -> dict:
    """Check and pack the tag here, then make its release on the host. Returns REVISION."""
    console = session.console
    env = read_shared_env(session, tag)
    with tempfile.TemporaryDirectory(prefix="directus-deploy-") as work:
        with console.step(f"check extensions and pack tag {tag.name}") as step:
            code = prepare_code(Source(session.config.source), tag, Path(work), console.say,
                                lockfile=session.runtime.RELEASE_HOLDS_DEPENDENCIES)
            built = f", built {', '.join(code.built)}" if code.built else ""
            step.detail = f"{len(code.extensions)} extension manifests valid{built}"
        release_id = release_id_for(tag)
        with console.step(f"upload and unpack release {release_id}") as step:
            revision = create_release(session, code, release_id, env, progress=None, base_release=base_release)
            if not session.dry_run:
                step.detail = f"dependencies {revision['deps_how']} ({revision['deps']})"
    if session.runtime.READS_OWN_SETTINGS and not session.dry_run:
        try:
            check_release_settings(session, release_id, env)
        except BaseException:  # the release never goes live: it goes
            session.remote().run(["rm", "-rf", "--", session.layout.release_dir(release_id)], check=False)
            raise
    return revision


def check_release_settings(session, release_id: str, env: dict) -> None:
    """The new release, as its runtime will start it (from the release's own files), keeps its state
    where production keeps it: the same database and uploads, on the host."""
    with session.console.step("check the release's settings") as step:
        new = locate(session.remote(), session.layout, session.layout.release_dir(release_id))
        # a setting of another client means nothing (an image's default DB_FILENAME beside DB_CLIENT=pg)
        where = ("DB_FILENAME",) if str(env.get("DB_CLIENT", "")).strip() == "sqlite3" else ("DB_HOST", "DB_DATABASE")
        for key in ("DB_CLIENT", *where, "STORAGE_LOCAL_ROOT"):
            if str(new.env.get(key, "")) != str(env.get(key, "")):
                raise Refused(f"release {release_id}: {key} is {new.env.get(key, '') or 'unset'} where production has "
                              f"{env.get(key, '') or 'unset'}; a release must keep the database and uploads where they are")
        check = session.runtime.state_check(new.root)
        if check:
            keys = [k for k in new.env if k.startswith("STORAGE_") and k.endswith("_ROOT")] + ["STORAGE_LOCAL_ROOT"]
            host_paths = {key: in_shared(session.layout, new.env, str(new.env.get(key) or "./uploads")) for key in keys}
            host_paths["EXTENSIONS_REGISTRY"] = in_shared(session.layout, new.env, posixpath.join(
                str(new.env.get("EXTENSIONS_PATH") or "./extensions"), ".registry"))
            if new.db_client == "sqlite3":
                host_paths["DB_FILENAME"] = posixpath.dirname(in_shared(session.layout, new.env,
                                                                        str(new.env.get("DB_FILENAME", ""))))
            out = session.remote().query(check, what="check the state folders are writable").stdout
            problems = session.runtime.read_state_check(out, host_paths)
            if problems:
                raise Refused(f"release {release_id}: " + "; ".join(problems))
        step.detail = f"Directus {new.directus_version or '?'}, the same database and uploads, writable"


def deploy_code_everywhere(session, views, tag: Tag) -> dict:
    """`deploy_code` on several hosts at once: the code checked and packed once here, then
    uploaded and unpacked on every host in parallel. {view: REVISION}."""
    console = session.console
    env = read_shared_env(views[0], tag)
    with tempfile.TemporaryDirectory(prefix="directus-deploy-") as work:
        with console.step(f"check extensions and pack tag {tag.name}") as step:
            code = prepare_code(Source(session.config.source), tag, Path(work), console.say,
                                lockfile=session.runtime.RELEASE_HOLDS_DEPENDENCIES)
            step.detail = f"{len(code.extensions)} extension manifests valid"
        release_id = release_id_for(tag)
        with console.step(f"upload and unpack release {release_id} on {len(views)} hosts in parallel") as step:
            made = create_release_everywhere(views, code, release_id, env)
            if not session.dry_run:
                step.detail = "; ".join(f"{view.name}: dependencies {r['deps_how']}" for view, r in made.items())
    return made


def check_host_extensions(session, release_id: str, manifests: str | None = None) -> list[str]:
    """Validate the manifests Directus will load from the release and from .registry, on the
    host, before the switch (`manifests`: their text, if already read). Returns the names."""
    if manifests is None:
        manifests = session.remote().query(
            f"cd {q(session.layout.release_dir(release_id))}/extensions 2>/dev/null && {PRINT_MANIFESTS}; true",
            what="read extension manifests",
        ).stdout
    extensions = check_printed(manifests)
    problems = describe_problems(extensions)
    if problems:
        raise Refused(f"release {release_id}: invalid extension manifest ({problems}); Directus would load no extension")
    return sorted(e.name for e in extensions)


def schema_plan(session, release_id: str, allow_destructive: bool) -> SchemaPlan:
    with session.console.step("read the schema plan") as step:
        plan = read_plan(session.remote(), session.runtime, session.layout.release_dir(release_id),
                         str(read_shared_env(session).get("MIGRATIONS_PATH") or "./migrations"), session.service)
        if not plan.installed:
            step.detail = "empty database: Directus will be installed (bootstrap)"
        elif not plan.has_snapshot:
            step.detail = "no snapshots/schema.yaml in the release: schema left as it is"
        else:
            step.detail = ("no changes" + (" (asked the running Directus)" if plan.checked_by == "http" else "")
                           if plan.empty else "; ".join(plan.changes[:6]))
        refuse_deletions(plan, allow_destructive)
    return plan


def migrate(session, release_id: str, plan: SchemaPlan) -> dict:
    with session.console.step("run migrations and apply the schema") as step:
        before = _applied_migrations(session) if plan.installed else []
        pending = pending_migrations(plan.migration_files, before) if plan.installed else None
        outcome = migrate_and_apply(session.remote(), session.layout, session.runtime,
                                    session.layout.release_dir(release_id), plan, pending)
        ran = "bootstrap" if "bootstrap" in outcome else "migrations" if pending != [] else None
        after = _applied_migrations(session) if ran else None
        if after is not None:  # what ran, as the database records it (Directus's log may say nothing)
            outcome[ran] = [version for version in after if version not in set(before or [])]
        applied = outcome.get("migrations") or outcome.get("bootstrap") or []
        if pending == []:
            step.detail = "no migration pending"
        else:
            step.detail = f"{len(applied)} migrations applied" + (f" ({', '.join(applied[:8])})" if applied else "")
        step.detail += "; schema applied" if "schema apply" in outcome else ""
    return outcome


def _applied_migrations(session) -> list[str] | None:
    """The versions directus_migrations holds, read through the live production; None when
    there is none yet (the first release after deploy.setup): then migrate:latest decides."""
    try:
        return migrations_now(session)[0]
    except Refused:
        return None


def switch(session, release_id: str, extensions: list[str], previous: str | None = None) -> dict:
    how = SWITCH_HOW[session.switch_method]
    if session.dry_run:
        session.console.say(f"    would switch current to {release_id} ({how}) and pass the health gate")
        return {"previous": previous}
    with session.console.step(f"switch to {release_id} ({how})") as step:
        report = switch_to(session, release_id, extensions, previous)
        loaded = f"{len(report.get('loaded', []))} extensions loaded"
        if report["strategy"] == "bluegreen":
            step.detail = f"healthy on {report['instance']} after {report['seconds']:.1f}s, {loaded}; no restart seen by users"
        else:
            step.detail = f"healthy; Directus restart {report['restart_seconds']:.1f}s, {loaded}"
    return report


SWITCH_HOW = {
    "restart": "restart Directus, health gate",
    "bluegreen": "blue/green: start on the idle port, health gate, move nginx, drain",
}


def rehearse_alone(session, tag: Tag, backup_id: str | None = None) -> dict:
    """`fab deploy.rehearse`: the tag made into a release, rehearsed on a copy of production
    (a new verified backup, or `backup_id`), then removed again: production is untouched."""
    from directus_deploy.flows.backup import take_backup
    from directus_deploy.flows.rehearsal import rehearse
    from directus_deploy.state.backup_catalog import read_manifest
    from directus_deploy.state.layout import check_id

    production_now(session)
    if backup_id:
        with session.console.step(f"read backup {check_id('backup', backup_id)}") as step:
            backup = read_manifest(session.remote(), session.layout, backup_id)
            step.detail = f"taken {backup.get('created_at')} ({backup.get('reason')})"
    else:
        backup = take_backup(session, reason=f"pre-rehearsal-{tag.name}", for_release=tag.name)
    revision = deploy_code(session, tag)
    release_id = revision["release"]
    try:
        names = check_host_extensions(session, release_id, revision.pop("manifests_on_host", None))
        plan = schema_plan(session, release_id, allow_destructive=True)
        if plan.deletions:
            session.console.say(f"    note: the schema apply would DROP {', '.join(plan.deletions)} (a release needs "
                                "--allow-destructive)")
        outcome = rehearse(session, release_id, backup, names, plan)
    finally:
        session.remote().run(["rm", "-rf", "--", session.layout.release_dir(release_id)], what="remove the release",
                             check=False)
    return {**outcome, "release": release_id, "plan": plan.changes}


def pick_release(session, release_id: str | None) -> str:
    """The release a standalone step works on: the one given, or the newest not yet current."""
    releases = list_releases(session.remote(), session.layout)
    if release_id:
        if not any(r["id"] == release_id for r in releases):
            raise Refused(f"no release {release_id} on the host (fab deploy.releases lists them)")
        return release_id
    pending = [r["id"] for r in releases if not r["current"]]
    current = current_release(session.remote(), session.layout)
    newer = [r for r in pending if not current or r > current]
    if not newer:
        raise Refused("no release newer than the current one; make one with fab deploy.code --tag=...")
    return newer[-1]


def production_now(session):
    session.production = locate(session.remote(), session.layout)
    return session.production


def record(session, entry: dict) -> dict:
    return deploylog.append(session.remote(), session.layout, entry)


def migrations_now(session, manifests_of: str | None = None) -> tuple[list[str], str | None]:
    """The Directus migrations the production database has applied; with `manifests_of`, the
    extension manifests of that release too, read in the same round trip."""
    from directus_deploy.engines import engine_for, parse_migrations

    production = session.production or production_now(session)
    engine = engine_for(production)
    script = engine.prelude(session.layout.backups) + engine.migrations()
    if manifests_of:
        script += f"\ncd {q(session.layout.release_dir(manifests_of))}/extensions 2>/dev/null && {PRINT_MANIFESTS}"
    out = session.remote().script(script, what="read migrations", changes=False, secret_env=engine.secret_env()).stdout
    migrations = parse_migrations(out)
    return migrations, (out if manifests_of else None)
