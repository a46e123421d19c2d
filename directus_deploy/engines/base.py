"""What every engine offers. Scripts print `table<TAB>count` lines for row counts."""

from __future__ import annotations

import secrets

from directus_deploy.host.remote import q

COUNT_MARK = "@@count"  # prefix of row-count lines, so counts can share a script's output


def parse_counts(output: str, mark: str = COUNT_MARK) -> dict[str, int]:
    counts = {}
    for line in output.splitlines():
        if line.startswith(mark + "\t"):
            table, count = line.split("\t", 1)[1].rsplit("\t", 1)
            counts[table] = int(count)
    return counts


class Engine:
    name = ""  # sqlite | postgres | mysql
    tools: tuple[str, ...] = ()  # client binaries needed on the host
    dump_file = ""  # file name of the dump inside a backup's db/ folder

    def __init__(self, production):
        self.production = production
        self.env = production.env

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

    # Each returns a POSIX shell fragment; `mark` labels count lines.
    def dump(self, target: str) -> str:
        raise NotImplementedError

    def counts(self, mark: str = COUNT_MARK) -> str:
        raise NotImplementedError

    def scratch_restore_counts(self, dump: str, work_dir: str, mark: str = COUNT_MARK) -> str:
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

    def rehearsal_counts(self, work_dir: str, mark: str = COUNT_MARK) -> str:
        raise NotImplementedError

    def rehearsal_drop(self, work_dir: str) -> str:
        """Shell dropping the scratch database; succeeds when there is none."""
        raise NotImplementedError

    def rehearsal_name(self) -> str:
        return f"{self.database_name()}_scratch_rehearsal"

    def size(self) -> str:
        """Prints `@@dbsize<TAB>bytes`."""
        raise NotImplementedError

    def migrations(self) -> str:
        """Prints `@@migration<TAB>version` per applied Directus migration."""
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
    def mark_lines(mark: str, separator: str) -> str:
        """A filter turning `table<sep>count` lines into `mark<TAB>table<TAB>count`."""
        # the count is the last field; the name is everything before it (it may hold the separator)
        return (f"awk -F'{separator}' '{{c = $NF; t = substr($0, 1, length($0) - length(c) - 1); "
                f"print \"{mark}\\t\" t \"\\t\" c}}'")


def quote_identifier(name: str, quote: str = '"') -> str:
    """An SQL identifier quoted for PostgreSQL (`"`) or MySQL (`` ` ``): the quote doubled inside."""
    return quote + name.replace(quote, quote * 2) + quote
