"""Rehearsal: the release run first against a copy of production, on the host.

    the backup's dump -> a scratch database (a file, or <db>_scratch_rehearsal)
    -> the new release's migrations and schema apply, on the copy
    -> the new release's Directus started on the copy, on a free local port: the health gate
    -> every table of the backup still there, with its rows, on the copy
    -> everything removed again (also after a failure or Ctrl-C; a run killed outright leaves
       it to the next one, which removes it first)

Directus migrations are not transactional: one that fails halfway leaves a database half
migrated. Here it fails on a copy, and production has not been touched.

The copy's Directus reads a settings file of its own (CONFIG_PATH, `.deploy/rehearsal/`):
production's `.env` (its SECRET too) without any Redis setting, with the database, the port,
storage, caches, message bus and email pointed at nothing production uses. It runs in the
release's folder, so every other relative path means what it means in production; its storage
root is an empty scratch folder (uploads are never opened), and its extensions are the
release's own. Every flow is inactive in the copy's database, so no schedule or event there
calls a webhook, sends a message or charges a card a second time.
"""

from __future__ import annotations

import posixpath
import time

from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.engines import engine_for, parse_counts
from directus_deploy.flows.schema import SNAPSHOT, errors_in
from directus_deploy.host.remote import q
from directus_deploy.host.script import EMIT_FUNCTION, emit, parse_results
from directus_deploy.runtimes.base import Instance
from directus_deploy.runtimes.service import gate_report
from directus_deploy.state.preservation import table_problems

HEALTH_TIMEOUT = 90
# Settings of the copy's Directus beyond its database and port: nothing it does may reach
# production's cache, its other instances (message bus), its storage, or anybody's inbox.
ISOLATION = {
    "HOST": "127.0.0.1",
    "STORAGE_LOCATIONS": "local",
    "STORAGE_LOCAL_DRIVER": "local",
    "CACHE_ENABLED": "false",
    "CACHE_STORE": "memory",
    "CACHE_SCHEMA": "false",
    "RATE_LIMITER_ENABLED": "false",
    "RATE_LIMITER_GLOBAL_ENABLED": "false",
    "SYNCHRONIZATION_STORE": "memory",
    "REDIS_ENABLED": "false",  # production's Redis (cache, locks, messages) is not the copy's
    "MESSENGER_STORE": "memory",
    "WEBSOCKETS_ENABLED": "false",
    "EMAIL_TRANSPORT": "smtp",
    "EMAIL_SMTP_HOST": "127.0.0.1",
    "EMAIL_SMTP_PORT": "9",  # the discard port: nothing is sent
    "EMAIL_VERIFY_SETUP": "false",  # so the health check does not count that as an error
    "TELEMETRY": "false",
}
# A production `.env` line setting Redis (REDIS, REDIS_HOST, CACHE_REDIS, RATE_LIMITER_REDIS,
# SYNCHRONIZATION_REDIS...): left out of the copy's settings, whatever ISOLATION says.
REDIS_SETTING = r"^[[:space:]]*(export[[:space:]]+)?([A-Z0-9]+_)*REDIS(_[A-Z0-9_]*)?[[:space:]]*="
ACTIVE_FLOWS_SQL = "SELECT COUNT(*) FROM directus_flows WHERE status = 'active'"
FLOWS_OFF_SQL = "UPDATE directus_flows SET status = 'inactive' WHERE status = 'active'"
_FREE_PORT_JS = ("const s = require('net').createServer().listen(0, '127.0.0.1', "
                 "() => { console.log(s.address().port); s.close(); });")
_LOG_TAIL_JS = ("let s = ''; process.stdin.on('data', (d) => s += d).on('end', () => console.log(JSON.stringify("
                "{ ok: false, failed: 'start', detail: 'Directus exited on the copy: ' + "
                "s.trim().split('\\n').slice(-2).join(' | ').slice(0, 400) })));")


