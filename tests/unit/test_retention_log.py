"""Retention trusts the deploy log only when it is whole and names what is on disk: the
inventory tells a missing log from an empty one and counts the lines that are no entry, and
`log_problem` says why a log cannot be trusted (prune and cleanup then refuse)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.state import deploylog
from directus_deploy.state.inventory import read_inventory
from directus_deploy.state.layout import Layout
from directus_deploy.state.retention import cleanup, log_problem, prune_backups

from .local import LocalRemote

R1, R2 = "20260101T120000Z-v1", "20260102T120000Z-v2"
B1, B2 = "20260101T110000Z-pre-adopt", "20260102T110000Z-pre-release-v2"
GOOD = [{"action": "adopt", "release": R1, "backup": B1, "outcome": "ok"},
        {"action": "release", "release": R2, "backup": B2, "outcome": "ok"}]


@pytest.fixture
def host(tmp_path):
    """Two releases (v2 current) and their two backups, and a log recording both."""
    layout = Layout(str(tmp_path / "srv"))
    for release in (R1, R2):
        os.makedirs(os.path.join(layout.releases, release))
    os.symlink(f"releases/{R2}", layout.current)
    for backup in (B1, B2):
        os.makedirs(layout.backup_dir(backup))
        with open(os.path.join(layout.backup_dir(backup), "summary.json"), "w") as handle:
            json.dump({"reason": backup[17:]}, handle)
    write_log(layout, GOOD)
    return layout


def write_log(layout, entries, extra: str = "") -> None:
    os.makedirs(layout.tool_dir, exist_ok=True)
    with open(layout.log_file, "w") as handle:
        handle.write("".join(json.dumps(e) + "\n" for e in entries) + extra)


def problem(layout) -> str | None:
    return log_problem(read_inventory(LocalRemote(), layout), layout)


def test_a_whole_log_naming_every_release_is_trusted(host):
    assert problem(host) is None
    write_log(host, GOOD, "\n\n")  # blank lines are no damage
    assert problem(host) is None


def test_a_missing_log_is_told_from_an_empty_one(host):
    os.remove(host.log_file)
    stock = read_inventory(LocalRemote(), host)
    assert stock.log_state == "missing" and "is missing" in log_problem(stock, host)
    write_log(host, [])
    stock = read_inventory(LocalRemote(), host)
    assert stock.log_state == "read" and "does not record the current release" in log_problem(stock, host)


def test_a_missing_log_where_no_release_is_is_no_problem(tmp_path, host):
    assert problem(Layout(str(tmp_path / "nothing"))) is None
    for release in (R1, R2):  # backups taken with --install before any release: no rollback needs them
        os.rmdir(os.path.join(host.releases, release))
    os.remove(host.current)
    os.remove(host.log_file)
    assert problem(host) is None


def test_a_log_that_cannot_be_read_is_not_trusted(host):
    os.remove(host.log_file)
    os.mkdir(host.log_file)  # cat fails on it, as on a file it may not read (root reads any file)
    stock = read_inventory(LocalRemote(), host)
    assert stock.log_state == "unreadable" and "cannot be read" in log_problem(stock, host)


@pytest.mark.parametrize("text, line, entries", [
    (json.dumps(GOOD[0])[:20] + "\n" + json.dumps(GOOD[1]) + "\n", 1, 1),  # the first line cut short
    (json.dumps(GOOD[0]) + "\n" + json.dumps(GOOD[1])[:-3], 2, 1),  # the last one, no newline
    (json.dumps(GOOD[0]) + "\n[1, 2]\n" + json.dumps(GOOD[1]) + "\n", 2, 2),  # JSON, but no entry
])
def test_a_line_that_is_no_entry_is_named(host, text, line, entries):
    with open(host.log_file, "w") as handle:
        handle.write(text)
    stock = read_inventory(LocalRemote(), host)
    assert stock.bad_log_lines == [line]
    assert f"line {line} of the deploy log" in log_problem(stock, host)
    # readers other than retention still skip it
    assert len(deploylog.read_entries(LocalRemote(), host)) == entries


def test_a_log_no_longer_naming_a_release_on_disk_is_not_trusted(host):
    write_log(host, GOOD[1:])  # the adoption's line removed by hand: v1 reads as never good
    assert f"names no entry for release {R1}" in problem(host)
    write_log(host, GOOD[:1])  # the current release's line gone
    assert f"current release {R2} as successful" in problem(host)
    write_log(host, GOOD[:1] + [{"action": "release", "release": R2, "outcome": "rolled-back"}])
    assert "as successful" in problem(host)


def test_releases_a_killed_run_left_are_named_and_one_that_went_live_is_kept():
    from directus_deploy.state.releases import cleanup_plan

    layout = Layout("/srv/x")
    releases = [{"id": "a", "current": False, "served": False}, {"id": "b", "current": False, "served": True},
                {"id": "c", "current": False, "served": True}, {"id": "d", "current": True, "served": True}]
    entries = [{"action": "code", "release": "a", "outcome": "made"},  # killed before its switch
               {"action": "code", "release": "b", "outcome": "made"},  # killed after it
               {"action": "switch", "release": "c", "outcome": "failed"},
               {"action": "rollback", "release": "d", "outcome": "ok"}]
    stock = SimpleNamespace(log_state="read", bad_log_lines=[], backups=[], releases=releases, entries=entries)
    assert log_problem(stock, layout) is None
    assert cleanup_plan(releases, entries, keep=1) == ["a", "c"]  # b may have been good: it stays


def fake_session(layout):
    remote = LocalRemote()
    return SimpleNamespace(remote=lambda: remote, layout=layout, console=SimpleNamespace(say=print),
                           runtime=SimpleNamespace(release_removed=None))


def listing(layout) -> list:
    return sorted(os.listdir(layout.releases)) + sorted(os.listdir(layout.backups))


@pytest.mark.parametrize("retain", [lambda s: cleanup(s, 0), lambda s: prune_backups(s, 0)])
def test_cleanup_and_prune_refuse_on_a_damaged_log_and_delete_nothing(host, retain):
    before = listing(host)
    write_log(host, GOOD[1:])
    with pytest.raises(Refused, match="nothing was deleted: the deploy log .* names no entry"):
        retain(fake_session(host))
    assert listing(host) == before
    os.remove(host.log_file)
    with pytest.raises(Refused, match="is missing"):
        retain(fake_session(host))
    assert listing(host) == before
