"""state.settings: `dotenv_line` read back by python-dotenv and by a shell, Directus's settings
from each CONFIG_PATH format, values as Directus casts them back, and the shell exporting a running
Directus's own environment (run here against a real process)."""

from __future__ import annotations

import io
import json
import subprocess
import time

import pytest
from dotenv import dotenv_values

from directus_deploy.core.errors import Refused
from directus_deploy.flows.production_env import parse
from directus_deploy.host.remote import q
from directus_deploy.state.settings import as_text, dotenv_line, find_process_shell, process_env_shell, settings_from

from .local import run

ROUND_TRIP = [
    "plain",
    "",
    "http://example.com:8055/path?a=1&b=2",
    "two words",
    "it's",
    'say "hi"',
    "$(id) and `id` and $HOME",
    "a#b # not a comment",
    "back\\slash",
    "json:[1,2,{\"a\":\"b\"}]",
    "trailing space ",
    "tab\there",
    "ünïcødé ✓",
    "multi\nline",
    "quote ' and newline\n",
]


@pytest.mark.parametrize("value", ROUND_TRIP)
def test_dotenv_line_reads_back_as_the_same_value(value):
    line = dotenv_line("KEY", value)
    assert dotenv_values(stream=io.StringIO(line + "\n"), interpolate=False)["KEY"] == value
    assert parse(line + "\nOTHER=x\n") == {"KEY": value, "OTHER": "x"}


@pytest.mark.parametrize("value", ["both ' and \"", "quote ' and back\\slash"])
def test_dotenv_line_refuses_what_no_quoting_can_hold(value):
    with pytest.raises(Refused, match="KEY"):
        dotenv_line("KEY", value)


def test_a_bare_value_stays_bare():
    assert dotenv_line("PORT", "8055") == "PORT=8055"
    assert dotenv_line("URL", "https://a.b/c") == "URL=https://a.b/c"


@pytest.mark.parametrize("value, text", [
    (True, "true"), (False, "false"), (None, ""), (8055, "8055"), (1.5, "1.5"), ("s", "s"),
    ([1, "a"], 'json:[1,"a"]'), ({"a": {"b": None}}, 'json:{"a":{"b":null}}'),
])
def test_structured_values_become_the_text_directus_casts_back(value, text):
    assert as_text(value) == text


def found(path, **extra):
    return {"config_path": path, **extra}


def test_a_dotenv_file_wins_over_the_process_environment():
    settings = settings_from(found("/app/.env", text="PORT=1\nKEY=k\n",
                                   process={"PORT": 2, "LOG_LEVEL": "debug", "CONFIG_PATH": "/app/.env"}), parse)
    assert settings.format == "dotenv"
    assert settings.env == {"PORT": "1", "KEY": "k", "LOG_LEVEL": "debug", "CONFIG_PATH": "/app/.env"}
    assert settings.only_in_process == {"LOG_LEVEL": "debug"}
    assert settings.file_keys == {"PORT", "KEY"}


def test_a_file_setting_read_from_a_file_variable_is_resolved():
    settings = settings_from(found("/app/.env", text="", process={"SECRET_FILE": "/run/s"},
                                   process_files={"SECRET": "from-file"}), parse)
    assert settings.env["SECRET"] == "from-file" and settings.env["SECRET_FILE"] == "/run/s"


@pytest.mark.parametrize("path, text", [
    ("/app/config.json", json.dumps({"PORT": 8055, "CORS_ENABLED": True, "CORS_ORIGIN": ["a", "b"]})),
    ("/app/config.yaml", "PORT: 8055\nCORS_ENABLED: true\nCORS_ORIGIN:\n  - a\n  - b\n"),
    ("/app/config.YML", "PORT: 8055\nCORS_ENABLED: true\nCORS_ORIGIN: [a, b]\n"),
])
def test_json_and_yaml_files_give_settings_as_text(path, text):
    settings = settings_from(found(path, text=text), parse)
    assert settings.env == {"PORT": "8055", "CORS_ENABLED": "true", "CORS_ORIGIN": 'json:["a","b"]'}
    assert settings.format in ("json", "yaml")


@pytest.mark.parametrize("path, text", [("/app/c.json", "{not json"), ("/app/c.yaml", "a: [unclosed"),
                                        ("/app/c.json", "[1, 2]")])
def test_a_broken_or_non_object_file_is_refused_naming_it(path, text):
    with pytest.raises(Refused, match=path.replace(".", "[.]")):
        settings_from(found(path, text=text), parse)


def test_a_javascript_file_gives_what_node_evaluated():
    settings = settings_from(found("/app/config.cjs", js={"PORT": 9000, "A": None}), parse)
    assert settings.format == "js" and settings.env == {"PORT": "9000", "A": ""}
    with pytest.raises(Refused, match="could not evaluate it .boom."):
        settings_from(found("/app/config.js", error="boom"), parse)


def test_a_missing_file_is_said_so():
    assert settings_from(found("/app/.env"), parse).format == "missing"
    assert settings_from(found("/app/config.mjs"), parse).format == "missing"


def test_the_process_shell_finds_the_directus_running_from_a_folder_and_exports_its_settings(tmp_path):
    root = tmp_path / "re'lease"
    root.mkdir()
    environment = {"PATH": "/usr/bin:/bin", "DB_PASSWORD": "pa ss'$(id)", "LOG_LEVEL": "warn", "OTHER": "no"}
    # a process whose command line says directus, working in `root`
    process = subprocess.Popen(["bash", "-c", "exec -a directus-start sleep 30"], cwd=root, env=environment)
    try:
        time.sleep(0.2)
        found_pid = run(f"root={q(str(root))}; {find_process_shell()}; echo \"$pid\"").stdout.strip()
        assert found_pid == str(process.pid)
        script = process_env_shell(str(root), ["DB_PASSWORD", "LOG_LEVEL", "NOT A NAME;"])
        assert "NOT A NAME" not in script
        out = run(script + 'printf "%s|%s|%s" "$DB_PASSWORD" "$LOG_LEVEL" "${OTHER-unset}"', env={"OTHER": ""}).stdout
        assert out == "pa ss'$(id)|warn|"
    finally:
        process.kill()
        process.wait()


def test_no_directus_in_the_folder_finds_nothing(tmp_path):
    assert run(f"root={q(str(tmp_path))}; {find_process_shell()}; echo \"[$pid]\"").stdout.strip() == "[]"
    assert process_env_shell("/x", ["bad name"]) == ""
