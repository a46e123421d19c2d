"""Installs as Directus's own tools make them, adopted and then served like the tidy one: the
SQLite file beside package.json (`DB_FILENAME=./data.db`, the `.env` stub of `directus init`)
in write-ahead-log mode, and by its absolute path (what `directus init` proposes). Each is
adopted, released, backed up, damaged and restored, and rolled back, with every row, file and
extension intact."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from directus_deploy.flows.production_env import parse
from directus_deploy.state.production import HEALTH_PROBE_FILE
from testbed.content import png
from testbed.s3 import S3Server

from .helpers import fab_ok, hello, private_setups

SHAPES = {
    "init-wal": {"db_shape": "init", "wal": True},
    "init-absolute": {"db_shape": "init-absolute"},
}
# Directus with its responses cached in Redis (the docs' Docker Compose default)
REDIS_CACHE = {"CACHE_ENABLED": "true", "CACHE_STORE": "redis", "REDIS": "redis://127.0.0.1:6379",
               "CACHE_AUTO_PURGE": "false", "CACHE_TTL": "1h"}


# a second local storage location beside `local`
ARCHIVE = {"STORAGE_LOCATIONS": "local,archive", "STORAGE_ARCHIVE_DRIVER": "local", "STORAGE_ARCHIVE_ROOT": "./archive"}
# settings where pm2 users keep them: the env block of an ecosystem file, or a YAML file that
# CONFIG_PATH (set in that block) names; no .env at all
SETTINGS = {
    "ecosystem-env": {"settings_in": "ecosystem"},
    "config-yaml": {"settings_in": "yaml"},
}
# the database named other ways than DB_HOST/DB_PORT/DB_DATABASE
CONNECTIONS = {
    "pg-connection-string": {"engine": "postgres", "db_shape": "connection-string"},
    "mysql-socket": {"engine": "mysql", "db_shape": "socket"},
}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3") / "moto.log").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shaped(bed, s3, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    shapes = {**SHAPES, **CONNECTIONS, **SETTINGS,
              "redis-cache": {"extra_env": {**REDIS_CACHE, "CACHE_NAMESPACE": f"dxd-{secrets.token_hex(4)}"}},
              # the database and the uploads where the host's admin put them, outside the install
              "outside": {"db_shape": "outside", "extra_env": {"STORAGE_LOCAL_ROOT": str(folder / "srv-media")}},
              "two-locations": {"extra_env": ARCHIVE},
              # uploads in a bucket, through Directus's own S3 driver
              "s3": {"extra_env": s3.directus_env(s3.new_bucket())}}
    made = bed.shaped_productions(shapes)
    setups = private_setups(bed, made, folder)
    yield setups
    for production in made.values():
        production.destroy()


def loaded_extensions(production) -> set[str]:
    return {e["schema"]["name"] for e in production.api.get("/extensions")["data"] if e["schema"]}


def newest_backup(srv) -> str:
    return sorted(p.name for p in (srv / "backups").iterdir() if not p.name.startswith("."))[-1]


def release_restore_and_roll_back(setup, before: dict, release_args=()) -> list:
    """After adoption: release v2, back up, delete a row and restore it, roll back to v1; every
    row, file and extension there at each point. Returns the release's output."""
    production, srv, env = setup["production"], setup["srv"], setup["env"]
    released = fab_ok("release", "--tag=v2", *release_args, "--yes", env_file=env)
    assert hello(production) == "hello from v2" and production.content() == before
    fab_ok("backup.all", env_file=env)
    production.api.request("DELETE", f"/items/articles/{before['articles'][0]['id']}")
    assert production.content() != before
    fab_ok("backup.restore", f"--id={newest_backup(srv)}", "--only=db,files", "--yes", env_file=env)
    assert production.content() == before
    rolled_back(setup, before)
    return released


