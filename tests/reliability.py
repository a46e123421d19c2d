"""What the reliability suite needs besides the bed: a record of each scenario's outcome (the
table the suite prints and docs/reliability.md keeps), the losses a scenario caused, a sampler
of every process's command line on the host, and ways to interrupt a running `fab`."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .helpers import FAB, REPO


@dataclass
class Outcome:
    scenario: str
    outcome: str
    rows_lost: int
    files_lost: int
    leaked: int


RESULTS: list[Outcome] = []


def record(scenario: str, outcome: str, before: dict, after: dict, leaked: int = 0) -> Outcome:
    """Compare two readings of production's content and keep the scenario's line."""
    rows_lost, files_lost = losses(before, after)
    result = Outcome(scenario, outcome, rows_lost, files_lost, leaked)
    RESULTS.append(result)
    return result


def losses(before: dict, after: dict) -> tuple[int, int]:
    """Rows (articles) gone or changed, and files gone or with other bytes."""
    now = {a["id"]: a for a in after["articles"]}
    rows = sum(1 for a in before["articles"] if now.get(a["id"]) != a)
    files = sum(1 for f, digest in before["files"].items() if after["files"].get(f) != digest)
    return rows, files


def table() -> str:
    lines = ["| scenario | outcome | rows lost | files lost | leaked secrets |", "| --- | --- | --- | --- | --- |"]
    for r in RESULTS:
        lines.append(f"| {r.scenario} | {r.outcome} | {r.rows_lost} | {r.files_lost} | {r.leaked} |")
    return "\n".join(lines)


def fab_process(env_file: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "DIRECTUS_", "KEEP_"))}
    env["DEPLOY_ENV_FILE"] = str(env_file)
    return subprocess.Popen([*FAB, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def run_until(process: subprocess.Popen, marker: str, timeout: float = 600) -> str:
    """Read the process's output until a line containing `marker` (a step starting)."""
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if marker in line:
            return seen
    raise AssertionError(f"never saw {marker!r}:\n{seen[-2000:]}")


def descendants(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(parents.get(child, []))
    return found


def cut_ssh(sshd) -> int:
    """Drop every SSH connection of the test sshd, as a network cut would: its per-connection
    processes die (the listener stays). Commands they ran lose their connection too."""
    connections = [int(p) for p in subprocess.run(["pgrep", "-P", str(sshd.pid)], capture_output=True,
                                                  text=True).stdout.split()]
    for pid in connections:
        for process in [pid] + [d for d in descendants(pid) if _is_sshd(d)]:
            try:
                os.kill(process, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return len(connections)


def _is_sshd(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "comm").read_text().strip() == "sshd"
    except OSError:
        return False


class CommandLineSampler:
    """Reads every process's command line on the host (this machine) every few milliseconds,
    looking for secrets, while a command runs."""

    def __init__(self, secrets: list[str]):
        self.secrets = [s for s in secrets if s]
        self.hits: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                for secret in self.secrets:
                    if secret in line:
                        self.hits.append(line[:200])
            self.samples += 1
            time.sleep(0.02)
