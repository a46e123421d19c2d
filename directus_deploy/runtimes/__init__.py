"""Runtimes: what runs Directus on a host, behind one interface (base.Runtime).

Each runtime declares its configuration keys, the host tools it needs, and the shell that
starts, stops and checks Directus; flows ask `runtime_for(config)` and never name one. A
runtime that cannot run two instances side by side says so, and blue/green is refused in one
line at configuration time.
"""

from __future__ import annotations

from directus_deploy.core import config as config_module
from directus_deploy.core.config import Key, parse_choice
from directus_deploy.core.errors import ConfigError
from directus_deploy.runtimes.base import Instance, Runtime
from directus_deploy.runtimes.command import Command
from directus_deploy.runtimes.compose import Compose
from directus_deploy.runtimes.pm2 import Pm2
from directus_deploy.runtimes.systemd import Systemd

RUNTIMES: dict[str, type[Runtime]] = {runtime.NAME: runtime for runtime in (Pm2, Systemd, Command, Compose)}

KEYS = (
    Key("DIRECTUS_SERVICE", "service", parse_choice(*RUNTIMES), default="pm2", example="pm2"),
    *(key for runtime in RUNTIMES.values() for key in runtime.KEYS),
)
ALL_KEYS = config_module.KEYS + KEYS  # every key the tool reads


def check_config(values: dict, where: str) -> None:
    runtime = RUNTIMES[values["DIRECTUS_SERVICE"]]
    for each in RUNTIMES.values():
        each.check_config(values, where)
    if values["DEPLOY_STRATEGY"] == "bluegreen" and not runtime.RUNS_TWO:
        able = "|".join(name for name, each in RUNTIMES.items() if each.RUNS_TWO)
        raise ConfigError(f"{where}: DEPLOY_STRATEGY=bluegreen needs DIRECTUS_SERVICE={able} (a runtime that runs two "
                          f"instances side by side; {runtime.NAME} runs one)")


def load_config(environ: dict[str, str] | None = None) -> config_module.Config:
    """The tool's configuration with every runtime's keys (core.config.load does the reading)."""
    return config_module.load(environ, extra_keys=KEYS, checks=(check_config,))


def found_in(project) -> tuple[str, str] | None:
    """(DIRECTUS_SERVICE, the file that says so) for a project folder holding a runtime's own
    file (a compose file, say); None when nothing there names one."""
    for name, runtime in RUNTIMES.items():
        for file in runtime.PROJECT_FILES:
            if (project / file).is_file():
                return name, file
    return None


def runtime_for(config, layout=None) -> Runtime:
    return RUNTIMES[config.service](config, layout)


__all__ = ["ALL_KEYS", "Instance", "KEYS", "RUNTIMES", "Runtime", "found_in", "load_config", "runtime_for"]
