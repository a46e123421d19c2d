"""Pure plans without a host: Directus's schema plan and error lines, the .env written on adoption
(process settings and JSON/YAML settings kept, JavaScript refused), the blue/green instance set,
and configuration details (hosts, the primary, the secrets never printed)."""

from __future__ import annotations

import pytest

from directus_deploy.core.errors import ConfigError, Refused
from directus_deploy.flows.adoption_plan import Rewrite, adopted_env_text
from directus_deploy.flows.production_env import parse
from directus_deploy.flows.schema import errors_in, parse_plan
from directus_deploy.runtimes import instances, load_config
from directus_deploy.state.settings import Settings

from ..helpers import write_env

VALID = {"DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "s3cret-admin-token"}


def config_for(tmp_path, **settings):
    return load_config({"DEPLOY_ENV_FILE": str(write_env(tmp_path / "deploy.env", {**VALID, **settings}))})


# -- schema ---------------------------------------------------------------------------------

def test_a_database_without_directus_is_not_installed():
    plan = parse_plan("[12:00:00] ERROR: Directus isn't installed on this database.\n")
    assert not plan.installed and plan.empty


def test_changes_outside_a_section_or_not_indented_are_ignored():
    plan = parse_plan("  - Delete nothing\nCollections:\n- Delete flat\n  - Create posts\nSystem Fields:\n"
                      "  - Update directus_users.theme\n")
    assert plan.changes == ["Create collection posts", "Update system field directus_users.theme"]
    assert plan.deletions == [] and not plan.empty


def test_error_lines_are_found_in_text_and_json_logs():
    output = ('[12:00] INFO: ok\n[12:01] ERROR: relation "x" does not exist\n{"level":50,"msg":"boom"}\n'
              "FATAL crash\nno errors here: terror\n")
    assert errors_in(output) == ['[12:01] ERROR: relation "x" does not exist', '{"level":50,"msg":"boom"}', "FATAL crash"]
    assert errors_in('{"level":30}\n') == []


# -- the adopted .env -------------------------------------------------------------------------

def settings(fmt, env, process=None, file_keys=None):
    return Settings(env=env, config_path=f"/srv/app/config.{fmt}", format=fmt, from_process=process or {},
                    file_keys=set(env) if file_keys is None else file_keys)


def test_an_install_without_rewrites_or_process_settings_moves_its_env_as_it_is():
    assert adopted_env_text(settings("dotenv", {"PORT": "1"}), "PORT=1\n", []) is None


def test_process_only_settings_are_written_into_the_adopted_env_and_read_back():
    found = settings("dotenv", {"PORT": "1", "DB_PASSWORD": "p w'd", "LOG_LEVEL": "warn"},
                     process={"DB_PASSWORD": "p w'd", "LOG_LEVEL": "warn", "CONFIG_PATH": "/x"}, file_keys={"PORT"})
    text = adopted_env_text(found, "# mine\nPORT=1\n", [])
    assert text.startswith("# mine\nPORT=1\n")
    assert parse(text) == {"PORT": "1", "DB_PASSWORD": "p w'd", "LOG_LEVEL": "warn"}


def test_rewrites_apply_to_the_file_and_to_process_settings():
    rewrite = Rewrite("DB_FILENAME", "/srv/app/data.db", "./database/data.db", "why")
    in_file = adopted_env_text(settings("dotenv", {"DB_FILENAME": "/srv/app/data.db"}), "DB_FILENAME=/srv/app/data.db\n",
                               [rewrite])
    assert parse(in_file) == {"DB_FILENAME": "./database/data.db"}
    in_process = adopted_env_text(settings("dotenv", {"DB_FILENAME": "/srv/app/data.db"},
                                           process={"DB_FILENAME": "/srv/app/data.db"}, file_keys=set()), "", [rewrite])
    assert parse(in_process) == {"DB_FILENAME": "./database/data.db"}


def test_json_or_yaml_settings_become_a_dotenv():
    found = settings("json", {"PORT": "8055", "CORS_ORIGIN": 'json:["a b"]', "CONFIG_PATH": "/srv/app/config.json"})
    text = adopted_env_text(found, None, [])
    assert text.startswith("# Directus's settings, written by directus-deploy adopt from /srv/app/config.json")
    assert parse(text) == {"PORT": "8055", "CORS_ORIGIN": 'json:["a b"]'}


def test_a_javascript_configuration_is_refused():
    with pytest.raises(Refused, match="JavaScript"):
        adopted_env_text(settings("js", {"PORT": "1"}), None, [])


# -- instances and configuration -------------------------------------------------------------

def test_every_instance_is_the_plain_one_or_all_three(tmp_path):
    assert [i.name for i in instances.every_instance(config_for(tmp_path))] == ["plain"]
    bluegreen = config_for(tmp_path, DEPLOY_STRATEGY="bluegreen", DIRECTUS_URL="http://127.0.0.1",
                           DIRECTUS_PM2_APP="site")
    every = instances.every_instance(bluegreen)
    assert [(i.name, i.app, i.port) for i in every] == [("plain", "site", None), ("blue", "site-blue", 8056),
                                                         ("green", "site-green", 8057)]
    assert str(every[1]) == "blue (:8056)" and every[1].url == "http://127.0.0.1:8056" and str(every[0]) == "pm2 app site"


def test_hosts_keep_user_and_port_and_the_primary_is_chosen(tmp_path):
    config = config_for(tmp_path, DEPLOY_HOSTS="deploy@a.example.com:2222, b.example.com",
                        DEPLOY_PRIMARY="b.example.com")
    assert [str(h) for h in config.hosts] == ["deploy@a.example.com:2222", "b.example.com"]
    assert str(config.primary_host) == "b.example.com"
    assert str(config_for(tmp_path, DEPLOY_HOSTS="a,b").primary_host) == "a"


@pytest.mark.parametrize("settings, says", [
    ({"DEPLOY_HOSTS": "a,a"}, "listed twice"),
    ({"DEPLOY_HOSTS": "a,b", "DEPLOY_PRIMARY": "c"}, "DEPLOY_PRIMARY=c is not one of DEPLOY_HOSTS"),
    ({"DEPLOY_REHEARSE": "sometimes"}, "never, changes, always"),
    ({"DEPLOY_DRAIN_SECONDS": "-1"}, "whole number"),
    ({"DEPLOY_NODE_PATH": "bin"}, "absolute path"),
    ({"DIRECTUS_DEV_TOKEN": "has space in it"}, "DIRECTUS_DEV_TOKEN=<hidden>"),
])
def test_more_malformed_settings_are_refused(tmp_path, settings, says):
    with pytest.raises(ConfigError, match=says):
        config_for(tmp_path, **settings)


def test_a_restart_command_from_the_environment_must_be_one_line(tmp_path):
    path = write_env(tmp_path / "deploy.env", {**VALID, "DIRECTUS_SERVICE": "command"})
    with pytest.raises(ConfigError, match="DIRECTUS_RESTART_COMMAND=.* must be one line"):
        load_config({"DEPLOY_ENV_FILE": str(path), "DIRECTUS_RESTART_COMMAND": "restart\nrm -rf /"})


def test_the_tokens_are_the_secrets_and_trailing_slashes_go(tmp_path):
    config = config_for(tmp_path, DIRECTUS_DEV_TOKEN="dev-token-123", DIRECTUS_URL="https://cms.example.com/",
                        DEPLOY_PATH="/srv/site/")
    assert config.secrets == ("s3cret-admin-token", "dev-token-123")
    assert config.directus_url == "https://cms.example.com" and config.deploy_path == "/srv/site"
