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
