"""Directus run by Docker Compose (DIRECTUS_SERVICE=compose) on the test bed: Docker Engine,
Compose v2 and the image `directus/directus:12.4.0` built by testbed/docker.py.

A new host is set up with the production `.env`, then the project's own tags carry its compose
file (the quickstart shape: SQLite and uploads in bind mounts, extensions bind-mounted from the
release). The tool installs the database with the image's CLI, releases a schema change with
migrations run by the tool before any new container serves, and rolls the code back: every
row and upload written in between is still there, and the compose project keeps its name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from testbed import docker as docker_bed
from testbed.project import add_tag
from testbed.toolchain import DIRECTUS_VERSION, PREVIOUS_DIRECTUS_VERSION

from .helpers import fab_ok, run_fab, write_env
from .reliability import fab_process, run_until

COMPOSE_FILE = docker_bed.COMPOSE_FILE.format(version=DIRECTUS_VERSION)


@pytest.fixture(scope="module")
def compose_production(bed, tmp_path_factory):
    """A host set up for a compose production, its project repository with tags c1 and c2."""
    production = docker_bed.ComposeProduction(bed, tmp_path_factory.mktemp("compose")).create()
    yield production
    production.destroy()


def test_compose_release_migrates_with_the_tool_and_rolls_back(compose_production):
    setup = compose_production
    api, env_file, srv = setup.api, setup.env_file, setup.srv

    check = fab_ok("host.check", env_file=env_file).stdout
    assert "Docker Engine: 20.10" in check and "Compose: " in check, check

    first = fab_ok("release", "--tag=c1", "--yes", env_file=env_file)
    assert "bootstrap" in first.stdout, first.stdout[-3000:]
    assert api.get("/hello", auth=False)["release"] == "v1"
    running = setup.containers()
    assert [c["State"] for c in running] == ["running"], running
    assert f"container {running[0]['Names']}: directus/directus:12.4.0, running" in fab_ok(
        "host.check", env_file=env_file).stdout
    assert (srv / "shared" / "database" / "data.db").is_file()  # in shared/, not in the release or the container

    # editors' work before the release: an item and an upload
    item = api.json("POST", "/items/articles", {"title": "written before c2"})["data"]
    upload = os.urandom(300_000)
    file_id = api.upload("before.bin", upload, "uploaded before c2", mime="application/octet-stream")

    second = fab_ok("release", "--tag=c2", "--yes", env_file=env_file)
    out = second.stdout
    # the image is the same: its migration files (listed where the container sees them) are all
    # applied, so no migrate:latest; the schema change is applied by the tool
    assert "no migration pending; schema applied" in out, out[-3000:]
    assert api.get("/hello", auth=False)["release"] == "v2"
    assert api.get("/collections/tags")["data"]["collection"] == "tags"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before c2"
    assert api.request("GET", f"/assets/{file_id}") == upload
    # one Directus container, of the same compose project; the tool's one-off CLI containers are gone
    assert [c["State"] for c in setup.containers()] == ["running"]
    # the backup before c2 keeps what c1 ran: its compose files and its image, by name and ID
    backup = sorted((srv / "backups").iterdir())[-1]
    assert (backup / "runtime" / "docker-compose.yml").read_text() == COMPOSE_FILE
    image = json.loads((backup / "manifest.json").read_text())["image"]
    assert image["name"] == f"directus/directus:{DIRECTUS_VERSION}" and image["id"].startswith("sha256:"), image

    back = fab_ok("rollback", "--yes", env_file=env_file)
    assert "c1" in back.stdout, back.stdout[-2000:]
    assert api.get("/hello", auth=False)["release"] == "v1"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before c2"
    assert api.request("GET", f"/assets/{file_id}") == upload


def test_compose_rollback_with_the_database_leaves_directus_able_to_write(compose_production):
    """After `rollback --with-db` the database is the backup's, and Directus in its container
    (uid 1000) still writes: a new item and a new upload after the rollback are kept."""
    setup = compose_production
    api = setup.api
    before = api.json("POST", "/items/articles", {"title": "before the release"})["data"]
    fab_ok("release", "--tag=c2", "--yes", env_file=setup.env_file)
    during = api.json("POST", "/items/articles", {"title": "after the release"})["data"]
    result = fab_ok("rollback", "--to=c1", "--with-db", "--yes", env_file=setup.env_file)
    assert api.get("/hello", auth=False)["release"] == "v1", result.stdout[-2000:]
    titles = {a["title"] for a in api.get("/items/articles?limit=-1")["data"]}
    assert before["title"] in titles and during["title"] not in titles  # the database of before the release
    assert "state before, kept in" in result.stdout  # what it set aside is in the safety backup
    item = api.json("POST", "/items/articles", {"title": "written after the rollback"})["data"]
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written after the rollback"
    file_id = api.upload("after.bin", b"after" * 1000, "uploaded after the rollback", mime="application/octet-stream")
    assert api.request("GET", f"/assets/{file_id}") == b"after" * 1000


def test_compose_settings_in_the_container_refused(compose_production, tmp_path):
    """A compose file keeping the SQLite file in the container (no volume) is refused before
    anything changes: every release would start on an empty database."""
    setup = compose_production
    project = tmp_path / "project"
    subprocess.run(["git", "clone", "-q", str(setup.project), str(project)], check=True)
    add_tag(project, "c-novolume", {"docker-compose.yml": COMPOSE_FILE.replace("      - ./database:/directus/database\n", "")},
            base="c2")
    env_file = write_env(tmp_path / "deploy.env", {
        **{k: v for k, v in (line.split("=", 1) for line in setup.env_file.read_text().splitlines() if "=" in line)},
        "DEPLOY_SOURCE": str(project)})
    releases_before = sorted(p.name for p in (setup.srv / "releases").iterdir())
    result = run_fab("release", "--tag=c-novolume", "--yes", env_file=env_file)
    assert result.returncode != 0
    assert "inside the container" in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr
    assert sorted(p.name for p in (setup.srv / "releases").iterdir()) == releases_before


def test_a_rehearsal_under_compose_is_refused_in_one_line(compose_production):
    """The rehearsal runs a release's own node_modules, which a compose release does not have:
    asked for, it is refused before anything changes."""
    setup = compose_production
    releases_before = sorted(p.name for p in (setup.srv / "releases").iterdir())
    result = run_fab("release", "--tag=c2", "--rehearse", "--yes", env_file=setup.env_file)
    assert result.returncode != 0
    assert "a rehearsal is not built for DIRECTUS_SERVICE=compose" in result.stdout + result.stderr, result.stdout[-2000:]
    assert sorted(p.name for p in (setup.srv / "releases").iterdir()) == releases_before
    assert not (setup.srv / ".deploy" / "lock").exists()


def test_uploads_the_container_cannot_write_are_refused_with_the_fix(compose_production):
    """Docker makes a missing bind-mount folder as root; Directus (uid 1000) then fails every
    upload. A release onto such a folder is refused before the switch, naming the chown."""
    setup = compose_production
    uploads = setup.srv / "shared" / "uploads"
    serving = [(c["ID"], c["State"]) for c in setup.containers()]
    releases_before = sorted(p.name for p in (setup.srv / "releases").iterdir())
    os.chown(uploads, 0, 0)
    try:
        result = run_fab("release", "--tag=c2", "--yes", env_file=setup.env_file)
    finally:
        os.chown(uploads, 1000, 1000)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"chown -R 1000:1000 {uploads}" in out, out[-2000:]
    assert sorted(p.name for p in (setup.srv / "releases").iterdir()) == releases_before
    assert [(c["ID"], c["State"]) for c in setup.containers()] == serving  # the same one serves
    assert setup.api.request("GET", "/server/ping", auth=False) == b"pong"


def test_a_release_whose_container_crashes_at_start_is_switched_back(compose_production):
    """The new container exits as soon as it starts: the health gate sees it at once, and the
    previous release's compose file and image serve again, with every row and upload."""
    setup = compose_production
    api = setup.api
    serving = api.get("/hello", auth=False)["release"]
    item = api.json("POST", "/items/articles", {"title": "written before the crashing release"})["data"]
    upload = os.urandom(100_000)
    file_id = api.upload("crash.bin", upload, "uploaded before the crashing release", mime="application/octet-stream")
    setup.add_tag("c-crash", "v2", service_lines='    command: ["/bin/sh", "-c", "echo the image fails at start >&2; exit 3"]\n')
    result = run_fab("release", "--tag=c-crash", "--yes", env_file=setup.env_file)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "exited" in out, out[-3000:]
    assert "| the image fails at start" in out  # the container's own log, shown with the failure
    assert api.get("/hello", auth=False)["release"] == serving
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before the crashing release"
    assert api.request("GET", f"/assets/{file_id}") == upload
    running = setup.containers()
    assert [c["State"] for c in running] == ["running"], running
    assert "c-crash" not in (setup.srv / "current").resolve().name  # the failed release is kept, not current


