"""The whole test bed: sshd, toolchain, pm2, one seeded production per engine, projects.

`TestBed(root).up()` builds it; its state is written to `<root>/testbed.json`, so the pytest
fixtures, the demo and a person at a shell (`python -m testbed up`) all use the same thing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .databases import ENGINES
from .production import ExistingInstall, Pm2
from .project import make_project_repo
from .sshd import ALIAS, SshServer
from .toolchain import Toolchain, log

PASSED_TO_HOST = ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
                  "https_proxy", "http_proxy", "no_proxy", "npm_config_registry")


class TestBed:
    __test__ = False  # not a pytest test class

    def __init__(self, root: Path, engines: tuple[str, ...] = ENGINES, sqlite_shape: str = "tidy"):
        self.root = Path(root).resolve()
        self.engines = tuple(engines)
        self.sqlite_shape = sqlite_shape  # of the bed's own SQLite production
        self.toolchain = Toolchain()
        self.pm2 = Pm2(self.root / "pm2", self.toolchain)
        self.sshd = SshServer(self.root / "ssh", self.session_env())
        self.productions: dict[str, ExistingInstall] = {}
        self.timings: dict[str, float] = {}

    def session_env(self) -> dict[str, str]:
        """The login environment of the test host's SSH sessions (a real host's profile): pm2's
        home, the Node headers, and this machine's own certificate and proxy settings, so npm
        on the "host" reaches the registry the way it does here."""
        env = {"PM2_HOME": str(self.root / "pm2"), "npm_config_nodedir": str(self.toolchain.node_home)}
        for name in PASSED_TO_HOST:
            if os.environ.get(name):
                env[name] = os.environ[name]
        return env

    # -- building ---------------------------------------------------------------------------

    def up(self) -> "TestBed":
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.toolchain.ensure_directus()
        self.timings["toolchain"] = time.monotonic() - started
        self.sshd.start()
        self.pm2.run("ping")  # start the daemon once, before parallel starts race to do it
        mark = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(self.engines)) as pool:
            made = list(pool.map(lambda engine: self._production(
                engine, **({"db_shape": self.sqlite_shape} if engine == "sqlite" else {})), self.engines))
        self.productions = dict(zip(self.engines, made))
        self.timings["productions"] = time.monotonic() - mark
        for engine, production in self.productions.items():
            make_project_repo(self.project_dir(engine), production.folder / "snapshots" / "schema.yaml")
            self.write_deploy_env(engine)
        self.timings["total"] = time.monotonic() - started
        self.save()
        log(f"test bed up in {self.timings['total']:.0f}s (toolchain {self.timings['toolchain']:.0f}s, "
            f"productions {self.timings['productions']:.0f}s)")
        return self

    def _production(self, engine: str, **shape) -> ExistingInstall:
        return ExistingInstall(self.root / "installs", engine, self.toolchain, self.pm2, **shape).create()

    def new_productions(self, engines=None) -> dict[str, ExistingInstall]:
        """Fresh, seeded productions (made in parallel) for tests that change or break them."""
        engines = tuple(engines or self.engines)
        with ThreadPoolExecutor(max_workers=len(engines)) as pool:
            return dict(zip(engines, pool.map(self._production, engines)))

    def shaped_productions(self, shapes: dict[str, dict]) -> dict[str, ExistingInstall]:
        """Fresh productions laid out as users have them, made in parallel: {name: ExistingInstall}
        from {name: {"engine": ..., "db_shape": ..., "wal": ..., "extra_env": {...}}}."""
        def make(shape: dict) -> ExistingInstall:
            options = dict(shape)
            return self._production(options.pop("engine", "sqlite"), **options)

        with ThreadPoolExecutor(max_workers=3) as pool:  # more at once only queue on a small machine
            return dict(zip(shapes, pool.map(make, shapes.values())))

    def tool_env(self, production: ExistingInstall, folder: Path, **overrides: str) -> Path:
        """A configuration file pointing the tool at `production`, laid out under `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        settings = {**self.deploy_settings(production.engine, production), "DEPLOY_PATH": str(folder / "srv"),
                    **overrides}
        path = folder / "deploy.env"
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return path

    @classmethod
    def attach(cls, root: Path) -> "TestBed":
        """The bed another process started and left running (python -m testbed up)."""
        state = json.loads((Path(root) / "testbed.json").read_text())
        bed = cls(Path(state["root"]), tuple(state["productions"]))
        bed.sshd.port = state["ssh_port"]
        bed.timings = state["timings"]
        for engine, entry in state["productions"].items():
            bed.productions[engine] = ExistingInstall(
                bed.root / "installs", engine, bed.toolchain, bed.pm2, name=entry["name"], state=entry
            )
        return bed

    # -- what the tool is pointed at ---------------------------------------------------------

    def project_dir(self, engine: str) -> Path:
        return self.root / "projects" / engine

    def deploy_path(self, engine: str) -> Path:
        return self.root / "hosts" / engine

    def env_file(self, engine: str) -> Path:
        return self.root / "config" / f"{engine}.env"

    def deploy_settings(self, engine: str, production: ExistingInstall | None = None) -> dict[str, str]:
        production = production or self.productions[engine]
        return {
            "DEPLOY_HOSTS": ALIAS,
            "DEPLOY_SSH_CONFIG": str(self.sshd.ssh_config),
            "DEPLOY_PATH": str(self.deploy_path(engine)),
            "DEPLOY_SOURCE": str(self.project_dir(engine)),
            "DEPLOY_NODE_PATH": str(self.toolchain.bin_dir),
            "DIRECTUS_SERVICE": "pm2",
            "DIRECTUS_PM2_APP": production.app,
            "DIRECTUS_URL": production.url,
            "DIRECTUS_TOKEN": production.token,
        }

    def write_deploy_env(self, engine: str) -> Path:
        path = self.env_file(engine)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"# the tool's configuration for the {engine} test production\n"]
        lines += [f"{key}={value}\n" for key, value in self.deploy_settings(engine).items()]
        path.write_text("".join(lines))
        path.chmod(0o600)
        return path

    # -- state, for other processes ----------------------------------------------------------

    def save(self) -> None:
        state = {
            "root": str(self.root),
            "ssh_port": self.sshd.port,
            "timings": self.timings,
            "productions": {
                engine: {
                    "name": p.name, "folder": str(p.folder), "app": p.app, "port": p.port,
                    "url": p.url, "token": p.token, "registry_folder": p.registry_folder,
                    "seeded_files": p.seeded.files if p.seeded else {},
                    "articles": p.seeded.articles if p.seeded else 0,
                    "env_file": str(self.env_file(engine)),
                }
                for engine, p in self.productions.items()
            },
        }
        path = self.root / "testbed.json"
        path.write_text(json.dumps(state, indent=2))
        path.chmod(0o600)

    def down(self) -> None:
        for production in self.productions.values():
            production.database.drop()
        self.pm2.kill()
        self.sshd.stop()

    def destroy(self) -> None:
        self.down()
        shutil.rmtree(self.root, ignore_errors=True)
