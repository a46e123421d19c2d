"""state.backup_catalog: the listing script run with bash over a backups folder laid out as on a
host, parsed back; which backups pruning keeps (newest, safety backups, those a kept release needs);
the deletion shell, run, handing a shared uploads folder over so no kept backup loses its files;
a manifest read back through Remote; ages."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.state.backup_catalog import (
    age,
    backups_script,
    hand_over_shared_uploads,
    parse_backups,
    protected_backups,
    prune_lines,
    prune_plan,
    read_manifest,
)
from directus_deploy.state.layout import Layout

from .local import LocalRemote, run, strict

B1, B2, B3, B4 = (f"2026010{n}T120000Z-manual" for n in range(1, 5))


def make_backup(layout: Layout, backup_id: str, *, summary: dict | None = None, uploads_from: str | None = None,
                files: dict | None = None, checks: list | None = None) -> str:
    folder = os.path.join(layout.backups, backup_id)
    os.makedirs(folder)
    if summary is not None:
        with open(os.path.join(folder, "summary.json"), "w") as handle:
            json.dump({"id": backup_id, **summary}, handle, indent=1)
        with open(os.path.join(folder, "manifest.json"), "w") as handle:
            json.dump({"id": backup_id, **summary}, handle)
    if uploads_from:
        os.symlink(f"../{uploads_from}/uploads", os.path.join(folder, "uploads"))
    elif files is not None:
        os.makedirs(os.path.join(folder, "uploads"))
        for name, content in files.items():
            with open(os.path.join(folder, "uploads", name), "w") as handle:
                handle.write(content)
    if checks:
        with open(os.path.join(folder, "verifications.jsonl"), "w") as handle:
            handle.write("".join(json.dumps(c) + "\n" for c in checks))
    return folder


def listed(layout: Layout):
    return parse_backups(run(backups_script(layout)).stdout)


def test_the_listing_reads_summaries_newest_first_with_sharing_checks_and_leftovers(tmp_path):
    layout = Layout(str(tmp_path))
    make_backup(layout, B1, summary={"reason": "first"}, files={"a.jpg": "A"})
    make_backup(layout, B2, summary={"reason": "second"}, uploads_from=B1,
                checks=[{"ok": False}, {"ok": True, "at": "later"}])
    make_backup(layout, B3)  # no summary: a deletion interrupted halfway
    os.makedirs(os.path.join(layout.backups, ".tmp-20260105T120000Z-manual"))
    backups, incomplete = listed(layout)
    assert [b["id"] for b in backups] == [B2, B1]
    assert backups[0]["reason"] == "second" and backups[0]["uploads_in"] == B1
    assert backups[0]["last_check"] == {"ok": True, "at": "later"}
    assert backups[1]["uploads_in"] is None and "last_check" not in backups[1]
    assert incomplete == [B3, ".tmp-20260105T120000Z-manual"]


def test_no_backups_folder_lists_nothing(tmp_path):
    assert listed(Layout(str(tmp_path / "none"))) == ([], [])


def test_a_damaged_summary_is_not_a_backup(tmp_path):
    layout = Layout(str(tmp_path))
    make_backup(layout, B1, summary={})
    make_backup(layout, B2, summary={})
    with open(os.path.join(layout.backups, B1, "summary.json"), "w") as handle:
        handle.write('{"id": "cut sh')  # a full disk
    backups, _ = listed(layout)
    assert [b["id"] for b in backups] == [B2]


def summaries(*ids, **extra):
    return [{"id": i, "uploads_in": None, **extra.get(i, {})} for i in ids]


def test_the_newest_safety_backups_and_those_of_kept_releases_are_protected():
    backups = summaries(B4, B3, B2, B1)
    backups[2]["keep"] = "release 20260101T000000Z-v1"
    entries = [{"action": "release", "release": "R-kept", "backup": B1},
               {"action": "release", "release": "R-gone", "backup": B3}]
    protected = protected_backups(backups, entries, {"R-kept"})
    assert set(protected) == {B4, B2, B1}
    assert protected[B4] == "newest" and "safety backup" in protected[B2] and "R-kept" in protected[B1]


def test_prune_deletes_beyond_the_count_except_the_protected_and_says_why():
    backups = summaries(B4, B3, B2, B1)
    backups[3]["keep"] = "release x"
    said = []
    doomed = prune_plan(backups, [{"release": "R", "backup": B3}], {"R"}, keep_count=1, say=said.append)
    assert doomed == [B2]
    assert len(said) == 2 and any(B3 in line and "rollback of release R" in line for line in said)


def test_prune_keeps_everything_within_the_count():
    assert prune_plan(summaries(B3, B2, B1), [], set(), keep_count=3, say=lambda _: None) == []
    assert prune_plan(summaries(B3, B2, B1), [], set(), keep_count=1, say=lambda _: None) == [B2, B1]


def test_no_deletion_no_shell():
    assert prune_lines(Layout("/srv/d"), summaries(B1), [], []) == []


def test_deleting_the_owner_of_shared_uploads_hands_them_to_the_oldest_sharer(tmp_path):
    layout = Layout(str(tmp_path))
    make_backup(layout, B1, summary={}, files={"a.jpg": "AAA", "b.png": "BBB"})
    make_backup(layout, B2, summary={}, uploads_from=B1)
    make_backup(layout, B3, summary={}, uploads_from=B1)
    make_backup(layout, B4, summary={}, files={"c.gif": "CCC"})
    backups, incomplete = listed(layout)
    run(strict(*prune_lines(layout, backups, [B1], incomplete)))
    assert sorted(os.listdir(layout.backups)) == [B2, B3, B4]
    uploads2 = os.path.join(layout.backups, B2, "uploads")
    assert not os.path.islink(uploads2) and sorted(os.listdir(uploads2)) == ["a.jpg", "b.png"]
    assert os.readlink(os.path.join(layout.backups, B3, "uploads")) == f"../{B2}/uploads"
    with open(os.path.join(layout.backups, B3, "uploads", "a.jpg")) as handle:
        assert handle.read() == "AAA"
    after, _ = listed(layout)
    assert {b["id"]: b["uploads_in"] for b in after} == {B4: None, B3: B2, B2: None}


def test_deleting_every_sharer_with_the_owner_hands_nothing_over(tmp_path):
    layout = Layout(str(tmp_path))
    make_backup(layout, B1, summary={}, files={"a.jpg": "A"})
    make_backup(layout, B2, summary={}, uploads_from=B1)
    make_backup(layout, B3, summary={}, files={})
    backups, _ = listed(layout)
    assert hand_over_shared_uploads(layout, backups, {B1, B2}) == []
    run(strict(*prune_lines(layout, backups, [B1, B2], [])))
    assert os.listdir(layout.backups) == [B3]


def test_leftover_folders_are_removed_with_the_doomed(tmp_path):
    layout = Layout(str(tmp_path))
    make_backup(layout, B1, summary={}, files={})
    make_backup(layout, B2)  # incomplete
    os.makedirs(os.path.join(layout.backups, ".tmp-verify-x", "deep"))
    backups, incomplete = listed(layout)
    run(strict(*prune_lines(layout, backups, [], incomplete)))
    assert os.listdir(layout.backups) == [B1]


def test_a_manifest_is_read_only_under_its_own_id(tmp_path):
    layout = Layout(str(tmp_path))
    remote = LocalRemote()
    make_backup(layout, B1, summary={"reason": "x"})
    assert read_manifest(remote, layout, B1)["reason"] == "x"
    with pytest.raises(Refused, match="no backup"):
        read_manifest(remote, layout, B2)
    os.makedirs(os.path.join(layout.backups, B2))
    with open(os.path.join(layout.backups, B2, "manifest.json"), "w") as handle:
        json.dump({"id": "../../etc"}, handle)
    with pytest.raises(Refused, match="names another backup"):
        read_manifest(remote, layout, B2)
    with open(os.path.join(layout.backups, B2, "manifest.json"), "w") as handle:
        handle.write("{cut")
    with pytest.raises(DeployError, match="damaged"):
        read_manifest(remote, layout, B2)
    with pytest.raises(Refused, match="backup id"):
        read_manifest(remote, layout, "../x")


def ago(**delta) -> str:
    return (datetime.now(timezone.utc) - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("created, shown", [
    (None, "?"), ("", "?"), ("yesterday", "?"), ("2026-01-01 12:00:00", "?"),
])
def test_an_unknown_age_is_a_question_mark(created, shown):
    assert age(created) == shown


def test_ages_are_in_the_largest_whole_unit():
    assert age(ago(days=3, hours=1)) == "3d"
    assert age(ago(hours=5, minutes=2)) == "5h"
    assert age(ago(minutes=7, seconds=3)) == "7m"
    assert age(ago(seconds=0)).endswith("s")