# the guide's healthcheck shape: a command run in the container every second
HEALTHCHECK = ('    healthcheck:\n      test: ["CMD-SHELL", "{test}"]\n      interval: 1s\n      timeout: 5s\n'
               '      retries: 3\n')


def test_the_gate_waits_for_the_containers_healthcheck_and_an_unhealthy_one_is_switched_back(compose_production):
    """With a healthcheck in the compose file, the gate goes on only once Docker reports the
    container healthy; one reported unhealthy (Directus answering, its check failing) fails
    the gate and the previous release serves again."""
    setup = compose_production
    api = setup.api
    serving = api.get("/hello", auth=False)["release"]
    setup.add_tag("c-unhealthy", "v2", service_lines=HEALTHCHECK.format(test="exit 1"))
    result = run_fab("release", "--tag=c-unhealthy", "--yes", env_file=setup.env_file)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "healthcheck reports it unhealthy" in out, out[-3000:]
    assert api.get("/hello", auth=False)["release"] == serving
    assert [c["State"] for c in setup.containers()] == ["running"]

    setup.add_tag("c-healthy", "v2", service_lines=HEALTHCHECK.format(
        test="wget -q -O /dev/null http://127.0.0.1:8055/server/ping"))
    fab_ok("release", "--tag=c-healthy", "--yes", env_file=setup.env_file)
    assert api.get("/hello", auth=False)["release"] == "v2"
    health = subprocess.run(["docker", "inspect", "-f", "{{.State.Health.Status}}", setup.container("directus")["ID"]],
                            check=True, capture_output=True, text=True).stdout.strip()
    assert health == "healthy"


