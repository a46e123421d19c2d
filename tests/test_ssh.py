"""The tool reaches the real sshd through Fabric, verifies host keys, and runs quoted commands."""

from __future__ import annotations

import subprocess
import threading

import pytest

from directus_deploy.host import ssh
from testbed.sshd import ALIAS, SshServer

from .helpers import fab_ok, one_line, run_fab, session_for, write_env


def test_fab_reaches_the_host_through_the_alias_and_runs_there(bed):
    result = run_fab("host.check", env_file=bed.env_file("sqlite"))
    assert result.returncode == 0, result.stderr
    assert f"directus-prod: logged in as {bed.sshd.user}" in result.stdout
    assert "node version: v22." in result.stdout  # found through DEPLOY_NODE_PATH
    app = bed.productions["sqlite"].app
    assert f"Directus under pm2: pm2 app {app} online" in result.stdout  # the runtime's status
    # and the command really ran in the sshd's session: it logged the login
    assert "Accepted publickey" in bed.sshd.log_file.read_text()


def test_without_node_path_the_host_node_is_too_old_or_missing(bed, tmp_path):
    settings = {k: v for k, v in bed.deploy_settings("sqlite").items() if k != "DEPLOY_NODE_PATH"}
    result = run_fab("host.check", env_file=write_env(tmp_path / "no-node.env", settings))
    assert result.returncode == 2
    assert "DEPLOY_NODE_PATH" in one_line(result)


def test_known_hosts_come_from_the_ssh_config_file(bed):
    session = session_for(bed.env_file("sqlite"))
    connection = ssh.new_connection(session.config, session.config.hosts[0])
    assert bed.sshd.known_hosts in ssh.known_hosts_files(connection)


@pytest.fixture
def private_sshd(bed, tmp_path):
    """A second server of our own, so changing its host key disturbs no other test."""
    server = SshServer(tmp_path / "ssh", bed.session_env())
    server.client_key.parent.mkdir(parents=True)
    for name in ("client_ed25519", "client_ed25519.pub"):  # the same client key, already authorized
        (server.root / name).write_bytes((bed.sshd.root / name).read_bytes())
    server.start()
    yield server
    server.stop()


def settings_for(bed, server) -> dict:
    return {**bed.deploy_settings("sqlite"), "DEPLOY_SSH_CONFIG": str(server.ssh_config)}


def test_a_changed_host_key_is_refused_with_both_fingerprints(bed, private_sshd, tmp_path):
    env_file = write_env(tmp_path / "deploy.env", settings_for(bed, private_sshd))
    assert run_fab("host.check", env_file=env_file).returncode == 0
    old = private_sshd.known_hosts.read_text()
    private_sshd.regenerate_host_key()
    private_sshd.known_hosts.write_text(old)  # the client still remembers the old key
    result = run_fab("host.check", env_file=env_file)
    assert result.returncode == 2
    line = one_line(result)
    assert "HOST KEY CHANGED" in line and line.count("SHA256:") == 2
    assert "Accepted publickey" not in private_sshd.log_file.read_text().split("Received SIGHUP")[-1]


def test_an_unknown_host_is_refused_and_trusted_only_by_its_fingerprint(bed, private_sshd, tmp_path):
    env_file = write_env(tmp_path / "deploy.env", settings_for(bed, private_sshd))
    private_sshd.known_hosts.write_text("")
    result = run_fab("host.check", env_file=env_file)
    assert result.returncode == 2
    line = one_line(result)
    assert "not in known_hosts" in line and "fab host.trust --fingerprint=SHA256:" in line
    offered = line.split("--fingerprint=")[1].strip()

    assert run_fab("host.trust", env_file=env_file).returncode == 2  # no fingerprint: shows it, trusts nothing
    assert private_sshd.known_hosts.read_text() == ""
    wrong = run_fab("host.trust", "--fingerprint=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", env_file=env_file)
    assert wrong.returncode == 2 and "not trusted" in one_line(wrong)
    assert private_sshd.known_hosts.read_text() == ""

    trusted = run_fab("host.trust", f"--fingerprint={offered}", env_file=env_file)
    assert trusted.returncode == 0, trusted.stderr
    assert run_fab("host.check", env_file=env_file).returncode == 0


def test_unreachable_host_is_one_line(bed, tmp_path):
    settings = {**bed.deploy_settings("sqlite"), "DEPLOY_HOSTS": "root@127.0.0.1:1"}
    result = run_fab("host.check", env_file=write_env(tmp_path / "deploy.env", settings))
    assert result.returncode == 2
    assert "cannot connect" in one_line(result)


# -- the remote helpers, on the real host -------------------------------------------------------

@pytest.fixture
def remote(bed):
    session = session_for(bed.env_file("sqlite"))
    yield session.remote()
    session.close()


