"""The test bed from a shell.

    python -m testbed up [--root DIR] [--engines sqlite,postgres,mysql] [--sqlite-shape init]
    python -m testbed status [--root DIR]
    python -m testbed show [--root DIR] [--engines sqlite]
    python -m testbed compose [--root DIR]
    python -m testbed configure --from FILE --project DIR
    python -m testbed down [--root DIR]

`up` leaves sshd, pm2 and the Directus productions running in the background and prints
how to point `fab` at them (DEPLOY_ENV_FILE=...). `compose`, on a bed that is up, starts a
Directus 11.17.4 compose install (Docker Engine, Compose v2, the bed's images) as a team runs
it before this tool, seeded with content, and a project whose tags u1 (that install) and u2
(Directus 12.4.0 and v2) are what the team keeps in git; `show --engines compose` reads it.
`configure` fills in the .env.deploy (and .env.deploy.local) that `directus-deploy init`
wrote into a project folder with the settings of a bed's configuration file, as a user would by
hand (DEPLOY_SOURCE left out: the project folder is the source). Tests reuse a running bed when DIRECTUS_DEPLOY_TESTBED names its folder.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .bed import TestBed
from .content import Api, read_content, seed
from .databases import ENGINES, SqliteDatabase, new_database
from .docker import ComposeProduction
from .production import Pm2
from .tool import fill_in, read_settings
from .toolchain import DIRECTUS_VERSION, PREVIOUS_DIRECTUS_VERSION, Toolchain

DEFAULT_ROOT = Path(".testbed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "status", "show", "compose", "configure", "down"))
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("DIRECTUS_DEPLOY_TESTBED") or DEFAULT_ROOT))
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: sqlite,postgres,mysql")
    parser.add_argument("--sqlite-shape", default="tidy", choices=SqliteDatabase.SHAPES,
                        help="where the SQLite production keeps its file (init: ./data.db, as `directus init` makes it)")
    parser.add_argument("--from", dest="from_file", type=Path, help="configure: the bed's configuration file")
    parser.add_argument("--project", type=Path, help="configure: the project folder init wrote into")
    args = parser.parse_args(argv)
    state_file = args.root / "testbed.json"
    if args.command == "configure":
        if not (args.from_file and args.project):
            parser.error("configure needs --from and --project")
        settings = read_settings(args.from_file)
        settings.pop("DEPLOY_SOURCE", None)
        fill_in(args.project, settings)
        return 0

    if args.command == "up":
        if state_file.exists():
            down(args.root)
        engines = tuple(e for e in args.engines.split(",") if e)
        unknown = set(engines) - set(ENGINES)
        if unknown:
            parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")
        bed = TestBed(args.root, engines, sqlite_shape=args.sqlite_shape).up()
        print_status(json.loads(state_file.read_text()))
        return 0
    if not state_file.exists():
        print(f"no test bed at {args.root} (run: python -m testbed up)", file=sys.stderr)
        return 1
    if args.command == "status":
        print_status(json.loads(state_file.read_text()))
        return 0
    if args.command == "compose":
        print(json.dumps(compose_install(args.root, state_file), indent=2))
        return 0
    if args.command == "show":
        bed = TestBed.attach(args.root)
        for engine in args.engines.split(","):
            if engine in bed.productions:
                show(engine, bed.productions[engine])
        state = json.loads(state_file.read_text())
        if "compose" in args.engines.split(",") and "compose" in state:
            entry = state["compose"]
            return show_content("compose", entry["url"], Api(entry["url"], entry["token"]), entry["seeded_files"])
        return 0
    down(args.root)
    return 0


def print_status(state: dict) -> None:
    print(f"test bed at {state['root']}: sshd on 127.0.0.1:{state['ssh_port']}")
    for engine, production in state["productions"].items():
        print(f"  {engine:<9} Directus {production['url']}  pm2 app {production['app']}")
        print(f"            DEPLOY_ENV_FILE={production['env_file']} fab host.check")


def show(engine: str, production) -> int:
    return show_content(engine, production.url, production.api, production.seeded.files)


def show_content(name: str, url: str, api: Api, seeded_files: dict) -> int:
    """What a production serves now: its endpoint, its items, its files checked byte for byte."""
    content = read_content(api)
    hello = api.get("/hello", auth=False)
    print(f"{name} production at {url}")
    print(f"  GET /hello -> {json.dumps(hello)}")
    print(f"  {len(content['articles'])} articles, {len(content['files'])} files; first three:")
    for article in content["articles"][:3]:
        print(f"    #{article['id']:<3} {article['title']:<12} image {article['image']}")
    intact = sum(1 for fid, digest in seeded_files.items() if content["files"].get(fid) == digest)
    print(f"  uploaded files served with their original bytes (sha256): {intact}/{len(seeded_files)}")
    return 0 if intact == len(seeded_files) else 1


def compose_install(root: Path, state_file: Path) -> dict:
    """A running Directus 11.17.4 compose install with content, and the tool's settings for it."""
    state = json.loads(state_file.read_text())
    if "compose" in state:
        ComposeProduction.stop(state["compose"]["project"])
    folder = root.resolve() / "compose" / str(os.getpid())  # absolute: bind-mount sources
    production = ComposeProduction(TestBed.attach(root), folder).create(setup=False)
    production.add_tag("u1", "v1", PREVIOUS_DIRECTUS_VERSION)
    production.add_tag("u2", "v2", DIRECTUS_VERSION)
    install = production.install("u1")
    seeded = seed(production.api, images=6, schema=False)
    state["compose"] = entry = {
        "project": production.project_name, "install": str(install), "url": production.api.url,
        "token": production.token, "env_file": str(production.env_file), "seeded_files": seeded.files,
    }
    state_file.write_text(json.dumps(state, indent=2))
    return {key: entry[key] for key in ("project", "install", "url", "env_file")}


def down(root: Path) -> None:
    state = json.loads((root / "testbed.json").read_text())
    Pm2(Path(state["root"]) / "pm2", Toolchain()).kill()
    pid_file = Path(state["root"]) / "ssh" / "sshd.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    for engine, production in state["productions"].items():
        try:
            new_database(engine, production["name"], Path(production["folder"])).drop()
        except (RuntimeError, subprocess.SubprocessError) as why:
            print(f"could not drop the {engine} database: {why}", file=sys.stderr)
    if "compose" in state:
        ComposeProduction.stop(state["compose"]["project"])
    (root / "testbed.json").unlink()
    print(f"test bed at {root} stopped")


if __name__ == "__main__":
    sys.exit(main())
