"""state.releases: release ids, the listing script (run with bash over a folder laid out as on a
host) and its parser, outcomes from the deploy log, the last good release, which releases a
clean-up deletes, and the clean-up shell itself deleting exactly those and unused dependency stores."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.core.source import Tag
from directus_deploy.state.layout import Layout, is_id
from directus_deploy.state.releases import (
    cleanup_lines,
    cleanup_plan,
    last_good,
    parse_releases,
    release_id_for,
    release_outcomes,
    releases_script,
)

from .local import run, strict

A, B, C, D = (f"2026010{n}T120000Z-v{n}" for n in range(1, 5))


def make_release(layout: Layout, release_id: str, deps: str | None, revision: dict | None = None) -> None:
    folder = os.path.join(layout.releases, release_id)
    os.makedirs(folder)
    if revision is not None:
        with open(os.path.join(folder, "REVISION"), "w") as handle:
            json.dump(revision, handle, indent=1)  # several lines, as unpack_script writes it
    if deps:
        os.makedirs(os.path.join(layout.shared_deps, deps, "node_modules"), exist_ok=True)
        os.symlink(f"{Layout.DEPS_FROM_RELEASE}/{deps}/node_modules", os.path.join(folder, "node_modules"))


def point_current(layout: Layout, release_id: str) -> None:
    os.symlink(f"releases/{release_id}", layout.current)


def test_a_release_id_is_the_utc_time_and_the_tag_and_a_valid_id():
    tag = Tag("v1.2.3", "a" * 40, "2026-01-01T00:00:00+00:00")
    release_id = release_id_for(tag, datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc))
    assert release_id == "20260304T050607Z-v1.2.3" and is_id(release_id)
    assert is_id(release_id_for(tag))


def test_the_listing_script_reads_every_release_its_revision_store_and_current(tmp_path):
    layout = Layout(str(tmp_path))
    make_release(layout, A, "k1-node22", {"tag": "v1", "commit": "c1"})
    make_release(layout, B, "k2-node22", {"tag": "v2", "commit": "c2"})
    make_release(layout, C, None, None)  # interrupted: no REVISION, no dependencies
    os.makedirs(os.path.join(layout.releases, ".tmp-" + D))  # work in progress is no release
    point_current(layout, B)
    releases = parse_releases(run(releases_script(layout)).stdout)
    assert [r["id"] for r in releases] == [A, B, C]
    assert [r["current"] for r in releases] == [False, True, False]
    assert releases[0]["revision"] == {"tag": "v1", "commit": "c1", "deps": "k1-node22"}
    assert releases[1]["revision"]["deps"] == "k2-node22"
    assert releases[2]["revision"] == {"deps": "?"}


def test_no_releases_folder_lists_nothing(tmp_path):
    result = run(releases_script(Layout(str(tmp_path / "never-set-up"))))
    assert result.returncode == 0 and parse_releases(result.stdout) == []


def test_a_damaged_revision_reads_as_empty(tmp_path):
    layout = Layout(str(tmp_path))
    make_release(layout, A, "k-node22", {})
    with open(os.path.join(layout.releases, A, "REVISION"), "w") as handle:
        handle.write('{"tag": "v1", "comm')
    assert parse_releases(run(releases_script(layout)).stdout) == [
        {"id": A, "revision": {"deps": "k-node22"}, "current": False, "served": False}]


def test_outcomes_are_the_last_word_of_the_log_per_release():
    entries = [
        {"action": "release", "release": A, "outcome": "ok"},
        {"action": "release", "release": B, "outcome": "ok"},
        {"action": "switch", "release": B, "outcome": "failed"},
        {"action": "backup", "release": C, "outcome": "ok"},  # not an outcome of the release
        {"action": "release", "release": C, "outcome": "rolled-back"},
        {"action": "rollback", "release": C, "outcome": "failed"},  # a failed rollback to C says nothing of C
        {"action": "rollback", "release": D, "outcome": "ok"},  # a release rolled back to works
        {"action": "release", "outcome": "ok"},
    ]
    assert release_outcomes(entries) == {A: "ok", B: "failed", C: "rolled-back", D: "ok"}


def listing(ids, current):
    return [{"id": i, "revision": {}, "current": i == current} for i in ids]


def test_last_good_is_the_newest_successful_release_but_the_current_one():
    releases = listing([A, B, C, D], current=D)
    assert last_good(releases, {A: "ok", B: "ok", C: "failed", D: "ok"}) == B
    assert last_good(releases, {D: "ok"}) is None
    assert last_good(listing([A, B], current=None), {A: "ok", B: "ok"}) == B


def test_cleanup_keeps_the_newest_good_ones_and_deletes_failed_ones():
    ids = [f"2026010{n}T120000Z-v{n}" for n in range(1, 8)]
    entries = [{"action": "release", "release": i, "outcome": "ok"} for i in ids]
    entries[2]["outcome"] = "failed"
    doomed = cleanup_plan(listing(ids, current=ids[-1]), entries, keep=3)
    assert doomed == [ids[0], ids[1], ids[2], ids[3]]


def test_cleanup_never_deletes_the_current_or_the_last_good_release():
    ids = [A, B, C, D]
    # current is the oldest (rolled back to it); the newest are failures
    entries = [{"action": "release", "release": A, "outcome": "ok"},
               {"action": "release", "release": B, "outcome": "ok"},
               {"action": "release", "release": C, "outcome": "failed"},
               {"action": "release", "release": D, "outcome": "failed"}]
    doomed = cleanup_plan(listing(ids, current=A), entries, keep=1)
    assert A not in doomed and B not in doomed and doomed == [C, D]


def test_an_adopted_current_release_without_an_outcome_is_kept():
    assert cleanup_plan(listing([A, B], current=B), [], keep=1) == [A]


def test_the_cleanup_shell_deletes_only_doomed_releases_and_unused_stores(tmp_path):
    layout = Layout(str(tmp_path))
    make_release(layout, A, "k1-node22", {})
    make_release(layout, B, "k1-node22", {})
    make_release(layout, C, "k2-node22", {})
    make_release(layout, D, "k3-node22", {})
    point_current(layout, C)
    os.makedirs(os.path.join(layout.shared_deps, "k4-node22"))  # linked by nothing
    os.makedirs(os.path.join(layout.shared_deps, ".tmp-k5-node22-123"))  # an interrupted npm ci
    os.makedirs(os.path.join(layout.releases, ".tmp-20260105T120000Z-v5"))  # an interrupted unpack
    open(os.path.join(layout.releases, ".incoming-20260105T120000Z-v5.tar.zst"), "w").close()
    out = run(strict(*cleanup_lines(layout, [A, D]))).stdout
    assert sorted(os.listdir(layout.releases)) == [B, C]
    assert sorted(os.listdir(layout.shared_deps)) == ["k1-node22", "k2-node22"]
    # the stores removed are reported (whatever the report's format), the kept ones are not
    assert "k3-node22" in out and "k4-node22" in out
    assert "k1-node22" not in out and "k2-node22" not in out
    assert os.readlink(layout.current) == f"releases/{C}"


def test_the_cleanup_shell_with_nothing_doomed_keeps_every_linked_store(tmp_path):
    layout = Layout(str(tmp_path))
    make_release(layout, A, "k1-node22", {})
    out = run(strict(*cleanup_lines(layout, []))).stdout
    assert os.listdir(layout.releases) == [A] and os.listdir(layout.shared_deps) == ["k1-node22"]
    assert "k1-node22" not in out


def test_the_cleanup_shell_refuses_an_id_that_is_not_one(tmp_path):
    with pytest.raises(Refused):
        cleanup_lines(Layout(str(tmp_path)), ["../etc"])
