"""Release and rollback benchmark, measured side by side in one run.

    .venv/bin/python bench/release_bench.py

On a fresh SQLite production of the test bed (adopted into the layout first):
  1. `fab release` of a tag with a schema change, its package-lock.json unchanged (dependencies
     reused; Directus's CLI lists the changes and applies them)
  2. `fab release` of a tag that changes code only (same schema, no migration: no Directus CLI)
  3. `fab release` of a tag whose package-lock.json changed (npm ci into a new store)
  4. `fab rollback` (code only): total time, Directus's own restart (process manager start
     until /server/ping and /server/health answer), and the tool's time beyond it
Then the same releases and rollback of a production run by Docker Compose (the image
directus/directus:12.4.0, SQLite and uploads in bind mounts): the image is unchanged, so
nothing is pulled or built; the switch recreates the container.
Each `fab` runs as a user runs it (a new process, over SSH); SSH commands are counted by the tool;
the Directus processes each release started (servers, and CLI runs) are read off /proc meanwhile
(testbed/processes.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.bed import TestBed  # noqa: E402
from testbed.docker import ComposeProduction  # noqa: E402
from testbed.processes import DirectusStarts  # noqa: E402
from testbed.project import add_tag, clone_project, hook_extension  # noqa: E402
from testbed.tool import fab  # noqa: E402


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="release-bench-"))
    reuse = os.environ.get("DIRECTUS_DEPLOY_TESTBED")
    bed = TestBed.attach(Path(reuse)) if reuse else TestBed(work / "bed", ("sqlite",)).up()
    production = bed.new_productions(("sqlite",))["sqlite"]
    try:
        project = clone_project(bed.project_dir("sqlite"), work / "project")
        package = json.loads((project / "package.json").read_text())
        lock = json.loads((project / "package-lock.json").read_text())
        package["version"] = lock["version"] = lock["packages"][""]["version"] = "2.0.1"
        add_tag(project, "v2-new-lockfile", {"package.json": json.dumps(package, indent=2) + "\n",
                                             "package-lock.json": json.dumps(lock, indent=2) + "\n"})
        add_tag(project, "v2-code", hook_extension("directus-extension-bench", "export default () => {};\n"))
        env_file = bed.tool_env(production, work / "tool", DEPLOY_SOURCE=str(project))
        fab(env_file, "deploy.adopt", f"--from={production.folder}")

        rows = []
        for label, tag in (("release, schema change", "v2"), ("release, code only", "v2-code"),
                           ("release, lockfile changed (npm ci)", "v2-new-lockfile")):
            with DirectusStarts(root=str(work / "tool")) as seen:
                seconds, out = fab(env_file, "release", f"--tag={tag}", "--yes", "--json")
            summary = json.loads(out)
            rows.append((label, seconds, summary["round_trips"], summary["steps"], seen))
        seconds, out = fab(env_file, "rollback", "--yes")
        restart = float(re.search(r"Directus restart ([0-9.]+)s", out).group(1))

        print()
        print(f"{'run':<38} {'seconds':>8} {'SSH commands':>13} {'Directus CLI':>13} {'servers':>8}")
        print("-" * 84)
        for label, secs, trips, _, seen in rows:
            print(f"{label:<38} {secs:8.1f} {trips:13d} {len(seen.clis):13d} {len(seen.servers):8d}")
        print(f"lockfile changed / code only: {rows[2][1] / rows[1][1]:.1f}x; "
              f"lockfile changed / schema change: {rows[2][1] / rows[0][1]:.1f}x")
        install = next(v for k, v in rows[2][3].items() if k.startswith("upload and unpack"))
        reuse_step = next(v for k, v in rows[1][3].items() if k.startswith("upload and unpack"))
        print(f"  upload+unpack+dependencies step: {reuse_step:.1f}s reused vs {install:.1f}s with npm ci")
        for label, _, _, _, seen in rows:
            print(f"  {label}: Directus CLI runs: " + ("; ".join(cli_words(args) for args in seen.clis) or "none"))
        for label, _, _, steps, _ in rows[:2]:
            schema = {k: v for k, v in steps.items() if "schema" in k or "migration" in k}
            print(f"  {label}: " + "; ".join(f"{k} {v:.1f}s" for k, v in schema.items()))
        label, secs, _, steps, _ = rows[1]
        print(f"  {label}, step by step ({sum(steps.values()):.1f}s of steps in {secs:.1f}s: the code's upload "
              "runs beside the backup's steps; the rest is Python's start, the SSH connection, the summary):")
        for name, step_seconds in steps.items():
            print(f"    {step_seconds:5.2f}  {re.sub(r'[0-9]{8}T[0-9]{6}Z-', '', name)}")
        print()
        print(f"{'code-only rollback':<38} {seconds:8.1f}")
        print(f"  Directus restart (pm2 start until ping and health answer): {restart:.1f}s")
        print(f"  the tool's own time beyond the restart: {seconds - restart:.1f}s (process start, SSH, checks, log)")

        compose, rollback_seconds, compose_restart = compose_rows(bed, work)
        print()
        print(f"{'Docker Compose (image unchanged)':<38} {'seconds':>8} {'SSH commands':>13} {'Directus CLI':>13} {'servers':>8}")
        print("-" * 84)
        for (label, secs, trips, steps, seen), pm2_row in zip(compose, rows):
            print(f"{label:<38} {secs:8.1f} {trips:13d} {len(seen.clis):13d} {len(seen.servers):8d}"
                  f"   (pm2: {pm2_row[1]:.1f}s, {pm2_row[2]} commands)")
        for label, _, _, _, seen in compose:
            print(f"  {label}: Directus CLI runs: " + ("; ".join(cli_words(args) for args in seen.clis) or "none"))
        for label, _, _, steps, _ in compose:
            parts = {k: v for k, v in steps.items() if "schema" in k or "migration" in k or k.startswith("switch")}
            print(f"  {label}: " + "; ".join(f"{k} {v:.1f}s" for k, v in parts.items()))
        print(f"{'code-only rollback':<38} {rollback_seconds:8.1f}   (pm2: {seconds:.1f}s)")
        print(f"  Directus restart (container recreated until ping and health answer): {compose_restart:.1f}s")
    finally:
        production.destroy()
        if not reuse:
            bed.destroy()
    return 0


def compose_rows(bed, work: Path):
    """A schema-change release and a code-only one of a compose production, then a rollback."""
    production = ComposeProduction(bed, work / "compose").create()
    try:
        add_tag(production.project, "c2-code", hook_extension("directus-extension-bench", "export default () => {};\n"),
                base="c2")
        fab(production.env_file, "release", "--tag=c1", "--yes")
        rows = []
        for label, tag in (("release, schema change", "c2"), ("release, code only", "c2-code")):
            with DirectusStarts(compose_project=production.project_name) as seen:
                seconds, out = fab(production.env_file, "release", f"--tag={tag}", "--yes", "--json")
            summary = json.loads(out)
            rows.append((label, seconds, summary["round_trips"], summary["steps"], seen))
        seconds, out = fab(production.env_file, "rollback", "--yes")
        restart = float(re.search(r"Directus restart ([0-9.]+)s", out).group(1))
        return rows, seconds, restart
    finally:
        production.destroy()


def cli_words(args: list[str]) -> str:
    """`schema apply`, `database migrate:latest`: the CLI's command, without its file arguments."""
    at = next(i for i, a in enumerate(args) if a.endswith(("cli.js", "run.js")))
    return " ".join(a for a in args[at + 1:] if not a.startswith(("-", ".")) and "/" not in a)


if __name__ == "__main__":
    sys.exit(main())
