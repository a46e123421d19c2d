"""SQLite: the online backup API (`.backup`), never a plain copy of a live file."""

from __future__ import annotations

from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q

from .base import LIVE, Engine

# Lists `SELECT 'name', COUNT(*) FROM "name";` for every table; fed to a second sqlite3.
_COUNT_QUERIES = (
    "SELECT 'SELECT ' || quote(name) || ', COUNT(*) FROM \"' || replace(name, '\"', '\"\"') || '\";' "
    "FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name;"
)

# Directus writes to the live file while the tool reads it: sqlite3 waits up to 10 s for a
# writer's lock instead of failing at once with "database is locked".
SQLITE3 = "sqlite3 -batch -cmd '.timeout 10000'"


class SqliteEngine(Engine):
    name = "sqlite"
    tools = ("sqlite3", "zstd")
    dump_file = "database.sqlite.zst"

    def __init__(self, production):
        super().__init__(production)
        filename = str(self.env.get("DB_FILENAME", "")).strip()
        if not filename:
            raise Refused(f"DB_CLIENT=sqlite3 but DB_FILENAME is not set in {production.env_file}")
        self.file = production.resolve(filename)

    def database_name(self) -> str:
        return self.file

    def describe(self) -> str:
        return f"sqlite {self.file}"

    def prelude(self, work_dir: str, must_exist: bool = True) -> str:
        if not must_exist:
            return ""
        # sqlite3 would create a missing file: an empty database passed off as production
        return f"test -f {q(self.file)} || {self.fail(f'database file {self.file} not found')}\n"

    def _counts_of(self, path: str, of: str) -> str:
        return (
            f"{SQLITE3} -readonly {q(path)} {q(_COUNT_QUERIES)} "
            f"| {SQLITE3} -readonly -list -separator '|' {q(path)} "
            f"| {self.count_records(of, '|')}"
        )

    def dump(self, target: str) -> str:
        raw = target.removesuffix(".zst")
        # .backup copies page by page under SQLite's locks: consistent while Directus writes.
        # Row counts are taken from the copy itself: exactly what the backup holds.
        return (
            f"{SQLITE3} {q(self.file)} {q('.backup ' + _dot_quote(raw))} && "
            f"test \"$(sqlite3 -batch {q(raw)} 'PRAGMA integrity_check')\" = ok && "
            f"{self._counts_of(raw, 'dump')} && "
            f"zstd -q -T0 --rm -f -o {q(target)} -- {q(raw)}"
        )

    def counts(self, of: str = LIVE) -> str:
        return self._counts_of(self.file, of)

    def scratch_restore_counts(self, dump: str, work_dir: str, of: str = LIVE) -> str:
        scratch = f"{work_dir}/scratch-verify.sqlite"
        return self.always(
            f"zstd -q -d -f -o {q(scratch)} -- {q(dump)} && "
            f"test \"$(sqlite3 -batch {q(scratch)} 'PRAGMA integrity_check')\" = ok && "
            f"{self._counts_of(scratch, of)}",
            f"rm -f -- {q(scratch)}",
        )

    def restore(self, dump: str, work_dir: str) -> str:
        incoming = f"{self.file}.restoring"
        # Directus is stopped; the new file is complete and checked before it replaces the
        # old one by a rename; a stale -wal of the old database must not meet the new one.
        return (
            f"zstd -q -d -f -o {q(incoming)} -- {q(dump)} && "
            f"test \"$(sqlite3 -batch {q(incoming)} 'PRAGMA integrity_check')\" = ok && "
            f"{{ chmod --reference={q(self.file)} {q(incoming)} 2>/dev/null || chmod 0600 {q(incoming)}; }} && "
            # the owner too: Directus may run as another user (uid 1000 in its container image)
            f"{{ chown --reference={q(self.file)} {q(incoming)} 2>/dev/null || true; }} && "
            f"rm -f -- {q(self.file + '-wal')} {q(self.file + '-shm')} {q(self.file + '-journal')} && "
            f"mv -f -- {q(incoming)} {q(self.file)}"
        )

    def rehearsal_copy(self, dump: str, work_dir: str) -> str:
        scratch = f"{work_dir}/database.sqlite"
        return (f"rm -f -- {q(scratch)} && zstd -q -d -f -o {q(scratch)} -- {q(dump)} && "
                f"test \"$(sqlite3 -batch {q(scratch)} 'PRAGMA integrity_check')\" = ok")

    def rehearsal_settings(self, work_dir: str) -> dict[str, str]:
        return {"DB_FILENAME": f"{work_dir}/database.sqlite"}

    def rehearsal_counts(self, work_dir: str, of: str = LIVE) -> str:
        return self._counts_of(f"{work_dir}/database.sqlite", of)

    def rehearsal_query(self, work_dir: str, sql: str) -> str:
        return f"sqlite3 -batch -list -separator '|' {q(work_dir + '/database.sqlite')} {q(sql)}"

    def rehearsal_drop(self, work_dir: str) -> str:
        return f"rm -f -- {q(work_dir)}/database.sqlite*"

    def size_query(self) -> str:
        return f"stat -c %s -- {q(self.file)}"

    def migrations_query(self) -> str:
        return f"{SQLITE3} -readonly {q(self.file)} 'SELECT version FROM directus_migrations ORDER BY version'"


def _dot_quote(path: str) -> str:
    """A path as an argument of an sqlite3 dot-command."""
    return "'" + path.replace("'", "''") + "'"
