"""Blue/green for Directus run by Docker Compose, on the test bed: a compose install serving
behind nginx is adopted with DEPLOY_STRATEGY=bluegreen; a release starts a second Directus
container beside the one serving, and nginx moves to it only once it passes its health gate.
A probe sends a request every 50 ms through nginx during the release, a release failing its
gate and a rollback: not one fails, and the failed release never receives a request."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from testbed import docker as docker_bed
from testbed.nginx import Nginx
from testbed.probe import Probe
from testbed.project import add_tag

from .helpers import fab_ok, one_line, run_fab
from .test_bluegreen import PROBED, UNHEALTHY_HOOK


@pytest.fixture(scope="module")
def compose_blue_green(bed, nginx: Nginx, tmp_path_factory):
    """A compose install (`docker compose up -d`, restart: unless-stopped) behind nginx, adopted
    with blue/green; its nginx site then pointed at the tool's upstream."""
    production = docker_bed.ComposeProduction(bed, tmp_path_factory.mktemp("compose-bg"),
                                              service_lines="    restart: unless-stopped\n").create(setup=False)
    try:
        setup = production.adopt_behind_nginx(nginx)
        # adopt named the container serving then, at the port its compose file publishes
        assert f"127.0.0.1:{production.port};" in setup["served_before"], setup["served_before"]
        yield {**setup, "production": production, "nginx": nginx}
    finally:
        production.destroy()


def probed(setup, *args: str):
    production = setup["production"]
    with Probe(f"http://127.0.0.1:{setup['site']}", PROBED, token=production.token) as probe:
        result = run_fab(*args, env_file=production.env_file)
    return result, probe


def running_directus(production) -> dict[str, str]:
    """The project's running Directus containers: name -> image."""
    return {c["Names"]: c["Image"] for c in production.containers()
            if c["State"] == "running" and "com.docker.compose.service=directus" in c["Labels"]}


def restart_policy(container: str) -> str:
    out = subprocess.run(["docker", "inspect", "-f", "{{json .HostConfig.RestartPolicy}}", container],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)["Name"]


def test_compose_release_failed_release_and_rollback_fail_no_request(compose_blue_green):
    setup = compose_blue_green
    production, api = setup["production"], setup["production"].api
    project, ports = production.project_name, setup["ports"]
    item = api.json("POST", "/items/articles", {"title": "written before blue/green"})["data"]
    upload = os.urandom(250_000)
    file_id = api.upload("bg.bin", upload, "uploaded before blue/green", mime="application/octet-stream")

    result, probe = probed(setup, "release", "--tag=c2", "--yes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "no restart seen by users" in result.stdout, result.stdout[-3000:]
    assert probe.failures == [], probe.failures[:5]
    assert len(probe.samples) > 100, probe.summary()
    assert probe.messages() == ["hello from v1", "hello from v2"], probe.messages()
    assert f"127.0.0.1:{ports['blue']}" in setup["include"].read_text()
    # the service's own container retired: blue alone runs Directus, with the service's restart policy
    assert list(running_directus(production)) == [f"{project}-directus-blue"], production.containers()
    assert restart_policy(f"{project}-directus-blue") == "unless-stopped"

    # a release that runs but reports itself unhealthy: started on green, never sent a request
    add_tag(production.project, "c3-unhealthy", UNHEALTHY_HOOK, base="c2")
    result, probe = probed(setup, "release", "--tag=c3-unhealthy", "--yes")
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr
    line = one_line(result)
    assert "failed its health gate" in line and "never received a request" in line, line
    assert probe.failures == [], probe.failures[:5]
    assert probe.messages() == ["hello from v2"], probe.messages()
    assert f"127.0.0.1:{ports['green']}" not in setup["nginx"].upstreams_answering(probe.started_epoch)
    assert list(running_directus(production)) == [f"{project}-directus-blue"]  # green removed again

    result, probe = probed(setup, "rollback", "--to=c1", "--yes")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert probe.failures == [], probe.failures[:5]
    assert probe.messages() == ["hello from v2", "hello from v1"], probe.messages()
    assert f"127.0.0.1:{ports['green']}" in setup["include"].read_text()
    assert list(running_directus(production)) == [f"{project}-directus-green"]
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before blue/green"
    assert api.request("GET", f"/assets/{file_id}") == upload

    # host.check names every instance: the one serving online, the others stopped
    check = fab_ok("host.check", env_file=production.env_file).stdout
    for instance, status in ((f"green (:{ports['green']})", "online"), (f"blue (:{ports['blue']})", "stopped"),
                             (f"compose service {project}/directus", "stopped")):
        assert f"Directus under compose: {instance} {status}" in check, check
