"""Verified SSH connections to the configured hosts.

Fabric 3.2 accepts any unknown host key (AutoAddPolicy) and ignores ssh_config's
`UserKnownHostsFile`. Here every connection loads the known_hosts files that ssh_config names
(or OpenSSH's defaults), refuses an unknown key and refuses a changed one, showing the
fingerprint either way. Trusting a new host is an explicit act: `fab host.trust`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from pathlib import Path

import paramiko
from fabric import Config as FabricConfig
from fabric import Connection

from directus_deploy.core.config import Config, HostSpec
from directus_deploy.core.errors import HostKeyError, Refused

DEFAULT_USER_KNOWN_HOSTS = "~/.ssh/known_hosts ~/.ssh/known_hosts2"
DEFAULT_GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"
CONNECT_TIMEOUT = 15


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form: SHA256:<base64 without padding>."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            f"{hostname}: host key is not in known_hosts ({key.get_name()} {fingerprint(key)}); "
            f"if that is your server's key, trust it with: fab host.trust --fingerprint={fingerprint(key)}"
        )


class _RefuseUnknownJumpHost(paramiko.MissingHostKeyPolicy):
    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            f"jump host {hostname} (ProxyJump): host key is not in known_hosts ({key.get_name()} {fingerprint(key)}); "
            f"if that is your jump host's key, accept it once with plain ssh to that host, then run again"
        )


def fabric_config(config: Config) -> FabricConfig:
    overrides = {"load_ssh_configs": True, "timeouts": {"connect": CONNECT_TIMEOUT}}
    if config.ssh_config:
        return FabricConfig(runtime_ssh_path=str(config.ssh_config), overrides=overrides)
    return FabricConfig(overrides=overrides)


def new_connection(config: Config, host: HostSpec) -> Connection:
    """A Connection for one configured host, with host-key checking set up, not yet open."""
    connection = Connection(
        host.host, user=host.user, port=host.port, config=fabric_config(config)
    )
    _check_host_keys(connection, _RefuseUnknownHost())
    # ProxyJump hops are Connections Fabric makes itself, accepting any key: each one is
    # checked against known_hosts exactly like the target
    hop = connection.gateway
    while isinstance(hop, Connection):
        _check_host_keys(hop, _RefuseUnknownJumpHost())
        hop = hop.gateway
    return connection


def _check_host_keys(connection: Connection, policy: paramiko.MissingHostKeyPolicy) -> None:
    client = connection.client
    for path in known_hosts_files(connection):
        if path.is_file():
            client.load_system_host_keys(str(path))  # read-only: never rewritten by paramiko
    client.set_missing_host_key_policy(policy)


def open_connection(config: Config, host: HostSpec) -> Connection:
    connection = new_connection(config, host)
    try:
        connection.open()
    except HostKeyError:
        connection.close()
        raise
    except paramiko.BadHostKeyException as why:
        connection.close()
        name = known_hosts_name(connection)
        raise HostKeyError(
            f"{name}: HOST KEY CHANGED: the server offers {why.key.get_name()} {fingerprint(why.key)}, "
            f"known_hosts has {fingerprint(why.expected_key)}; if the server was really rebuilt, remove the old "
            f"entry (ssh-keygen -R '{name}' -f {user_known_hosts_file(connection)}) and run fab host.trust"
        ) from None
    except paramiko.AuthenticationException as why:
        connection.close()
        raise Refused(
            f"{host}: SSH login as {connection.user} refused ({why}); check the user and key in DEPLOY_HOSTS / ssh_config"
        ) from None
    except (OSError, socket.timeout, paramiko.SSHException) as why:
        connection.close()
        raise Refused(
            f"{host}: cannot connect to {connection.host}:{connection.port} ({_reason(why)}); "
            "check DEPLOY_HOSTS and that sshd runs there"
        ) from None
    return connection


def known_hosts_name(connection: Connection) -> str:
    """The name a host's key is filed under in known_hosts (as OpenSSH and paramiko write it)."""
    if connection.port == 22:
        return connection.host
    return f"[{connection.host}]:{connection.port}"


def known_hosts_files(connection: Connection) -> list[Path]:
    ssh_config = connection.ssh_config
    user = ssh_config.get("userknownhostsfile", DEFAULT_USER_KNOWN_HOSTS)
    system = ssh_config.get("globalknownhostsfile", DEFAULT_GLOBAL_KNOWN_HOSTS)
    return [_expand(p, connection) for p in f"{user} {system}".split() if p.lower() != "none"]


def user_known_hosts_file(connection: Connection) -> Path:
    """Where a newly trusted key is written: the first UserKnownHostsFile, as OpenSSH does."""
    user = connection.ssh_config.get("userknownhostsfile", DEFAULT_USER_KNOWN_HOSTS)
    return _expand(user.split()[0], connection)


def _expand(path: str, connection: Connection) -> Path:
    home = str(Path.home())
    path = path.replace("%d", home).replace("%u", os.environ.get("USER", "")).replace("%%", "%")
    path = path.replace("%h", connection.host).replace("%p", str(connection.port))
    return Path(os.path.expanduser(path))


def scan_host_key(config: Config, host: HostSpec) -> tuple[Connection, paramiko.PKey]:
    """Ask the server for its host key without logging in (like ssh-keyscan)."""
    connection = new_connection(config, host)
    try:
        sock = socket.create_connection((connection.host, connection.port), timeout=CONNECT_TIMEOUT)
    except OSError as why:
        raise Refused(f"{host}: cannot connect to {connection.host}:{connection.port} ({_reason(why)})") from None
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=CONNECT_TIMEOUT)
        return connection, transport.get_remote_server_key()
    except paramiko.SSHException as why:
        raise Refused(f"{host}: SSH handshake failed ({why})") from None
    finally:
        transport.close()


def trust_host_key(connection: Connection, key: paramiko.PKey) -> Path:
    """Append the key to the user's known_hosts file (0600, folder 0700)."""
    target = user_known_hosts_file(connection)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{known_hosts_name(connection)} {key.get_name()} {key.get_base64()}\n"
    existing = target.read_text() if target.exists() else ""
    with open(target, "a") as handle:
        if existing and not existing.endswith("\n"):
            handle.write("\n")
        handle.write(line)
    os.chmod(target, 0o600)
    return target


def recorded_keys(connection: Connection) -> dict[str, paramiko.PKey]:
    """Keys known_hosts already holds for this host, by key type."""
    keys = paramiko.HostKeys()
    for path in known_hosts_files(connection):
        if path.is_file():
            keys.load(str(path))
    return dict(keys.lookup(known_hosts_name(connection)) or {})


def _reason(why: BaseException) -> str:
    text = str(why) or type(why).__name__
    if isinstance(why, ConnectionRefusedError) or "refused" in text.lower():
        return "connection refused"
    if isinstance(why, socket.timeout) or "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0]
