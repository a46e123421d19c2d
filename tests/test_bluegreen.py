"""Blue/green behind nginx on the real test bed: releases and rollbacks with a probe sending a
request every 50 ms through nginx the whole time, and not one failing; a release that fails
its health gate never receives a request."""

from __future__ import annotations

import subprocess

from testbed.probe import Probe
from testbed.project import add_tag, hook_extension, snapshot_without_field

from .helpers import HELLO_V3, fab_ok, hello, one_line, run_fab

PROBED = ["/server/ping", "/items/articles?limit=1", "/hello"]
# answers /hello as v3 but reports itself unhealthy: a release that runs and still must not go live
UNHEALTHY_HOOK = {
    **hook_extension("directus-extension-unhealthy", "export default ({ init }) => { init('routes.before', ({ app }) => { "
                     "app.get('/server/health', (_req, res) => res.status(503).json({ status: 'error' })); }); };\n"),
    "extensions/directus-extension-hello/dist/index.js": HELLO_V3,
}


def running_apps(bed, production) -> set[str]:
    return {p["name"] for p in bed.pm2.processes()
            if p["name"].startswith(production.app) and p["pm2_env"]["status"] == "online"}


def probed(setup, *args: str):
    with Probe(setup["url"], PROBED, token=setup["production"].token) as probe:
        result = run_fab(*args, env_file=setup["env"])
    return result, probe


def test_release_and_rollback_fail_no_request(bed, blue_green):
    setup, production = blue_green, blue_green["production"]
    before = production.content()

    result, probe = probed(setup, "release", "--tag=v2", "--yes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "blue/green" in result.stdout and "no restart seen by users" in result.stdout
    assert probe.failures == [], probe.failures[:5]
    assert len(probe.samples) > 100, probe.summary()
    assert probe.messages() == ["hello from v1", "hello from v2"], probe.messages()
    assert f"127.0.0.1:{setup['ports']['blue']}" in setup["include"].read_text()
    assert running_apps(bed, production) == {f"{production.app}-blue"}  # the plain instance retired

    result, probe = probed(setup, "rollback", "--yes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert probe.failures == [], probe.failures[:5]
    assert probe.messages() == ["hello from v2", "hello from v1"], probe.messages()
    assert f"127.0.0.1:{setup['ports']['green']}" in setup["include"].read_text()
    assert running_apps(bed, production) == {f"{production.app}-green"}
    after = production.content()
    assert after == before  # every row and every file byte


def test_a_release_failing_its_gate_never_receives_a_request(bed, blue_green):
    setup, production = blue_green, blue_green["production"]
    add_tag(setup["project"], "v3-unhealthy", UNHEALTHY_HOOK)
    include_before = setup["include"].read_text()
    serving = hello(production)
    result, probe = probed(setup, "release", "--tag=v3-unhealthy", "--yes")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    line = one_line(result)
    assert "failed its health gate" in line and "never received a request" in line, line
    assert probe.failures == [], probe.failures[:5]
    assert probe.messages() == [serving]  # never "hello from v3"
    idle_port = setup["ports"]["blue"]  # green serves since the rollback; v3 started on blue
    assert f"127.0.0.1:{idle_port}" not in setup["nginx"].upstreams_answering(probe.started_epoch)
    assert setup["include"].read_text() == include_before
    assert running_apps(bed, production) == {f"{production.app}-green"}  # the failed one was stopped


def test_a_destructive_schema_change_needs_a_restart_release(blue_green):
    setup = blue_green
    add_tag(setup["project"], "v3-drop-body", {
        "snapshots/schema.yaml": snapshot_without_field(setup["project"], "v2", "articles", "body")})
    result = run_fab("release", "--tag=v3-drop-body", "--allow-destructive", "--yes", env_file=setup["env"])
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "--restart" in one_line(result)
    database = setup["srv"] / "shared" / "database" / "data.db"
    columns = subprocess.run(["sqlite3", str(database), "SELECT name FROM pragma_table_info('articles')"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "body" in columns  # nothing was dropped

    # as the refusal says: the same release with a restart in place of the serving instance
    include_before = setup["include"].read_text()
    fab_ok("release", "--tag=v3-drop-body", "--allow-destructive", "--restart", "--yes", env_file=setup["env"])
    columns = subprocess.run(["sqlite3", str(database), "SELECT name FROM pragma_table_info('articles')"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "body" not in columns and "title" in columns
    assert setup["include"].read_text() == include_before  # green restarted in place, on its port
    assert hello(setup["production"]) == "hello from v2"


def test_nginx_without_the_upstream_is_refused_before_anything_changes(blue_green, tmp_path):
    setup = blue_green
    settings = dict(line.split("=", 1) for line in setup["env"].read_text().splitlines() if "=" in line)
    settings["DEPLOY_NGINX_UPSTREAM"] = "nobody_routes_here"
    other = tmp_path / "deploy.env"
    other.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    result = run_fab("release", "--tag=v2", "--yes", env_file=other)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "sends no request to upstream nobody_routes_here" in one_line(result)
