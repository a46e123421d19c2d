"""MySQL/MariaDB: `mysqldump --single-transaction --routines --triggers`.

The password goes into a 0600 option file written by the shell's `printf` builtin from a value
read on stdin, used with --defaults-extra-file and removed afterwards: never a command line.
When the database runs in a container of its own beside Directus (production.database_exec),
its own client does the work in there, with an option file written the same way inside it from
the password passed by name; dumps and restores still read and write files on the host.
"""

from __future__ import annotations

from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q

from .base import LIVE, Engine, quote_identifier

# Exact counts: build one UNION query from the table list, then run it.
_COUNT_SQL = (
    "SET SESSION group_concat_max_len = 4194304; "
    "SELECT IFNULL(GROUP_CONCAT(CONCAT('SELECT ', QUOTE(table_name), ', COUNT(*) FROM `', "
    "REPLACE(table_name, '`', '``'), '`') ORDER BY table_name SEPARATOR ' UNION ALL '), "
    "'SELECT 1 FROM DUAL WHERE FALSE') INTO @counts FROM information_schema.tables "
    "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'; "
    "PREPARE counts FROM @counts; EXECUTE counts; DEALLOCATE PREPARE counts;"
)
_DUMP_FLAGS = ("--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--no-tablespaces",
               "--default-character-set=utf8mb4")
# Run by `sh` in the database's container, with host, port, user and "mysql" or "dump" as $1-$4
# and the client's arguments after: MariaDB's own names where the image has them (MariaDB 11's
# images have no mysql* commands), else MySQL's.
_IN_CONTAINER = (
    "umask 077; d=$(mktemp -d) || exit 1; trap 'rm -rf -- \"$d\"' EXIT; trap 'exit 130' INT; trap 'exit 143' TERM; "
    "f=\"$d/client.cnf\"; "
    "printf '[client]\\nhost=%s\\nport=%s\\nuser=%s\\npassword=\"%s\"\\n' \"$1\" \"$2\" \"$3\" "
    "\"$MYSQL_OPTION_PASSWORD\" > \"$f\"; "
    "case \"$4\" in dump) t=mariadb-dump; alt=mysqldump;; *) t=mariadb; alt=mysql;; esac; "
    "command -v \"$t\" >/dev/null 2>&1 || t=$alt; shift 4; \"$t\" --defaults-extra-file=\"$f\" \"$@\""
)
_DROP_ALL_SQL = (
    "SET SESSION group_concat_max_len = 4194304; SET FOREIGN_KEY_CHECKS = 0; "
    "SELECT IFNULL(CONCAT('DROP TABLE IF EXISTS ', GROUP_CONCAT(CONCAT('`', REPLACE(table_name, '`', '``'), '`'))), "
    "'DO 0') INTO @drops FROM information_schema.tables WHERE table_schema = DATABASE(); "
    "PREPARE drops FROM @drops; EXECUTE drops; DEALLOCATE PREPARE drops;"
)