def wanted(session, release_id: str, mode: str) -> tuple[bool, str]:
    """Whether this release rehearses (`mode`: never, changes, always), and why."""
    if mode in ("never", "always"):
        return mode == "always", "asked for" if mode == "always" else "not asked for"
    layout = session.layout
    sides = {"now": layout.current, "new": layout.release_dir(release_id)}
    script = EMIT_FUNCTION + "\n" + "\n".join(
        f"cd {q(folder)} && emit fp side {side} what 'directus' value \"$(sed -n 's/^ *\"version\": *\"\\([^\"]*\\)\".*/\\1/p' "
        "node_modules/directus/package.json | head -1)\" && "
        f"emit fp side {side} what 'schema snapshot' value \"$(sha256sum {SNAPSHOT} 2>/dev/null | cut -c1-64)\" && "
        f"emit fp side {side} what 'migrations' value \"$(find migrations -type f 2>/dev/null | LC_ALL=C sort | "
        "xargs -r sha256sum | sha256sum | cut -c1-64)\""
        for side, folder in sides.items()
    )
    out = session.remote().script(script, what="compare the release with production", changes=False).stdout
    found = {(r["side"], r["what"]): r["value"] for r in parse_results(out).all("fp")}
    changed = [what for what in ("directus", "schema snapshot", "migrations") if found.get(("now", what)) != found.get(("new", what))]
    if not changed:
        return False, "no change of the Directus version, the schema snapshot or the migrations"
    detail = {"directus": f"Directus {found.get(('now', 'directus'))} -> {found.get(('new', 'directus'))}"}
    return True, "it changes " + ", ".join(detail.get(what, what) for what in changed)


def rehearse(session, release_id: str, backup: dict, expected_extensions: list[str], plan=None) -> dict:
    """Run the release against a copy of production made from `backup`; raise DeployError
    saying what failed on the copy. Production is never touched; the copy is always removed."""
    console = session.console
    production = session.production
    engine = engine_for(production)
    if not backup.get("database"):
        raise Refused(f"backup {backup['id']} holds no database to rehearse on")
    started = time.monotonic()
    work = session.layout.rehearsal_dir
    try:
        with console.step(f"rehearse: restore backup {backup['id']} into a scratch database") as step:
            port, isolated = _prepare(session, engine, backup, work)
            step.detail = f"{engine.describe().split(' ')[0]} copy, Directus to run on 127.0.0.1:{port}; {isolated}"
        with console.step("rehearse: migrations and schema apply on the copy") as step:
            step.detail = _migrate(session, release_id, work, plan)
        with console.step("rehearse: start the new release on the copy, health gate") as step:
            gate = _start_and_gate(session, release_id, work, port, expected_extensions)
            step.detail = f"healthy after {gate['seconds']:.1f}s, {len(gate.get('loaded', []))} extensions loaded"
        with console.step("rehearse: every table of the backup still there with its rows, on the copy") as step:
            step.detail = _verify(session, engine, backup, work, plan)
    finally:
        with console.step("rehearse: remove the copy (scratch database, Directus, files)"):
            session.remote().script(teardown(engine, work), what="remove the rehearsal copy",
                                    secret_env=engine.secret_env())
    return {"backup": backup["id"], "seconds": round(time.monotonic() - started, 1), "outcome": "passed"}


def start_time(pid: str) -> str:
    """Shell printing when process `pid` started (clock ticks after boot, /proc/<pid>/stat's
    22nd field; the name before it may hold spaces): with the pid, it names one process for good."""
    return f"sed -E 's/^.*\\) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f20"


# ours PID START: is process group PID one this rehearsal started? Its leader alive: only if it
# started at START and runs node (a pid a killed run left may be another process's by now).
# Its leader gone: only if the group still has members (the kernel gives no new process a pid
# that is still some group's id, so those are the rehearsal's).
_OURS_FUNCTION = (
    "ours() { if [ -e \"/proc/$1\" ]; then [ -n \"$2\" ] && [ \"$(" + start_time('"$1"') + ")\" = \"$2\" ] && "
    "tr '\\0' ' ' < \"/proc/$1/cmdline\" | grep -q node; "
    "else awk -v g=\"$1\" '{ sub(/^.*\\) /, \"\"); if ($3 == g) found = 1 } END { exit !found }' /proc/[0-9]*/stat 2>/dev/null; fi; }"
)


