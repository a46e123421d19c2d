"""runtimes/compose.py without Docker: the commands it builds (checked as data, and run here
against a fake `docker` that records its arguments), the settings of a resolved compose
configuration turned into host paths through its bind mounts, and the refusals of state kept
inside a container or on a named volume."""

from __future__ import annotations

import os
import shlex
import shutil

import pytest
import yaml

from directus_deploy.core.errors import ConfigError, Refused
from directus_deploy.engines import engine_for
from directus_deploy.host.script import EMIT_FUNCTION, parse_results
from directus_deploy.runtimes import load_config, runtime_for
from directus_deploy.runtimes.compose import (
    Compose,
    database_service,
    host_path,
    served_port,
    settings_of,
    volumes_of,
)
from directus_deploy.state.layout import Layout
from directus_deploy.state.production import Production
from directus_deploy.state.shared import shared_links

from ..helpers import write_env
from .local import fake_command, path_with, run, strict

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


# what `docker compose config --format yaml directus` prints: the services it depends on too, first
SERVICES_YAML = ("printf 'services:\\n  database:\\n    image: postgres:15\\n  directus:\\n    depends_on: {}\\n"
                 "    image: directus/directus:12.4.0\\nnetworks:\\n  default: {}\\n'")


def compose(tmp_path, **settings) -> Compose:
    config = load_config({"DEPLOY_ENV_FILE": str(write_env(tmp_path / "deploy.env", {**VALID, **settings}))})
    runtime = runtime_for(config, Layout("/srv/directus"))
    assert isinstance(runtime, Compose)
    return runtime


def docker_words(command: str) -> list[str]:
    """The `docker compose ...` a command runs (after its `cd` into the release)."""
    return shlex.split(command.split("exec ", 1)[1].removesuffix(")")) if "exec " in command else shlex.split(command)


def test_every_command_names_the_project_and_touches_only_the_directus_service(tmp_path):
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_PROJECT="shop-cms", DIRECTUS_COMPOSE_SERVICE="cms")
    start = runtime.start(ROOT)
    assert start.startswith(runtime.after_one_offs() + f" && (cd {ROOT} && if [ -f .deploy-compose ]; then export COMPOSE_FILE=")
    words = docker_words(start)
    assert words[:6] == ["docker", "compose", "--progress", "quiet", "-p", "shop-cms"]
    assert words[6:] == ["up", "-d", "--no-deps", "--no-build", "--force-recreate", "--quiet-pull", "cms"]
    assert shlex.split(runtime.stop()) == ["docker", "compose", "--progress", "quiet", "-p", "shop-cms", "stop", "cms"]
    assert runtime.watched() == ["shop-cms/cms"]
    assert runtime.RELEASE_HOLDS_DEPENDENCIES is False
    assert [str(i) for i in runtime.instances()] == ["compose service shop-cms/cms"]  # restart: the service alone


def test_a_compose_file_named_in_the_configuration_is_used_where_a_folder_lists_none(tmp_path):
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_FILE="deploy/compose.prod.yml")
    assert "else export COMPOSE_FILE=deploy/compose.prod.yml; fi" in runtime.start(ROOT)
    assert "COMPOSE_FILE" not in runtime.stop()  # the project, as Docker knows it, needs no file


def test_the_cli_runs_in_a_one_off_container_with_the_release_mounted_read_only(tmp_path):
    runtime = compose(tmp_path)
    words = docker_words(runtime.cli(ROOT, "schema", "apply", "--dry-run", "snapshots/schema.yaml"))
    run_at = words.index("run")
    assert words[run_at:run_at + 5] == ["run", "--rm", "--no-deps", "-T", "--quiet-pull"]
    assert words[words.index("-v") + 1] == f"{ROOT}:{ROOT}:ro"
    assert words[-7:] == ["directus", "node", "/directus/cli.js", "schema", "apply", "--dry-run",
                          f"{ROOT}/snapshots/schema.yaml"]
    # an absolute output path: its folder mounted writable at the same path
    out = docker_words(runtime.cli(ROOT, "schema", "snapshot", "/srv/directus/backups/b1/schema.yaml"))
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
    with pytest.raises(Refused, match="on the volume 'directus_uploads', whose folder on the host the tool does not know"):
        settings_of(named, IMAGE, "directus", ROOT)
    with pytest.raises(Refused, match="no service 'cms'.*cache, directus"):
        settings_of(QUICKSTART, IMAGE, "cms", ROOT)


