"""Values the tool reads from a host (a manifest, a REVISION, the production .env) are data,
never code or paths out of their folder: each test plants a hostile value on the real test bed
and checks that nothing runs, nothing outside is written or deleted, and the error is one line."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import fab_ok, one_line, private_setups, run_fab


@pytest.fixture(scope="module")
def adopted(bed, tmp_path_factory):
    """An adopted SQLite production released to v2, with a private project copy."""
    made = bed.new_productions(("sqlite",))
    setup = private_setups(bed, made, tmp_path_factory.mktemp("security"), adopt=True, release="v2")["sqlite"]
    yield setup
    made["sqlite"].destroy()


# the one table a backup reads besides counting rows
MIGRATIONS = "CREATE TABLE directus_migrations (version varchar(255)); INSERT INTO directus_migrations VALUES ('20240101A');"


def latest_backup(srv):
    return sorted(p for p in (srv / "backups").iterdir() if not p.name.startswith("."))[-1]


def edit_manifest(folder, change) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_pull_refuses_manifest_paths_outside_its_folder(bed, tmp_path):
    production = bed.productions["sqlite"]
    env_file = bed.tool_env(production, tmp_path / "tool")
    fab_ok("backup.db", f"--install={production.folder}", env_file=env_file)
    backup = latest_backup(tmp_path / "tool" / "srv")
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    pulled = tmp_path / "pulled"
    for hostile in (str(victim), f"../../{victim.name}", "db/../../../x"):
        edit_manifest(backup, lambda m: m["database"].__setitem__("file", hostile))
        result = run_fab("backup.pull", f"--id={backup.name}", f"--to={pulled}", env_file=env_file)
        assert result.returncode == 2, result.stdout[-2000:] + result.stderr
        assert "not a plain path inside the backup" in one_line(result)
        assert victim.read_text() == "mine" and not pulled.exists()


def fake_install(folder, env: dict) -> str:
    """An install folder holding only a .env (what backup --install reads first)."""
    folder.mkdir(parents=True)
    (folder / "uploads").mkdir()
    (folder / "extensions").mkdir()
    (folder / ".env").write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return str(folder)


def test_database_settings_holding_quotes_are_never_run(bed, tmp_path):
    planted = tmp_path / "PLANTED"
    env_file = bed.tool_env(bed.productions["sqlite"], tmp_path / "tool")

    # MariaDB: a DB_HOST breaking out of the option file's printf would run `touch`
    mysql = fake_install(tmp_path / "mysql", {"DB_CLIENT": "mysql", "DB_HOST": f"\"127.0.0.1'; touch {planted}; '\"",
                                              "DB_USER": "nobody", "DB_PASSWORD": "x", "DB_DATABASE": "nothing"})
    result = run_fab("backup.db", f"--install={mysql}", env_file=env_file)
    assert result.returncode != 0 and not planted.exists(), result.stdout[-2000:] + result.stderr

    # SQLite: a file name with a quote and $(...) is a file name; backed up, and when missing
    # the message names it without running it
    sqlite_folder = tmp_path / "sqlite"
    marker = f"dxd-planted-{secrets.token_hex(4)}"  # no slash can be in a file name: run in the shell's folder
    name = f"it's $(touch {marker}).db"
    sqlite = fake_install(sqlite_folder, {"DB_CLIENT": "sqlite3", "DB_FILENAME": f"\"./database/{name}\""})
    (sqlite_folder / "database").mkdir()
    subprocess.run(["sqlite3", str(sqlite_folder / "database" / name), MIGRATIONS + "CREATE TABLE t (x); INSERT INTO t VALUES (1);"],
                   check=True)
    fab_ok("backup.db", f"--install={sqlite}", env_file=env_file)
    (sqlite_folder / "database" / name).unlink()
    result = run_fab("backup.db", f"--install={sqlite}", env_file=env_file)
    assert result.returncode != 0 and "not found" in result.stdout + result.stderr
    assert not (Path.home() / marker).exists() and not list(tmp_path.rglob(marker))


def test_a_postgres_database_name_with_a_quote_is_an_identifier(bed, tmp_path):
    name, password = 'dxd_sec"q', "sec-pass-9f2c"
    identifier = '"' + name.replace('"', '""') + '"'
    admin = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]
    drop = f"DROP DATABASE IF EXISTS {identifier} WITH (FORCE); DROP ROLE IF EXISTS {identifier};"
    subprocess.run(admin, input=drop + f"CREATE ROLE {identifier} LOGIN CREATEDB PASSWORD '{password}';"
                   f"CREATE DATABASE {identifier} OWNER {identifier};", text=True, check=True, capture_output=True)
    try:
        install = fake_install(tmp_path / "pg", {"DB_CLIENT": "pg", "DB_HOST": "127.0.0.1", "DB_PORT": "5432",
                                                 "DB_DATABASE": f"'{name}'", "DB_USER": f"'{name}'", "DB_PASSWORD": password})
        subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", name, "-d", name, "-c", MIGRATIONS + "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);"],
                       check=True, capture_output=True, env={**os.environ, "PGPASSWORD": password})
        env_file = bed.tool_env(bed.productions["sqlite"], tmp_path / "tool")
        fab_ok("backup.db", f"--install={install}", env_file=env_file)  # dumped, verified in a scratch database
        manifest = json.loads((latest_backup(tmp_path / "tool" / "srv") / "manifest.json").read_text())
        assert manifest["database"]["tables"] == {"directus_migrations": 1, "t": 2}
    finally:
        subprocess.run(admin, input=drop, text=True, capture_output=True)


def test_a_revision_commit_that_is_an_option_never_reaches_git(adopted, tmp_path):
    srv = adopted["srv"]
    revision_file = srv / "current" / "REVISION"
    revision = json.loads(revision_file.read_text())
    planted = tmp_path / "written-by-git"
    revision["commit"] = f"--output={planted}"
    revision_file.write_text(json.dumps(revision))
    result = run_fab("extensions.sync", "--tag=v2", env_file=adopted["env"])
    assert result.returncode == 2 and "not a commit id" in one_line(result)
    result = fab_ok("release", "--tag=v2", "--yes", env_file=adopted["env"])  # the summary's commit list
    assert not list(tmp_path.glob("written-by-git*")), result.stdout[-2000:]


def test_ids_from_a_manifest_never_name_folders(adopted, tmp_path):
    srv = adopted["srv"]
    fab_ok("backup.files", env_file=adopted["env"])
    backup = latest_backup(srv)
    keep = srv / "keepme"
    keep.mkdir()
    (keep / "file").write_text("mine")
    # restore: its work folder was named after the manifest's id, and deleted at the end
    edit_manifest(backup, lambda m: m.__setitem__("id", "/../../keepme"))
    before = sorted(p.name for p in (srv / "backups").iterdir())
    result = run_fab("backup.restore", f"--id={backup.name}", "--only=files", "--yes", env_file=adopted["env"])
    assert result.returncode == 2 and "names another backup" in one_line(result)
    assert (keep / "file").read_text() == "mine"
    assert sorted(p.name for p in (srv / "backups").iterdir()) == before  # not even a safety backup
    # the next backup builds on the latest one: with its id unusable, it copies everything
    fab_ok("backup.files", env_file=adopted["env"])
    taken = json.loads((latest_backup(srv) / "manifest.json").read_text())
    assert taken["uploads"]["copied"] == taken["uploads"]["count"] > 0
    assert (keep / "file").read_text() == "mine"
    shutil.rmtree(keep)
