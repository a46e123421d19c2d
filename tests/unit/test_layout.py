"""state.layout: every path under DEPLOY_PATH, and the id check that keeps user-typed release and
backup ids from walking out of their folder or carrying shell syntax."""

from __future__ import annotations

import posixpath

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.state.layout import Layout, check_id, is_id

LAYOUT = Layout("/srv/directus")


@pytest.mark.parametrize("value", [
    "20260101T120000Z-v1.0.0",
    "20261231T235959Z-pre-restore",
    "20260101T120000Z-a",
    "20260101T120000Z-Release_2.x",
    "20260101T120000Z-" + "a" * 80,
])
def test_plain_ids_are_ids(value):
    assert is_id(value) and check_id("release", value) == value


@pytest.mark.parametrize("value", [
    "../../etc",
    "20260101T120000Z-../../etc",
    "20260101T120000Z-a..b",
    "20260101T120000Z-a/b",
    "20260101T120000Z-$(id)",
    "20260101T120000Z-a b",
    "20260101T120000Z-a;b",
    "20260101T120000Z-",
    "20260101T120000Z-" + "a" * 81,
    "20260101T120000-v1",
    "2026011T120000Z-v1",
    "20260101T120000Z-v1\nrm",
    "-20260101T120000Z-v1",
    "",
])
def test_anything_else_is_refused_naming_the_form(value):
    assert not is_id(value)
    with pytest.raises(Refused) as caught:
        check_id("backup", value)
    assert "backup id" in str(caught.value) and "20260101T120000Z-name" in str(caught.value)


def test_an_id_ending_in_a_newline_is_refused():
    assert not is_id("20260101T120000Z-v1\n")


@pytest.mark.parametrize("value", [None, 20260101, ["20260101T120000Z-v1"]])
def test_non_strings_are_not_ids(value):
    assert not is_id(value)


def test_every_path_is_under_the_root():
    paths = {
        "releases": LAYOUT.releases, "current": LAYOUT.current, "shared": LAYOUT.shared,
        "env": LAYOUT.shared_env, "uploads": LAYOUT.shared_uploads, "db": LAYOUT.shared_database,
        "registry": LAYOUT.shared_registry, "deps": LAYOUT.shared_deps, "backups": LAYOUT.backups,
        "tool": LAYOUT.tool_dir, "lock": LAYOUT.lock_dir, "bluegreen": LAYOUT.bluegreen_config,
        "rehearsal": LAYOUT.rehearsal_dir, "log": LAYOUT.log_file, "archive": LAYOUT.shared_storage("archive"),
    }
    assert paths == {
        "releases": "/srv/directus/releases", "current": "/srv/directus/current", "shared": "/srv/directus/shared",
        "env": "/srv/directus/shared/.env", "uploads": "/srv/directus/shared/uploads",
        "db": "/srv/directus/shared/database", "registry": "/srv/directus/shared/extensions-registry",
        "deps": "/srv/directus/shared/deps", "backups": "/srv/directus/backups", "tool": "/srv/directus/.deploy",
        "lock": "/srv/directus/.deploy/lock", "bluegreen": "/srv/directus/.deploy/bluegreen.cjs",
        "rehearsal": "/srv/directus/.deploy/rehearsal", "log": "/srv/directus/.deploy/log.jsonl",
        "archive": "/srv/directus/shared/storage/archive",
    }


def test_release_and_backup_folders_are_checked_ids():
    assert LAYOUT.release_dir("20260101T120000Z-v1") == "/srv/directus/releases/20260101T120000Z-v1"
    assert LAYOUT.backup_dir("20260101T120000Z-manual") == "/srv/directus/backups/20260101T120000Z-manual"
    with pytest.raises(Refused, match="release id"):
        LAYOUT.release_dir("../etc")
    with pytest.raises(Refused, match="backup id"):
        LAYOUT.backup_dir("20260101T120000Z-x/../../../etc")


def test_a_release_reaches_the_dependency_stores_by_its_relative_link():
    release = LAYOUT.release_dir("20260101T120000Z-v1")
    assert posixpath.normpath(posixpath.join(release, LAYOUT.DEPS_FROM_RELEASE)) == LAYOUT.shared_deps
