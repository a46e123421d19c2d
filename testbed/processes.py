"""Directus processes started on this machine while something runs, counted from /proc.

The benchmarks ask how many times a release started Directus (its server, or its CLI for a
schema snapshot, a plan, migrations): the answer is read off the machine, not from the tool's
own account. A sampler thread lists node processes running Directus's `cli.js` every 50 ms
(a Directus start takes seconds: none is missed) and keeps those of one production: under its
folder (pm2: the command line or the working folder), or in a container of its Compose project.

    with DirectusStarts(root="/srv/directus") as seen:
        fab(...)
    seen.servers, seen.clis   # lists of the command lines
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

_CONTAINER = re.compile(r"[0-9a-f]{64}")


class DirectusStarts:
    def __init__(self, *, root: str | None = None, compose_project: str | None = None, interval: float = 0.05):
        self.root, self.project, self.interval = root, compose_project, interval
        self.seen: dict[tuple[int, str], list[str]] = {}  # (pid, start time) -> command line
        self.before: set[tuple[int, str]] = set()
        self._names: dict[str, str] = {}  # container id -> name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> "DirectusStarts":
        self.before = set(self._directus_now())  # already running: not started by what is measured
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def started(self) -> list[list[str]]:
        return [args for key, args in self.seen.items() if key not in self.before]

    @property
    def servers(self) -> list[list[str]]:
        """Directus servers (what a process manager starts: `cli.js` with no command, or `start`)."""
        return [args for args in self.started if _command(args) in ("", "start")]

    @property
    def clis(self) -> list[list[str]]:
        """Directus's CLI run for a task (schema snapshot, migrations, bootstrap...)."""
        return [args for args in self.started if _command(args) not in ("", "start")]

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.seen.update(self._directus_now())

    def _directus_now(self) -> dict:
        found = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                args = _arguments(Path(entry.path, "cmdline").read_bytes())
                if not args or not os.path.basename(args[0]).startswith("node") or not _is_cli(_script(args)):
                    continue
                start = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[19]
                if self._ours(entry.path, args):
                    found[(int(entry.name), start)] = args
            except OSError:  # ended while being read
                continue
        return found

    def _ours(self, proc: str, args: list[str]) -> bool:
        if self.root:
            cwd = os.readlink(os.path.join(proc, "cwd"))
            return cwd.startswith(self.root) or any(a.startswith(self.root) for a in args)
        container = _CONTAINER.search(Path(proc, "cgroup").read_text())
        if not container or not self.project:
            return False
        name = self._names.get(container.group())
        if name is None:
            out = subprocess.run(["docker", "inspect", "--format", "{{.Name}}", container.group()],
                                 capture_output=True, text=True)
            name = self._names[container.group()] = out.stdout.strip().lstrip("/")
        return name.startswith(self.project + "-") or name.startswith(self.project + "_")


def _arguments(cmdline: bytes) -> list[str]:
    """The words of a process's command line; a process that set its title (pm2's children do)
    has them in one string, separated by spaces."""
    words = [w for w in cmdline.decode(errors="replace").split("\0") if w]
    return words[0].split(" ") if len(words) == 1 else words


def _script(args: list[str]) -> str:
    """What node runs: its first argument that is not an option."""
    return next((a for a in args[1:] if not a.startswith("-")), "")


def _is_cli(script: str) -> bool:
    return script.endswith(("directus/cli.js", "/.bin/directus", "@directus/api/dist/cli/run.js")) or script == "cli.js"


def _command(args: list[str]) -> str:
    return " ".join(args[args.index(_script(args)) + 1:])
