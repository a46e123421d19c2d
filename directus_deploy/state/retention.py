"""Retention: deleting old releases and backups, decided from the inventory of the host (its
releases, its backups and the deploy log read together), never from a count alone.

The deploy log is what says which release was the last good one and which backup each kept
release's database rollback needs. A log that is missing, unreadable, garbled, or that no longer
names what is on disk (edited, truncated or rotated by hand) would read as "no good release, no
backup needed": retention then refuses (`require_trusted_log`) and deletes nothing, rather than
fall back to a count."""

from __future__ import annotations

from directus_deploy.core.errors import Refused
from directus_deploy.host.script import parse_results
from directus_deploy.state.backup_catalog import protected_backups, prune_lines, prune_plan
from directus_deploy.state.inventory import read_inventory
from directus_deploy.state.layout import check_id
from directus_deploy.state.releases import cleanup_lines, cleanup_plan, release_outcomes


def log_problem(stock, layout) -> str | None:
    """Why the deploy log cannot be trusted to decide what retention deletes, with what to do
    about it; None when it can. It cannot when it is missing, unreadable, holds a line that is
    no entry, does not record the release `current` points at as successful, or names no entry
    at all for a release folder on disk (every release is named as made before its folder
    exists, so only a log edited, truncated or rotated by hand lacks one). With no release on disk
    the log protects nothing (no backup is a kept release's rollback), so it is not needed."""
    log = layout.log_file
    if not stock.releases:
        return None
    if stock.log_state == "missing":
        return (f"the deploy log {log} is missing: put it back (from a copy, or another host of the fleet); "
                "it says which release was the last good one and which backups their rollbacks need")
    if stock.log_state != "read":
        return f"the deploy log {log} cannot be read: make it readable by the deploy user"
    if stock.bad_log_lines:
        number = stock.bad_log_lines[0]
        return (f"line {number} of the deploy log {log} is not a JSON entry (cut short, or edited by hand): "
                "put the line back as the tool wrote it (from a copy, or another host of the fleet)")
    outcomes = release_outcomes(stock.entries)
    current = next((r["id"] for r in stock.releases if r["current"]), None)
    if current and outcomes.get(current) != "ok":
        return (f"the deploy log {log} does not record the current release {current} as successful "
                "(edited, truncated or rotated by hand?): put back the lines that recorded it")
    named = {entry.get("release") for entry in stock.entries}
    unnamed = [r["id"] for r in stock.releases if r["id"] not in named]
    if unnamed:
        return (f"the deploy log {log} names no entry for release {', '.join(unnamed)} on disk (edited or rotated by "
                f"hand?): put back the lines that recorded it, or delete a release no rollback needs by hand "
                f"(rm -rf {layout.releases}/<id>)")
    return None


def require_trusted_log(session, stock) -> None:
    """Refuses (nothing deleted) when the deploy log cannot be trusted (`log_problem`)."""
    problem = log_problem(stock, session.layout)
    if problem:
        raise Refused(f"{session.remote().name}: nothing was deleted: {problem}")


def prune_backups(session, keep_count: int) -> list[str]:
    stock = read_inventory(session.remote(), session.layout)
    require_trusted_log(session, stock)
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
    require_trusted_log(session, stock)
    doomed = cleanup_plan(stock.releases, stock.entries, keep)
    lines = cleanup_lines(session.layout, doomed, session.runtime.release_removed)
    out = session.remote().script("\n".join(lines), what="clean up releases").stdout
    return doomed + [f"deps/{store['key']}" for store in parse_results(out).all("store")]
