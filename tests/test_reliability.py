"""The reliability and security suite: `fab release` interrupted at every step (killed, or its
SSH connection cut), failures injected into the real parts, two releases at once, bad input, and
secrets looked for in every process's command line. After each: production serves, nothing is
lost, the lock is free or reported stale with its owner, and the next release succeeds.

The table of outcomes is printed at the end of the run; with RELIABILITY_REPORT=<file> it is
also written there (docs/reliability.md keeps the latest).
"""

from __future__ import annotations

import json
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from testbed.project import add_tag

from .helpers import CRASHING_HOOK, fab_ok, hello, one_line, private_setups, run_fab, tree_fingerprint, write_env
from .reliability import CommandLineSampler, cut_ssh, fab_process, record, run_until

STEPS = [  # step lines of `fab release`, in order: each is a point to interrupt at
    "check the host",
    "find the production",
    "back up the",
    "take a schema snapshot",
    "write the manifest",
    "upload and unpack",
    "read the schema plan",
    "run migrations",
    "switch to",
    "check every row, upload",
    "record the release",
    "clean up old releases",
]


@pytest.fixture(scope="module")
def prod(bed, tmp_path_factory):
    """Adopted SQLite and PostgreSQL productions with private project copies."""
    made = bed.new_productions(("sqlite", "postgres"))
    setups = private_setups(bed, made, tmp_path_factory.mktemp("reliability"), adopt=True, release="v2")
    yield setups
    for production in made.values():
        production.destroy()


def healthy(production) -> bool:
    try:
        return production.api.get("/server/health")["status"] == "ok"
    except Exception:  # noqa: BLE001 - any failure to answer is "not healthy"
        return False


def recover_and_release(setup) -> str:
    """After an interruption: the lock free or reported stale with its owner (then broken on
    request), and the next release succeeds. Returns what happened to the lock."""
    lock = setup["srv"] / ".deploy" / "lock"
    state = "released"
    if lock.exists():
        shown = run_fab("deploy.unlock", env_file=setup["env"])
        assert shown.returncode == 2 and "held by" in shown.stdout and "stale" in shown.stdout, shown.stdout
        fab_ok("deploy.unlock", "--force", env_file=setup["env"])
        state = "stale, owner shown, broken on request"
    fab_ok("release", "--tag=v2", "--yes", env_file=setup["env"])
    return state


def check_after(setup, before: dict, scenario: str, outcome: str) -> None:
    production = setup["production"]
    deadline = time.monotonic() + 60  # a restart left running on the host may still be booting
    while not healthy(production) and time.monotonic() < deadline:
        time.sleep(1)
    assert healthy(production), f"{scenario}: production does not answer"
    assert hello(production) in ("hello from v1", "hello from v2")
    after = production.content()
    result = record(scenario, outcome, before, after)
    assert (result.rows_lost, result.files_lost) == (0, 0), scenario
    loaded = {e["schema"]["name"] for e in production.api.get("/extensions")["data"] if e["schema"]}
    assert "directus-extension-greeting" in loaded, f"{scenario}: the marketplace extension is gone"


# -- 1. interruptions ---------------------------------------------------------------------------

KILLED = [("sqlite", step) for step in STEPS] + [("postgres", step) for step in ("back up the", "run migrations", "switch to")]


@pytest.mark.parametrize("engine, step", KILLED)
def test_release_killed_at_a_step(prod, engine, step):
    setup = prod[engine]
    before = setup["production"].content()
    release = fab_process(setup["env"], "release", "--tag=v2", "--yes")
    run_until(release, "==> " + step)
    release.send_signal(signal.SIGKILL)
    release.wait()
    lock = recover_and_release(setup)
    where = "" if engine == "sqlite" else "PostgreSQL: "
    check_after(setup, before, f"{where}release killed (SIGKILL) at: {step}", f"production serves; lock {lock}; next release ok")


@pytest.mark.parametrize("step", STEPS[:10])
def test_release_with_its_ssh_connection_cut_at_a_step(bed, prod, step):
    setup = prod["sqlite"]
    before = setup["production"].content()
    release = fab_process(setup["env"], "release", "--tag=v2", "--yes")
    run_until(release, "==> " + step)
    time.sleep(0.3)  # let the step's command reach the host
    cut = cut_ssh(bed.sshd)
    output, _ = release.communicate(timeout=600)
    code = release.returncode
    assert code in (0, 1, 3), output[-2000:]  # finished (reconnected), failed, or rolled back
    assert "Traceback" not in output
    if code:
        assert output.strip().splitlines()[-1].startswith("error: ")
    lock = recover_and_release(setup)
    check_after(setup, before, f"SSH cut ({cut} connection(s)) at: {step}",
                f"exit {code}; production serves; lock {lock}; next release ok")


