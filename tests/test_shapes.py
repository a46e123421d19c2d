"""Installs as Directus's own tools make them, adopted and then served like the tidy one: the
SQLite file beside package.json (`DB_FILENAME=./data.db`, the `.env` stub of `directus init`)
in write-ahead-log mode, and by its absolute path (what `directus init` proposes). Each is
adopted, released, backed up, damaged and restored, and rolled back, with every row, file and
extension intact."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from .helpers import fab_ok, hello, private_setups

SHAPES = {
    "init-wal": {"db_shape": "init", "wal": True},
    "init-absolute": {"db_shape": "init-absolute"},
}
# Directus with its responses cached in Redis (the docs' Docker Compose default)
REDIS_CACHE = {"CACHE_ENABLED": "true", "CACHE_STORE": "redis", "REDIS": "redis://127.0.0.1:6379",
               "CACHE_AUTO_PURGE": "false", "CACHE_TTL": "1h"}


# the database named other ways than DB_HOST/DB_PORT/DB_DATABASE
CONNECTIONS = {
    "pg-connection-string": {"engine": "postgres", "db_shape": "connection-string"},
    "mysql-socket": {"engine": "mysql", "db_shape": "socket"},
}


@pytest.fixture(scope="module")
def shaped(bed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    shapes = {**SHAPES, **CONNECTIONS,
              "redis-cache": {"extra_env": {**REDIS_CACHE, "CACHE_NAMESPACE": f"dxd-{secrets.token_hex(4)}"}},
              # the database and the uploads where the host's admin put them, outside the install
              "outside": {"db_shape": "outside", "extra_env": {"STORAGE_LOCAL_ROOT": str(folder / "srv-media")}}}
    made = bed.shaped_productions(shapes)
    setups = private_setups(bed, made, folder)
    yield setups
    for production in made.values():
        production.destroy()


def loaded_extensions(production) -> set[str]:
    return {e["schema"]["name"] for e in production.api.get("/extensions")["data"] if e["schema"]}


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
    assert os.readlink(release / "database") == "../../shared/database"
    shared_env = (srv / "shared" / ".env").read_text()
    assert "DB_FILENAME=./database/data.db\n" in shared_env and f"# DB_FILENAME was {original}" in shared_env

    fab_ok("release", "--tag=v2", "--yes", env_file=env)
    assert hello(production) == "hello from v2" and production.content() == before

    fab_ok("backup.all", env_file=env)
    backups = sorted(p.name for p in (srv / "backups").iterdir() if not p.name.startswith("."))
    damaged = before["articles"][0]["id"]
    production.api.request("DELETE", f"/items/articles/{damaged}")
    assert production.content() != before
    fab_ok("backup.restore", f"--id={backups[-1]}", "--only=db,files", "--yes", env_file=env)
    assert production.content() == before

    fab_ok("rollback", "--yes", env_file=env)
    assert hello(production) == "hello from v1" and production.content() == before
    assert "directus-extension-greeting" in loaded_extensions(production)
    assert (srv / "shared" / "database" / "data.db").is_file()


def test_a_restore_clears_the_redis_cache_so_deleted_rows_are_not_served(shaped):
    setup = shaped["redis-cache"]
    production, env, srv = setup["production"], setup["env"], setup["srv"]
    install = f"--install={production.folder}"
    fab_ok("backup.db", install, env_file=env)
    backup = sorted(p.name for p in (srv / "backups").iterdir() if not p.name.startswith("."))[-1]
    title = f"written after the backup {secrets.token_hex(3)}"
    production.api.request("POST", "/items/articles", {"title": title, "body": "gone after the restore"})
    query = f"/items/articles?filter[title][_eq]={title.replace(' ', '%20')}&fields=id,title"
    assert [a["title"] for a in production.api.get(query)["data"]] == [title]  # answered, and now cached in Redis

    result = fab_ok("backup.restore", f"--id={backup}", "--only=db", install, "--yes", env_file=env)
    assert "clear Directus's cache (data and system)" in result.stdout and "cleared" in result.stdout
    assert production.api.get(query)["data"] == []  # the row the restore removed is not served from the cache


@pytest.mark.parametrize("shape", list(CONNECTIONS))
def test_a_database_given_by_connection_string_or_socket_serves_every_command(shaped, shape):
    setup = shaped[shape]
    production, srv, env = setup["production"], setup["srv"], setup["env"]
    before = production.content()
    fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env)
    # the rehearsal runs on a scratch copy reached the same way (never on production's database)
    released = fab_ok("release", "--tag=v2", "--rehearse", "--yes", env_file=env)
    assert "rehearse: start the new release on the copy, health gate" in released.stdout
    assert hello(production) == "hello from v2" and production.content() == before
    secret = production.database.password
    assert secret not in released.stdout + released.stderr

    backups = sorted(p.name for p in (srv / "backups").iterdir() if not p.name.startswith("."))
    production.api.request("DELETE", f"/items/articles/{before['articles'][0]['id']}")
    fab_ok("backup.restore", f"--id={backups[-1]}", "--only=db", "--yes", env_file=env)
    assert production.content() == before
    fab_ok("rollback", "--yes", env_file=env)
    assert hello(production) == "hello from v1" and production.content() == before


def test_state_outside_the_install_stays_there_and_is_backed_up_and_restored_there(shaped):
    setup = shaped["outside"]
    production, srv, env = setup["production"], setup["srv"], setup["env"]
    database, media = production.database.path, production.extra_env["STORAGE_LOCAL_ROOT"]
    before = production.content()
    adopted = fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env)
    assert "becomes" not in adopted.stdout  # nothing rewritten
    release = (srv / "current").resolve()
    assert database.is_file() and not (release / "database").exists()
    assert not (release / "uploads").exists() and not (srv / "shared" / "uploads").exists()
    uploads = sorted(p.name for p in Path(media).iterdir())
    assert len(uploads) >= 24

    fab_ok("release", "--tag=v2", "--yes", env_file=env)
    assert hello(production) == "hello from v2" and production.content() == before
    fab_ok("backup.all", env_file=env)
    backup = sorted(p.name for p in (srv / "backups").iterdir() if not p.name.startswith("."))[-1]
    production.api.request("DELETE", f"/items/articles/{before['articles'][0]['id']}")
    lost = Path(media) / next(name for name in uploads if name.endswith(".png"))
    lost.unlink()  # an upload gone from the outside storage
    fab_ok("backup.restore", f"--id={backup}", "--only=db,files", "--yes", env_file=env)
    assert lost.is_file() and production.content() == before
    fab_ok("rollback", "--yes", env_file=env)
    assert hello(production) == "hello from v1" and production.content() == before
    assert database.is_file() and sorted(p.name for p in Path(media).iterdir()) == uploads
