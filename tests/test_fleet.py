"""Several hosts on the real test bed: three app servers (each its own network and its own
DEPLOY_PATH, reached over SSH), one PostgreSQL database, one uploads storage, nginx balancing
across them. Releases roll one host at a time with a probe sending a request every 50 ms
through nginx, and not one fails; a host failing its gate mid-roll, or unreachable, leaves every
host on what it served."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request

import pytest

from testbed.content import Api, read_content
from testbed.fleet import Fleet
from testbed.probe import Probe
from testbed.project import add_tag, clone_project, hook_extension

from .helpers import one_line, run_fab
from .reliability import fab_process, run_until

PROBED = ["/server/ping", "/items/articles?limit=1", "/hello"]
# a setting only one host has makes this release die as it starts there
FAILS_ON_ONE_HOST = hook_extension(
    "directus-extension-picky",
    "export default ({ init }, { env }) => { init('app.before', () => { if (env.DXD_FAIL_ON_THIS_HOST) process.exit(1); }); };\n")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the fleet needs root: network and mount namespaces")


@pytest.fixture(scope="module")
def fleet(bed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fleet")
    project = clone_project(bed.project_dir("postgres"), folder / "project")
    fleet = Fleet(folder / "hosts", bed).up(project)
    fleet.project = project
    yield fleet
    fleet.destroy()


def hello_on(host) -> str:
    with urllib.request.urlopen(host.url + "/hello", timeout=10) as answer:
        return json.loads(answer.read())["message"]


def current_of(host) -> str:
    return os.readlink(host.folder / "current")


@contextlib.contextmanager
def failing_on_the_second_host(fleet, tag: str):
    """A tag that dies as it starts on fleet-2 (a setting only that host has), for the block."""
    add_tag(fleet.project, tag, FAILS_ON_ONE_HOST)
    env_file = fleet.hosts[1].folder / "shared" / ".env"
    original = env_file.read_text()
    env_file.write_text(original + "DXD_FAIL_ON_THIS_HOST=true\n")
    try:
        yield
    finally:
        env_file.write_text(original)


def probed(fleet, *args):
    with Probe(fleet.url, PROBED, token=fleet.install.token) as probe:
        result = run_fab(*args, env_file=fleet.tool_env_file)
    return result, probe


def test_a_rolling_release_and_rollback_fail_no_request(fleet):
    api = Api(fleet.url, fleet.install.token)
    before = read_content(api)
    result, probe = probed(fleet, "release", "--tag=v2", "--yes")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    assert probe.failures == [], probe.failures[:5]
    assert len(probe.samples) > 100, probe.summary()
    assert set(probe.messages()) == {"hello from v1", "hello from v2"} and probe.messages()[-1] == "hello from v2"
    assert [hello_on(host) for host in fleet.hosts] == ["hello from v2"] * 3
    lines = result.stdout.splitlines()
    switches = [n for n, line in enumerate(lines) if "==> switch to" in line]
    assert [lines[n].split("]")[0] + "]" for n in switches] == ["[fleet-1]", "[fleet-2]", "[fleet-3]"]  # one at a time
    assert "upload and unpack release" in result.stdout and "on 3 hosts in parallel" in result.stdout
    assert "uploads: one storage for every host" in result.stdout
    assert sum(1 for line in lines if "==> back up the postgres database" in line) == 1  # the database once
    entry = json.loads((fleet.hosts[0].folder / ".deploy" / "log.jsonl").read_text().splitlines()[-1])
    assert entry["outcome"] == "ok" and sorted(entry["hosts"]) == ["fleet-1", "fleet-2", "fleet-3"]
    for host in fleet.hosts[1:]:
        mirrored = json.loads((host.folder / ".deploy" / "log.jsonl").read_text().splitlines()[-1])
        assert mirrored["release"] == entry["release"] and mirrored["primary"] == "fleet-1"

    result, probe = probed(fleet, "rollback", "--yes")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    assert probe.failures == [], probe.failures[:5]
    assert [hello_on(host) for host in fleet.hosts] == ["hello from v1"] * 3
    assert read_content(api) == before


def test_a_host_failing_its_gate_mid_roll_puts_every_host_back(fleet):
    serving = [current_of(host) for host in fleet.hosts]
    with failing_on_the_second_host(fleet, "v3-picky"):
        result, probe = probed(fleet, "release", "--tag=v3-picky", "--yes")
    assert result.returncode == 3, result.stdout[-4000:] + result.stderr
    line = one_line(result)
    assert "fleet-2" in line and "every host is back on the release it served" in line, line
    assert "[fleet-1]     another host failed: switching back to" in result.stdout
    assert "[fleet-3] ==> switch to" not in result.stdout  # the roll stopped at the host that failed
    assert [current_of(host) for host in fleet.hosts] == serving
    assert [hello_on(host) for host in fleet.hosts] == ["hello from v1"] * 3
    assert probe.failures == [], probe.failures[:5]


def test_an_unreachable_host_stops_the_release_before_anything_changes(fleet):
    unreachable = fleet.hosts[2]
    serving = [current_of(host) for host in fleet.hosts]
    releases = [sorted(p.name for p in (host.folder / "releases").iterdir()) for host in fleet.hosts]
    unreachable.stop_sshd()
    try:
        result = run_fab("release", "--tag=v2", "--yes", env_file=fleet.tool_env_file)
    finally:
        unreachable.start_sshd()
    assert result.returncode != 0, result.stdout[-3000:]
    assert "fleet-3" in one_line(result)
    assert [current_of(host) for host in fleet.hosts] == serving
    assert [sorted(p.name for p in (host.folder / "releases").iterdir()) for host in fleet.hosts] == releases
    assert not (fleet.hosts[0].folder / ".deploy" / "lock").exists()


def test_a_batch_switched_at_once_goes_back_together_when_one_host_fails(fleet):
    serving = [current_of(host) for host in fleet.hosts]
    with failing_on_the_second_host(fleet, "v3-picky-batch"):
        result = run_fab("release", "--tag=v3-picky-batch", "--batch=3", "--yes", env_file=fleet.tool_env_file)
    assert result.returncode == 3, result.stdout[-4000:] + result.stderr
    line = one_line(result)
    assert line.count("fleet-2") == 1 and "every host is back on the release it served" in line, line
    for host in fleet.hosts:  # all three switched together, each with its own backup taken first
        assert f"[{host.name}] ==> switch to" in result.stdout
        taken = [p.name for p in (host.folder / "backups").iterdir() if p.name.endswith("pre-release-v3-picky-batch")]
        assert len(taken) == 1, (host.name, taken)
    assert [current_of(host) for host in fleet.hosts] == serving
    assert [hello_on(host) for host in fleet.hosts] == ["hello from v1"] * 3


def test_the_deploy_lock_covers_every_host_a_release_works_on(fleet):
    """While a release works on every host, a clean-up pointed at another of them is refused:
    it must not delete the release's work in progress there."""
    other = fleet.hosts[2]
    only_the_other = fleet.tool_env(fleet.project, hosts=other.name)
    process = fab_process(fleet.tool_env_file, "release", "--tag=v2", "--yes")
    try:
        run_until(process, "upload and unpack")
        refused = run_fab("deploy.cleanup", env_file=only_the_other)
        unlocked = run_fab("deploy.unlock", env_file=only_the_other)
    finally:
        output = process.communicate(timeout=900)[0]
    assert process.returncode == 0, output[-3000:]
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr
    line = one_line(refused)
    assert other.name in line and "another deploy holds the lock" in line and "release v2" in line, line
    assert unlocked.returncode == 2 and "held by" in unlocked.stdout and "release v2" in unlocked.stdout
    assert [hello_on(host) for host in fleet.hosts] == ["hello from v2"] * 3
    assert not any((host.folder / ".deploy" / "lock").exists() for host in fleet.hosts)
    back = run_fab("rollback", "--yes", env_file=fleet.tool_env_file)  # back to v1 for the tests after
    assert back.returncode == 0, back.stdout[-3000:]