# -- 2. injected failures -----------------------------------------------------------------------

THROWING_MIGRATION = "module.exports = { async up(knex) { await knex.schema.createTable('half_done', (t) => { t.increments('id'); }); throw new Error('injected: this migration fails halfway'); }, async down() {} };\n"


def release_expecting(setup, tag: str, code: int, scenario: str, says: str, env_file=None) -> None:
    production = setup["production"]
    before, serving = production.content(), hello(production)
    result = run_fab("release", f"--tag={tag}", "--yes", env_file=env_file or setup["env"])
    assert result.returncode == code, result.stdout[-3000:] + result.stderr
    assert says in one_line(result), one_line(result)
    assert hello(production) == serving
    assert not (setup["srv"] / ".deploy" / "lock").exists()
    check_after(setup, before, scenario, f"exit {code}: {says}; old release serves")


def test_a_migration_that_throws(prod):
    setup = prod["sqlite"]
    add_tag(setup["project"], "v3-throws", {"migrations/20990301A-throws.js": THROWING_MIGRATION})
    release_expecting(setup, "v3-throws", 3, "a migration that throws", "injected: this migration fails halfway")
    db = setup["srv"] / "shared" / "database" / "data.db"
    tables = subprocess.run(["sqlite3", str(db), ".tables"], capture_output=True, text=True).stdout.split()
    assert "half_done" not in tables  # the half-done migration was undone with the backup


def test_an_invalid_extension_manifest(prod):
    setup = prod["sqlite"]
    add_tag(setup["project"], "v3-bad-manifest", {
        "extensions/directus-extension-broken/package.json": json.dumps({"name": "broken", "version": "1.0.0"})})
    release_expecting(setup, "v3-bad-manifest", 2, "an extension with an invalid manifest", "invalid extension manifest")


def test_a_release_failing_its_health_gate(prod):
    setup = prod["sqlite"]
    add_tag(setup["project"], "v3-crash", CRASHING_HOOK)
    release_expecting(setup, "v3-crash", 3, "a release that fails its health gate", "failed its health gate")


def test_npm_ci_failing(prod):
    setup = prod["sqlite"]
    project = setup["project"]
    package = json.loads((project / "package.json").read_text())
    lock = json.loads((project / "package-lock.json").read_text())
    package["dependencies"]["directus-deploy-no-such-package"] = "0.0.1"
    lock["packages"][""]["dependencies"]["directus-deploy-no-such-package"] = "0.0.1"
    # a dependency the registry does not have: npm ci fails on its 404, before installing anything
    add_tag(project, "v3-npm-fails", {"package.json": json.dumps(package, indent=2) + "\n",
                                      "package-lock.json": json.dumps(lock, indent=2) + "\n"})
    release_expecting(setup, "v3-npm-fails", 1, "npm ci failing", "npm ci failed")
    stores = [p.name for p in (setup["srv"] / "shared" / "deps").iterdir()]
    assert all(not name.startswith(".tmp") for name in stores) and len(stores) == 1  # no half store


def test_the_database_unreachable_during_backup(prod):
    setup = prod["postgres"]
    name = setup["production"].name
    # Directus keeps its pooled connections; new ones (the backup's) are refused
    subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'], check=True)
    try:
        release_expecting(setup, "v2", 1, "the database unreachable during the backup", "back up failed")
    finally:
        subprocess.run(["psql", "-X", "-q", "-d", "postgres", "-c", f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'], check=True)
    assert not list((setup["srv"] / "backups").glob(".tmp-*"))


def test_the_disk_filling_up_during_backup(prod, tmp_path):
    setup = prod["sqlite"]
    backups = setup["srv"] / "backups"
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(small)], check=True)
    moved = setup["folder"] / "backups-elsewhere"
    backups.rename(moved)
    backups.symlink_to(small)  # backups on their own (small) volume
    try:
        production = setup["production"]
        before, serving = production.content(), hello(production)
        release = fab_process(setup["env"], "release", "--tag=v2", "--yes")
        run_until(release, "==> back up the")
        subprocess.run(["fallocate", "-l", str(96 * 1024 * 1024 - 64 * 1024), str(small / "filler")], check=False)
        output, _ = release.communicate(timeout=600)
        assert release.returncode == 1, output[-2000:]
        last = output.strip().splitlines()[-1]
        assert last.startswith("error: ") and ("No space left on device" in last or "disk is full" in last), last
        assert hello(production) == serving
        assert [p.name for p in small.iterdir()] == ["filler"]  # no half backup left
        check_after(setup, before, "the disk filling up during the backup", "exit 1: the disk is full; old release serves")
    finally:
        backups.unlink()
        subprocess.run(["umount", str(small)], check=True)
        moved.rename(backups)


