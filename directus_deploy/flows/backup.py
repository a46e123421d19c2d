"""Taking a backup: database, uploads, extensions, `.env` and schema, verified before it counts.

A backup is built in `backups/.tmp-<id>/` and renamed to `backups/<id>/` only once its dump
has been restored into a scratch database and every file has its checksum, so a failed or
interrupted backup never looks like a good one. Uploads are an incremental snapshot: rsync
hard-links files unchanged since the previous *backup* to that backup's copy and copies the
rest from production, so a backup never shares an inode with a live file (something writing
into a live upload in place would otherwise change the backup too).
"""

from __future__ import annotations

import getpass
import json
import posixpath
import socket

from directus_deploy.core import manifest as mf
from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.core.extensions import PRINT_MANIFESTS, check_printed
from directus_deploy.engines import engine_for, object_storage, parse_counts, parse_migrations, parse_size
from directus_deploy.flows.system_config import EXPORT_DIR, ensure_helper, export_lines, secret_env
from directus_deploy.host.remote import Remote, q
from directus_deploy.host.script import EMIT_FUNCTION, emit, parse_results, section, split_sections
from directus_deploy.state.layout import is_id
from directus_deploy.state.production import HEALTH_PROBE_FILE, Production, locate, storage_root
from directus_deploy.state.settings import process_env_shell

DISK_MARGIN = 64 * 1024 * 1024  # bytes kept free beyond the estimate
DISK_FULL = 4 * 1024 * 1024  # a write failing with less than this free failed for lack of space
RSYNC_PRIVATE = ["rsync", "-a", "--chmod=D0700,F0600"]
# Directus rewrites this file in uploads on every /server/health: it is not content, and
# backing it up would make every backup look changed.
SKIP_PROBE = f"! -path ./{HEALTH_PROBE_FILE}"


