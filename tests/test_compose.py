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
import secrets
import subprocess

import pytest

from testbed.content import Api
from testbed.docker import Docker
from testbed.project import add_tag, clone_project
from testbed.sshd import free_port

from .helpers import fab_ok, run_fab, write_env

COMPOSE_FILE = """\
services:
  directus:
    image: directus/directus:12.4.0
    init: true
    ports:
      - "127.0.0.1:${DIRECTUS_HOST_PORT}:8055"
    env_file: .env
    volumes:
      - ./database:/directus/database
      - ./uploads:/directus/uploads
      - ./extensions:/directus/extensions
"""


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def compose_production(bed, tmp_path_factory):
    """A host set up for a compose production, its project repository with tags c1 and c2."""
    Docker(bed.toolchain).ensure_directus_image()
    folder = tmp_path_factory.mktemp("compose")
    project = clone_project(bed.project_dir("sqlite"), folder / "project")
    # a compose project holds no package.json: the image is Directus
    no_npm = {"package.json": None, "package-lock.json": None}
    add_tag(project, "c1", {"docker-compose.yml": COMPOSE_FILE, **no_npm}, base="v1")
    add_tag(project, "c2", {"docker-compose.yml": COMPOSE_FILE, **no_npm}, base="v2")
    port, token, name = free_port(), secrets.token_hex(16), f"dd{secrets.token_hex(4)}"
    production_env = write_env(folder / "production.env", {
        "SECRET": secrets.token_hex(24), "DB_CLIENT": "sqlite3", "DB_FILENAME": "/directus/database/data.db",
        "ADMIN_EMAIL": "admin@example.com", "ADMIN_PASSWORD": secrets.token_hex(12), "ADMIN_TOKEN": token,
        "PUBLIC_URL": f"http://127.0.0.1:{port}", "PM2_INSTANCES": "1", "LOG_LEVEL": "warn",
        "DIRECTUS_HOST_PORT": str(port),
    })
    srv = folder / "srv"
    env_file = write_env(folder / "deploy.env", {
        **bed.deploy_settings("sqlite"), "DEPLOY_PATH": str(srv), "DEPLOY_SOURCE": str(project),
        "DIRECTUS_SERVICE": "compose", "DIRECTUS_COMPOSE_PROJECT": name,
        "DIRECTUS_URL": f"http://127.0.0.1:{port}", "DIRECTUS_TOKEN": token,
    })
    fab_ok("deploy.setup", f"--env-file={production_env}", env_file=env_file)
    # as Directus's Docker guide asks: the state folders belong to the image's user (uid 1000)
    for part in ("uploads", "database", "extensions-registry"):
        (srv / "shared" / part).mkdir(parents=True, exist_ok=True)
        os.chown(srv / "shared" / part, 1000, 1000)
    yield {"env": env_file, "srv": srv, "project": name, "api": Api(f"http://127.0.0.1:{port}", token)}
    subprocess.run(["docker", "compose", "-p", name, "down", "--timeout", "5"], capture_output=True)


def containers(project: str) -> list[dict]:
    out = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{json .}}")
    return [json.loads(line) for line in out.splitlines() if line]


def test_compose_release_migrates_with_the_tool_and_rolls_back(compose_production):
    setup = compose_production
    api, env_file, srv = setup["api"], setup["env"], setup["srv"]

    check = fab_ok("host.check", env_file=env_file).stdout
    assert "Docker Engine: 20.10" in check and "Compose: " in check, check

    first = fab_ok("release", "--tag=c1", "--yes", env_file=env_file)
    assert "bootstrap" in first.stdout, first.stdout[-3000:]
    assert api.get("/hello", auth=False)["release"] == "v1"
    running = containers(setup["project"])
    assert [c["State"] for c in running] == ["running"], running
    assert f"container {running[0]['Names']}: directus/directus:12.4.0, running" in fab_ok(
        "host.check", env_file=env_file).stdout
    assert (srv / "shared" / "database" / "data.db").is_file()  # in shared/, not in the release or the container

    # editors' work before the release: an item and an upload
    item = api.json("POST", "/items/articles", {"title": "written before c2"})["data"]
    upload = os.urandom(300_000)
    boundary = "----directus-deploy-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"before.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + upload + f"\r\n--{boundary}--\r\n".encode()
    file_id = json.loads(api.request("POST", "/files", raw=body,
                                     content_type=f"multipart/form-data; boundary={boundary}"))["data"]["id"]

    second = fab_ok("release", "--tag=c2", "--yes", env_file=env_file)
    out = second.stdout
    assert "migrations" in out and "schema applied" in out, out[-3000:]
    assert api.get("/hello", auth=False)["release"] == "v2"
    assert api.get("/collections/tags")["data"]["collection"] == "tags"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before c2"
    assert api.request("GET", f"/assets/{file_id}") == upload
    # one Directus container, of the same compose project; the tool's one-off CLI containers are gone
    assert [c["State"] for c in containers(setup["project"])] == ["running"]

    back = fab_ok("rollback", "--yes", env_file=env_file)
    assert "c1" in back.stdout, back.stdout[-2000:]
    assert api.get("/hello", auth=False)["release"] == "v1"
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written before c2"
    assert api.request("GET", f"/assets/{file_id}") == upload


