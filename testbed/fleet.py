"""Several production hosts on this one machine, for the multi-host tests and benchmark.

Each host is its own network namespace (an address of its own, a loopback of its own: every
host runs Directus on the same port, as real app servers do) and its own view of DEPLOY_PATH
(a mount namespace binding the host's folder there), with an sshd of its own and a pm2 of its
own started inside it. The tool reaches each over SSH exactly as it would reach a real server.
What the hosts share is what real ones share: one PostgreSQL database (reached through a
forwarder on this machine, since the server listens on its loopback), one folder of uploads
(network storage), and nginx in front, balancing requests across them.

Needs root (namespaces, mounts), like the CI machine has.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path

from .nginx import Nginx
from .production import ExistingInstall
from .sshd import SSHD
from .tool import fab
from .toolchain import NODE_VERSION, log

DIRECTUS_PORT = 8055


class _Forward(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A TCP forwarder: every connection to (address, port) is piped to `target`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], target: tuple[str, int]):
        self.target = target
        super().__init__(address, _Pipe)


class _Pipe(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            upstream = socket.create_connection(self.server.target, timeout=10)
        except OSError:
            return
        upstream.settimeout(None)

        def pump(source, sink):
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for side in (source, sink):
                    try:
                        side.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        other = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
        other.start()
        pump(self.request, upstream)
        other.join()
        upstream.close()


class FleetHost:
    """One host: a network namespace, its folder bound on DEPLOY_PATH, its sshd and pm2."""

    def __init__(self, fleet: "Fleet", number: int):
        self.fleet, self.number = fleet, number
        self.name = f"fleet-{number}"
        self.namespace = f"dxd{fleet.token}h{number}"
        self.address = f"10.{fleet.octet}.{number}.2"
        self.gateway = f"10.{fleet.octet}.{number}.1"
        self.root = fleet.root / self.name
        self.folder = self.root / "srv"  # what the host sees at DEPLOY_PATH
        self.process: subprocess.Popen | None = None

    @property
    def pm2_home(self) -> Path:
        return self.root / "pm2"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{DIRECTUS_PORT}"

    def create_network(self) -> None:
        outside, inside = f"dxd{self.fleet.token}r{self.number}", f"dxd{self.fleet.token}n{self.number}"
        for command in (
            ["ip", "netns", "add", self.namespace],
            ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
            ["ip", "link", "set", inside, "netns", self.namespace],
            ["ip", "addr", "add", f"{self.gateway}/24", "dev", outside],
            ["ip", "link", "set", outside, "up"],
            ["ip", "-n", self.namespace, "addr", "add", f"{self.address}/24", "dev", inside],
            ["ip", "-n", self.namespace, "link", "set", inside, "up"],
            ["ip", "-n", self.namespace, "link", "set", "lo", "up"],
            ["ip", "-n", self.namespace, "route", "add", "default", "via", self.gateway],
        ):
            subprocess.run(command, check=True, capture_output=True)

    def start_sshd(self) -> None:
        ssh = self.fleet.ssh_dir
        key = ssh / f"{self.name}_host_ed25519"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(key)], check=True)
        env = {"PM2_HOME": str(self.pm2_home), **self.fleet.session_env}
        config = ssh / f"{self.name}_sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {self.address}:22", f"HostKey {key}", f"AuthorizedKeysFile {ssh / 'authorized_keys'}",
            f"PidFile {ssh / (self.name + '.pid')}", f"AllowUsers {self.fleet.user}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "StrictModes no", "UsePAM no",
            "Subsystem sftp internal-sftp", "MaxStartups 50:30:100", "MaxSessions 50",
            "SetEnv " + " ".join(f'"{k}={v}"' for k, v in env.items()), "",
        ]))
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        # a host's own resolver that answers at once: the machine's nameserver is out of this
        # network's reach, and every name lookup (Directus makes some at boot) would wait it out
        resolver = ssh / "resolv.conf"
        resolver.write_text("nameserver 127.0.0.1\n")
        inner = (f"mount --bind {self.folder} {self.fleet.deploy_path} && mount --bind {resolver} /etc/resolv.conf"
                 f" && exec {SSHD} -D -e -f {config}")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.namespace, "unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
            stdout=subprocess.DEVNULL, stderr=open(ssh / f"{self.name}_sshd.log", "ab"), start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, 22), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd of {self.name} did not start; see {ssh / (self.name + '_sshd.log')}")

    def stop_sshd(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)

    def known_hosts_line(self) -> str:
        public = (self.fleet.ssh_dir / f"{self.name}_host_ed25519.pub").read_text().split()
        return f"{self.address} {public[0]} {public[1]}\n"

    def destroy(self) -> None:
        toolchain = self.fleet.toolchain
        subprocess.run(["ip", "netns", "exec", self.namespace, "pm2", "kill"], capture_output=True,
                       env={**toolchain.env(), "PM2_HOME": str(self.pm2_home)})
        self.stop_sshd()
        subprocess.run(["ip", "netns", "del", self.namespace], capture_output=True)


class Fleet:
    """`Fleet(root, bed).up()`: `count` hosts set up with the tool (deploy.setup each, then one
    `fab release --tag=v1` to all), serving one seeded PostgreSQL production behind nginx."""

    def __init__(self, root: Path, bed, count: int = 3):
        self.root = Path(root)
        self.bed = bed
        self.toolchain = bed.toolchain
        self.token = secrets.token_hex(2)
        self.octet = 100 + secrets.randbelow(150)
        self.hosts = [FleetHost(self, number) for number in range(1, count + 1)]
        self.user = os.environ.get("USER") or "root"
        self.forward: _Forward | None = None
        self.install: ExistingInstall | None = None
        self.nginx: Nginx | None = None
        self.site_port = 0

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def deploy_path(self) -> Path:
        return self.root / "deploy-path"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def session_env(self) -> dict:
        return {k: v for k, v in self.bed.session_env().items() if k != "PM2_HOME"}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.site_port}"

    def up(self, project: Path) -> "Fleet":
        started = time.monotonic()
        for folder in (self.ssh_dir, self.deploy_path, self.storage):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.ssh_dir, 0o700)
        client = self.ssh_dir / "client_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(client)], check=True)
        (self.ssh_dir / "authorized_keys").write_text(Path(f"{client}.pub").read_text())
        for host in self.hosts:
            host.folder.mkdir(parents=True, exist_ok=True)
            host.create_network()
            host.start_sshd()
        (self.ssh_dir / "known_hosts").write_text("".join(h.known_hosts_line() for h in self.hosts))
        (self.ssh_dir / "ssh_config").write_text("".join(
            f"Host {h.name}\n    HostName {h.address}\n    User {self.user}\n    IdentityFile {client}\n"
            f"    IdentitiesOnly yes\n    UserKnownHostsFile {self.ssh_dir / 'known_hosts'}\n" for h in self.hosts))

        # the production today: one seeded PostgreSQL install, its uploads moved to network storage
        self.install = self.bed.new_productions(("postgres",))["postgres"]
        self.bed.pm2.run("delete", self.install.app, check=False)
        (self.install.folder / "uploads").rename(self.storage / "uploads")
        self.forward = _Forward((f"10.{self.octet}.1.1", 5432), ("127.0.0.1", 5432))
        threading.Thread(target=self.forward.serve_forever, daemon=True).start()
        env = self.production_env()
        env_file = self.root / "production.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.tool_env_file = self.tool_env(project)
        for host in self.hosts:  # each host prepared with the tool, then its marketplace extension
            fab(self.tool_env(project, hosts=host.name), "deploy.setup", f"--env-file={env_file}")
            registry = host.folder / "shared" / "extensions-registry"
            shutil.copytree(self.install.folder / "extensions" / ".registry", registry, dirs_exist_ok=True)
            self._seed_dependencies(host, project)
        fab(self.tool_env_file, "release", "--tag=v1", "--yes")
        self.nginx = Nginx(self.root / "nginx").start()
        upstream = "".join(f"    server {h.address}:{DIRECTUS_PORT} max_fails=1 fail_timeout=2s;\n" for h in self.hosts)
        (self.nginx.conf_d / "fleet.conf").write_text(f"upstream fleet {{\n{upstream}}}\n")
        self.site_port = self.nginx.site("fleet", "http://fleet")
        log(f"fleet of {len(self.hosts)} hosts up in {time.monotonic() - started:.0f}s")
        return self

    def _seed_dependencies(self, host: FleetHost, project: Path) -> None:
        """What a host that ran Directus before has: its installed dependencies. Put where
        the tool keeps them (shared/deps/<lockfile hash>-node<major>), as hard links of the
        cached install, so the first release needs no `npm ci` of Directus on each host."""
        lock = subprocess.run(["git", "-C", str(project), "show", "v1:package-lock.json"], capture_output=True,
                              check=True).stdout
        major = NODE_VERSION.split(".")[0]
        store = host.folder / "shared" / "deps" / f"{hashlib.sha256(lock).hexdigest()[:16]}-node{major}"
        store.mkdir(parents=True)
        subprocess.run(["cp", "-al", str(self.toolchain.node_modules), str(store / "node_modules")], check=True)
        (store / "package-lock.json").write_bytes(lock)
        (store / ".complete").touch()

    def production_env(self) -> dict:
        env = dict(self.install.env())
        env.update({
            "HOST": "0.0.0.0", "PORT": str(DIRECTUS_PORT), "PUBLIC_URL": "http://cms.example.test",
            "DB_HOST": f"10.{self.octet}.1.1", "DB_PORT": "5432",
            "STORAGE_LOCAL_ROOT": str(self.storage / "uploads"),  # every host: the same network storage
        })
        return env

    def tool_env(self, project: Path, hosts: str | None = None, **overrides: str) -> Path:
        settings = {
            "DEPLOY_HOSTS": hosts or ",".join(h.name for h in self.hosts),
            "DEPLOY_SSH_CONFIG": str(self.ssh_dir / "ssh_config"),
            "DEPLOY_PATH": str(self.deploy_path),
            "DEPLOY_SOURCE": str(project),
            "DEPLOY_NODE_PATH": str(self.toolchain.bin_dir),
            "DIRECTUS_SERVICE": "pm2",
            "DIRECTUS_PM2_APP": "directus",
            "DIRECTUS_URL": f"http://127.0.0.1:{DIRECTUS_PORT}",
            "DIRECTUS_TOKEN": self.install.token,
            **overrides,
        }
        name = "deploy" + (f"-{hosts}" if hosts else "") + ("-" + secrets.token_hex(2) if overrides else "") + ".env"
        path = self.root / name
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return path

    def destroy(self) -> None:
        for host in self.hosts:
            host.destroy()
        if self.forward:
            self.forward.shutdown()
            self.forward.server_close()
        if self.nginx:
            self.nginx.stop()
        if self.install:
            self.install.destroy()
        shutil.rmtree(self.root, ignore_errors=True)
