"""traffic.nginx: the upstream include this tool writes (valid for the real `nginx -t`), the shell
reading its port back, writing it through a temporary file, putting the previous one back, and
nginx run with the configured main file."""

from __future__ import annotations

import re
import shutil

import pytest

from directus_deploy.host.remote import q
from directus_deploy.runtimes import load_config
from directus_deploy.traffic import nginx

from ..helpers import write_env
from .local import run, strict


def config_for(tmp_path, **settings):
    path = write_env(tmp_path / "deploy.env", {
        "DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "s3cret-admin-token", "DEPLOY_STRATEGY": "bluegreen",
        "DIRECTUS_URL": "http://127.0.0.1", "DEPLOY_NGINX_UPSTREAM_FILE": str(tmp_path / "conf.d" / "up.conf"),
        **settings})
    return load_config({"DEPLOY_ENV_FILE": str(path)})


@pytest.mark.parametrize("text, port", [("8101\n", 8101), ("  8102  ", 8102), ("", None), ("abc", None),
                                        ("-1", None), ("81 01", None)])
def test_parse_live_port(text, port):
    assert nginx.parse_live_port(text) == port


def test_the_include_holds_its_one_server_line(tmp_path):
    config = config_for(tmp_path, DEPLOY_NGINX_UPSTREAM="my_api")
    text = nginx.upstream_text(config, 8102)
    assert [line for line in text.splitlines() if not line.startswith("#")] == ["server 127.0.0.1:8102;"]
    assert "inside upstream my_api { }" in text


def test_written_include_is_read_back_by_the_live_port_shell(tmp_path):
    config = config_for(tmp_path)
    include = tmp_path / "conf.d" / "up.conf"
    include.parent.mkdir()
    assert run(nginx.live_port_shell(config)).stdout == ""
    for port in (8056, 8057, 8055):
        run(strict(nginx.write_include(config, port)))
        assert nginx.parse_live_port(run(nginx.live_port_shell(config)).stdout) == port
    assert sorted(p.name for p in include.parent.iterdir()) == ["up.conf"]


def test_the_live_port_shell_ignores_comments_and_other_servers(tmp_path):
    config = config_for(tmp_path)
    include = tmp_path / "conf.d" / "up.conf"
    include.parent.mkdir()
    include.write_text("# server 127.0.0.1:1111;\nupstream directus {\n  server 10.0.0.1:2222;\n"
                       "\tserver 127.0.0.1:3333 max_fails=0;\n  server 127.0.0.1:4444;\n}\n")
    assert run(nginx.live_port_shell(config)).stdout.strip() == "3333"


def test_restore_include_puts_the_previous_back_or_removes_a_new_one(tmp_path):
    config = config_for(tmp_path)
    include = tmp_path / "conf.d" / "up.conf"
    include.parent.mkdir()
    include.write_text("new")
    include.with_name("up.conf.before").write_text("previous")
    run(strict(nginx.restore_include(config)))
    assert include.read_text() == "previous" and not include.with_name("up.conf.before").exists()
    run(strict(nginx.restore_include(config)))
    assert not include.exists()


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx")
def test_the_include_is_valid_nginx_configuration(tmp_path):
    config = config_for(tmp_path)
    include = tmp_path / "conf.d" / "up.conf"
    include.parent.mkdir()
    run(strict(nginx.write_include(config, 8101)))
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
                    f"  upstream directus {{ include {include}; }}\n"
                    "  server { listen 127.0.0.1:18080; location / { proxy_pass http://directus; } }\n}\n")
    result = run(f"nginx -t -c {q(str(main))} -p {q(str(tmp_path))} -e stderr", check=False)
    assert result.returncode == 0, result.stderr


def test_nginx_runs_with_the_configured_main_file(tmp_path):
    plain = config_for(tmp_path)
    assert "nginx -t;" in nginx.nginx(plain, "-t")
    custom = config_for(tmp_path, DEPLOY_NGINX_CONF="/opt/nginx/nginx.conf")
    assert "nginx -c /opt/nginx/nginx.conf -s reload;" in nginx.nginx(custom, "-s", "reload")


def drained_seconds(out: str) -> float:
    """The seconds the drain reported (whatever the report's format)."""
    match = re.search(r"drained\D*?([0-9]+(?:[.][0-9]+)?)", out)
    assert match, out
    return float(match[1])


def test_drain_without_a_live_port_is_immediate(tmp_path):
    assert drained_seconds(run(nginx.drain(config_for(tmp_path), None)).stdout) == 0


def test_drain_reports_how_long_it_waited(tmp_path):
    assert 0 <= drained_seconds(run(nginx.drain(config_for(tmp_path, DEPLOY_DRAIN_SECONDS="1"), 1)).stdout) < 5
