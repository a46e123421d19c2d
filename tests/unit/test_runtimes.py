"""runtimes: which runtime runs Directus, the configuration refusing blue/green on a runtime that
runs one instance, and each runtime's shell run here against fake `pm2` and `systemctl` commands
that record what they were asked; pm2's secret guard keeping exported secrets out of pm2's
environment; the health gate run with Node against a small local HTTP server."""

from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from directus_deploy.core.errors import ConfigError, DeployError, Refused
from directus_deploy.runtimes import instances, load_config, runtime_for
from directus_deploy.runtimes.command import Command
from directus_deploy.runtimes.pm2 import Pm2
from directus_deploy.runtimes.service import Service
from directus_deploy.runtimes.systemd import Systemd
from directus_deploy.state.layout import Layout
from directus_deploy.traffic import nginx

from ..helpers import write_env
from .local import LocalRemote, fake_command, path_with, run, strict

needs_node = pytest.mark.skipif(not shutil.which("node"), reason="node")
VALID = {"DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "s3cret-admin-token"}


def config_for(tmp_path, **settings):
    path = write_env(tmp_path / "deploy.env", {**VALID, **settings})
    return load_config({"DEPLOY_ENV_FILE": str(path)})


def bluegreen(tmp_path, **settings):
    return config_for(tmp_path, DEPLOY_STRATEGY="bluegreen", DIRECTUS_URL="http://127.0.0.1",
                      DEPLOY_NGINX_UPSTREAM_FILE=str(tmp_path / "upstream.conf"), DEPLOY_BLUEGREEN_PORTS="8101,8102",
                      **settings)


# a pm2 that logs its calls (`args | CONFIG_PATH | DIRECTUS_DEPLOY_PORT`); `jlist` prints $JLIST;
# `describe` succeeds for the apps named in $KNOWN
FAKE_PM2 = r"""
echo "$* | ${CONFIG_PATH-} | ${DIRECTUS_DEPLOY_PORT-}" >> "$LOG"
case "$1" in
  jlist) cat "$JLIST" ;;
  describe) grep -qxF "$2" "$KNOWN" ;;
  env-of-me) env ;;
esac
"""


@pytest.fixture
def pm2_bin(tmp_path):
    fake_command(tmp_path / "bin", "pm2", FAKE_PM2)
    log, jlist, known = tmp_path / "pm2.log", tmp_path / "jlist.json", tmp_path / "known"
    jlist.write_text("[]")
    known.write_text("")
    return {**path_with(tmp_path / "bin"), "LOG": str(log), "JLIST": str(jlist), "KNOWN": str(known)}


def calls(env) -> list[str]:
    return open(env["LOG"]).read().splitlines() if os.path.exists(env["LOG"]) else []


def test_each_service_has_its_runtime(tmp_path):
    assert isinstance(runtime_for(config_for(tmp_path)), Pm2)
    assert isinstance(runtime_for(config_for(tmp_path, DIRECTUS_SERVICE="systemd")), Systemd)
    assert isinstance(runtime_for(config_for(tmp_path, DIRECTUS_SERVICE="command", DIRECTUS_RESTART_COMMAND="x")),
                      Command)


@pytest.mark.parametrize("service, extra", [("systemd", {}), ("command", {"DIRECTUS_RESTART_COMMAND": "restart it"})])
def test_bluegreen_on_a_runtime_that_runs_one_is_refused_in_one_line(tmp_path, service, extra):
    with pytest.raises(ConfigError) as caught:
        bluegreen(tmp_path, DIRECTUS_SERVICE=service, **extra)
    message = str(caught.value)
    assert "\n" not in message and "needs DIRECTUS_SERVICE=pm2|compose" in message and f"{service} runs one" in message


def test_runtime_keys_are_read_and_checked(tmp_path):
    assert config_for(tmp_path, DIRECTUS_SERVICE="systemd", DIRECTUS_SYSTEMD_UNIT="directus@prod").systemd_unit == \
        "directus@prod"
    with pytest.raises(ConfigError, match="DIRECTUS_SYSTEMD_UNIT"):
        config_for(tmp_path, DIRECTUS_SERVICE="systemd", DIRECTUS_SYSTEMD_UNIT="unit;reboot")
    with pytest.raises(ConfigError, match="DIRECTUS_PM2_APP"):
        config_for(tmp_path, DIRECTUS_PM2_APP="my app")


def test_pm2_restart_strategy_stops_and_starts_its_one_app(tmp_path, pm2_bin):
    runtime = runtime_for(config_for(tmp_path, DIRECTUS_PM2_APP="site.api"), Layout(str(tmp_path)))
    root = str(tmp_path / "releases" / "r 1")
    run(strict(runtime.stop(), runtime.start(root)), env=pm2_bin)
    assert calls(pm2_bin) == [
        "stop site.api |  | ",
        "delete site.api |  | ",
        f"start {root}/node_modules/directus/cli.js --name site.api --cwd {root} --time -- start |  | ",
        "save --force |  | ",
    ]


@needs_node
@pytest.mark.parametrize("running_from, restarted", [("same", True), ("other", False)])
def test_pm2_resume_restarts_the_app_only_when_it_runs_from_the_same_folder(tmp_path, pm2_bin, running_from, restarted):
    runtime = runtime_for(config_for(tmp_path), Layout(str(tmp_path)))
    root = str(tmp_path / "releases" / "r1")
    cwd = root if running_from == "same" else "/elsewhere"
    with open(pm2_bin["JLIST"], "w") as handle:
        json.dump([{"name": "directus", "pm2_env": {"pm_cwd": cwd, "status": "stopped"}}], handle)
    run(strict(runtime.resume(root)), env=pm2_bin)
    verbs = [c.split()[0] for c in calls(pm2_bin)]
    assert verbs == (["jlist", "restart"] if restarted else ["jlist", "delete", "start", "save"])


@needs_node
@pytest.mark.parametrize("apps, expected", [
    ([{"name": "directus", "pm2_env": {"status": "online", "pm_cwd": "/x"}}], "online"),
    ([{"name": "directus", "pm2_env": {"status": "errored", "pm_cwd": "/x"}}], "stopped"),
    ([{"name": "directus-blue", "pm2_env": {"status": "online", "pm_cwd": "/x"}}], "stopped"),
    ([], "stopped"),
])
def test_pm2_status_reads_pm2s_list(tmp_path, pm2_bin, apps, expected):
    runtime = runtime_for(config_for(tmp_path))
    with open(pm2_bin["JLIST"], "w") as handle:
        json.dump(apps, handle)
    assert run(runtime.status(instances.plain(runtime.config)), env=pm2_bin).stdout.strip() == expected


def test_pm2_bluegreen_stop_stops_only_the_apps_pm2_knows(tmp_path, pm2_bin):
    runtime = runtime_for(bluegreen(tmp_path), Layout(str(tmp_path)))
    with open(pm2_bin["KNOWN"], "w") as handle:
        handle.write("directus-green\ndirectus\n")
    run(strict(runtime.stop()), env=pm2_bin)
    assert [c for c in calls(pm2_bin) if c.startswith("stop")] == ["stop directus |  | ", "stop directus-green |  | "]


def test_pm2_bluegreen_starts_a_color_with_its_port_and_settings_file(tmp_path, pm2_bin):
    layout = Layout(str(tmp_path / "deploy"))
    config = bluegreen(tmp_path)
    runtime = runtime_for(config, layout)
    blue, green = instances.colors(config)
    run(strict(runtime.start_instance(green, "/srv/r1")), env=pm2_bin)
    started = next(c for c in calls(pm2_bin) if c.startswith("start"))
    assert started.endswith(f"--name directus-green --cwd /srv/r1 --time -- start | {layout.bluegreen_config} | 8102")
    assert open(layout.bluegreen_config).read() == instances.CONFIG_JS
    assert not os.path.exists(layout.bluegreen_config + ".tmp")


def test_pm2_bluegreen_start_restarts_the_instance_the_upstream_names(tmp_path, pm2_bin):
    config = bluegreen(tmp_path)
    runtime = runtime_for(config, Layout(str(tmp_path / "deploy")))
    run(strict(runtime.start("/srv/r1")), env=pm2_bin)  # no include yet: the plain instance
    assert any(c.startswith("start") and "--name directus " in c for c in calls(pm2_bin))
    open(config.nginx_upstream_file, "w").write(nginx.upstream_text(config, 8101))
    os.remove(pm2_bin["LOG"])
    run(strict(runtime.start("/srv/r1")), env=pm2_bin)
    assert any(c.startswith("start") and "--name directus-blue " in c for c in calls(pm2_bin))


def test_pm2_retire_never_fails(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "pm2", 'echo "$*" >> ' + str(tmp_path / "log") + "; exit 1")
    runtime = runtime_for(bluegreen(tmp_path))
    assert run(strict(runtime.retire(instances.colors(runtime.config)[0])), env=path_with(bin_dir)).returncode == 0
    assert (tmp_path / "log").read_text() == "delete directus-blue\nsave --force\n"


def test_pm2_watches_its_app_or_the_named_instance(tmp_path):
    plain = runtime_for(config_for(tmp_path))
    assert plain.watched() == ["directus"]
    colored = runtime_for(bluegreen(tmp_path))
    blue = instances.colors(colored.config)[0]
    assert colored.watched() == [] and colored.watched(blue) == ["directus-blue"]


def test_pm2_secret_guard_keeps_secrets_out_of_what_pm2_records(tmp_path, pm2_bin):
    guard = runtime_for(config_for(tmp_path)).secret_guard(["DB_PASSWORD", "DIRECTUS_TOKEN"])
    script = (f"export DB_PASSWORD=pw DIRECTUS_TOKEN=tok NOT_SECRET=visible\n{guard}\n"
              'pm2 env-of-me; echo "shell still has $DB_PASSWORD $DIRECTUS_TOKEN"')
    out = run(script, env=pm2_bin).stdout
    assert "NOT_SECRET=visible" in out
    assert "DB_PASSWORD=" not in out and "DIRECTUS_TOKEN=" not in out
    assert "shell still has pw tok" in out


def test_a_remote_with_the_pm2_guard_gives_secrets_to_the_script_but_not_to_pm2(tmp_path, pm2_bin):
    runtime = runtime_for(config_for(tmp_path))
    remote = LocalRemote(env=pm2_bin, secret_guard=runtime.secret_guard)
    out = remote.script('pm2 env-of-me; printf "script sees %s\\n" "$DIRECTUS_TOKEN"',
                        secret_env={"DIRECTUS_TOKEN": "tok-123456"}).stdout
    assert "script sees tok-123456" in out and "DIRECTUS_TOKEN=" not in out
    out = remote.run('pm2 env-of-me', secret_env={"DIRECTUS_TOKEN": "tok-123456"}).stdout
    assert "DIRECTUS_TOKEN=" not in out


def test_systemd_stops_restarts_and_reads_its_unit(tmp_path):
    if os.getuid() != 0:
        pytest.skip("as_admin goes through sudo when not root")
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "systemctl", f'echo "$*" >> {tmp_path}/log; [ "$1" != is-active ] || [ -f {tmp_path}/up ]')
    runtime = runtime_for(config_for(tmp_path, DIRECTUS_SERVICE="systemd", DIRECTUS_SYSTEMD_UNIT="directus@a.b"))
    env = path_with(bin_dir)
    run(strict(runtime.stop(), runtime.start("/srv/r1")), env=env)
    assert (tmp_path / "log").read_text() == "stop directus@a.b\nrestart directus@a.b\n"
    status = runtime.status(instances.plain(runtime.config))
    assert run(status, env=env).stdout.strip() == "stopped"
    (tmp_path / "up").touch()
    assert run(status, env=env).stdout.strip() == "online"


