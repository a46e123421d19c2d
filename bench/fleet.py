"""Multi-host benchmark: the time of one release to 1 host and to 3 hosts, side by side in one run.

    .venv/bin/python bench/fleet.py

A fleet of three app servers (test bed: one network and one DEPLOY_PATH each, reached over SSH,
one PostgreSQL database, one uploads storage), all on v1. Then, each from the same state:
  1. `fab release` of a code-only tag to the first host alone (DEPLOY_HOSTS=fleet-1), then
     `fab rollback` of that host to v1
  2. `fab release` of the same tag to all three (rolling, one host at a time), then `fab rollback`
  3. the same with `--batch=3` (every host switched at once: for reference, what the rolling costs)
Each `fab` runs as a user runs it. Needs root (namespaces).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.bed import TestBed  # noqa: E402
from testbed.fleet import Fleet  # noqa: E402
from testbed.project import add_tag, clone_project  # noqa: E402
from testbed.tool import fab  # noqa: E402

HELLO = ("export default { id: 'hello', handler: (router) => { router.get('/', (_q, res) => "
         "res.json({ message: 'hello from the benchmark' })); } };\n")


def fab_json(env_file: Path, *args: str) -> tuple[float, dict]:
    seconds, out = fab(env_file, *args, "--json")
    return seconds, json.loads(out)


def grouped(steps: dict) -> dict:
    """Seconds per kind of step, summed over hosts."""
    kinds = {"backups": ("back up", "take a schema", "write the manifest", "find the production", "check tools"),
             "code (upload, unpack, dependencies)": ("upload and unpack",), "schema and migrations": ("read the schema",
             "run migrations"), "switches (restarts and gates)": ("switch to",), "checks, record, clean-up":
             ("check every row", "record", "clean up", "check the host", "check every extension")}
    totals = dict.fromkeys(kinds, 0.0)
    for name, seconds in steps.items():
        bare = name.split("] ", 1)[-1]
        for kind, starts in kinds.items():
            if bare.startswith(starts):
                totals[kind] += seconds
    return totals


def main() -> int:
    if os.geteuid() != 0:
        raise SystemExit("bench/fleet.py needs root (network and mount namespaces)")
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    reuse = os.environ.get("DIRECTUS_DEPLOY_TESTBED")
    bed = TestBed.attach(Path(reuse)) if reuse else TestBed(work / "bed", ("postgres",)).up()
    project = clone_project(bed.project_dir("postgres"), work / "project")
    add_tag(project, "v1-code", {"extensions/directus-extension-hello/dist/index.js": HELLO}, base="v1")
    fleet = Fleet(work / "hosts", bed).up(project)
    try:
        one_host = fleet.tool_env(project, hosts="fleet-1")
        single, single_summary = fab_json(one_host, "release", "--tag=v1-code", "--yes")
        fab(one_host, "rollback", "--yes")
        three, three_summary = fab_json(fleet.tool_env_file, "release", "--tag=v1-code", "--yes")
        fab(fleet.tool_env_file, "rollback", "--yes")
        at_once, at_once_summary = fab_json(fleet.tool_env_file, "release", "--tag=v1-code", "--batch=3", "--yes")
    finally:
        fleet.destroy()
        if not reuse:
            bed.destroy()
    print()
    print(f"{'release of a code-only tag':<34} {'seconds':>8} {'SSH commands':>13}")
    print("-" * 57)
    print(f"{'1 host':<34} {single:8.1f} {single_summary['round_trips']:13d}")
    print(f"{'3 hosts (rolling, one at a time)':<34} {three:8.1f} {three_summary['round_trips']:13d}")
    print(f"{'3 hosts, --batch=3 (all at once)':<34} {at_once:8.1f} {at_once_summary['round_trips']:13d}")
    print(f"3 hosts rolling / 1 host: {three / single:.2f}x; 3 hosts at once / 1 host: {at_once / single:.2f}x")
    print()
    print(f"{'where the time goes (s, summed over hosts)':<44} {'1 host':>7} {'rolling':>8} {'at once':>8}")
    rolling, together = grouped(three_summary["steps"]), grouped(at_once_summary["steps"])
    for kind, seconds in grouped(single_summary["steps"]).items():
        print(f"  {kind:<42} {seconds:7.1f} {rolling[kind]:8.1f} {together[kind]:8.1f}")
    # a rolling restart waits for each host's Directus to boot and pass its gate before the next
    switch = grouped(single_summary["steps"])["switches (restarts and gates)"]
    floor = single + 2 * switch
    print(f"floor of a rolling restart of 3 hosts, everything else free: 1 host + 2 more switches "
          f"= {single:.1f} + 2 x {switch:.1f} = {floor:.1f}s, {floor / single:.2f}x one host")
    return 0


if __name__ == "__main__":
    sys.exit(main())
