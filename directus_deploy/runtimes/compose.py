"""Docker Compose runs Directus (DIRECTUS_SERVICE=compose): one service of a compose project
(DIRECTUS_COMPOSE_SERVICE, default `directus`) whose compose file comes with each release.

Every command names the project (DIRECTUS_COMPOSE_PROJECT) so that a release folder of another
name stays the same compose project: its other services (the database) and its named volumes
are the ones that ran before. Only the Directus service is ever started, stopped or recreated
(`--no-deps`): the database container is left alone by every release.

Directus's image runs `node cli.js bootstrap` at every start, and bootstrap runs every pending
migration. The tool migrates first, with the new release's image (`compose run --rm --no-deps`),
after its backup and schema gate, so the start that follows finds nothing left to migrate.

The settings Directus runs with are the service's environment as Compose resolves it
(`docker compose config`: `environment`, `env_file`, `.env` interpolation) over the image's
own defaults. Paths in them are paths inside the container; they are turned into paths of the
host through the service's bind mounts, relative to the release folder, so the rest of the tool
(shared links, backups, engines) sees the same settings an npm install would have.
"""

from __future__ import annotations

import json
import posixpath
from urllib.parse import urlparse

from directus_deploy.core.config import Key, parse_line, parse_name
from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q
from directus_deploy.host.script import emit, json_object, section, split_sections
from directus_deploy.runtimes import instances
from directus_deploy.runtimes.base import Instance, Runtime

WORKDIR = "/directus"  # the official image's working folder (where cli.js lives)
FILES_LIST = ".deploy-compose"  # in a release: its compose files, as COMPOSE_FILE takes them
OVERRIDE = ".deploy-compose.yml"  # in a release: the tool's addition (the shared marketplace folder)
IMAGE_OVERRIDE = ".deploy-compose-image.yml"  # in a release whose service is built: the image's name for it
OWN_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")  # Compose's order
OVERRIDES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml",
             "docker-compose.override.yml")
CLI = "/directus/cli.js"
IMAGE_EXTENSIONS = "/directus/extensions"  # the image's extensions folder (EXTENSIONS_PATH's default)
IMAGE_REGISTRY = IMAGE_EXTENSIONS + "/.registry"  # and its marketplace installs
ONE_OFF_WAIT = 600  # seconds to wait for an interrupted release's CLI container (a long migration) to end
MIGRATE_FIRST = "the tool migrates before the start"  # why bootstrap finds nothing pending
COLOR_LABEL = "directus-deploy.instance"  # on a blue/green container: its color

# The gate's crash watch: the service's container exiting or restarting while the gate waits
# (bootstrap failing, a bad image) fails the gate at once; once Directus answers, a container
# with a healthcheck must report healthy before the gate goes on (unhealthy fails it).
_CRASH_WATCH_JS = r"""
const { execFileSync } = require('child_process');
// `app`: "<project>/<service>" (the service's own container) or a blue/green container's name
const [project, service] = app && app.includes('/') ? app.split('/') : ['', ''];
const seeLogs = project ? `docker compose -p ${project} logs ${service}` : `docker logs ${app}`;
const docker = (...args) => execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
const containerId = () => !project ? app : docker('ps', '-a', '--filter', 'label=com.docker.compose.project=' + project,
  '--filter', 'label=com.docker.compose.service=' + service, '--filter', 'label=com.docker.compose.oneoff=False',
  '--format', '{{.ID}}').split('\n')[0];
let lastLook = 0, seenRestarts = null;
const crashed = () => {
  if (!app || Date.now() - lastLook < 1000) return null;
  lastLook = Date.now();
  let state = '', restarts = 0;
  try {
    const id = containerId();
    if (!id) return null;
    [state, restarts] = docker('inspect', '-f', '{{.State.Status}} {{.RestartCount}}', id).split(' ');
  } catch (e) { return null; }
  if (state === 'exited' || state === 'dead') return `the ${service || app} container exited while starting; see: ${seeLogs}`;
  restarts = Number(restarts) || 0;
  seenRestarts ??= restarts;
  if (restarts - seenRestarts >= 2) return `the ${service || app} container keeps restarting (${restarts - seenRestarts} times); see: ${seeLogs}`;
  return null;
};
// the container's own healthcheck (the compose file's or the image's), when it has one: healthy
// first. Failures while Directus booted leave it "unhealthy" for a while: only a check begun
// after Directus answered (called just then) that failed again means it is unhealthy.
const containerReady = async (started, timeoutS) => {
  const answered = Date.now();
  while (app) {
    let words = [];
    try {
      words = docker('inspect', '-f', '{{if .State.Health}}{{.State.Health.Status}}{{range .State.Health.Log}} {{.Start.UnixNano}}:{{.ExitCode}}{{end}}{{end}}',
        containerId()).split(' ');
    } catch (e) { return null; }
    const [health, last] = [words[0], (words[words.length - 1] || '').split(':').map(Number)];
    if (health === '' || health === 'healthy') return null;
    if (health === 'unhealthy' && last[0] / 1e6 > answered && last[1] !== 0) return `the ${service || app} container's healthcheck reports it unhealthy; see: docker inspect ${containerId()}`;
    if (Date.now() - started > timeoutS * 1000) return `the ${service || app} container's healthcheck did not report healthy in ${timeoutS}s`;
    await new Promise((r) => setTimeout(r, 500));
  }
  return null;
};
"""


