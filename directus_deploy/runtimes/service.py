"""Directus on the host, as the flows see it: stop, start and resume through the runtime
(runtimes/), and the health gate, the cache and the loaded extensions over HTTP, the same for
every runtime. The health gate runs on
the host (DIRECTUS_URL is Directus as reached from there), with the host's Node, the token
passed on stdin.
"""

from __future__ import annotations

import json

from directus_deploy.core.errors import DeployError
from directus_deploy.host.remote import Remote, q
from directus_deploy.host.script import records
from directus_deploy.runtimes import runtime_for
from directus_deploy.runtimes.base import Instance

HEALTH_TIMEOUT = 120  # seconds for Directus to answer /server/ping after a start

# Runs on the host with Node 22 (fetch built in). Prints one JSON line; exit 1 when unhealthy.
# `crashed()` comes from the runtime (Runtime.crash_watch_js): a Directus that exits while
# booting, restarted again and again, fails the gate at once instead of at the timeout. A
# runtime may define `containerReady()` there too: awaited once Directus answers its ping.
_HEALTH_JS = r"""
const [url, timeoutS, expected, app] = [process.argv[1], Number(process.argv[2]), JSON.parse(process.argv[3]), process.argv[4]];
const token = process.env.DIRECTUS_TOKEN;
const started = Date.now();
const fs = require('fs'), path = require('path'), os = require('os');
const get = (p, auth) => fetch(url + p, {
  headers: auth ? { Authorization: 'Bearer ' + token } : {}, signal: AbortSignal.timeout(5000) });
// Directus's pressure limiter answers 503 "Under pressure" while its event loop is saturated
// (a boot on a busy machine): busy, not broken. Asked again until the timeout; any other answer is final.
const untilNotBusy = async (p) => {
  for (;;) {
    const r = await get(p, true);
    const body = await r.json();
    const busy = r.status === 503 && (body.errors || []).some((e) => e.extensions?.reason === 'Under pressure');
    if (!busy || Date.now() - started > timeoutS * 1000) return body;
    await new Promise((res) => setTimeout(res, 500));
  }
};
const report = (ok, fields) => { console.log(JSON.stringify({ ok, seconds: (Date.now() - started) / 1000, ...fields })); process.exit(ok ? 0 : 1); };
{crash_watch}
(async () => {
  let ping = '';
  while (Date.now() - started < timeoutS * 1000) {
    try { const r = await get('/server/ping', false); ping = (await r.text()).trim(); if (r.ok && ping === 'pong') break; }
    catch (e) { ping = String(e.cause?.code || e.message); }
    const why = crashed();
    if (why) return report(false, { failed: 'start', detail: why });
    await new Promise((r) => setTimeout(r, 100));
  }
  if (ping !== 'pong') return report(false, { failed: 'ping', detail: ping });
  // a runtime that knows its own readiness (a container's healthcheck) says when it is ready
  const notReady = typeof containerReady === 'function' ? await containerReady(started, timeoutS) : null;
  if (notReady) return report(false, { failed: 'container', detail: notReady });
  let health;
  try { health = await untilNotBusy('/server/health'); }
  catch (e) { return report(false, { failed: 'health', detail: String(e.message) }); }
  if (!['ok', 'warn'].includes(health.status)) {
    const failing = Object.entries(health.checks || {}).filter(([, c]) => c.some((x) => x.status === 'error')).map(([name]) => name);
    return report(false, { failed: 'health', detail: (health.status || JSON.stringify(health).slice(0, 200)) + (failing.length ? ' (' + failing.join(', ') + ')' : '') });
  }
  let rows;
  try { rows = (await untilNotBusy('/extensions')).data || []; }
  catch (e) { return report(false, { failed: 'extensions', detail: String(e.message) }); }
  // schema is null when Directus could not load the extension from disk (or loaded none at all)
  const loaded = rows.filter((e) => e.schema).map((e) => e.schema.name);
  const missing = expected.filter((name) => !loaded.includes(name));
  if (missing.length) return report(false, { failed: 'extensions', loaded,
    detail: 'not loaded: ' + missing.join(', ') + ' (loaded: ' + (loaded.join(', ') || 'none') + ')' });
  report(true, { health: health.status, loaded });
})();
"""


