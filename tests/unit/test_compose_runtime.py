"""runtimes/compose.py without Docker: the commands it builds (checked as data, and run here
against a fake `docker` that records its arguments), the settings of a resolved compose
configuration turned into host paths through its bind mounts, and the refusals of state kept
inside a container or on a named volume."""

from __future__ import annotations

import shlex

import pytest

from directus_deploy.core.errors import ConfigError, Refused
from directus_deploy.runtimes import load_config, runtime_for
from directus_deploy.runtimes.compose import Compose, host_path, settings_of
from directus_deploy.state.layout import Layout
from directus_deploy.state.shared import shared_links

from ..helpers import write_env
from .local import fake_command, path_with, run

VALID = {"DEPLOY_HOSTS": "prod", "DIRECTUS_TOKEN": "s3cret-admin-token", "DIRECTUS_SERVICE": "compose"}
ROOT = "/srv/directus/releases/20260101T000000Z-v1"
# what `docker compose config --format json` prints for the quickstart shape (paths absolute)
QUICKSTART = {
    "name": "directus",
    "services": {
        "directus": {
            "image": "directus/directus:12.4.0",
            "environment": {"DB_CLIENT": "sqlite3", "DB_FILENAME": "/directus/database/data.db", "SECRET": "x" * 32,
                            "UNSET": None},
            "volumes": [
                {"type": "bind", "source": f"{ROOT}/database", "target": "/directus/database"},
                {"type": "bind", "source": f"{ROOT}/uploads", "target": "/directus/uploads"},
                {"type": "bind", "source": f"{ROOT}/extensions", "target": "/directus/extensions"},
            ],
        },
        "cache": {"image": "redis:6"},
    },
}
IMAGE = {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "DB_CLIENT=sqlite3",
                 "DB_FILENAME=/directus/database/database.sqlite", "NODE_ENV=production"],
         "WorkingDir": "/directus", "Labels": None}


def compose(tmp_path, **settings) -> Compose:
    config = load_config({"DEPLOY_ENV_FILE": str(write_env(tmp_path / "deploy.env", {**VALID, **settings}))})
    runtime = runtime_for(config, Layout("/srv/directus"))
    assert isinstance(runtime, Compose)
    return runtime


def test_every_command_names_the_project_and_touches_only_the_directus_service(tmp_path):
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_PROJECT="shop-cms", DIRECTUS_COMPOSE_SERVICE="cms")
    start = shlex.split(runtime.start(ROOT))
    assert start[:3] == ["cd", ROOT, "&&"]
    assert start[3:9] == ["docker", "compose", "--progress", "quiet", "-p", "shop-cms"]
    assert start[9:] == ["up", "-d", "--no-deps", "--no-build", "--force-recreate", "--quiet-pull", "cms"]
    assert shlex.split(runtime.stop()) == ["docker", "compose", "--progress", "quiet", "-p", "shop-cms", "stop", "cms"]
    assert runtime.watched() == ["shop-cms/cms"]
    assert runtime.RUNS_TWO is False and runtime.RELEASE_HOLDS_DEPENDENCIES is False


def test_a_compose_file_named_in_the_configuration_is_passed_to_every_command_with_a_release(tmp_path):
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_FILE="deploy/compose.prod.yml")
    assert "-f deploy/compose.prod.yml up" in runtime.start(ROOT)
    assert " -f " not in runtime.stop()  # the project, as Docker knows it, needs no file


def test_the_cli_runs_in_a_one_off_container_with_the_release_mounted_read_only(tmp_path):
    runtime = compose(tmp_path)
    words = shlex.split(runtime.cli(ROOT, "schema", "apply", "--dry-run", "snapshots/schema.yaml"))
    run_at = words.index("run")
    assert words[run_at:run_at + 5] == ["run", "--rm", "--no-deps", "-T", "--quiet-pull"]
    assert words[words.index("-v") + 1] == f"{ROOT}:{ROOT}:ro"
    assert words[-7:] == ["directus", "node", "/directus/cli.js", "schema", "apply", "--dry-run",
                          f"{ROOT}/snapshots/schema.yaml"]
    # an absolute output path: its folder mounted writable at the same path
    out = shlex.split(runtime.cli(ROOT, "schema", "snapshot", "/srv/directus/backups/b1/schema.yaml"))
    assert "/srv/directus/backups/b1:/srv/directus/backups/b1" in out
    assert out[-1] == "/srv/directus/backups/b1/schema.yaml"


