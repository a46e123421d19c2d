"""What the tool deletes or writes on a host is decided by what it made and recorded, never by
what a tag or a hand-edited file says: a tag's symlink never aims the release's shared links at
another folder, and a damaged deploy log never makes retention delete by count. Each test plants
the hostile or damaged thing on the real test bed and checks that nothing was deleted or written,
and that production still serves."""

from __future__ import annotations

import os

import pytest

from testbed.project import clone_project, git

from .helpers import fab_ok, hello, one_line, run_fab, tree_fingerprint


@pytest.fixture(scope="module")
def adopted(bed, tmp_path_factory):
    """A fresh SQLite production, adopted (release v1) and released to v2, with a private
    project copy; KEEP_RELEASES=1 and KEEP_BACKUPS=1, so that retention reading a damaged log
    as "no good release, no backup needed" would delete the older release and backup."""
    made = bed.new_productions(("sqlite",))
    production = made["sqlite"]
    folder = tmp_path_factory.mktemp("b-paths")
    project = clone_project(bed.project_dir("sqlite"), folder / "project")
    env_file = bed.tool_env(production, folder, DEPLOY_SOURCE=str(project), KEEP_RELEASES="1", KEEP_BACKUPS="1")
    try:
        fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env_file)
        fab_ok("release", "--tag=v2", "--yes", env_file=env_file)
        srv = folder / "srv"
        yield {"production": production, "env": env_file, "project": project, "srv": srv,
               "log": srv / ".deploy" / "log.jsonl", "folder": folder}
    finally:
        production.destroy()


def kept_state(srv) -> dict:
    """What retention may delete: every release and backup folder, and where `current` points."""
    return {"releases": tree_fingerprint(srv / "releases"), "backups": tree_fingerprint(srv / "backups"),
            "current": os.readlink(srv / "current")}


# -- 1. a tag's symlink out of the release -----------------------------------------------------

def test_a_tag_whose_extensions_is_a_symlink_out_of_the_release_is_refused(adopted, tmp_path):
    """`extensions` a link to another install's extensions: the release would have run
    `rm -rf extensions/.registry` there and written its link into that folder."""
    legacy = tmp_path / "b-legacy-install" / "extensions"
    (legacy / ".registry" / "9f2c").mkdir(parents=True)
    (legacy / ".registry" / "9f2c" / "index.js").write_text("export default {};\n")
    before_legacy = tree_fingerprint(legacy.parent)
    project, srv = adopted["project"], adopted["srv"]
    git(project, "checkout", "-q", "--detach", "v2")
    git(project, "rm", "-q", "-r", "extensions")
    (project / "extensions").symlink_to(legacy)
    git(project, "add", "extensions")
    git(project, "commit", "-q", "-m", "extensions elsewhere")
    git(project, "tag", "-a", "b-linked", "-m", "b-linked")
    before = kept_state(srv)
    for args in (("release", "--tag=b-linked", "--yes"), ("deploy.code", "--tag=b-linked")):
        result = run_fab(*args, env_file=adopted["env"])
        assert result.returncode == 2, result.stdout[-3000:] + result.stderr
        assert one_line(result) == (f"error: tag b-linked: extensions is a symlink to {legacy}, outside the release; a "
                                    "release must hold its own files: commit the folder itself, or a link inside the project")
        assert tree_fingerprint(legacy.parent) == before_legacy
        assert kept_state(srv) == before  # no backup, no release, current unchanged
        assert not (srv / ".deploy" / "lock").exists()
    assert hello(adopted["production"]) == "hello from v2"