# Run in a one-off container of the release (its user, mounts and settings): the folders
# Directus writes its state to that it cannot write (Docker makes a missing bind-mount folder
# as root; Directus runs as uid 1000). Prints one JSON line.
_WRITABLE_JS = r"""
const fs = require('fs'), path = require('path'), e = process.env;
process.chdir('/directus');
const places = {};
if ((e.DB_CLIENT || '').trim() === 'sqlite3' && e.DB_FILENAME) places.DB_FILENAME = path.dirname(path.resolve(e.DB_FILENAME));
for (const loc of (e.STORAGE_LOCATIONS || 'local').split(',').map((s) => s.trim()).filter(Boolean)) {
  const k = loc.toUpperCase().replace(/-/g, '_');
  if ((e['STORAGE_' + k + '_DRIVER'] || (loc === 'local' ? 'local' : '')) === 'local')
    places['STORAGE_' + k + '_ROOT'] = path.resolve(e['STORAGE_' + k + '_ROOT'] || './uploads');
}
const registry = path.resolve(e.EXTENSIONS_PATH || './extensions', '.registry');
if (fs.existsSync(registry)) places.EXTENSIONS_REGISTRY = registry;
const unwritable = [];
for (const [key, where] of Object.entries(places)) {
  try { fs.accessSync(where, fs.constants.W_OK); }
  catch (err) { let owner = '?'; try { owner = fs.statSync(where).uid; } catch (x) {} unwritable.push({ key, where, owner }); }
}
console.log(JSON.stringify({ uid: process.getuid(), unwritable }));
"""


# Run in a one-off container of the release: the migration files its Directus would run, its
# own (in the image) and the project's (MIGRATIONS_PATH, as the container sees it).
_MIGRATIONS_JS = r"""
const fs = require('fs'), path = require('path');
process.chdir('/directus');
const list = (where, dir) => { try { for (const f of fs.readdirSync(dir)) console.log(where + '\t' + f); } catch (e) {} };
list('system', '/directus/node_modules/@directus/api/dist/database/migrations');
list('custom', path.resolve(process.env.MIGRATIONS_PATH || './migrations'));
"""


def _project_name(value: str) -> str:
    # Compose's own rule: lower-case letters, digits, dashes and underscores, not starting with - or _
    if not value or not all(c.islower() or c.isdigit() or c in "-_" for c in value) or value[0] in "-_":
        raise ValueError("must be a compose project name: lower-case letters, digits, - and _")
    return value


