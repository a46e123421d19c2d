"""flows.restore: uploads go back only where the backup took them from (the STORAGE_LOCAL_ROOT
it recorded, or worked out from an older manifest's folder), else only with --to naming the
folder the production .env gives now."""

from __future__ import annotations

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.flows.restore import check_uploads_target, uploads_taken_from
from directus_deploy.state.production import paths_in


class Production:
    def __init__(self, env: dict, root: str = "/srv/releases/r2", in_layout: bool = True):
        self.env, self.in_layout = env, in_layout
        self.uploads = paths_in(root, env)["uploads"]


def manifest(storage_root=None, source="/srv/releases/r1/uploads", root="/srv/releases/r1", release="r1"):
    uploads = {"source": source, **({"storage_root": storage_root} if storage_root else {})}
    return {"uploads": uploads, "production_root": root, "release": release}


@pytest.mark.parametrize("taken, in_layout, expected", [
    (manifest("uploads"), True, "uploads"),
    (manifest("/mnt/media"), True, "/mnt/media"),
    # older manifests: from the folder they name, under the folder Directus ran from or not
    (manifest(), True, "uploads"),
    (manifest(source="/mnt/media"), True, "/mnt/media"),
    (manifest(source="/srv/media", root="/srv/releases/r1"), True, "/srv/media"),
    # before adoption, a path into the install: relative in the layout, as adoption rewrote it
    (manifest("/opt/cms/files", source="/opt/cms/files", root="/opt/cms", release=None), True, "files"),
    (manifest("/opt/cms/files", source="/opt/cms/files", root="/opt/cms", release=None), False, "/opt/cms/files"),
    ({"uploads": {"count": 1}, "release": "r1"}, True, None),
])
def test_where_a_backup_took_its_uploads_from(taken, in_layout, expected):
    assert uploads_taken_from(taken, in_layout) == expected


def test_uploads_go_back_where_they_were_taken_from():
    check_uploads_target(manifest("uploads"), Production({}), "b1", None)
    check_uploads_target(manifest("uploads"), Production({"STORAGE_LOCAL_ROOT": "./uploads/"}), "b1", None)
    check_uploads_target(manifest(), Production({}), "b1", None)  # an older manifest


def test_moved_storage_is_refused_unless_to_names_it():
    moved = Production({"STORAGE_LOCAL_ROOT": "/mnt/media"})
    with pytest.raises(Refused, match="taken from STORAGE_LOCAL_ROOT=uploads, but the production .env now says "
                                      "STORAGE_LOCAL_ROOT=/mnt/media: .* pass --to=/mnt/media"):
        check_uploads_target(manifest("uploads"), moved, "b1", None)
    check_uploads_target(manifest("uploads"), moved, "b1", "/mnt/media")
    check_uploads_target(manifest("uploads"), moved, "b1", "/mnt/media/")
    with pytest.raises(Refused, match="--to=/mnt/other is not where production keeps uploads now"):
        check_uploads_target(manifest("uploads"), moved, "b1", "/mnt/other")


def test_a_backup_that_cannot_say_needs_to():
    unknown = {"uploads": {"count": 1}, "release": "r1"}
    with pytest.raises(Refused, match="does not say which STORAGE_LOCAL_ROOT .* pass --to=uploads"):
        check_uploads_target(unknown, Production({}), "b1", None)
    check_uploads_target(unknown, Production({}), "b1", "./uploads")
