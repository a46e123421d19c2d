"""The project's local git repository (DEPLOY_SOURCE): tags, their files, their archive.

The host never sees the repository: a release is `git archive` of a tag, made here.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from directus_deploy.core.errors import Refused

# A tag becomes part of a folder name on the host: letters, digits and ._- only.
_TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def is_commit(value) -> bool:
    """A full commit id (40 hex digits): what a REVISION read from a host must hold before it
    reaches git, where anything else could be an option (`--output=...`)."""
    return isinstance(value, str) and bool(_COMMIT_RE.fullmatch(value))


@dataclass(frozen=True)
class Tag:
    name: str
    commit: str
    date: str  # committer date, ISO


class Source:
    def __init__(self, path: Path):
        self.path = Path(path)

    def git(self, *args: str, binary: bool = False, check: bool = True):
        result = subprocess.run(["git", "-C", str(self.path), *args], capture_output=True, text=not binary)
        if check and result.returncode != 0:
            detail = result.stderr if not binary else result.stderr.decode(errors="replace")
            raise Refused(f"git {' '.join(args[:2])} in {self.path} failed: {detail.strip().splitlines()[-1] if detail.strip() else 'error'}")
        return result

    def check_repository(self) -> None:
        if self.git("rev-parse", "--git-dir", check=False).returncode != 0:
            raise Refused(f"DEPLOY_SOURCE={self.path} is not a git repository")

    def tags(self) -> list[Tag]:
        """Tags pointing at commits, newest commit first."""
        out = self.git("for-each-ref", "--sort=-creatordate", "--format=%(refname:short)%09%(*objectname)%(objectname)%09%(creatordate:iso-strict)",
                       "refs/tags").stdout
        tags = []
        for line in out.splitlines():
            name, objects, date = line.split("\t")
            commit = self.git("rev-parse", f"refs/tags/{name}^{{commit}}", check=False).stdout.strip()
            if commit:
                tags.append(Tag(name, commit, date))
        return tags

    def resolve(self, name: str | None) -> Tag:
        """The tag to deploy: `name`, or the newest tag. Refuses what is not a plain, existing tag."""
        self.check_repository()
        if name:
            if not _TAG_RE.fullmatch(name):
                raise Refused(f"tag {name!r} is not a plain tag name (letters, digits, . _ -)")
            commit = self.git("rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}", check=False).stdout.strip()
            if not commit:
                known = ", ".join(t.name for t in self.tags()[:5]) or "none"
                raise Refused(f"tag {name} does not exist in {self.path} (newest tags: {known})")
            date = self.git("log", "-1", "--format=%cI", commit).stdout.strip()
            return Tag(name, commit, date)
        tags = self.tags()
        if not tags:
            raise Refused(f"{self.path} has no tags; tag the commit to release (git tag v1.0.0)")
        if not _TAG_RE.fullmatch(tags[0].name):
            raise Refused(f"newest tag {tags[0].name!r} is not a plain tag name; pass --tag")
        return tags[0]

    def remote_tag_mismatch(self, tag: Tag) -> str | None:
        """A warning when the tag differs from the same tag on the remote, if one is known."""
        remote = self.git("ls-remote", "--tags", "origin", f"refs/tags/{tag.name}^{{}}", check=False)
        if remote.returncode != 0 or not remote.stdout.strip():
            return None
        remote_commit = remote.stdout.split()[0]
        if remote_commit != tag.commit:
            return f"local tag {tag.name} is {tag.commit[:10]} but origin has {remote_commit[:10]}"
        return None

    def read(self, tag: Tag, path: str) -> bytes | None:
        result = self.git("show", f"{tag.commit}:{path}", binary=True, check=False)
        return result.stdout if result.returncode == 0 else None

    def files(self, tag: Tag, under: str = "") -> list[str]:
        args = ["ls-tree", "-r", "--name-only", tag.commit] + ([under] if under else [])
        return self.git(*args).stdout.splitlines()

    def changed_files(self, old_commit: str, new_commit: str) -> list[str]:
        for commit in (old_commit, new_commit):
            if not is_commit(commit):
                raise Refused(f"{commit!r} is not a commit id (40 hex digits); nothing was compared")
        return self.git("diff", "--name-only", old_commit, new_commit, "--").stdout.splitlines()

    def log_between(self, old_commit: str, new_commit: str) -> list[str]:
        """One line per commit after `old_commit` up to `new_commit`; none if either is unknown."""
        if not (is_commit(old_commit) and is_commit(new_commit)):
            return []
        log = self.git("log", "--oneline", f"{old_commit}..{new_commit}", "--", check=False)
        return log.stdout.splitlines() if log.returncode == 0 else []

    def lockfile_hash(self, tag: Tag) -> str:
        lock = self.read(tag, "package-lock.json")
        if lock is None:
            raise Refused(f"tag {tag.name} has no package-lock.json; commit it (npm ci needs it)")
        return hashlib.sha256(lock).hexdigest()

    def archive(self, tag: Tag, target: Path) -> None:
        """The tag's tree as a tar file."""
        with open(target, "wb") as handle:
            result = subprocess.run(["git", "-C", str(self.path), "archive", "--format=tar", tag.commit],
                                    stdout=handle, stderr=subprocess.PIPE)
        if result.returncode != 0:
            raise Refused(f"git archive {tag.name} failed: {result.stderr.decode(errors='replace').strip()}")
