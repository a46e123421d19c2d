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
    """The entries a reader shows (fab deploy.log, a rollback's target): a line cut short by a
    full disk or a crash is skipped, the rest kept. Retention reads the log strictly instead
    (`parse_log`)."""
    return parse_log(text)[0]


def parse_log(text: str) -> tuple[list[dict], list[int]]:
    """The entries, and the numbers (from 1) of the lines that are not one: neither blank nor
    a JSON object (cut short, or edited by hand)."""
    entries, bad = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            bad.append(number)
    return entries, bad


def new_record(entry: dict) -> dict:
    """An entry as the log keeps it: when and by whom first."""
    return {"at": utc_now(), "by": who(), **entry}


def append_lines(layout) -> str:
    """Shell appending standard input to the log (0600), its folder made if need be."""
    return f"mkdir -p -- {q(layout.tool_dir)} && (umask 077 && cat >> {q(layout.log_file)})"


def append(remote, layout, entry: dict) -> dict:
    record = new_record(entry)
    remote.run(append_lines(layout), stdin=json.dumps(record, sort_keys=False) + "\n", what="write the deploy log")
    return record
