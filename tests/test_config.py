"""The configuration contract: fast checks of the parser, no test bed needed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

from directus_deploy.core.config import SECRET_KEYS
from directus_deploy.core.errors import EXIT_REFUSED, ConfigError
from directus_deploy.runtimes import ALL_KEYS, load_config

from .helpers import REPO, write_env

VALID = {"DEPLOY_HOSTS": "deploy@prod.example.com:2222", "DIRECTUS_TOKEN": "s3cret-admin-token"}


def load(tmp_path: Path, settings: dict, environ: dict | None = None):
    path = write_env(tmp_path / "deploy.env", settings)
    return load_config({"DEPLOY_ENV_FILE": str(path), **(environ or {})})


def refused(tmp_path: Path, settings: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, settings)
    assert caught.value.exit_code == EXIT_REFUSED
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_defaults_fill_what_is_not_set(tmp_path):
    config = load(tmp_path, VALID)
    assert config.hosts[0].user == "deploy" and config.hosts[0].port == 2222
    assert config.deploy_path == "/srv/directus"
    assert config.service == "pm2" and config.pm2_app == "directus"
    assert config.directus_url == "http://127.0.0.1:8055"
    assert (config.keep_releases, config.keep_backups) == (5, 10)


def test_missing_required_key_names_it_and_the_fix(tmp_path):
    message = refused(tmp_path, {"DEPLOY_HOSTS": "prod"})
    assert "DIRECTUS_TOKEN is required" in message and "add DIRECTUS_TOKEN=" in message


def test_typo_is_an_unknown_key_with_a_suggestion(tmp_path):
    message = refused(tmp_path, {**VALID, "DEPLOY_HOST": "x"})
    assert "unknown key DEPLOY_HOST" in message and "did you mean DEPLOY_HOSTS?" in message


def test_keys_of_other_tools_are_left_alone(tmp_path):
    assert load(tmp_path, {**VALID, "AWS_REGION": "eu-west-1"}).hosts


@pytest.mark.parametrize(
    "key, value, says",
    [
        ("KEEP_RELEASES", "five", "whole number"),
        ("KEEP_BACKUPS", "0", "whole number"),
        ("DEPLOY_PATH", "srv/directus", "absolute path"),
        ("DEPLOY_PATH", "/srv/../etc", "absolute path"),
        ("DEPLOY_PATH", "/srv/dir$(id)", "absolute path"),
        ("DEPLOY_HOSTS", "deploy@prod:99999", "between 1 and 65535"),
        ("DEPLOY_HOSTS", "prod;rm -rf /", "user@host[:port]"),
        ("DIRECTUS_SERVICE", "docker", "one of pm2, systemd, command"),
        ("DIRECTUS_URL", "127.0.0.1:8055", "http:// or https://"),
        ("DEPLOY_SSH_CONFIG", "/nonexistent/ssh_config", "no such file"),
        ("DEPLOY_SOURCE", "/nonexistent/project", "no such folder"),
        ("DEPLOY_STRATEGY", "rolling", "one of restart, bluegreen"),
        ("DEPLOY_BLUEGREEN_PORTS", "8056", "two different ports"),
        ("DEPLOY_BLUEGREEN_PORTS", "8056,8056", "two different ports"),
        ("DEPLOY_NGINX_UPSTREAM_FILE", "conf.d/up.conf", "absolute path of a file"),
        ("DEPLOY_NGINX_UPSTREAM", "my upstream", "letters, digits"),
    ],
)
def test_malformed_value_names_key_and_shape(tmp_path, key, value, says):
    message = refused(tmp_path, {**VALID, key: value})
    assert message.count(key) >= 1 and says in message


def test_a_malformed_token_is_not_echoed(tmp_path):
    message = refused(tmp_path, {**VALID, "DIRECTUS_TOKEN": "short"})
    assert "DIRECTUS_TOKEN=<hidden>" in message and "short" not in message.split("<hidden>")[0]


def test_command_service_needs_its_command(tmp_path):
    assert "DIRECTUS_RESTART_COMMAND" in refused(tmp_path, {**VALID, "DIRECTUS_SERVICE": "command"})


def test_bluegreen_needs_pm2_and_nginx_in_front(tmp_path):
    bluegreen = {**VALID, "DEPLOY_STRATEGY": "bluegreen"}
    assert "needs DIRECTUS_SERVICE=pm2" in refused(tmp_path, {**bluegreen, "DIRECTUS_SERVICE": "systemd"})
    assert "through nginx" in refused(tmp_path, {**bluegreen, "DIRECTUS_URL": "http://127.0.0.1:8057"})
    config = load(tmp_path, {**bluegreen, "DIRECTUS_URL": "http://127.0.0.1"})
    assert config.strategy == "bluegreen" and config.bluegreen_ports == (8056, 8057)
    assert config.nginx_upstream_file == "/etc/nginx/directus/upstream.conf"  # not in conf.d/: loaded at http level


def test_environment_overrides_the_file(tmp_path):
    config = load(tmp_path, VALID, environ={"DIRECTUS_TOKEN": "from-the-ci-secret"})
    assert config.directus_token == "from-the-ci-secret"


def test_named_env_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config({"DEPLOY_ENV_FILE": str(tmp_path / "missing.env")})


def test_a_line_that_is_not_key_value_is_refused_with_its_line_number(tmp_path):
    path = tmp_path / "deploy.env"
    path.write_text("DEPLOY_HOSTS=prod\nDIRECTUS_TOKEN=abcdefghij\nKEEP_RELEASES 5\n")
    with pytest.raises(ConfigError, match=r"deploy.env:3: not a KEY=value line"):
        load_config({"DEPLOY_ENV_FILE": str(path)})


def test_the_template_init_writes_documents_exactly_the_declared_keys():
    template = REPO / "directus_deploy" / "templates" / "env.deploy"
    mentioned = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", template.read_text(), flags=re.M))
    assert mentioned == {key.name for key in ALL_KEYS}
    # it names no secret value, and with the two required keys given it is a valid configuration
    values = dotenv_values(template)
    assert not any(values.get(name) for name in SECRET_KEYS)
    with pytest.raises(ConfigError, match="DEPLOY_HOSTS is required"):
        load_config({"DEPLOY_ENV_FILE": str(template)})
    assert load_config({"DEPLOY_ENV_FILE": str(template), **VALID}).hosts


def test_no_real_env_file_is_committed():
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert not [p for p in tracked.stdout.splitlines() if Path(p).name.startswith(".env")]


def project(tmp_path: Path, settings: dict, secrets: dict | None = None) -> Path:
    """A project repository with .env.deploy (and .env.deploy.local) at its top."""
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)
    (root / "extensions" / "endpoint").mkdir(parents=True)
    write_env(root / ".env.deploy", settings)
    if secrets is not None:
        write_env(root / ".env.deploy.local", secrets)
    return root


def test_env_deploy_is_found_from_the_project_folder_or_below(tmp_path, monkeypatch):
    root = project(tmp_path, VALID)
    for folder in (root, root / "extensions" / "endpoint"):
        monkeypatch.chdir(folder)
        config = load_config({})
        assert config.env_file == root / ".env.deploy"
        assert config.source == root  # DEPLOY_SOURCE: the repository the file is in


def test_no_file_above_the_repository_is_read(tmp_path, monkeypatch):
    write_env(tmp_path / ".env.deploy", VALID)  # a parent of the repository: another project's
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    with pytest.raises(ConfigError, match=r"DEPLOY_HOSTS is required; add DEPLOY_HOSTS=.* to \.env\.deploy "):
        load_config({})


def test_secrets_file_wins_over_the_committed_file_and_the_environment_over_both(tmp_path, monkeypatch):
    root = project(tmp_path, {**VALID, "DIRECTUS_TOKEN": "", "KEEP_BACKUPS": "3"},
                   secrets={"DIRECTUS_TOKEN": "from-the-local-file", "KEEP_BACKUPS": "4"})
    monkeypatch.chdir(root)
    config = load_config({})
    assert (config.directus_token, config.keep_backups) == ("from-the-local-file", 4)
    assert load_config({"DIRECTUS_TOKEN": "from-ci-secrets"}).directus_token == "from-ci-secrets"
    (root / ".env.deploy.local").write_text("DIRECTUS_TOKEN=\n")  # as init writes it: not filled in yet
    with pytest.raises(ConfigError, match=r"DIRECTUS_TOKEN is required; add DIRECTUS_TOKEN=.* to \S*\.env\.deploy\.local$"):
        load_config({})


def test_a_typo_in_the_secrets_file_is_refused_too(tmp_path, monkeypatch):
    root = project(tmp_path, VALID, secrets={"DIRECTUS_TOKN": "x"})
    monkeypatch.chdir(root)
    with pytest.raises(ConfigError, match=r"\.env\.deploy\.local: unknown key DIRECTUS_TOKN; did you mean DIRECTUS_TOKEN\?"):
        load_config({})


def test_relative_paths_in_a_file_are_relative_to_that_file(tmp_path, monkeypatch):
    root = project(tmp_path, {**VALID, "DEPLOY_SOURCE": "..", "DEPLOY_SSH_CONFIG": "ssh/config"})
    (root / "ssh").mkdir()
    (root / "ssh" / "config").write_text("Host prod\n")
    monkeypatch.chdir(root / "extensions")
    config = load_config({"DEPLOY_ENV_FILE": str(root / ".env.deploy")})
    assert config.source == tmp_path and config.ssh_config == root / "ssh" / "config"
    # from the environment: relative to the folder fab runs in
    assert load_config({"DEPLOY_ENV_FILE": str(root / ".env.deploy"), "DEPLOY_SOURCE": ".."}).source == root
