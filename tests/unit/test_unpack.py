"""The release unpack script (state.releases.unpack_script), run with bash here on an archive made
here: the release appears only complete, with its REVISION, its links into shared/ and its
dependencies from a store built once per lockfile (npm is a fake that records its calls); a failed
install leaves neither a store nor a release."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from directus_deploy.core.extensions import check_printed
from directus_deploy.core.source import Tag
from directus_deploy.state.layout import Layout
from directus_deploy.state.releases import PreparedCode, _incoming, _made, unpack_script

from .local import fake_command, path_with, run, strict

pytestmark = pytest.mark.skipif(not (shutil.which("zstd") and shutil.which("node")), reason="zstd and node")

R1, R2 = "20260101T120000Z-v1", "20260102T120000Z-v2"
ENV = {"DB_CLIENT": "sqlite3", "DB_FILENAME": "./database/data.db"}
MANIFEST = json.dumps({"name": "directus-extension-hello", "version": "1.0.0",
                       "directus:extension": {"type": "endpoint", "host": "^12", "path": "dist/index.js",
                                              "source": "src/index.js"}})
# npm: `ci` makes node_modules (or fails when $NPM_FAILS is set), every call logged
FAKE_NPM = ('echo "$PWD $*" >> "$NPM_LOG"; [ -z "${NPM_FAILS-}" ] || { echo "npm ERR! broken lockfile" >&2; exit 1; }; '
            'mkdir -p node_modules/directus && echo installed > node_modules/directus/marker')


def archive(tmp_path, files: dict) -> tuple:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in files.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "code.tar"
    path.write_bytes(buffer.getvalue())
    lock = files["package-lock.json"].encode()
    tag = Tag("v1", "a" * 40, "2026-01-01T00:00:00Z")
    return PreparedCode(tag, path, hashlib.sha256(lock).hexdigest(), [], []), path


def upload(layout: Layout, code_tar, release_id: str) -> None:
    incoming, _ = _incoming(layout, release_id)
    os.makedirs(layout.releases, exist_ok=True)
    subprocess.run(["zstd", "-q", "-f", "-o", incoming, str(code_tar)], check=True)


@pytest.fixture
def host(tmp_path):
    layout = Layout(str(tmp_path / "srv"))
    for folder in (layout.shared_database, layout.shared_uploads, layout.shared_registry, layout.shared_deps):
        os.makedirs(folder)
    open(layout.shared_env, "w").write("DB_CLIENT=sqlite3\n")
    fake_command(tmp_path / "bin", "npm", FAKE_NPM)
    env = {**path_with(tmp_path / "bin"), "NPM_LOG": str(tmp_path / "npm.log")}
    return layout, env, tmp_path / "npm.log"


FILES = {"package.json": '{"name": "site"}', "package-lock.json": '{"lockfileVersion": 3}',
         "uploads/from-git.jpg": "should not survive", "extensions/hello/package.json": MANIFEST,
         "extensions/hello/dist/index.js": "export default {}"}


def make(layout, env, tmp_path, release_id, files=FILES, **extra):
    code, tar = archive(tmp_path, files)
    upload(layout, tar, release_id)
    revision = {"release": release_id, "tag": "v1", "note": "it's $(not run)"}
    result = run(strict(unpack_script(layout, code, release_id, ENV, revision)), env={**env, **extra}, check=False)
    return code, revision, result


def test_a_release_is_made_complete_with_its_links_and_revision(host, tmp_path):
    layout, env, npm_log = host
    code, revision, result = make(layout, env, tmp_path, R1)
    assert result.returncode == 0, result.stderr
    release = os.path.join(layout.releases, R1)
    assert sorted(os.listdir(layout.releases)) == [R1]  # no .tmp-, no .incoming- left
    with open(os.path.join(release, "REVISION")) as handle:
        assert json.load(handle) == revision
    assert os.path.samefile(os.path.join(release, ".env"), layout.shared_env)
    assert os.path.samefile(os.path.join(release, "database"), layout.shared_database)
    assert os.path.samefile(os.path.join(release, "uploads"), layout.shared_uploads)
    assert os.path.samefile(os.path.join(release, "extensions", ".registry"), layout.shared_registry)
    store = os.readlink(os.path.join(release, "node_modules"))
    deps = os.path.relpath(layout.shared_deps, release)  # relative, up from the release
    assert store.startswith(f"{deps}/{code.lockfile_sha256[:16]}-node") and store.endswith("/node_modules")
    with open(os.path.join(release, "node_modules", "directus", "marker")) as handle:
        assert handle.read() == "installed\n"
    made = _made(revision, result.stdout)
    assert made["deps_how"] == "installed" and made["deps"] == store.split("/")[4]
    assert [e.folder for e in check_printed(result.stdout) if e.ok] == ["hello"]


def test_the_next_release_with_the_same_lockfile_reuses_the_store(host, tmp_path):
    layout, env, npm_log = host
    make(layout, env, tmp_path, R1)
    code, revision, result = make(layout, env, tmp_path, R2)
    assert result.returncode == 0, result.stderr
    assert _made(revision, result.stdout)["deps_how"] == "reused"
    assert len(npm_log.read_text().splitlines()) == 1  # npm ci ran once
    assert os.readlink(os.path.join(layout.releases, R1, "node_modules")) == \
        os.readlink(os.path.join(layout.releases, R2, "node_modules"))
    assert [d for d in os.listdir(layout.shared_deps)] == [os.readlink(
        os.path.join(layout.releases, R2, "node_modules")).split("/")[4]]


def test_a_new_lockfile_gets_a_new_store(host, tmp_path):
    layout, env, npm_log = host
    make(layout, env, tmp_path, R1)
    make(layout, env, tmp_path, R2, files={**FILES, "package-lock.json": '{"lockfileVersion": 3, "new": 1}'})
    assert len(os.listdir(layout.shared_deps)) == 2 and len(npm_log.read_text().splitlines()) == 2


def test_a_failed_install_leaves_no_store_and_no_release(host, tmp_path):
    layout, env, _ = host
    _, _, result = make(layout, env, tmp_path, R1, NPM_FAILS="1")
    assert result.returncode != 0
    assert "npm ERR! broken lockfile" in result.stderr and "npm ci failed" in result.stderr
    assert os.listdir(layout.shared_deps) == []
    assert not os.path.exists(os.path.join(layout.releases, R1))
    # and the next attempt installs again, from scratch
    _, _, again = make(layout, env, tmp_path, R1)
    assert again.returncode == 0 and os.path.isdir(os.path.join(layout.releases, R1))


def test_a_damaged_upload_makes_no_release(host, tmp_path):
    layout, env, _ = host
    code, _ = archive(tmp_path, FILES)
    incoming, _ = _incoming(layout, R1)
    os.makedirs(layout.releases, exist_ok=True)
    open(incoming, "wb").write(b"not zstd at all")
    result = run(strict(unpack_script(layout, code, R1, ENV, {})), env=env, check=False)
    assert result.returncode != 0 and not os.path.exists(os.path.join(layout.releases, R1))
    assert not os.path.exists(os.path.join(layout.releases, "node_modules"))


def test_a_release_is_named_in_the_deploy_log_before_its_folder_exists(host, tmp_path):
    """A run killed right after the unpack leaves a release the log names (as made, not good):
    retention then deletes it like a failed one instead of distrusting the whole log."""
    from directus_deploy.state.deploylog import parse_log
    from directus_deploy.state.releases import release_outcomes

    layout, env, _ = host
    code, tar = archive(tmp_path, FILES)
    upload(layout, tar, R1)
    script = unpack_script(layout, code, R1, ENV, {"release": R1, "tag": "v1"})
    assert script.index(".deploy/log.jsonl") < script.rindex("mv -T -- ")  # written before the folder appears
    run(strict(script), env=env)
    entries, bad = parse_log(open(layout.log_file).read())
    assert not bad and [(e["action"], e["release"], e["outcome"]) for e in entries] == [("code", R1, "made")]
    assert release_outcomes(entries) == {}
