"""The runtime interface: what runs Directus on a host.

A runtime turns "start this release", "stop Directus", "is it running" into shell for the host,
and says how the Directus CLI of a release runs with the same Node and settings as the instance.
Flows compose that shell into their scripts; they never name a process manager.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q

# Directus's own command line inside a release (`directus` without its npm update check)
CLI_ENTRY = "node_modules/@directus/api/dist/cli/run.js"
START_ENTRY = "node_modules/directus/cli.js"


@dataclass(frozen=True)
class Instance:
    """One running Directus: `plain` (the one a restart strategy restarts in place), `blue` or
    `green` (blue/green's two, each on its port), or a scratch one (a rehearsal)."""

    name: str
    app: str  # the runtime's name for it ("" when no runtime manages it)
    port: int | None  # None: it listens where the .env says
    kind: str = ""  # how the runtime calls such a thing, for messages ("pm2 app")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __str__(self) -> str:
        return f"{self.name} (:{self.port})" if self.port else f"{self.kind} {self.app}".strip()


class Runtime:
    """The default behaviour; each runtime module overrides what it does differently."""

    NAME = ""
    RUNS_TWO = False  # can run two instances side by side on two ports (blue/green)
    KEYS: tuple = ()  # its configuration keys (core.config.Key)
    TOOLS: dict[str, str] = {}  # host commands it needs, and why
    RELEASE_HOLDS_DEPENDENCIES = True  # a release links node_modules (npm ci); False: an image holds Directus
    READS_OWN_SETTINGS = False  # True: settings_script/read_settings say what Directus runs with
    PROJECT_FILES: tuple[str, ...] = ()  # a file of these in a project's folder: this runtime runs it
    DEFINED_BY = ("package-lock.json",)  # the project's top-level files that say what runs (globs)

    def __init__(self, config, layout=None):
        self.config = config
        self.layout = layout

    @classmethod
    def check_config(cls, values: dict, where: str) -> None:
        """Raise ConfigError when its keys do not fit together."""

    # -- the one instance of a restart strategy, or every instance ----------------------------

    def stop(self) -> str | None:
        """Shell stopping Directus (every instance), or None when this runtime cannot."""
        return None

    def start(self, root: str) -> str:
        """Shell (re)starting the instance that serves from the release folder `root`."""
        raise NotImplementedError

    def resume(self, root: str) -> str:
        """Shell starting again a Directus this tool stopped, the way it ran."""
        return self.start(root)

    def instances(self) -> list[Instance]:
        """Every instance it may run on a host (blue/green's colors included)."""
        return [Instance("plain", "", None, kind=self.NAME)]

    def status(self, instance: Instance) -> str:
        """Shell printing `online`, `stopped` or `unknown` for an instance."""
        return "echo unknown"

    # -- blue/green's two instances ------------------------------------------------------------

    def start_instance(self, instance: Instance, root: str) -> str:
        raise Refused(self.cannot_run_two())

    def retire(self, instance: Instance) -> str:
        raise Refused(self.cannot_run_two())

    def cannot_run_two(self) -> str:
        return (f"DIRECTUS_SERVICE={self.NAME} runs one Directus: blue/green needs a runtime that runs two side by "
                "side (DEPLOY_STRATEGY=restart works with it)")

    # -- what the health gate watches, and what guards secrets ---------------------------------

    def watched(self, instance: Instance | None = None) -> list[str]:
        """Names the gate watches for a crash loop (the runtime's, when it keeps pid files)."""
        return []

    def crash_watch_js(self) -> str:
        """JavaScript defining `crashed()` for the health gate: a reason when the watched
        instance (`app`, the gate's fourth argument) keeps exiting, else null."""
        return "const crashed = () => null;"

    def secret_guard(self, names) -> str:
        """Shell run before the commands of a script that exports secrets ("" for none): a
        runtime that records the environment it starts processes with must not record those."""
        return ""

    # -- what Directus runs with (READS_OWN_SETTINGS) and what a release needs (dependencies) ------

    def settings_script(self, root_word: str) -> str:
        """Shell printing what `read_settings` reads, for the release folder in `root_word`."""
        raise NotImplementedError

    def read_settings(self, root: str, output: str) -> dict:
        """The settings reader's JSON (state/settings.py) from what settings_script printed."""
        raise NotImplementedError

    def dependencies_lines(self, release_dir: str, release_id: str | None = None) -> list[str]:
        """Shell run in a new release (not yet live, in the folder `release_dir` it is made in)
        when it holds no node_modules: what makes Directus ready to start from it (an image built
        or found). It sets $key and $how for the release's `deps` record."""
        raise NotImplementedError

    def adopt_lines(self, install: str) -> list[str]:
        """Shell run when the install folder `install` is adopted, before its first release: what
        the runtime keeps of it besides Directus's own state (compose: other services' data)."""
        return []

    def backup_lines(self, root: str, target: str) -> list[str]:
        """Shell run by every backup: what the runtime needs to run the
        production in `root` again, copied into the folder `target` (compose: its compose files),
        and `emit` records of it for the manifest (compose: the image, by name and ID)."""
        return []

    def release_removed(self, release_id: str) -> str:
        """Shell run when retention deletes a release: what the runtime kept for it alone."""
        return "true"

    def migration_files(self, release_dir: str) -> str | None:
        """Shell listing the migration files Directus of the release would run, as lines
        "system<TAB>name" and "custom<TAB>name" (None: they are files of the release itself)."""
        return None

    def recent_log(self, lines: int) -> str | None:
        """Shell printing the last `lines` lines Directus logged, shown when a health gate fails
        (None: the runtime keeps no log the tool can read)."""
        return None

    def host_report(self) -> str | None:
        """Shell printing what `fab host.check` shows of this runtime on the host, one fact a
        line; a line "refused: <why>" says the host cannot run it (None: nothing to report)."""
        return None

    def state_check(self, release_dir: str) -> str | None:
        """Shell checking, before a release goes live, that Directus started from it can write
        its state folders (None: nothing to check, Directus runs as the deploy user)."""
        return None

    def read_state_check(self, output: str, host_paths: dict) -> list[str]:
        return []

    # -- Directus's command line, for a release -------------------------------------------------

    def cli(self, release_dir: str, *args: str) -> str:
        """Shell running Directus's CLI of a release, from its folder (its .env, its Node)."""
        return f"cd {q(release_dir)} && node {q(posixpath.join(release_dir, CLI_ENTRY))} {q(*args)}"

    def start_entry(self, root: str) -> str:
        return posixpath.join(root, START_ENTRY)
