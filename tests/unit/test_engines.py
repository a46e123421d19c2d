"""engines: the SQLite engine's shell run for real here (sqlite3 and zstd) on a database whose
path and table names need quoting; the PostgreSQL and MySQL engines' shell run against fake
client commands that record what they were given (values intact, identifiers quoted, the
password never in the script); MySQL's option file read back by the real `mysql --print-defaults`."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.engines import engine_for, parse_counts, parse_migrations, parse_size
from directus_deploy.engines.base import Engine, quote_identifier
from directus_deploy.engines.mysql import MysqlEngine
from directus_deploy.engines.postgres import PostgresEngine
from directus_deploy.engines.sqlite import SqliteEngine
from directus_deploy.host.remote import q
from directus_deploy.state.production import Production

from .local import fake_command, path_with, run, strict

needs_sqlite = pytest.mark.skipif(not (shutil.which("sqlite3") and shutil.which("zstd")), reason="sqlite3 and zstd")


def production(root, **env) -> Production:
    return Production(root=str(root), env_file=f"{root}/.env", env=env, uploads=None, extensions=f"{root}/extensions",
                      registry=f"{root}/extensions/.registry", directus_version="12.0.0", in_layout=False,
                      release_id=None)


def test_parse_counts_reads_only_its_own_label():
    out = ('noise\n@@{"kind":"count","of":"live","table":"articles","rows":"12"}\n'
           '@@{"kind":"count","of":"dump","table":"x","rows":"1"}\n'
           '@@{"kind":"count","of":"live","table":"directus_users","rows":"0"}\n')
    assert parse_counts(out) == {"articles": 12, "directus_users": 0}
    assert parse_counts(out, "dump") == {"x": 1}


@pytest.mark.parametrize("name, quote, expected", [
    ("plain", '"', '"plain"'),
    ('we"ird', '"', '"we""ird"'),
    ("x`y", "`", "`x``y`"),
    ('a"; DROP DATABASE x; --', '"', '"a""; DROP DATABASE x; --"'),
])
def test_identifiers_are_quoted_with_the_quote_doubled(name, quote, expected):
    assert quote_identifier(name, quote) == expected


def test_an_unsupported_client_is_refused_naming_the_supported(tmp_path):
    with pytest.raises(Refused, match="DB_CLIENT=oracledb .* supported: sqlite3, pg, mysql"):
        engine_for(production(tmp_path, DB_CLIENT="oracledb"))
    with pytest.raises(Refused, match=r"DB_CLIENT=\(unset\)"):
        engine_for(production(tmp_path))


def test_each_client_gets_its_engine(tmp_path):
    assert isinstance(engine_for(production(tmp_path, DB_CLIENT="sqlite3", DB_FILENAME="./d/x.db")), SqliteEngine)
    assert isinstance(engine_for(production(tmp_path, DB_CLIENT="pg", DB_USER="u", DB_DATABASE="d")), PostgresEngine)
    assert isinstance(engine_for(production(tmp_path, DB_CLIENT="mysql", DB_USER="u", DB_DATABASE="d")), MysqlEngine)


def test_always_runs_the_cleanup_and_keeps_the_body_status(tmp_path):
    marker = tmp_path / "cleaned"
    failed = run(strict(Engine.always("echo body; false", f"touch {q(str(marker))}")), check=False)
    assert failed.returncode != 0 and marker.exists() and failed.stdout == "body\n"
    marker.unlink()
    assert run(strict(Engine.always("true", f"touch {q(str(marker))}"))).returncode == 0 and marker.exists()


def test_fail_prints_the_message_as_data_and_fails(tmp_path):
    message = "file '$(touch pwned)' not found"
    result = run(f"cd {q(str(tmp_path))}; {Engine.fail(message)}; echo unreachable", check=False)
    assert result.returncode == 1 and result.stderr == message + "\n" and result.stdout == ""
    assert not (tmp_path / "pwned").exists()


# -- SQLite, for real ------------------------------------------------------------------------

def seeded(tmp_path):
    root = tmp_path / "in'stall dir"
    (root / "data base").mkdir(parents=True)
    db = root / "data base" / "da'ta.db"
    with sqlite3.connect(db) as connection:
        connection.executescript(
            'CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT);'
            'CREATE TABLE "we""ird name" (x);'
            'CREATE TABLE directus_migrations (version TEXT);'
            "INSERT INTO articles (title) VALUES ('a'), ('b'), ('c');"
            'INSERT INTO "we""ird name" VALUES (1);'
            "INSERT INTO directus_migrations VALUES ('20240101A'), ('20250101B');")
    engine = engine_for(production(root, DB_CLIENT="sqlite3", DB_FILENAME="./data base/da'ta.db"))
    work = tmp_path / "work"
    work.mkdir()
    return engine, db, work


EXPECTED = {"articles": 3, 'we"ird name': 1, "directus_migrations": 2}


@needs_sqlite
def test_sqlite_dump_makes_a_compressed_copy_and_counts_its_rows(tmp_path):
    engine, db, work = seeded(tmp_path)
    assert engine.file == str(db)
    target = work / "database.sqlite.zst"
    out = run(strict(engine.prelude(str(work)), engine.dump(str(target)))).stdout
    assert target.exists() and not (work / "database.sqlite").exists()
    assert parse_counts(out, "dump") == EXPECTED


@needs_sqlite
def test_sqlite_counts_and_size_and_migrations_read_production(tmp_path):
    engine, db, work = seeded(tmp_path)
    out = run(strict(engine.counts(), engine.size(), engine.migrations())).stdout
    assert parse_counts(out) == EXPECTED
    assert parse_size(out) == db.stat().st_size > 0
    assert parse_migrations(out) == ["20240101A", "20250101B"]


@needs_sqlite
def test_sqlite_verify_restores_the_dump_into_a_scratch_file_and_removes_it(tmp_path):
    engine, db, work = seeded(tmp_path)
    dump = work / "database.sqlite.zst"
    run(strict(engine.dump(str(dump))))
    out = run(strict(engine.scratch_restore_counts(str(dump), str(work), "scratch"))).stdout
    assert parse_counts(out, "scratch") == EXPECTED
    assert sorted(p.name for p in work.iterdir()) == ["database.sqlite.zst"]


@needs_sqlite
def test_sqlite_restore_puts_the_dump_back_over_a_changed_database(tmp_path):
    engine, db, work = seeded(tmp_path)
    dump = work / "database.sqlite.zst"
    run(strict(engine.dump(str(dump))))
    with sqlite3.connect(db) as connection:
        connection.execute("DELETE FROM articles")
        connection.execute("CREATE TABLE made_later (x)")
    db.chmod(0o640)
    stale_wal = db.with_name(db.name + "-wal")
    stale_wal.write_bytes(b"stale")
    run(strict(engine.restore(str(dump), str(work))))
    assert parse_counts(run(engine.counts()).stdout) == EXPECTED
    assert not stale_wal.exists() and oct(db.stat().st_mode & 0o777) == "0o640"


@needs_sqlite
def test_sqlite_restore_of_a_damaged_dump_leaves_the_database_alone(tmp_path):
    engine, db, work = seeded(tmp_path)
    dump = work / "database.sqlite.zst"
    run(f"printf 'not a database' | zstd -q -o {q(str(dump))}")
    before = db.read_bytes()
    assert run(strict(engine.restore(str(dump), str(work))), check=False).returncode != 0
    assert db.read_bytes() == before


@needs_sqlite
def test_sqlite_rehearsal_copy_is_counted_and_dropped(tmp_path):
    engine, db, backup = seeded(tmp_path)
    dump = backup / "database.sqlite.zst"
    run(strict(engine.dump(str(dump))))
    work = tmp_path / "rehearsal"
    work.mkdir()
    run(strict(engine.rehearsal_copy(str(dump), str(work))))
    assert engine.rehearsal_settings(str(work)) == {"DB_FILENAME": f"{work}/database.sqlite"}
    assert parse_counts(run(engine.rehearsal_counts(str(work))).stdout) == EXPECTED
    (work / "database.sqlite-wal").write_bytes(b"")
    (work / "keep.txt").write_bytes(b"")
    run(strict(engine.rehearsal_drop(str(work))))
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt"] and dump.exists()


@needs_sqlite
def test_sqlite_counts_a_table_whose_name_holds_the_separator(tmp_path):
    engine, db, work = seeded(tmp_path)
    with sqlite3.connect(db) as connection:
        connection.execute('CREATE TABLE "a|b" (x)')
    assert parse_counts(run(engine.counts()).stdout)["a|b"] == 0


def test_sqlite_prelude_refuses_a_missing_file_instead_of_creating_one(tmp_path):
    engine = engine_for(production(tmp_path, DB_CLIENT="sqlite3", DB_FILENAME="./database/data.db"))
    result = run(strict(engine.prelude(str(tmp_path)) + "echo went on"), check=False)
    assert result.returncode == 1 and "not found" in result.stderr and "went on" not in result.stdout
    assert not (tmp_path / "database" / "data.db").exists()
    assert engine.prelude(str(tmp_path), must_exist=False) == ""


def test_sqlite_needs_its_file_setting(tmp_path):
    with pytest.raises(Refused, match="DB_FILENAME is not set"):
        engine_for(production(tmp_path, DB_CLIENT="sqlite3", DB_FILENAME="  "))


# -- PostgreSQL, against fake clients -----------------------------------------------------------

RECORDER = 'printf "%s\\n" "$(basename "$0")" "$@" >> "$LOG"; env | grep "^PG" | sort >> "$LOG"; echo ---- >> "$LOG"'
PG_ENV = dict(DB_CLIENT="pg", DB_HOST="db host", DB_PORT="5433", DB_USER="us'er", DB_PASSWORD="pa$$ 'w\"d",
              DB_DATABASE='my"db')


def fake_clients(tmp_path, *names):
    bin_dir = tmp_path / "bin"
    for name in names:
        fake_command(bin_dir, name, RECORDER)
    log = tmp_path / "calls.log"
    return {**path_with(bin_dir), "LOG": str(log)}, log


def test_postgres_values_reach_the_clients_intact_and_the_password_only_from_the_environment(tmp_path):
    engine = engine_for(production(tmp_path, **PG_ENV))
    env, log = fake_clients(tmp_path, "pg_dump", "psql", "pg_restore")
    script = strict(engine.dump(str(tmp_path / "database.pgdump")), engine.counts())
    assert PG_ENV["DB_PASSWORD"] not in script
    run(script, env={**env, **engine.secret_env()})
    calls = log.read_text()
    assert "PGHOST=db host\nPGPASSWORD=pa$$ 'w\"d\nPGPORT=5433\nPGUSER=us'er" in calls
    assert 'PGDATABASE=my"db' in calls
    assert calls.startswith("pg_dump\n-Fc\n--no-password\nPGCONNECT_TIMEOUT")  # no file argument: stdout
    assert (tmp_path / "database.pgdump").exists()  # written by the host's redirection



def test_postgres_scratch_database_is_a_quoted_identifier_and_dropped(tmp_path):
    engine = engine_for(production(tmp_path, **PG_ENV))
    env, log = fake_clients(tmp_path, "psql", "pg_restore")
    (tmp_path / "database.pgdump").touch()
    run(strict(engine.scratch_restore_counts(str(tmp_path / "database.pgdump"), str(tmp_path))), env=env)
    calls = log.read_text()
    create = next(line for line in calls.splitlines() if line.startswith("CREATE DATABASE"))
    assert create.startswith('CREATE DATABASE "my""db_scratch_')
    scratch = create[len('CREATE DATABASE "'):-1].replace('""', '"')
    assert f"DROP DATABASE IF EXISTS {quote_identifier(scratch)}" in calls
    assert f"PGDATABASE={scratch}" in calls


def test_postgres_connection_string_is_read_and_its_rehearsal_copy_keeps_its_options(tmp_path):
    url = "postgres://dir%40user:p%3Ass%2Fw@db.internal:6543/prod_db?sslmode=require"
    engine = engine_for(production(tmp_path, DB_CLIENT="pg", DB_CONNECTION_STRING=url))
    assert (engine.host, engine.port, engine.user, engine.password, engine.database) == (
        "db.internal", "6543", "dir@user", "p:ss/w", "prod_db")
    assert engine.describe() == "postgres dir@user@db.internal:6543/prod_db"
    assert engine.rehearsal_settings("/w") == {}
    copy = engine.rehearsal_secret_settings("/w")["DB_CONNECTION_STRING"]
    assert copy == "postgres://dir%40user:p%3Ass%2Fw@db.internal:6543/prod_db_scratch_rehearsal?sslmode=require"


def test_postgres_needs_a_database_and_a_user(tmp_path):
    with pytest.raises(Refused, match="DB_DATABASE and DB_USER"):
        engine_for(production(tmp_path, DB_CLIENT="pg", DB_DATABASE="d"))


# -- MySQL ------------------------------------------------------------------------------------

MY_ENV = dict(DB_CLIENT="mysql", DB_HOST="db host", DB_PORT="3307", DB_USER="us'er", DB_PASSWORD='p"a\\ss w$rd',
              DB_DATABASE="my`db")


@pytest.mark.skipif(not shutil.which("mysql"), reason="mysql client")
def test_mysql_option_file_holds_every_value_as_mysql_reads_it_and_is_removed(tmp_path):
    engine = engine_for(production(tmp_path, **MY_ENV))
    script = strict(engine.prelude(str(tmp_path)) + 'echo "$MYCNF" > ' + q(str(tmp_path / "where")),
                    'mysql --defaults-extra-file="$MYCNF" --print-defaults')
    assert MY_ENV["DB_PASSWORD"] not in script
    out = run(script, env=engine.secret_env()).stdout
    assert "--host=db host --port=3307 --user=us'er --password=p\"a\\ss w$rd" in out
    cnf = (tmp_path / "where").read_text().strip()
    assert not shutil.os.path.exists(cnf)  # trap removed it when the script ended


@pytest.mark.skipif(not shutil.which("mysql"), reason="mysql client")
@pytest.mark.parametrize("ending", ["exit 0", "false", "kill -TERM $$", "kill -INT $$"])
def test_mysql_option_file_is_private_made_once_and_removed_however_the_script_ends(tmp_path, ending):
    engine = engine_for(production(tmp_path, **MY_ENV))
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    where = q(str(tmp_path / "where"))
    script = strict(
        # twice, as a rehearsal's teardown and its work each start with one: the second reuses the first
        engine.prelude(str(tmp_path)) + engine.prelude(str(tmp_path)) + "true",
        f'stat -c "%a %n" "$(dirname "$MYCNF")" "$MYCNF" > {where}',
        ending)
    run(script, env={**engine.secret_env(), "TMPDIR": str(private_tmp)}, check=False)
    modes = (tmp_path / "where").read_text().split("\n")
    assert modes[0].startswith("700 ") and modes[1].startswith("600 ")
    assert list(private_tmp.iterdir()) == []  # nothing left, whatever ended the script


@pytest.mark.skipif(not shutil.which("mysql"), reason="mysql client")
def test_mysql_socket_replaces_host_and_port(tmp_path):
    engine = engine_for(production(tmp_path, **MY_ENV, DB_SOCKET_PATH="/run/my sql.sock"))
    out = run(strict(engine.prelude(str(tmp_path)), 'mysql --defaults-extra-file="$MYCNF" --print-defaults'),
              env=engine.secret_env()).stdout
    assert "--socket=/run/my sql.sock --user=us'er" in out and "--host" not in out
    assert engine.describe() == "mysql us'er@/run/my sql.sock/my`db"


@pytest.mark.parametrize("key", ["DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_SOCKET_PATH"])
def test_mysql_refuses_a_line_break_in_a_connection_setting(tmp_path, key):
    with pytest.raises(Refused, match="line break"):
        engine_for(production(tmp_path, **{**MY_ENV, key: "a\nb"}))


def test_mysql_database_name_is_quoted_in_sql_and_on_the_command_line(tmp_path):
    engine = engine_for(production(tmp_path, **MY_ENV))
    env, log = fake_clients(tmp_path, "mysql", "zstd")
    run(strict(engine.rehearsal_drop(str(tmp_path)), engine.counts()), env=env)
    calls = log.read_text()
    assert "DROP DATABASE IF EXISTS `my``db_scratch_rehearsal`" in calls
    assert "\nmy`db\n" in calls  # the database argument, one word


def test_mysql_needs_a_database_and_a_user(tmp_path):
    with pytest.raises(Refused, match="DB_DATABASE and DB_USER"):
        engine_for(production(tmp_path, DB_CLIENT="mysql", DB_USER="u"))
