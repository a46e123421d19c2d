"""A rehearsal's copy of production does nothing to the world outside it, on the real test bed:
production's active flows (a schedule firing every second, an event flow on the server's start,
each calling a webhook) stay still on the copy, Redis settings stay out of its settings, and the
teardown before it stops no process it did not start."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from .helpers import private_setups, run_fab

# production keeps its cache in the bed's Redis (the docs' Docker Compose default)
REDIS_CACHE = {"CACHE_ENABLED": "true", "CACHE_STORE": "redis", "REDIS": "redis://127.0.0.1:6379",
               "CACHE_AUTO_PURGE": "false", "CACHE_TTL": "1h"}


class Listener:
    """A webhook receiver on loopback: every request's path and JSON body, as it came."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, json.loads(body or b"{}")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.stop()


def add_flow(api, name: str, trigger: str, options: dict, url: str) -> str:
    """An active flow whose one operation posts where it runs from (its PUBLIC_URL) to `url`."""
    flow = api.json("POST", "/flows", {"name": name, "status": "active", "trigger": trigger, "options": options,
                                       "accountability": "all"})["data"]
    operation = api.json("POST", "/operations", {
        "flow": flow["id"], "key": "notify", "name": "notify", "type": "request", "position_x": 19, "position_y": 1,
        "options": {"method": "POST", "url": url, "headers": [{"header": "Content-Type", "value": "application/json"}],
                    "body": '{"from": "{{$env.PUBLIC_URL}}"}'}})["data"]
    api.json("PATCH", f"/flows/{flow['id']}", {"operation": operation["id"]})
    return flow["id"]


@pytest.fixture
def innocent():
    """Two processes that are none of the rehearsal's (each a process group of its own)."""
    made = [subprocess.Popen(["sleep", "600"], start_new_session=True) for _ in range(2)]
    yield made
    for process in made:
        process.kill()
        process.wait()


def test_the_copy_runs_no_flow_and_no_redis_of_production_and_stops_only_its_own(bed, tmp_path, listener, innocent):
    made = bed.shaped_productions({"r-isolation": {"extra_env": {
        **REDIS_CACHE, "CACHE_NAMESPACE": f"dxd-{secrets.token_hex(4)}", "FLOWS_ENV_ALLOW_LIST": "PUBLIC_URL",
        # webhooks to loopback allowed (the default list denies every address of the machine)
        "IMPORT_IP_DENY_LIST": "169.254.169.254"}}})
    try:
        setup = private_setups(bed, made, tmp_path, adopt=True)["r-isolation"]
        production, srv = setup["production"], setup["srv"]
        flows = [add_flow(production.api, "every second", "schedule", {"cron": "* * * * * *"}, listener.url + "/schedule"),
                 add_flow(production.api, "on start", "event", {"type": "action", "scope": ["server.start"]},
                          listener.url + "/start")]
        # the flows work: production's schedule calls the listener, saying where it runs
        deadline = time.monotonic() + 30
        while not any(path == "/schedule" for path, _ in listener.received) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ("/schedule", {"from": production.url}) in listener.received

        # pids a rehearsal killed outright left, since taken by processes that are not its own:
        # one recorded with another start time, one without any
        work = Path(srv) / ".deploy" / "rehearsal"
        work.mkdir(parents=True)
        (work / "pids").write_text(f"{innocent[0].pid} 99999999\n{innocent[1].pid}\n")

        rehearsed = run_fab("deploy.rehearse", "--tag=v2", env_file=setup["env"])
        assert rehearsed.returncode == 0, rehearsed.stdout[-3000:] + rehearsed.stderr
        from_the_copy = [(path, body) for path, body in listener.received if body != {"from": production.url}]
        assert from_the_copy == []
        assert "2 active flows set inactive on the copy" in rehearsed.stdout
        assert "Redis settings left out: REDIS" in rehearsed.stdout
        assert all(process.poll() is None for process in innocent)
        # on the copy only: production's flows are as they were, and still run
        statuses = {flow["id"]: flow["status"] for flow in production.api.get("/flows?fields=id,status")["data"]}
        assert [statuses[flow] for flow in flows] == ["active", "active"]
        seen = len(listener.received)
        time.sleep(2.5)
        assert len(listener.received) > seen
    finally:
        for production in made.values():
            production.destroy()


@pytest.mark.parametrize("ending", ["true", "false", "kill -TERM $$"])
def test_the_mysql_option_file_is_private_and_gone_however_a_script_on_the_host_ends(bed, tmp_path, ending):
    """Over SSH, against the bed's MariaDB: the password's option file lives in a folder of its
    own (0700, file 0600) under TMPDIR, and nothing of it is left when the script ends, fails or
    is terminated."""
    from directus_deploy.engines import engine_for
    from directus_deploy.state.production import locate

    from .helpers import session_for

    if "mysql" not in bed.productions:
        pytest.skip("the bed runs no MariaDB production")
    private = tmp_path / "tmp"
    private.mkdir()
    session = session_for(bed.env_file("mysql"))
    try:
        remote = session.remote()
        engine = engine_for(locate(remote, session.layout, install=str(bed.productions["mysql"].folder)))
        result = remote.script("\n".join([
            f"export TMPDIR={tmp_path}/tmp",
            engine.prelude(str(tmp_path)) + engine.prelude(str(tmp_path)) + engine.migrations_query() + " > /dev/null",
            'stat -c "%a" "$(dirname "$MYCNF")" "$MYCNF"',
            ending]), secret_env=engine.secret_env(), check=False)
    finally:
        session.close()
    assert result.stdout.split()[:2] == ["700", "600"], result.stdout + result.stderr
    assert result.ok == (ending == "true")
    assert list(private.iterdir()) == []
