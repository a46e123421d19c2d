#!/usr/bin/env bash
# Prepare this machine for the demo and the tests (Debian/Ubuntu): system packages, the
# database servers, a Python virtualenv. Idempotent: what is already there is left alone.
# Node 22, pm2 and Directus come later, from the npm registry, cached in ~/.cache/directus-deploy.
# --python: only the virtualenv (what the fast tier needs: Python, bash and coreutils).
set -euo pipefail
cd "$(dirname "$0")/.."
only_python=; [ "${1:-}" = --python ] && only_python=1

say() { printf '[setup] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else say "need root for: $*"; return 1; fi; }

setup_system() {
# command -> Debian package
declare -A WANTED=(
  [sshd]=openssh-server [ssh]=openssh-client [rsync]=rsync [zstd]=zstd [sqlite3]=sqlite3
  [git]=git [nginx]=nginx [psql]=postgresql-client [pg_ctlcluster]=postgresql
  [mysql]=mariadb-client [mariadbd]=mariadb-server [npm]=npm [curl]=curl
  [redis-server]=redis-server [redis-cli]=redis-tools [rclone]=rclone
  [dockerd]=docker.io [debootstrap]=debootstrap
)
missing=()
for cmd in "${!WANTED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${WANTED[$cmd]}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 - <<'PY' || { say "Python 3.10 or newer is needed"; exit 1; }
import sys; sys.exit(sys.version_info < (3, 10))
PY

# PostgreSQL: running, and the current user may administer it through the local socket.
if ! pg_isready -q 2>/dev/null; then
  say "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  for _ in $(seq 30); do pg_isready -q && break; sleep 1; done
fi
if ! psql -X -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  say "letting $(id -un) administer PostgreSQL"
  as_root runuser -u postgres -- createuser --superuser "$(id -un)"
fi

# MariaDB: running, and reachable by the current user as its root account through the socket.
if ! mysqladmin -uroot status >/dev/null 2>&1; then
  say "starting MariaDB"
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 30); do mysqladmin -uroot status >/dev/null 2>&1 && break; sleep 1; done
fi

# Redis on loopback: the cache some productions keep their responses in.
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
}
[ -n "$only_python" ] || setup_system

if [ ! -x .venv/bin/python ]; then
  say "creating the Python virtualenv .venv"
  python3 -m venv .venv
fi
# The package itself, editable (its `fab` and `directus-deploy` commands run this folder's code),
# with what the tests need: pyproject.toml lists both.
if ! .venv/bin/python -c 'import fabric, dotenv, yaml, pytest, moto, importlinter' 2>/dev/null \
    || ! .venv/bin/directus-deploy --version >/dev/null 2>&1 || [ pyproject.toml -nt .venv/.installed ]; then
  say "installing the package and the test requirements"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch .venv/.installed
fi
say "machine ready"
