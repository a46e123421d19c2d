"""Directus's configuration CLI as the tool runs it: installed from the lockfile it carries (once,
never half), and the admin token in the environment of the CLI's own process alone. Run in a
local bash with a fake npm."""

from __future__ import annotations

import json
from pathlib import Path

from directus_deploy.flows import system_config
from directus_deploy.host.remote import q

from .local import fake_command, path_with, run, strict

FOLDER = Path(system_config.__file__).resolve().parent.parent / "d6s"


def test_the_lockfile_pins_the_cli_and_every_dependency_with_its_checksum():
    manifest = json.loads((FOLDER / "package.json").read_text())
    (name, version), = manifest["dependencies"].items()
    assert name == "@directus/cli" and version[0].isdigit()  # an exact version, no range
    packages = json.loads((FOLDER / "package-lock.json").read_text())["packages"]
    assert packages["node_modules/@directus/cli"]["version"] == version
    assert all(entry.get("integrity", "").startswith("sha512-") for path, entry in packages.items() if path)
    assert system_config.cli_package() == f"@directus/cli@{version}"


def install(tmp_path, npm_body: str):
    fake = fake_command(tmp_path / "bin", "npm", f'echo "npm $*" >> {q(str(tmp_path / "npm.log"))}\n{npm_body}')
    folder = str(tmp_path / "d6s" / system_config.helper_key())
    (tmp_path / "d6s").mkdir(exist_ok=True)
    return folder, run(strict(system_config.install_helper_script(folder)), stdin=system_config.helper_archive(),
                       env=path_with(fake.parent), check=False)


def test_the_cli_is_installed_from_the_lockfile_with_no_install_script_and_once(tmp_path):
    ci = "mkdir -p node_modules/.bin && printf '#!/bin/sh\\n' > node_modules/.bin/d6s && chmod +x node_modules/.bin/d6s"
    folder, first = install(tmp_path, ci)
    assert first.returncode == 0 and first.stdout.strip() == "installed"
    assert (Path(folder) / "package-lock.json").read_bytes() == (FOLDER / "package-lock.json").read_bytes()
    assert (tmp_path / "npm.log").read_text() == "npm ci --ignore-scripts --omit=dev --no-audit --no-fund --loglevel=error\n"
    folder, second = install(tmp_path, "exit 1")
    assert second.stdout.strip() == "present" and len((tmp_path / "npm.log").read_text().splitlines()) == 1


def test_a_failed_install_leaves_nothing_that_looks_installed(tmp_path):
    folder, result = install(tmp_path, "mkdir -p node_modules/.bin && touch node_modules/.bin/d6s; exit 1")
    assert result.returncode != 0
    assert not Path(folder).exists()


def test_the_token_reaches_the_cli_and_no_other_command(tmp_path):
    d6s = tmp_path / "node_modules" / ".bin" / "d6s"
    fake_command(d6s.parent, "d6s", 'echo "d6s sees ${DIRECTUS_PRODUCTION_TOKEN:-nothing}"')
    script = strict(
        f"export {system_config.TOKEN_VARIABLE}=admin-token-123",  # as the remote shell reads it from stdin
        system_config.KEEP_TOKEN_IN_THE_SCRIPT,
        'echo "others see ${DIRECTUS_PRODUCTION_TOKEN:-nothing} $(env | grep -c admin-token-123 || true)"',
        system_config._d6s(str(tmp_path), "production", "sync", "diff"))
    assert "admin-token-123" not in system_config._d6s(str(tmp_path), "production")
    assert run(script).stdout.splitlines() == ["others see nothing 0", "d6s sees admin-token-123"]
