"""Directus's system configuration, deployed like code: roles, policies with their permissions
and access, flows with their operations, dashboards with their panels, translations, project
settings, and presets. Never content: no items, files, folders, users, revisions or activity.

The project keeps an export of it under `config/system/` (made by `fab config.pull` from a
development Directus):

    config/system/data/      Directus's own environment-sync files (@directus/cli, `d6s`)
    config/system/presets.json   global and role presets (d6s 12.2 does not sync presets)

Most of the work is Directus's own CLI's: `d6s sync pull`, `diff` and `push`, run with
`"schema": false` (the schema travels in snapshots/schema.yaml) and matching records by natural
key. Presets are the one part it lacks; the tool handles them over the REST API, keyed by
(collection, bookmark, role name). A release pushes in `merge` mode (adds and updates, never
deletes; `mirror` only with --allow-destructive); a rollback pushes the backup's export in
`mirror` mode, which puts back exactly what the release replaced.

The CLI is installed from the lockfile in `directus_deploy/d6s/` (@directus/cli and every
dependency pinned, with their checksums) by `npm ci --ignore-scripts`, once per lockfile: on the
host into `.deploy/d6s/<lockfile hash>/`, here into the user's cache. Nothing is resolved or
fetched when it runs (no npx), and no install script of a dependency ever runs. It works
against DIRECTUS_URL with the admin token in the environment of the CLI's own process alone
(DIRECTUS_<PROFILE>_TOKEN), never on a command line nor in the environment of the script's other
commands. Its id map (how source records map to production's) is kept in shared/, from one
release to the next.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from importlib import resources
from pathlib import Path

from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.host.remote import q
from directus_deploy.host.script import section, split_sections

HELPER_FILES = ("package.json", "package-lock.json")  # in directus_deploy/d6s/
EXPORT_DIR = "config/system"
# the one variable the host's scripts receive the admin token in; not exported to their commands
TOKEN_VARIABLE = "SYSTEM_CONFIG_TOKEN"
D6S_FLAGS = ["--no-interactive"]
# d6s's default set minus folders: the media library's folder tree belongs with the files
PULL_FLAGS = ["--no-folders"]
PRESET_FIELDS = ("bookmark", "collection", "layout", "layout_query", "layout_options", "refresh_interval",
                 "filter", "search", "icon", "color")

# Runs on the host with Node 22: presets of Directus at argv[1] (admin token in DIRECTUS_TOKEN).
# export: prints them as JSON; apply <file> <merge|mirror>: makes Directus hold the file's
# presets (mirror also deletes global and role presets the file lacks), prints a summary.
_PRESETS_JS = r"""
const [url, action, file, mode] = process.argv.slice(1);
const fields = %s;
const headers = { Authorization: 'Bearer ' + process.env.DIRECTUS_TOKEN, 'Content-Type': 'application/json' };
const call = async (method, path, body) => {
  const r = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                      signal: AbortSignal.timeout(20000) });
  if (!r.ok) throw new Error(method + ' ' + path + ': HTTP ' + r.status + ' ' + (await r.text()).slice(0, 200));
  return r.status === 204 ? null : (await r.json()).data;
};
const key = (p) => JSON.stringify([p.collection, p.bookmark || null, p.role || null]);
(async () => {
  const roles = await call('GET', '/roles?fields=id,name&limit=-1');
  const nameOf = Object.fromEntries(roles.map((r) => [r.id, r.name]));
  const idOf = Object.fromEntries(roles.map((r) => [r.name, r.id]));
  const live = (await call('GET', '/presets?filter[user][_null]=true&limit=-1'))
    .map((p) => ({ id: p.id, role: p.role ? nameOf[p.role] : null, ...Object.fromEntries(fields.map((f) => [f, p[f] ?? null])) }));
  if (action === 'export') {
    console.log(JSON.stringify(live.map(({ id, ...p }) => p).sort((a, b) => key(a) < key(b) ? -1 : 1), null, 1));
    return;
  }
  const wanted = JSON.parse(require('fs').readFileSync(file, 'utf8'));
  const byKey = Object.fromEntries(live.map((p) => [key(p), p]));
  const done = { created: 0, updated: 0, deleted: 0, unchanged: 0 };
  for (const p of wanted) {
    if (p.role && !idOf[p.role]) throw new Error('preset for ' + p.collection + ': no role named ' + p.role);
    const body = { ...Object.fromEntries(fields.map((f) => [f, p[f] ?? null])), role: p.role ? idOf[p.role] : null, user: null };
    const found = byKey[key(p)];
    if (!found) { await call('POST', '/presets', body); done.created++; continue; }
    delete byKey[key(p)];
    if (fields.every((f) => JSON.stringify(found[f] ?? null) === JSON.stringify(p[f] ?? null))) { done.unchanged++; continue; }
    await call('PATCH', '/presets/' + found.id, body); done.updated++;
  }
  if (mode === 'mirror') for (const p of Object.values(byKey)) { await call('DELETE', '/presets/' + p.id); done.deleted++; }
  console.log(JSON.stringify(done));
})().catch((e) => { console.error(String(e.message || e)); process.exit(1); });
""" % json.dumps(list(PRESET_FIELDS))


def d6s_config(profile: str, url: str) -> str:
    return json.dumps({"profiles": {profile: {"url": url}}, "directory": "directus",
                       "projects": {"default": {"schema": False}}}, indent=1) + "\n"


def _helper_files() -> dict[str, bytes]:
    folder = resources.files("directus_deploy") / "d6s"
    return {name: folder.joinpath(name).read_bytes() for name in HELPER_FILES}


def helper_key() -> str:
    """The lockfile's identity: an install made from it is reused while it stays the same."""
    digest = hashlib.sha256()
    for name, content in sorted(_helper_files().items()):
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:16]