def test_state_on_a_named_volume_is_in_the_folder_docker_keeps_it_in():
    """`uploads:/directus/uploads` with `volumes: {uploads: {}}`: Compose names the volume after
    the project; its folder on the host (`docker volume ls`) is where the tool reads and writes
    the files, as for any folder outside the release; one not made yet will be in Docker's."""
    directus = QUICKSTART["services"]["directus"]
    named = {"services": {"directus": {**directus, "volumes": [
        {"type": "volume", "source": "database", "target": "/directus/database"},
        {"type": "volume", "source": "uploads", "target": "/directus/uploads"}, directus["volumes"][2]]}},
        "volumes": {"database": {"name": "site_database"}, "uploads": {"name": "site_uploads"}}}
    listed = volumes_of("root /srv/docker\nvolume site_uploads local rw /srv/docker/volumes/site_uploads/_data\n"
                        "volume other local no /x\nnoise\n")
    found = settings_of(named, IMAGE, "directus", ROOT, listed)["process"]
    assert found["STORAGE_LOCAL_ROOT"] == "/srv/docker/volumes/site_uploads/_data"
    assert found["DB_FILENAME"] == "/srv/docker/volumes/site_database/_data/data.db"  # made at the first start
    with pytest.raises(Refused, match="the named volume 'site_uploads' is in /v, which the deploy user cannot read and "
                                      "write .*deploy as root"):
        settings_of(named, IMAGE, "directus", ROOT, {"site_uploads": ("local", "no", "/v")})
    with pytest.raises(Refused, match="^STORAGE_LOCAL_ROOT=./uploads: the named volume 'site_uploads' uses the driver "
                                      "'rexray'"):
        settings_of(named, IMAGE, "directus", ROOT, {"site_uploads": ("rexray", "rw", "/v")})


def test_extensions_on_no_mount_are_the_images_and_the_release_folder_stands_for_them():
    """A Dockerfile copying ./extensions into the image, nothing mounted there: on the host the
    extensions are the release's own folder (its .registry a link into shared/ as always)."""
    directus = QUICKSTART["services"]["directus"]
    baked = {"services": {"directus": {**directus, "volumes": directus["volumes"][:2]}}}
    found = settings_of(baked, IMAGE, "directus", ROOT)
    assert found["process"]["EXTENSIONS_PATH"] == "./extensions"  # the release's, on the host
    elsewhere = {"services": {"directus": {**baked["services"]["directus"],
                                           "environment": {**directus["environment"], "EXTENSIONS_PATH": "/opt/ext"}}}}
    with pytest.raises(Refused, match="EXTENSIONS_PATH=/opt/ext is inside the container"):
        settings_of(elsewhere, IMAGE, "directus", ROOT)