@pytest.mark.parametrize("step", ["run migrations", "switch to"])
def test_a_release_killed_at_a_compose_step_leaves_production_serving(compose_production, step):
    """`fab` killed (SIGKILL) while the tool's one-off CLI container runs, or while `up`
    recreates the Directus container: production serves (or serves again once the container
    started by `up` is up), nothing is lost, and the next release goes through."""
    setup = compose_production
    api = setup.api
    item = api.json("POST", "/items/articles", {"title": f"written before a kill at {step}"})["data"]
    upload = os.urandom(50_000)
    file_id = api.upload("kill.bin", upload, f"uploaded before a kill at {step}", mime="application/octet-stream")
    release = fab_process(setup.env_file, "release", "--tag=c2", "--yes")
    run_until(release, "==> " + step)
    time.sleep(1)  # inside the step: the one-off container or `up` has started
    release.send_signal(signal.SIGKILL)
    release.wait()
    lock = setup.srv / ".deploy" / "lock"
    if lock.exists():
        fab_ok("deploy.unlock", "--force", env_file=setup.env_file)
    fab_ok("release", "--tag=c2", "--yes", env_file=setup.env_file)
    assert api.get("/hello", auth=False)["release"] == "v2"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == f"written before a kill at {step}"
    assert api.request("GET", f"/assets/{file_id}") == upload
    assert [c["State"] for c in setup.containers()] == ["running"]  # no one-off container left behind


@pytest.fixture(scope="module")
def compose_upgrade(bed, tmp_path_factory):
    """A compose production whose tags u1 and u2 hold the same project on Directus 11.17.4 and on
    12.4.0: a platform upgrade is a change of the image tag."""
    production = docker_bed.ComposeProduction(bed, tmp_path_factory.mktemp("compose-upgrade")).create()
    production.add_tag("u1", "v1", PREVIOUS_DIRECTUS_VERSION)
    production.add_tag("u2", "v1", DIRECTUS_VERSION)
    yield production
    production.destroy()


