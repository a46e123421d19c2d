"""pm2 runs Directus: one app (DIRECTUS_PM2_APP), or two for blue/green (`<app>-blue`,
`<app>-green`), each started from the release's real path (pm2 resolves symlinks: restarting
an app keeps running the folder it was started from)."""

from __future__ import annotations

import posixpath

from directus_deploy.core.config import Key, parse_name
from directus_deploy.host.remote import q
from directus_deploy.runtimes import instances
from directus_deploy.runtimes.base import Instance, Runtime

# The folder pm2 runs an app from (its pm_cwd), read from `pm2 jlist` on stdin.
_CWD_JS = r"""
let s = ''; process.stdin.on('data', (d) => { s += d; }).on('end', () => {
  const app = JSON.parse(s || '[]').find((a) => a.name === process.argv[1]);
  console.log(app ? app.pm2_env.pm_cwd : '');
});
"""

# `online` or `stopped` for an app, from `pm2 jlist` on stdin
_STATUS_JS = r"""
let s = ''; process.stdin.on('data', (d) => { s += d; }).on('end', () => {
  const app = JSON.parse(s || '[]').find((a) => a.name === process.argv[1]);
  console.log(app && app.pm2_env.status === 'online' ? 'online' : 'stopped');
});
"""

# The health gate's crash watch: pm2 writes a pid file per process of an app; three different
# pids (or none for 5 s after one) while the gate waits mean Directus exits as it boots.
_CRASH_WATCH_JS = r"""
// watches pm2's pid files for the app the gate was given (process.argv[4])
const pidDir = path.join(process.env.PM2_HOME || path.join(os.homedir(), '.pm2'), 'pids');
// pm2 names pid files after the app, other characters than these becoming '-'
const pidName = app && new RegExp('^' + app.replace(/[^a-zA-Z0-9.\\-]/g, '-').replace(/[.\\]/g, '\\$&') + '-[0-9]+\\.pid$');
const seen = new Set();
let goneSince = null;
const crashed = () => {  // a reason when pm2's process for the app keeps exiting, else null
  if (!app) return null;
  let pids = [];
  try { pids = fs.readdirSync(pidDir).filter((f) => pidName.test(f)).map((f) => fs.readFileSync(path.join(pidDir, f), 'utf8').trim()); }
  catch (e) { return null; }
  pids.forEach((p) => seen.add(p));
  if (seen.size >= 3) return `Directus exited while starting (pm2 restarted it ${seen.size - 1} times); see: pm2 logs ${app}`;
  if (seen.size && !pids.length) { goneSince ??= Date.now(); if (Date.now() - goneSince > 5000) return `Directus exited while starting and is not running; see: pm2 logs ${app}`; }
  else goneSince = null;
  return null;
};
"""


class Pm2(Runtime):
    NAME = "pm2"
    RUNS_TWO = True
    KEYS = (Key("DIRECTUS_PM2_APP", "pm2_app", parse_name, default="directus", example="directus"),)
    TOOLS = {"pm2": "restarts Directus when DIRECTUS_SERVICE=pm2"}

    @property
    def bluegreen(self) -> bool:
        return self.config.strategy == "bluegreen"

    def stop(self) -> str:
        if not self.bluegreen:
            return f"pm2 stop {q(self.config.pm2_app)} >/dev/null"
        # every instance pm2 knows of; stopping one that exists must work
        apps = [instance.app for instance in instances.every_instance(self.config)]
        return (f"for app in {q(*apps)}; do if pm2 describe \"$app\" >/dev/null 2>&1; then "
                "pm2 stop \"$app\" >/dev/null; fi; done")

    def start(self, root: str) -> str:
        if not self.bluegreen:
            return self.start_instance(instances.plain(self.config), root)
        every = instances.every_instance(self.config)
        return instances.for_serving_instance(self.config, {i.name: self.start_instance(i, root) for i in every})

    def resume(self, root: str) -> str:
        """pm2 restarts the app with the environment and folder it recorded (a start from
        scratch would lose an ecosystem file's env block)."""
        if self.bluegreen:
            return self.start(root)
        app = q(self.config.pm2_app)
        return (f"if [ \"$(pm2 jlist | node -e {q(_CWD_JS)} {app})\" = {q(root)} ]; "
                f"then pm2 restart {app} >/dev/null; else {self.start(root)}; fi")

    def instances(self) -> list[Instance]:
        return instances.every_instance(self.config)

    def status(self, instance: Instance) -> str:
        return f"pm2 jlist | node -e {q(_STATUS_JS)} {q(instance.app)}"

    def start_instance(self, instance: Instance, root: str) -> str:
        """Shell (re)starting `instance` from the release folder `root` (its real path), then
        saving pm2's list. A color gets its port through CONFIG_PATH (runtimes/instances.py)."""
        env = ""
        if instance.port:
            config_file = self.layout.bluegreen_config
            folder = posixpath.dirname(config_file)
            env = (f"mkdir -p {q(folder)} && printf '%s' {q(instances.CONFIG_JS)} > {q(config_file + '.tmp')} && "
                   f"mv -f -- {q(config_file + '.tmp')} {q(config_file)} && "
                   f"CONFIG_PATH={q(config_file)} DIRECTUS_DEPLOY_PORT={instance.port} ")
        return (
            f"{{ pm2 delete {q(instance.app)} >/dev/null 2>&1 || true; }}; "
            f"{env}pm2 start {q(self.start_entry(root))} --name {q(instance.app)} --cwd {q(root)} --time -- start >/dev/null && "
            "pm2 save --force >/dev/null"
        )

    def retire(self, instance: Instance) -> str:
        """Shell stopping an instance for good (gone from pm2's saved list too); never fails."""
        return f"{{ pm2 delete {q(instance.app)} >/dev/null 2>&1 || true; pm2 save --force >/dev/null 2>&1 || true; }}"

    def watched(self, instance: Instance | None = None) -> list[str]:
        if instance:
            return [instance.app] if instance.app else []
        return [] if self.bluegreen else [self.config.pm2_app]

    def crash_watch_js(self) -> str:
        return _CRASH_WATCH_JS

    def secret_guard(self, names) -> str:
        """`pm2` as pm2 run without these exported secrets: pm2 keeps the environment it starts
        an app (or its daemon) with, in the app's env and in dump.pm2. A function is not
        inherited by a nested `bash -c`, so each shell that exports secrets defines it."""
        unset_them = " ".join(f"-u {name}" for name in names)
        return f'pm2() {{ env {unset_them} pm2 "$@"; }}'