class BackupRun:
    """One backup being taken: the production, its engine, the previous backup, the new one."""

    def __init__(self, session, *, reason: str, parts=mf.PARTS, install: str | None = None,
                 for_release: str | None = None, system_config: bool = False, keep: str | None = None):
        unknown = set(parts) - set(mf.PARTS)
        if unknown:
            raise Refused(f"unknown backup part(s): {', '.join(sorted(unknown))}; parts are {', '.join(mf.PARTS)}")
        self.session = session
        self.remote: Remote = session.remote()
        self.layout = session.layout
        self.console = session.console
        self.reason = reason
        self.parts = tuple(p for p in mf.PARTS if p in parts)
        self.install = install
        self.for_release = for_release
        self.keep = keep  # why it is never pruned automatically (a safety backup), or None
        self.system_config = system_config  # take the "config" part even if production has none yet
        self.production: Production | None = None
        self.engine = None
        self.previous: dict | None = None  # manifest of the latest backup holding uploads
        self.live_uploads: dict[str, mf.Entry] = {}
        # uploads unchanged since the previous backup: refer to its (immutable) snapshot
        # instead of hard-linking every file again
        self.reuse_uploads = False
        self.id = mf.new_backup_id(reason)
        self.manifest: dict = {}
        self.timings: dict = {}

    @property
    def staging(self) -> str:
        return posixpath.join(self.layout.backups, f".tmp-{self.id}")

    @property
    def final(self) -> str:
        return self.layout.backup_dir(self.id)

    # -- the flow ----------------------------------------------------------------------------

    def run(self) -> dict | None:
        with self.console.step("find the production") as step:
            self.production = locate(self.remote, self.layout, self.install)
            self.session.production = self.production
            if "db" in self.parts:
                self.engine = engine_for(self.production)
            if "files" in self.parts and not self.production.has_files:
                self.parts = tuple(p for p in self.parts if p != "files")
            if "env" in self.parts and self.production.settings and self.production.settings.format == "missing":
                self.parts = tuple(p for p in self.parts if p != "env")  # settings only in the process environment
            step.detail = f"{self.production.root} ({self.engine.describe() if self.engine else 'no database part'})"
        with self.console.step("check tools, free disk and the previous backup") as step:
            step.detail = self.prepare()
        if self.session.dry_run:
            self.console.say(f"    would write backup {self.id} ({', '.join(self.parts)}) and verify it")
            return None
        try:
            with self.console.step(f"back up {self.describe_parts()}") as step:
                step.detail = self.copy()
            if "schema" in self.parts:
                with self.console.step("take a schema snapshot") as step:
                    step.detail = self.snapshot_schema()
            if "config" in self.parts:
                with self.console.step("export the system configuration (roles, policies, flows, settings...)") as step:
                    step.detail = self.export_config()
            with self.console.step("write the manifest and put the backup in place") as step:
                self.finish()
                step.detail = f"{self.final}"
        except BaseException:
            self.discard()
            raise
        return self.manifest

    def describe_parts(self) -> str:
        names = {"db": f"the {self.engine.name if self.engine else ''} database (restored into a scratch copy)",
                 "files": "uploads", "extensions": "extensions", "env": ".env"}
        chosen = [names[p] for p in self.parts if p in names]
        return ", ".join(chosen[:-1]) + (" and " if len(chosen) > 1 else "") + chosen[-1] if chosen else "nothing"

    # -- steps -------------------------------------------------------------------------------

    def prepare(self) -> str:
        prod, engine = self.production, self.engine
        tools = {"rsync", "sha256sum", "find"} | set(engine.tools if engine else ()) | ({"rclone"} if prod.buckets else set())
        lines = [
            section("tools"),
            f"for t in {q(*sorted(tools))}; do command -v \"$t\" >/dev/null || echo \"missing $t\"; done",
            section("free"),
            f"d={q(self.layout.backups)}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; "
            "df -PB1 \"$d\" | awk 'NR==2 {print $4}'",
            section("previous"),
            f"for b in $(ls -1r {q(self.layout.backups)} 2>/dev/null | grep -v '^[.]'); do "
            f"  m={q(self.layout.backups)}/$b/manifest.json; "
            f"  if [ -f \"$m\" ] && [ -f {q(self.layout.backups)}/$b/summary.json ] && [ -d {q(self.layout.backups)}/$b/uploads ]; "
            "then cat \"$m\"; break; fi; done",
            section("taken"),
            f"ls -1 {q(self.layout.backups)} 2>/dev/null | grep -F {q(self.id)} || true",
            section("extsize"),
            f"du -sbL {q(prod.extensions)} 2>/dev/null | awk '{{s+=$1}} END {{print s+0}}'",
        ]
        if "files" in self.parts:
            lines += [section("uploads"), f"cd {q(prod.uploads)} && find . -type f {SKIP_PROBE} -printf '%P\\0%s\\0%T@\\0'"]
        lines += [section("sysconfig"), f"test -d {q(prod.root + '/' + EXPORT_DIR)} && echo yes || true"]
        if engine:
            lines += [section("dbsize"), engine.prelude(self.layout.backups) + engine.size()]
        out = self.remote.script(
            "\n".join(lines), what="check tools, disk and previous backup", changes=False,
            secret_env=engine.secret_env() if engine else None,
        ).stdout
        found = split_sections(out)
        missing = [line.split()[1] for line in found.get("tools", "").splitlines() if line.startswith("missing ")]
        if missing:
            raise Refused(f"{self.remote.name}: {', '.join(missing)} not found on the host; install it to take backups")
        if "config" in self.parts and not (self.system_config or found.get("sysconfig", "").strip() == "yes"):
            self.parts = tuple(p for p in self.parts if p != "config")  # no system configuration deployed here
        if found.get("taken", "").strip():
            self.id = mf.new_backup_id(self.reason + "-2")
        previous_text = found.get("previous", "").strip()
        self.previous = json.loads(previous_text) if previous_text else None
        if self.previous and not is_id(self.previous.get("id")):
            self.previous = None  # a manifest naming no plain backup id is not built on: copy everything
        previous_files = mf.listing_from_json(((self.previous or {}).get("uploads") or {}).get("files", {}))
        self.live_uploads = mf.parse_listing(found.get("uploads", ""))
        self.reuse_uploads = bool(self.previous) and mf.same_listing(self.live_uploads, previous_files)
        need = mf.bytes_to_copy(self.live_uploads, previous_files)
        need += int(found.get("extsize", "0").strip() or 0)
        need += parse_size(found.get("dbsize", "")) * 2  # the dump, and its uncompressed scratch copy while verifying
        free = int(found.get("free", "0").strip() or 0)
        if need + DISK_MARGIN > free:
            raise Refused(
                f"{self.remote.name}: not enough free disk for a backup in {self.layout.backups}: "
                f"about {_mib(need + DISK_MARGIN)} needed, {_mib(free)} free; free some space or prune backups"
            )
        previous_id = self.previous["id"] if self.previous else "none (full copy)"
        return f"~{_mib(need)} to write, {_mib(free)} free; previous backup {previous_id}"

    def copy(self) -> str:
        """One round trip: the database dump and its scratch restore, then the files."""
        lines = [EMIT_FUNCTION, f"mkdir -p -m 0700 {q(self.layout.backups)} && chmod 0700 {q(self.layout.backups)}",
                 f"mkdir -m 0700 {q(self.staging)}"]
        if "db" in self.parts:
            lines += [_clock("db")] + self.database_lines()
        if {"files", "extensions", "env"} & set(self.parts):
            lines += [_clock("files")] + self.file_lines()
        # whatever the parts: what the runtime runs the production with (its files, its image)
        lines += self.session.runtime.backup_lines(self.production.root, posixpath.join(self.staging, "runtime"))
        lines.append(_clock("end"))
        secrets = {**(self.engine.secret_env() if self.engine else {}), **self.production.storage_secret_env()}
        out = self._write("\n".join(lines), what="back up", secret_env=secrets or None).stdout
        details = []
        clocks = {r["name"]: float(r["at"]) for r in parse_results(out).all("clock")}
        # seconds each part took on the host (kept in the manifest: the benchmark reads them)
        self.timings = {}
        if "db" in self.parts:
            self.timings["database"] = round(clocks["files" if "files" in clocks else "end"] - clocks["db"], 3)
            details.append(self.read_database(out) + f" [{self.timings['database']:.1f}s]")
            # when the dump began (host clock): writes after it may be missing from the backup,
            # which is finished (created_at) only after the files, the schema and the checks
            self.manifest["database"]["taken_at"] = mf.utc_at(clocks["db"])
        if "files" in clocks:
            self.timings["files"] = round(clocks["end"] - clocks["files"], 3)
            details.append(self.read_files(out) + f" [{self.timings['files']:.1f}s]")
        image = parse_results(out).first("image")
        if image and image.get("name"):  # what the runtime runs (its own files are in runtime/)
            self.manifest["image"] = {"name": image["name"], "id": image["id"]}
            details.append(f"image {image['name']}")
        return "; ".join(details)

    def database_lines(self) -> list[str]:
        engine = self.engine
        db_dir = posixpath.join(self.staging, "db")
        dump = posixpath.join(db_dir, engine.dump_file)
        return [
            f"mkdir -m 0700 {q(db_dir)}",
            engine.prelude(db_dir),
            engine.counts("before"),
            engine.dump(dump),
            engine.counts("after"),
            engine.scratch_restore_counts(dump, db_dir, "scratch"),
            engine.migrations(),
            f"chmod 0600 {q(dump)}",
            emit("dump", size=f'"$(stat -c %s -- {q(dump)})"', sha256=f'"$(sha256sum -- {q(dump)} | cut -c1-64)"'),
        ]

    def read_database(self, out: str) -> str:
        engine, reported = self.engine, parse_results(out)
        before, after = parse_counts(reported, "before"), parse_counts(reported, "after")
        restored = parse_counts(reported, "scratch")
        if not restored:
            raise DeployError(f"{self.remote.name}: the dump restored into a scratch database shows no tables")
        problems = mf.compare_counts(restored, before, after)
        dumped = parse_counts(reported, "dump")  # SQLite counts its copy directly
        if dumped and dumped != restored:
            problems.append("the scratch restore's row counts differ from the backup copy's")
        if problems:
            raise DeployError(f"{self.remote.name}: the dump failed verification: {'; '.join(problems[:3])}")
        migrations = parse_migrations(reported)
        dumped_file = reported.first("dump")
        size, digest = dumped_file["size"], dumped_file["sha256"]
        self.manifest["database"] = {
            "engine": engine.name,
            "file": f"db/{engine.dump_file}",
            "size": int(size),
            "sha256": digest,
            "tables": restored,
            "migration_head": migrations[-1] if migrations else None,
            "migrations": migrations,
            "verified": "restored into a scratch database; row counts match production",
        }
        return f"database: {len(restored)} tables, {sum(restored.values())} rows, dump {_mib(int(size))}"

    def file_lines(self) -> list[str]:
        prod = self.production
        prev_dir = self.layout.backup_dir(self.previous["id"]) if self.previous else None
        lines = []
        if "files" in self.parts and prod.uploads:
            copy = self._incremental_copy_lines("uploads", [(prod.uploads, "", (HEALTH_PROBE_FILE,))], prev_dir)
            if self.reuse_uploads:
                copy = self._reuse_lines(prev_dir, copy)
            lines += copy
        if "files" in self.parts:
            if prod.storages or prod.buckets:  # the other local storage locations, each incremental like uploads
                lines.append(f"mkdir -p -m 0700 {q(posixpath.join(self.staging, 'storage'))}")
            for name, path in sorted(prod.storages.items()):
                lines += self._incremental_copy_lines(f"storage/{name}", [(path, "", (HEALTH_PROBE_FILE,))], prev_dir)
            for name, bucket in sorted(prod.buckets.items()):
                part = f"storage/{name}"
                lines += object_storage.copy_lines(bucket, posixpath.join(self.staging, part), self.layout.backups, part)
                lines += self._listing_lines(part)
        if "extensions" in self.parts:
            # .registry may be a symlink into shared/: its real content is copied into place
            copies = [(prod.extensions, "", (".registry",)), (prod.registry, ".registry", ())]
            lines += self._incremental_copy_lines("extensions", copies, prev_dir)
            target = posixpath.join(self.staging, "extensions")
            lines += [section("extension-manifests"), f"cd {q(target)} && {PRINT_MANIFESTS}"]
        if "env" in self.parts:
            lines += [section("env"),
                      f"install -m 0600 -- {q(prod.env_file)} {q(self.staging + '/env')}",
                      emit("env", sha256=f'"$(sha256sum -- {q(self.staging + "/env")} | cut -c1-64)"')]
        return lines

    def _reuse_lines(self, prev_dir: str, copy: list[str]) -> list[str]:
        """If the live listing still matches (re-checked on the host, as files may have changed
        since it was read), link the previous snapshot's folder; otherwise copy as usual."""
        uploads = self.production.uploads
        owner_of = posixpath.join(prev_dir, "uploads")
        target = posixpath.join(self.staging, "uploads")
        return [
            f"now=$(cd {q(uploads)} && find . -type f {SKIP_PROBE} -printf '%P\\t%s\\t%T@\\0' | LC_ALL=C sort -z | sha256sum | cut -c1-64)",
            f"if [ \"$now\" = {q(mf.listing_digest(self.live_uploads))} ]; then",
            # always point at the folder's real owner, so links never chain
            f"  owner=$(basename \"$(dirname \"$(readlink -f -- {q(owner_of)})\")\")",
            f"  ln -s -- \"../$owner/uploads\" {q(target)} && " + emit("uploads-reused", owner='"$owner"'),
            "else",
            *copy,
            "fi",
        ]

    def read_files(self, out: str) -> str:
        prod = self.production
        found = split_sections(out)
        previous = self.previous or {}
        details = []
        reported = parse_results(out)
        reused = (reported.first("uploads-reused") or {}).get("owner")
        if reused:
            entries = (previous.get("uploads") or {}).get("files", {})
            size = sum(entry[0] for entry in entries.values())
            self.manifest["uploads"] = {
                "source": prod.uploads, "files": entries, "count": len(entries), "bytes": size,
                "copied": 0, "linked": len(entries), "bytes_written": 0, "snapshot_of": reused,
            }
            details.append(f"uploads: {len(entries)} files unchanged, snapshot shared with backup {reused}")
        storages = [f"storage/{name}" for name in sorted({*prod.storages, *prod.buckets})]
        for part in ("uploads", "extensions", *storages):
            if part not in found or (part == "uploads" and reused):
                continue
            listing = mf.parse_listing(found[part])
            computed = mf.parse_hashes(found.get(f"{part}-hashes", ""))  # the files copied just now
            copied_now = set(computed) & set(listing)
            inherited = mf.listing_from_json((previous.get(part) or {}).get("files", {}))
            missing = mf.fill_hashes(listing, computed, inherited)
            if missing:  # shared with a backup not read here, or changed under rsync's feet: hash now
                computed.update(self._hash(posixpath.join(self.staging, part), missing))
                mf.fill_hashes(listing, computed, {})
            copied = len(copied_now)
            size = sum(e.size for e in listing.values())
            written = sum(listing[p].size for p in copied_now)
            sources = {"uploads": prod.uploads, "extensions": prod.extensions,
                       **{f"storage/{name}": path for name, path in prod.storages.items()},
                       **{f"storage/{name}": bucket.path for name, bucket in prod.buckets.items()}}
            self.manifest[part] = {
                "source": sources[part],
                "files": mf.listing_to_json(listing),
                "count": len(listing), "bytes": size, "copied": copied,
                "linked": len(listing) - copied, "bytes_written": written,
            }
            details.append(f"{part}: {len(listing)} files, {copied} copied, {len(listing) - copied} linked")
        if "uploads" in self.manifest:  # where they were: a restore puts them back only there (flows/restore.py)
            self.manifest["uploads"]["storage_root"] = storage_root(prod.env)
        if "extensions" in self.manifest:
            self.manifest["extensions"]["names"] = sorted(
                e.name for e in check_printed(found.get("extension-manifests", "")) if e.ok)
            self.manifest["extensions"]["registry"] = sorted(
                {p.split("/")[1] for p in self.manifest["extensions"]["files"] if p.startswith(".registry/")})
        env_copy = reported.first("env")
        if env_copy:
            self.manifest["env"] = {"file": "env", "sha256": env_copy["sha256"]}
            details.append(".env")
        return "; ".join(details)

    def _incremental_copy_lines(self, part: str, copies, prev_dir: str | None) -> list[str]:
        """rsync each (source, subfolder, excludes) into the backup's `part` folder, hard-linking
        what the previous backup already holds; then list the part and hash its new copies."""
        target = posixpath.join(self.staging, part)
        lines = [f"mkdir -p -m 0700 {q(target)}"]
        for source, subfolder, excludes in copies:
            into = posixpath.join(target, subfolder) if subfolder else target
            exclude = " ".join(f"--exclude={q('/' + e)}" for e in excludes)
            rsync = f"{q(*RSYNC_PRIVATE)} {exclude}"
            copy = f"{rsync} -- {q(source + '/')} {q(into + '/')}"
            if prev_dir:
                previous = posixpath.join(prev_dir, part, subfolder) if subfolder else posixpath.join(prev_dir, part)
                copy = (f"if [ -d {q(previous)} ]; then {rsync} --link-dest={q(previous)} -- {q(source + '/')} "
                        f"{q(into + '/')}; else {copy}; fi")
            lines += [f"if [ -d {q(source)} ]; then mkdir -p -m 0700 {q(into)} && {{ {copy}; }}; fi"]
        return lines + self._listing_lines(part)

    def _listing_lines(self, part: str) -> list[str]:
        """List the part's files and hash those copied just now (one link: not shared with the
        previous backup)."""
        target = posixpath.join(self.staging, part)
        return [
            section(part),
            f"cd {q(target)} && find . -type f -printf '%P\\0%s\\0%T@\\0'",
            section(f"{part}-hashes"),
            # one link: copied just now; more: shares the previous backup's inode (unchanged)
            f"cd {q(target)} && find . -type f -links 1 -print0 | xargs -0 -r sha256sum -z --",
        ]

    def _hash(self, folder: str, paths: list[str]) -> dict[str, str]:
        out = self.remote.script(
            f"cd {q(folder)} && xargs -0 -r sha256sum -z --", stdin="\0".join("./" + p for p in paths),
            what="hash files",
        ).stdout
        return mf.parse_hashes(out)

    def snapshot_schema(self) -> str:
        prod = self.production
        target = posixpath.join(self.staging, "schema.yaml")
        settings_from_process = process_env_shell(prod.root, prod.settings.from_process if prod.settings else ())
        service = self.session.service
        script = schema_snapshot_script(service, self.session.runtime, prod.root, target, self.staging + "/schema.log",
                                        settings_from_process)
        out = self._write(script, what="take a schema snapshot", secret_env=service.secret_env).stdout
        snapshot = parse_results(out).first("schema")
        digest, size = snapshot["sha256"], snapshot["size"]
        self.manifest["schema"] = {"file": "schema.yaml", "sha256": digest, "size": int(size), "taken_by": snapshot["how"]}
        how = "from the running Directus" if snapshot["how"] == "http" else "with Directus's CLI"
        return f"schema.yaml, {int(size) // 1024} KiB, {how}"

    def export_config(self) -> str:
        """Production's system configuration, through Directus's own CLI, into config/."""
        into = posixpath.join(self.staging, "config")
        ensure_helper(self.session)
        lines = [EMIT_FUNCTION, *export_lines(self.session.config, self.session.layout,
                                              posixpath.join(self.staging, ".config-work"), into)]
        lines.append("echo; " + emit("config", sha256=f'"$({mf.CONFIG_DIGEST.format(folder=q(into))})"',
                                     files=f'"$(find {q(into)} -type f | wc -l)"'))
        out = self._write("\n".join(lines), what="export the system configuration",
                          secret_env=secret_env(self.session.config.directus_token)).stdout
        exported = parse_results(out).first("config")
        digest, count = exported["sha256"], exported["files"].strip()
        self.manifest["config"] = {"folder": "config", "sha256": digest, "files": int(count)}
        return f"config/: {count} files"

    def finish(self) -> None:
        prod = self.production
        totals_files = sum(self.manifest.get(p, {}).get("count", 0) for p in ("uploads", "extensions"))
        totals_bytes = sum(self.manifest.get(p, {}).get("bytes", 0) for p in ("uploads", "extensions"))
        written = sum(self.manifest.get(p, {}).get("bytes_written", 0) for p in ("uploads", "extensions"))
        written += (self.manifest.get("database") or {}).get("size", 0)
        self.manifest = {
            "format": mf.FORMAT,
            "id": self.id,
            "reason": self.reason,
            "created_at": mf.utc_now(),
            "created_by": f"{getpass.getuser()}@{socket.gethostname()}",
            "host": self.remote.name,
            "release": prod.release_id,
            "for_release": self.for_release,
            "keep": self.keep,
            "production_root": prod.root,
            "engine": self.engine.name if self.engine else None,
            "directus_version": prod.directus_version,
            "parts": list(self.parts),
            "previous": self.previous["id"] if self.previous else None,
            "totals": {"files": totals_files, "bytes": totals_bytes, "bytes_written": written},
            "timings": self.timings,
            "verified": {"at": mf.utc_now(), "how": "dump restored into a scratch database, row counts compared; "
                                                    "every file checksummed"},
            **self.manifest,
        }
        summary = json.dumps(mf.summary_of(self.manifest))
        # one round trip: the summary line, then the manifest, both 0600; then the rename
        script = (
            f"cd {q(self.staging)} && umask 077 && IFS= read -r summary && "
            "printf '%s\\n' \"$summary\" > summary.json && cat > manifest.json && "
            f"mv -T -- {q(self.staging)} {q(self.final)}"
        )
        self._write(script, stdin=summary + "\n" + mf.dumps(self.manifest), what="write the manifest")

    def _write(self, script: str, *, what: str, **kwargs):
        """Run a script that writes into the backup. A failure on a full disk says so, since
        the tools' own messages for it vary (zstd: "can't stat", sqlite: "disk I/O error")."""
        result = self.remote.script(script, what=what, check=False, **kwargs)
        if result.ok:
            return result
        detail = self.remote.error_line(result)
        df = self.remote.query(f"df -PB1 -- {q(self.layout.backups + '/')} | awk 'NR==2 {{print $4, $6}}'",
                               check=False).stdout.split()
        if "No space left on device" in result.stderr + result.stdout or (df and df[0].isdigit() and int(df[0]) < DISK_FULL):
            where = f"{df[1]} ({_mib(int(df[0]))} free)" if len(df) == 2 and df[0].isdigit() else self.layout.backups
            raise DeployError(f"{self.remote.name}: {what} failed: the disk is full at {where}; free some space "
                              f"(fab backup.prune) and try again ({detail})")
        raise DeployError(f"{self.remote.name}: {what} failed: {detail}")

    def discard(self) -> None:
        try:
            self.remote.run(["rm", "-rf", "--", self.staging], check=False)
            self.console.say(f"    incomplete backup {self.staging} removed")
        except Exception:  # noqa: BLE001 - the connection may be gone; prune removes it later
            self.console.say(f"    incomplete backup left at {self.staging} (never listed as good; prune removes it)")


