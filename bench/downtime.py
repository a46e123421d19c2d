"""Downtime benchmark: what users see during `fab release` and `fab rollback`, restart against
blue/green, and Directus run by Docker Compose, side by side in one run.

    .venv/bin/python bench/downtime.py [--plot docs/downtime.png]
        [--strategies restart,bluegreen,compose,compose-bluegreen]

For each pm2 strategy, a fresh SQLite production of the test bed behind nginx (Debian's package),
adopted into the layout; for compose, a compose production of the test bed (SQLite in a bind
mount, the image `directus/directus:12.4.0`) released at c1; for compose-bluegreen, a compose
install of c1 adopted with DEPLOY_STRATEGY=bluegreen and nginx pointed at the tool's upstream
(two Directus containers, switched by nginx). Then a probe requests /server/ping
and a content endpoint (/items/articles, with the token) through nginx every 50 ms while
`fab release` (v2, or c2) and then `fab rollback` run. Counted: requests, failed ones (no answer,
or not 2xx), requests slower than 2 s, and the longest stretch without a successful answer. The
probe's timeline of every strategy is drawn into a PNG.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testbed.bed import TestBed  # noqa: E402
from testbed.docker import ComposeProduction  # noqa: E402
from testbed.nginx import Nginx, adopted_behind  # noqa: E402
from testbed.probe import SLOW, Probe  # noqa: E402
from testbed.project import clone_project  # noqa: E402
from testbed.tool import fab  # noqa: E402

PROBED = ["/server/ping", "/items/articles?limit=1"]


def longest_outage(probe: Probe) -> float:
    """The longest time between two successful answers with only failures in between."""
    worst, last_ok, failing = 0.0, None, False
    for sample in probe.samples:
        if sample.failed:
            failing = True
        else:
            if failing and last_ok is not None:
                worst = max(worst, sample.at + sample.seconds - last_ok)
            last_ok, failing = sample.at + sample.seconds, False
    return worst


def measure(bed: TestBed, nginx: Nginx, strategy: str, work: Path) -> dict:
    production = bed.new_productions(("sqlite",))["sqlite"]
    try:
        project = clone_project(bed.project_dir("sqlite"), work / strategy / "project")
        site, env_file = adopted_behind(nginx, bed, production, project, strategy, work / strategy)
        return probed(site, production.token, env_file,
                      (("release", ("release", "--tag=v2", "--yes")), ("rollback", ("rollback", "--yes"))))
    finally:
        for suffix in ("", "-blue", "-green"):
            bed.pm2.run("delete", production.app + suffix, check=False)
        production.destroy()


def measure_compose(bed: TestBed, nginx: Nginx, work: Path, bluegreen: bool = False) -> dict:
    """A compose production. Restart: the tool migrates, then recreates the Directus container
    (`up -d --force-recreate`); requests go through nginx to its port. Blue/green: a second
    container starts on the idle color's port and nginx moves to it once it passes its gate."""
    production = ComposeProduction(bed, work / ("compose-bluegreen" if bluegreen else "compose"))
    try:
        if bluegreen:
            site = production.create(setup=False).adopt_behind_nginx(nginx)["site"]
        else:
            production.create()
            fab(production.env_file, "release", "--tag=c1", "--yes")
            site = nginx.site(f"compose-{production.project_name}", f"http://127.0.0.1:{production.port}")
        return probed(site, production.token, production.env_file,
                      (("release", ("release", "--tag=c2", "--yes")), ("rollback", ("rollback", "--yes"))))
    finally:
        production.destroy()


def probed(site: int, token: str, env_file: Path, actions) -> dict:
    """Each `fab` action run while the probe asks the site, with a second of service around it."""
    runs = {}
    for action, args in actions:
        with Probe(f"http://127.0.0.1:{site}", PROBED, token=token) as probe:
            time.sleep(1)  # a second of normal service before, for the picture
            seconds, _ = fab(env_file, *args)
            time.sleep(1)
        runs[action] = {"seconds": seconds, "probe": probe}
    return runs


def plot(results: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 2.6 * len(results)), sharey=True, squeeze=False)
    for row, (strategy, runs) in enumerate(results.items()):
        for column, (action, run) in enumerate(runs.items()):
            axis = axes[row][column]
            probe = run["probe"]
            ok = [s for s in probe.samples if not s.failed]
            bad = [s for s in probe.samples if s.failed]
            axis.scatter([s.at for s in ok], [s.seconds * 1000 for s in ok], s=4, color="tab:blue", label="answered")
            axis.scatter([s.at for s in bad], [max(s.seconds, 0.001) * 1000 for s in bad], s=10, color="tab:red",
                         marker="x", label="failed")
            axis.set_yscale("log")
            axis.set_title(f"{strategy}: fab {action} ({len(bad)} of {len(probe.samples)} requests failed)", fontsize=9)
            axis.set_xlabel("seconds")
            if column == 0:
                axis.set_ylabel("response time, ms")
            axis.grid(True, alpha=0.3)
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", default=str(REPO / "docs" / "downtime.png"), help="PNG to draw the timelines into")
    parser.add_argument("--strategies", default="restart,bluegreen,compose,compose-bluegreen",
                        help="which to measure, in order: restart, bluegreen (pm2), compose, compose-bluegreen")
    options = parser.parse_args()
    strategies = [s.strip() for s in options.strategies.split(",") if s.strip()]
    work = Path(tempfile.mkdtemp(prefix="downtime-bench-"))
    reuse = os.environ.get("DIRECTUS_DEPLOY_TESTBED")
    bed = TestBed.attach(Path(reuse)) if reuse else TestBed(work / "bed", ("sqlite",)).up()
    nginx = Nginx(work / "nginx").start()
    try:
        results = {strategy: measure_compose(bed, nginx, work, bluegreen=strategy == "compose-bluegreen")
                   if strategy.startswith("compose") else measure(bed, nginx, strategy, work) for strategy in strategies}
    finally:
        nginx.stop()
        if not reuse:
            bed.destroy()
    print()
    print(f"probe: {', '.join(PROBED)} through nginx, one request every 50 ms")
    print(f"{'strategy':<17} {'action':<9} {'fab s':>6} {'requests':>9} {'failed':>7} {'slow >' + str(int(SLOW)) + 's':>9} "
          f"{'longest outage s':>17}")
    print("-" * 79)
    for strategy, runs in results.items():
        for action, run in runs.items():
            probe = run["probe"]
            print(f"{strategy:<17} {action:<9} {run['seconds']:6.1f} {len(probe.samples):9d} {len(probe.failures):7d} "
                  f"{len(probe.slow):9d} {longest_outage(probe):17.2f}")
    for action in ("release", "rollback"):
        failed = " / ".join(str(len(results[s][action]["probe"].failures)) for s in results)
        print(f"{action}: failed requests, {' / '.join(results)}: {failed}")
    plot(results, Path(options.plot))
    print(f"timeline: {options.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