def test_compose_rollback_with_the_database_leaves_directus_able_to_write(compose_production):
    """After `rollback --with-db` the database is the backup's, and Directus in its container
    (uid 1000) still writes: a new item and a new upload after the rollback are kept."""
    setup = compose_production
    api = setup["api"]
    before = api.json("POST", "/items/articles", {"title": "before the release"})["data"]
    fab_ok("release", "--tag=c2", "--yes", env_file=setup["env"])
    during = api.json("POST", "/items/articles", {"title": "after the release"})["data"]
    result = fab_ok("rollback", "--to=c1", "--with-db", "--yes", env_file=setup["env"])
    assert api.get("/hello", auth=False)["release"] == "v1", result.stdout[-2000:]
    titles = {a["title"] for a in api.get("/items/articles?limit=-1")["data"]}
    assert before["title"] in titles and during["title"] not in titles  # the database of before the release
    assert "state before, kept in" in result.stdout  # what it set aside is in the safety backup
    item = api.json("POST", "/items/articles", {"title": "written after the rollback"})["data"]
    assert api.get(f"/items/articles/{item['id']}")["data"]["title"] == "written after the rollback"
    boundary = "----after"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"after.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + b"after" * 1000 + f"\r\n--{boundary}--\r\n".encode()
    file_id = json.loads(api.request("POST", "/files", raw=body,
                                     content_type=f"multipart/form-data; boundary={boundary}"))["data"]["id"]
    assert api.request("GET", f"/assets/{file_id}") == b"after" * 1000


def test_compose_settings_in_the_container_refused(compose_production, tmp_path):
    """A compose file keeping the SQLite file in the container (no volume) is refused before
    anything changes: every release would start on an empty database."""
    setup = compose_production
    project = tmp_path / "project"
    subprocess.run(["git", "clone", "-q", str(setup["env"].parent / "project"), str(project)], check=True)
    add_tag(project, "c-novolume", {"docker-compose.yml": COMPOSE_FILE.replace("      - ./database:/directus/database\n", "")},
            base="c2")
    env_file = write_env(tmp_path / "deploy.env", {
        **{k: v for k, v in (line.split("=", 1) for line in setup["env"].read_text().splitlines() if "=" in line)},
        "DEPLOY_SOURCE": str(project)})
    releases_before = sorted(p.name for p in (setup["srv"] / "releases").iterdir())
    result = run_fab("release", "--tag=c-novolume", "--yes", env_file=env_file)
    assert result.returncode != 0
    assert "inside the container" in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr
    assert sorted(p.name for p in (setup["srv"] / "releases").iterdir()) == releases_before


def test_uploads_the_container_cannot_write_are_refused_with_the_fix(compose_production):
    """Docker makes a missing bind-mount folder as root; Directus (uid 1000) then fails every
    upload. A release onto such a folder is refused before the switch, naming the chown."""
    setup = compose_production
    uploads = setup["srv"] / "shared" / "uploads"
    serving = [(c["ID"], c["State"]) for c in containers(setup["project"])]
    releases_before = sorted(p.name for p in (setup["srv"] / "releases").iterdir())
    os.chown(uploads, 0, 0)
    try:
        result = run_fab("release", "--tag=c2", "--yes", env_file=setup["env"])
    finally:
        os.chown(uploads, 1000, 1000)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"chown -R 1000:1000 {uploads}" in out, out[-2000:]
    assert sorted(p.name for p in (setup["srv"] / "releases").iterdir()) == releases_before
    assert [(c["ID"], c["State"]) for c in containers(setup["project"])] == serving  # the same one serves
    assert setup["api"].request("GET", "/server/ping", auth=False) == b"pong"
