"""An unprivileged OpenSSH server on a free loopback port: the test bed's "production host".

It gets its own host key, a client key, an ssh_config with an alias and a known_hosts file,
so the tool reaches it through Fabric exactly as it would reach a real server. The session
environment (pm2's home, the Node headers for native builds) is set with `SetEnv`, the way a
real host has it in its login environment; Node itself is *not* on the session's PATH, as on
a host where Node comes from nvm or a tarball: the tool finds it through DEPLOY_NODE_PATH.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
ALIAS = "directus-prod"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SshServer:
    def __init__(self, root: Path, session_env: dict[str, str]):
        self.root = root
        self.session_env = session_env
        self.user = getpass.getuser()
        self.port: int | None = None

    # Files the tool's configuration points at
    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def host_key(self) -> Path:
        return self.root / "host_ed25519"

    @property
    def pid_file(self) -> Path:
        return self.root / "sshd.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "sshd.log"

    def start(self) -> "SshServer":
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for key in (self.host_key, self.client_key):
            if not key.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", str(key)],
                    check=True,
                )
        authorized = self.root / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        os.chmod(authorized, 0o600)
        self.port = free_port()
        set_env = " ".join(f'"{k}={v}"' for k, v in self.session_env.items())
        config = self.root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress 127.0.0.1:{self.port}",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {authorized}",
                    f"PidFile {self.pid_file}",
                    f"AllowUsers {self.user}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "MaxStartups 50:30:100",
                    "MaxSessions 50",
                    f"SetEnv {set_env}" if set_env else "",
                    "",
                ]
            )
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation folder
        # without -D, sshd forks into the background once it listens, and writes its pid file
        subprocess.run([SSHD, "-f", str(config), "-E", str(self.log_file)], check=True)
        self._wait_listening()
        self._write_client_files()
        return self

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not start; see {self.log_file}")

    def _write_client_files(self) -> None:
        public = self.host_key.with_name(self.host_key.name + ".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")
        os.chmod(self.known_hosts, 0o600)
        self.ssh_config.write_text(
            "\n".join(
                [
                    f"Host {ALIAS}",
                    "    HostName 127.0.0.1",
                    f"    Port {self.port}",
                    f"    User {self.user}",
                    f"    IdentityFile {self.client_key}",
                    "    IdentitiesOnly yes",
                    f"    UserKnownHostsFile {self.known_hosts}",
                    "",
                ]
            )
        )

    def ssh_command(self, *command: str) -> list[str]:
        """Plain OpenSSH through the same alias: for tests that look at the host directly."""
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", ALIAS, *command]

    def regenerate_host_key(self) -> None:
        """Give the server a new host key (a "rebuilt server"); known_hosts keeps the old one."""
        self.host_key.unlink()
        self.host_key.with_name(self.host_key.name + ".pub").unlink()
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rebuilt", "-f", str(self.host_key)],
            check=True,
        )
        os.kill(self.pid, signal.SIGHUP)  # sshd re-execs and rereads its host keys
        time.sleep(0.5)
        self._wait_listening()

    @property
    def pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
