"""nginx (Debian's package) in front of the test productions, the way a host runs it: a main
configuration that includes `conf.d/*.conf` (where the tool's upstream include goes) and
`sites/*.conf` (the user's own site files, which the tool never touches).

Its access log records which upstream address answered each request, so a test can tell that
a release never received one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .sshd import free_port
from .tool import fab

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def conf(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def conf_d(self) -> Path:
        return self.root / "conf.d"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    def start(self) -> "Nginx":
        for folder in (self.conf_d, self.root / "sites", self.root / "temp"):
            folder.mkdir(parents=True, exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers can then read the bed's folders
        self.conf.write_text(
            f"{user}worker_processes 2;\n"
            f"pid {self.root}/nginx.pid;\n"
            f"error_log {self.root}/error.log;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            "    log_format upstream '$msec $status $request_time $upstream_addr \"$request\"';\n"
            f"    access_log {self.access_log} upstream;\n"
            + "".join(f"    {kind}_temp_path {self.root}/temp/{kind};\n"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            + f"    include {self.conf_d}/*.conf;\n"
            f"    include {self.root}/sites/*.conf;\n"
            "}\n"
        )
        self._nginx()
        return self

    def upstream_file(self, name: str) -> Path:
        """Where the tool's upstream include for `name` goes: a folder nginx loads nothing from
        by itself (not conf.d/, which it loads at http level)."""
        return self.root / "upstreams" / f"{name}.conf"

    def site(self, name: str, target: str, port: int | None = None, upstream: tuple[str, Path] | None = None) -> int:
        """Write (or rewrite) the site `name` sending every request to `target` (an
        http://host:port or http://<upstream name>), reload nginx; returns its port.
        `upstream` (name, include): the site also declares `upstream name { include include; }`,
        as the user's site does for blue/green."""
        port = port or free_port()
        declared = f"upstream {upstream[0]} {{\n    include {upstream[1]};\n}}\n" if upstream else ""
        (self.root / "sites" / f"{name}.conf").write_text(
            declared
            + "server {\n"
            f"    listen 127.0.0.1:{port};\n"
            "    client_max_body_size 64m;\n"  # editors upload files over nginx's 1 MB default
            "    location / {\n"
            f"        proxy_pass {target};\n"
            "        proxy_set_header Host $host;\n"
            "        proxy_read_timeout 60s;\n"
            "    }\n"
            "}\n"
        )
        self.reload()
        return port

    def reload(self) -> None:
        self._nginx("-t")
        self._nginx("-s", "reload")
        time.sleep(0.3)  # the reload is asynchronous; let the new workers start

    def upstreams_answering(self, since: float) -> set[str]:
        """The upstream addresses that answered requests logged after `since` (epoch seconds)."""
        found = set()
        if not self.access_log.exists():
            return found
        for line in self.access_log.read_text().splitlines():
            fields = line.split(" ", 4)
            if len(fields) >= 4 and float(fields[0]) >= since:
                found.add(fields[3])
        return found

    def stop(self) -> None:
        if (self.root / "nginx.pid").exists():
            self._nginx("-s", "quit", check=False)

    def _nginx(self, *args: str, check: bool = True) -> None:
        result = subprocess.run([NGINX, "-c", str(self.conf), *args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"nginx {' '.join(args)} failed: {result.stderr.strip()[-500:]}")


def adopted_behind(nginx: Nginx, bed, production, project: Path, strategy: str, folder: Path) -> tuple[int, Path]:
    """`production` served through an nginx site, adopted by the tool with DEPLOY_STRATEGY=
    `strategy` (blue/green: the site then pointed at the tool's upstream, the user's one step).
    Returns the site's port and the tool's configuration file."""
    site = nginx.site(production.name, production.url)
    settings = {"DEPLOY_SOURCE": str(project), "DIRECTUS_URL": f"http://127.0.0.1:{site}", "DEPLOY_STRATEGY": strategy}
    upstream = f"{production.name}_directus"
    if strategy == "bluegreen":
        settings.update(DEPLOY_BLUEGREEN_PORTS=f"{free_port()},{free_port()}", DEPLOY_NGINX_UPSTREAM=upstream,
                        DEPLOY_NGINX_UPSTREAM_FILE=str(nginx.upstream_file(production.name)),
                        DEPLOY_NGINX_CONF=str(nginx.conf))
    env_file = bed.tool_env(production, folder, **settings)
    fab(env_file, "deploy.adopt", f"--from={production.folder}")
    if strategy == "bluegreen":
        nginx.site(production.name, f"http://{upstream}", port=site, upstream=(upstream, nginx.upstream_file(production.name)))
    return site, env_file
