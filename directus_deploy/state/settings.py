"""Directus's settings, read where Directus reads them (Directus 12's @directus/env).

Directus takes its process environment, then the file CONFIG_PATH names (default: `.env` in the
folder it runs from; `.json`, `.yaml`/`.yml` and `.js`/`.cjs` files too), the file winning. What a
process manager sets (an ecosystem file's `env` block, a unit's environment file) lands in the
process environment; so
the environment of the running Directus (`/proc/<pid>/environ`, found by its working folder) is
read too, keeping Directus's own variables (their list is read from the installed @directus/env,
with the prefixes of the settings that list leaves out, such as PRESSURE_LIMITER_*). A JavaScript file is evaluated by Node on the host, as Directus would.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from directus_deploy.core.errors import Refused

FORMATS = {"json": "json", "yaml": "yaml", "yml": "yaml", "js": "js", "cjs": "js", "mjs": "js"}

# On the host, in the folder Directus runs from: the Directus variables of the running
# process's environment (argv[2]: its pid, or empty), and a JavaScript config evaluated.
# Prints one JSON line. Values are secrets: they travel on stdout only.
READ_JS = r"""
const fs = require('fs'), path = require('path');
const [root, pid] = process.argv.slice(1);
const environOf = (p) => {
  const found = {};
  try {
    for (const kv of fs.readFileSync('/proc/' + p + '/environ', 'utf8').split('\0')) {
      const i = kv.indexOf('='); if (i > 0) found[kv.slice(0, i)] = kv.slice(i + 1);
    }
  } catch (e) {}
  return found;
};
const environ = pid ? environOf(pid) : {};
let names = [];
try {
  const dist = fs.readFileSync(path.join(root, 'node_modules/@directus/env/dist/index.js'), 'utf8');
  const list = /DIRECTUS_VARIABLES\s*=\s*\[([\s\S]*?)\]/.exec(dist);
  if (list) names = [...list[1].matchAll(/"([^"]+)"/g)].map((m) => new RegExp('^' + m[1] + '$'));
} catch (e) {}
// settings Directus reads that its list leaves out (and the list itself, for older versions)
const prefixes = /^(CONFIG_PATH|HOST|PORT|PUBLIC_URL|SECRET|KEY|SERVE_APP|TEMP_PATH|REDIS|(DB|STORAGE|EXTENSIONS|CACHE|REDIS|ADMIN|EMAIL|AUTH|LOG|LOGGER|TELEMETRY|WEBSOCKETS|RATE_LIMITER|PRESSURE_LIMITER|CORS|FILES|ASSETS|MARKETPLACE|PROJECT|SYNCHRONIZATION|MESSENGER|METRICS|FLOWS|IMPORT|EXPORT|GRAPHQL|QUERY|SESSION|REFRESH_TOKEN|ACCESS_TOKEN|HEALTHCHECK|CONTENT_SECURITY_POLICY|HSTS|USER|PASSWORD)_.+)$/;
const isVar = (k) => { if (k.endsWith('_FILE')) k = k.slice(0, -5); return prefixes.test(k) || names.some((r) => r.test(k)); };
const own = {}, files = {};
for (const [key, value] of Object.entries(environ)) {
  if (!isVar(key)) continue;
  own[key] = value;
  if (key.length > 5 && key.endsWith('_FILE')) { try { files[key.slice(0, -5)] = fs.readFileSync(value, 'utf8'); } catch (e) {} }
}
const configPath = path.resolve(root, environ.CONFIG_PATH || '.env');
const out = { pid: pid || null, config_path: configPath, process: own, process_files: files };
if (fs.existsSync(configPath)) out.real_path = fs.realpathSync(configPath);
if (!/\.(c|m)?js$/i.test(configPath)) {
  try { out.text = fs.readFileSync(configPath, 'utf8'); } catch (e) {}
} else if (fs.existsSync(configPath)) {
  try {
    process.chdir(root);
    const mod = require(configPath);
    const exported = mod && typeof mod === 'object' && 'default' in mod ? mod.default : mod;
    out.js = typeof exported === 'function' ? exported({ ...process.env, ...environ }) : exported;
  } catch (e) { out.error = String(e.message).split('\n')[0]; }
}
console.log(JSON.stringify(out));
"""

_DOTENV_BARE = re.compile(r"^[A-Za-z0-9_./:@,+*=-]*$")


@dataclass
class Settings:
    env: dict = field(repr=False)  # what Directus runs with (strings); secrets, never printed
    config_path: str  # the file CONFIG_PATH names (absolute)
    format: str  # dotenv | json | yaml | js | missing
    from_process: dict = field(repr=False)  # Directus variables the process environment sets (raw)

    @property
    def only_in_process(self) -> dict:
        """Settings the process environment gives that the file does not: lost when Directus
        is started without that environment."""
        return {k: v for k, v in self.from_process.items() if k != "CONFIG_PATH" and k not in self.file_keys}

    file_keys: set = field(default_factory=set, repr=False)


def find_process_shell(root_var: str = "root") -> str:
    """Shell setting $pid to the Directus process running from "$root" (its working folder,
    `directus` in its command line), or empty."""
    return (
        f'pid=""; for p in /proc/[0-9]*; do [ "$(readlink "$p/cwd" 2>/dev/null)" = "${root_var}" ] || continue; '
        'tr "\\0" " " < "$p/cmdline" 2>/dev/null | grep -q directus || continue; pid=${p#/proc/}; break; done'
    )


def as_text(value) -> str:
    """A JSON/YAML/JS setting as the string Directus's casting reads back the same."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return "json:" + json.dumps(value, separators=(",", ":"))
    return str(value)


