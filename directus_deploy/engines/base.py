"""What every engine offers. Its scripts report through host/script.py's records: `count`
(table, rows, and `of`: which database or copy was counted), `dbsize` (bytes) and `migration`
(version), so counts of several databases can share one script's output."""

from __future__ import annotations

import secrets

from directus_deploy.host.remote import q
from directus_deploy.host.script import Results, emit, pairs, parse_results, records, with_emit

LIVE = "live"  # the label (`of`) of counts read from production's own database


# Each reads a script's output, or its Results when the caller parsed it once already.

def parse_counts(output: str | Results, of: str = LIVE) -> dict[str, int]:
    """Rows per table of the counts labelled `of`."""
    return {r["table"]: int(r["rows"]) for r in _results(output).all("count") if r.get("of") == of}


def parse_migrations(output: str | Results) -> list[str]:
    """The applied Directus migrations `migrations()` reported, in order."""
    return [r["version"] for r in _results(output).all("migration")]


def parse_size(output: str | Results) -> int:
    """The database size `size()` reported (0 when unknown)."""
    found = _results(output).first("dbsize")
    return int(found["bytes"]) if found and found["bytes"].isdigit() else 0


def _results(output: str | Results) -> Results:
    return output if isinstance(output, Results) else parse_results(output)


class Engine:
    name = ""  # sqlite | postgres | mysql
    tools: tuple[str, ...] = ()  # client binaries needed on the host
    dump_file = ""  # file name of the dump inside a backup's db/ folder

    def __init__(self, production):
        self.production = production
        self.env = production.env
        # (settings, secret names) -> shell words running a client in the database's own
        # container; None: the clients run on the host
        self.container = getattr(production, "database_exec", None)
        if self.container:
            self.tools = ()

    def client(self, settings: dict[str, str], command: str) -> str:
        """`command` (a client tool and its quoted arguments) with the connection `settings` in
        its environment, on the host or in the database's container; the secrets are in this
        shell's environment already (secret_env) and pass by name only."""
        if self.container:
            return f"{self.container(settings, tuple(self.secret_env()))} {command}"
        return " ".join(f"{key}={q(value)}" for key, value in settings.items()) + " " + command

    def secret_env(self) -> dict[str, str]:
        """Values the scripts read from stdin (see Remote.run(secret_env=...))."""
        return {}

    def scratch_name(self) -> str:
        return f"{self.database_name()}_scratch_{secrets.token_hex(4)}"

    def database_name(self) -> str:
        return str(self.env.get("DB_DATABASE", "directus"))

    def prelude(self, work_dir: str, must_exist: bool = True) -> str:
        """Shell put once at the start of a script using this engine (e.g. an option file)."""
        return ""

    # Each returns a POSIX shell fragment; `of` labels its count records.
    def dump(self, target: str) -> str:
        raise NotImplementedError

    def counts(self, of: str = LIVE) -> str:
        raise NotImplementedError

    def scratch_restore_counts(self, dump: str, work_dir: str, of: str = LIVE) -> str:
        raise NotImplementedError

    def restore(self, dump: str, work_dir: str) -> str:
        raise NotImplementedError

    # A scratch copy that stays until dropped (the rehearsal runs Directus against it).
    # Its name is fixed, so a copy left by an interrupted run is found and dropped next time.
    def rehearsal_copy(self, dump: str, work_dir: str) -> str:
        """Shell restoring `dump` into the rehearsal's scratch database (replacing a leftover)."""
        raise NotImplementedError

    def rehearsal_settings(self, work_dir: str) -> dict[str, str]:
        """Directus settings (.env lines) pointing at that scratch database instead."""
        raise NotImplementedError

    def rehearsal_secret_settings(self, work_dir: str) -> dict[str, str]:
        """Settings of the copy that hold a password (passed on stdin, never in a script)."""
        return {}

    def rehearsal_counts(self, work_dir: str, of: str = LIVE) -> str:
        raise NotImplementedError

    def rehearsal_query(self, work_dir: str, sql: str) -> str:
        """Shell running `sql` in the rehearsal's scratch database, printing its rows (values
        separated by `|`)."""
        raise NotImplementedError

    def rehearsal_drop(self, work_dir: str) -> str:
        """Shell dropping the scratch database; succeeds when there is none."""
        raise NotImplementedError

    def rehearsal_name(self) -> str:
        return f"{self.database_name()}_scratch_rehearsal"

    def size(self) -> str:
        """Reports `dbsize` (bytes)."""
        return with_emit(emit("dbsize", bytes=f'"$({self.size_query()})"'))

    def size_query(self) -> str:
        """Shell printing the database's size in bytes."""
        raise NotImplementedError

    def migrations(self) -> str:
        """Reports one `migration` (version) per applied Directus migration, in order."""
        return f"{self.migrations_query()} | {records('migration', 'version', separator=chr(9))}"

    def migrations_query(self) -> str:
        """Shell printing the version of each applied Directus migration, one per line, in order."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    @staticmethod
    def fail(message: str) -> str:
        """Shell printing `message` (which may hold values from the host's .env) and failing."""
        return f"{{ printf '%s\\n' {q(message)} >&2; exit 1; }}"

    @staticmethod
    def always(body: str, cleanup: str) -> str:
        """Shell running `body`, then `cleanup` whether body failed or not, keeping body's
        status (a `set -e` script would otherwise stop before the cleanup)."""
        return f"rc=0; {{ {body}; }} || rc=$?; {cleanup}; test $rc = 0"

    @staticmethod
    def count_records(of: str, separator: str) -> str:
        """A filter turning `table<separator>rows` lines into `count` records labelled `of`."""
        return pairs("count", "table", "rows", separator=separator, of=of)


def quote_identifier(name: str, quote: str = '"') -> str:
    """An SQL identifier quoted for PostgreSQL (`"`) or MySQL (`` ` ``): the quote doubled inside."""
    return quote + name.replace(quote, quote * 2) + quote
