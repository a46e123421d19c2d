"""`directus-deploy init`: what it writes into a project, that it never overwrites, that a second
run changes nothing, and the CI workflow's shape. Fast: a git repository in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from directus_deploy import cli
from directus_deploy.core import scaffold
from directus_deploy.runtimes import load_config
from tests.helpers import tree_fingerprint

FILES = {"fabfile.py", ".env.deploy", ".env.deploy.local", "requirements-deploy.txt", ".github/workflows/deploy.yml"}


def git(project, *args):
    return subprocess.run(["git", "-C", str(project), *args], capture_output=True, text=True)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "my-directus"
    folder.mkdir()
    git(folder, "init", "-q")
    (folder / "package.json").write_text('{"dependencies": {"directus": "12.4.0"}}\n')
    (folder / ".gitignore").write_text("node_modules\n.env\n")
    return folder


def test_init_writes_the_project_files_and_ignores_only_the_secrets(project, capsys):
    assert cli.main(["init", str(project)]) == 0
    out = capsys.readouterr().out
    assert {str(p.relative_to(project)) for p in project.rglob("*")
            if p.is_file() and p.relative_to(project).parts[0] != ".git"} == FILES | {"package.json", ".gitignore"}
    for name in FILES:
        assert f"wrote  {name}" in out
    assert (project / ".env.deploy.local").stat().st_mode & 0o777 == 0o600
    # git keeps the configuration and ignores the secrets; the user's own lines are still there
    assert git(project, "check-ignore", "-q", ".env.deploy.local").returncode == 0
    assert git(project, "check-ignore", "-q", ".env.deploy").returncode == 1
    assert (project / ".gitignore").read_text().startswith("node_modules\n.env\n")
    # the fabfile is two lines: a comment and the import of the collection
    fabfile = (project / "fabfile.py").read_text().splitlines()
    assert len(fabfile) == 2 and fabfile[1].startswith("from directus_deploy.tasks import ns")
    compile("\n".join(fabfile), "fabfile.py", "exec")


def test_the_configuration_written_is_read_from_the_project_once_filled_in(project, monkeypatch):
    scaffold.init(project, say=lambda line: None)
    config = (project / ".env.deploy").read_text().replace("\nDEPLOY_HOSTS=\n", "\nDEPLOY_HOSTS=deploy@prod.example.com\n")
    (project / ".env.deploy").write_text(config)
    (project / ".env.deploy.local").write_text("DIRECTUS_TOKEN=an-admin-static-token\n")
    monkeypatch.chdir(project)
    loaded = load_config({})
    assert loaded.env_file == project / ".env.deploy" and loaded.source == project
    assert loaded.directus_token == "an-admin-static-token" and str(loaded.hosts[0]) == "deploy@prod.example.com"


def test_a_second_run_changes_nothing_and_no_file_is_overwritten(project, capsys):
    (project / "fabfile.py").write_text("# the team's own fabfile\n")
    assert cli.main(["init", str(project)]) == 0
    before = tree_fingerprint(project, ignore=(".git",))
    assert cli.main(["init", str(project)]) == 0
    assert tree_fingerprint(project, ignore=(".git",)) == before
    out = capsys.readouterr().out
    assert "kept   fabfile.py" in out and "Nothing to write" in out
    assert (project / "fabfile.py").read_text() == "# the team's own fabfile\n"
    assert (project / ".gitignore").read_text().count(".env.deploy.local") == 1


def test_a_gitignore_that_ignores_every_env_file_keeps_the_configuration_versioned(project):
    (project / ".gitignore").write_text(".env*\n")
    scaffold.init(project, say=lambda line: None)
    assert git(project, "check-ignore", "-q", ".env.deploy").returncode == 1
    assert git(project, "check-ignore", "-q", ".env.deploy.local").returncode == 0
    git(project, "add", "-A")
    staged = git(project, "diff", "--cached", "--name-only").stdout.split()
    assert ".env.deploy" in staged and ".env.deploy.local" not in staged


def test_a_project_whose_folder_shows_compose_gets_that_runtime(project):
    (project / "docker-compose.yml").write_text("services: {}\n")
    from directus_deploy.runtimes import found_in

    assert found_in(project) == ("compose", "docker-compose.yml")
    scaffold.init(project, found_in(project), say=lambda line: None)
    assert "\nDIRECTUS_SERVICE=compose\n" in (project / ".env.deploy").read_text()


def test_the_workflow_releases_the_pushed_tag_with_secrets_from_the_environment(project):
    scaffold.init(project, say=lambda line: None)
    text = (project / ".github/workflows/deploy.yml").read_text()
    workflow = yaml.safe_load(text)
    assert workflow[True]["push"]["tags"] == ["v*"]  # `on:` is YAML 1.1's true
    job = workflow["jobs"]["release"]
    runs = [step for step in job["steps"] if "run" in step]
    release = runs[-1]
    assert release["run"] == 'fab release --tag="$TAG" --yes'
    assert release["env"] == {"DIRECTUS_TOKEN": "${{ secrets.DIRECTUS_TOKEN }}", "TAG": "${{ github.ref_name }}"}
    # nothing of GitHub's expressions reaches a shell line; the host key is pinned, never scanned
    assert not any("${{" in step["run"] for step in runs)
    assert "ssh-keyscan" not in "".join(step["run"] for step in runs)
    assert "requirements-deploy.txt" in runs[0]["run"]
    assert workflow["concurrency"]["cancel-in-progress"] is False


class FakeDistribution:
    def __init__(self, direct_url):
        self.version = "0.9.0"
        self._direct_url = direct_url

    def read_text(self, name):
        return json.dumps(self._direct_url) if name == "direct_url.json" and self._direct_url else None


@pytest.mark.parametrize("direct_url, pin, warns", [
    (None, "directus-deploy==0.9.0", False),
    ({"url": "https://git.example.com/ops/directus-deploy.git",
      "vcs_info": {"vcs": "git", "commit_id": "a" * 40, "requested_revision": "v0.9.0"}},
     f"directus-deploy @ git+https://git.example.com/ops/directus-deploy.git@{'a' * 40}", False),
    ({"url": "file:///home/me/directus_deploy-0.9.0-py3-none-any.whl", "archive_info": {}},
     "directus-deploy @ file:///home/me/directus_deploy-0.9.0-py3-none-any.whl", True),
])
def test_the_pin_is_what_is_installed(monkeypatch, direct_url, pin, warns):
    monkeypatch.setattr(scaffold.metadata, "distribution", lambda name: FakeDistribution(direct_url))
    line, warning = scaffold.requirement()
    assert line == pin and bool(warning) == warns


def test_init_in_a_missing_folder_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([sys.executable, "-m", "directus_deploy.cli", "init", str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip() == f"error: {tmp_path / 'nope'} is not a folder"
    assert not (tmp_path / "nope").exists()


def test_version_is_the_package_metadata(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"directus-deploy {scaffold.version()}"
    assert scaffold.version() != "unknown"
