"""The database engines a Directus production can use, behind one interface.

Each engine builds shell scripts (run on the host by the caller, so several can share one
round trip) for: dump, exact row counts, a restore into a scratch database with its row
counts, a restore over production, the database size, the migrations applied. Credentials come
from the production `.env` on the host and travel only through standard input
(`secret_env`), never on a command line.
"""

from __future__ import annotations

from directus_deploy.core.errors import Refused

from .base import Engine, parse_counts, parse_migrations, parse_size
from .mysql import MysqlEngine
from .postgres import PostgresEngine
from .sqlite import SqliteEngine

ENGINES = {"sqlite3": SqliteEngine, "pg": PostgresEngine, "postgres": PostgresEngine, "mysql": MysqlEngine}


def engine_for(production) -> Engine:
    client = production.db_client
    if client not in ENGINES:
        supported = "sqlite3, pg, mysql"
        raise Refused(f"DB_CLIENT={client or '(unset)'} in {production.env_file} is not supported; supported: {supported}")
    return ENGINES[client](production)


__all__ = ["Engine", "engine_for", "parse_counts", "parse_migrations", "parse_size"]
