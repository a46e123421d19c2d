"""An "existing production install": Directus the way a team runs it today, before this tool.

A folder holding the project's files at v1, `node_modules`, the production `.env`, `uploads/`,
`extensions/` (the project's own and a marketplace install under `extensions/.registry/`), a
database on one of the three engines; started under pm2 and seeded through the REST API.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import yaml

from .content import Api, Seeded, read_content, seed
from .databases import new_database
from .sshd import free_port
from .toolchain import FIXTURE_PROJECT, Toolchain, log

MARKETPLACE_EXTENSION = Path(__file__).parent / "marketplace" / "directus-extension-greeting"
ADMIN_EMAIL = "admin@example.com"


def env_value(value: str) -> str:
    """A value as a .env holds it: bare, or in double quotes when a `#` would end it."""
    return f'"{value}"' if "#" in value else value


class Pm2:
    """pm2 with its own home folder, run with the test bed's Node 22."""

    def __init__(self, home: Path, toolchain: Toolchain):
        self.home = home
        self.toolchain = toolchain

    def env(self) -> dict:
        env = self.toolchain.env()
        env["PM2_HOME"] = str(self.home)
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(["pm2", *args], env=self.env(), capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"pm2 {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
        return result

    def start_directus(self, app: str, folder: Path) -> None:
        self.run("start", str(folder / "node_modules" / "directus" / "cli.js"), "--name", app,
                 "--cwd", str(folder), "--time", "--", "start")

    def processes(self) -> list[dict]:
        return json.loads(self.run("jlist").stdout or "[]")

    def kill(self) -> None:
        if self.home.exists():
            self.run("kill", check=False)


class ExistingInstall:
    """One production: folder, database, pm2 app, port, admin token, seeded content."""

    def __init__(self, root: Path, engine: str, toolchain: Toolchain, pm2: Pm2, name: str | None = None,
                 state: dict | None = None, db_shape: str = "tidy", wal: bool = False,
                 extra_env: dict | None = None, settings_in: str = "dotenv", db_password: str | None = None):
        self.engine = engine
        self.name = name or f"dxd_{engine}_{secrets.token_hex(3)}"
        self.folder = root / self.name
        self.toolchain = toolchain
        self.pm2 = pm2
        self.app = f"directus-{self.name}"
        self.port = free_port()
        self.token = secrets.token_hex(20)
        self.secret = secrets.token_hex(32)
        self.admin_password = secrets.token_urlsafe(12)
        self.database = new_database(engine, self.name, self.folder, db_shape, db_password)
        # where Directus's settings are: dotenv (.env), ecosystem (the env block of a pm2
        # ecosystem file, no .env), yaml (a config.yaml that CONFIG_PATH in that block names)
        self.settings_in = settings_in
        self.extra_env = dict(extra_env or {})  # more settings in its .env (a Redis cache, ...)
        self.wal = wal  # SQLite in write-ahead-log mode: -wal and -shm files beside it while it runs
        self.seeded: Seeded | None = None
        self.registry_folder = str(uuid.uuid4())
        if state:  # an install made by another process (python -m testbed up)
            self.folder = Path(state["folder"])
            self.port, self.token = state["port"], state["token"]
            self.registry_folder = state["registry_folder"]
            self.seeded = Seeded(files=state["seeded_files"], articles=state["articles"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> Api:
        return Api(self.url, self.token)

    def env(self) -> dict[str, str]:
        return {
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PUBLIC_URL": self.url,
            "SECRET": self.secret,
            **self.database.directus_env(),
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": self.admin_password,
            "ADMIN_TOKEN": self.token,
            "STORAGE_LOCATIONS": "local",
            "STORAGE_LOCAL_ROOT": "./uploads",
            "EXTENSIONS_PATH": "./extensions",
            "TELEMETRY": "false",
            # nothing on loopback listens there: telemetry and owner reports go nowhere
            "TELEMETRY_URL": "http://127.0.0.1:9/",
            "PROJECT_OWNER_ENABLED": "false",
            # on a 2-core machine running several Directus at once, the event loop lags: without
            # this, Directus answers 503 "under pressure" to the seeding requests
            "PRESSURE_LIMITER_ENABLED": "false",
            "LOG_LEVEL": "info",
            "LOG_STYLE": "raw",
            **self.extra_env,
        }

    def create(self) -> "ExistingInstall":
        started = time.monotonic()
        self._lay_out_folder()
        self.database.create()
        self.directus("bootstrap")
        if self.wal:
            self.query_db("PRAGMA journal_mode=WAL")  # kept in the file: Directus's connections use it
        self._register_marketplace_extension()
        if self.settings_in == "dotenv":
            self.pm2.start_directus(self.app, self.folder)
        else:
            self.pm2.run("start", str(self.folder / "ecosystem.config.cjs"))
        self.wait_healthy()
        self.seeded = seed(self.api)
        self._snapshot_schema()
        log(f"{self.engine} production {self.name} up on port {self.port} in {time.monotonic() - started:.0f}s")
        return self

    def _lay_out_folder(self) -> None:
        shutil.copytree(FIXTURE_PROJECT / "base", self.folder, ignore=shutil.ignore_patterns("node_modules"))
        # a real directory of hard links: as independent as a real install's, but instant
        subprocess.run(["cp", "-al", str(self.toolchain.node_modules), str(self.folder / "node_modules")], check=True)
        (self.folder / "uploads").mkdir()
        for key, value in self.extra_env.items():  # storage folders the settings name, made like uploads/
            if key.startswith("STORAGE_") and key.endswith("_ROOT"):
                (self.folder / value).mkdir(parents=True, exist_ok=True)
        (self.folder / "snapshots").mkdir()
        registry = self.folder / "extensions" / ".registry" / self.registry_folder
        shutil.copytree(MARKETPLACE_EXTENSION, registry)
        if self.settings_in == "dotenv":
            env_file = self.folder / ".env"
            env_file.write_text("".join(f"{key}={env_value(value)}\n" for key, value in self.env().items()))
            os.chmod(env_file, 0o600)
            return
        if self.settings_in == "yaml":
            config = self.folder / "config.yaml"
            config.write_text(yaml.safe_dump(self.env(), sort_keys=False))
            os.chmod(config, 0o600)
        app = {"name": self.app, "script": "node_modules/directus/cli.js", "args": "start", "cwd": str(self.folder),
               "time": True, "env": self.process_env()}
        ecosystem = self.folder / "ecosystem.config.cjs"
        ecosystem.write_text(f"module.exports = {{ apps: [{json.dumps(app, indent=1)}] }};\n")
        os.chmod(ecosystem, 0o600)

    def process_env(self) -> dict[str, str]:
        """Settings Directus gets from its process environment (the ecosystem file's env block)."""
        if self.settings_in == "ecosystem":
            return self.env()
        if self.settings_in == "yaml":
            return {"CONFIG_PATH": str(self.folder / "config.yaml")}
        return {}

    def directus(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the Directus CLI of this install, as the user would on the host."""
        result = subprocess.run(
            [str(self.toolchain.bin_dir / "node"), "node_modules/directus/cli.js", *args],
            cwd=self.folder, env={**self.toolchain.env(), **self.process_env()}, capture_output=True, text=True,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"directus {' '.join(args)} failed: {(result.stderr or result.stdout)[-800:]}")
        return result

    def wait_healthy(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.api.healthy():
                return
            time.sleep(0.3)
        raise RuntimeError(f"Directus {self.app} did not become healthy on {self.url}; see pm2 logs {self.app}")

    def _register_marketplace_extension(self) -> None:
        """What the Marketplace does on install: a folder in .registry and a row saying so.

        Without the row Directus asks registry.directus.io about the folder, and when that
        fails it registers no extension at all on that boot.
        """
        self.query_db(
            "INSERT INTO directus_extensions (id, enabled, folder, source, bundle) "
            f"VALUES ('{uuid.uuid4()}', {self._true}, '{self.registry_folder}', 'registry', NULL)"
        )

    @property
    def _true(self) -> str:
        return "1" if self.engine in ("sqlite", "mysql") else "true"

    def _snapshot_schema(self) -> None:
        self.directus("schema", "snapshot", "--yes", "--format", "yaml", "snapshots/schema.yaml")

    def query_db(self, sql: str) -> list[list[str]]:
        return self.database.query(sql)

    def content(self) -> dict:
        return read_content(self.api)

    def destroy(self) -> None:
        self.pm2.run("delete", self.app, check=False)
        self.database.drop()
        shutil.rmtree(self.folder, ignore_errors=True)
