"""Running the tool the way a user does: `fab <task>` in a new process, from the project
folder, with its configuration file named by DEPLOY_ENV_FILE (and nothing else of ours from
this environment)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from directus_deploy.core.config import SECRET_KEYS

REPO = Path(__file__).resolve().parent.parent
OWN_PREFIXES = ("DEPLOY_", "DIRECTUS_", "KEEP_")


def fab(env_file: Path, *args: str) -> tuple[float, str]:
    """(seconds, stdout) of a `fab` that must succeed; its output's tail if it does not."""
    seconds, result = fab_result(env_file, *args)
    if result.returncode != 0:
        raise RuntimeError(f"fab {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr}")
    return seconds, result.stdout


def fab_result(env_file: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    """(seconds, the finished process) of a `fab` that may fail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env["DEPLOY_ENV_FILE"] = str(env_file)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "fabric", *args], cwd=REPO, env=env, capture_output=True, text=True)
    return time.monotonic() - started, result


def fill_in(project: Path, settings: dict[str, str]) -> None:
    """Fill in the configuration `directus-deploy init` wrote into `project` as a user does by
    hand: each key's line of .env.deploy set (uncommented), the secrets in .env.deploy.local."""
    for name, keys in ((".env.deploy", [k for k in settings if k not in SECRET_KEYS]),
                       (".env.deploy.local", [k for k in settings if k in SECRET_KEYS])):
        path = project / name
        text = path.read_text()
        for key in keys:
            text, found = re.subn(rf"^#?{key}=.*$", lambda _: f"{key}={settings[key]}", text, count=1, flags=re.M)
            if not found:
                raise KeyError(f"{path} has no line for {key}")
        path.write_text(text)


def read_settings(env_file: Path) -> dict[str, str]:
    """KEY=value lines of a configuration file the bed wrote."""
    lines = [line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and not line.startswith("#")]
    return {key: value for key, value in lines}