def teardown(engine, work: str) -> str:
    """Shell removing a rehearsal: its processes (each its own process group, recorded with
    its start time), its scratch database, its folder. Safe to run when there is none."""
    pids = q(work + "/pids")
    return "\n".join([
        f"if [ -f {pids} ]; then",
        "  " + _OURS_FUNCTION,
        "  groups=''",
        "  while read -r p s; do case \"$p\" in ''|*[!0-9]*) continue;; esac; "
        f"if ours \"$p\" \"$s\"; then groups=\"$groups $p\"; fi; done < {pids}",
        "  for p in $groups; do kill -TERM -- \"-$p\" 2>/dev/null || true; done",
        "  for _ in $(seq 50); do",
        "    alive=''; for p in $groups; do if kill -0 -- \"-$p\" 2>/dev/null; then alive=1; fi; done",
        "    if [ -z \"$alive\" ]; then break; fi; sleep 0.1",
        "  done",
        "  for p in $groups; do kill -KILL -- \"-$p\" 2>/dev/null || true; done",
        "fi",
        engine.prelude(work, must_exist=False) + engine.rehearsal_drop(work),
        f"rm -rf -- {q(work)}",
    ])


def _fail(what: str, detail: str) -> DeployError:
    return DeployError(f"rehearsal on a copy of production failed at {what}: {detail}; production was not touched")


def _prepare(session, engine, backup: dict, work: str) -> tuple[int, str]:
    """The copy made, its settings written: (its port, what was switched off in it)."""
    settings = {**ISOLATION, **engine.rehearsal_settings(work), "STORAGE_LOCAL_ROOT": f"{work}/uploads"}
    dump = posixpath.join(session.layout.backup_dir(backup["id"]), backup["database"]["file"])
    env_file = f"{work}/directus.env"
    lines = "".join(f"{key}={value}\n" for key, value in settings.items())
    # settings holding a password (a connection string) come on stdin, never in the script
    secret_settings = engine.rehearsal_secret_settings(work)
    from_stdin = {f"REHEARSAL_{key}": value for key, value in secret_settings.items()}
    secret_lines = "".join(f"printf '%s=%s\\n' {q(key)} \"$REHEARSAL_{key}\"; " for key in secret_settings)
    production_env = q(session.production.env_file)
    script = "\n".join([
        teardown(engine, work),  # what an interrupted rehearsal left
        f"mkdir -m 0700 -- {q(work)} && mkdir -m 0700 -- {q(work + '/uploads')}",
        EMIT_FUNCTION,
        engine.prelude(work, must_exist=False) + engine.rehearsal_copy(dump, work),
        # the copy's flows stay still: the count first, for the output
        f"flows=$({engine.rehearsal_query(work, ACTIVE_FLOWS_SQL)}) && {engine.rehearsal_query(work, FLOWS_OFF_SQL)}",
        emit("flows", active='"$flows"'),
        f"port=$(node -e {q(_FREE_PORT_JS)})",
        # later lines win in a dotenv file: production's settings but Redis's, then the copy's own
        # (grep exits 1 when it selects no line, 2 when it cannot read)
        f"{{ umask 077; {{ {{ grep -Ev {q(REDIS_SETTING)} -- {production_env} || [ $? -eq 1 ]; }}; "
        f"printf '\\n%s' {q(lines)}; {secret_lines}"
        f"echo \"PORT=$port\"; echo \"PUBLIC_URL=http://127.0.0.1:$port\"; }} > {q(env_file)}; }}",
        f"{{ grep -Eo {q(REDIS_SETTING)} -- {production_env} || [ $? -eq 1 ]; }} | "
        "sed -E 's/^[[:space:]]*(export[[:space:]]+)?//; s/[[:space:]]*=$//' | while read -r key; do emit redis key \"$key\"; done",
        emit("port", port='"$port"'),
    ])
    result = session.remote().script(script, what="prepare the rehearsal", secret_env={**engine.secret_env(), **from_stdin},
                                     check=False)
    if not result.ok:
        raise _fail("restoring the backup into a scratch database", session.remote().error_line(result))
    results = parse_results(result.stdout)
    flows = int(results.first("flows")["active"] or 0)
    redis = [r["key"] for r in results.all("redis")]
    isolated = f"{flows} active flow{'s' * (flows != 1)} set inactive on the copy"
    if redis:
        isolated += f"; Redis settings left out: {', '.join(redis)}"
    return int(results.first("port")["port"]), isolated


