"""Helpers for the unit tests: run shell built by the package with a local bash, put fake
host commands on PATH, and a Remote whose SSH channel is replaced by a local shell (every other
part of Remote, its quoting, secret passing and dry-run, is the real one)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

from directus_deploy.host.remote import Remote


def run(script: str, *, cwd=None, env: dict | None = None, stdin: str = "", check: bool = True,
        shell: str = "bash") -> subprocess.CompletedProcess:
    """`script` under a local shell (bash by default), with `env` added to the environment (a
    value of None removes that variable)."""
    environment = {k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None}
    result = subprocess.run([shell, "-c", script], cwd=cwd, env=environment, input=stdin, capture_output=True,
                            text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n--- script\n{script}\n--- stderr\n{result.stderr}")
    return result


def strict(*lines: str) -> str:
    """Lines joined as Remote.script runs them: `set -eo pipefail` first."""
    return "set -eo pipefail\n" + "\n".join(lines)


def fake_command(folder: Path, name: str, body: str) -> Path:
    """An executable `folder/name` running the bash `body` (put `folder` first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def path_with(folder: Path) -> dict:
    return {"PATH": f"{folder}:{os.environ['PATH']}"}


class LocalRemote(Remote):
    """Remote with its SSH exec channel replaced by `sh -c` here (a login shell may be dash)."""

    def __init__(self, *, env: dict | None = None, **kwargs):
        self.said: list[str] = []
        kwargs.setdefault("say", self.said.append)
        super().__init__(SimpleNamespace(original_host="local-host"), **kwargs)
        self.env = {**os.environ, **(env or {})}
        self.commands: list[str] = []  # exactly what went to the shell

    def _exec(self, command: str, feed: bytes, timeout, what: str):
        self.commands.append(command)
        result = subprocess.run(["sh", "-c", command], input=feed, capture_output=True, env=self.env,
                                timeout=timeout or 60)
        return result.returncode, result.stdout.decode(), result.stderr.decode()
