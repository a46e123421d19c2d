"""The tool as a Directus project uses it: a wheel built from this repository and installed into
a fresh virtualenv, `directus-deploy init` in the project's own repository, and everything after
run as `fab` from that folder (nothing of this repository on the path), against the test bed:
host key trusted, a `directus init` production adopted, a tag released by the steps of the CI
workflow init wrote (run by bash as GitHub's runner runs them, secrets in the environment), and
rolled back from the laptop again."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from testbed.project import clone_project
from testbed.tool import fill_in

from .helpers import REPO, hello, tree_fingerprint

INIT_FILES = ("fabfile.py", ".env.deploy", ".env.deploy.local", "requirements-deploy.txt", ".github/workflows/deploy.yml")


def run(command: list[str], *, cwd: Path, env: dict, timeout: float = 900, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The wheel, and a fresh virtualenv holding it (and its dependencies) and nothing of ours."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"  # a copy: building never writes into the repository
    shutil.copytree(REPO, source, ignore=lambda folder, names: [
        n for n in names if n in (".git", ".venv", ".testbed", "__pycache__", "build") or n.endswith(".egg-info")])
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(source)], cwd=work, env=dict(os.environ))
    wheel = next((work / "dist").glob("directus_deploy-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "directus_deploy/templates/deploy.yml" in names and "directus_deploy/templates/env.deploy" in names
    assert not [n for n in names if n.split("/")[0] in ("testbed", "tests", "bench")]
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=work, env=dict(os.environ))
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=work, env=dict(os.environ))
    return {"wheel": wheel, "venv": venv, "bin": venv / "bin"}


def user_env(installed: dict, home: Path, **extra: str) -> dict:
    """A shell of a user who installed the package: its venv first on PATH, their own HOME,
    nothing of this repository or of the tool's settings from this process."""
    path = [str(installed["bin"])] + [p for p in os.environ["PATH"].split(":") if p and not p.startswith(str(REPO))]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DEPLOY_", "DIRECTUS_", "KEEP_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "PATH": ":".join(path), "HOME": str(home), **extra}


def workflow_steps(project: Path, secrets: dict, tag: str) -> list[tuple[str, dict]]:
    """The shell steps of the workflow init wrote, with GitHub's expressions filled in from the
    environment GitHub would give them: (script, env) pairs. `uses:` steps are the runner's
    (checkout, Python) and are done here by the clone and the venv."""
    workflow = yaml.safe_load((project / ".github/workflows/deploy.yml").read_text())
    expressions = {"github.ref_name": tag, **{f"secrets.{k}": v for k, v in secrets.items()}}

    def fill(value: str) -> str:
        return re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: expressions[m[1]], value)

    return [(step["run"], {k: fill(str(v)) for k, v in step.get("env", {}).items()})
            for step in workflow["jobs"]["release"]["steps"] if "run" in step]