_EXTENSIONS_JS = r"""
fetch(process.argv[1] + '/extensions', { headers: { Authorization: 'Bearer ' + process.env.DIRECTUS_TOKEN },
  signal: AbortSignal.timeout(10000) })
  .then((r) => { if (!r.ok) throw new Error('HTTP ' + r.status); return r.json(); })
  .then((body) => console.log(JSON.stringify((body.data || []).filter((e) => e.schema).map((e) => e.schema.name))))
  .catch((e) => { console.error(String(e.cause?.code || e.message)); process.exit(1); });
"""


# POST /utils/cache/clear?system=true: Directus empties its data cache and its system (schema,
# permissions) cache, wherever they are kept: memory, or a Redis every instance shares.
_CLEAR_CACHE_JS = r"""
fetch(process.argv[1] + '/utils/cache/clear?system=true', { method: 'POST',
  headers: { Authorization: 'Bearer ' + process.env.DIRECTUS_TOKEN }, signal: AbortSignal.timeout(15000) })
  .then((r) => { if (!r.ok) throw new Error('HTTP ' + r.status); })
  .catch((e) => { console.error(String(e.cause?.code || e.message)); process.exit(1); });
"""


# GET /schema/snapshot?export=yaml into a file (0600): the schema as the running Directus sees
# it, with no Directus CLI started. Exit 1 (and the file not written) on any failure.
_SNAPSHOT_JS = r"""
const [url, out] = process.argv.slice(1);
fetch(url + '/schema/snapshot?export=yaml', { headers: { Authorization: 'Bearer ' + process.env.DIRECTUS_TOKEN },
  signal: AbortSignal.timeout(60000) })
  .then(async (r) => { if (!r.ok) throw new Error('HTTP ' + r.status); const text = await r.text();
    if (!/^collections:/m.test(text)) throw new Error('not a schema snapshot');
    require('fs').writeFileSync(out, text, { mode: 0o600 }); })
  .catch((e) => { console.error('schema snapshot over HTTP: ' + String(e.cause?.code || e.message)); process.exit(1); });
"""

# POST /schema/diff with a snapshot file: exit 0 when the running Directus finds nothing to
# change (204), 1 otherwise (changes, or a snapshot of another Directus version or database
# vendor, which Directus refuses without `force`, or any failure).
_UNCHANGED_JS = r"""
const [url, file] = process.argv.slice(1);
const form = new FormData();
form.append('file', new Blob([require('fs').readFileSync(file)], { type: 'text/yaml' }), 'schema.yaml');
fetch(url + '/schema/diff', { method: 'POST', body: form, headers: { Authorization: 'Bearer ' + process.env.DIRECTUS_TOKEN },
  signal: AbortSignal.timeout(60000) })
  .then((r) => process.exit(r.status === 204 ? 0 : 1))
  .catch(() => process.exit(1));
"""


def gate_report(text: str) -> dict | None:
    """The health gate's report: the last line of `text` that is its JSON object (None if the
    gate printed none: it could not run, or was killed)."""
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if isinstance(report, dict) and "ok" in report:
                return report
    return None