def settings_from(found: dict, parse_dotenv) -> Settings:
    """Settings from the host script's JSON line (READ_JS)."""
    path, file_text = found["config_path"], found.get("text")
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    kind = FORMATS.get(ext, "dotenv")
    process = {k: str(v) for k, v in (found.get("process") or {}).items()}
    resolved = {**process, **{k: str(v) for k, v in (found.get("process_files") or {}).items()}}
    if kind == "js":
        if found.get("error"):
            raise Refused(f"CONFIG_PATH={path}: Node could not evaluate it ({found['error']})")
        values = found.get("js")
        if values is None:
            kind, values = "missing", {}
    elif file_text is None:
        kind, values = "missing", {}
    elif kind == "dotenv":
        values = parse_dotenv(file_text)
    else:
        values = _structured(path, kind, file_text)
    if not isinstance(values, dict):
        raise Refused(f"CONFIG_PATH={path} does not hold an object of settings")
    file_values = {str(k): as_text(v) for k, v in values.items()}
    return Settings(env={**resolved, **file_values}, config_path=path, format=kind, from_process=process,
                    file_keys=set(file_values))


def _structured(path: str, kind: str, text: str):
    try:
        if kind == "json":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text) or {}
    except ValueError as why:
        raise Refused(f"CONFIG_PATH={path} is not valid {kind.upper()} ({str(why).splitlines()[0]})") from None
    except Exception as why:  # yaml.YAMLError, without importing yaml at module load
        raise Refused(f"CONFIG_PATH={path} is not valid {kind.upper()} ({str(why).splitlines()[0]})") from None


def dotenv_line(key: str, value: str) -> str:
    """`KEY=value` that Node's dotenv (Directus) and python-dotenv both read back as `value`."""
    if _DOTENV_BARE.match(value):
        return f"{key}={value}"
    if "'" not in value and "\n" not in value:
        return f"{key}='{value}'"
    if '"' not in value and "\\" not in value:
        return f'{key}="{value}"'
    raise Refused(f"the value of {key} holds quotes of both kinds and cannot be written into a .env; "
                  "move it into the .env yourself and run again")


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def process_env_shell(root: str, names) -> str:
    """Shell exporting the settings `names` from the environment of the Directus running from
    `root`, read on the host (values never in a command line): a CLI run over SSH (a schema
    snapshot) then sees what that Directus sees. Empty when there are none."""
    names = sorted(n for n in names if _NAME.match(n))
    if not names:
        return ""
    from directus_deploy.host.remote import q

    return (f"root={q(root)}; " + find_process_shell() + '; if [ -n "$pid" ]; then '
            'while IFS= read -r -d "" kv; do case "${kv%%=*}" in ' + "|".join(names) + ') export "$kv";; esac; '
            'done < "/proc/$pid/environ"; fi\n')