def test_arguments_are_quoted_never_interpreted(remote, tmp_path):
    nasty = f"{tmp_path}/a b;touch {tmp_path}/pwned$(touch {tmp_path}/pwned2)`id`\nline"
    remote.make_dir(nasty)
    assert remote.is_dir(nasty)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()
    listing = list(tmp_path.iterdir())
    assert len(listing) == 1 and listing[0].name.startswith("a b;touch")


def test_write_read_and_upload(remote, tmp_path):
    target = f"{tmp_path}/settings.json"
    remote.write_file(target, '{"a": "b\'c"}\n', mode="0600")
    assert remote.read_file(target) == '{"a": "b\'c"}\n'
    assert oct((tmp_path / "settings.json").stat().st_mode & 0o777) == "0o600"
    assert remote.read_file(f"{tmp_path}/missing", missing_ok=True) is None
    local = tmp_path / "blob.bin"
    local.write_bytes(bytes(range(256)) * 4096)
    seen = []
    remote.upload(local, f"{tmp_path}/uploaded.bin", progress=lambda done, total: seen.append(done))
    assert (tmp_path / "uploaded.bin").read_bytes() == local.read_bytes()
    assert seen and seen[-1] == local.stat().st_size
    assert not list(tmp_path.glob("*.part-*"))


def test_secret_env_reaches_the_command_but_not_its_command_line(remote, tmp_path):
    secret = "pa$$ w0rd'\"`; not-in-ps"
    out = tmp_path / "seen"
    ps = tmp_path / "ps"
    result = remote.run(
        f"sleep 1 & ps -eo args > {ps}; printf %s \"$DB_PASSWORD\" > {out}; wait",
        secret_env={"DB_PASSWORD": secret},
    )
    assert result.ok
    assert out.read_text() == secret
    assert secret not in ps.read_text()
    assert "***" in remote.scrub(f"leaked {secret}")


def test_switch_symlink_is_atomic_for_readers(remote, tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "marker").write_text(name)
    link = f"{tmp_path}/current"
    remote.switch_symlink(link, f"{tmp_path}/one")
    misses = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                (tmp_path / "current" / "marker").read_text()
            except FileNotFoundError:
                misses.append(1)

    thread = threading.Thread(target=reader)
    thread.start()
    for number in range(30):
        remote.switch_symlink(link, f"{tmp_path}/{'two' if number % 2 == 0 else 'one'}")
    stop.set()
    thread.join()
    assert (tmp_path / "current" / "marker").read_text() == "one"
    assert misses == []
    assert not list(tmp_path.glob("current.new-*"))


def test_dry_run_runs_queries_but_not_changes(bed, tmp_path):
    session = session_for(bed.env_file("sqlite"), dry_run=True)
    try:
        remote = session.remote()
        remote.make_dir(f"{tmp_path}/should-not-exist")
        assert not (tmp_path / "should-not-exist").exists()
        assert remote.exists(str(tmp_path))  # queries still run
        assert remote.log.round_trips == 1
    finally:
        session.close()


def test_plain_ssh_sees_the_same_host(bed):
    result = subprocess.run(bed.sshd.ssh_command("echo", "$PM2_HOME"), capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == str(bed.root / "pm2")


def test_a_jump_host_is_verified_like_the_target(bed, private_sshd, tmp_path):
    """ProxyJump: the hop's host key is checked against known_hosts, as the target's is."""
    known = tmp_path / "known_hosts"
    known.write_text(bed.sshd.known_hosts.read_text())  # the target's key, not the jump host's
    login = (f"    User {bed.sshd.user}\n    IdentityFile {bed.sshd.client_key}\n    IdentitiesOnly yes\n"
             f"    UserKnownHostsFile {known}\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host jump\n    HostName 127.0.0.1\n    Port {private_sshd.port}\n{login}"
                      f"Host {ALIAS}\n    HostName 127.0.0.1\n    Port {bed.sshd.port}\n{login}    ProxyJump jump\n")
    env_file = write_env(tmp_path / "deploy.env", {**bed.deploy_settings("sqlite"), "DEPLOY_SSH_CONFIG": str(config)})

    refused = run_fab("host.check", env_file=env_file)
    assert refused.returncode == 2
    line = one_line(refused)
    assert f"jump host [127.0.0.1]:{private_sshd.port}" in line and "not in known_hosts" in line
    assert "Accepted publickey" not in private_sshd.log_file.read_text()  # no login on an unverified hop

    known.write_text(known.read_text() + private_sshd.known_hosts.read_text())
    fab_ok("host.check", env_file=env_file)
    assert "Accepted publickey" in private_sshd.log_file.read_text()  # the check went through the jump host
