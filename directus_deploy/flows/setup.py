"""Preparing a new host: the layout, and the production `.env` uploaded from a local file."""

from __future__ import annotations

from pathlib import Path

from directus_deploy.core import dotenv
from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q
from directus_deploy.state.shared import shared_links


def setup_host(session, env_file: Path) -> list[str]:
    remote, layout = session.remote(), session.layout
    if not env_file.is_file():
        raise Refused(f"--env-file={env_file}: no such file (the production .env to install on the host)")
    text = env_file.read_text()
    env = dotenv.parse(text)  # as Directus will read it
    for key in ("DB_CLIENT", "SECRET"):
        if not env.get(key):
            raise Refused(f"{env_file} has no {key}; Directus needs it in production")
    links = shared_links(layout, env)  # refuses a layout Directus could not share
    if remote.exists(layout.shared_env):
        raise Refused(f"{layout.shared_env} exists already: this host is set up (change settings with care, by hand)")
    folders = [layout.releases, layout.shared, layout.shared_deps, layout.tool_dir] + [
        link.target for link in links if link.path != ".env"
    ]
    script = "\n".join([
        f"mkdir -p {q(*folders)}",
        f"mkdir -p -m 0700 {q(layout.backups)} && chmod 0700 {q(layout.backups)}",
        f"umask 077 && cat > {q(layout.shared_env + '.tmp')} && mv -f -- {q(layout.shared_env + '.tmp')} {q(layout.shared_env)}",
    ])
    remote.script(script, stdin=text, what="create the layout and install the production .env")
    return folders + [layout.backups, layout.shared_env]