def rolled_back(setup, before: dict) -> None:
    """`fab rollback` from v2: v1 serves, with everything."""
    production = setup["production"]
    fab_ok("rollback", "--yes", env_file=setup["env"])
    assert hello(production) == "hello from v1" and production.content() == before
    assert "directus-extension-greeting" in loaded_extensions(production)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_directus_init_sqlite_install_adopts_releases_restores_and_rolls_back(shaped, shape):
    setup = shaped[shape]
    production, srv, env = setup["production"], setup["srv"], setup["env"]
    original = production.env()["DB_FILENAME"]
    if SHAPES[shape].get("wal"):
        assert (production.folder / "data.db-wal").exists()  # Directus writes through the log right now
    before = production.content()

    adopted = fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env)
    assert f".env: DB_FILENAME={original} becomes DB_FILENAME=./database/data.db" in adopted.stdout
    assert production.content() == before and hello(production) == "hello from v1"
    assert "directus-extension-greeting" in loaded_extensions(production)
    assert (srv / "shared" / "database" / "data.db").is_file() and not (production.folder / "data.db").exists()
    assert not (production.folder / "data.db-wal").exists()  # moved with the database, never left behind
    release = (srv / "current").resolve()
    assert os.readlink(release / "database") == os.path.relpath(srv / "shared" / "database", release)
    shared_env = (srv / "shared" / ".env").read_text()
    assert "DB_FILENAME=./database/data.db\n" in shared_env and f"# DB_FILENAME was {original}" in shared_env

    release_restore_and_roll_back(setup, before)
    if shape == "init-wal":
        # the whole pre-adopt backup back: its .env (DB_FILENAME=./data.db) is the install's, not restored
        pre_adopt = next(p.name for p in (srv / "backups").iterdir() if p.name.endswith("-pre-adopt"))
        restored = fab_ok("backup.restore", f"--id={pre_adopt}", "--yes", env_file=env)
        assert ".env not restored: this backup was taken before adoption" in restored.stdout
        assert (srv / "shared" / ".env").read_text() == shared_env and production.content() == before
    assert (srv / "shared" / "database" / "data.db").is_file()


@pytest.mark.parametrize("shape", list(SETTINGS))
def test_settings_outside_a_dotenv_are_read_where_directus_reads_them(shaped, shape):
    setup = shaped[shape]
    production, srv, env = setup["production"], setup["srv"], setup["env"]
    assert not (production.folder / ".env").exists()
    before = production.content()
    fab_ok("backup.db", f"--install={production.folder}", env_file=env)  # the database found without a .env

    adopted = fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env)
    said = {"ecosystem-env": "come from the environment Directus runs with",
            "config-yaml": f"CONFIG_PATH={production.folder}/config.yaml (yaml) is written into shared/.env"}[shape]
    assert said in adopted.stdout
    assert production.content() == before and hello(production) == "hello from v1"
    written = parse((srv / "shared" / ".env").read_text())
    assert {k: v for k, v in written.items() if k != "CONFIG_PATH"} == production.env()
    assert production.token not in adopted.stdout + adopted.stderr and production.secret not in adopted.stdout
    # pm2 now runs the release with the settings from shared/.env (restarts by the tool keep them)
    release_restore_and_roll_back(setup, before)


@pytest.mark.parametrize("shape", list(CONNECTIONS))
def test_a_database_given_by_connection_string_or_socket_serves_every_command(shaped, shape):
    setup = shaped[shape]
    production = setup["production"]
    before = production.content()
    fab_ok("deploy.adopt", f"--from={production.folder}", env_file=setup["env"])
    # the rehearsal runs on a scratch copy reached the same way (never on production's database)
    released = release_restore_and_roll_back(setup, before, ("--rehearse",))
    assert "rehearse: start the new release on the copy, health gate" in released.stdout
    assert production.database.password not in released.stdout + released.stderr


def test_state_outside_the_install_stays_there_and_is_backed_up_and_restored_there(shaped):
    setup = shaped["outside"]
    production, srv, env = setup["production"], setup["srv"], setup["env"]
    database, media = production.database.path, Path(production.extra_env["STORAGE_LOCAL_ROOT"])
    before = production.content()
    adopted = fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env)
    assert "becomes" not in adopted.stdout  # nothing rewritten
    release = (srv / "current").resolve()
    assert database.is_file() and not (release / "database").exists()
    assert not (release / "uploads").exists() and not (srv / "shared" / "uploads").exists()
    uploads = sorted(p.name for p in media.iterdir())
    assert len(uploads) >= 24

    fab_ok("release", "--tag=v2", "--yes", env_file=env)
    fab_ok("backup.files", env_file=env)
    lost = media / next(name for name in uploads if name.endswith(".png"))
    lost.unlink()  # an upload gone from the outside storage
    fab_ok("backup.restore", f"--id={newest_backup(srv)}", "--only=files", "--yes", env_file=env)
    assert lost.is_file() and production.content() == before
    rolled_back(setup, before)
    assert database.is_file() and sorted(p.name for p in media.iterdir()) == uploads