def test_status_and_the_image_check_run_against_a_fake_docker(tmp_path):
    runtime = compose(tmp_path)
    log = tmp_path / "log"
    fake_command(tmp_path / "bin", "docker", f'echo "$*" >> {log}\n'
                 'case "$*" in *"ps -q --filter status=running"*"oneoff=False"*) [ -f ' + str(tmp_path / "up") + ' ] && echo abc123;; '
                 '*"config --format yaml directus") ' + SERVICES_YAML + ';; '
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


def test_a_release_lists_its_compose_files_and_mounts_the_shared_marketplace_folder(tmp_path):
    """Run here on a release folder: Compose's own file and override are listed, the tool's
    override mounts shared/extensions-registry at its own path, and the release's .registry
    link becomes absolute (a relative one would point nowhere inside the container)."""
    runtime = compose(tmp_path)
    runtime.layout = Layout(str(tmp_path / "srv"))
    release = tmp_path / "srv" / "releases" / "r1"
    (release / "extensions").mkdir(parents=True)
    (release / "docker-compose.yml").write_text("services: {}\n")
    (release / "docker-compose.override.yml").write_text("services: {}\n")
    (release / "extensions" / ".registry").symlink_to(  # relative, as the release's links are made
        os.path.relpath(tmp_path / "srv" / "shared" / "extensions-registry", release / "extensions"))
    mounted = tmp_path / "mounted"
    mounted.touch()
    fake_command(tmp_path / "bin", "docker", "case \"$*\" in *'config --format yaml directus') " + SERVICES_YAML.replace("directus/directus:12.4.0", "img:1")
                 + f";; *'config --format json directus') [ -f {mounted} ] && echo '        \"target\": \"/directus/extensions\",';; esac; true")
    run(strict(*runtime.dependencies_lines(str(release))), env=path_with(tmp_path / "bin"))
    assert (release / ".deploy-compose").read_text() == "docker-compose.yml:docker-compose.override.yml:.deploy-compose.yml"
    registry = str(tmp_path / "srv" / "shared" / "extensions-registry")
    assert os.readlink(release / "extensions" / ".registry") == registry
    override = yaml.safe_load((release / ".deploy-compose.yml").read_text())
    assert override == {"services": {"directus": {"volumes": [{"type": "bind", "source": registry, "target": registry}]}}}

    mounted.unlink()  # the extensions built into the image: the marketplace folder mounted over the image's too
    run(strict(*runtime.dependencies_lines(str(release))), env=path_with(tmp_path / "bin"))
    override = yaml.safe_load((release / ".deploy-compose.yml").read_text())
    assert override["services"]["directus"]["volumes"][1] == {"type": "bind", "source": registry,
                                                              "target": "/directus/extensions/.registry"}

    bare = tmp_path / "srv" / "releases" / "r2"
    bare.mkdir()
    result = run(strict(*runtime.dependencies_lines(str(bare))), env=path_with(tmp_path / "bin"), check=False)
    assert result.returncode != 0 and "the release has no compose file" in result.stderr


def test_a_cli_container_left_by_an_interrupted_release_is_waited_for_before_anything_starts(tmp_path):
    """`fab` killed while a one-off CLI container ran (a migration): the container goes on. The
    next start or CLI run waits for it to end and removes it first; with none, nothing waits."""
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_PROJECT="shop")
    log = tmp_path / "log"
    fake_command(tmp_path / "bin", "docker", f'echo "$*" >> {log}\n'
                 # a blue/green container (a color label) is a one-off too: never waited for
                 'case "$*" in "ps -a "*) echo "c010r blue"; [ -f ' + str(tmp_path / "left") + ' ] && echo "0ff1 ";; esac; exit 0')
    env = path_with(tmp_path / "bin")
    release = tmp_path / "release"
    release.mkdir()
    run(strict(runtime.start(str(release))), env=env, cwd=tmp_path)
    calls = log.read_text().splitlines()
    assert [c.split()[0:2] for c in calls] == [["ps", "-a"], ["compose", "--progress"]]  # nothing to wait for
    for label in ("com.docker.compose.project=shop", "com.docker.compose.oneoff=True",
                  "com.docker.compose.service=directus"):
        assert f"label={label}" in calls[0]
    log.unlink()
    (tmp_path / "left").touch()
    result = run(strict(runtime.cli(str(release), "database", "migrate:latest")), env=env, cwd=tmp_path)
    calls = log.read_text().splitlines()
    assert calls[1:3] == ["wait 0ff1", "rm -f 0ff1"] and "run --rm" in calls[3]
    assert "interrupted release" in result.stderr


