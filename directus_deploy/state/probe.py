"""What a host has: tools, Node version, free disk, layout. Read in one round trip."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import Remote, q
from directus_deploy.state.layout import Layout

# What the tool may call on a host, and why (the runtime adds its own: runtimes/).
TOOLS = {
    "node": "runs Directus (22 or newer)",
    "npm": "installs dependencies (npm ci)",
    "tar": "unpacks releases",
    "zstd": "compresses backups and uploads",
    "rsync": "copies uploads incrementally",
    "flock": "keeps two restarts of Directus from overlapping",
    "sqlite3": "backs up SQLite databases",
    "pg_dump": "backs up PostgreSQL databases",
    "pg_restore": "restores PostgreSQL backups",
    "psql": "verifies PostgreSQL backups",
    "mysqldump": "backs up MySQL/MariaDB databases",
    "mysql": "restores and verifies MySQL/MariaDB backups",
}
MINIMUM_NODE_MAJOR = 22


@dataclass
class HostFacts:
    user: str = ""
    hostname: str = ""
    tools: dict = field(default_factory=dict)  # name -> path
    node_version: str = ""
    free_kib: int = 0
    disk_of: str = ""
    layout_exists: bool = False
    dependency_stores: list = field(default_factory=list)  # complete stores in shared/deps
    current_release: str | None = None
    current_revision: dict = field(default_factory=dict)

    @property
    def node_major(self) -> int:
        match = re.match(r"v?(\d+)", self.node_version)
        return int(match[1]) if match else 0


def read_host_facts(remote: Remote, deploy_path: str, tools: dict | None = None) -> HostFacts:
    layout = Layout(deploy_path)
    script = "; ".join(
        [
            'echo "user=$(id -un)"',
            'echo "hostname=$(hostname)"',
            f"for t in {q(*(tools or TOOLS))}; do p=$(command -v \"$t\") && echo \"tool.$t=$p\"; done",
            'command -v node >/dev/null && echo "node=$(node --version)"',
            # free space where DEPLOY_PATH is, or would be created
            f"d={q(deploy_path)}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done",
            'echo "disk_of=$d"',
            'echo "free_kib=$(df -Pk "$d" | awk \'NR==2 {print $4}\')"',
            f"test -d {q(layout.shared)} && echo layout=yes",
            f"for s in {q(layout.shared_deps)}/*/.complete; do [ -f \"$s\" ] && "
            "echo \"deps=$(basename \"$(dirname \"$s\")\")\"; done",
            f"c=$(readlink -- {q(layout.current)}) && echo \"current=$(basename \"$c\")\" && "
            f"echo \"revision=$(tr -d '\\n' < {q(layout.current + '/REVISION')})\"",
            "true",
        ]
    )
    lines = remote.query(script, what="read host facts").stdout.splitlines()
    facts = HostFacts()
    for line in lines:
        key, _, value = line.partition("=")
        if key.startswith("tool."):
            facts.tools[key[5:]] = value
        elif key == "user":
            facts.user = value
        elif key == "hostname":
            facts.hostname = value
        elif key == "node":
            facts.node_version = value
        elif key == "disk_of":
            facts.disk_of = value
        elif key == "free_kib" and value.isdigit():
            facts.free_kib = int(value)
        elif key == "layout":
            facts.layout_exists = True
        elif key == "deps":
            facts.dependency_stores.append(value)
        elif key == "current":
            facts.current_release = value
        elif key == "revision":
            try:
                facts.current_revision = json.loads(value)
            except ValueError:
                pass
    return facts


def require_node(remote: Remote, facts: HostFacts) -> None:
    if "node" not in facts.tools:
        raise Refused(
            f"{remote.name}: node not found on the SSH session's PATH; install Node "
            f"{MINIMUM_NODE_MAJOR}+ or set DEPLOY_NODE_PATH to the folder holding it"
        )
    if facts.node_major < MINIMUM_NODE_MAJOR:
        raise Refused(
            f"{remote.name}: node {facts.node_version} is too old; Directus needs Node "
            f"{MINIMUM_NODE_MAJOR}+ (set DEPLOY_NODE_PATH to a newer one)"
        )
