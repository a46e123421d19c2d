"""Releases on the host: made from a tag, immutable once made, listed, cleaned up.

A release is `releases/<UTC ts>-<tag>/`: the tag's `git archive`, uploaded once (compressed),
unpacked into a temporary folder, given its REVISION, its links into `shared/` and its
`node_modules` (a link to `shared/deps/<lockfile hash>-node<major>/`, reused while the lockfile
and the host's Node major stay the same, else installed there with `npm ci --omit=dev`), and
only then renamed into place. The dependency store is also built in a temporary folder and
renamed when `npm ci` succeeded, so a failed install never leaves a store that looks usable.
"""

from __future__ import annotations

import json
import posixpath
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.core.extensions import (
    PRINT_MANIFESTS,
    build_missing,
    check_tree,
    describe_problems,
    missing_entries,
)
from directus_deploy.core.source import Source, Tag
from directus_deploy.host.remote import Remote, RemoteGroup, q
from directus_deploy.host.script import EMIT_FUNCTION, emit, json_object, parse_results, with_emit
from directus_deploy.state import deploylog
from directus_deploy.state.layout import Layout
from directus_deploy.state.shared import link_lines, shared_links

NPM_CI = "npm ci --omit=dev --no-audit --no-fund --loglevel=error"


def point_current(layout: Layout, release_id: str | None = None, *, target_word: str | None = None) -> str:
    """Shell moving `current` to a release with one rename (a link made under a temporary name,
    then `mv -T` over `current`): there is never a moment without `current`. The target is
    relative (`releases/<id>`), so the layout keeps working if DEPLOY_PATH moves; `target_word`
    is a shell word to use instead (a target read on the host, such as "$was"). The release
    gets its SERVED file (when it first went live): retention tells a release that served from
    one a killed run left unswitched, whatever the deploy log says. Never fails the move."""
    word = target_word or q(posixpath.join("releases", release_id))
    temp = layout.current + ".new"
    served = f"{q(layout.root)}/{word}/{SERVED_FILE}"
    return (f"ln -sfn -- {word} {q(temp)} && mv -T -- {q(temp)} {q(layout.current)} && "
            f"{{ [ -e {served} ] || date -u +%Y-%m-%dT%H:%M:%SZ > {served} || true; }} 2>/dev/null")


SERVED_FILE = "SERVED"  # in a release folder, beside REVISION


