"""MySQL/MariaDB: `mysqldump --single-transaction --routines --triggers`.

The password goes into a 0600 option file written by the shell's `printf` builtin from a value
read on stdin, used with --defaults-extra-file and removed afterwards: never a command line.
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
            raise Refused(f"DB_HOST={self.host}: a MySQL or MariaDB database run beside Directus in its own container "
                          "is not supported yet (PostgreSQL is)")

    def database_name(self) -> str:
        return self.database

    def describe(self) -> str:
        return f"mysql {self.user}@{self.socket or self.host + ':' + self.port}/{self.database}"

    def secret_env(self) -> dict[str, str]:
        # escaped for a double-quoted option-file value
        escaped = self.password.replace("\\", "\\\\").replace('"', '\\"')
        return {"MYSQL_OPTION_PASSWORD": escaped}

    def prelude(self, work_dir: str, must_exist: bool = True) -> str:
        """Shell lines creating $MYCNF (0600) and removing it when the script ends."""
        # every value an argument of printf, never part of its format or of the shell text
        where = ("socket=%s\\n", q(self.socket)) if self.socket else ("host=%s\\nport=%s\\n", f"{q(self.host)} {q(self.port)}")
        return (
            "MYCNF=$(umask 077 && mktemp) && "
            "trap 'rm -f -- \"$MYCNF\"' EXIT && "
            f"printf '[client]\\n{where[0]}user=%s\\npassword=\"%s\"\\n' {where[1]} {q(self.user)} "
            "\"$MYSQL_OPTION_PASSWORD\" > \"$MYCNF\" && "
        )

    def _no_create(self, purpose: str) -> str:
        return f"cannot create a scratch database {purpose}: the database user needs CREATE on {self.database}_scratch_%"

    def _mysql(self, sql: str, database: str | None = None) -> str:
        return (
            f'mysql --defaults-extra-file="$MYCNF" --batch --skip-column-names '
            f"-e {q(sql)} {q(database or self.database)}"
        )

    def dump(self, target: str) -> str:
        raw = target.removesuffix(".zst")
        return (
            f'mysqldump --defaults-extra-file="$MYCNF" --single-transaction --routines --triggers --events '
            f"--hex-blob --no-tablespaces --default-character-set=utf8mb4 --result-file={q(raw)} {q(self.database)} && "
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
                f'mysql --defaults-extra-file="$MYCNF" {q(scratch)} < {q(raw)} && '
                f"{self.counts(of, scratch)}",
                f"rm -f -- {q(raw)}; {self._mysql(drop)}",
            ) + "; }"
        )

    def restore(self, dump: str, work_dir: str) -> str:
        raw = f"{work_dir}/restore.sql"
        # MySQL DDL is not transactional: the safety backup taken first is the way back.
        return self.always(
            f"zstd -q -d -f -o {q(raw)} -- {q(dump)} && {self._mysql(_DROP_ALL_SQL)} && "
            f'mysql --defaults-extra-file="$MYCNF" {q(self.database)} < {q(raw)}',
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
                               f'mysql --defaults-extra-file="$MYCNF" {q(scratch)} < {q(raw)}', f"rm -f -- {q(raw)}") + "; }"
        )

    def rehearsal_settings(self, work_dir: str) -> dict[str, str]:
        return {"DB_DATABASE": self.rehearsal_name()}

    def rehearsal_counts(self, work_dir: str, of: str = LIVE) -> str:
        return self.counts(of, self.rehearsal_name())

    def rehearsal_drop(self, work_dir: str) -> str:
        return self._mysql(f"DROP DATABASE IF EXISTS {quote_identifier(self.rehearsal_name(), '`')}")

    def size_query(self) -> str:
        return self._mysql("SELECT IFNULL(SUM(data_length + index_length), 0) FROM information_schema.tables "
                           "WHERE table_schema = DATABASE()")

    def migrations_query(self) -> str:
        return self._mysql("SELECT version FROM directus_migrations ORDER BY version")