def test_a_project_with_only_the_installed_package_adopts_releases_from_ci_and_rolls_back(bed, installed, tmp_path):
    production = bed.shaped_productions({"package": {"db_shape": "init"}})["package"]
    try:
        laptop = tmp_path / "laptop-home"
        (laptop / ".ssh").mkdir(parents=True)
        (laptop / ".ssh" / "config").write_text(f"Host 127.0.0.1\n  IdentityFile {bed.sshd.client_key}\n  IdentitiesOnly yes\n")
        env = user_env(installed, laptop)
        project = clone_project(bed.project_dir("sqlite"), tmp_path / "my-directus")
        venv_python = str(installed["bin"] / "python")
        where = run([venv_python, "-c", "import directus_deploy; print(directus_deploy.__file__)"], cwd=project, env=env)
        assert where.stdout.startswith(str(installed["venv"])), where.stdout

        # init: the files, the .gitignore line; run twice, the second changes nothing
        first = run(["directus-deploy", "init"], cwd=project, env=env)
        assert all(f"wrote  {name}" in first.stdout for name in INIT_FILES), first.stdout
        before = tree_fingerprint(project, ignore=(".git",))
        second = run(["directus-deploy", "init"], cwd=project, env=env)
        assert "Nothing to write" in second.stdout and tree_fingerprint(project, ignore=(".git",)) == before
        assert (project / "requirements-deploy.txt").read_text().splitlines()[-1] == \
            f"directus-deploy @ {installed['wheel'].as_uri()}"

        # fab from the project folder: its own fabfile, its own configuration; a task of the
        # team's own beside the tool's, as the fabfile's comment says
        with open(project / "fabfile.py", "a") as fabfile:
            fabfile.write("\n\nfrom invoke import task\n\n\n@task\ndef warm_cache(c):\n"
                          "    \"\"\"The team's own: warm the CDN.\"\"\"\n    print('warming')\n\n\nns.add_task(warm_cache)\n")
        listed = run(["fab", "--list"], cwd=project, env=env)
        assert all(task in listed.stdout for task in ("release", "rollback", "deploy.adopt", "backup.db", "host.trust",
                                                      "warm-cache"))
        assert run(["fab", "warm-cache"], cwd=project, env=env).stdout == "warming\n"
        assert "--allow-destructive" in run(["fab", "-h", "release"], cwd=project, env=env).stdout
        unconfigured = run(["fab", "host.check"], cwd=project, env=env, ok=False)
        assert unconfigured.returncode == 2
        assert unconfigured.stderr.strip() == (f"error: {project}/.env.deploy: DEPLOY_HOSTS is required; add "
                                               f"DEPLOY_HOSTS=deploy@prod.example.com to {project}/.env.deploy")
        fill_in(project, {
            "DEPLOY_HOSTS": f"{bed.sshd.user}@127.0.0.1:{bed.sshd.port}", "DEPLOY_PATH": str(tmp_path / "srv"),
            "DEPLOY_NODE_PATH": str(bed.toolchain.bin_dir), "DIRECTUS_PM2_APP": production.app,
            "DIRECTUS_URL": production.url, "DIRECTUS_TOKEN": production.token})
        git = ["git", "-C", str(project)]
        run([*git, "add", "-A"], cwd=project, env=env)
        staged = run([*git, "diff", "--cached", "--name-only"], cwd=project, env=env).stdout.split()
        assert sorted(staged) == sorted(set(INIT_FILES) - {".env.deploy.local"} | {".gitignore"})
        run([*git, "-c", "user.name=Editor", "-c", "user.email=ed@example.com", "commit", "-qm", "deploy with directus-deploy"],
            cwd=project, env=env)

        # the host key: refused while unknown, then trusted after its fingerprint is compared
        asked = run(["fab", "host.trust"], cwd=project, env=env, ok=False)
        fingerprint = re.search(r"--fingerprint=(SHA256:\S+)", asked.stderr)
        assert asked.returncode == 2 and fingerprint, asked.stderr
        run(["fab", "host.trust", f"--fingerprint={fingerprint[1]}"], cwd=project, env=env)
        known_hosts = (laptop / ".ssh" / "known_hosts").read_text()
        assert f"[127.0.0.1]:{bed.sshd.port}" in known_hosts

        adopted = run(["fab", "deploy.adopt", f"--from={production.folder}"], cwd=project, env=env)
        assert hello(production) == "hello from v1"
        content = production.content()

        # CI: a fresh checkout (no .env.deploy.local: git ignores it), the workflow's steps in
        # bash on a runner whose HOME holds nothing, secrets in the environment only
        runner = tmp_path / "runner-home"
        runner.mkdir()
        checkout = clone_project(project, tmp_path / "ci-checkout")
        assert not (checkout / ".env.deploy.local").exists()
        secrets = {"DIRECTUS_TOKEN": production.token, "DEPLOY_SSH_KEY": bed.sshd.client_key.read_text(),
                   "DEPLOY_KNOWN_HOSTS": known_hosts}
        outputs = [adopted.stdout + adopted.stderr]
        for script, step_env in workflow_steps(checkout, secrets, tag="v2"):
            step = run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=checkout,
                       env=user_env(installed, runner, **step_env))
            outputs.append(step.stdout + step.stderr)
        assert "Release complete" in outputs[-1] and hello(production) == "hello from v2"
        assert production.content() == content

        # back on the laptop, from a subfolder of the project: the release CI made is there
        releases = run(["fab", "deploy.releases"], cwd=project / "extensions", env=env)
        assert "v2" in releases.stdout
        rolled = run(["fab", "rollback", "--yes"], cwd=project, env=env)
        outputs.append(rolled.stdout + rolled.stderr)
        assert hello(production) == "hello from v1" and production.content() == content
        assert not [o for o in outputs if production.token in o]  # the token is never printed
    finally:
        production.destroy()
