"""Which Directus instances a host runs, and which one serves.

With DEPLOY_STRATEGY=restart there is one: the pm2 app DIRECTUS_PM2_APP (the "plain" one).
With bluegreen there are two pm2 apps, `<app>-blue` and `<app>-green`, on the two
DEPLOY_BLUEGREEN_PORTS; the one serving is the one whose port the nginx upstream include names.
Until the first blue/green switch the include may name the plain instance's port (an install
adopted as it ran): the plain instance then serves, and is retired by that switch.

Directus reads its settings from the release's `.env`, and a setting there wins over the
process environment, so a color cannot get its port from the environment alone: it starts with
CONFIG_PATH pointing at a small file of the tool's that reads the same `.env` and sets PORT.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from .remote import q


@dataclass(frozen=True)
class Instance:
    name: str  # blue, green or plain
    app: str  # its pm2 app
    port: int | None  # None for the plain instance: it listens where the .env says

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __str__(self) -> str:
        return f"{self.name} (:{self.port})" if self.port else f"pm2 app {self.app}"


def plain(config) -> Instance:
    return Instance("plain", config.pm2_app, None)


def colors(config) -> tuple[Instance, Instance]:
    blue, green = config.bluegreen_ports
    return Instance("blue", f"{config.pm2_app}-blue", blue), Instance("green", f"{config.pm2_app}-green", green)


def every_instance(config) -> list[Instance]:
    return [plain(config), *colors(config)] if config.strategy == "bluegreen" else [plain(config)]


def serving(config, live_port: int | None) -> Instance:
    """The instance behind the port the upstream names (the plain one for any other port)."""
    return next((c for c in colors(config) if c.port == live_port), plain(config))


def idle(config, live: Instance) -> Instance:
    blue, green = colors(config)
    return green if live == blue else blue


def live_port_shell(config) -> str:
    """Shell printing the port the upstream include sends requests to (nothing if none)."""
    return (f"{{ sed -n 's/^[[:space:]]*server[[:space:]]*127[.]0[.]0[.]1:\\([0-9]*\\).*/\\1/p' "
            f"{q(config.nginx_upstream_file)} 2>/dev/null || true; }} | head -1")


def upstream_text(config, port: int) -> str:
    return (
        "# Written by directus-deploy: the Directus instance that serves. Rewritten by every\n"
        f"# blue/green switch; do not edit. Your site sends requests here with proxy_pass http://{config.nginx_upstream};\n"
        f"upstream {config.nginx_upstream} {{\n    server 127.0.0.1:{port};\n}}\n"
    )


def parse_live_port(text: str) -> int | None:
    value = text.strip()
    return int(value) if value.isdigit() else None


# Directus's settings for a color: the release's .env (a link to shared/.env) as Directus itself
# parses it (with its own dotenv), and the color's port on top.
CONFIG_JS = """// Written by directus-deploy for blue/green: the release's .env, with this instance's port.
const fs = require('fs'), path = require('path');
const dotenv = require(require.resolve('dotenv', { paths: [process.cwd(), path.join(process.cwd(), 'node_modules/@directus/env')] }));
module.exports = () => ({ ...dotenv.parse(fs.readFileSync(path.join(process.cwd(), '.env'))), PORT: process.env.DIRECTUS_DEPLOY_PORT });
"""


def pm2_start(instance: Instance, root: str, config_file: str) -> str:
    """Shell (re)starting `instance` from the release folder `root` (its real path: pm2
    resolves symlinks and would keep running the old folder), then saving pm2's list."""
    entry = posixpath.join(root, "node_modules/directus/cli.js")
    env = ""
    if instance.port:
        folder = posixpath.dirname(config_file)
        env = (f"mkdir -p {q(folder)} && printf '%s' {q(CONFIG_JS)} > {q(config_file + '.tmp')} && "
               f"mv -f -- {q(config_file + '.tmp')} {q(config_file)} && "
               f"CONFIG_PATH={q(config_file)} DIRECTUS_DEPLOY_PORT={instance.port} ")
    return (
        f"{{ pm2 delete {q(instance.app)} >/dev/null 2>&1 || true; }}; "
        f"{env}pm2 start {q(entry)} --name {q(instance.app)} --cwd {q(root)} --time -- start >/dev/null && "
        "pm2 save --force >/dev/null"
    )


def for_serving_instance(config, commands: dict[str, str]) -> str:
    """Shell running commands[name] for the instance that serves now (read on the host, when
    the script runs): a `case` on the port the upstream include names."""
    blue, green = colors(config)
    return (f"case \"$({live_port_shell(config)})\" in\n"
            f"  {blue.port}) {commands['blue']} ;;\n"
            f"  {green.port}) {commands['green']} ;;\n"
            f"  *) {commands['plain']} ;;\n"
            "esac")