def test_command_runtime_restarts_with_the_users_command_and_cannot_stop(tmp_path):
    runtime = runtime_for(config_for(tmp_path, DIRECTUS_SERVICE="command",
                                     DIRECTUS_RESTART_COMMAND=f"touch {tmp_path}/restarted"))
    run(runtime.start("/srv/r1"))
    assert (tmp_path / "restarted").exists()
    assert runtime.stop() is None and runtime.resume("/x") == runtime.start("/y")
    assert run(runtime.status(instances.plain(runtime.config))).stdout.strip() == "unknown"
    with pytest.raises(Refused, match="DIRECTUS_SERVICE=command runs one Directus"):
        runtime.start_instance(instances.plain(runtime.config), "/srv/r1")
    with pytest.raises(Refused, match="runs one Directus"):
        runtime_for(config_for(tmp_path, DIRECTUS_SERVICE="systemd")).retire(instances.plain(runtime.config))


def test_the_directus_cli_runs_from_the_release_with_quoted_arguments(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "node", 'printf "%s\\n" "$PWD" "$@"')
    release = tmp_path / "re lease"
    release.mkdir()
    runtime = runtime_for(config_for(tmp_path))
    out = run(runtime.cli(str(release), "schema", "apply", "--yes", "it's $(id)"), env=path_with(bin_dir)).stdout
    assert out.splitlines() == [str(release), f"{release}/node_modules/@directus/api/dist/cli/run.js", "schema",
                                "apply", "--yes", "it's $(id)"]