class Compose(Runtime):
    """With DEPLOY_STRATEGY=bluegreen, blue and green are containers of the Directus service
    beside its own one (`compose run -d`, named `<project>-<service>-<color>`): the same
    project, networks, image, settings and mounts, published on 127.0.0.1 at the color's port
    (and PORT set to it), the service's restart policy given after (`compose run` drops it).
    The service's own container (the plain instance, serving at the ports of the compose file)
    serves until the first switch retires it."""

    NAME = "compose"
    RUNS_TWO = True
    KEYS = (
        Key("DIRECTUS_COMPOSE_PROJECT", "compose_project", _project_name, default="directus", example="directus"),
        Key("DIRECTUS_COMPOSE_SERVICE", "compose_service", parse_name, default="directus", example="directus"),
        Key("DIRECTUS_COMPOSE_FILE", "compose_file", parse_line, optional=True, example="docker-compose.yml"),
    )
    TOOLS = {"docker": "runs Directus when DIRECTUS_SERVICE=compose (Docker Engine with Compose v2)"}
    RELEASE_HOLDS_DEPENDENCIES = False  # the image holds Directus; a release holds no node_modules
    READS_OWN_SETTINGS = True
    PROJECT_FILES = OWN_FILES
    DEFINED_BY = ("*.yml", "*.yaml")  # the compose file(s)

    @property
    def project(self) -> str:
        return self.config.compose_project

    @property
    def service(self) -> str:
        return self.config.compose_service

    def compose(self, root: str | None, *args: str, root_word: str | None = None, more: str = "") -> str:
        """`docker compose` for the project, run in the release folder `root` (or the shell
        word `root_word`: "$root") with its compose files; None for a command that needs no
        file. A release lists its files in FILES_LIST (written when it was made); another
        folder (an install, before adoption) has DIRECTUS_COMPOSE_FILE or Compose's own.
        `more`: shell words appended as they are (a variable holding service names)."""
        where = root_word or (q(root) if root else None)
        command = f"docker compose --progress quiet -p {q(self.project)} {q(*args)}" + (f" {more}" if more else "")
        if not where:
            return command
        default = f"export COMPOSE_FILE={q(self.config.compose_file)}" if self.config.compose_file else "true"
        return (f"(cd {where} && if [ -f {FILES_LIST} ]; then export COMPOSE_FILE=\"$(cat {FILES_LIST})\"; "
                f"else {default}; fi && exec {command})")

    # -- the service -----------------------------------------------------------------------------

    @property
    def _service_app(self) -> str:
        """The service's own container as the crash watch names it: "<project>/<service>"."""
        return f"{self.project}/{self.service}"

    @property
    def bluegreen(self) -> bool:
        return self.config.strategy == "bluegreen"

    def stop(self) -> str:
        stop = self.compose(None, "stop", self.service)
        if not self.bluegreen:
            return stop
        names = [instance.app for instance in self.instances() if instance.port]
        return f"{stop} && for c in {q(*names)}; do docker stop \"$c\" >/dev/null 2>&1 || true; done"

    def start(self, root: str) -> str:
        """Recreate the Directus service from the release folder `root` (its compose file, its
        image, its bind mounts), never its dependencies; a start with nothing changed restarts it.
        With blue/green: the instance that serves now, whichever it is."""
        if self.bluegreen:
            every = self.instances()
            return instances.for_serving_instance(self.config, {i.name: self.start_instance(i, root) for i in every})
        return self._start_service(root)

    def _start_service(self, root: str) -> str:
        return self.after_one_offs() + " && " + self.compose(
            root, "up", "-d", "--no-deps", "--no-build", "--force-recreate", "--quiet-pull", self.service)

    def start_instance(self, instance: Instance, root: str) -> str:
        """Shell (re)starting `instance` from the release folder `root`: the service's own
        container, or a color's (removed first when it exists)."""
        if not instance.port:
            return self._start_service(root)
        name = q(instance.app)
        run = self.compose(root, "run", "-d", "-T", "--no-deps", "--quiet-pull", "--name", instance.app,
                           "--label", f"{COLOR_LABEL}={instance.name}", "-e", f"PORT={instance.port}",
                           "--publish", f"127.0.0.1:{instance.port}:{instance.port}", self.service)
        return (f"{self.after_one_offs()} && {{ docker rm -f {name} >/dev/null 2>&1 || true; }} && "
                f"policy=$({self._service_field(root, 'restart')}) && {run} >/dev/null && "
                f"docker update --restart \"${{policy:-no}}\" {name} >/dev/null")

    def retire(self, instance: Instance) -> str:
        """Shell stopping an instance for good (its container removed); never fails."""
        if instance.port:
            ids = q(instance.app)
        else:
            ids = "$(" + self._containers(False, "-aq") + ")"
        return (f"{{ for c in {ids}; do docker stop \"$c\" >/dev/null 2>&1; docker rm -f \"$c\" >/dev/null 2>&1; done; "
                "true; }")

    def _containers(self, oneoff: bool, *flags: str) -> str:
        """Shell listing the service's containers (`docker ps` with `flags`): its own (`oneoff`
        False) or its one-off ones (`compose run`: the CLI's and the blue/green colors)."""
        labels = (f"label=com.docker.compose.project={self.project}", f"label=com.docker.compose.service={self.service}",
                  f"label=com.docker.compose.oneoff={oneoff}")
        return f"docker ps {q(*flags)} " + " ".join(f"--filter {q(label)}" for label in labels)

    def after_one_offs(self) -> str:
        """Shell that waits for the tool's one-off CLI containers still running (a release
        interrupted while one ran: it goes on writing the database after `fab` is gone), then
        removes them, so no Directus starts or migrates beside one. The deploy lock says no
        other release runs; Compose labels them as the project's one-off containers."""
        # a one-off container with a color is a blue/green instance, not the CLI
        listing = (self._containers(True, "-a", "--format", f'{{{{.ID}}}} {{{{.Label "{COLOR_LABEL}"}}}}')
                   + " | awk 'NF == 1 { print $1 }'")
        return (f"{{ left=$({listing}); if [ -n \"$left\" ]; then "
                f"echo \"waiting for a Directus CLI container of an interrupted release\" >&2; "
                f"timeout {ONE_OFF_WAIT} docker wait $left >/dev/null 2>&1; docker rm -f $left >/dev/null; fi; }}")

    def instances(self) -> list[Instance]:
        plain = Instance("plain", self._service_app, None, kind="compose service")
        if not self.bluegreen:
            return [plain]
        return [plain, *instances.colors(self.config, lambda color: f"{self.project}-{self.service}-{color}",
                                         kind="container")]

    def status(self, instance: Instance) -> str:
        if instance.port:
            running = f"docker inspect -f '{{{{.State.Running}}}}' {q(instance.app)} 2>/dev/null"
            return f"if [ \"$({running})\" = true ]; then echo online; else echo stopped; fi"
        running = self._containers(False, "-q", "--filter", "status=running")
        return f"if [ -n \"$({running} 2>/dev/null)\" ]; then echo online; else echo stopped; fi"

    def watched(self, instance: Instance | None = None) -> list[str]:
        if instance:
            return [instance.app]
        return [] if self.bluegreen else [self._service_app]

    def recent_log(self, lines: int) -> str:
        return self.compose(None, "logs", "--no-color", "--no-log-prefix", "--tail", str(lines), self.service)

    def crash_watch_js(self) -> str:
        return _CRASH_WATCH_JS

    # -- Directus's command line -------------------------------------------------------------------

    def cli(self, release_dir: str, *args: str) -> str:
        """Directus's CLI in a one-off container of the release's image and settings, with the
        release folder mounted read-only at its own path (a relative argument, such as the
        snapshot, is read from there) and the folder of an absolute argument mounted writable."""
        mounts = [release_dir]
        words = []
        for arg in args:
            if arg.startswith("/"):
                mounts.append(posixpath.dirname(arg))
                words.append(arg)
            elif "/" in arg and not arg.startswith("-"):
                words.append(posixpath.join(release_dir, arg))
            else:
                words.append(arg)
        volumes = [f"{mounts[0]}:{mounts[0]}:ro", *(f"{m}:{m}" for m in mounts[1:])]
        return self.after_one_offs() + " && " + self.compose(
            release_dir, "run", "--rm", "--no-deps", "-T", "--quiet-pull",
            *(part for v in volumes for part in ("-v", v)), self.service, "node", CLI, *words)

    def dependencies_lines(self, release_dir: str, release_id: str | None = None) -> list[str]:
        """The release's compose files (FILES_LIST), and its image, there before anything
        starts from it: built when the service has `build:` (IMAGE_OVERRIDE names it after the
        release), else found on the host (an unchanged image is neither pulled nor rebuilt),
        else pulled. The marketplace folder is a link into shared/ on the host; inside the
        container that link resolves only if the same folder is mounted at the same path, so
        the link is made absolute and the tool's override file (OVERRIDE) mounts it. Then the
        project's other services, running (never recreated), their data folders in shared/."""
        image = self.service_image(release_dir)
        built = self.built_image(release_id or posixpath.basename(release_dir))
        image_override = f"services:\n  {json.dumps(self.service)}:\n    image: {json.dumps(built)}\n"
        return [*self._files_lines(release_dir),
            # a service built from the project's Dockerfile gets an image of its own per release
            # (its tag: the release), so a rollback finds the image its release ran; Docker's
            # layer cache makes an unchanged build take seconds and give the same image
            # (grep reads all of it: one that stops early would kill `docker compose` with SIGPIPE)
            f"if {self.compose(release_dir, 'config', '--format', 'json', self.service)} | grep '\"build\": {{' >/dev/null; then",
            f"  printf '%s' {q(image_override)} > {q(posixpath.join(release_dir, IMAGE_OVERRIDE))}",
            f"  printf ':%s' {IMAGE_OVERRIDE} >> {q(posixpath.join(release_dir, FILES_LIST))}",
            f"  known=$(docker images -q --no-trunc {q(built.rsplit(':', 1)[0])})",
            f"  {self.compose(release_dir, 'build', self.service)} >&2",
            f"  img={q(built)}; how=built",
            "  echo \"$known\" | grep -qxF \"$(docker image inspect -f '{{.Id}}' \"$img\")\" && how=unchanged",
            f"else how=; img=$({image}); fi",
            '[ -n "$img" ] || { echo "the compose file names no image for the service" >&2; exit 1; }',
            'if [ -n "${how:-}" ]; then :; elif docker image inspect "$img" >/dev/null 2>&1; then how=present; else',
            f"  {self.compose(release_dir, 'pull', '--quiet', self.service)} && how=pulled",
            "fi",
            "key=$img",
            # the project's other services (the database) running before the backup and the
            # migrations need them: started when absent (a first release), never recreated
            *self._other_services_lines(release_dir, link=True, then=self.compose(
                release_dir, "up", "-d", "--no-recreate", "--no-deps", "--no-build", "--wait", "--quiet-pull",
                more="$others")),
        ]

    def _other_services_lines(self, folder: str, link: bool, then: str = "") -> list[str]:
        """Shell for the project's services besides Directus ($others), when it has any: the
        bind mounts whose folder is inside `folder` and not a file of the project hold their
        data (the guide's ./data/database), which must be the same for every release. In a
        release (`link`), each becomes a link into shared/services/ (made empty the first time);
        when adopting an install, shared/services/ gets a link to where it is, so the running
        database keeps its folder and never moves. `then`: shell run after, on those services."""
        services = self.compose(folder, "config", "--services")
        shared = self.layout.shared_services
        each = (f"mkdir -p -- \"$(dirname -- {q(shared)}/\"$rel\")\" \"$(dirname -- \"$src\")\" && "
                f"{{ [ -e {q(shared)}/\"$rel\" ] || mkdir -p -- {q(shared)}/\"$rel\"; }} && "
                f"ln -s -- {q(shared)}/\"$rel\" \"$src\"" if link else
                f"mkdir -p -- \"$(dirname -- {q(shared)}/\"$rel\")\" && ln -sfn -- \"$src\" {q(shared)}/\"$rel\"")
        test = '[ ! -e "$src" ]' if link else '[ -d "$src" ] && [ ! -L "$src" ]'
        return [
            f"others=$({services} | grep -vxF {q(self.service)} || true)",
            'if [ -n "$others" ]; then',
            f"  {self.compose(folder, 'config', '--format', 'json', more='$others')} | "
            "{ grep -o '\"source\": \"[^\"]*\"' || true; } | cut -d'\"' -f4 | sort -u | while read -r src; do",
            f"    case \"$src\" in {q(folder)}/*) rel=${{src#{q(folder)}/}}; if {test}; then {each}; fi;; esac",
            "  done",
            *([f"  {then}"] if then else []),
            "fi",
        ]

    def adopt_lines(self, install: str) -> list[str]:
        """Shell run when an install is adopted, before its first release is made: the data its
        other services keep in folders of the install stays there, linked from shared/services/;
        marketplace installs kept in the Directus container are copied out into shared/."""
        return [*self._other_services_lines(install, link=False), *self._registry_out_lines()]

    def _registry_out_lines(self) -> list[str]:
        """An install whose extensions are built into its image (nothing mounted at the image's
        extensions folder) keeps its marketplace installs in its container, which a new release
        replaces: the container stopped first (so that nothing is installed after the copy),
        then its marketplace folder, when it has one, copied once into shared/ through tar
        (run as root, it keeps the owners, as `docker cp -a` does not)."""
        shared = q(self.layout.shared_registry)
        copy = q(posixpath.join(self.layout.tool_dir, "registry-out.tar"))
        mounts = "docker inspect -f '{{range .Mounts}}{{println .Destination}}{{end}}' \"$cid\""
        return [
            f"cid=$({self._containers(False, '-aq')} | awk 'NR == 1')",
            f"if [ -n \"$cid\" ] && ! {mounts} | grep -xE {q(IMAGE_EXTENSIONS + '(/[.]registry)?')} >/dev/null; then",
            "  docker stop \"$cid\" >/dev/null",
            f"  mkdir -p -- {q(self.layout.tool_dir)}",
            f"  if docker cp \"$cid\":{IMAGE_REGISTRY}/. - > {copy} 2>/dev/null; then",
            f"    mkdir -p -- {shared} && tar -x -C {shared} -f {copy}",
            "    echo \"marketplace extensions copied out of the Directus container into shared/\" >&2",
            "  fi",
            f"  rm -f -- {copy}",
            "fi",
        ]

    def backup_lines(self, root: str, target: str) -> list[str]:
        """The compose files the production runs with (its own and the tool's overrides, at
        their paths in the release) and its image by name and ID (a tag can be moved: the ID
        says which image it was)."""
        return [
            f"mkdir -p -m 0700 {q(target)}",
            f"(cd {q(root)} && if [ -f {FILES_LIST} ]; then IFS=: read -r -a files < {FILES_LIST} || true; "
            f"else files=({' '.join(OWN_FILES)}); fi; "
            f"for f in \"${{files[@]}}\"; do if [ -f \"$f\" ]; then cp -p --parents -- \"$f\" {q(target)}/; fi; done)",
            f"img=$({self.service_image(root)})",
            "id=$(docker image inspect -f '{{.Id}}' \"$img\" 2>/dev/null || true)",
            emit("image", name='"$img"', id='"$id"'),
        ]

    def service_image(self, root: str | None, root_word: str | None = None) -> str:
        """Shell printing the image the Directus service names. Not `config --images <service>`:
        it lists the services it depends on too (the database), in no fixed order."""
        return self._service_field(root, "image", root_word)

    def _service_field(self, root: str | None, field: str, root_word: str | None = None) -> str:
        """Shell printing one plain field of the Directus service (image, restart), read from
        the resolved YAML (a service at two spaces, its keys at four) to the end, never cut short."""
        pick = ("awk -v s=" + q(self.service) + " -v f=" + q(field) + " '/^  [^ ]/ { c = $1; sub(/:$/, \"\", c); "
                "gsub(/\"/, \"\", c) } index($0, \"    \" f \": \") == 1 && c == s && !done { v = substr($0, length(f) + 7); "
                "gsub(/\"/, \"\", v); print v; done = 1 }'")
        return f"{self.compose(root, 'config', '--format', 'yaml', self.service, root_word=root_word)} | {pick}"

    def built_image(self, release_id: str) -> str:
        """The image a release builds, when its service is built from the project's Dockerfile."""
        return f"{self.project}-{self.service.lower()}:{release_id}"

    def release_removed(self, release_id: str) -> str:
        """A deleted release's built image goes with it: its name only, while another name (a
        kept release's, same build) or a container still uses the image itself."""
        return f"docker image rm {q(self.built_image(release_id))} >/dev/null 2>&1 || true"

    def database_exec(self, service: str):
        """For a database run as the compose service `service`: a function giving the shell
        words that run a client in its container with the given settings, and the secrets
        named (their values pass from this shell's environment, never on a command line)."""
        def run(settings: dict[str, str], secret_names: tuple[str, ...]) -> str:
            flags = [*(f"{key}={value}" for key, value in settings.items()), *secret_names]
            return self.compose(None, "exec", "-T", *(word for flag in flags for word in ("-e", flag)), service)
        return run

    def migration_files(self, release_dir: str) -> str:
        return self.compose(release_dir, "run", "--rm", "--no-deps", "-T", "--quiet-pull", "--entrypoint", "node",
                            self.service, "-e", _MIGRATIONS_JS)

    def host_report(self) -> str:
        """Docker Engine, Compose v2 (v1's `docker-compose` is not enough), and the project's
        containers with their images."""
        project = q(f"label=com.docker.compose.project={self.project}")
        return "\n".join([
            "engine=$(docker version --format '{{.Server.Version}}' 2>&1 | tail -1) || "
            "{ echo \"refused: Docker Engine does not answer ($engine)\"; exit 0; }",
            'echo "Docker Engine: $engine"',
            "compose=$(docker compose version --short 2>/dev/null || true)",
            'case "$compose" in ""|v1.*|1.*) echo "refused: Compose v2 is missing (docker compose version); '
            'install the docker-compose-plugin";; *) echo "Compose: $compose";; esac',
            f"docker ps -a --filter {project} --format 'container {{{{.Names}}}}: {{{{.Image}}}}, {{{{.State}}}}'",
            f"for img in $(docker ps -a --filter {project} --format '{{{{.Image}}}}' | sort -u); do "
            "echo \"image $img: $(docker image inspect --format '{{.Id}} {{.Created}}' \"$img\" 2>/dev/null | cut -c8-19)\"; done",
        ])

    def state_check(self, release_dir: str) -> str:
        """Shell printing, as one JSON line, which state folders Directus could not write when
        started from the release (run in a one-off container of it, as its user)."""
        return self.compose(release_dir, "run", "--rm", "--no-deps", "-T", "--quiet-pull", "--entrypoint", "node",
                            self.service, "-e", _WRITABLE_JS)

    def read_state_check(self, output: str, host_paths: dict) -> list[str]:
        """Problems from what state_check printed, each naming the folder on the host and the fix."""
        found = json_object(output.strip().splitlines()[-1] if output.strip() else "") or {}
        uid = found.get("uid", "?")
        return [f"{item['key']}: {host_paths.get(item['key']) or item['where']} is owned by uid {item['owner']}, and "
                f"Directus runs as uid {uid} in its container and cannot write there "
                f"(fix: chown -R {uid}:{uid} {host_paths.get(item['key']) or item['where']})"
                for item in found.get("unwritable") or []]

    def _files_lines(self, release_dir: str) -> list[str]:
        registry = self.layout.shared_registry
        mount = "      - type: bind\n        source: {}\n        target: {}\n"
        override = (f"services:\n  {json.dumps(self.service)}:\n    volumes:\n"
                    + mount.format(json.dumps(registry), json.dumps(registry)))
        # extensions built into the image (no mount at the image's extensions folder): the
        # marketplace folder from shared/ mounted over the image's, so installs outlive containers
        baked = override + mount.format(json.dumps(registry), json.dumps(IMAGE_REGISTRY))
        target = '"target": "' + IMAGE_EXTENSIONS + '/?"'
        mounted = (f"COMPOSE_FILE=\"$files\" {self.compose(None, 'config', '--format', 'json', self.service)} | "
                   f"grep -E {q(target)} >/dev/null")
        if self.config.compose_file:
            find = f"files={q(self.config.compose_file)}"
        else:
            find = (f"files=''; for n in {' '.join(OWN_FILES)}; do [ -f \"$n\" ] && {{ files=$n; break; }}; done; "
                    f"[ -n \"$files\" ] || {{ echo 'the release has no compose file ({', '.join(OWN_FILES)})' >&2; exit 1; }}; "
                    f"for n in {' '.join(OVERRIDES)}; do [ -f \"$n\" ] && files=\"$files:$n\"; done")
        return [
            f"(cd {q(release_dir)} && {find}",
            "  reg=$(find . -maxdepth 4 -name .registry -type l | head -1)",
            f"  if [ -n \"$reg\" ]; then ln -sfn -- {q(registry)} \"$reg\" && "
            f"if {mounted}; then printf '%s' {q(override)} > {OVERRIDE}; else printf '%s' {q(baked)} > {OVERRIDE}; fi && "
            f"files=\"$files:{OVERRIDE}\"; fi",
            f"  printf '%s' \"$files\" > {FILES_LIST})",
        ]

    def start_entry(self, root: str) -> str:
        return CLI

    # -- what Directus runs with -------------------------------------------------------------------

    def settings_script(self, root_word: str) -> str:
        """Shell printing, for the release folder in the shell word `root_word`, the service's
        configuration as Compose resolves it, its image's defaults (empty while the image is not
        on the host yet: pulled or built when the release is made), and the host's named volumes
        with their folders and whether this user can read and write them."""
        return (
            section("compose") + "; " + self.compose(None, "config", "--format", "json", root_word=root_word)
            + " 2>&1; " + section("image") + "; "
            f"img=$({self.service_image(None, root_word=root_word)}) && "
            "{ docker image inspect --format '{{json .Config}}' \"$img\" 2>/dev/null || true; }; "
            + section("volumes") + "; docker info -f 'root {{.DockerRootDir}}' 2>/dev/null || true; "
            "docker volume ls --format '{{.Name}} {{.Driver}} {{.Mountpoint}}' 2>/dev/null | while read -r n d m; do "
            "if [ -r \"$m\" ] && [ -w \"$m\" ] && [ -x \"$m\" ]; then a=rw; else a=no; fi; "
            "echo \"volume $n $d $a $m\"; done; true"
        )

    def read_settings(self, root: str, output: str) -> dict:
        """What `settings_script` printed, as the settings reader's JSON (state/settings.py)."""
        parts = split_sections(output)
        try:
            config = json.loads(parts.get("compose") or "")
        except ValueError:
            detail = (parts.get("compose") or output).strip().splitlines()
            raise Refused(f"docker compose cannot read the compose project in {root}: "
                          f"{detail[-1] if detail else 'no output'}") from None
        try:
            image = json.loads((parts.get("image") or "").strip() or "null") or {}
        except ValueError:
            image = {}
        return settings_of(config, image, self.service, root, volumes_of(parts.get("volumes") or ""))