class Service:
    def __init__(self, config, layout=None):
        self.config = config
        self.runtime = runtime_for(config, layout)

    def stop(self) -> str | None:
        """Shell that stops Directus (every instance of it), or None when the runtime cannot."""
        return self.runtime.stop()

    def start(self, root: str) -> str:
        """Shell that starts (or restarts) Directus from the folder `root` (a real path): the
        instance that serves, in place."""
        return self.runtime.start(root)

    def recent_log(self, lines: int = 15) -> str | None:
        """Shell printing Directus's last log lines as `log-line` records (None: no log to read)."""
        shell = self.runtime.recent_log(lines)
        return f"{{ {shell}; }} 2>&1 | tail -n {lines} | {records('log-line', 'line', separator=chr(9))}" if shell else None

    def resume(self, root: str) -> str:
        """Shell starting again a Directus this tool stopped, the way it ran."""
        return self.runtime.resume(root)

    def loaded_extensions(self, remote: Remote) -> list[str]:
        """Names of the extensions the running Directus loaded (GET /extensions, admin token)."""
        result = remote.query(["node", "-e", _EXTENSIONS_JS, self.config.directus_url],
                              secret_env={"DIRECTUS_TOKEN": self.config.directus_token}, check=False)
        if not result.ok:
            raise DeployError(f"{remote.name}: cannot ask Directus for its extensions: {remote.error_line(result)}")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def health_check(self, expected_extensions: list[str], timeout: int = HEALTH_TIMEOUT,
                     instance: Instance | None = None) -> str:
        """Shell running the health gate (needs DIRECTUS_TOKEN from `secret_env`); it prints
        one JSON line. Kept separate so a switch and its gate can share a round trip.

        Against DIRECTUS_URL, or straight at one blue/green `instance` on its port. The
        runtime watches for a crash loop when it is known which instance answers."""
        url = instance.url if instance else self.config.directus_url
        watched = self.runtime.watched(instance)
        script = _HEALTH_JS.replace("{crash_watch}", self.runtime.crash_watch_js())
        return q("node", "-e", script, url, str(timeout), json.dumps(sorted(expected_extensions)), *watched)

    def snapshot_to(self, target: str) -> str:
        """Shell writing the running Directus's schema snapshot (YAML) to `target` over HTTP;
        it fails when Directus does not answer (needs `secret_env`)."""
        return q("node", "-e", _SNAPSHOT_JS, self.config.directus_url, target)

    def schema_unchanged(self, snapshot: str) -> str:
        """Shell that succeeds only when the running Directus reports no difference between
        its schema and the snapshot file (needs `secret_env`)."""
        return q("node", "-e", _UNCHANGED_JS, self.config.directus_url, snapshot)

    def clear_cache(self, session) -> None:
        """After the database changed under a running Directus (restore, migrations, schema
        apply): a restart empties only a memory cache; a Redis cache would keep serving rows
        that are no longer there. A failure is said, not fatal: the data itself is right."""
        remote = session.remote()
        with session.console.step("clear Directus's cache (data and system)") as step:
            if session.dry_run:
                step.detail = "would POST /utils/cache/clear?system=true"
                return
            result = remote.query(["node", "-e", _CLEAR_CACHE_JS, self.config.directus_url],
                                  secret_env=self.secret_env, check=False)
            step.detail = "cleared" if result.ok else (
                f"WARNING: not cleared ({remote.error_line(result)}); responses cached before may be served "
                "until they expire: clear it in the Data Studio (Settings > Clear cache)")

    @property
    def secret_env(self) -> dict:
        return {"DIRECTUS_TOKEN": self.config.directus_token}

    def health_report(self, remote: Remote, result) -> dict:
        """Read the gate's JSON line; raise when any check failed."""
        report = gate_report(result.stdout)
        if report is None:
            raise DeployError(f"{remote.name}: health check could not run: {remote.error_line(result)}")
        if not report.get("ok"):
            raise DeployError(
                f"{remote.name}: health gate failed at {report.get('failed')}: {report.get('detail')} "
                f"({self.config.directus_url})"
            )
        return report

    def health_gate(self, remote: Remote, expected_extensions: list[str], timeout: int = HEALTH_TIMEOUT) -> dict:
        """Ping, health with the token, expected extensions loaded. Raises when any fails."""
        result = remote.query(self.health_check(expected_extensions, timeout), secret_env=self.secret_env, check=False)
        return self.health_report(remote, result)
