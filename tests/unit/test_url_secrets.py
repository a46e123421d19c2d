"""core.url_secrets: the password inside a URL-shaped value is a secret whatever the key, masked
in what config.diff prints and scrubbed from output and errors; the rest of the URL stays shown."""

from __future__ import annotations

import pytest

from directus_deploy.core.errors import ConfigError, Refused
from directus_deploy.core.url_secrets import masked, secrets_in
from directus_deploy.flows.production_env import Change, describe
from directus_deploy.flows.session import open_session
from directus_deploy.runtimes import load_config

from ..helpers import write_env


@pytest.mark.parametrize("value, shown, secrets", [
    ("redis://:s3cret-pw@127.0.0.1:6379", "redis://:***@127.0.0.1:6379", ["s3cret-pw"]),
    ("postgres://directus:p%40ss@db:5432/directus", "postgres://directus:***@db:5432/directus", ["p%40ss", "p@ss"]),
    ("https://ghp_token1234@git.example.com/x.git", "https://***@git.example.com/x.git", ["ghp_token1234"]),
    ("rediss://u:pa:ss@w@h:1/0", "rediss://u:***@h:1/0", ["pa:ss@w"]),  # to the last @ of the host part
    ("redis://:a@h1:1,redis://:b@h2:2", "redis://:***@h1:1,redis://:***@h2:2", ["a", "b"]),
    ('json:[{"url":"amqp://u:pw1@mq/v"}]', 'json:[{"url":"amqp://u:***@mq/v"}]', ["pw1"]),
    ("redis://h:6379", "redis://h:6379", []),
    ("redis://user@h", "redis://***@h", ["user"]),
    ("https://example.com/@someone", "https://example.com/@someone", []),  # an @ in the path
    ("admin@example.com", "admin@example.com", []),
])
def test_the_password_of_a_url_is_found_and_masked(value, shown, secrets):
    assert masked(value) == shown
    assert secrets_in(value) == secrets


def test_config_diff_masks_url_passwords_of_any_key():
    rows = describe([Change("CACHE_REDIS", "change", "redis://:old-pw@h:6379", "redis://:new-pw@h:6379"),
                     Change("AUDIT_URL", "host-only", "https://u:kept-pw@h/x", "https://u:kept-pw@h/x")])
    printed = str(rows)
    assert "old-pw" not in printed and "new-pw" not in printed and "kept-pw" not in printed
    assert "redis://:***@h:6379" in printed and "https://u:***@h/x" in printed


def test_a_configuration_error_never_quotes_a_url_password(tmp_path, monkeypatch):
    env = write_env(tmp_path / "deploy.env", {"DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "t0ken-value",
                                              "DIRECTUS_URL": "https://gate:basic-pw@cms.example.com"})
    monkeypatch.setenv("DEPLOY_ENV_FILE", str(env))
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert "basic-pw" not in str(caught.value) and "https://gate:***@cms.example.com" in str(caught.value)


def test_an_error_quoting_a_secret_of_the_session_is_scrubbed(tmp_path, monkeypatch):
    env = write_env(tmp_path / "deploy.env", {"DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "t0ken-value"})
    monkeypatch.setenv("DEPLOY_ENV_FILE", str(env))
    with pytest.raises(Refused) as caught:
        with open_session():
            raise Refused("cannot reach Directus with t0ken-value")
    assert str(caught.value) == "cannot reach Directus with ***"