class MysqlEngine(Engine):
    name = "mysql"
    tools = ("mysqldump", "mysql", "zstd")
    dump_file = "database.sql.zst"

    def __init__(self, production):
        super().__init__(production)
        env = self.env
        self.host = str(env.get("DB_HOST", "localhost"))
        self.port = str(env.get("DB_PORT", "3306"))
        self.socket = str(env.get("DB_SOCKET_PATH", ""))
        self.user = str(env.get("DB_USER", ""))
        self.password = str(env.get("DB_PASSWORD", ""))
        self.database = str(env.get("DB_DATABASE", ""))
        if any("\n" in value or "\r" in value for value in (self.host, self.port, self.socket, self.user, self.password)):
            raise Refused(f"DB_HOST, DB_PORT, DB_SOCKET_PATH, DB_USER or DB_PASSWORD in {production.env_file} holds a line break")
        if not (self.database and self.user):
            raise Refused(f"DB_CLIENT=mysql needs DB_DATABASE and DB_USER in {production.env_file}")
        if self.container:
            self.tools = ("zstd",)  # the dump is compressed on the host

    def database_name(self) -> str:
        return self.database

    def describe(self) -> str:
        return f"mysql {self.user}@{self.socket or self.host + ':' + self.port}/{self.database}"

    def secret_env(self) -> dict[str, str]:
        # escaped for a double-quoted option-file value
        escaped = self.password.replace("\\", "\\\\").replace('"', '\\"')
        return {"MYSQL_OPTION_PASSWORD": escaped}

    def prelude(self, work_dir: str, must_exist: bool = True) -> str:
        """Shell lines creating $MYCNF (0600, in a private folder of mktemp's: 0700, a name
        nobody can guess) once per script, and removing the folder however the script ends:
        done, failed, interrupted or terminated (none when the client runs in the database's
        container: it writes its own there)."""
        if self.container:
            return ""
        # every value an argument of printf, never part of its format or of the shell text
        where = ("socket=%s\\n", q(self.socket)) if self.socket else ("host=%s\\nport=%s\\n", f"{q(self.host)} {q(self.port)}")
        return (
            # a second prelude in the same script (a teardown before the work) reuses the first
            "if [ -z \"${MYCNF:-}\" ]; then "
            "MYCNF_DIR=$(mktemp -d) && MYCNF=\"$MYCNF_DIR/client.cnf\" && "
            "trap 'rm -rf -- \"$MYCNF_DIR\"' EXIT && trap 'exit 130' INT && trap 'exit 143' TERM && "
            f"(umask 077 && printf '[client]\\n{where[0]}user=%s\\npassword=\"%s\"\\n' {where[1]} {q(self.user)} "
            "\"$MYSQL_OPTION_PASSWORD\" > \"$MYCNF\"); fi && "
        )

    def _no_create(self, purpose: str) -> str:
        return f"cannot create a scratch database {purpose}: the database user needs CREATE on {self.database}_scratch_%"

    def _run(self, kind: str, *words: str) -> str:
        """The client (`mysql`) or the dump tool (`dump`) with the connection's option file and
        the quoted `words`: on the host, or in the database's container."""
        if self.container:
            return self.client({}, f"sh -c {q(_IN_CONTAINER)} sh {q(self.host, self.port, self.user, kind, *words)}")
        tool = "mysqldump" if kind == "dump" else "mysql"
        return f'{tool} --defaults-extra-file="$MYCNF" {q(*words)}'

    def _mysql(self, sql: str, database: str | None = None) -> str:
        return self._run("mysql", "--batch", "--skip-column-names", "-e", sql, database or self.database)

    def dump(self, target: str) -> str:
        raw = target.removesuffix(".zst")
        return (
            f"{self._run('dump', *_DUMP_FLAGS, self.database)} > {q(raw)} && "
            f"zstd -q -T0 --rm -f -o {q(target)} -- {q(raw)}"
        )

    def counts(self, of: str = LIVE, database: str | None = None) -> str:
        return f"{self._mysql(_COUNT_SQL, database)} | {self.count_records(of, chr(92) + 't')}"

    def scratch_restore_counts(self, dump: str, work_dir: str, of: str = LIVE) -> str:
        scratch = self.scratch_name()
        raw = f"{work_dir}/scratch-verify.sql"
        create = f"CREATE DATABASE {quote_identifier(scratch, '`')} CHARACTER SET utf8mb4"
        drop = f"DROP DATABASE IF EXISTS {quote_identifier(scratch, '`')}"
        return (
            f"{{ {self._mysql(create)} || {self.fail(self._no_create('to verify the dump'))}; }} && "
            "{ " + self.always(
                f"zstd -q -d -f -o {q(raw)} -- {q(dump)} && "
                f"{self._run('mysql', scratch)} < {q(raw)} && "
                f"{self.counts(of, scratch)}",
                f"rm -f -- {q(raw)}; {self._mysql(drop)}",
            ) + "; }"
        )

    def restore(self, dump: str, work_dir: str) -> str:
        raw = f"{work_dir}/restore.sql"
        # MySQL DDL is not transactional: the safety backup taken first is the way back.
        return self.always(
            f"zstd -q -d -f -o {q(raw)} -- {q(dump)} && {self._mysql(_DROP_ALL_SQL)} && "
            f"{self._run('mysql', self.database)} < {q(raw)}",
            f"rm -f -- {q(raw)}",
        )

    def rehearsal_copy(self, dump: str, work_dir: str) -> str:
        scratch = self.rehearsal_name()
        raw = f"{work_dir}/rehearsal.sql"
        create = f"CREATE DATABASE {quote_identifier(scratch, '`')} CHARACTER SET utf8mb4"
        return (
            f"{self.rehearsal_drop(work_dir)} && "
            f"{{ {self._mysql(create)} || {self.fail(self._no_create('for the rehearsal'))}; }} && "
            "{ " + self.always(f"zstd -q -d -f -o {q(raw)} -- {q(dump)} && "
                               f"{self._run('mysql', scratch)} < {q(raw)}", f"rm -f -- {q(raw)}") + "; }"
        )

    def rehearsal_settings(self, work_dir: str) -> dict[str, str]:
        return {"DB_DATABASE": self.rehearsal_name()}

    def rehearsal_counts(self, work_dir: str, of: str = LIVE) -> str:
        return self.counts(of, self.rehearsal_name())

    def rehearsal_query(self, work_dir: str, sql: str) -> str:
        return f"{self._mysql(sql, self.rehearsal_name())} | tr '\\t' '|'"

    def rehearsal_drop(self, work_dir: str) -> str:
        return self._mysql(f"DROP DATABASE IF EXISTS {quote_identifier(self.rehearsal_name(), '`')}")

    def size_query(self) -> str:
        return self._mysql("SELECT IFNULL(SUM(data_length + index_length), 0) FROM information_schema.tables "
                           "WHERE table_schema = DATABASE()")

    def migrations_query(self) -> str:
        return self._mysql("SELECT version FROM directus_migrations ORDER BY version")
