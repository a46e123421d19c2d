"""PostgreSQL: `pg_dump -Fc`; restore with pg_restore; exact counts with one SQL statement.

The clients run on the host, or in the database's own container when it runs beside Directus
(production.database_exec): then the server's own pg_dump does the work, whatever the host
has. Either way they read and write files through redirections made on the host."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlparse, urlunparse

from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q

from .base import LIVE, Engine, quote_identifier

# Exact row counts of every table in the current schema, in one statement (no \gexec needed).
_COUNT_SQL = (
    "SELECT table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
    "table_schema, table_name), false, true, '')))[1]::text FROM information_schema.tables "
    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
)
# Empties the schema before a restore, so tables created after the backup go too.
_DROP_ALL_SQL = """DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT viewname FROM pg_views WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP VIEW IF EXISTS %I CASCADE', r.viewname); END LOOP;
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename); END LOOP;
  FOR r IN SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP SEQUENCE IF EXISTS %I CASCADE', r.sequencename); END LOOP;
END $$;"""


class PostgresEngine(Engine):
    name = "postgres"
    tools = ("pg_dump", "pg_restore", "psql")
    dump_file = "database.pgdump"

    def __init__(self, production):
        super().__init__(production)
        env = self.env
        url = str(env.get("DB_CONNECTION_STRING", "")).strip()
        self.url = url
        if url:
            parts = urlparse(url)
            self.host, self.port = parts.hostname or "localhost", str(parts.port or 5432)
            self.user, self.password = unquote(parts.username or ""), unquote(parts.password or "")
            self.database = parts.path.lstrip("/")
        else:
            self.host = str(env.get("DB_HOST", "localhost"))
            self.port = str(env.get("DB_PORT", "5432"))
            self.user = str(env.get("DB_USER", ""))
            self.password = str(env.get("DB_PASSWORD", ""))
            self.database = str(env.get("DB_DATABASE", ""))
        if not (self.database and self.user):
            raise Refused(f"DB_CLIENT=pg needs DB_DATABASE and DB_USER (or DB_CONNECTION_STRING) in {production.env_file}")
        self.connection_string = bool(url)

    def database_name(self) -> str:
        return self.database

    def describe(self) -> str:
        return f"postgres {self.user}@{self.host}:{self.port}/{self.database}"

    def secret_env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password}

    def _client(self, command: str, database: str | None = None) -> str:
        """A client tool with libpq's connection settings; the password is already in
        PGPASSWORD (from stdin)."""
        settings = {"PGHOST": self.host, "PGPORT": self.port, "PGUSER": self.user,
                    "PGDATABASE": database or self.database, "PGCONNECT_TIMEOUT": "10"}
        return self.client(settings, command)

    def _psql(self, sql: str, database: str | None = None) -> str:
        return self._client(f"psql -X -q -At -F '|' -v ON_ERROR_STOP=1 -c {q(sql)}", database)

    def dump(self, target: str) -> str:
        return f"{self._client('pg_dump -Fc --no-password')} > {q(target)}"

    def counts(self, of: str = LIVE, database: str | None = None) -> str:
        return f"{self._psql(_COUNT_SQL, database)} | {self.count_records(of, '|')}"

    def scratch_restore_counts(self, dump: str, work_dir: str, of: str = LIVE) -> str:
        scratch = self.scratch_name()
        create = f"CREATE DATABASE {quote_identifier(scratch)}"
        drop = f"DROP DATABASE IF EXISTS {quote_identifier(scratch)}"
        return (
            f"{{ {self._psql(create)} || "
            f"{self.fail('cannot create a scratch database to verify the dump: the database user needs CREATEDB')}; }} && "
            "{ " + self.always(
                f"{self._restore_into(scratch, dump)} && "
                f"{self.counts(of, scratch)}",
                self._psql(drop),
            ) + "; }"
        )

    def restore(self, dump: str, work_dir: str) -> str:
        sql_file = f"{work_dir}/restore.sql"
        # pg_restore writes SQL; psql runs "drop everything" and that SQL in ONE transaction:
        # if anything fails, the database is exactly as it was before.
        return self.always(
            f"{self._client('pg_restore --no-owner --no-acl -f -')} < {q(dump)} > {q(sql_file)} && "
            f"{self._client(f'psql -X -q -v ON_ERROR_STOP=1 --single-transaction -c {q(_DROP_ALL_SQL)} -f -')} "
            f"< {q(sql_file)} >/dev/null",
            f"rm -f -- {q(sql_file)}",
        )

    def _restore_into(self, database: str, dump: str) -> str:
        return f"{self._client(f'pg_restore --no-owner --no-acl --exit-on-error -d {q(database)}', database)} < {q(dump)}"

    def rehearsal_copy(self, dump: str, work_dir: str) -> str:
        scratch = self.rehearsal_name()
        create = f"CREATE DATABASE {quote_identifier(scratch)}"
        return (
            f"{self.rehearsal_drop(work_dir)} && "
            f"{{ {self._psql(create)} || "
            f"{self.fail('cannot create a scratch database for the rehearsal: the database user needs CREATEDB')}; }} && "
            f"{self._restore_into(scratch, dump)}"
        )

    def rehearsal_settings(self, work_dir: str) -> dict[str, str]:
        return {} if self.connection_string else {"DB_DATABASE": self.rehearsal_name()}

    def rehearsal_secret_settings(self, work_dir: str) -> dict[str, str]:
        if not self.connection_string:
            return {}
        # the same server, user and options; the scratch database instead of production's
        return {"DB_CONNECTION_STRING": urlunparse(urlparse(self.url)._replace(path="/" + quote(self.rehearsal_name())))}

    def rehearsal_counts(self, work_dir: str, of: str = LIVE) -> str:
        return self.counts(of, self.rehearsal_name())

    def rehearsal_query(self, work_dir: str, sql: str) -> str:
        return self._psql(sql, self.rehearsal_name())

    def rehearsal_drop(self, work_dir: str) -> str:
        # FORCE: a scratch Directus killed a moment ago may still hold a connection
        return self._psql(f"DROP DATABASE IF EXISTS {quote_identifier(self.rehearsal_name())} WITH (FORCE)")

    def size_query(self) -> str:
        return self._psql("SELECT pg_database_size(current_database())")

    def migrations_query(self) -> str:
        return self._psql("SELECT version FROM directus_migrations ORDER BY version")
