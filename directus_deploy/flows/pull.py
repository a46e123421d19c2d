"""Downloading a backup to this machine over SFTP: with progress, resumable, checked.

Every file listed in the manifest is fetched into `<to>/<backup id>/`; a file already complete
(size and sha256 match) is skipped, a partial one is continued from where it stopped, and each
is checked against its sha256 once downloaded.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path

from directus_deploy.core import manifest as mf
from directus_deploy.core.console import Progress
from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.state.backup_catalog import read_manifest

CHUNK = 1 << 20


def files_of(manifest: dict) -> list[tuple[str, int, str | None]]:
    """(relative path, size, sha256) of every file a backup holds."""
    files = []
    if manifest.get("database"):
        db = manifest["database"]
        files.append((db["file"], db["size"], db["sha256"]))
    for part in mf.file_parts(manifest):
        for path, (size, _mtime, digest) in (manifest.get(part) or {}).get("files", {}).items():
            files.append((f"{part}/{path}", size, digest))
    if manifest.get("env"):
        files.append(("env", None, manifest["env"]["sha256"]))
    if manifest.get("schema"):
        files.append(("schema.yaml", manifest["schema"].get("size"), manifest["schema"]["sha256"]))
    return files


def inside(folder: Path, relative: str) -> Path:
    """`folder/relative`, refusing a manifest path that is absolute or walks out of the folder
    (a damaged or hostile manifest must not write or delete anything else on this machine)."""
    parts = relative.split("/")
    if not relative or relative.startswith("/") or "\\" in relative or any(p in ("", ".", "..") for p in parts):
        raise Refused(f"the backup's manifest lists {relative!r}: not a plain path inside the backup; nothing was pulled")
    return folder / relative


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def pull_backup(session, backup_id: str, destination: Path) -> dict:
    remote, layout, console = session.remote(), session.layout, session.console
    manifest = read_manifest(remote, layout, backup_id)
    source = layout.backup_dir(backup_id)
    target = destination / backup_id
    files = files_of(manifest)
    for relative, _, _ in files:  # all checked before anything is written
        inside(target, relative)
    os.umask(0o077)  # a backup holds secrets (.env, database): private folders and files
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(target, 0o700)
    sftp = remote.sftp()
    sizes = {}
    for relative, size, _ in files:
        sizes[relative] = size if size is not None else sftp.stat(posixpath.join(source, relative)).st_size
    progress = Progress(sum(sizes.values()), console.say)
    fetched = skipped = resumed = 0
    for relative, _, digest in files:
        local = inside(target, relative)
        local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        size = sizes[relative]
        have = local.stat().st_size if local.exists() else 0
        if have == size and (digest is None or sha256_of(local) == digest):
            skipped += 1
            progress.add(size)
            continue
        if have > size:
            local.unlink()
            have = 0
        if have:
            resumed += 1
        with sftp.open(posixpath.join(source, relative), "rb") as remote_file, open(local, "ab") as handle:
            os.chmod(local, 0o600)
            remote_file.seek(have)
            remote_file.prefetch(size - have)
            progress.add(have)
            while True:
                block = remote_file.read(CHUNK)
                if not block:
                    break
                handle.write(block)
                progress.add(len(block))
        if digest and sha256_of(local) != digest:
            local.unlink()
            raise DeployError(f"{relative} arrived damaged (sha256 differs); run backup.pull again")
        fetched += 1
    progress.end()
    (target / "manifest.json").write_text(read_manifest_text(remote, source))
    os.chmod(target / "manifest.json", 0o600)
    return {"folder": str(target), "files": len(files), "fetched": fetched, "skipped": skipped,
            "resumed": resumed, "bytes": sum(sizes.values())}


def read_manifest_text(remote, folder: str) -> str:
    return remote.read_file(posixpath.join(folder, "manifest.json"))
