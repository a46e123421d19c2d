"""The health gate's script, run with this machine's Node against ports that answer or not,
and the pm2 runtime's crash watch against a pm2 home of pid files: no host needed."""

from __future__ import annotations

import http.server
import json
import shlex
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from directus_deploy.runtimes import load_config
from directus_deploy.runtimes.service import Service
from directus_deploy.state.layout import Layout

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node on PATH")


def service(service_name: str) -> Service:
    config = load_config({"DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "s3cret-admin-token",
                          "DIRECTUS_SERVICE": service_name, "DIRECTUS_PM2_APP": "my.app",
                          "DIRECTUS_RESTART_COMMAND": "true", "DEPLOY_ENV_FILE": EMPTY_ENV_FILE})
    return Service(config, Layout("/srv/directus"))


EMPTY_ENV_FILE = str(Path(__file__).with_name("empty.env"))


def run_gate(command: str, url: str, env: dict | None = None, timeout: int = 20) -> dict:
    args = shlex.split(command)
    args[3] = url  # node -e <script> <url> <timeout> <expected> [watched]
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                            env={"PATH": "/usr/bin:/bin", "DIRECTUS_TOKEN": "s3cret-admin-token", **(env or {})})
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "exit": result.returncode}


UNDER_PRESSURE = {"errors": [{"message": 'Service "api" is unavailable. Under pressure.',
                               "extensions": {"service": "api", "reason": "Under pressure", "code": "SERVICE_UNAVAILABLE"}}]}


class FakeDirectus(http.server.BaseHTTPRequestHandler):
    health = {"status": "ok"}
    extensions = [{"schema": {"name": "hello"}}]
    busy_answers = 0  # how many authenticated requests get Directus's pressure limiter's 503 first

    def do_GET(self):  # noqa: N802 - the handler's name
        auth = self.headers.get("Authorization") == "Bearer s3cret-admin-token"
        body = {"/server/ping": "pong", "/server/health": self.health if auth else {"status": "forbidden"},
                "/extensions": {"data": self.extensions}}.get(self.path)
        status = 200 if body is not None else 404
        if auth and FakeDirectus.busy_answers > 0:
            FakeDirectus.busy_answers -= 1
            body, status = UNDER_PRESSURE, 503
        text = body if isinstance(body, str) else json.dumps(body)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def directus():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeDirectus)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("name", ["pm2", "systemd", "command"])
def test_the_gate_passes_when_ping_health_and_extensions_answer(directus, name):
    report = run_gate(service(name).health_check(["hello"], timeout=5), directus)
    assert report["ok"] is True and report["exit"] == 0
    assert report["loaded"] == ["hello"] and report["health"] == "ok"


def test_a_directus_under_pressure_is_asked_again_and_a_broken_one_is_not(directus, monkeypatch):
    """Right after a boot on a busy machine Directus's pressure limiter answers 503 for a moment:
    the gate waits it out (within its timeout); an unhealthy answer still fails it at once."""
    monkeypatch.setattr(FakeDirectus, "busy_answers", 3)
    report = run_gate(service("systemd").health_check(["hello"], timeout=10), directus)
    assert report["ok"] is True and FakeDirectus.busy_answers == 0
    monkeypatch.setattr(FakeDirectus, "busy_answers", 1000)
    report = run_gate(service("systemd").health_check(["hello"], timeout=2), directus)
    assert report["ok"] is False and report["failed"] == "health" and "Under pressure" in report["detail"]
    monkeypatch.setattr(FakeDirectus, "busy_answers", 0)
    monkeypatch.setattr(FakeDirectus, "health", {"status": "error", "checks": {"database": [{"status": "error"}]}})
    report = run_gate(service("systemd").health_check(["hello"], timeout=10), directus)
    assert report["ok"] is False and report["detail"] == "error (database)" and report["seconds"] < 5


def test_the_gate_names_the_extension_that_did_not_load(directus):
    report = run_gate(service("systemd").health_check(["hello", "missing-one"], timeout=5), directus)
    assert report["ok"] is False and report["exit"] == 1
    assert report["failed"] == "extensions" and "missing-one" in report["detail"]


def test_the_gate_fails_at_ping_when_nothing_listens():
    report = run_gate(service("systemd").health_check([], timeout=1), "http://127.0.0.1:9")
    assert report["ok"] is False and report["failed"] == "ping"


def test_pm2s_crash_watch_fails_the_gate_at_once_when_the_app_keeps_restarting(tmp_path):
    """Three pid files seen for the app (pm2 restarting it) end the gate long before its timeout."""
    pids = tmp_path / "pids"
    pids.mkdir()
    for number, pid in enumerate(("101", "102", "103")):
        (pids / f"my.app-{number}.pid").write_text(pid)  # pm2 keeps dots in pid file names
    (pids / "other-0.pid").write_text("999")  # another app's file is not watched
    gate = service("pm2")
    assert gate.runtime.watched() == ["my.app"]
    report = run_gate(gate.health_check([], timeout=60), "http://127.0.0.1:9", env={"PM2_HOME": str(tmp_path)})
    assert report["ok"] is False and report["failed"] == "start"
    assert "restarted it 2 times" in report["detail"] and "pm2 logs my.app" in report["detail"]
    assert report["seconds"] < 30


def test_a_runtime_without_pid_files_watches_nothing(tmp_path):
    gate = service("systemd")
    assert gate.runtime.watched() == []
    assert "const crashed = () => null;" in shlex.split(gate.health_check([], 1))[2]


def test_the_gate_report_is_its_last_json_object_among_other_output():
    from directus_deploy.runtimes.service import gate_report

    text = '{"ok": false, "failed": "ping"}\nstarting...\n{not json\n{"ok": true, "seconds": 1.5}\n[1, 2]\n'
    assert gate_report(text) == {"ok": True, "seconds": 1.5}
    assert gate_report("pm2: started\n{\"other\": 1}\n") is None  # an object that is not a report
    assert gate_report("") is None
