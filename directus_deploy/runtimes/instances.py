"""Which Directus instances a host runs, and which one serves: the instance set of blue/green.

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

from directus_deploy.runtimes.base import Instance
from directus_deploy.traffic.nginx import live_port_shell


def plain(config) -> Instance:
    return Instance("plain", config.pm2_app, None, kind="pm2 app")


def colors(config, app_of=None, kind: str = "") -> tuple[Instance, Instance]:
    """Blue and green on their ports; `app_of(color)` is the runtime's name for each (pm2's
    apps `<app>-blue` and `<app>-green` by default)."""
    blue, green = config.bluegreen_ports
    app_of = app_of or (lambda color: f"{config.pm2_app}-{color}")
    return Instance("blue", app_of("blue"), blue, kind=kind), Instance("green", app_of("green"), green, kind=kind)


def every_instance(config) -> list[Instance]:
    return [plain(config), *colors(config)] if config.strategy == "bluegreen" else [plain(config)]


def serving(every: list[Instance], live_port: int | None) -> Instance:
    """Of a runtime's instances, the one behind the port the upstream names (the plain one for
    any other port)."""
    return next((i for i in every if i.port and i.port == live_port), next(i for i in every if i.name == "plain"))


def idle(every: list[Instance], live: Instance) -> Instance:
    """The color a release starts on: the one not serving (blue after the plain instance)."""
    blue, green = (next(i for i in every if i.name == color) for color in ("blue", "green"))
    return green if live == blue else blue


# Directus's settings for a color: the release's .env (a link to shared/.env) as Directus itself
# parses it (with its own dotenv), and the color's port on top.
CONFIG_JS = """// Written by directus-deploy for blue/green: the release's .env, with this instance's port.
const fs = require('fs'), path = require('path');
const dotenv = require(require.resolve('dotenv', { paths: [process.cwd(), path.join(process.cwd(), 'node_modules/@directus/env')] }));
module.exports = () => ({ ...dotenv.parse(fs.readFileSync(path.join(process.cwd(), '.env'))), PORT: process.env.DIRECTUS_DEPLOY_PORT });
"""


def for_serving_instance(config, commands: dict[str, str]) -> str:
    """Shell running commands[name] for the instance that serves now (read on the host, when
    the script runs): a `case` on the port the upstream include names."""
    blue, green = colors(config)
    return (f"case \"$({live_port_shell(config)})\" in\n"
            f"  {blue.port}) {commands['blue']} ;;\n"
            f"  {green.port}) {commands['green']} ;;\n"
            f"  *) {commands['plain']} ;;\n"
            "esac")
