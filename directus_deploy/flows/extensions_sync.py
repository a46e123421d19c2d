"""Extension-only hotfixes, and what is loaded now.

A hotfix is still a new release: the current release is copied, only its `extensions/` is
replaced with the tag's (the marketplace `.registry` link stays), and the copy goes live through
the same switch and health gate. Releases stay immutable; no `npm ci`, no migration.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from directus_deploy.core.errors import Refused
from directus_deploy.core.extensions import PRINT_MANIFESTS, printed_manifests
from directus_deploy.core.source import Source, Tag, is_commit
from directus_deploy.flows import steps
from directus_deploy.flows.pipeline import PLAN_HEADERS, Pipeline, Step
from directus_deploy.flows.switch import current_release
from directus_deploy.host.remote import q
from directus_deploy.state import deploylog
from directus_deploy.state.releases import compress, prepare_code, release_id_for

# The hotfix, top to bottom. Production serves the current release, untouched, until the switch.
EXTENSIONS_SYNC = Pipeline([
    Step("compare", lambda run: compare(run),
         plan="the tag differs from the current release only under extensions/"),
    Step("pack", lambda run: pack(run),
         plan="check the tag's extension manifests, build what needs building, pack extensions/"),
    Step("make the release", lambda run: make_release(run), undo=lambda run: discard_unused(run),
         plan="a copy of the current release with the tag's extensions/ (the marketplace's .registry kept)"),
    Step("check the extensions", lambda run: check_extensions(run),
         plan="every extension manifest Directus will load, on the host"),
    Step("switch", lambda run: switch(run),
         plan="switch and health gate; a failure switches back (the release is kept, marked failed)"),
    Step("record", lambda run: record(run), plan="one line in the deploy log"),
])


@dataclass
class SyncRun:
    session: object
    tag: Tag
    current: str | None = None  # the release live before
    revision: dict = field(default_factory=dict)  # its REVISION
    changed: list = field(default_factory=list)  # files changed under extensions/
    code: object = None  # the packed tag (releases.PreparedCode)
    release_id: str | None = None  # the release made, once it exists on the host
    extensions: list = field(default_factory=list)  # the names Directus must load after the switch
    switch_attempted: bool = False
    work: ExitStack = field(default_factory=ExitStack)  # the local folder the tag is packed in


def sync_extensions(session, tag: Tag) -> dict:
    """Ship the extensions of `tag` as a new release cloned from the current one."""
    run = SyncRun(session, tag)
    if session.dry_run:
        session.console.say("The extension hotfix, step by step:")
        session.console.table(PLAN_HEADERS, EXTENSIONS_SYNC.plan())
    with run.work:
        EXTENSIONS_SYNC.run(run, say=session.console.say)
    return {"release": run.release_id, "changed": run.changed}


def compare(run: SyncRun) -> None:
    session, tag = run.session, run.tag
    remote, layout = session.remote(), session.layout
    with session.console.step(f"compare tag {tag.name} with the current release") as step:
        run.current = current_release(remote, layout)
        if not run.current:
            raise Refused("no current release: make one with fab release")
        revision = run.revision = json.loads(remote.read_file(posixpath.join(layout.release_dir(run.current), "REVISION")))
        if not is_commit(revision.get("commit")):
            raise Refused(f"the REVISION of release {run.current} names commit {revision.get('commit')!r}, not a "
                          "commit id (40 hex digits); ship the tag with fab release")
        changed = Source(session.config.source).changed_files(revision["commit"], tag.commit)
        outside = [f for f in changed if not f.startswith("extensions/")]
        if outside:
            raise Refused(f"tag {tag.name} changes more than extensions/ ({', '.join(outside[:4])}); "
                          "ship it with fab release")
        if not changed:
            raise Refused(f"tag {tag.name} has the same extensions as the current release {run.current}")
        run.changed = changed
        step.detail = f"{len(changed)} files changed under extensions/ since {revision['tag']}"


def pack(run: SyncRun) -> None:
    console = run.session.console
    work = run.work.enter_context(tempfile.TemporaryDirectory(prefix="directus-deploy-"))
    with console.step(f"check and pack the extensions of {run.tag.name}") as step:
        run.code = prepare_code(Source(run.session.config.source), run.tag, Path(work), console.say)
        step.detail = f"{len(run.code.extensions)} manifests valid"


def make_release(run: SyncRun) -> None:
    session, tag, current = run.session, run.tag, run.current
    remote, layout = session.remote(), session.layout
    if session.dry_run:
        session.console.say(f"    would copy release {current} with the extensions of {tag.name} and switch to it")
        return
    release_id = release_id_for(tag)
    with session.console.step(f"make release {release_id} from {current} with the new extensions"):
        archive = compress(run.code.archive)
        incoming = posixpath.join(layout.releases, f".incoming-{release_id}.tar.zst")
        temp = posixpath.join(layout.releases, f".tmp-{release_id}")
        remote.upload(archive, incoming)
        new_revision = {**run.revision, "release": release_id, "tag": tag.name, "commit": tag.commit,
                        "tag_date": tag.date, "base_release": current, "deployed_by": deploylog.who(),
                        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "extensions": sorted(e.name for e in run.code.extensions), "built_extensions": run.code.built}
        script = "\n".join([
            f"cp -a -- {q(layout.release_dir(current))} {q(temp)}",
            f"find {q(temp + '/extensions')} -mindepth 1 -maxdepth 1 ! -name .registry -exec rm -rf -- {{}} +",
            f"zstd -q -dc -- {q(incoming)} | tar -x --no-same-owner -C {q(temp)} extensions",
            f"rm -f -- {q(incoming)}",
            f"cat > {q(temp + '/REVISION')}",
            f"mv -T -- {q(temp)} {q(layout.release_dir(release_id))}",
        ])
        try:
            remote.script(script, stdin=json.dumps(new_revision, indent=1) + "\n", what="make the release")
        except BaseException:
            remote.run(["rm", "-rf", "--", temp, incoming], check=False)
            raise
        run.release_id = release_id


def discard_unused(run: SyncRun) -> None:
    """A release that never went live leaves nothing behind; one switched back is kept, marked failed."""
    if not run.release_id or run.switch_attempted:
        return
    session = run.session
    try:
        session.remote().run(["rm", "-rf", "--", session.layout.release_dir(run.release_id)],
                             what="remove the unused release")
        session.console.say(f"    removed release {run.release_id} (never went live)")
    except Exception:  # noqa: BLE001 - the original failure matters more; cleanup removes it later
        pass


def check_extensions(run: SyncRun) -> None:
    if run.release_id:
        run.extensions = steps.check_host_extensions(run.session, run.release_id)


def switch(run: SyncRun) -> None:
    if not run.release_id:
        return
    run.switch_attempted = True
    try:
        steps.switch(run.session, run.release_id, run.extensions)
    except Exception:
        steps.record(run.session, {"action": "extensions-sync", "release": run.release_id, "from": run.current,
                                   "outcome": "failed"})
        raise


def record(run: SyncRun) -> None:
    if not run.release_id:
        return
    steps.record(run.session, {"action": "extensions-sync", "release": run.release_id, "from": run.current,
                               "tag": run.tag.name, "outcome": "ok", "migrations": steps.migrations_now(run.session)[0]})


def loaded_extensions(session) -> list[list[str]]:
    """Rows: name, version, type, source, folder, loaded — on disk and as Directus reports."""
    remote, layout = session.remote(), session.layout
    release = current_release(remote, layout)
    if not release:
        raise Refused("no current release on the host")
    out = remote.query(f"cd {q(layout.release_dir(release))}/extensions 2>/dev/null && {PRINT_MANIFESTS}",
                       what="read extension manifests").stdout
    on_disk = {}
    for path, text in printed_manifests(out):
        try:
            package = json.loads(text)
        except ValueError:
            continue
        if isinstance(package, dict) and "directus:extension" in package:
            source = "registry" if path.startswith(".registry/") else "local"
            on_disk[package.get("name", path)] = [str(package.get("version", "")),
                                                  str(package["directus:extension"].get("type", "")),
                                                  source, posixpath.dirname(path)]
    loaded = set(session.service.loaded_extensions(remote))
    rows = [[name, *facts, "yes" if name in loaded else "NO"] for name, facts in sorted(on_disk.items())]
    rows += [[name, "", "", "?", "", "yes (not on disk?)"] for name in sorted(loaded - set(on_disk))]
    return rows
