"""The production .env and what it holds, on the real test bed: values read as Directus reads
them (no ${VAR} expansion, `#` and quotes as Node's dotenv takes them), written back byte for byte."""

from __future__ import annotations

import secrets

from .helpers import fab_ok, private_setups


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
