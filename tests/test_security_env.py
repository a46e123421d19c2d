"""The production .env and what it holds, on the real test bed: values read as Directus reads
them (no ${VAR} expansion, `#` and quotes as Node's dotenv takes them) and written back byte for
byte; passwords inside URLs never shown, whatever their key; uploads restored only where the
backup took them from."""

from __future__ import annotations

import os
import secrets

from directus_deploy.state.production import HEALTH_PROBE_FILE
from testbed.sshd import ALIAS

from .helpers import fab_ok, one_line, private_setups, run_fab, tree_fingerprint


def test_a_password_with_dollar_braces_and_hash_is_the_one_directus_uses(bed, tmp_path):
    # Directus reads these values as written; python-dotenv would read p${A}q as pq
    password = f"p${{A}}q$x#{secrets.token_hex(4)}"
    secret = f"s${{A}}t#{secrets.token_hex(16)}"
    made = bed.shaped_productions({"a_dollar": {"engine": "mysql", "db_password": password,
                                                "extra_env": {"SECRET": secret}}})
    production = made["a_dollar"]
    try:
        setup = private_setups(bed, {"mysql": production}, tmp_path)["mysql"]
        original = (production.folder / ".env").read_text()
        assert f'DB_PASSWORD="{password}"\n' in original and f'SECRET="{secret}"\n' in original
        outputs = [fab_ok("backup.db", f"--install={production.folder}", env_file=setup["env"])]
        outputs.append(fab_ok("deploy.adopt", f"--from={production.folder}", env_file=setup["env"]))
        shared_env = setup["srv"] / "shared" / ".env"
        assert shared_env.read_text() == original
        template = tmp_path / "production.env"
        template.write_text("LOG_LEVEL=warn\nDB_PASSWORD=@host\nSECRET=@host\n")
        outputs.append(fab_ok("config.push", f"--file={template}", "--yes", env_file=setup["env"]))
        # only LOG_LEVEL's line changed; Directus went live on the file (the health gate)
        assert shared_env.read_text() == original.replace("LOG_LEVEL=info\n", "LOG_LEVEL=warn\n")
        outputs.append(fab_ok("backup.db", env_file=setup["env"]))
        for result in outputs:
            assert password not in result.stdout + result.stderr and secret not in result.stdout + result.stderr
    finally:
        production.destroy()


def test_passwords_inside_urls_are_never_shown_whatever_the_key(bed, tmp_path):
    hook_pw, search_pw, redis_pw, new_hook_pw = (f"pw{secrets.token_hex(8)}" for _ in range(4))
    # keys Directus does not connect with: it runs as before, the tool reads and shows them
    made = bed.shaped_productions({"a_urls": {"engine": "sqlite", "extra_env": {
        "AUDIT_WEBHOOK_URL": f"https://hook:{hook_pw}@127.0.0.1:9/hook",
        "SEARCH_ENDPOINT": f"http://:{search_pw}@127.0.0.1:9/search"}}})
    production = made["a_urls"]
    try:
        setup = private_setups(bed, {"sqlite": production}, tmp_path)["sqlite"]
        adopt = fab_ok("deploy.adopt", f"--from={production.folder}", env_file=setup["env"])
        template = tmp_path / "production.env"
        template.write_text(f"REDIS=redis://:{redis_pw}@127.0.0.1:6379\n"
                            f"AUDIT_WEBHOOK_URL=https://hook:{new_hook_pw}@127.0.0.1:9/hook\n")
        diff = fab_ok("config.diff", f"--file={template}", env_file=setup["env"])
        dry = fab_ok("config.push", f"--file={template}", "--dry-run", env_file=setup["env"])
        for result in (adopt, diff, dry):
            printed = result.stdout + result.stderr
            for password in (hook_pw, search_pw, redis_pw, new_hook_pw):
                assert password not in printed, printed
        # the rest of each URL is shown
        for shown in ("redis://:***@127.0.0.1:6379", "https://hook:***@127.0.0.1:9/hook",
                      "http://:***@127.0.0.1:9/search"):
            assert shown in diff.stdout and shown in dry.stdout, diff.stdout
    finally:
        production.destroy()


def test_uploads_are_restored_only_where_they_were_taken_from(bed, tmp_path):
    made = bed.shaped_productions({"a_moved": {"engine": "sqlite"}})
    production = made["a_moved"]
    try:
        setup = private_setups(bed, {"sqlite": production}, tmp_path, adopt=True)["sqlite"]
        srv, env = setup["srv"], setup["env"]
        before = production.content()
        fab_ok("backup.files", env_file=env)
        backup = sorted(p.name for p in (srv / "backups").iterdir() if not p.name.startswith("."))[-1]
        # the storage moved: the .env names another folder, which holds a file of its own
        moved = tmp_path / "a-moved-media"
        moved.mkdir()
        (moved / "keep.txt").write_text("mine")
        shared_env = srv / "shared" / ".env"
        shared_env.write_text(shared_env.read_text().replace("STORAGE_LOCAL_ROOT=./uploads\n",
                                                             f"STORAGE_LOCAL_ROOT={moved}\n"))
        backups_before, moved_before = sorted(os.listdir(srv / "backups")), tree_fingerprint(moved)

        refused = run_fab("backup.restore", f"--id={backup}", "--only=files", "--yes", env_file=env)
        assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr
        line = one_line(refused)
        assert f"STORAGE_LOCAL_ROOT=uploads, but the production .env now says STORAGE_LOCAL_ROOT={moved}" in line
        assert f"--to={moved}" in line
        assert tree_fingerprint(moved) == moved_before and sorted(os.listdir(srv / "backups")) == backups_before

        # the question names the primary host, not the first of DEPLOY_HOSTS
        asked = run_fab("backup.restore", f"--id={backup}", "--only=files", env_file=env,
                        env={"DEPLOY_HOSTS": f"deploy@a-other.invalid,{ALIAS}", "DEPLOY_PRIMARY": ALIAS})
        assert asked.returncode == 2 and f"over production on {ALIAS}?" in one_line(asked)

        # --to says so: the uploads go there, and what the folder held is in the safety backup
        fab_ok("backup.restore", f"--id={backup}", "--only=files", f"--to={moved}", "--yes", env_file=env)
        assert not (moved / "keep.txt").exists()
        assert sorted(p.name for p in moved.iterdir() if p.name != HEALTH_PROBE_FILE) == sorted(
            p.name for p in (srv / "shared" / "uploads").iterdir() if p.name != HEALTH_PROBE_FILE)
        safety = sorted(p for p in (srv / "backups").iterdir() if "pre-restore" in p.name)[-1]
        assert (safety / "uploads" / "keep.txt").read_text() == "mine"
        assert production.content() == before  # Directus serves every file from the new folder
    finally:
        production.destroy()