PG_ENV = dict(DB_CLIENT="pg", DB_HOST="db host", DB_PORT="5433", DB_USER="us'er", DB_PASSWORD="pa$$ 'w\"d",
              DB_DATABASE='my"db')


def test_postgres_in_a_compose_service_runs_its_clients_in_that_container_the_password_by_name(tmp_path):
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_PROJECT="site")
    prod = Production(root="/r", env_file="/r/.env", env=PG_ENV, uploads=None, extensions="/r/extensions",
                      registry="/r/extensions/.registry", directus_version="12.4.0", in_layout=False, release_id=None,
                      database_exec=runtime.database_exec("database"))
    engine = engine_for(prod)
    assert engine.tools == ()  # nothing needed on the host but docker
    log = tmp_path / "calls.log"
    fake_command(tmp_path / "bin", "docker", f'printf "%s\\n" "$@" >> {log}; env | grep "^PG" >> {log}')
    script = strict(engine.dump(str(tmp_path / "database.pgdump")))
    assert PG_ENV["DB_PASSWORD"] not in script
    run(script, env={**path_with(tmp_path / "bin"), **engine.secret_env()})
    words = log.read_text().split("\n")
    assert words[:7] == ["compose", "--progress", "quiet", "-p", "site", "exec", "-T"]
    assert words[7:words.index("database")] == [
        "-e", "PGHOST=db host", "-e", "PGPORT=5433", "-e", "PGUSER=us'er", "-e", 'PGDATABASE=my"db',
        "-e", "PGCONNECT_TIMEOUT=10", "-e", "PGPASSWORD"]
    assert words[words.index("database") + 1:][:3] == ["pg_dump", "-Fc", "--no-password"]
    assert "PGPASSWORD=pa$$ 'w\"d" in words  # the value reaches docker's environment, not its arguments
    assert (tmp_path / "database.pgdump").exists()  # written by the host's redirection


def test_the_database_service_is_the_one_db_host_names():
    pg = {"DB_CLIENT": "pg", "DB_HOST": "database", "DB_USER": "d", "DB_DATABASE": "d"}
    services = {"directus": {}, "database": {"volumes": [{"type": "volume", "source": "data", "target": "/var/lib/pg"}]}}
    assert database_service(pg, services, "directus") == "database"
    url = {"DB_CLIENT": "pg", "DB_CONNECTION_STRING": "postgres://u:p@database:5432/d"}
    assert database_service(url, services, "directus") == "database"
    assert database_service({**pg, "DB_HOST": "db.example.com"}, services, "directus") is None
    assert database_service({**pg, "DB_HOST": "directus"}, services, "directus") is None