def cli_package() -> str:
    dependencies = json.loads(_helper_files()["package.json"])["dependencies"]
    return " ".join(f"{name}@{version}" for name, version in dependencies.items())


def helper_dir(layout) -> str:
    return posixpath.join(layout.tool_dir, "d6s", helper_key())


def install_helper_script(folder: str) -> str:
    """Shell installing the CLI into `folder` from the lockfile (a base64 tar of HELPER_FILES on
    standard input), unless it is there; prints `present` or `installed`. A failed install
    leaves nothing that looks installed."""
    staging = folder + ".installing"
    return (
        f"if [ -x {q(folder + '/node_modules/.bin/d6s')} ]; then cat > /dev/null; echo present; exit 0; fi; "
        f"rm -rf -- {q(staging)} && mkdir -p -m 0700 -- {q(staging)} && base64 -d | tar -x -C {q(staging)} && "
        f"(cd {q(staging)} && npm ci --ignore-scripts --omit=dev --no-audit --no-fund --loglevel=error) && "
        f"rm -rf -- {q(folder)} && mv -- {q(staging)} {q(folder)} && echo installed"
    )


def helper_archive() -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, content in _helper_files().items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            archive.addfile(info, io.BytesIO(content))
    return base64.b64encode(buffer.getvalue()).decode() + "\n"


def ensure_helper(session) -> str:
    """The CLI installed on the primary host (once per lockfile); what was done."""
    remote = session.remote()
    folder = helper_dir(session.layout)
    result = remote.run(install_helper_script(folder), stdin=helper_archive(), what=f"install {cli_package()}",
                        check=False)
    if not result.ok:
        raise DeployError(f"{remote.name}: installing {cli_package()} from the tool's lockfile failed: "
                          f"{remote.error_line(result)}")
    return result.stdout.strip()


def _d6s(folder: str, profile: str, *args: str) -> str:
    """The CLI in `folder`, the token in its own environment alone."""
    return (f'DIRECTUS_{profile.upper()}_TOKEN="${TOKEN_VARIABLE}" '
            + q(posixpath.join(folder, "node_modules", ".bin", "d6s"), *args))


def secret_env(token: str) -> dict[str, str]:
    """What the host's scripts below read from standard input."""
    return {TOKEN_VARIABLE: token}


# The scripts' first line: the token stays a shell variable, out of every command's environment
# but the ones given it by name.
KEEP_TOKEN_IN_THE_SCRIPT = f"export -n {TOKEN_VARIABLE}"