def _in_copy(work: str, command: str) -> str:
    """Shell running `command` with the copy's settings, in its own process group (listed in
    the rehearsal's pids, so an interrupted run's teardown can stop it)."""
    inner = f"echo \"$$ $({start_time('$$')})\" >> {q(work + '/pids')}; exec {command}"
    return f"CONFIG_PATH={q(work + '/directus.env')} setsid -w bash -c {q(inner)}"


def _migrate(session, release_id: str, work: str, plan) -> str:
    release_dir = session.layout.release_dir(release_id)
    steps = [("migrations", "database", "migrate:latest")]
    if plan is None or (plan.has_snapshot and plan.changes):
        steps.append(("the schema apply", "schema", "apply", "--yes", SNAPSHOT))
    done = []
    for name, *args in steps:
        command = session.runtime.cli(release_dir, *args)  # cd <release> && node run.js ...
        cd, _, node = command.partition(" && ")
        if name == "the schema apply":
            node = f"sh -c {q('test ! -f ' + SNAPSHOT + ' || ' + node)}"
        result = session.remote().script(f"{cd} && {_in_copy(work, node)} 2>&1", what=f"rehearse {name}", check=False)
        problems = errors_in(result.stdout)
        if result.exit_code != 0 or problems:
            raise _fail(name, (problems or [session.remote().error_line(result)])[0][:400])
        applied = result.stdout.count("Applying ")
        done.append(f"{applied} migrations applied" if name == "migrations" else "schema applied")
    return "; ".join(done)


def _start_and_gate(session, release_id: str, work: str, port: int, expected: list[str]) -> dict:
    release_dir = session.layout.release_dir(release_id)
    service = session.service
    copy = Instance("rehearsal", "", port)
    log, gate = q(work + "/directus.log"), q(work + "/gate")
    entry = session.runtime.start_entry(release_dir)
    script = "\n".join([
        f"cd {q(release_dir)}",
        f"CONFIG_PATH={q(work + '/directus.env')} setsid nohup node {q(entry)} start > {log} 2>&1 < /dev/null &",
        f"d=$!; echo \"$d $({start_time('$d')})\" >> {q(work + '/pids')}",
        f"{service.health_check(expected, HEALTH_TIMEOUT, instance=copy)} > {gate} 2>&1 &",
        "g=$!",
        # a Directus that exits on the copy fails the gate at once, with its last words
        "while kill -0 \"$g\" 2>/dev/null; do",
        "  if ! kill -0 \"$d\" 2>/dev/null; then kill \"$g\" 2>/dev/null || true; wait \"$g\" 2>/dev/null || true;",
        f"    tail -c 2000 {log} | node -e {q(_LOG_TAIL_JS)} > {gate}; break; fi",
        "  sleep 0.3",
        "done",
        f"cat {gate}",
    ])
    result = session.remote().script(script, what="start Directus on the copy", secret_env=service.secret_env, check=False)
    report = gate_report(result.stdout) or {}
    if not report.get("ok"):
        raise _fail("the health gate", f"{report.get('failed', 'start')}: {report.get('detail', session.remote().error_line(result))}")
    return report


def _verify(session, engine, backup: dict, work: str, plan) -> str:
    out = session.remote().script(engine.prelude(work, must_exist=False) + engine.rehearsal_counts(work, "copy"),
                                  what="count the copy's rows", secret_env=engine.secret_env(), changes=False).stdout
    copy = parse_counts(out, "copy")
    expected = backup["database"]["tables"]
    problems = table_problems(expected, copy, exact=False, allowed_losses=plan.allowed_losses() if plan else None)
    if problems:
        raise _fail("the verification", "; ".join(problems[:5]))
    return f"{len(expected)} tables, every row still there"