def test_a_restore_clears_the_redis_cache_so_deleted_rows_are_not_served(shaped):
    setup = shaped["redis-cache"]
    production, env, srv = setup["production"], setup["env"], setup["srv"]
    install = f"--install={production.folder}"
    fab_ok("backup.db", install, env_file=env)
    backup = newest_backup(srv)
    title = f"written after the backup {secrets.token_hex(3)}"
    production.api.request("POST", "/items/articles", {"title": title, "body": "gone after the restore"})
    query = f"/items/articles?filter[title][_eq]={title.replace(' ', '%20')}&fields=id,title"
    assert [a["title"] for a in production.api.get(query)["data"]] == [title]  # answered, and now cached in Redis

    result = fab_ok("backup.restore", f"--id={backup}", "--only=db", install, "--yes", env_file=env)
    assert "clear Directus's cache (data and system)" in result.stdout and "cleared" in result.stdout
    assert production.api.get(query)["data"] == []  # the row the restore removed is not served from the cache


def test_every_local_storage_location_is_shared_backed_up_and_restored(shaped):
    setup = shaped["two-locations"]
    production, srv, env = setup["production"], setup["srv"], setup["env"]
    for number in range(3):
        production.api.upload(f"archived-{number}.png", png(12, 12, seed=700 + number), f"archived {number}", storage="archive")
    archived = sorted(p.name for p in (production.folder / "archive").iterdir() if p.name != HEALTH_PROBE_FILE)
    assert len(archived) == 3
    before = production.content()
    fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env)
    release = (srv / "current").resolve()
    assert os.readlink(release / "archive") == os.path.relpath(srv / "shared" / "storage" / "archive", release)
    assert sorted(p.name for p in (srv / "shared" / "storage" / "archive").iterdir() if p.name != HEALTH_PROBE_FILE) == archived
    fab_ok("release", "--tag=v2", "--yes", env_file=env)

    fab_ok("backup.files", env_file=env)
    manifest = json.loads((srv / "backups" / newest_backup(srv) / "manifest.json").read_text())
    assert sorted(manifest["storage/archive"]["files"]) == archived
    assert manifest["storage/archive"]["linked"] == 3  # unchanged since the previous backup: hard links
    lost = srv / "shared" / "storage" / "archive" / archived[0]
    lost.unlink()
    checked = fab_ok("backup.restore", f"--id={newest_backup(srv)}", "--only=files", "--yes", env_file=env)
    assert lost.is_file() and production.content() == before
    assert "storage/archive OK" in checked.stdout
    verified = fab_ok("backup.verify", f"--id={manifest['id']}", env_file=env)
    assert "storage/archive" in verified.stdout
    rolled_back(setup, before)


def test_uploads_in_an_s3_bucket_are_copied_incrementally_verified_and_restored(shaped, s3):
    setup = shaped["s3"]
    production, srv, env = setup["production"], setup["srv"], setup["env"]
    bucket = production.extra_env["STORAGE_S3_BUCKET"]

    def content_objects() -> dict:
        return {k: v for k, v in s3.objects(bucket).items() if k != HEALTH_PROBE_FILE}

    objects = content_objects()
    assert len(objects) >= 24  # the seeded images, uploaded by Directus into the bucket
    before = production.content()
    fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env)

    def files_backup() -> dict:
        fab_ok("backup.files", env_file=env)
        return json.loads((srv / "backups" / newest_backup(srv) / "manifest.json").read_text())

    first = json.loads((srv / "backups" / newest_backup(srv) / "manifest.json").read_text())["storage/s3"]  # adopt's
    assert sorted(first["files"]) == sorted(objects) and first["copied"] == len(objects)
    second = files_backup()
    assert second["storage/s3"]["copied"] == 0 and second["storage/s3"]["linked"] == len(objects)  # none copied again
    copy = srv / "backups" / second["id"] / "storage" / "s3"
    assert all(oct(p.stat().st_mode)[-3:] == "600" for p in copy.rglob("*") if p.is_file())

    gone = sorted(objects)[0]
    s3.client().delete_object(Bucket=bucket, Key=gone)
    s3.client().put_object(Bucket=bucket, Key="written-after-the-backup.txt", Body=b"not in the backup")
    restored = fab_ok("backup.restore", f"--id={second['id']}", "--only=files", "--yes", env_file=env)
    assert content_objects() == objects and production.content() == before
    assert "storage/s3 OK" in restored.stdout
    fab_ok("backup.verify", f"--id={second['id']}", env_file=env)
    fab_ok("release", "--tag=v2", "--yes", env_file=env)  # the release's checks compare the bucket too
    assert hello(production) == "hello from v2" and production.content() == before
    rolled_back(setup, before)