def volumes_of(text: str) -> dict:
    """The host's named volumes from settings_script: {"root": Docker's folder, name: (driver,
    access "rw" or "no", folder)}."""
    found: dict = {}
    for line in text.splitlines():
        words = line.split(" ", 4)
        if words[0] == "root" and len(words) == 2:
            found["root"] = words[1]
        elif words[0] == "volume" and len(words) == 5:
            found[words[1]] = (words[2], words[3], words[4])
    return found


def settings_of(config: dict, image: dict, service: str, root: str, volumes: dict | None = None) -> dict:
    """Directus's settings in the service `service` of a resolved compose configuration, with
    its container paths turned into paths relative to `root` through the bind mounts (or the
    folders of its named volumes, from `volumes_of`).
    Returns the settings reader's JSON: {"process": {...}, "config_path", "real_path", "version"}."""
    services = config.get("services") or {}
    if service not in services:
        raise Refused(f"the compose file in {root} has no service {service!r} "
                      f"(services: {', '.join(sorted(services)) or 'none'}); set DIRECTUS_COMPOSE_SERVICE")
    spec = services[service]
    env = {}
    for item in image.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    for key, value in (spec.get("environment") or {}).items():
        if value is not None:
            env[key] = str(value)
    workdir = image.get("WorkingDir") or spec.get("working_dir") or WORKDIR
    named = {key: (value or {}).get("name") or key for key, value in (config.get("volumes") or {}).items()}
    mounts = [(m.get("target", ""), _with_folder(m, named, volumes)) for m in spec.get("volumes") or []]
    translated = dict(env)
    for key, default in _path_settings(env):
        value = env.get(key) or default
        inside = posixpath.normpath(posixpath.join(workdir, value))
        if key == "EXTENSIONS_PATH" and inside == IMAGE_EXTENSIONS and _mount_of(inside, mounts) is None:
            # the project's extensions built into its image (a Dockerfile copying ./extensions):
            # on the host they are the release's own ./extensions; its marketplace folder is
            # mounted from shared/ over the image's (_files_lines)
            translated[key] = "./extensions"
            continue
        translated[key] = host_path(key, value, workdir, mounts, root)
    labels = image.get("Labels") or {}
    version = labels.get("org.opencontainers.image.version") or _tag_version(spec.get("image") or "")
    found = {"process": translated, "config_path": posixpath.join(root, ".env"), "version": version,
             "image": spec.get("image") or ""}
    database = database_service(env, services, service)
    if database:
        found["database_service"] = database
    published = served_port(spec, env)
    if published:
        found["served_port"] = published
    return found


