"""Retention: deleting old releases and backups, decided from the inventory of the host (its
releases, its backups and the deploy log read together), never from a count alone."""

from __future__ import annotations

from directus_deploy.core.errors import Refused
from directus_deploy.host.script import parse_results
from directus_deploy.state.backup_catalog import protected_backups, prune_lines, prune_plan
from directus_deploy.state.inventory import read_inventory
from directus_deploy.state.layout import check_id
from directus_deploy.state.releases import cleanup_lines, cleanup_plan


def prune_backups(session, keep_count: int) -> list[str]:
    stock = read_inventory(session.remote(), session.layout)
    doomed = prune_plan(stock.backups, stock.entries, {r["id"] for r in stock.releases}, keep_count, session.console.say)
    lines = prune_lines(session.layout, stock.backups, doomed, stock.incomplete_backups)
    if lines:
        session.remote().script("\n".join(lines), what="delete old backups")
    return doomed + stock.incomplete_backups


def delete_backup(session, backup_id: str) -> None:
    """Delete one backup on request (safety backups included), handing over an uploads folder
    other backups share, exactly as pruning does."""
    check_id("backup", backup_id)
    stock = read_inventory(session.remote(), session.layout)
    if backup_id not in {b["id"] for b in stock.backups}:
        raise Refused(f"{session.remote().name}: no backup {backup_id} in {session.layout.backups} (fab backup.list shows them)")
    needed_by = protected_backups([], stock.entries, {r["id"] for r in stock.releases}).get(backup_id)
    if needed_by:
        raise Refused(f"backup {backup_id} is the {needed_by}; roll back or clean up that release first")
    session.remote().script("\n".join(prune_lines(session.layout, stock.backups, [backup_id], [])),
                            what=f"delete backup {backup_id}")


def cleanup(session, keep: int) -> list[str]:
    stock = read_inventory(session.remote(), session.layout)
    doomed = cleanup_plan(stock.releases, stock.entries, keep)
    lines = cleanup_lines(session.layout, doomed, session.runtime.release_removed)
    out = session.remote().script("\n".join(lines), what="clean up releases").stdout
    return doomed + [f"deps/{store['key']}" for store in parse_results(out).all("store")]
