"""Helpers for the tests: run `fab` as a user does, open a Session on a test production."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from directus_deploy.core import config as config_module
from directus_deploy.flows.session import Session
from directus_deploy.runtimes import load_config
from testbed.project import clone_project, hook_extension
from testbed.sshd import free_port

REPO = Path(__file__).resolve().parent.parent
FAB = [sys.executable, "-m", "fabric"]

# what releases made by the tests carry
HELLO_V3 = "export default { id: 'hello', handler: (router) => { router.get('/', (_q, res) => res.json({ message: 'hello from v3' })); } };\n"
# the server dies as it starts; CLI commands (schema plan, migrations) are unaffected
CRASHING_HOOK = hook_extension("directus-extension-crash",
                               "export default ({ init }) => { init('app.before', () => { process.exit(1); }); };\n")


def run_fab(*args: str, env_file: Path | None = None, env: dict | None = None, timeout: float = 900):
    """Run the tool as a user does: `fab <task>` from the project folder, in a new process."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(config_module.OWN_PREFIXES)}
    environment.pop("DEPLOY_ENV_FILE", None)
    if env_file is not None:
        environment["DEPLOY_ENV_FILE"] = str(env_file)
    environment.update(env or {})
    return subprocess.run([*FAB, *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)


def session_for(env_file: Path, **kwargs) -> Session:
    return Session(config=load_config({"DEPLOY_ENV_FILE": str(env_file)}), **kwargs)


def write_env(path: Path, settings: dict) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return path


def tree_fingerprint(root: Path, ignore: tuple[str, ...] = ()) -> dict:
    """Every path under `root` with its type, mode, size and sha256 (or link target): two
    fingerprints are equal only if nothing under `root` changed."""
    import hashlib

    found = {}
    if not root.exists():
        return found
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.split("/")[0] in ignore:
            continue
        info = path.lstat()
        if path.is_symlink():
            found[relative] = ("link", os.readlink(path))
        elif path.is_dir():
            found[relative] = ("dir", oct(info.st_mode))
        else:
            found[relative] = ("file", oct(info.st_mode), info.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def fab_ok(*args: str, env_file: Path):
    """`fab` that must succeed; on failure the assertion shows its output's tail."""
    result = run_fab(*args, env_file=env_file)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return result


def one_line(result) -> str:
    """The single `error: ...` line a refused or failed command prints on stderr."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


def hello(production) -> str:
    """What the project's custom endpoint answers: which release serves."""
    return production.api.get("/hello", auth=False)["message"]


def private_setups(bed, made: dict, folder: Path, *, adopt: bool = False, release: str | None = None) -> dict:
    """For each fresh production of `made` ({engine: install}): a private copy of the project
    and a configuration pointing the tool at it, under folder/<engine>; adopted, and released
    to `release`, when asked. {engine: {"production", "env", "project", "srv", "folder"}}."""
    from testbed.project import clone_project

    setups = {}
    for engine, production in made.items():
        project = clone_project(bed.project_dir(production.engine), folder / engine / "project")
        env_file = bed.tool_env(production, folder / engine, DEPLOY_SOURCE=str(project))
        if adopt:
            fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env_file)
        if release:
            fab_ok("release", f"--tag={release}", "--yes", env_file=env_file)
        setups[engine] = {"production": production, "env": env_file, "project": project,
                          "srv": folder / engine / "srv", "folder": folder / engine}
    return setups


def behind_nginx_bluegreen(bed, nginx, folder: Path, engine: str):
    """What `blue_green` yields, for a production of `engine`."""
    production = bed.new_productions((engine,))[engine]
    project = clone_project(bed.project_dir(engine), folder / "project")
    site = production.name
    port = nginx.site(site, production.url)  # how it runs today: nginx -> Directus's port
    upstream = f"{production.name}_directus"
    include = nginx.upstream_file(production.name)
    blue, green = free_port(), free_port()
    env_file = bed.tool_env(production, folder, DEPLOY_SOURCE=str(project), DEPLOY_STRATEGY="bluegreen",
                            DEPLOY_BLUEGREEN_PORTS=f"{blue},{green}", DEPLOY_NGINX_UPSTREAM_FILE=str(include),
                            DEPLOY_NGINX_UPSTREAM=upstream, DEPLOY_NGINX_CONF=str(nginx.conf),
                            DIRECTUS_URL=f"http://127.0.0.1:{port}")
    adopted = fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env_file)
    assert f"127.0.0.1:{production.port}" in include.read_text()  # names what serves today
    assert "point your nginx site" in fab_ok("deploy.upstream", env_file=env_file).stdout, adopted.stdout
    nginx.site(site, f"http://{upstream}", port=port, upstream=(upstream, include))
    production.port = port  # from now on the tests read production as users reach it: through nginx
    yield {"production": production, "env": env_file, "project": project, "url": f"http://127.0.0.1:{port}",
           "include": include, "ports": {"blue": blue, "green": green}, "nginx": nginx, "srv": folder / "srv"}
    bed.pm2.run("delete", f"{production.app}-blue", check=False)
    bed.pm2.run("delete", f"{production.app}-green", check=False)
    production.destroy()
