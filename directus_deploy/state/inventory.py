"""Everything on a host the housekeeping needs, read in one round trip: releases, backups and
the deploy log."""

from __future__ import annotations

from dataclasses import dataclass

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


def read_inventory(remote, layout) -> Inventory:
    script = "\n".join([
        section("releases"), f"( {releases_script(layout)} )",
        section("backups"), f"( {backups_script(layout)} )",
        section("log"), deploylog.log_script(layout),
    ])
    found = split_sections(remote.query(script, what="list releases, backups and the deploy log").stdout)
    backups, incomplete = parse_backups(found.get("backups", ""))
    return Inventory(parse_releases(found.get("releases", "")), backups, incomplete,
                     deploylog.parse_entries(found.get("log", "")))