def served_port(spec: dict, env: dict) -> int | None:
    """The host's port where the service's Directus answers: the one published for its PORT
    (8055 unless set), or PORT itself with the host's network (None: not reachable there)."""
    port = str(env.get("PORT") or 8055)
    inside = int(port) if port.isdigit() else None
    if spec.get("network_mode") == "host":
        return inside
    for port in spec.get("ports") or []:
        published = str(port.get("published") or "")
        if port.get("target") == inside and published.isdigit() and port.get("host_ip", "") in ("", "0.0.0.0", "::", "127.0.0.1"):
            return int(published)
    return None


def database_service(env: dict, services: dict, directus: str) -> str | None:
    """The compose service the database runs as, when DB_HOST (or the connection string's
    host) names one: the tool then runs the database's clients in its container."""
    url = str(env.get("DB_CONNECTION_STRING", "")).strip()
    host = (urlparse(url).hostname if url else None) or str(env.get("DB_HOST", "")).strip()
    if not host or host == directus or host not in services:
        return None
    return host


def _path_settings(env: dict) -> list[tuple[str, str]]:
    """(key, default) of every setting that names a place on disk Directus keeps state in."""
    found = [("EXTENSIONS_PATH", "./extensions")]
    if str(env.get("DB_CLIENT", "")).strip() == "sqlite3":
        found.append(("DB_FILENAME", ""))
    for name in (s.strip() for s in str(env.get("STORAGE_LOCATIONS", "local")).split(",")):
        key = name.upper().replace("-", "_")
        if name and env.get(f"STORAGE_{key}_DRIVER", "local" if name == "local" else "") == "local":
            found.append((f"STORAGE_{key}_ROOT", "./uploads" if name == "local" else ""))
    return found