def test_directus_11_to_12_keeps_every_row_and_file_and_rolls_back_with_the_database(compose_upgrade):
    """11.17.4 -> 12.4.0 runs Directus's own system migrations (the tool's migrate:latest, with
    the new image, before the new container serves); every row and upload stays. Going back
    code-only is refused (the database has migrations 11.17.4 does not know); `--with-db`
    returns to 11.17.4 with the database of before the upgrade, and Directus writes again."""
    setup = compose_upgrade
    api, env_file = setup.api, setup.env_file
    database = setup.srv / "shared" / "database" / "data.db"
    fab_ok("release", "--tag=u1", "--yes", env_file=env_file)
    assert setup.images() == [f"directus/directus:{PREVIOUS_DIRECTUS_VERSION}"]
    applied_on_11 = sqlite_rows(database, "SELECT version FROM directus_migrations")
    items = [api.json("POST", "/items/articles", {"title": f"article {n} on 11"})["data"] for n in range(3)]
    upload = os.urandom(1_500_000)
    file_id = api.upload("on-11.bin", upload, "uploaded on 11", mime="application/octet-stream")

    upgraded = fab_ok("release", "--tag=u2", "--yes", env_file=env_file).stdout
    applied_on_12 = sqlite_rows(database, "SELECT version FROM directus_migrations")
    new = sorted(set(applied_on_12) - set(applied_on_11))
    assert len(new) >= 8, new
    assert f"{len(new)} migrations applied" in upgraded, upgraded[-3000:]
    # counted from directus_migrations, before and after, and named in the summary and the deploy log
    summary_line = next(line for line in upgraded.splitlines() if line.strip().startswith("migrations applied:"))
    assert sorted(summary_line.split(":", 1)[1].strip().split("; ")) == new, summary_line
    entries = [json.loads(line) for line in (setup.srv / ".deploy" / "log.jsonl").read_text().splitlines()]
    assert sorted(next(e for e in reversed(entries) if e.get("tag") == "u2")["migrations_applied"]) == new
    assert setup.images() == [f"directus/directus:{DIRECTUS_VERSION}"]
    assert "directus_oauth_clients" in sqlite_rows(database, "SELECT name FROM sqlite_master WHERE type='table'")
    for item in items:
        assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == item["title"]
    assert api.request("GET", f"/assets/{file_id}") == upload
    assert api.get("/hello", auth=False)["release"] == "v1"  # the project's extension loads on 12 too
    written_on_12 = api.json("POST", "/items/articles", {"title": "written on 12"})["data"]

    refused = run_fab("rollback", "--to=u1", "--yes", env_file=env_file)
    assert refused.returncode != 0 and "--with-db" in refused.stdout + refused.stderr, refused.stdout[-2000:]
    assert setup.images() == [f"directus/directus:{DIRECTUS_VERSION}"]

    fab_ok("rollback", "--to=u1", "--with-db", "--yes", env_file=env_file)
    assert setup.images() == [f"directus/directus:{PREVIOUS_DIRECTUS_VERSION}"]
    assert sorted(sqlite_rows(database, "SELECT version FROM directus_migrations")) == sorted(applied_on_11)
    assert "directus_oauth_clients" not in sqlite_rows(database, "SELECT name FROM sqlite_master WHERE type='table'")
    titles = {a["title"] for a in api.get("/items/articles?limit=-1")["data"]}
    assert {item["title"] for item in items} <= titles and written_on_12["title"] not in titles
    assert api.request("GET", f"/assets/{file_id}") == upload
    again = api.json("POST", "/items/articles", {"title": "written on 11 again"})["data"]
    assert api.get(f"/items/articles/{again['id']}")["data"]["title"] == "written on 11 again"


def sqlite_rows(database, query: str) -> list[str]:
    out = subprocess.run(["sqlite3", "-readonly", str(database), query], check=True, capture_output=True, text=True)
    return out.stdout.split()


@pytest.fixture(scope="module")
def compose_install(bed, tmp_path_factory):
    """A compose install started with `docker compose up -d` in its folder, before this tool."""
    production = docker_bed.ComposeProduction(bed, tmp_path_factory.mktemp("compose-install")).create(setup=False)
    production.installed = production.install("c1")
    yield production
    production.destroy()


