"""`fab` as a user meets it: the task list, help, and one-line errors with their exit codes."""

from __future__ import annotations

import pytest

from .helpers import run_fab, write_env

NAMESPACES = ("backup", "deploy", "extensions", "host", "rollback")


def test_list_shows_every_namespace_with_a_description():
    result = run_fab("--list", "--list-format=nested")
    assert result.returncode == 0
    for namespace in NAMESPACES:
        line = next(l for l in result.stdout.splitlines() if l.strip().startswith(namespace + " "))
        assert len(line.split(None, 1)[1]) > 20  # a real one-line description
    assert "release " in result.stdout


def test_every_task_has_a_description_and_help():
    flat = run_fab("--list").stdout
    tasks = [line.split()[0] for line in flat.splitlines()[2:] if line.startswith("  ") and not line.startswith("   ")]
    assert len(tasks) >= 25
    assert all(name == "release" or "." in name for name in tasks)
    for name in ("release", "rollback", "backup.restore", "deploy.adopt"):
        helped = run_fab("-h", name)
        assert helped.returncode == 0 and "Docstring:" in helped.stdout


def test_a_primary_that_is_not_one_of_the_hosts_is_refused(tmp_path):
    settings = {"DEPLOY_HOSTS": "deploy@a.example.com,deploy@b.example.com", "DEPLOY_PRIMARY": "deploy@c.example.com",
                "DIRECTUS_TOKEN": "abcdefghijk"}
    result = run_fab("release", env_file=write_env(tmp_path / "deploy.env", settings))
    assert result.returncode == 2
    assert "DEPLOY_PRIMARY=deploy@c.example.com is not one of DEPLOY_HOSTS" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "settings, says",
    [
        ({"DIRECTUS_TOKEN": "abcdefghijk"}, "DEPLOY_HOSTS is required"),
        ({"DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "abcdefghijk", "DEPLOY_HSOTS": "x"}, "unknown key DEPLOY_HSOTS; did you mean DEPLOY_HOSTS?"),
        ({"DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "abcdefghijk", "KEEP_RELEASES": "-1"}, "KEEP_RELEASES='-1' must be a whole number"),
    ],
)
def test_config_mistakes_are_one_line_and_exit_2(tmp_path, settings, says):
    result = run_fab("host.check", env_file=write_env(tmp_path / "deploy.env", settings))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert says in result.stderr
    assert result.stdout == ""