def _with_folder(mount: dict, named: dict, volumes: dict | None) -> dict:
    """A named volume's mount with the folder Docker keeps it in (`folder`), or why the tool
    cannot use it (`refused`): another driver than local, or a folder this user cannot write.
    A volume not made yet (a first release) will be in Docker's own folder."""
    if mount.get("type") != "volume" or not mount.get("source") or volumes is None:
        return mount
    name = named.get(mount["source"], mount["source"])
    driver, access, folder = volumes.get(name) or ("local", "new", f"{volumes.get('root') or '/var/lib/docker'}/volumes/{name}/_data")
    if driver != "local":
        return {**mount, "refused": f"the named volume {name!r} uses the driver {driver!r}: the tool reads a volume's files "
                                    "in its folder on the host (driver local), or a bind mount"}
    if access == "no":
        return {**mount, "refused": f"the named volume {name!r} is in {folder}, which the deploy user cannot read and "
                                    "write (it belongs to Docker): deploy as root, or mount a folder of the host instead "
                                    "(- ./uploads:/directus/uploads)"}
    return {**mount, "folder": folder, "volume": name}


def host_path(key: str, value: str, workdir: str, mounts: list, root: str) -> str:
    """A path inside the container as the host sees it: relative to `root` when its bind
    mount's source is inside `root`, else absolute (a named volume: in the folder Docker keeps
    it in). Refused when no mount holds it (the file would live in the container and go with
    it), or a named volume the tool cannot use holds it."""
    if not value:
        return value
    inside = posixpath.normpath(posixpath.join(workdir, value))
    best = _mount_of(inside, mounts)
    if best is None:
        raise Refused(f"{key}={value} is inside the container, on no volume: it would be lost with the container; "
                      "mount it from the host (volumes: - ./database:/directus/database)")
    target, mount = best
    if mount.get("type") == "volume" and mount.get("folder"):
        return posixpath.normpath(posixpath.join(mount["folder"], posixpath.relpath(inside, target)))
    if mount.get("type") != "bind":
        raise Refused(f"{key}={value}: " + (mount.get("refused") or f"on the volume {mount.get('source')!r}, whose folder "
                                            "on the host the tool does not know (- ./uploads:/directus/uploads)"))
    on_host = posixpath.normpath(posixpath.join(mount["source"], posixpath.relpath(inside, target)))
    if on_host == root or on_host.startswith(root.rstrip("/") + "/"):
        return "./" + posixpath.relpath(on_host, root)
    return on_host


def _mount_of(inside: str, mounts: list) -> tuple[str, dict] | None:
    """(target, mount) of the deepest mount holding the container path `inside`, or None."""
    best = None
    for target, mount in mounts:
        target = posixpath.normpath(target)
        if inside == target or inside.startswith(target.rstrip("/") + "/"):
            if best is None or len(target) > len(best[0]):
                best = (target, mount)
    return best


def _tag_version(image: str) -> str:
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    return tag if tag[:1].isdigit() else ""
