"""Fixtures: one test bed of real parts per test session (sshd, Node 22, Directus, pm2, and a
seeded production on SQLite, PostgreSQL and MariaDB), and a way to run `fab` against it.

Set DIRECTUS_DEPLOY_TESTBED to the folder of a bed started with `python -m testbed up` to
reuse it instead of building one (quicker when iterating).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testbed.bed import TestBed
from testbed.nginx import Nginx
from testbed.project import clone_project
from testbed.sshd import free_port

from .helpers import fab_ok


@pytest.fixture(scope="session")
def bed(tmp_path_factory):
    reuse = os.environ.get("DIRECTUS_DEPLOY_TESTBED")
    if reuse and (Path(reuse) / "testbed.json").exists():
        yield TestBed.attach(Path(reuse))
        return
    testbed = TestBed(tmp_path_factory.mktemp("bed")).up()
    yield testbed
    testbed.destroy()


@pytest.fixture(scope="session")
def nginx(tmp_path_factory):
    """nginx in front of the productions that need it (blue/green), one for the session."""
    server = Nginx(tmp_path_factory.mktemp("nginx")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def blue_green(bed, nginx: Nginx, tmp_path_factory):
    """A SQLite production behind nginx, adopted with DEPLOY_STRATEGY=bluegreen, its nginx site
    then pointed at the tool's upstream (the one step the user does by hand)."""
    production = bed.new_productions(("sqlite",))["sqlite"]
    folder = tmp_path_factory.mktemp("bluegreen")
    project = clone_project(bed.project_dir("sqlite"), folder / "project")
    site = production.name
    port = nginx.site(site, production.url)  # how it runs today: nginx -> Directus's port
    upstream = f"{production.name}_directus"
    include = nginx.upstream_file(production.name)
    blue, green = free_port(), free_port()
    env_file = bed.tool_env(production, folder, DEPLOY_SOURCE=str(project), DEPLOY_STRATEGY="bluegreen",
                            DEPLOY_BLUEGREEN_PORTS=f"{blue},{green}", DEPLOY_NGINX_UPSTREAM_FILE=str(include),
                            DEPLOY_NGINX_UPSTREAM=upstream, DEPLOY_NGINX_CONF=str(nginx.conf),
                            DIRECTUS_URL=f"http://127.0.0.1:{port}")
    adopted = fab_ok("deploy.adopt", f"--from={production.folder}", env_file=env_file)
    assert f"127.0.0.1:{production.port}" in include.read_text()  # names what serves today
    assert "point your nginx site" in fab_ok("deploy.upstream", env_file=env_file).stdout, adopted.stdout
    nginx.site(site, f"http://{upstream}", port=port, upstream=(upstream, include))
    production.port = port  # from now on the tests read production as users reach it: through nginx
    yield {"production": production, "env": env_file, "project": project, "url": f"http://127.0.0.1:{port}",
           "include": include, "ports": {"blue": blue, "green": green}, "nginx": nginx, "srv": folder / "srv"}
    bed.pm2.run("delete", f"{production.app}-blue", check=False)
    bed.pm2.run("delete", f"{production.app}-green", check=False)
    production.destroy()


NEEDS_THE_BED = {"bed", "nginx"}


def pytest_configure(config):
    config.addinivalue_line("markers", "fast: runs without the test bed (./run-tests --fast runs these alone)")


def pytest_collection_modifyitems(items):
    """A test that asks for no part of the test bed is in the fast tier."""
    for item in items:
        if not NEEDS_THE_BED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.fast)


def pytest_terminal_summary(terminalreporter):
    """The reliability suite's table of outcomes, printed, and kept when RELIABILITY_REPORT names a file."""
    from tests.reliability import RESULTS, table

    if not RESULTS:
        return
    terminalreporter.write_sep("=", "reliability scenarios")
    terminalreporter.write_line(table())
    target = os.environ.get("RELIABILITY_REPORT")
    if target:
        # the scenarios' table is rewritten; what follows it (the security table) is kept
        previous = Path(target).read_text() if Path(target).exists() else ""
        kept = previous[previous.index(SECURITY_HEADING):] if SECURITY_HEADING in previous else ""
        Path(target).write_text(
            "# Reliability and security suite\n\n"
            "Every scenario of `tests/test_reliability.py`, on the real test bed, as printed by its latest run:\n\n"
            "```sh\nRELIABILITY_REPORT=docs/reliability.md ./run-tests tests/test_reliability.py\n```\n\n"
            + table() + "\n" + ("\n" + kept if kept else "")
        )


SECURITY_HEADING = "## Security"