def test_a_backup_that_fails_verification(prod, tmp_path):
    """zstd on the host writes garbage instead of the compressed dump (a broken tool, a bad
    disk): the scratch restore catches it and the release stops before anything changed."""
    setup = prod["sqlite"]
    settings = dict(line.split("=", 1) for line in setup["env"].read_text().splitlines() if "=" in line)
    node_path = tmp_path / "bin"  # the host's tools, with a zstd that writes garbage when compressing
    node_path.mkdir()
    for name in ("node", "npm", "npx", "pm2"):
        (node_path / name).symlink_to(Path(settings["DEPLOY_NODE_PATH"]) / name)
    fake = node_path / "zstd"
    fake.write_text('#!/bin/bash\ncase " $* " in *" -d "*|*" -dc "*) exec /usr/bin/zstd "$@";; esac\n'
                    'out=""; prev=""; for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done\n'
                    '[ -n "$out" ] && head -c 4096 /dev/urandom > "$out"; exit 0\n')
    fake.chmod(0o755)
    broken_env = write_env(tmp_path / "deploy.env", {**settings, "DEPLOY_NODE_PATH": str(node_path)})
    release_expecting(setup, "v2", 1, "a backup that fails verification (corrupted dump)", "back up failed",
                      env_file=broken_env)
    assert not list((setup["srv"] / "backups").glob(".tmp-*"))


# -- 3. concurrency -----------------------------------------------------------------------------

def test_two_releases_at_once(prod):
    setup = prod["postgres"]
    before = setup["production"].content()
    runs = [fab_process(setup["env"], "release", "--tag=v2", "--yes") for _ in range(2)]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes == [0, 2], outputs
    refused = next(out for run, out in zip(runs, outputs) if run.returncode == 2)
    assert "another deploy holds the lock" in refused and "release v2" in refused
    check_after(setup, before, "two releases started at once", "one released, the other refused with the owner")


# -- 4. bad input -------------------------------------------------------------------------------

def bad_inputs(setup, bed, tmp_path):
    settings = dict(line.split("=", 1) for line in setup["env"].read_text().splitlines() if "=" in line)

    def env(**changes):
        path = tmp_path / f"bad-{len(list(tmp_path.glob('bad-*')))}.env"
        merged = {**settings, **changes}
        return write_env(path, {k: v for k, v in merged.items() if v is not None})

    unknown_hosts = tmp_path / "unknown_known_hosts"
    unknown_hosts.write_text("")
    changed_hosts = tmp_path / "changed_known_hosts"
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    changed_hosts.write_text(f"[127.0.0.1]:{bed.sshd.port} " + " ".join(Path(f"{other_key}.pub").read_text().split()[:2]) + "\n")

    def ssh_config_with(known_hosts: Path) -> str:
        text = bed.sshd.ssh_config.read_text().replace(str(bed.sshd.known_hosts), str(known_hosts))
        path = tmp_path / f"ssh_config-{known_hosts.name}"
        path.write_text(text)
        return str(path)

    return [
        ("tag with ;", ["release", "--tag=v1;touch /tmp/pwned", "--yes"], None, "not a plain tag name"),
        ("tag with $( )", ["release", "--tag=$(touch /tmp/pwned)", "--yes"], None, "not a plain tag name"),
        ("tag with backticks", ["release", "--tag=`touch /tmp/pwned`", "--yes"], None, "not a plain tag name"),
        ("tag with spaces", ["release", "--tag=v1 v2", "--yes"], None, "not a plain tag name"),
        ("tag with a newline", ["release", "--tag=v1\nv2", "--yes"], None, "not a plain tag name"),
        ("unknown tag", ["release", "--tag=v404", "--yes"], None, "does not exist"),
        ("typo in a config key", ["release", "--yes"], env(DEPLOY_PAHT="/srv"), "did you mean DEPLOY_PATH?"),
        ("malformed config value", ["release", "--yes"], env(KEEP_RELEASES="many"), "whole number"),
        ("missing required key", ["release", "--yes"], env(DIRECTUS_TOKEN=None), "DIRECTUS_TOKEN is required"),
        ("host with shell syntax", ["release", "--yes"], env(DEPLOY_HOSTS="prod;id"), "user@host[:port]"),
        ("unknown host key", ["release", "--yes"], env(DEPLOY_SSH_CONFIG=ssh_config_with(unknown_hosts)), "not in known_hosts"),
        ("changed host key", ["release", "--yes"], env(DEPLOY_SSH_CONFIG=ssh_config_with(changed_hosts)), "HOST KEY CHANGED"),
        ("wrong DEPLOY_PATH", ["release", "--yes"], env(DEPLOY_PATH=str(tmp_path / "nothing-here")), "is not set up"),
        ("backup id that does not exist", ["backup.restore", "--id=20990101T000000Z-nope", "--yes"], None, "no backup"),
        ("path traversal in a backup id", ["backup.restore", "--id=../../../etc", "--yes"], None, "is not of the form"),
        ("shell syntax in a backup id", ["backup.verify", "--id=x;rm -rf /"], None, "is not of the form"),
        ("unknown restore part", ["backup.restore", "--id=20990101T000000Z-nope", "--only=db,secrets", "--yes"], None, "unknown part"),
        ("rollback to an unknown tag", ["rollback", "--to=v404", "--yes"], None, "no successful release of tag v404"),
        ("adopt from a relative path", ["deploy.adopt", "--from=relative/folder"], None, "must be an absolute path"),
    ]


