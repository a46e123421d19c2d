"""Schema and migrations, run with the *new* release's Directus CLI against production.

`directus schema apply` mirrors the snapshot: whatever the snapshot lacks is dropped. So the
plan (`--dry-run`) is read first and any deletion stops the release unless explicitly allowed.
Directus can log an error and still exit 0 (e.g. "isn't installed"), so its output is read,
not only its exit code.

Migrations run only when there is something to migrate: a migration file of the new release
(Directus's own, or the project's in MIGRATIONS_PATH) whose version the database has not
recorded in `directus_migrations`. The files are listed with the plan, the versions read from
the database; Directus's own rules decide which files count (`pending_migrations`).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from directus_deploy.core.errors import DeployError, Refused
from directus_deploy.host.remote import q
from directus_deploy.host.script import EMIT_FUNCTION, emit, parse_results, records
from directus_deploy.state.lock import serial_lock

SNAPSHOT = "snapshots/schema.yaml"
SYSTEM_MIGRATIONS = "node_modules/@directus/api/dist/database/migrations"  # in a release
# which files Directus runs as migrations (its database/migrations/run.js)
_SYSTEM_MIGRATION = re.compile(r"^[0-9]+[A-Z]-[^.]+\.(?:js|ts)$")
_CUSTOM_MIGRATION = re.compile(r"^[^/]*-[^/]*\.(?:c|m)?js$")
_ERROR_LINE = re.compile(r'(\bERROR\b|"level":\s*50|\bFATAL\b)')
_CHANGE = re.compile(r"^\s+- (Create|Update|Delete) (.+?)\s*$")


@dataclass
class SchemaPlan:
    installed: bool = True
    has_snapshot: bool = True
    changes: list = field(default_factory=list)  # "Create tags", "Delete articles.body", ...
    deletions: list = field(default_factory=list)
    # the release's migration files: {"system": [...], "custom": [...]}; None when not read
    migration_files: dict | None = None
    checked_by: str = "cli"  # http: the running Directus found nothing to change (no CLI started)

    @property
    def empty(self) -> bool:
        return not self.changes

    def allowed_losses(self) -> dict[str, int | None]:
        """Rows each table may lose when these deletions are applied: the dropped collections'
        own tables (all of them), and Directus's schema metadata for what is dropped (a field's
        row in directus_fields...; any number of them for a dropped collection's fields)."""
        losses: dict[str, int | None] = {}

        def lose(table: str, rows: int | None) -> None:
            known = losses.get(table, 0)
            losses[table] = None if rows is None or known is None else known + rows

        for deletion in self.deletions:
            kind, _, name = deletion.partition(" ")
            if kind == "collection":
                lose(name, None)
                lose("directus_collections", 1)
                lose("directus_fields", None)
                lose("directus_relations", None)
            elif kind == "field":
                lose("directus_fields", 1)
            elif kind == "relation":
                lose("directus_relations", 1)
        return losses


def errors_in(output: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if _ERROR_LINE.search(line)]


def parse_plan(output: str) -> SchemaPlan:
    plan = SchemaPlan()
    if "isn't installed" in output:
        plan.installed = False
        return plan
    section = ""
    for line in output.splitlines():
        stripped = line.strip()
        if stripped in ("Collections:", "Fields:", "System Fields:", "Relations:"):
            section = stripped[:-1].lower()
            continue
        match = _CHANGE.match(line)
        if match and section and line.startswith("  - "):
            kind = section.rstrip("s")  # collections -> collection
            plan.changes.append(f"{match[1]} {kind} {match[2]}")
            if match[1] == "Delete":
                plan.deletions.append(f"{kind} {match[2]}")
    return plan


def pending_migrations(files: dict | None, applied: list[str] | None) -> list[str] | None:
    """The versions of the migration files the database has not applied, in the order Directus
    runs them; None when that cannot be told (the files or the applied versions unknown, or no
    file of Directus's own found: a release whose Directus is not where it is looked for)."""
    if files is None or applied is None:
        return None
    system = [f for f in files.get("system", []) if _SYSTEM_MIGRATION.match(f)]
    if not system:
        return None
    custom = [f for f in files.get("custom", []) if _CUSTOM_MIGRATION.match(f)]
    done = set(applied)
    return sorted({f.split("-", 1)[0] for f in system + custom} - done)


