"""Which instance serves, and the shell that finds it: fast checks, run with bash here."""

from __future__ import annotations

import subprocess

from directus_deploy.runtimes import instances, load_config
from directus_deploy.traffic import nginx

from .helpers import write_env


def bluegreen(tmp_path, include):
    path = write_env(tmp_path / "deploy.env", {
        "DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "s3cret-admin-token", "DEPLOY_STRATEGY": "bluegreen",
        "DEPLOY_BLUEGREEN_PORTS": "8101,8102", "DEPLOY_NGINX_UPSTREAM_FILE": str(include), "DIRECTUS_URL": "http://127.0.0.1"})
    return load_config({"DEPLOY_ENV_FILE": str(path)})


def bash(script: str) -> str:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def test_the_idle_color_is_the_other_one_and_blue_after_a_plain_instance(tmp_path):
    config = bluegreen(tmp_path, tmp_path / "up.conf")
    every = instances.every_instance(config)
    blue, green = instances.colors(config)
    assert instances.serving(every, 8101) == blue and instances.idle(every, blue) == green
    assert instances.serving(every, 8102) == green and instances.idle(every, green) == blue
    plain = instances.serving(every, 8055)  # an install adopted as it ran
    assert plain.name == "plain" and plain.app == "directus" and instances.idle(every, plain) == blue
    assert (blue.app, green.app) == ("directus-blue", "directus-green")


def test_the_host_reads_the_serving_port_from_the_include_the_tool_wrote(tmp_path):
    include = tmp_path / "up.conf"
    config = bluegreen(tmp_path, include)
    commands = {"blue": "echo B", "green": "echo G", "plain": "echo P"}
    assert bash(nginx.live_port_shell(config)) == ""  # no include yet
    assert bash(instances.for_serving_instance(config, commands)) == "P"
    for port, expected in ((8102, "G"), (8101, "B"), (8055, "P")):
        include.write_text(nginx.upstream_text(config, port))
        assert nginx.parse_live_port(bash(nginx.live_port_shell(config))) == port
        assert bash(instances.for_serving_instance(config, commands)) == expected
    assert "upstream directus {" in include.read_text()
