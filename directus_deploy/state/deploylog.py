"""The deploy log on the host, `.deploy/log.jsonl`: one JSON line per release, rollback,
restore or adoption (who, what, when, backup id, outcome, step timings)."""

from __future__ import annotations

import getpass
import json
import socket

from directus_deploy.core.manifest import utc_now
from directus_deploy.host.remote import q


def who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def read_entries(remote, layout) -> list[dict]:
    return parse_entries(remote.query(log_script(layout), what="read the deploy log").stdout)


def log_script(layout) -> str:
    return f"cat -- {q(layout.log_file)} 2>/dev/null || true"


def parse_entries(text: str) -> list[dict]:
    entries = []
    for line in text.splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a full disk or a crash: skip it, keep the rest
    return entries


def append(remote, layout, entry: dict) -> dict:
    record = {"at": utc_now(), "by": who(), **entry}
    line = json.dumps(record, sort_keys=False)
    remote.run(
        f"mkdir -p {q(layout.tool_dir)} && umask 077 && cat >> {q(layout.log_file)}",
        stdin=line + "\n", what="write the deploy log",
    )
    return record
