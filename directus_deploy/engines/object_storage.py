"""Storage locations on S3-compatible object storage (Directus's `s3` driver), copied with rclone.

A backup copies the bucket's objects into `storage/<location>/` of the backup: the previous
backup's copy is hard-linked first (`cp -al`), the objects that differ are unlinked from it,
then `rclone sync` fetches only what changed (into new files: the previous backup's files are
never changed, even by an rclone older than 1.63, which rewrites a file in place), and
`rclone check` compares every object with its copy by checksum. A restore syncs the copy back
(objects made since are removed, as a restore of local uploads removes files). The bucket's keys
reach rclone as environment variables read from standard input, never a command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q
from directus_deploy.host.script import EMIT_FUNCTION, emit

_LOCATION = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class Bucket:
    location: str  # Directus's name for it (STORAGE_LOCATIONS)
    bucket: str
    root: str  # the key prefix Directus writes under (STORAGE_<LOC>_ROOT), may be empty
    endpoint: str
    region: str
    path_style: bool
    key: str = field(repr=False)
    secret: str = field(repr=False)

    @property
    def remote_name(self) -> str:
        return "dxd" + re.sub(r"[^a-z0-9]", "", self.location)

    @property
    def path(self) -> str:
        """rclone's name for the objects Directus keeps there."""
        return f"{self.remote_name}:{self.bucket}" + (f"/{self.root.strip('/')}" if self.root.strip("/") else "")

    def settings_shell(self) -> str:
        """rclone's remote, defined by environment variables (nothing secret: the keys come
        from `secret_env`)."""
        prefix = f"RCLONE_CONFIG_{self.remote_name.upper()}_"
        settings = {"TYPE": "s3", "PROVIDER": "Other" if self.endpoint else "AWS", "ENDPOINT": self.endpoint,
                    "REGION": self.region, "FORCE_PATH_STYLE": "true" if self.path_style else "false",
                    "ENV_AUTH": "false"}
        return " ".join(f"export {prefix}{k}={q(v)};" for k, v in settings.items() if v)

    def secret_env(self) -> dict[str, str]:
        prefix = f"RCLONE_CONFIG_{self.remote_name.upper()}_"
        return {prefix + "ACCESS_KEY_ID": self.key, prefix + "SECRET_ACCESS_KEY": self.secret}


def buckets_in(env: dict) -> dict[str, Bucket]:
    """{location: Bucket} for each storage location on Directus's s3 driver."""
    found = {}
    for name in (s.strip() for s in str(env.get("STORAGE_LOCATIONS", "local")).split(",")):
        key = name.upper().replace("-", "_")
        if not name or env.get(f"STORAGE_{key}_DRIVER") != "s3":
            continue
        setting = lambda suffix: str(env.get(f"STORAGE_{key}_{suffix}") or "")  # noqa: E731
        if not _LOCATION.match(name) or not setting("BUCKET"):
            raise Refused(f"storage location {name!r} on s3 needs a plain name and STORAGE_{key}_BUCKET")
        found[name] = Bucket(location=name, bucket=setting("BUCKET"), root=setting("ROOT"),
                             endpoint=setting("ENDPOINT"), region=setting("REGION") or "us-east-1",
                             path_style=setting("FORCE_PATH_STYLE").lower() == "true",
                             key=setting("KEY"), secret=setting("SECRET"))
    return found


def secret_env(buckets: dict[str, Bucket]) -> dict[str, str]:
    return {name: value for bucket in buckets.values() for name, value in bucket.secret_env().items()}


# Directus rewrites this file in every storage location on each /server/health: not content
HEALTH_PROBE_FILE = "directus-health-file"
RCLONE = f"rclone --config /dev/null --retries 3 --low-level-retries 5 --exclude /{HEALTH_PROBE_FILE}"


def copy_lines(bucket: Bucket, target: str, backups: str, part: str) -> list[str]:
    """Shell copying the bucket into `target` (private), built on the newest complete backup
    in `backups` that holds the same `part`."""
    lines = [
        bucket.settings_shell(),
        f"prev=''; for b in $(ls -1r {q(backups)} | grep -v '^[.]'); do "
        f"if [ -f {q(backups)}/\"$b\"/summary.json ] && [ -d {q(backups)}/\"$b\"/{q(part)} ]; then "
        f"prev={q(backups)}/\"$b\"/{q(part)}; break; fi; done",
        f"if [ -n \"$prev\" ]; then cp -al -- \"$prev\" {q(target)}; else mkdir -m 0700 {q(target)}; fi",
        # rclone before 1.63 rewrites a changed file in place, which would change the previous
        # backup's hard-linked copy: every object that differs is unlinked here first
        f"if [ -n \"$prev\" ]; then {RCLONE} check --quiet --combined {q(target + '.changed')} -- "
        f"{q(bucket.path)} {q(target)} 2>/dev/null || true; "
        f"sed -n 's/^[*!] //p' {q(target + '.changed')} | while IFS= read -r f; do rm -f -- {q(target)}/\"$f\"; done; "
        f"rm -f -- {q(target + '.changed')}; fi",
    ]
    lines += [
        # --no-update-modtime: an identical file keeps its times (they are the previous backup's too)
        f"(umask 077 && {RCLONE} sync --quiet --no-update-modtime -- {q(bucket.path)} {q(target)})",
        f"{RCLONE} check --quiet -- {q(bucket.path)} {q(target)}",
    ]
    return lines


def restore_lines(bucket: Bucket, source: str) -> list[str]:
    return [bucket.settings_shell(), f"{RCLONE} sync --quiet -- {q(source)} {q(bucket.path)}"]


def check_lines(bucket: Bucket, copy: str, exact: bool) -> list[str]:
    """Shell reporting a `bucket` record (`location`, `differences`): every object of the backup's
    copy in the bucket with its checksum (and, when exact, nothing else there)."""
    one_way = "" if exact else " --one-way"
    return [EMIT_FUNCTION, bucket.settings_shell(),
            f"n=$({RCLONE} check --quiet{one_way} -- {q(copy)} {q(bucket.path)} 2>&1 | grep -c ERROR || true); "
            + emit("bucket", location=q(bucket.location), differences='"$n"')]