def migration_files_lines(release_dir: str, migrations_path: str, runtime=None) -> list[str]:
    """Shell reporting the release's migration files as `migration-file` records (`where`:
    system or custom). MIGRATIONS_PATH is relative to the release, as Directus resolves it;
    a runtime whose image holds Directus lists them where its Directus sees them."""
    listing = runtime.migration_files(release_dir) if runtime else None
    if listing:  # lines "<system|custom><TAB><file>"
        return [f"{{ {listing}; }} | {records('migration-file', 'where', 'name', separator=chr(9))} || true"]
    custom = posixpath.join(release_dir, migrations_path or "./migrations")
    return [f"(cd {q(posixpath.join(release_dir, SYSTEM_MIGRATIONS))} 2>/dev/null && ls -1A) "
            f"| {records('migration-file', 'name', separator=chr(9), where='system')} || true",
            f"(cd {q(custom)} 2>/dev/null && ls -1A) "
            f"| {records('migration-file', 'name', separator=chr(9), where='custom')} || true"]


def read_plan(remote, runtime, release_dir: str, migrations_path: str = "./migrations", service=None) -> SchemaPlan:
    """The schema plan of a release. With `service` (the running Directus), a snapshot it finds
    nothing to change in is told in a moment over HTTP; only a snapshot with changes (or one
    the running Directus cannot compare: another version or vendor) starts the new release's
    CLI, whose dry run lists the changes."""
    snapshot = posixpath.join(release_dir, SNAPSHOT)
    unchanged = [f"if {service.schema_unchanged(snapshot)}; then {emit('schema-unchanged')}; exit 0; fi"] if service else []
    script = "\n".join([
        EMIT_FUNCTION,
        *migration_files_lines(release_dir, migrations_path, runtime),
        f"if [ ! -f {q(snapshot)} ]; then {emit('no-snapshot')}; exit 0; fi",
        *unchanged,
        runtime.cli(release_dir, "schema", "apply", "--dry-run", SNAPSHOT) + " 2>&1",
    ])
    result = remote.script(script, what="read the schema plan", changes=False, check=False,
                           secret_env=service.secret_env if service else None)
    output = result.stdout
    reported = parse_results(output)
    files = {"system": [], "custom": []}
    for record in reported.all("migration-file"):
        files[record["where"]].append(record["name"])
    if reported.has("no-snapshot"):
        return SchemaPlan(has_snapshot=False, migration_files=files)
    if reported.has("schema-unchanged"):
        return SchemaPlan(migration_files=files, checked_by="http")
    plan = parse_plan(reported.text)
    plan.migration_files = files
    if not plan.installed:
        return plan
    problems = errors_in(reported.text)
    if result.exit_code != 0 or problems:
        raise DeployError(f"{remote.name}: schema plan failed: {(problems or [remote.error_line(result)])[0][:300]}")
    return plan


def refuse_deletions(plan: SchemaPlan, allow_destructive: bool) -> None:
    if plan.deletions and not allow_destructive:
        raise Refused(
            f"the schema snapshot would DROP {len(plan.deletions)} item(s): {', '.join(plan.deletions)}; "
            "their data would be lost. Pass --allow-destructive if that is intended"
        )


def migrate_and_apply(remote, layout, runtime, release_dir: str, plan: SchemaPlan,
                      pending: list[str] | None = None) -> dict:
    """Migrations (or the first install, on an empty database), then the snapshot. `pending`
    (`pending_migrations`): none pending starts no Directus for them; otherwise the outcome
    names the versions applied. None: not known, migrate:latest decides."""
    outcome = {}
    if not plan.installed:
        steps = [("bootstrap", runtime.cli(release_dir, "bootstrap"))]
    elif pending == []:
        steps, outcome["migrations"] = [], []  # nothing to migrate: no Directus started for it
    else:
        steps = [("migrations", runtime.cli(release_dir, "database", "migrate:latest"))]
    if plan.has_snapshot and (plan.changes or not plan.installed):
        steps.append(("schema apply", runtime.cli(release_dir, "schema", "apply", "--yes", SNAPSHOT)))
    for name, command in steps:
        # runs to its end on the host even if this side is interrupted: half a migration is worse
        result = remote.script(serial_lock(layout) + "\n" + command + " 2>&1", what=name, check=False, critical=True)
        problems = errors_in(result.stdout)
        if result.exit_code != 0 or problems:
            detail = (problems or [remote.error_line(result)])[0][:300]
            raise DeployError(f"{remote.name}: {name} failed: {detail}")
        if name == "migrations" and pending is not None:
            outcome[name] = pending  # what was pending is what ran: migrate:latest stops at the first failure
        elif name == "schema apply":
            outcome[name] = "applied"
        else:
            outcome[name] = re.findall(r"Applying (.+?)\.\.\.", result.stdout)
    return outcome