def test_a_running_compose_install_is_adopted_released_and_rolled_back(compose_install):
    """Adopt keeps the compose project (its name, so its containers and volumes are the same),
    moves the database, uploads and .env into shared/, and starts Directus from the first
    release; every row and upload written before is there after a release and a rollback."""
    setup = compose_install
    api, install = setup.api, setup.installed
    item = api.json("POST", "/items/articles", {"title": "written before adoption"})["data"]
    upload = os.urandom(200_000)
    file_id = api.upload("adopted.bin", upload, "uploaded before adoption", mime="application/octet-stream")

    adopted = fab_ok("deploy.adopt", f"--from={install}", env_file=setup.env_file).stdout
    assert "runs tag c1" in adopted, adopted[-2000:]
    assert (setup.srv / "shared" / "database" / "data.db").is_file() and not (install / "database").exists()
    assert (setup.srv / "shared" / ".env").is_file() and not (install / ".env").exists()
    running = setup.containers()
    assert [c["State"] for c in running] == ["running"], running  # the same project: one Directus, not two
    # the marketplace extension moved into shared/ and still loads inside the container
    assert (setup.srv / "shared" / "extensions-registry" / setup.registry_folder / "package.json").is_file()
    assert "directus-extension-greeting" in {e["schema"]["name"] for e in api.get("/extensions")["data"] if e["schema"]}
    for tag, release in (("c1", "v1"), ("c2", "v2")):
        if tag == "c2":
            fab_ok("release", "--tag=c2", "--yes", env_file=setup.env_file)
        assert api.get("/hello", auth=False)["release"] == release
        assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before adoption"
        assert api.request("GET", f"/assets/{file_id}") == upload
    fab_ok("rollback", "--yes", env_file=setup.env_file)
    assert api.get("/hello", auth=False)["release"] == "v1"
    assert api.request("GET", f"/assets/{file_id}") == upload
    assert [c["State"] for c in setup.containers()] == ["running"]


# per database server: the dump's first bytes, and the query counting the scratch databases left
DATABASE_SERVICES = {
    "postgres": (b"PGDMP", "SELECT count(*) FROM pg_database WHERE datname LIKE 'directus_scratch_%'"),
    "mariadb": (b"\x28\xb5\x2f\xfd", "SELECT count(*) FROM information_schema.schemata "
                "WHERE schema_name LIKE 'directus\\_scratch\\_%'"),
}


@pytest.fixture(scope="module", params=list(DATABASE_SERVICES))
def compose_database(bed, tmp_path_factory, request):
    """A compose production whose database (PostgreSQL, or MariaDB) runs as the project's
    `database` service, its data in ./data/database (the shape of Directus's own compose guide)."""
    production = docker_bed.ComposeProduction(bed, tmp_path_factory.mktemp(f"compose-{request.param}"),
                                              database=request.param).create()
    yield production
    production.destroy()