def schema_snapshot_script(service, runtime, root: str, target: str, log: str, settings_shell: str = "") -> str:
    """Shell writing production's schema snapshot to `target` and reporting it (`schema`:
    sha256, size, how). The running Directus answers in a moment (GET /schema/snapshot); when
    it does not, Directus's CLI of `root` (a few seconds to start) with the settings Directus
    runs with (`settings_shell`: exported from its process when not in its .env)."""
    cli = runtime.cli(root, "schema", "snapshot", "--yes", "--format", "yaml", target)
    return "\n".join([
        EMIT_FUNCTION,
        f"if {service.snapshot_to(target)} 2>{q(log)}; then how=http; else rm -f -- {q(target)}",
        settings_shell + f"{cli} > {q(log)} 2>&1 || {{ tail -5 {q(log)} >&2; exit 1; }}; how=cli; fi",
        f"rm -f -- {q(log)}; chmod 0600 {q(target)}",
        emit("schema", sha256=f'"$(sha256sum -- {q(target)} | cut -c1-64)"', size=f'"$(stat -c %s -- {q(target)})"',
             how='"$how"'),
    ])


def _clock(name: str) -> str:
    # on a line of its own: the output before it (sha256sum -z) may not end with a newline
    return "echo; " + emit("clock", name=q(name), at='"$(date +%s.%N)"')


def _mib(size: int) -> str:
    if size >= 1 << 30:
        return f"{size / (1 << 30):.1f} GiB"
    return f"{size / (1 << 20):.1f} MiB"


def take_backup(session, *, reason: str, parts=mf.PARTS, install: str | None = None,
                for_release: str | None = None, system_config: bool = False, keep: str | None = None) -> dict | None:
    """Take, verify and record one backup. `keep`: why it must never be pruned automatically
    (the safety backup of a restore holds writes nothing else has)."""
    return BackupRun(session, reason=reason, parts=parts, install=install, for_release=for_release,
                     system_config=system_config, keep=keep).run()
