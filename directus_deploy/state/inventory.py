"""Everything on a host the housekeeping needs, read in one round trip: releases, backups and
the deploy log."""

from __future__ import annotations

from dataclasses import dataclass, field

from directus_deploy.host.remote import q
from directus_deploy.host.script import section, split_sections
from directus_deploy.state import deploylog
from directus_deploy.state.backup_catalog import backups_script, parse_backups
from directus_deploy.state.releases import parse_releases, releases_script


@dataclass
class Inventory:
    releases: list  # oldest first, each with "current"
    backups: list  # newest first
    incomplete_backups: list
    entries: list  # the deploy log
    log_state: str = "read"  # read | missing | unreadable
    bad_log_lines: list = field(default_factory=list)  # numbers of the log's lines that are no entry


def read_inventory(remote, layout) -> Inventory:
    log = q(layout.log_file)
    script = "\n".join([
        section("releases"), f"( {releases_script(layout)} )",
        section("backups"), f"( {backups_script(layout)} )",
        section("log"), f"log_read=0; cat -- {log} 2>/dev/null || log_read=$?",
        section("log_state"), f'if [ "$log_read" = 0 ]; then echo read; elif [ -e {log} ] || [ -L {log} ]; '
                              "then echo unreadable; else echo missing; fi",
    ])
    found = split_sections(remote.query(script, what="list releases, backups and the deploy log").stdout)
    backups, incomplete = parse_backups(found.get("backups", ""))
    entries, bad = deploylog.parse_log(found.get("log", ""))
    state = found.get("log_state", "").strip() or "unreadable"  # the script stopped before it could tell
    return Inventory(parse_releases(found.get("releases", "")), backups, incomplete, entries, state, bad)