def test_a_database_in_its_own_service_is_backed_up_through_it_and_rolled_back_with_it(compose_database):
    """The first release starts the database service and installs Directus into it; the next
    one backs it up with the server's own dump tool (pg_dump, mariadb-dump), inside its
    container, and verifies the dump there in a scratch database; `rollback --with-db` puts the
    database of before back through the same container. The database container is never
    recreated: the same one serves from the first release to the last."""
    setup = compose_database
    api, env_file = setup.api, setup.env_file
    magic, scratch_query = DATABASE_SERVICES[setup.database]
    fab_ok("release", "--tag=c1", "--yes", env_file=env_file)
    assert api.get("/hello", auth=False)["release"] == "v1"
    database = setup.container("database")
    image = docker_bed.POSTGRES_IMAGE if setup.database == "postgres" else docker_bed.MARIADB_IMAGE
    assert database["State"] == "running" and database["Image"] == image
    # the guide's ./data/database: one folder in shared/ that every release links to
    data = setup.srv / "shared" / "services" / "data" / "database"
    assert (data / ("PG_VERSION" if setup.database == "postgres" else "directus")).exists()
    assert (setup.srv / "current" / "data" / "database").resolve() == data
    item = api.json("POST", "/items/articles", {"title": "written on c1"})["data"]
    upload = os.urandom(400_000)
    file_id = api.upload("db.bin", upload, "uploaded on c1", mime="application/octet-stream")
    rows_before = setup.sql("SELECT count(*) FROM articles")

    released = fab_ok("release", "--tag=c2", "--yes", env_file=env_file).stdout
    assert api.get("/hello", auth=False)["release"] == "v2"
    assert api.get("/collections/tags")["data"]["collection"] == "tags"
    backups = sorted((setup.srv / "backups").iterdir())
    dump = next((backups[-1] / "db").glob("database.*"))
    assert dump.stat().st_size > 0 and dump.read_bytes()[:len(magic)] == magic, released[-2000:]
    if setup.database == "mariadb":  # the server's own dump, compressed on the host
        text = subprocess.run(["zstd", "-dc", str(dump)], check=True, capture_output=True).stdout
        assert b"CREATE TABLE `articles`" in text and b"written on c1" in text
    assert setup.sql(scratch_query) == "0"  # the scratch database the dump was verified in is gone again
    on_c2 = api.json("POST", "/items/articles", {"title": "written on c2"})["data"]

    fab_ok("rollback", "--to=c1", "--with-db", "--yes", env_file=env_file)
    assert api.get("/hello", auth=False)["release"] == "v1"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written on c1"
    assert setup.sql("SELECT count(*) FROM articles") == rows_before  # the c2 item is set aside
    assert setup.sql(f"SELECT count(*) FROM articles WHERE id = {int(on_c2['id'])}") == "0"
    assert setup.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'tags'") == "0"
    assert api.request("GET", f"/assets/{file_id}") == upload
    again = api.json("POST", "/items/articles", {"title": "written after the rollback"})["data"]
    assert api.get(f"/items/articles/{again['id']}")["data"]["title"] == "written after the rollback"
    assert setup.container("database")["ID"] == database["ID"]  # never recreated


def test_a_service_built_from_the_projects_dockerfile_gets_an_image_per_release(compose_production):
    """`build:` in the compose file: each release builds its image on the host and names it after
    itself, so a rollback starts the image its release ran; a build with nothing changed is
    Docker's cache (the same image), reported as unchanged."""
    setup = compose_production
    compose_file = COMPOSE_FILE.replace(f"image: directus/directus:{DIRECTUS_VERSION}", "build: .")
    for tag in ("b1", "b2"):  # the same tree: b2 builds nothing new
        add_tag(setup.project, tag, {"docker-compose.yml": compose_file, "package.json": None, "package-lock.json": None,
                                     "Dockerfile": f"FROM directus/directus:{DIRECTUS_VERSION}\nLABEL built=from-b\n"},
                base="v2")
    first = fab_ok("release", "--tag=b1", "--yes", env_file=setup.env_file).stdout
    b1 = os.path.basename(os.readlink(setup.srv / "current"))
    assert f"dependencies built ({setup.project_name}-directus:{b1})" in first, first[-2000:]
    assert setup.images() == [f"{setup.project_name}-directus:{b1}"]
    assert api_release(setup) == "v2"
    label = subprocess.run(["docker", "image", "inspect", "-f", "{{.Config.Labels.built}}", setup.images()[0]],
                           check=True, capture_output=True, text=True).stdout.strip()
    assert label == "from-b"

    second = fab_ok("release", "--tag=b2", "--yes", env_file=setup.env_file).stdout
    b2 = os.path.basename(os.readlink(setup.srv / "current"))
    assert f"dependencies unchanged ({setup.project_name}-directus:{b2})" in second, second[-2000:]
    assert setup.images() == [f"{setup.project_name}-directus:{b2}"]

    fab_ok("rollback", "--to=b1", "--yes", env_file=setup.env_file)
    assert setup.images() == [f"{setup.project_name}-directus:{b1}"]
    assert api_release(setup) == "v2"

    # retention: a deleted release's image name goes with it; the kept releases' stay
    fab_ok("release", "--tag=b2", "--yes", env_file=setup.env_file)
    again = os.path.basename(os.readlink(setup.srv / "current"))
    built = {b1, b2, again}
    assert len(image_names(f"{setup.project_name}-directus")) == 3
    cleanup = run_fab("deploy.cleanup", env_file=setup.env_file, env={"KEEP_RELEASES": "1"})
    assert cleanup.returncode == 0, cleanup.stdout[-2000:] + cleanup.stderr
    kept = {p.name for p in (setup.srv / "releases").iterdir()}
    assert again in kept and built - kept, kept  # the live one kept, at least one built one deleted
    assert image_names(f"{setup.project_name}-directus") == sorted(
        f"{setup.project_name}-directus:{release}" for release in kept & built)
    assert api_release(setup) == "v2"


