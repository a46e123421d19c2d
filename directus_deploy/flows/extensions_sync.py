"""Extension-only hotfixes, and what is loaded now.

A hotfix is still a new release: the current release is copied, only its `extensions/` is
replaced with the tag's (the marketplace `.registry` link stays), and the copy goes live through
the same switch and health gate. Releases stay immutable; no `npm ci`, no migration.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from directus_deploy.core.errors import Refused
from directus_deploy.core.extensions import PRINT_MANIFESTS, printed_manifests
from directus_deploy.core.source import Source, Tag, is_commit
from directus_deploy.flows import steps
from directus_deploy.flows.steps import check_host_extensions, record, switch
from directus_deploy.flows.switch import current_release
from directus_deploy.host.remote import q
from directus_deploy.state import deploylog
from directus_deploy.state.releases import compress, prepare_code, release_id_for


def sync_extensions(session, tag: Tag) -> dict:
    remote, layout, console = session.remote(), session.layout, session.console
    source = Source(session.config.source)
    with console.step(f"compare tag {tag.name} with the current release") as step:
        current = current_release(remote, layout)
        if not current:
            raise Refused("no current release: make one with fab release")
        revision = json.loads(remote.read_file(posixpath.join(layout.release_dir(current), "REVISION")))
        if not is_commit(revision.get("commit")):
            raise Refused(f"the REVISION of release {current} names commit {revision.get('commit')!r}, not a commit id "
                          "(40 hex digits); ship the tag with fab release")
        changed = source.changed_files(revision["commit"], tag.commit)
        outside = [f for f in changed if not f.startswith("extensions/")]
        if outside:
            raise Refused(f"tag {tag.name} changes more than extensions/ ({', '.join(outside[:4])}); "
                          "ship it with fab release")
        if not changed:
            raise Refused(f"tag {tag.name} has the same extensions as the current release {current}")
        step.detail = f"{len(changed)} files changed under extensions/ since {revision['tag']}"

    with tempfile.TemporaryDirectory(prefix="directus-deploy-") as work:
        with console.step(f"check and pack the extensions of {tag.name}") as step:
            code = prepare_code(source, tag, Path(work), console.say)
            step.detail = f"{len(code.extensions)} manifests valid"
        if session.dry_run:
            console.say(f"    would copy release {current} with the extensions of {tag.name} and switch to it")
            return {"release": None, "changed": changed}
        release_id = release_id_for(tag)
        with console.step(f"make release {release_id} from {current} with the new extensions"):
            archive = compress(code.archive)
            incoming = posixpath.join(layout.releases, f".incoming-{release_id}.tar.zst")
            temp = posixpath.join(layout.releases, f".tmp-{release_id}")
            remote.upload(archive, incoming)
            new_revision = {**revision, "release": release_id, "tag": tag.name, "commit": tag.commit,
                            "tag_date": tag.date, "base_release": current, "deployed_by": deploylog.who(),
                            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "extensions": sorted(e.name for e in code.extensions), "built_extensions": code.built}
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
    names = check_host_extensions(session, release_id)
    try:
        switch(session, release_id, names)
    except Exception:
        record(session, {"action": "extensions-sync", "release": release_id, "from": current, "outcome": "failed"})
        raise
    record(session, {"action": "extensions-sync", "release": release_id, "from": current, "tag": tag.name,
                     "outcome": "ok", "migrations": steps.migrations_now(session)[0]})
    return {"release": release_id, "changed": changed}


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