def release_id_for(tag: Tag, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{tag.name}"


@dataclass
class PreparedCode:
    """What was checked and built here, before anything went to the host."""

    tag: Tag
    archive: Path
    lockfile_sha256: str
    extensions: list  # checked Extension records (local ones)
    built: list


def prepare_code(source: Source, tag: Tag, work: Path, say, *, lockfile: bool = True) -> PreparedCode:
    """Archive the tag, check every extension manifest, build what needs building. `lockfile`:
    the release installs its dependencies from the tag's package-lock.json (not: an image)."""
    source.check_links(tag)  # whichever way the tag was found
    archive = work / f"{tag.name}.tar"
    source.archive(tag, archive)
    listing = source.files(tag)
    manifests = {p: source.read(tag, p) for p in listing if p.startswith("extensions/") and p.endswith("/package.json")
                 and p.count("/") == 2}
    extensions = check_tree(manifests, listing)
    problems = describe_problems(extensions)
    if problems:
        raise Refused(f"tag {tag.name}: invalid extension manifest ({problems}); Directus would load no extension at all")
    built = build_missing(source, tag, archive, extensions, say)
    for extension in extensions:
        present = {p[len(extension.folder) + 1:] for p in listing if p.startswith(extension.folder + "/")}
        if extension.folder not in built and missing_entries(extension, present):
            raise Refused(f"tag {tag.name}: {extension.folder} has no {', '.join(missing_entries(extension, present))} "
                          "and no build script")
    return PreparedCode(tag, archive, source.lockfile_hash(tag) if lockfile else "", extensions, built)


def compress(archive: Path) -> Path:
    target = archive.with_suffix(".tar.zst")
    subprocess.run(["zstd", "-q", "-T0", "-f", "-o", str(target), str(archive)], check=True)
    return target


def new_revision(code: PreparedCode, release_id: str, base_release: str | None = None) -> dict:
    return {
        "release": release_id,
        "tag": code.tag.name,
        "commit": code.tag.commit,
        "tag_date": code.tag.date,
        "deployed_by": deploylog.who(),
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lockfile_sha256": code.lockfile_sha256,
        "extensions": sorted(e.name for e in code.extensions),
        "built_extensions": code.built,
        "base_release": base_release,
    }


def made_entry(release_id: str, revision: dict) -> str:
    """The deploy log's line for a release folder made (its outcome comes later, in its own line)."""
    return json.dumps(deploylog.new_record({"action": "code", "release": release_id, "tag": revision.get("tag"),
                                            "commit": revision.get("commit"), "outcome": "made"}))


def _incoming(layout: Layout, release_id: str) -> tuple[str, str]:
    return (posixpath.join(layout.releases, f".incoming-{release_id}.tar.zst"),
            posixpath.join(layout.releases, f".tmp-{release_id}"))


def unpack_script(layout: Layout, code: PreparedCode, release_id: str, env: dict, revision: dict,
                  dependencies=None) -> str:
    """Shell making the release from the uploaded archive: the same on every host (what differs,
    whether the dependency store exists, is found out there). `dependencies(folder, release_id)`: the
    runtime's lines making Directus ready when a release holds no node_modules (an image)."""
    incoming, temp = _incoming(layout, release_id)
    final = layout.release_dir(release_id)
    links = shared_links(layout, env)
    return "\n".join([
        EMIT_FUNCTION,
        f"rm -rf -- {q(temp)} && mkdir -- {q(temp)}",
        f"zstd -q -dc -- {q(incoming)} | tar -x --no-same-owner -C {q(temp)}",
        f"rm -f -- {q(incoming)}",
        *link_lines(temp, links, q),
        *(npm_store_lines(layout, code, temp) if dependencies is None else dependencies(temp, release_id)),
        # a REVISION the tag held (even a link) is replaced, never written through
        f"rm -rf -- {q(temp + '/REVISION')} && printf '%s\\n' {q(json.dumps(revision, indent=1))} > {q(temp + '/REVISION')}",
        # named in the deploy log before it exists, whatever happens next (a run killed outright
        # too): retention trusts a log that names every release on disk (retention.log_problem)
        f"printf '%s\\n' {q(made_entry(release_id, revision))} | {{ {deploylog.append_lines(layout)}; }}",
        f"mv -T -- {q(temp)} {q(final)}",
        emit("deps", key='"$key"', how='"$how"'),
        # what Directus will load, read in the same round trip, checked before the switch
        f"cd {q(final)}/extensions 2>/dev/null && {PRINT_MANIFESTS}; true",
    ])


def npm_store_lines(layout: Layout, code: PreparedCode, temp: str) -> list[str]:
    """The release's node_modules: a link to the dependency store of its lockfile and the host's
    Node major, installed with npm ci into a temporary folder first when there is none."""
    deps_key_prefix = code.lockfile_sha256[:16]
    return [
        "major=$(node -p 'process.versions.node.split(\".\")[0]')",
        f"key={q(deps_key_prefix)}-node$major; store={q(layout.shared_deps)}/$key",
        'if [ -f "$store/.complete" ]; then how=reused; else how=installed',
        f"  work={q(layout.shared_deps)}/.tmp-$key-$$; rm -rf -- \"$work\"; mkdir -p -- \"$work\"",
        f"  cp -- {q(temp + '/package.json')} {q(temp + '/package-lock.json')} \"$work/\"",
        f"  if ! (cd \"$work\" && {NPM_CI}) > \"$work.log\" 2>&1; then",
        "    tail -5 \"$work.log\" >&2; rm -rf -- \"$work\" \"$work.log\"; echo 'npm ci failed' >&2; exit 1; fi",
        "  rm -f -- \"$work.log\"; touch \"$work/.complete\"",
        "  mv -T -- \"$work\" \"$store\" 2>/dev/null || rm -rf -- \"$work\"",  # another run won the race
        "fi",
        f"rm -rf -- {q(temp + '/node_modules')} && ln -s -- {q(layout.DEPS_FROM_RELEASE)}\"/$key/node_modules\" {q(temp + '/node_modules')}",
    ]


def _made(revision: dict, out: str) -> dict:
    """The REVISION as made on one host, with how its dependencies came and its manifests."""
    made = dict(revision)
    deps = parse_results(out).first("deps") or {"key": "?", "how": "?"}
    made["deps"], made["deps_how"] = deps["key"], deps["how"]
    made["manifests_on_host"] = out
    return made


def _dependencies(runtime):
    """The runtime's own dependency lines, or None for the npm store of every node runtime."""
    return None if runtime.RELEASE_HOLDS_DEPENDENCIES else runtime.dependencies_lines


def create_release(session, code: PreparedCode, release_id: str, env: dict, *, progress=None,
                   base_release: str | None = None) -> dict:
    """Upload and unpack the code, link shared state and dependencies. Returns REVISION."""
    remote: Remote = session.remote()
    layout: Layout = session.layout
    incoming, temp = _incoming(layout, release_id)
    revision = new_revision(code, release_id, base_release)
    remote.upload(compress(code.archive), incoming, progress=progress)  # releases/ exists since setup or adopt
    try:
        out = remote.script(unpack_script(layout, code, release_id, env, revision, _dependencies(session.runtime)),
                            what="unpack the release").stdout
    except BaseException:
        remote.run(["rm", "-rf", "--", temp, incoming], check=False)
        raise
    return revision if remote.dry_run else _made(revision, out)


def create_release_everywhere(views, code: PreparedCode, release_id: str, env: dict) -> dict:
    """The same release on every host at once (Fabric's ThreadingGroup): one upload each, one
    unpack each, dependencies reused or installed on each. {view: REVISION}. If any host
    fails, the release is removed from all of them and nothing else has changed anywhere."""
    layout = views[0].layout
    group = RemoteGroup([view.remote() for view in views])
    incoming, temp = _incoming(layout, release_id)
    revision = new_revision(code, release_id)
    group.upload(compress(code.archive), incoming)
    script = unpack_script(layout, code, release_id, env, revision, _dependencies(views[0].runtime))
    results = group.script(script, what="unpack the release")
    failed = {remote.name: remote.error_line(result) for remote, result in results.items() if not result.ok}
    if failed:
        group.script(f"rm -rf -- {q(temp)} {q(incoming)} {q(layout.release_dir(release_id))}", what="remove the release")
        raise DeployError("; ".join(f"{name}: unpack the release failed: {why}" for name, why in failed.items()))
    by_remote = {view.remote(): view for view in views}
    return {by_remote[remote]: (revision if group.dry_run else _made(revision, result.stdout))
            for remote, result in results.items()}


def list_releases(remote, layout) -> list[dict]:
    """Every release folder with its REVISION, oldest first, and which is current."""
    return parse_releases(remote.query(releases_script(layout), what="list releases").stdout)


def releases_script(layout) -> str:
    return with_emit(
        f"cd {q(layout.releases)} 2>/dev/null || exit 0; "
        + emit("current", target=f'"$(readlink -- {q(layout.current)} 2>/dev/null)"') + "; "
        "for d in $(ls -1); do case \"$d\" in .*) continue;; esac; "
        + emit("release", id='"$d"', modules='"$(readlink -- "$d/node_modules" 2>/dev/null)"',
               revision='"$(cat -- "$d/REVISION" 2>/dev/null)"', served=f'"$([ -e "$d/{SERVED_FILE}" ] && echo yes)"')
        + "; done"
    )


def parse_releases(out: str) -> list[dict]:
    reported = parse_results(out)
    current = posixpath.basename((reported.first("current") or {}).get("target", "").strip())
    releases = []
    for record in reported.all("release"):
        revision = json_object(record["revision"]) or {}
        modules = record["modules"]
        # the node_modules link names the dependency store (shared/deps/<key>/node_modules)
        revision["deps"] = posixpath.basename(posixpath.dirname(modules)) if modules else "?"
        releases.append({"id": record["id"], "revision": revision, "current": record["id"] == current,
                         "served": record.get("served") == "yes"})
    return releases


def release_outcomes(entries: list[dict]) -> dict[str, str]:
    """The last recorded outcome of each release (ok, failed, rolled-back...) in the deploy log."""
    outcomes = {}
    for entry in entries:
        if entry.get("release") and entry.get("action") in ("release", "switch", "adopt", "extensions-sync", "rollback"):
            if entry.get("action") == "rollback":
                if entry.get("outcome") == "ok":
                    outcomes[entry["release"]] = "ok"
                continue
            outcomes[entry["release"]] = entry.get("outcome", "?")
    return outcomes


def last_good(releases: list[dict], outcomes: dict[str, str]) -> str | None:
    """The newest successful release other than the current one: the default rollback target."""
    current = next((r["id"] for r in releases if r["current"]), None)
    good = [r["id"] for r in releases if outcomes.get(r["id"]) == "ok" and r["id"] != current]
    return good[-1] if good else None


def cleanup_plan(releases: list[dict], entries: list[dict], keep: int) -> list[str]:
    """Releases to delete: beyond the `keep` newest successful ones (never the current one,
    never the last good one); failed ones go, and so does one a killed run made that never went
    live. One that went live (its SERVED file) but has no outcome (its run killed after the
    switch) is kept: nothing says it was not good."""
    outcomes = release_outcomes(entries)
    current = next((r["id"] for r in releases if r["current"]), None)
    good = [r["id"] for r in releases if outcomes.get(r["id"]) == "ok" or r["id"] == current]
    unknown = {r["id"] for r in releases if r["id"] not in outcomes and r.get("served")}
    kept = set(good[-keep:]) | {current, last_good(releases, outcomes)} | unknown
    return [r["id"] for r in releases if r["id"] not in kept]


def cleanup_lines(layout, doomed: list[str], removed=None) -> list[str]:
    """Shell deleting the doomed releases, leftovers of interrupted runs, and the dependency
    stores no remaining release links to (each reported as a `store` record with its key).
    `removed(release_id)`: the runtime's shell for what goes with a release (its own image)."""
    deletions = []
    for release in doomed:  # renamed first: an interrupted deletion never leaves half a release
        gone = posixpath.join(layout.releases, f".tmp-deleting-{release}")
        deletions.append(f"mv -T -- {q(layout.release_dir(release))} {q(gone)} && rm -rf -- {q(gone)}")
        if removed:
            deletions.append(removed(release))
    return [
        EMIT_FUNCTION,
        *deletions,
        f"rm -rf -- {q(layout.releases)}/.tmp-* {q(layout.releases)}/.incoming-* {q(layout.shared_deps)}/.tmp-* 2>/dev/null || true",
        f"used=$(for r in {q(layout.releases)}/*/; do readlink \"$r/node_modules\" 2>/dev/null || true; done | "
        f"sed -n 's|^{re.escape(layout.DEPS_FROM_RELEASE)}/\\([^/]*\\)/node_modules$|\\1|p' | sort -u)",
        f"for s in {q(layout.shared_deps)}/*/; do [ -d \"$s\" ] || continue; k=$(basename \"$s\"); "
        "echo \"$used\" | grep -qxF \"$k\" || { rm -rf -- \"$s\"; " + emit("store", key='"$k"') + "; }; done",
    ]
