"""The adoption plan, without a host: which .env settings adopt rewrites and which files it moves."""

from __future__ import annotations

from directus_deploy.flows.adoption_plan import plan_adoption, rewrite_env_text
from directus_deploy.flows.production_env import parse

ROOT = "/srv/directus"


def plan_for(**env):
    return plan_adoption(ROOT, env)


def test_the_tidy_shape_needs_nothing():
    plan = plan_for(DB_CLIENT="sqlite3", DB_FILENAME="./database/data.db", STORAGE_LOCAL_ROOT="./uploads")
    assert plan.rewrites == [] and plan.database_files == []


def test_directus_init_sqlite_beside_package_json_moves_into_a_folder():
    for filename in ("./data.db", "data.db", f"{ROOT}/data.db", f"{ROOT}//./data.db"):
        plan = plan_for(DB_CLIENT="sqlite3", DB_FILENAME=filename)
        assert [(r.key, r.old, r.new) for r in plan.rewrites] == [("DB_FILENAME", filename, "./database/data.db")]
        assert plan.database_files == [("data.db", "data.db", True), ("data.db-wal", "data.db-wal", False),
                                       ("data.db-shm", "data.db-shm", False), ("data.db-journal", "data.db-journal", False)]


def test_absolute_paths_into_the_install_become_relative_and_outside_ones_stay():
    plan = plan_for(DB_CLIENT="sqlite3", DB_FILENAME=f"{ROOT}/db/site.db", STORAGE_LOCAL_ROOT=f"{ROOT}/media",
                    EXTENSIONS_PATH="/opt/directus-extensions")
    assert {r.key: r.new for r in plan.rewrites} == {"DB_FILENAME": "./db/site.db", "STORAGE_LOCAL_ROOT": "./media"}
    assert plan.database_files == []
    outside = plan_for(DB_CLIENT="sqlite3", DB_FILENAME="/var/lib/directus/data.db", STORAGE_LOCAL_ROOT="/srv/media")
    assert outside.rewrites == [] and outside.database_files == []
    # a sibling folder whose name starts like the install's is outside it
    assert plan_for(DB_CLIENT="sqlite3", DB_FILENAME=f"{ROOT}-old/data.db").rewrites == []


def test_db_filename_of_another_client_is_left_alone():
    assert plan_for(DB_CLIENT="pg", DB_FILENAME="./data.db").rewrites == []


def test_the_rewritten_env_keeps_every_other_line_and_reads_back():
    text = ("# production\nKEY=\"a b\"\nexport DB_FILENAME='/srv/directus/data.db'\nSECRET=s3cr=t # note\n"
            "DB_CLIENT=sqlite3")
    plan = plan_adoption(ROOT, parse(text))
    new = rewrite_env_text(text, plan.rewrites)
    assert parse(new) == {**parse(text), "DB_FILENAME": "./database/data.db"}
    assert new.startswith("# production\nKEY=\"a b\"\n# DB_FILENAME was /srv/directus/data.db")
    assert new.endswith("DB_CLIENT=sqlite3\n")
