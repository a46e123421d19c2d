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


_SYMLINK_MODE = "120000"
_MAX_HOPS = 40  # symlinks followed resolving one path (Linux's own limit): more is a loop


def resolve_inside(links: dict[str, str], path: str) -> str | None:
    """Where `path` (relative to the release) really leads, following the tree's own symlinks
    ({path: target}) the way the kernel will once it is unpacked; None if it leaves the release
    (an absolute target, `..` above its top, or a loop). Resolved component by component, not
    by normalising the text: `a/l/..` is not `a` when `a/l` is itself a link."""
    hops = 0

    def walk(base: list[str], target: str) -> list[str] | None:
        nonlocal hops
        if target.startswith("/"):
            return None
        parts = list(base)
        for name in target.split("/"):
            if name in ("", "."):
                continue
            if name == "..":
                if not parts:
                    return None
                parts.pop()
                continue
            parts.append(name)
            link = links.get("/".join(parts))
            if link is not None:
                hops += 1
                if hops > _MAX_HOPS:
                    return None
                parts = walk(parts[:-1], link)
                if parts is None:
                    return None
        return parts

    found = walk([], path)
    return None if found is None else "/".join(found)


def links_leaving(links: dict[str, str]) -> list[tuple[str, str]]:
    """The symlinks of a tree ({path: target}) that resolve outside it: (path, target), sorted."""
    return [(path, target) for path, target in sorted(links.items()) if resolve_inside(links, path) is None]


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
        """The tag to deploy: `name`, or the newest tag. Refuses what is not a plain, existing tag,
        and a tag whose tree holds a symlink leading outside the release."""
        self.check_repository()
        if name:
            if not _TAG_RE.fullmatch(name):
                raise Refused(f"tag {name!r} is not a plain tag name (letters, digits, . _ -)")
            commit = self.git("rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}", check=False).stdout.strip()
            if not commit:
                known = ", ".join(t.name for t in self.tags()[:5]) or "none"
                raise Refused(f"tag {name} does not exist in {self.path} (newest tags: {known})")
            date = self.git("log", "-1", "--format=%cI", commit).stdout.strip()
            tag = Tag(name, commit, date)
        else:
            tags = self.tags()
            if not tags:
                raise Refused(f"{self.path} has no tags; tag the commit to release (git tag v1.0.0)")
            if not _TAG_RE.fullmatch(tags[0].name):
                raise Refused(f"newest tag {tags[0].name!r} is not a plain tag name; pass --tag")
            tag = tags[0]
        self.check_links(tag)  # here, before any lock, backup or upload
        return tag

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

    def symlinks(self, tag: Tag) -> dict[str, str]:
        """Every symlink in the tag's tree: {path: target} (read from git, nothing unpacked)."""
        listing = self.git("ls-tree", "-r", "-z", "--full-tree", tag.commit, binary=True).stdout
        blobs = {}
        for entry in listing.split(b"\0"):
            if not entry:
                continue
            meta, _, path = entry.partition(b"\t")
            mode, _, rest = meta.partition(b" ")
            if mode.decode() == _SYMLINK_MODE:
                blobs[path.decode("utf-8", "surrogateescape")] = rest.split(b" ")[1].decode()
        if not blobs:
            return {}
        ids = list(blobs.values())
        result = subprocess.run(["git", "-C", str(self.path), "cat-file", "--batch"],
                                input=("\n".join(ids) + "\n").encode(), capture_output=True)
        if result.returncode != 0:
            raise Refused(f"git cat-file in {self.path} failed: {result.stderr.decode(errors='replace').strip()}")
        targets, out = {}, result.stdout
        for oid in ids:  # "<oid> blob <size>\n<content>\n", in the order asked
            header, _, out = out.partition(b"\n")
            size = int(header.split(b" ")[2])
            targets[oid], out = out[:size].decode("utf-8", "surrogateescape"), out[size + 1:]
        return {path: targets[oid] for path, oid in blobs.items()}

    def check_links(self, tag: Tag) -> None:
        """Refuses a tag whose tree holds a symlink leading outside the release: unpacked on the
        host, it would aim what the release writes or deletes there (its shared links) at a folder
        outside, such as `extensions` pointing at another install's extensions."""
        leaving = links_leaving(self.symlinks(tag))
        if leaving:
            path, target = leaving[0]
            more = f" (and {len(leaving) - 1} more)" if len(leaving) > 1 else ""
            raise Refused(f"tag {tag.name}: {path} is a symlink to {target}, outside the release{more}; "
                          "a release must hold its own files: commit the folder itself, or a link inside the project")

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
