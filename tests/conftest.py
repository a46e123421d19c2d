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

from .helpers import behind_nginx_bluegreen


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
    yield from behind_nginx_bluegreen(bed, nginx, tmp_path_factory.mktemp("bluegreen"), "sqlite")


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
