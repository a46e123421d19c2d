"""Adopting a Directus install that runs today into the layout, losing nothing.

After a verified backup of the install, Directus is stopped and the install's state moves
into `shared/` (renames, on the same disk: nothing copied, nothing rewritten): `.env`, the
uploads folder, the SQLite database folder, `extensions/.registry`, and `node_modules` as the
dependency store when its lockfile is the tag's. The first release is made from the tag that
matches what runs, Directus restarts from it, and production is checked against the backup.
If anything fails after the moves, they are undone and the install is started again as it was.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import tempfile
from pathlib import Path

from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.core.source import Source, Tag
from directus_deploy.flows.adoption_plan import adopted_env_text, plan_adoption
from directus_deploy.flows.backup import take_backup
from directus_deploy.flows.switch import switch_to
from directus_deploy.host.remote import q
from directus_deploy.host.script import EMIT_FUNCTION, emit, parse_results
from directus_deploy.runtimes.service import Service
from directus_deploy.state import deploylog
from directus_deploy.state.preservation import check_preservation
from directus_deploy.state.production import locate
from directus_deploy.state.releases import create_release, prepare_code, release_id_for
from directus_deploy.state.shared import shared_links


def matching_tag(session, source: Source, install: str) -> Tag:
    """The newest tag whose top-level files that say what runs (the runtime's DEFINED_BY:
    package-lock.json, or the files an image runtime starts from) and extension files are the
    install's."""
    remote = session.remote()
    patterns = session.runtime.DEFINED_BY
    out = remote.query(
        f"cd {q(install)} && sha256sum -- {' '.join(patterns)} 2>/dev/null; "
        "find extensions -path extensions/.registry -prune -o -type f -print0 2>/dev/null | xargs -0 -r sha256sum --",
        what="fingerprint the install",
    ).stdout
    running = {line[66:]: line[:64] for line in out.splitlines() if len(line) > 66}
    what = ", ".join(patterns)
    for tag in source.tags():
        tagged = {p for p in source.files(tag) if p.startswith("extensions/")
                  or ("/" not in p and any(fnmatch.fnmatch(p, pattern) for pattern in patterns))}
        if tagged != set(running):
            continue
        if all(hashlib.sha256(source.read(tag, p) or b"").hexdigest() == running[p] for p in tagged):
            source.check_links(tag)  # before the backup, as resolve() does
            return tag
    raise Refused(f"no tag of {source.path} matches the code in {install} ({what} and extensions); "
                  "pass --tag=<the tag it runs>")


