"""core.source: commit ids checked before they reach git, and a real local repository's tags,
files, archive and lockfile hash; names that are not plain tags are refused."""

from __future__ import annotations

import hashlib
import subprocess
import tarfile

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.core.source import Source, is_commit


@pytest.mark.parametrize("value, ok", [
    ("0123456789abcdef0123456789abcdef01234567", True),
    ("0123456789ABCDEF0123456789abcdef01234567", False),
    ("0123456789abcdef0123456789abcdef0123456", False),
    ("0123456789abcdef0123456789abcdef012345678", False),
    ("--output=/tmp/x", False),
    ("HEAD", False),
    (None, False),
    (1234, False),
])
def test_is_commit_accepts_only_forty_lowercase_hex_digits(value, ok):
    assert is_commit(value) is ok


def test_a_commit_id_with_a_trailing_newline_is_not_a_commit():
    assert not is_commit("0123456789abcdef0123456789abcdef01234567\n")


def git(repo, *args, date="2026-01-01T00:00:00Z"):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "GIT_COMMITTER_DATE": date, "PATH": "/usr/bin:/bin", "HOME": str(repo)})


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    (path / "extensions" / "hello").mkdir(parents=True)
    (path / "extensions" / "hello" / "package.json").write_text("{}")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "one")
    git(path, "tag", "v1.0.0")
    (path / "package-lock.json").write_text('{"lockfileVersion": 3, "x": 1}\n')
    git(path, "commit", "-q", "-am", "two", date="2026-02-01T00:00:00Z")
    git(path, "tag", "-a", "v1.1.0", "-m", "annotated", date="2026-02-01T00:00:00Z")
    return Source(path)


def test_tags_resolve_to_their_commits(repo):
    newest = repo.resolve(None)
    assert newest.name == "v1.1.0" and is_commit(newest.commit)
    first = repo.resolve("v1.0.0")
    assert first.commit != newest.commit and is_commit(first.commit) and first.date
    assert {t.name for t in repo.tags()} == {"v1.0.0", "v1.1.0"}


@pytest.mark.parametrize("name, says", [("v9.9.9", "does not exist"), ("--upload-pack=x", "not a plain tag"),
                                        ("v1;id", "not a plain tag"), ("../v1", "not a plain tag")])
def test_a_tag_that_is_not_plain_or_missing_is_refused(repo, name, says):
    with pytest.raises(Refused, match=says):
        repo.resolve(name)


def test_files_read_and_lockfile_hash_at_a_tag(repo):
    tag = repo.resolve("v1.0.0")
    assert sorted(repo.files(tag)) == ["extensions/hello/package.json", "package-lock.json"]
    assert repo.read(tag, "package-lock.json") == b'{"lockfileVersion": 3}\n'
    assert repo.read(tag, "missing.txt") is None
    assert repo.lockfile_hash(tag) == hashlib.sha256(b'{"lockfileVersion": 3}\n').hexdigest()


def test_the_archive_holds_the_tags_tree(repo, tmp_path):
    target = tmp_path / "v1.tar"
    repo.archive(repo.resolve("v1.0.0"), target)
    with tarfile.open(target) as tar:
        assert tar.extractfile("package-lock.json").read() == b'{"lockfileVersion": 3}\n'


def test_changed_files_and_log_between_two_commits(repo):
    old, new = repo.resolve("v1.0.0").commit, repo.resolve("v1.1.0").commit
    assert repo.changed_files(old, new) == ["package-lock.json"]
    assert [line.split(" ", 1)[1] for line in repo.log_between(old, new)] == ["two"]
    assert repo.log_between("--output=/tmp/x", new) == []
    with pytest.raises(Refused, match="not a commit id"):
        repo.changed_files("--output=/tmp/x", new)


def test_a_folder_that_is_no_repository_is_refused(tmp_path):
    with pytest.raises(Refused, match="not a git repository"):
        Source(tmp_path).resolve(None)


# -- symlinks in a tag's tree -------------------------------------------------------------------

@pytest.mark.parametrize("links, leaving", [
    ({"extensions": "../outside"}, ["extensions"]),
    ({"extensions": "/srv/legacy/extensions"}, ["extensions"]),
    ({"a/b": "../../x"}, ["a/b"]),
    ({"a/b": "../x", "docs": "a/b/readme"}, []),  # both stay inside
    ({"a/b": "c/d", "a/up": "b/../../.."}, []),  # a/b/.. is a/c, not a: the top, not above it
    ({"d/l": "..", "x": "d/l/.."}, ["x"]),  # d/l is the top; its parent is outside (the text says "d")
    ({"x": "y", "y": "x"}, ["x", "y"]),  # a loop never resolves
    ({"current": ".", "node_modules/.bin": "../node_modules"}, []),
    ({"l": "./a/./b//c"}, []),
])
def test_a_symlink_is_followed_through_the_trees_own_links(links, leaving):
    from directus_deploy.core.source import links_leaving

    assert [path for path, _ in links_leaving(links)] == leaving


def test_where_a_link_leads_inside_the_tree():
    from directus_deploy.core.source import resolve_inside

    assert resolve_inside({"a": "b/c"}, "a/d") == "b/c/d"
    assert resolve_inside({"a": "b/c", "b/c": "../e"}, "a") == "e"
    assert resolve_inside({"a": "../e"}, "a") is None


def test_a_tag_with_a_symlink_out_of_the_release_is_refused_before_its_archive(repo, tmp_path):
    from directus_deploy.state.releases import prepare_code

    path = repo.path
    git(path, "rm", "-q", "-r", "extensions")
    (path / "extensions").symlink_to("../legacy/extensions")
    (path / "docs").mkdir()
    (path / "docs" / "lock").symlink_to("../package-lock.json")  # inside: fine
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "aim extensions elsewhere", date="2026-03-01T00:00:00Z")
    git(path, "tag", "v2.0.0")
    tag_links = repo.symlinks(repo.resolve("v1.1.0"))
    assert tag_links == {}
    with pytest.raises(Refused, match=r"^tag v2.0.0: extensions is a symlink to ../legacy/extensions, outside the release"):
        repo.resolve("v2.0.0")
    with pytest.raises(Refused, match="outside the release"):
        repo.resolve(None)  # the newest tag
    tag = next(t for t in repo.tags() if t.name == "v2.0.0")
    assert repo.symlinks(tag) == {"extensions": "../legacy/extensions", "docs/lock": "../package-lock.json"}
    with pytest.raises(Refused, match="outside the release"):
        prepare_code(repo, tag, tmp_path, print)
    assert not list(tmp_path.glob("*.tar"))