def test_a_built_service_gets_an_image_named_after_the_release_and_other_services_start_first(tmp_path):
    """Against a fake `docker`: `build:` in the service's configuration builds the image under the
    release's name (a second override), reported unchanged when Docker's cache gave an image the
    host had; the project's other services start (never recreated), the folders they keep data in
    linked into shared/ first."""
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_PROJECT="shop")
    runtime.layout = Layout(str(tmp_path / "srv"))
    release = tmp_path / "srv" / "releases" / ".tmp-r1"
    release.mkdir(parents=True)
    (release / "docker-compose.yml").write_text("services: {}\n")
    log, flag = tmp_path / "log", tmp_path.joinpath
    fake_command(tmp_path / "bin", "docker", f'echo "$*" >> {log}\n' + "\n".join([
        'case "$*" in',
        f'  *"config --format json directus") [ -f {flag("built")} ] && echo \'  "build": {{\';;',
        '  *"config --services") printf "directus\\ndatabase\\n";;',
        f'  *"config --format json database") if [ -f {flag("inside")} ]; then echo \'"source": "{release}/data/db",\'; '
        'else echo \'"source": "pgdata",\'; fi;;',
        '  *"config --format yaml directus") ' + SERVICES_YAML + ';;',
        '  "images -q --no-trunc shop-directus") echo sha256:old;;',
        f'  "image inspect -f {{{{.Id}}}} "*) if [ -f {flag("same")} ]; then echo sha256:old; else echo sha256:new; fi;;',
        "esac"]))
    env = path_with(tmp_path / "bin")
    script = "\n".join([*runtime.dependencies_lines(str(release), "r1"), 'echo "$how $key"'])

    flag("built").touch()
    assert run(script, env=env).stdout.strip() == "built shop-directus:r1"
    calls = log.read_text()
    assert "build directus" in calls and "pull --quiet" not in calls
    assert (release / ".deploy-compose").read_text() == "docker-compose.yml:.deploy-compose-image.yml"
    assert yaml.safe_load((release / ".deploy-compose-image.yml").read_text()) == {
        "services": {"directus": {"image": "shop-directus:r1"}}}
    up = next(line for line in calls.splitlines() if " up " in line)
    assert up.endswith("up -d --no-recreate --no-deps --no-build --wait --quiet-pull database")
    flag("same").touch()
    assert run(script, env=env).stdout.strip() == "unchanged shop-directus:r1"

    flag("built").unlink()
    log.write_text("")
    assert run(script, env=env).stdout.strip().endswith("directus/directus:12.4.0")
    assert " build " not in log.read_text()

    flag("inside").touch()  # the guide's ./data/database: the same folder in shared/ for every release
    run(script, env=env)
    assert os.readlink(release / "data" / "db") == str(tmp_path / "srv" / "shared" / "services" / "data" / "db")
    assert (tmp_path / "srv" / "shared" / "services" / "data" / "db").is_dir()


def test_adopting_links_the_data_other_services_keep_in_the_install_where_it_is(tmp_path):
    runtime = compose(tmp_path)
    runtime.layout = Layout(str(tmp_path / "srv"))
    install = tmp_path / "install"
    (install / "data" / "database").mkdir(parents=True)
    (install / "init.sql").write_text("-- a file of the project, not data\n")
    fake_command(tmp_path / "bin", "docker", 'case "$*" in *"config --services") printf "directus\\ndatabase\\n";; '
                 f'*"config --format json database") printf \'"source": "%s",\\n\' {install}/data/database {install}/init.sql '
                 '/var/elsewhere;; esac')
    run(strict(*runtime.adopt_lines(str(install))), env=path_with(tmp_path / "bin"))
    services = tmp_path / "srv" / "shared" / "services"
    assert os.readlink(services / "data" / "database") == str(install / "data" / "database")
    assert sorted(p.name for p in services.rglob("*")) == ["data", "database"]


MY_ENV = {"DB_CLIENT": "mysql", "DB_HOST": "database", "DB_PORT": "3306", "DB_USER": "d'u", "DB_DATABASE": "my`db",
          "DB_PASSWORD": 'p"a\\ss w$rd'}
# the database's container, here: `docker compose ... exec -T -e NAME... database <command>` runs <command>
FAKE_DOCKER_EXEC = 'while [ "$1" != database ]; do shift; done; shift; exec "$@"'
# a client in there: its option file (and its mode) and its arguments, each on a line
FAKE_CLIENT = ('for a in "$@"; do case "$a" in --defaults-extra-file=*) f=${a#*=}; echo "$f" >> "$FILES"; '
               'stat -c "mode %a" "$f"; cat "$f";; *) echo "arg $a";; esac; done; echo "tool $(basename "$0")"')