def adopt(session, install: str, tag_name: str | None = None) -> dict:
    remote, layout, console = session.remote(), session.layout, session.console
    source = Source(session.config.source)
    install = install.rstrip("/")

    with console.step(f"check {install} and {layout.root}") as step:
        production = locate(remote, layout, install)
        if production.in_layout:
            raise Refused(f"{install} is already a release of the layout")
        root, prod_root = layout.root + "/", production.root + "/"
        if root.startswith(prod_root) or prod_root.startswith(root):
            raise Refused(f"DEPLOY_PATH={layout.root} and the install {production.root} must not contain each other")
        state = remote.query(f"test -e {q(layout.shared_env)} && echo SETUP; test -e {q(layout.current)} && echo CURRENT; "
                             f"test -f {q(production.root + '/package.json')} || echo NO_PACKAGE; true").stdout
        if "SETUP" in state or "CURRENT" in state:
            raise Refused(f"{layout.root} already holds a production; adopt is for an install outside the layout")
        # an image holds Directus: its settings are what the runtime read, and the .env (the
        # runtime's own variables too) moves as it is
        image = not session.runtime.RELEASE_HOLDS_DEPENDENCIES
        if "NO_PACKAGE" in state and not image:
            raise Refused(f"{production.root} has no package.json: not a Directus project folder")
        plan = plan_adoption(production.root, production.env)
        settings = production.settings
        file_text = remote.read_file(production.env_file) if settings.format == "dotenv" else None
        new_env = None if image else adopted_env_text(settings, file_text, plan.rewrites)  # refuses what it cannot write
        links = shared_links(layout, plan.env(production.env))
        tag = source.resolve(tag_name) if tag_name else matching_tag(session, source, production.root)
        step.detail = f"Directus {production.directus_version} on {production.db_client}, runs tag {tag.name}"
    for rewrite in plan.rewrites:
        console.say(f"    .env: {rewrite.key}={rewrite.old} becomes {rewrite.key}={rewrite.new} ({rewrite.why})")
    if settings.format in ("json", "yaml"):
        console.say(f"    settings: CONFIG_PATH={settings.config_path} ({settings.format}) is written into shared/.env")
    if settings.only_in_process and not image:
        console.say(f"    settings: {', '.join(sorted(settings.only_in_process))} come from the environment Directus runs "
                    "with (not a file): written into shared/.env, where every restart by this tool finds them")

    if session.dry_run:
        console.say(f"    would back up {production.root}, move its state into {layout.shared}, release {tag.name} and switch")
        return {"tag": tag.name}

    remote.run(["mkdir", "-p", layout.tool_dir], what="create the layout")
    backup = take_backup(session, reason="pre-adopt", install=production.root)

    with tempfile.TemporaryDirectory(prefix="directus-deploy-") as work:
        with console.step(f"check and pack tag {tag.name}") as step:
            code = prepare_code(source, tag, Path(work), console.say, lockfile=not image)
            step.detail = f"{len(code.extensions)} extensions checked"
        service = session.service
        moves = _moves(layout, production, links, plan, env_written=new_env is not None, env_optional=image)
        adopted_env = posixpath.join(layout.tool_dir, "adopted.env")
        with console.step("stop Directus and move its state into shared/") as step:
            # the rewritten .env comes on stdin (it holds secrets): read first, before anything else can
            script = [EMIT_FUNCTION] + ([f"(umask 077 && cat > {q(adopted_env)})"] if new_env is not None else [])
            # what the runtime keeps besides Directus's state, read while the install is whole
            script += session.runtime.adopt_lines(production.root)
            script += [service.stop() or "true",
                       f"mkdir -p -m 0755 {q(layout.shared)} {q(layout.shared_deps)} {q(layout.releases)}"]
            for source_path, target, kind in moves:
                if kind == "dir":
                    script.append(f"if [ -e {q(source_path)} ]; then mkdir -p {q(posixpath.dirname(target))} && "
                                  f"mv -T -- {q(source_path)} {q(target)}; "
                                  f"{report_moved(source_path)}; else mkdir -p {q(target)}; fi")
                elif kind == "optional":
                    script.append(f"if [ -e {q(source_path)} ]; then mkdir -p {q(posixpath.dirname(target))} && "
                                  f"mv -T -- {q(source_path)} {q(target)} && {report_moved(source_path)}; fi")
                else:
                    script.append(f"mkdir -p {q(posixpath.dirname(target))} && "
                                  f"mv -T -- {q(source_path)} {q(target)} && {report_moved(source_path)}")
            if new_env is not None:
                # the install keeps its .env as it was (an undo needs nothing); shared/ gets the new one
                script.append(f"mv -f -- {q(adopted_env)} {q(layout.shared_env)}")
            script.append(f"touch {q(layout.shared_env)} && chmod 0600 {q(layout.shared_env)}")
            if not image:
                script += _seed_dependencies(layout, production.root, code.lockfile_sha256)
            out = remote.script("\n".join(script), what="move the install's state into shared/", check=False,
                                stdin=new_env)
            moved = [record["path"] for record in parse_results(out.stdout).all("moved")]
            if not out.ok:
                _undo(session, moves, moved, production.root, service)
                raise DeployError(f"{remote.name}: moving state failed: {remote.error_line(out)}; undone, the install runs again")
            step.detail = f"moved {len(moved)}: {', '.join(posixpath.basename(m) for m in moved)}"
        try:
            release_id = release_id_for(tag)
            with console.step(f"make release {release_id}") as step:
                revision = create_release(session, code, release_id, plan.env(production.env))
                step.detail = f"dependencies {revision['deps_how']} ({revision['deps']})"
            with console.step("switch to it, restart Directus, health gate") as step:
                expected = sorted(set(revision["extensions"]) | set(backup["extensions"].get("names", [])))
                # in place, as it ran: a blue/green switch needs nginx on the include first
                report = switch_to(session, release_id, expected, method="restart")
                step.detail = f"healthy after {report['seconds']:.1f}s; {len(report['loaded'])} extensions loaded"
        except BaseException:
            console.say("    adoption failed: putting the install back as it was")
            remote.run(["rm", "-f", "--", layout.current], check=False)
            _undo(session, moves, moved, production.root, service)  # what moved, node_modules too
            raise
    with console.step("check every row, upload and extension is still there") as step:
        adopted = locate(remote, layout)
        checks = check_preservation(session, adopted, backup, exact=False)
        step.detail = "; ".join(f"{c[0]} {c[1]}" for c in checks)
        failed = [c for c in checks if c[1] != "OK"]
        if failed:
            raise DeployError(f"after adoption {failed[0][0]}: {failed[0][2]}; backup {backup['id']} holds the state before")
    entry = deploylog.append(remote, layout, {
        "action": "adopt", "release": release_id, "tag": tag.name, "commit": tag.commit, "from": production.root,
        "backup": backup["id"], "outcome": "ok", "migrations": (backup.get("database") or {}).get("migrations", []),
    })
    return {"release": release_id, "backup": backup["id"], "checks": checks, "log": entry}


