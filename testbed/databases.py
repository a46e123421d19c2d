"""The three database engines a production can run on, each a real server or file.

PostgreSQL and MariaDB are the servers running on loopback (the set-up script installs and
starts them on a machine that lacks them); each production gets its own database and its own
user with a generated password, as a real one would. Administration goes through the local
socket as the current user (peer/unix_socket auth on Debian), Directus through TCP with the
password.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

ENGINES = ("sqlite", "postgres", "mysql")


def _run(command: list[str], sql: str | None = None) -> str:
    result = subprocess.run(command, input=sql, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()}")
    return result.stdout


class SqliteDatabase:
    """`shape`: where the file is and how DB_FILENAME names it.
    tidy: ./database/data.db (a folder of its own); init: ./data.db, beside package.json, as
    `directus init` writes it in its .env stub; init-absolute: that file by its absolute path,
    as `directus init` proposes it; outside: an absolute path outside the install folder
    (/var/lib/directus/data.db on a real host)."""

    engine = "sqlite"
    SHAPES = ("tidy", "init", "init-absolute", "outside")

    def __init__(self, name: str, install_dir: Path, shape: str = "tidy"):
        self.name = name
        self.shape = shape
        self.path = {"tidy": install_dir / "database" / "data.db",
                     "outside": install_dir.parent / f"{name}-var-lib" / "data.db"}.get(shape, install_dir / "data.db")

    def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def directus_env(self) -> dict[str, str]:
        filename = {"tidy": "./database/data.db", "init": "./data.db"}.get(self.shape, str(self.path))
        return {"DB_CLIENT": "sqlite3", "DB_FILENAME": filename}

    def query(self, sql: str, path: Path | None = None) -> list[list[str]]:
        out = _run(["sqlite3", "-batch", "-separator", "\t", str(path or self.path), sql])
        return [line.split("\t") for line in out.splitlines()]

    def drop(self) -> None:
        if self.shape == "outside":  # otherwise the file goes with the install folder
            shutil.rmtree(self.path.parent, ignore_errors=True)


class PostgresDatabase:
    """`shape`: tidy (DB_HOST, DB_DATABASE...), or connection-string (DB_CONNECTION_STRING alone)."""

    engine = "postgres"
    admin = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    SHAPES = ("tidy", "connection-string")

    def __init__(self, name: str, install_dir: Path, shape: str = "tidy", password: str | None = None):
        self.name = name  # database and role
        self.shape = shape
        self.password = password or secrets.token_hex(16)

    def create(self) -> None:
        self.drop()
        # CREATEDB: the deploy tool verifies each dump by restoring it into a scratch database
        password = self.password.replace("'", "''")
        _run(self.admin, f"CREATE ROLE \"{self.name}\" LOGIN CREATEDB PASSWORD '{password}';"
                         f"CREATE DATABASE \"{self.name}\" OWNER \"{self.name}\";")

    def directus_env(self) -> dict[str, str]:
        if self.shape == "connection-string":
            return {"DB_CLIENT": "pg",
                    "DB_CONNECTION_STRING": f"postgres://{self.name}:{self.password}@127.0.0.1:5432/{self.name}"}
        return {
            "DB_CLIENT": "pg",
            "DB_HOST": "127.0.0.1",
            "DB_PORT": "5432",
            "DB_DATABASE": self.name,
            "DB_USER": self.name,
            "DB_PASSWORD": self.password,
        }

    def query(self, sql: str, database: str | None = None) -> list[list[str]]:
        out = _run(["psql", "-X", "-At", "-F", "\t", "-d", database or self.name, "-c", sql])
        return [line.split("\t") for line in out.splitlines()]

    def drop(self) -> None:
        _run(self.admin, f"DROP DATABASE IF EXISTS \"{self.name}\" WITH (FORCE); DROP ROLE IF EXISTS \"{self.name}\";")


class MysqlDatabase:
    """`shape`: tidy (DB_HOST and DB_PORT), or socket (DB_SOCKET_PATH, the server's Unix socket)."""

    engine = "mysql"
    admin = ["mysql", "-uroot", "--batch"]
    SHAPES = ("tidy", "socket")

    def __init__(self, name: str, install_dir: Path, shape: str = "tidy", password: str | None = None):
        self.name = name
        self.shape = shape
        self.password = password or secrets.token_hex(16)

    def create(self) -> None:
        self.drop()
        # and on <name>_scratch_*: the deploy tool verifies each dump in a scratch database
        scratch = self.name.replace("_", "\\_") + "\\_scratch\\_%"
        grants = "".join(
            f"GRANT ALL PRIVILEGES ON `{self.name}`.* TO '{self.name}'@'{host}';"
            f"GRANT ALL PRIVILEGES ON `{scratch}`.* TO '{self.name}'@'{host}';"
            for host in ("localhost", "127.0.0.1")
        )
        password = self.password.replace("\\", "\\\\").replace("'", "\\'")
        creates = "".join(
            f"CREATE USER '{self.name}'@'{host}' IDENTIFIED BY '{password}';" for host in ("localhost", "127.0.0.1")
        )
        _run(self.admin, f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
                         f"{creates}{grants}FLUSH PRIVILEGES;")

    def directus_env(self) -> dict[str, str]:
        where = {"DB_HOST": "127.0.0.1", "DB_PORT": "3306"}
        if self.shape == "socket":
            where = {"DB_SOCKET_PATH": _run(self.admin + ["--skip-column-names", "-e", "SELECT @@socket"]).strip()}
        return {
            "DB_CLIENT": "mysql",
            **where,
            "DB_DATABASE": self.name,
            "DB_USER": self.name,
            "DB_PASSWORD": self.password,
        }

    def query(self, sql: str, database: str | None = None) -> list[list[str]]:
        out = _run(["mysql", "-uroot", "--batch", "--skip-column-names", database or self.name, "-e", sql])
        return [line.split("\t") for line in out.splitlines()]

    def drop(self) -> None:
        _run(self.admin, f"DROP DATABASE IF EXISTS `{self.name}`;"
                         f"DROP USER IF EXISTS '{self.name}'@'localhost', '{self.name}'@'127.0.0.1';")


def new_database(engine: str, name: str, install_dir: Path, shape: str = "tidy", password: str | None = None):
    """`shape`: how Directus's .env names the database (each class's SHAPES); `password`: the
    database user's, instead of a generated one (the bed's PostgreSQL trusts loopback: it checks
    no password, MariaDB does)."""
    kinds = {"sqlite": SqliteDatabase, "postgres": PostgresDatabase, "mysql": MysqlDatabase}
    if shape not in kinds[engine].SHAPES:
        raise ValueError(f"{engine} has no shape {shape!r}: {kinds[engine].SHAPES}")
    if password is None:
        return kinds[engine](name, install_dir, shape)
    return kinds[engine](name, install_dir, shape, password)