# the project's extensions built into its own image; nothing mounted at the image's extensions folder
BAKED_DOCKERFILE = f"FROM directus/directus:{DIRECTUS_VERSION}\nCOPY extensions /directus/extensions\n"
BAKED_COMPOSE_FILE = COMPOSE_FILE.replace(f"image: directus/directus:{DIRECTUS_VERSION}", "build: .").replace(
    "      - ./extensions:/directus/extensions\n", "")


@pytest.fixture(scope="module")
def compose_baked_install(bed, tmp_path_factory):
    """A compose install whose extensions are built into its image (tags k1, k2), a marketplace
    extension installed in its container (where Directus writes it when nothing is mounted)."""
    production = docker_bed.ComposeProduction(bed, tmp_path_factory.mktemp("compose-baked")).create(setup=False)
    try:
        for tag, base in (("k1", "v1"), ("k2", "v2")):
            add_tag(production.project, tag, {"docker-compose.yml": BAKED_COMPOSE_FILE, "Dockerfile": BAKED_DOCKERFILE,
                                              "package.json": None, "package-lock.json": None}, base=base)
        production.installed = production.install("k1", marketplace_in_container=True)
        yield production
    finally:
        production.destroy()


def test_extensions_built_into_the_image_and_marketplace_installs_in_the_container_survive(compose_baked_install):
    """Adoption copies the marketplace installs out of the container into shared/ (owners
    kept); every release's image holds the project's extensions, and the marketplace folder
    from shared/ is mounted over the image's, so an install outlives every container."""
    setup = compose_baked_install
    api = setup.api

    def loaded() -> set[str]:
        return {e["schema"]["name"] for e in api.get("/extensions")["data"] if e["schema"]}

    assert {"directus-extension-greeting", "directus-extension-hello"} <= loaded()  # as the install runs
    adopted = fab_ok("deploy.adopt", f"--from={setup.installed}", env_file=setup.env_file).stdout
    assert "runs tag k1" in adopted, adopted[-2000:]
    copied = setup.srv / "shared" / "extensions-registry" / setup.registry_folder / "package.json"
    assert copied.is_file() and copied.stat().st_uid == 1000, adopted[-2000:]
    for tag, release in (("k1", "v1"), ("k2", "v2")):
        if tag == "k2":
            fab_ok("release", "--tag=k2", "--yes", env_file=setup.env_file)
        assert api.get("/hello", auth=False)["release"] == release
        assert {"directus-extension-greeting", "directus-extension-hello"} <= loaded()
        container = setup.container("directus")["ID"]
        mounts = subprocess.run(["docker", "inspect", "-f", "{{range .Mounts}}{{println .Destination}}{{end}}",
                                 container], check=True, capture_output=True, text=True).stdout.split()
        assert "/directus/extensions" not in mounts and "/directus/extensions/.registry" in mounts, mounts


# Directus's database and uploads on named volumes of the project (Docker keeps their folders)
NAMED_COMPOSE_FILE = COMPOSE_FILE.replace("      - ./database:/directus/database\n", "      - database:/directus/database\n").replace(
    "      - ./uploads:/directus/uploads\n", "      - uploads:/directus/uploads\n") + "volumes:\n  database: {}\n  uploads: {}\n"


@pytest.fixture(scope="module")
def compose_volumes(bed, tmp_path_factory):
    """A new compose production whose tags n1 and n2 keep the SQLite file and uploads on named volumes."""
    production = docker_bed.ComposeProduction(bed, tmp_path_factory.mktemp("compose-volumes")).create()
    try:
        for tag, base in (("n1", "v1"), ("n2", "v2")):
            add_tag(production.project, tag, {"docker-compose.yml": NAMED_COMPOSE_FILE, "package.json": None,
                                              "package-lock.json": None}, base=base)
        yield production
    finally:
        production.destroy()