def _moves(layout, production, links, plan, env_written: bool, env_optional: bool = False) -> list[tuple[str, str, str]]:
    """(from, to, kind) for each piece of state the release will link to; kind: dir (made
    when missing), file, optional (moved when present). A rewritten .env is written, not moved;
    `env_optional`: an install may have none (the runtime's own files holding every setting)."""
    moves = []
    for link in links:
        if link.path == ".env" and env_written:
            continue
        source_path = posixpath.join(production.root, link.path)
        kind = ("optional" if env_optional else "file") if link.path == ".env" else "dir"
        moves.append((source_path, link.target, kind))
    for name, target_name, required in plan.database_files:
        moves.append((posixpath.join(production.root, name), posixpath.join(layout.shared_database, target_name),
                      "file" if required else "optional"))
    return moves


def report_moved(path: str) -> str:
    """Shell reporting that `path` was moved (so a failure can put back exactly what moved)."""
    return emit("moved", path=q(path))


def _seed_dependencies(layout, install: str, lockfile_sha256: str) -> list[str]:
    """The install's node_modules becomes the dependency store when its lockfile is the tag's:
    the first release then needs no `npm ci`."""
    lock = posixpath.join(install, "package-lock.json")
    modules = posixpath.join(install, "node_modules")
    return [
        f"if [ -d {q(modules + '/directus')} ] && [ \"$(sha256sum < {q(lock)} | cut -c1-64)\" = {q(lockfile_sha256)} ]; then",
        "  major=$(node -p 'process.versions.node.split(\".\")[0]')",
        f"  store={q(layout.shared_deps)}/{q(lockfile_sha256[:16])}-node$major",
        "  if [ ! -e \"$store\" ]; then mkdir -p \"$store\" && "
        f"mv -T -- {q(modules)} \"$store/node_modules\" && cp -- {q(lock)} {q(install + '/package.json')} \"$store/\" && "
        f"touch \"$store/.complete\" && {report_moved(modules)}; fi",
        "fi",
    ]


def _undo(session, moves, moved: list[str], install: str, service: Service) -> None:
    """Move state back into the install and start it from there."""
    remote = session.remote()
    lines = []
    for source_path, target, _ in moves:
        if source_path in moved:
            lines.append(f"[ -e {q(target)} ] && [ ! -e {q(source_path)} ] && mv -T -- {q(target)} {q(source_path)} || true")
    modules = posixpath.join(install, "node_modules")
    if modules in moved:
        lines.append(f"for s in {q(session.layout.shared_deps)}/*/; do [ -d \"$s/node_modules\" ] && [ ! -e {q(modules)} ] "
                     f"&& mv -T -- \"$s/node_modules\" {q(modules)} && rm -rf -- \"$s\"; done; true")
    lines.append(service.resume(install))
    try:
        remote.script("\n".join(lines), what="undo the adoption")
        session.service.health_gate(remote, [])
        session.console.say(f"    the install at {install} runs again")
    except Exception as why:  # noqa: BLE001 - say exactly what state things are in
        session.console.say(f"    UNDO INCOMPLETE ({why}); everything is in the pre-adopt backup")