def test_bad_input_is_one_line_and_changes_nothing(bed, prod, tmp_path):
    setup = prod["sqlite"]
    production = setup["production"]
    volatile = ("shared",)  # Directus's own files move while it runs; its content is compared instead
    before_tree = tree_fingerprint(setup["srv"], ignore=volatile)
    before = production.content()
    cases = bad_inputs(setup, bed, tmp_path)
    for name, args, env_file, says in cases:
        result = run_fab(*args, env_file=env_file or setup["env"])
        assert result.returncode == 2, (name, result.stdout[-1000:], result.stderr)
        assert says in one_line(result), (name, result.stderr)
        assert tree_fingerprint(setup["srv"], ignore=volatile) == before_tree, name
        record(f"bad input: {name}", "refused, exit 2, one line; host unchanged", before, production.content())
    assert not Path("/tmp/pwned").exists()
    assert len(cases) >= 15


# -- 5. secrets ---------------------------------------------------------------------------------

def test_no_secret_in_command_lines_output_or_log(bed, prod):
    setup = prod["postgres"]
    production = setup["production"]
    password, token = production.database.password, production.token
    before = production.content()
    outputs = []
    with CommandLineSampler([password, token]) as sampler:
        outputs.append(fab_ok("backup.all", env_file=setup["env"]))
        outputs.append(fab_ok("release", "--tag=v2", "--yes", env_file=setup["env"]))
        backup_id = json.loads((setup["srv"] / ".deploy" / "log.jsonl").read_text().splitlines()[-1])["backup"]
        outputs.append(fab_ok("backup.restore", f"--id={backup_id}", "--only=db", "--yes", env_file=setup["env"]))
    assert sampler.samples > 50
    leaks = sampler.hits + [o for o in outputs if password in o.stdout + o.stderr or token in o.stdout + o.stderr]
    log = (setup["srv"] / ".deploy" / "log.jsonl").read_text()
    leaks += [log] if password in log or token in log else []
    # pm2 keeps the environment an app was started with: in the app's env and in dump.pm2
    dump = bed.pm2.home / "dump.pm2"
    kept = {"pm2 jlist": bed.pm2.processes(), "dump.pm2": json.loads(dump.read_text()) if dump.exists() else []}
    assert any(app.get("name") == production.app for app in kept["pm2 jlist"])
    for where, apps in kept.items():
        text = json.dumps([app for app in apps if app.get("name") == production.app])
        leaks += [f"{where} of {production.app}"] if password in text or token in text else []
    for folder in (setup["srv"] / "backups").iterdir():
        if folder.is_symlink():
            continue
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for path in folder.rglob("*"):
            if not path.is_symlink():
                assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path
    result = record("secrets: command lines sampled during backup, release and restore; output; deploy log; pm2's env and dump",
                    f"{sampler.samples} samples of every process; backups 0600 in 0700", before, production.content(),
                    leaked=len(leaks))
    assert result.leaked == 0, leaks[:3]
    assert shutil.which("ps")  # the host has ps: the secrets would have shown there too