def test_the_project_name_follows_composes_rule(tmp_path):
    with pytest.raises(ConfigError, match="DIRECTUS_COMPOSE_PROJECT"):
        compose(tmp_path, DIRECTUS_COMPOSE_PROJECT="My Project")


def test_settings_are_the_services_environment_over_the_images_with_host_paths():
    found = settings_of(QUICKSTART, IMAGE, "directus", ROOT)
    env = found["process"]
    assert env["DB_FILENAME"] == "./database/data.db"  # the compose file's, over the image's default
    assert env["STORAGE_LOCAL_ROOT"] == "./uploads"  # Directus's default, inside /directus
    assert env["EXTENSIONS_PATH"] == "./extensions"
    assert env["NODE_ENV"] == "production" and "UNSET" not in env
    assert found["version"] == "12.4.0" and found["config_path"] == f"{ROOT}/.env"
    # the links every release gets follow from them: the database folder, uploads, .registry
    links = {link.path: link.target for link in shared_links(Layout("/srv/directus"), env)}
    assert links["database"] == "/srv/directus/shared/database"
    assert links["uploads"] == "/srv/directus/shared/uploads"
    assert links["extensions/.registry"] == "/srv/directus/shared/extensions-registry"


def test_a_bind_mount_outside_the_release_stays_an_absolute_host_path():
    mounts = [("/directus/uploads", {"type": "bind", "source": "/mnt/media/uploads"})]
    assert host_path("STORAGE_LOCAL_ROOT", "uploads", "/directus", mounts, ROOT) == "/mnt/media/uploads"
    deeper = [("/directus", {"type": "bind", "source": "/data"}),
              ("/directus/uploads", {"type": "bind", "source": f"{ROOT}/files"})]
    assert host_path("STORAGE_LOCAL_ROOT", "/directus/uploads/2024", "/directus", deeper, ROOT) == "./files/2024"


def test_state_inside_the_container_or_on_a_named_volume_is_refused():
    no_database = {"services": {"directus": {**QUICKSTART["services"]["directus"],
                                             "volumes": QUICKSTART["services"]["directus"]["volumes"][1:]}}}
    with pytest.raises(Refused, match="DB_FILENAME=/directus/database/data.db is inside the container"):
        settings_of(no_database, IMAGE, "directus", ROOT)
    named = {"services": {"directus": {**QUICKSTART["services"]["directus"], "volumes": [
        {"type": "volume", "source": "directus_uploads", "target": "/directus/uploads"},
        *QUICKSTART["services"]["directus"]["volumes"][::2]]}}}
    with pytest.raises(Refused, match="named volume 'directus_uploads'"):
        settings_of(named, IMAGE, "directus", ROOT)
    with pytest.raises(Refused, match="no service 'cms'.*cache, directus"):
        settings_of(QUICKSTART, IMAGE, "cms", ROOT)


def test_status_and_the_image_check_run_against_a_fake_docker(tmp_path):
    runtime = compose(tmp_path)
    log = tmp_path / "log"
    fake_command(tmp_path / "bin", "docker", f'echo "$*" >> {log}\n'
                 'case "$*" in *"ps --status running"*) [ -f ' + str(tmp_path / "up") + ' ] && echo abc123;; '
                 '*"config --images"*) echo directus/directus:12.4.0;; '
                 '*"image inspect"*) [ -f ' + str(tmp_path / "have") + ' ] || exit 1;; esac')
    env = path_with(tmp_path / "bin")
    instance = runtime.instances()[0]
    assert run(runtime.status(instance), env=env).stdout.strip() == "stopped"
    (tmp_path / "up").touch()
    assert run(runtime.status(instance), env=env).stdout.strip() == "online"

    release = tmp_path / "release"
    release.mkdir()
    script = "\n".join([*runtime.dependencies_lines(str(release)), 'echo "$how $key"'])
    assert run(script, env=env).stdout.strip() == "pulled directus/directus:12.4.0"
    assert "pull --quiet directus" in log.read_text()
    (tmp_path / "have").touch()
    log.write_text("")
    assert run(script, env=env).stdout.strip() == "present directus/directus:12.4.0"
    assert "pull" not in log.read_text()  # an image already there is not pulled again