# -- the health gate, with Node, against a fake Directus --------------------------------------

class FakeDirectus(BaseHTTPRequestHandler):
    health = {"status": "ok"}
    extensions = ["hello"]
    seen_tokens: list = []

    def do_GET(self):  # noqa: N802
        self.seen_tokens.append(self.headers.get("Authorization"))
        if self.path == "/server/ping":
            body = b"pong"
        elif self.path == "/server/health":
            body = json.dumps(self.health).encode()
        elif self.path == "/extensions":
            body = json.dumps({"data": [{"schema": {"name": n}} for n in self.extensions] + [{"schema": None}]}).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def directus(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), FakeDirectus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeDirectus.health, FakeDirectus.extensions, FakeDirectus.seen_tokens = {"status": "ok"}, ["hello"], []
    yield config_for(tmp_path, DIRECTUS_URL=f"http://127.0.0.1:{server.server_port}", DIRECTUS_TOKEN="tok-12345678")
    server.shutdown()


@needs_node
def test_the_health_gate_passes_with_the_expected_extensions_loaded(directus):
    service = Service(directus)
    report = service.health_gate(LocalRemote(), ["hello"], timeout=5)
    assert report["ok"] and report["loaded"] == ["hello"] and report["health"] == "ok"
    assert "Bearer tok-12345678" in FakeDirectus.seen_tokens


@needs_node
def test_the_health_gate_fails_naming_an_extension_not_loaded(directus):
    with pytest.raises(DeployError, match="health gate failed at extensions: not loaded: missing-one"):
        Service(directus).health_gate(LocalRemote(), ["hello", "missing-one"], timeout=5)


@needs_node
def test_the_health_gate_fails_on_an_unhealthy_directus_naming_the_check(directus):
    FakeDirectus.health = {"status": "error", "checks": {"database": [{"status": "error"}], "cache": [{"status": "ok"}]}}
    with pytest.raises(DeployError, match=r"failed at health: error \(database\)"):
        Service(directus).health_gate(LocalRemote(), [], timeout=5)


@needs_node
def test_the_health_gate_fails_at_ping_when_nothing_answers(tmp_path):
    config = config_for(tmp_path, DIRECTUS_URL="http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(DeployError, match="failed at ping"):
        Service(config).health_gate(LocalRemote(), [], timeout=1)
