"""`directus-deploy init`: the files a Directus project needs to deploy itself with this tool.

Each file is written only where none exists (a second run changes nothing); `.gitignore` gets
the secrets file's line only when git does not ignore that file yet. What is written is data
(`planned`), so tests check it without touching a disk.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from directus_deploy.core.config import DEFAULT_ENV_FILE, LOCAL_SUFFIX

DISTRIBUTION = "directus-deploy"
SECRETS_FILE = DEFAULT_ENV_FILE + LOCAL_SUFFIX
REQUIREMENTS_FILE = "requirements-deploy.txt"
WORKFLOW_FILE = ".github/workflows/deploy.yml"


@dataclass(frozen=True)
class Planned:
    path: str  # relative to the project
    text: str
    mode: int = 0o644
    what: str = ""


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def requirement() -> tuple[str, str | None]:
    """The requirement line pinning the installed package exactly as it was installed, and a
    warning when CI could not install it that way (a local file or folder)."""
    try:
        distribution = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return f"{DISTRIBUTION}=={version()}", "directus-deploy is not installed; pin the version you install"
    origin = distribution.read_text("direct_url.json")
    if not origin:  # from a package index
        return f"{DISTRIBUTION}=={distribution.version}", None
    origin = json.loads(origin)
    url = origin["url"]
    vcs = origin.get("vcs_info")
    if vcs:
        return f"{DISTRIBUTION} @ {vcs['vcs']}+{url}@{vcs['commit_id']}", None
    if url.startswith("file:"):
        return (f"{DISTRIBUTION} @ {url}",
                f"{REQUIREMENTS_FILE} names a file on this machine ({url}); for CI, replace it with the "
                f"git URL you install from (directus-deploy @ git+https://...@<tag>)")
    return f"{DISTRIBUTION} @ {url}", None


def planned(project: Path, service: tuple[str, str] | None = None) -> list[Planned]:
    """Every file init writes into `project`, with its content. `service`: (DIRECTUS_SERVICE,
    the project's file that shows it) when the project shows what runs Directus."""
    templates = resources.files("directus_deploy") / "templates"
    config = templates.joinpath("env.deploy").read_text()
    if service:  # the template's one uncommented DIRECTUS_SERVICE line names the default runtime
        config = re.sub(r"^DIRECTUS_SERVICE=.*$", f"# init found {service[1]} in the project\nDIRECTUS_SERVICE={service[0]}",
                        config, count=1, flags=re.M)
    pin, _ = requirement()
    return [
        Planned("fabfile.py", templates.joinpath("fabfile.py").read_text(), what="the tasks: fab --list"),
        Planned(DEFAULT_ENV_FILE, config, what="the configuration, committed: set DEPLOY_HOSTS and DEPLOY_PATH"),
        Planned(SECRETS_FILE, templates.joinpath("env.deploy.local").read_text(), mode=0o600,
                what="the secrets, never committed: set DIRECTUS_TOKEN"),
        Planned(REQUIREMENTS_FILE,
                "# The deploy tool, pinned: pip install -r requirements-deploy.txt (in a virtualenv; CI does the same).\n"
                f"{pin}\n", what="the tool, pinned"),
        Planned(WORKFLOW_FILE, templates.joinpath("deploy.yml").read_text(),
                what="CI: release a pushed tag (needs the secrets its comments name)"),
    ]


def init(project: Path, service: tuple[str, str] | None = None, say=print) -> list[str]:
    """Write what is missing; return the paths written. Never overwrites a file."""
    project = project.resolve()
    written = []
    for each in planned(project, service):
        target = project / each.path
        if target.exists() or target.is_symlink():
            say(f"  kept   {each.path} (it exists; not changed)")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x") as handle:  # "x": never over a file made meanwhile
            handle.write(each.text)
        target.chmod(each.mode)
        written.append(each.path)
        say(f"  wrote  {each.path:<32} {each.what}")
    for line in _gitignore(project):
        say(line)
    _, warning = requirement()
    if warning and REQUIREMENTS_FILE in written:
        say(f"  note   {warning}")
    if not _in_repository(project):
        say(f"  note   {project} is not a git repository: releases are tags of one (git init, commit, git tag v1)")
    return written


def _in_repository(project: Path) -> bool:
    result = subprocess.run(["git", "-C", str(project), "rev-parse", "--git-dir"], capture_output=True)
    return result.returncode == 0


def _ignored(project: Path, name: str) -> bool | None:
    """Whether git ignores `name` in `project`; None outside a repository."""
    result = subprocess.run(["git", "-C", str(project), "check-ignore", "-q", "--no-index", name], capture_output=True)
    return {0: True, 1: False}.get(result.returncode)


def _gitignore(project: Path) -> list[str]:
    """Make git ignore the secrets file and not the configuration; lines saying what was done."""
    gitignore = project / ".gitignore"
    existing = gitignore.read_text() if gitignore.is_file() else ""
    wanted = []
    secrets_ignored = _ignored(project, SECRETS_FILE)
    if secrets_ignored is False or (secrets_ignored is None and SECRETS_FILE not in existing.split()):
        wanted.append(f"/{SECRETS_FILE}")
    if _ignored(project, DEFAULT_ENV_FILE):  # a pattern such as .env* would keep the configuration out of git
        wanted.append(f"!/{DEFAULT_ENV_FILE}")
    if not wanted:
        return [f"  kept   .gitignore (it already ignores {SECRETS_FILE})"]
    separator = "" if not existing or existing.endswith("\n") else "\n"
    gitignore.write_text(existing + separator + "# directus-deploy: its secrets stay here, its configuration is committed\n"
                         + "".join(f"{line}\n" for line in wanted))
    return [f"  added  {line:<32} to .gitignore" for line in wanted]
