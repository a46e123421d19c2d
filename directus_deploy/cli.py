"""The `directus-deploy` command: what comes before a project has its fabfile.

`directus-deploy init` writes the project's files (core/scaffold.py); everything after runs as
`fab <task>` from the project's folder. `init` is not a fab task because `fab` needs a
fabfile to find any task, and writing that fabfile is init's first job.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from directus_deploy.core import scaffold
from directus_deploy.runtimes import found_in


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="directus-deploy",
        description="Safe production deploys for a Directus project. `directus-deploy init` prepares the project; "
                    "then `fab --list` (from the project's folder) shows the tasks.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {scaffold.version()}")
    commands = parser.add_subparsers(dest="command", metavar="command")
    init = commands.add_parser(
        "init", help="write the deploy files into a Directus project (never over an existing file)",
        description="Write into the Directus project's folder: fabfile.py, .env.deploy (the configuration, "
                    "committed), .env.deploy.local (its secrets, git-ignored), requirements-deploy.txt (this "
                    "tool, pinned) and .github/workflows/deploy.yml (CI releasing a pushed tag). A file that "
                    "exists is kept as it is: running init again changes nothing.")
    init.add_argument("project", nargs="?", default=".", help="the project's folder (default: the current one)")
    args = parser.parse_args(argv)
    if args.command != "init":
        parser.print_help()
        return 2
    project = Path(args.project)
    if not project.is_dir():
        print(f"error: {project} is not a folder", file=sys.stderr)
        return 2
    print(f"directus-deploy init in {project.resolve()}")
    written = scaffold.init(project, found_in(project))
    if written:
        print("Next: fill in .env.deploy and .env.deploy.local, then `fab host.trust`, `fab host.check`, and "
              "`fab deploy.adopt --from=<folder>` (a Directus that runs today) or `fab release`.")
    else:
        print("Nothing to write: every file exists.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
