"""What the tool deletes or writes on a host is decided by what it made and recorded, never by
what a tag or a hand-edited file says: a tag's symlink never aims the release's shared links at
another folder, and a damaged deploy log never makes retention delete by count. Each test plants
the hostile or damaged thing on the real test bed and checks that nothing was deleted or written,
and that production still serves."""

from __future__ import annotations

import json
import os
import secrets

import pytest

from testbed.project import clone_project, git
from testbed.sshd import free_port

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


# -- 3. retention and a damaged deploy log -----------------------------------------------------

def damage_deleted(log):
    log.unlink()


def damage_emptied(log):
    log.write_text("")


def damage_garbled(log):
    """The adoption's line (release v1 and its backup) mangled, the rest intact."""
    first, *rest = log.read_text().splitlines(keepends=True)
    log.write_text(first[: len(first) // 2] + "\n" + "".join(rest))


def damage_line_removed(log):
    """The lines of release v1 (made, adopted) taken out by hand, as a rotation would: the log
    reads well but no longer names release v1."""
    lines = log.read_text().splitlines(keepends=True)
    adopted = next(json.loads(line)["release"] for line in lines if json.loads(line).get("action") == "adopt")
    log.write_text("".join(line for line in lines if json.loads(line).get("release") != adopted))


DAMAGES = {"deleted": (damage_deleted, "is missing"),
           "emptied": (damage_emptied, "does not record the current release"),
           "garbled": (damage_garbled, "is not a JSON entry"),
           "line-removed": (damage_line_removed, "names no entry for release")}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_retention_refuses_on_a_damaged_deploy_log_and_deletes_nothing(adopted, damage):
    srv, log = adopted["srv"], adopted["log"]
    good = log.read_text()
    releases = sorted(p.name for p in (srv / "releases").iterdir() if not p.name.startswith("."))
    assert len(releases) == 2  # v1 (adopted, the last good one) and v2 (current)
    before = kept_state(srv)
    damage_it, says = DAMAGES[damage]
    damage_it(log)
    try:
        for task in ("deploy.cleanup", "backup.prune"):
            result = run_fab(task, env_file=adopted["env"])
            assert result.returncode == 2, result.stdout[-3000:] + result.stderr
            line = one_line(result)
            assert says in line and "nothing was deleted" in line, line
            assert kept_state(srv) == before
            assert not (srv / ".deploy" / "lock").exists()
    finally:
        log.write_text(good)
    assert hello(adopted["production"]) == "hello from v2"


def test_a_release_over_a_deleted_deploy_log_skips_its_clean_up(adopted):
    """The release itself goes on (it was recorded, production serves it), but its clean up,
    seeing a log that names neither older release, deletes nothing and says why."""
    srv, log = adopted["srv"], adopted["log"]
    good = log.read_text()
    before = kept_state(srv)
    log.unlink()
    try:
        result = fab_ok("release", "--tag=v2", "--yes", env_file=adopted["env"])
        assert "warning: clean up skipped" in result.stdout, result.stdout[-3000:]
        for kind in ("releases", "backups"):  # everything there before is there still
            assert set(before[kind]) <= set(tree_fingerprint(srv / kind)), kind
        assert hello(adopted["production"]) == "hello from v2"
    finally:
        log.write_text(good + log.read_text())


# -- 6. the blue/green include nginx loads as root ---------------------------------------------

@pytest.fixture
def upstream_setup(bed, nginx, tmp_path):
    """A blue/green configuration whose upstream include is the test's to place; the tool's
    `fab deploy.upstream` (writes the include when missing, shows it) runs against the bed's nginx
    with no release on the host. The files a test adds to nginx are removed after it."""
    name = f"b_{secrets.token_hex(3)}"
    site_port = free_port()
    added = []

    def env_for(include) -> os.PathLike:
        return bed.tool_env(bed.productions["sqlite"], tmp_path / "tool", DEPLOY_STRATEGY="bluegreen",
                            DEPLOY_BLUEGREEN_PORTS=f"{free_port()},{free_port()}", DEPLOY_NGINX_UPSTREAM=name,
                            DEPLOY_NGINX_UPSTREAM_FILE=str(include), DEPLOY_NGINX_CONF=str(nginx.conf),
                            DIRECTUS_URL=f"http://127.0.0.1:{site_port}")

    def nginx_files() -> dict:
        return {folder: tree_fingerprint(nginx.root / folder) for folder in ("conf.d", "sites", "upstreams")}

    yield {"name": name, "site_port": site_port, "env_for": env_for, "added": added, "nginx": nginx,
           "files": nginx_files}
    for path in added:
        path.unlink(missing_ok=True)
    (nginx.root / "sites" / f"{name}.conf").unlink(missing_ok=True)
    nginx.reload()


def refused_with_nothing_changed(setup, include, says: str) -> None:
    before = setup["files"]()
    result = run_fab("deploy.upstream", env_file=setup["env_for"](include))
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr
    line = one_line(result)
    assert says in line and "nothing was changed" in line, line
    assert setup["files"]() == before


def test_an_include_nginx_loads_at_http_level_is_never_written(upstream_setup):
    """The include where nginx loads every file at http level (conf.d/*.conf): written there,
    it could hold any directive nginx runs as root."""
    setup, nginx = upstream_setup, upstream_setup["nginx"]
    include = nginx.conf_d / f"{setup['name']}.conf"
    setup["added"].append(include)
    nginx.site(setup["name"], "http://127.0.0.1:9", port=setup["site_port"])  # not pointed at the upstream yet
    refused_with_nothing_changed(setup, include, f"{include} included inside http {{ }} ({nginx.conf}:")
    assert not include.exists()
    # an include already there (the upstream block, loaded at http level) is refused the same
    include.write_text(f"upstream {setup['name']} {{\n    server 127.0.0.1:{free_port()};\n}}\n")
    nginx.reload()
    refused_with_nothing_changed(setup, include, "included inside http { }")


def test_an_include_holding_more_than_its_server_line_is_refused(upstream_setup):
    setup, nginx = upstream_setup, upstream_setup["nginx"]
    include = nginx.upstream_file(setup["name"])
    include.parent.mkdir(exist_ok=True)
    setup["added"].append(include)
    include.write_text(f"server 127.0.0.1:{free_port()};\nserver 10.9.9.9:80 backup;\n")  # a fallback someone added
    nginx.site(setup["name"], f"http://{setup['name']}", port=setup["site_port"], upstream=(setup["name"], include))
    refused_with_nothing_changed(setup, include, "holds `server 10.9.9.9:80 backup;` (line 2)")
    # in its place and holding its one server line, the include is accepted
    include.write_text(f"server 127.0.0.1:{free_port()};\n")
    nginx.reload()
    result = fab_ok("deploy.upstream", env_file=setup["env_for"](include))
    assert "nginx routes requests to it: yes" in result.stdout, result.stdout
