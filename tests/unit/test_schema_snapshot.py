"""The backup's schema snapshot script, run in a local bash with a fake `node`: the running
Directus's answer over HTTP first, Directus's CLI when it does not answer, a failure of both
said in one line; the file always 0600."""

from __future__ import annotations

import stat
from types import SimpleNamespace

import pytest

from directus_deploy.flows.backup import schema_snapshot_script
from directus_deploy.host.script import parse_results
from directus_deploy.runtimes.base import Runtime
from directus_deploy.runtimes.service import Service

from .local import fake_command, path_with, run, strict

# node -e <js> <url> <target>: the HTTP snapshot; node <run.js> schema snapshot ... <target>: the CLI
FAKE_NODE = """
if [ "$1" = -e ]; then
  [ -n "$HTTP_OK" ] || { echo 'ECONNREFUSED' >&2; exit 1; }
  printf 'collections: [http]\\n' > "$4"; exit 0
fi
[ -n "$CLI_OK" ] || { echo 'cli: cannot connect to the database' >&2; exit 1; }
printf 'collections: [cli]\\n' > "${@: -1}"
"""


@pytest.fixture
def snapshot(tmp_path):
    env = path_with(tmp_path / "bin")
    fake_command(tmp_path / "bin", "node", FAKE_NODE)
    service = SimpleNamespace(config=SimpleNamespace(directus_url="http://127.0.0.1:8055"))
    runtime = Runtime(SimpleNamespace())
    target = tmp_path / "backup" / "schema.yaml"
    target.parent.mkdir()
    script = schema_snapshot_script(SimpleNamespace(snapshot_to=lambda t: Service.snapshot_to(service, t)), runtime,
                                    str(tmp_path), str(target), str(tmp_path / "backup" / "schema.log"))

    def take(**flags):
        return run(strict(script), env={**env, **flags}, check=False)
    take.target = target
    return take


def test_the_running_directus_answers_first(snapshot):
    result = snapshot(HTTP_OK="1", CLI_OK="1")
    report = parse_results(result.stdout).first("schema")
    assert result.returncode == 0 and report["how"] == "http"
    assert snapshot.target.read_text() == "collections: [http]\n"
    assert stat.S_IMODE(snapshot.target.stat().st_mode) == 0o600 and int(report["size"]) == 20
    assert sorted(p.name for p in snapshot.target.parent.iterdir()) == ["schema.yaml"]  # no log left


def test_the_cli_when_directus_does_not_answer(snapshot):
    result = snapshot(CLI_OK="1")
    assert result.returncode == 0 and parse_results(result.stdout).first("schema")["how"] == "cli"
    assert snapshot.target.read_text() == "collections: [cli]\n"


def test_both_failing_fail_the_script_with_the_cli_error(snapshot):
    result = snapshot()
    assert result.returncode != 0 and "cannot connect to the database" in result.stderr
    assert parse_results(result.stdout).first("schema") is None