def test_mysql_in_a_compose_service_runs_its_own_client_there_the_password_by_name(tmp_path):
    """MariaDB or MySQL as the project's `database` service: its own client and dump tool run in
    its container (MariaDB's names first: MariaDB 11's images have no mysql* commands), with a
    0600 option file written there from the password passed by name and removed after; the dump
    is compressed on the host."""
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_PROJECT="site")
    prod = Production(root="/r", env_file="/r/.env", env=MY_ENV, uploads=None, extensions="/r/extensions",
                      registry="/r/extensions/.registry", directus_version="12.4.0", in_layout=False, release_id=None,
                      database_exec=runtime.database_exec("database"))
    engine = engine_for(prod)
    assert engine.tools == ("zstd",) and engine.prelude("/w") == ""
    bin_dir = tmp_path / "bin"
    fake_command(bin_dir, "docker", FAKE_DOCKER_EXEC)
    for tool in ("mariadb-dump", "mysqldump", "mariadb", "mysql"):
        fake_command(bin_dir, tool, FAKE_CLIENT)
    fake_command(bin_dir, "zstd", 'cp "${@: -1}" "${@: -3:1}"')  # zstd ... -o target -- raw: keep it readable
    for tool in ("bash", "sh", "mktemp", "rm", "stat", "cat", "basename", "cp"):  # and no client of this machine's
        os.symlink(shutil.which(tool), bin_dir / tool)
    files = tmp_path / "files"
    env = {"PATH": str(bin_dir), **engine.secret_env(), "FILES": str(files)}
    target = tmp_path / "database.sql.zst"
    script = strict(engine.dump(str(target)))
    assert MY_ENV["DB_PASSWORD"] not in script and "-e MYSQL_OPTION_PASSWORD database sh -c" in script
    run(script, env=env)
    dumped = target.read_text().splitlines()
    assert dumped[0] == "mode 600" and 'password="p\\"a\\\\ss w$rd"' in dumped
    assert "host=database" in dumped and "user=d'u" in dumped and "port=3306" in dumped
    assert dumped[-2:] == ["arg my`db", "tool mariadb-dump"] and "arg --single-transaction" in dumped
    assert not os.path.exists(files.read_text().split()[0])  # the option file is gone

    (bin_dir / "mariadb").unlink()  # MySQL's image: mysql, not mariadb
    out = run(strict(engine.size_query()), env=env).stdout.splitlines()
    assert out[-1] == "tool mysql" and "arg --batch" in out and "arg my`db" in out


# -- blue/green: two containers of the Directus service beside its own -------------------------

BLUEGREEN = dict(DEPLOY_STRATEGY="bluegreen", DIRECTUS_URL="http://127.0.0.1", DEPLOY_BLUEGREEN_PORTS="8101,8102")
RESTART_YAML = ("printf 'services:\\n  database:\\n    restart: always\\n  directus:\\n    image: d:1\\n"
                "    restart: unless-stopped\\n'")


def test_bluegreen_colors_are_containers_of_the_service_in_the_same_project(tmp_path):
    runtime = compose(tmp_path, DIRECTUS_COMPOSE_PROJECT="shop", DEPLOY_NGINX_UPSTREAM_FILE=str(tmp_path / "up.conf"),
                      **BLUEGREEN)
    plain, blue, green = runtime.instances()
    assert (plain.app, plain.port, blue.app, blue.port, green.app, green.port) == (
        "shop/directus", None, "shop-directus-blue", 8101, "shop-directus-green", 8102)
    assert runtime.watched(green) == ["shop-directus-green"] and runtime.watched() == []
    release = tmp_path / "release"
    release.mkdir()
    start = runtime.start_instance(green, str(release))
    words = docker_words(start.split("policy=$(", 1)[1].split(") && ", 1)[1].split(" >/dev/null")[0])
    # the project's networks and settings, its own ports left out (`run` publishes none of them)
    assert words[6:] == ["run", "-d", "-T", "--no-deps", "--quiet-pull", "--name", "shop-directus-green",
                         "--label", "directus-deploy.instance=green", "-e", "PORT=8102",
                         "--publish", "127.0.0.1:8102:8102", "directus"]
    assert runtime.start_instance(plain, ROOT) == runtime.start(ROOT).split("*) ", 1)[1].split(" ;;")[0]

    log = tmp_path / "docker.log"
    fake_command(tmp_path / "bin", "docker", f'echo "$*" >> {log}\n'
                 'case "$*" in *"config --format yaml"*) ' + RESTART_YAML + ';; esac; exit 0')
    run(strict(start), env=path_with(tmp_path / "bin"))
    calls = log.read_text().splitlines()
    assert calls[1] == "rm -f shop-directus-green"  # after the one-off check: the old container of that color
    assert "run -d" in calls[3]
    # `compose run` drops the service's restart policy: given back, so the color survives a reboot
    assert calls[4] == "update --restart unless-stopped shop-directus-green"

    log.unlink()
    run(strict(runtime.retire(blue), runtime.retire(plain)), env=path_with(tmp_path / "bin"))
    calls = log.read_text().splitlines()
    assert calls[:2] == ["stop shop-directus-blue", "rm -f shop-directus-blue"]
    assert calls[2].startswith("ps -aq") and "label=com.docker.compose.oneoff=False" in calls[2]


