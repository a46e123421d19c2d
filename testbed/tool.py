"""Running the tool the way a user does: `fab <task>` in a new process, from the project
folder, with its configuration file named by DEPLOY_ENV_FILE (and nothing else of ours from
this environment)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OWN_PREFIXES = ("DEPLOY_", "DIRECTUS_", "KEEP_")


def fab(env_file: Path, *args: str) -> tuple[float, str]:
    """(seconds, stdout) of a `fab` that must succeed; its output's tail if it does not."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env["DEPLOY_ENV_FILE"] = str(env_file)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "fabric", *args], cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"fab {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr}")
    return seconds, result.stdout