def test_state_on_named_volumes_is_backed_up_and_restored_in_their_folders(compose_volumes):
    """The SQLite file and uploads on the project's named volumes: the tool reads and writes
    them in the folders Docker keeps the volumes in (as the deploy user root can); a release
    backs them up from there, and `rollback --with-db` restores the database in its volume."""
    setup = compose_volumes
    api, env_file = setup.api, setup.env_file
    fab_ok("release", "--tag=n1", "--yes", env_file=env_file)
    assert api_release(setup) == "v1"
    folder = {name: subprocess.run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}",
                                    f"{setup.project_name}_{name}"], check=True, capture_output=True,
                                   text=True).stdout.strip() for name in ("database", "uploads")}
    assert os.path.isfile(os.path.join(folder["database"], "data.db"))
    assert not (setup.srv / "shared" / "database" / "data.db").exists()  # not in shared/: on the volume
    item = api.json("POST", "/items/articles", {"title": "written on n1"})["data"]
    upload = os.urandom(300_000)
    file_id = api.upload("volume.bin", upload, "uploaded on n1", mime="application/octet-stream")
    assert len(os.listdir(folder["uploads"])) >= 1

    released = fab_ok("release", "--tag=n2", "--yes", env_file=env_file).stdout
    assert api_release(setup) == "v2"
    backup = sorted((setup.srv / "backups").iterdir())[-1]
    copied = [p for p in (backup / "uploads").rglob("*") if p.is_file() and p.read_bytes() == upload]
    assert copied, released[-2000:]  # the upload backed up from the volume's folder
    on_n2 = api.json("POST", "/items/articles", {"title": "written on n2"})["data"]

    fab_ok("rollback", "--to=n1", "--with-db", "--yes", env_file=env_file)
    assert api_release(setup) == "v1"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written on n1"
    query = f"SELECT count(*) FROM articles WHERE id = {int(on_n2['id'])}"
    assert sqlite_rows(os.path.join(folder["database"], "data.db"), query) == ["0"]  # restored in its volume
    assert api.request("GET", f"/assets/{file_id}") == upload


def image_names(repository: str) -> list[str]:
    out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repository], check=True,
                         capture_output=True, text=True).stdout
    return sorted(out.split())


def api_release(setup) -> str:
    return setup.api.get("/hello", auth=False)["release"]


@pytest.fixture(scope="module")
def compose_postgres_install(bed, tmp_path_factory):
    """The guide's compose install, running before this tool: PostgreSQL as its `database`
    service with its data in the install's ./data/database."""
    production = docker_bed.ComposeProduction(bed, tmp_path_factory.mktemp("compose-pg-install"),
                                              database="postgres").create(setup=False)
    production.installed = production.install("c1")
    yield production
    production.destroy()


def test_a_compose_install_with_postgres_is_adopted_and_its_database_never_moves(compose_postgres_install):
    """Adoption backs the database up through its container, and leaves the database container
    running on its folder (linked from shared/services/): the same container, never restarted,
    serves every release; rows and uploads written before adoption survive a release and a
    rollback."""
    setup = compose_postgres_install
    api, install = setup.api, setup.installed
    database = setup.container("database")
    started = started_at(database["ID"])
    item = api.json("POST", "/items/articles", {"title": "written before adoption"})["data"]
    upload = os.urandom(250_000)
    file_id = api.upload("pg-adopted.bin", upload, "uploaded before adoption", mime="application/octet-stream")

    adopted = fab_ok("deploy.adopt", f"--from={install}", env_file=setup.env_file).stdout
    assert "runs tag c1" in adopted and "on pg" in adopted, adopted[-2000:]
    link = setup.srv / "shared" / "services" / "data" / "database"
    assert os.readlink(link) == str(install / "data" / "database") and (link / "PG_VERSION").is_file()
    fab_ok("release", "--tag=c2", "--yes", env_file=setup.env_file)
    assert api.get("/hello", auth=False)["release"] == "v2"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before adoption"
    assert api.request("GET", f"/assets/{file_id}") == upload
    fab_ok("rollback", "--yes", env_file=setup.env_file)
    assert api.get("/hello", auth=False)["release"] == "v1"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before adoption"
    after = setup.container("database")
    assert after["ID"] == database["ID"] and after["State"] == "running"
    assert started_at(after["ID"]) == started  # never restarted either


def started_at(container: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", container], check=True,
                          capture_output=True, text=True).stdout.strip()