def test_bluegreen_starts_the_instance_nginx_names(tmp_path):
    include = tmp_path / "up.conf"
    runtime = compose(tmp_path, DEPLOY_NGINX_UPSTREAM_FILE=str(include), **BLUEGREEN)
    log = tmp_path / "docker.log"
    fake_command(tmp_path / "bin", "docker", f'echo "$*" >> {log}; exit 0')
    for port, expected in ((8102, "--name directus-directus-green"), (8101, "--name directus-directus-blue"), (8055, "up -d --no-deps")):
        include.write_text(f"upstream directus {{\n    server 127.0.0.1:{port};\n}}\n")
        log.write_text("")
        release = tmp_path / "release"
        release.mkdir(exist_ok=True)
        run(strict(runtime.start(str(release))), env=path_with(tmp_path / "bin"), cwd=tmp_path)
        assert expected in log.read_text(), (port, log.read_text())
    assert "docker stop \"$c\"" in runtime.stop() and "directus-directus-blue directus-directus-green" in runtime.stop()


def test_the_port_the_host_reaches_a_container_on_is_the_one_published_for_its_port():
    published = {"ports": [{"target": 9000, "published": "9000"}, {"target": 8055, "published": "18055", "host_ip": "127.0.0.1"}]}
    assert served_port(published, {}) == 18055
    assert served_port({"ports": [{"target": 3000, "published": "8080"}]}, {"PORT": "3000"}) == 8080
    assert served_port({"network_mode": "host"}, {"PORT": "8056"}) == 8056
    assert served_port({"ports": [{"target": 8055}]}, {}) is None  # a random host port: nothing to name
    found = settings_of({"services": {"directus": {**QUICKSTART["services"]["directus"], **published}}}, IMAGE,
                        "directus", ROOT)
    assert found["served_port"] == 18055


def test_a_backup_keeps_the_compose_files_the_production_runs_with_and_its_image(tmp_path):
    runtime = compose(tmp_path)
    release = tmp_path / "release"
    (release / "deploy").mkdir(parents=True)
    for name in ("deploy/compose.prod.yml", ".deploy-compose.yml"):
        (release / name).write_text(f"# {name}\n")
    (release / ".deploy-compose").write_text("deploy/compose.prod.yml:.deploy-compose.yml")
    fake_command(tmp_path / "bin", "docker", 'case "$*" in *"config --format yaml directus") ' + SERVICES_YAML + ';; '
                 '"image inspect -f {{.Id}} directus/directus:12.4.0") echo sha256:abc;; esac')
    target = tmp_path / "backup" / "runtime"
    out = run(strict(EMIT_FUNCTION, *runtime.backup_lines(str(release), str(target))),
              env=path_with(tmp_path / "bin")).stdout
    assert (target / "deploy" / "compose.prod.yml").read_text() == "# deploy/compose.prod.yml\n"
    assert (target / ".deploy-compose.yml").is_file() and oct(target.stat().st_mode)[-3:] == "700"
    assert parse_results(out).first("image") == {"kind": "image", "name": "directus/directus:12.4.0", "id": "sha256:abc"}
