"""Platform configuration on the real test bed: Directus's system configuration made on a
development instance, pulled, released and rolled back; the production .env pushed from the
project's template. Content rows and files are never touched."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from testbed.project import clone_project, git

from .helpers import REPO, fab_ok, one_line, run_fab


@pytest.fixture(scope="module")
def platform(bed, tmp_path_factory):
    production = bed.new_productions(("sqlite",))["sqlite"]
    development = bed.new_productions(("sqlite",))["sqlite"]  # where the developer builds the configuration
    folder = tmp_path_factory.mktemp("platform")
    project = clone_project(bed.project_dir("sqlite"), folder / "project")
    env_file = bed.tool_env(production, folder, DEPLOY_SOURCE=str(project), DIRECTUS_DEV_URL=development.url)
    fab_ok("deploy.adopt", f"--from={production.folder}", "--tag=v1", env_file=env_file)
    fab_ok("release", "--tag=v2", "--yes", env_file=env_file)
    local = {"PATH": f"{bed.toolchain.bin_dir}:{os.environ['PATH']}", "DIRECTUS_DEV_TOKEN": development.token}
    yield {"production": production, "development": development, "env": env_file, "project": project,
           "srv": folder / "srv", "local": local}
    for instance in (production, development):
        instance.destroy()


def make_on_development(api) -> None:
    """What a developer clicks together: a role with a policy and a permission, a flow with an
    operation, a default layout for articles."""
    policy = api.json("POST", "/policies", {"name": "Editors", "icon": "edit", "app_access": True, "admin_access": False})
    api.json("POST", "/roles", {"name": "Editor", "icon": "edit", "policies": [{"policy": policy["data"]["id"]}]})
    api.json("POST", "/permissions", {"policy": policy["data"]["id"], "collection": "articles", "action": "read",
                                      "fields": ["*"]})
    flow = api.json("POST", "/flows", {"name": "Log new articles", "status": "active", "trigger": "event",
                                      "options": {"type": "action", "scope": ["items.create"], "collections": ["articles"]}})
    operation = api.json("POST", "/operations", {"name": "Log it", "key": "log_it", "type": "log", "flow": flow["data"]["id"],
                                                 "position_x": 19, "position_y": 1, "options": {"message": "new article"}})
    api.json("PATCH", f"/flows/{flow['data']['id']}", {"operation": operation["data"]["id"]})
    api.json("POST", "/presets", {"collection": "articles", "layout": "tabular",
                                  "layout_query": {"tabular": {"sort": ["-id"]}}})


def configuration(api) -> dict:
    return {
        "roles": sorted(r["name"] for r in api.get("/roles?fields=name&limit=-1")["data"]),
        "policies": sorted(p["name"] for p in api.get("/policies?fields=name&limit=-1")["data"]),
        "editor_reads_articles": bool(api.get("/permissions?filter[policy][name][_eq]=Editors"
                                              "&filter[collection][_eq]=articles&limit=-1")["data"]),
        "flows": sorted(f["name"] for f in api.get("/flows?fields=name&limit=-1")["data"]),
        "operations": sorted(o["key"] for o in api.get("/operations?fields=key&limit=-1")["data"]),
        "presets": sorted(p["collection"] for p in api.get("/presets?filter[user][_null]=true&fields=collection&limit=-1")["data"]),
    }


def tag(project, name: str, files: dict) -> None:
    git(project, "checkout", "-q", "--detach", "v2")
    for path, text in files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", name)
    git(project, "tag", "-a", name, "-m", name)


def test_system_configuration_is_pulled_released_and_rolled_back(platform):
    production, development, project = platform["production"], platform["development"], platform["project"]
    make_on_development(development.api)
    before_content, before_config = production.content(), configuration(production.api)
    assert "Editor" not in before_config["roles"]

    pulled = run_fab("config.pull", env_file=platform["env"], env=platform["local"])
    assert pulled.returncode == 0, pulled.stdout[-2000:] + pulled.stderr
    assert development.token not in pulled.stdout + pulled.stderr
    export = project / "config" / "system"
    presets = json.loads((export / "presets.json").read_text())
    assert [p["collection"] for p in presets] == ["articles"]
    assert any(json.loads(p.read_text()).get("collection") == "directus_flows" for p in (export / "data").glob("*.json"))
    tag(project, "v3-config", {})  # what the developer commits and tags

    released = fab_ok("release", "--tag=v3-config", "--yes", env_file=platform["env"])
    assert "apply the system configuration (merge: adds and updates, never deletes)" in released.stdout
    after = configuration(production.api)
    assert "Editor" in after["roles"] and "Editors" in after["policies"] and after["editor_reads_articles"]
    assert "Log new articles" in after["flows"] and "log_it" in after["operations"]
    assert after["presets"] == ["articles"]
    assert set(before_config["roles"]) <= set(after["roles"])  # nothing of production's own went
    assert production.content() == before_content
    backup = json.loads((platform["srv"] / ".deploy" / "log.jsonl").read_text().splitlines()[-1])["backup"]
    manifest = json.loads((platform["srv"] / "backups" / backup / "manifest.json").read_text())
    assert manifest["config"]["files"] > 5  # production's configuration as it was, in the backup

    rolled = fab_ok("rollback", "--yes", env_file=platform["env"])
    assert "put the system configuration back" in rolled.stdout
    assert configuration(production.api) == before_config
    assert production.content() == before_content


def env_of(srv) -> dict:
    from dotenv import dotenv_values

    return dotenv_values(srv / "shared" / ".env")


def test_an_env_change_is_pushed_and_in_effect_and_the_previous_is_in_the_backup(platform, tmp_path):
    production, srv = platform["production"], platform["srv"]
    template = tmp_path / "production.env"
    template.write_text("# production settings, secrets stay on the host\nSECRET=@host\nCORS_ENABLED=true\n"
                        "CORS_ORIGIN=https://cms.example.test\nEMAIL_SMTP_PASSWORD=${TEST_SMTP_PASSWORD}\n")
    env = {"TEST_SMTP_PASSWORD": "smtp-pass-from-ci-7391"}
    before = env_of(srv)

    shown = run_fab("config.diff", f"--file={template}", env_file=platform["env"], env=env)
    assert shown.returncode == 0, shown.stderr
    assert "CORS_ORIGIN" in shown.stdout and "https://cms.example.test" in shown.stdout
    assert "smtp-pass-from-ci-7391" not in shown.stdout and "***" in shown.stdout
    assert "kept: only on the host" in shown.stdout  # DB_FILENAME and the rest stay
    assert env_of(srv) == before  # a diff changes nothing

    pushed = run_fab("config.push", f"--file={template}", "--yes", env_file=platform["env"], env=env)
    assert pushed.returncode == 0, pushed.stdout[-2000:] + pushed.stderr
    assert "smtp-pass-from-ci-7391" not in pushed.stdout + pushed.stderr
    now = env_of(srv)
    assert now["CORS_ORIGIN"] == "https://cms.example.test" and now["EMAIL_SMTP_PASSWORD"] == "smtp-pass-from-ci-7391"
    assert {k: v for k, v in now.items() if k in before} == before  # every other setting as it was
    request = urllib.request.Request(production.url + "/server/ping", headers={"Origin": "https://cms.example.test"})
    with urllib.request.urlopen(request) as answer:  # in effect: Directus restarted on it
        assert answer.headers["Access-Control-Allow-Origin"] == "https://cms.example.test"
    backup = json.loads((srv / ".deploy" / "log.jsonl").read_text().splitlines()[-1])["backup"]
    assert "CORS_ORIGIN" not in (srv / "backups" / backup / "env").read_text()
    assert oct((srv / "shared" / ".env").stat().st_mode & 0o777) == "0o600"


def test_a_push_that_would_change_secret_is_refused(platform, tmp_path):
    srv = platform["srv"]
    template = tmp_path / "production.env"
    template.write_text("SECRET=a-new-secret-would-log-everybody-out\nCORS_ORIGIN=https://other.example.test\n")
    before = (srv / "shared" / ".env").read_bytes()
    result = run_fab("config.push", f"--file={template}", "--yes", env_file=platform["env"])
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr
    assert "changes SECRET" in one_line(result) and "a-new-secret" not in result.stdout + result.stderr
    assert (srv / "shared" / ".env").read_bytes() == before


def test_the_configuration_cli_runs_from_the_tools_lockfile_with_no_registry_reachable(platform, bed, tmp_path):
    """Directus's CLI is installed from the lockfile this tool carries, once per lockfile, and
    then runs with nothing fetched: here npm's registry is a closed port and its cache empty (a
    `npx` run would resolve the package and its dependencies there, and fail)."""
    srv = platform["srv"]
    offline = tmp_path / "node-offline"  # DEPLOY_NODE_PATH: the same tools, npm cut off
    offline.mkdir()
    for tool in bed.toolchain.bin_dir.iterdir():
        wrapper = offline / tool.name
        wrapper.write_text(f"#!/bin/sh\nexport npm_config_registry=http://127.0.0.1:9/ npm_config_cache={tmp_path}/empty-cache\n"
                           f"exec {tool} \"$@\"\n")
        wrapper.chmod(0o755)
    installs = list((srv / ".deploy" / "d6s").iterdir())  # what the releases above installed
    assert len(installs) == 1 and (installs[0] / "node_modules" / ".bin" / "d6s").exists()
    locked = json.loads((REPO / "directus_deploy" / "d6s" / "package-lock.json").read_text())["packages"]
    installed = json.loads((installs[0] / "node_modules" / ".package-lock.json").read_text())["packages"]
    assert {path: entry["version"] for path, entry in installed.items()} == \
        {path: entry["version"] for path, entry in locked.items() if path}

    released = run_fab("release", "--tag=v3-config", "--yes", env_file=platform["env"],
                       env={"DEPLOY_NODE_PATH": str(offline)})
    assert released.returncode == 0, released.stdout[-3000:] + released.stderr
    assert "apply the system configuration" in released.stdout
    assert "Editor" in configuration(platform["production"].api)["roles"]
    assert not (tmp_path / "empty-cache").exists() or not any((tmp_path / "empty-cache").rglob("*.tgz"))