def _local_helper() -> Path:
    """The CLI on this machine, in the user's cache: the same install script as on the host, run
    by the local bash (once per lockfile)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "directus-deploy"
    folder = cache / f"d6s-{helper_key()}"
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["bash", "-c", install_helper_script(str(folder))], input=helper_archive(),
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise DeployError(f"installing {cli_package()} from the tool's lockfile failed: {_last_line(result.stderr)}")
    return folder / "node_modules" / ".bin" / "d6s"


# -- on the development side: config.pull --------------------------------------------------

def pull_from_development(url: str, token: str, project: Path, say) -> dict:
    """Export a development Directus's system configuration into the project's config/system/."""
    node = shutil.which("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip() if node else ""
    if not version or int(version.lstrip("v").split(".")[0]) < 22:
        raise Refused(f"config.pull runs Directus's own CLI here and needs Node 22 or newer on PATH "
                      f"(found {version or 'no node'})")
    target = project / EXPORT_DIR
    with tempfile.TemporaryDirectory(prefix="directus-config-") as work:
        workspace = Path(work)
        (workspace / "directus.config.json").write_text(d6s_config("development", url))
        env = {**os.environ, "DIRECTUS_DEVELOPMENT_TOKEN": token, "CI": "1"}
        command = [str(_local_helper()), "sync", "pull", "--from", "development", *PULL_FLAGS, *D6S_FLAGS]
        result = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise DeployError(f"d6s sync pull from {url} failed: {_last_line(result.stderr or result.stdout, token)}")
        presets = _presets_over_rest(url, token)
        pulled = workspace / "directus" / "default" / "data"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copytree(pulled, target / "data")
        (target / "presets.json").write_text(json.dumps(presets, indent=1, sort_keys=True) + "\n")
    return summarize_export(target)


def _presets_over_rest(url: str, token: str) -> list[dict]:
    def get(path: str):
        request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=20) as answer:
                return json.loads(answer.read())["data"]
        except (urllib.error.URLError, OSError, ValueError) as why:
            raise DeployError(f"reading presets from {url} failed: {why}") from None

    names = {role["id"]: role["name"] for role in get("/roles?fields=id,name&limit=-1")}
    query = urllib.parse.quote("filter[user][_null]", safe="[]_")
    presets = [{**{f: p.get(f) for f in PRESET_FIELDS}, "role": names.get(p.get("role")) if p.get("role") else None}
               for p in get(f"/presets?{query}=true&limit=-1")]
    return sorted(presets, key=lambda p: json.dumps([p["collection"], p["bookmark"], p["role"]]))


def summarize_export(folder: Path) -> dict:
    """Records per system collection in an export (from its d6s data files), presets too."""
    counts = {}
    for path in sorted((folder / "data").glob("directus-*.json")):
        body = json.loads(path.read_text())
        counts[body.get("collection", path.stem)] = len(body.get("records") or [])
    presets = folder / "presets.json"
    counts["directus_presets"] = len(json.loads(presets.read_text())) if presets.exists() else 0
    return counts


def _last_line(text: str, *secrets: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("npm warn")]
    line = lines[-1] if lines else "no output"
    for secret in secrets:
        line = line.replace(secret, "***")
    return line


# -- on the host -------------------------------------------------------------------------------

def _workspace_lines(work: str, profile: str, url: str, export: str, id_map: str | None) -> list[str]:
    """Shell laying out a d6s workspace in `work` holding the export at `export`."""
    project = f"{work}/directus/default"
    lines = [
        f"rm -rf -- {q(work)} && mkdir -p -m 0700 -- {q(project)}",
        f"printf '%s' {q(d6s_config(profile, url))} > {q(work + '/directus.config.json')}",
    ]
    if export:
        lines.append(f"cp -R -- {q(export + '/data')} {q(project + '/data')}")
    if id_map:
        lines.append(f"if [ -f {q(id_map)} ]; then cp -- {q(id_map)} {q(project + '/id_map.json')}; fi")
    return lines


def _presets(url: str, *args: str) -> str:
    return f'DIRECTUS_TOKEN="${TOKEN_VARIABLE}" ' + q("node", "-e", _PRESETS_JS, url, *args)


def export_lines(config, layout, work: str, into: str) -> list[str]:
    """Shell exporting production's system configuration into the folder `into` (a backup's
    config/: data/ and presets.json), through a d6s workspace at `work`, with the CLI that
    ensure_helper installed. Needs secret_env(token)."""
    url = config.directus_url
    d6s = helper_dir(layout)
    return [
        KEEP_TOKEN_IN_THE_SCRIPT,
        *_workspace_lines(work, "production", url, "", None),
        f"(cd {q(work)} && CI=1 {_d6s(d6s, 'production', 'sync', 'pull', '--from', 'production', *PULL_FLAGS, *D6S_FLAGS)} "
        f"> {q(work + '/pull.log')} 2>&1) "
        f"|| {{ tail -3 {q(work + '/pull.log')} >&2; exit 1; }}",
        f"mkdir -p -m 0700 -- {q(into)} && cp -R -- {q(work + '/directus/default/data')} {q(into + '/data')}",
        f"{_presets(url, 'export')} > {q(into + '/presets.json')}",
        f"rm -rf -- {q(work)}",
        f"chmod -R go-rwx -- {q(into)}",
    ]


def apply(session, export: str, mode: str, *, plan_only: bool = False) -> dict:
    """Make production hold the export at `export` (a folder on the host): the plan first
    (d6s diff), then the push and the presets, unless `plan_only`. Returns the plan/outcome."""
    config, layout, remote = session.config, session.layout, session.remote()
    ensure_helper(session)  # under --dry-run: says it would
    d6s = helper_dir(layout)
    work = posixpath.join(layout.tool_dir, "system-config")
    id_map = posixpath.join(layout.shared, "system-config-id_map.json")
    push_flags = ["--mode", mode, "--yes"] + (["--dangerously-allow-delete"] if mode == "mirror" else [])
    lines = [KEEP_TOKEN_IN_THE_SCRIPT, *_workspace_lines(work, "production", config.directus_url, export, id_map)] + [
        f"cd {q(work)}",
        "export CI=1",
        section("plan"),
        f"{_d6s(d6s, 'production', '--json', 'sync', 'diff', '--to', 'production', '--mode', mode, *D6S_FLAGS)} "
        f"2>{q(work + '/diff.log')} "
        f"|| {{ tail -3 {q(work + '/diff.log')} >&2; exit 1; }}",
    ]
    if not plan_only:
        lines += [
            section("push"),
            f"{_d6s(d6s, 'production', 'sync', 'push', '--to', 'production', *push_flags, *D6S_FLAGS)} > {q(work + '/push.log')} 2>&1 "
            f"|| {{ tail -3 {q(work + '/push.log')} >&2; exit 1; }}",
            f"tail -1 {q(work + '/push.log')}",
            f"if [ -f directus/default/id_map.json ]; then cp -- directus/default/id_map.json {q(id_map + '.tmp')} && "
            f"mv -f -- {q(id_map + '.tmp')} {q(id_map)}; fi",
            section("presets"),
            f"if [ -f {q(export + '/presets.json')} ]; then {_presets(config.directus_url, 'apply', export + '/presets.json', mode)}; "
            "else echo '{}'; fi",
        ]
    lines.append(f"cd / && rm -rf -- {q(work)}")
    result = remote.script("\n".join(lines), what=f"{'plan' if plan_only else 'apply'} the system configuration",
                           secret_env=secret_env(config.directus_token),
                           changes=not plan_only, check=False)
    if not result.ok:
        raise DeployError(f"{remote.name}: system configuration {'plan' if plan_only else 'push'} failed: "
                          f"{remote.error_line(result)}")
    found = split_sections(result.stdout)
    outcome = {"plan": describe_plan(found.get("plan", ""))}
    if not plan_only:
        outcome["pushed"] = found.get("push", "").strip().splitlines()[-1:] or [""]
        try:
            outcome["presets"] = json.loads(found.get("presets", "{}").strip().splitlines()[-1] or "{}")
        except (ValueError, IndexError):
            outcome["presets"] = {}
    return outcome


def describe_plan(text: str) -> dict:
    """d6s diff's JSON, as {collection: {"new": n, "updated": n, "deleted": n}} (changes only)."""
    body = next((line for line in reversed(text.splitlines()) if line.startswith("{")), "{}")
    try:
        results = json.loads(body).get("data", {}).get("resultsByCollection", {})
    except ValueError:
        return {}
    plan = {}
    for collection, result in results.items():
        counts = {"new": len(result.get("new") or []), "updated": len(result.get("existing") or []),
                  "deleted": len(result.get("deleted") or [])}
        if any(counts.values()):
            plan[collection] = counts
    return plan


def plan_text(plan: dict) -> str:
    if not plan:
        return "no change"
    parts = []
    for collection, counts in sorted(plan.items()):
        bits = [f"+{counts['new']}" if counts["new"] else "", f"~{counts['updated']}" if counts["updated"] else "",
                f"-{counts['deleted']}" if counts["deleted"] else ""]
        parts.append(f"{collection.removeprefix('directus_')} {' '.join(b for b in bits if b)}")
    return ", ".join(parts)
