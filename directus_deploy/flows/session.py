"""A run of the tool: the configuration, the console, and one verified `Remote` per host.

Tasks never use the `invoke.Context` Fabric hands them for remote work (without hosts it is a
*local* context, and `c.run` would run on the laptop). They open a Session, which builds its
connections explicitly from the configuration.
"""

from __future__ import annotations

from contextlib import contextmanager

from directus_deploy.core import config as config_module
from directus_deploy.core.console import Console
from directus_deploy.core.errors import DeployError
from directus_deploy.host import ssh
from directus_deploy.host.remote import Remote
from directus_deploy.runtimes import load_config
from directus_deploy.runtimes.service import Service
from directus_deploy.state.layout import Layout


class Session:
    def __init__(self, *, dry_run: bool = False, config: config_module.Config | None = None, several_hosts=False,
                 restart: bool = False):
        self.config = config or load_config()
        self.several_hosts = several_hosts  # the task works on every host (else: on the primary)
        self.dry_run = dry_run
        # how releases go live in this run: DEPLOY_STRATEGY, or a restart in place when asked
        self.switch_method = "restart" if restart else self.config.strategy
        self.layout = Layout(self.config.deploy_path)
        self._remotes: dict[str, Remote] = {}
        self.console = Console(scrub=self.scrub)
        self.production = None  # the production located last (its .env parsed), to save round trips
        self.locks: dict[str, dict] = {}  # host -> owner record of the deploy lock this run holds there

    def scrub(self, text: str) -> str:
        for secret in self.config.secrets:
            text = text.replace(secret, "***")
        for remote in self._remotes.values():
            text = remote.scrub(text)
        return text

    def remote(self, host=None) -> Remote:
        """The Remote for `host` (default: the primary host), connected on first use."""
        host = host or self.config.primary_host
        key = str(host)
        if key not in self._remotes:
            connection = ssh.open_connection(self.config, host)
            self._remotes[key] = Remote(
                connection,
                dry_run=self.dry_run,
                node_path=self.config.node_path,
                secrets=self.config.secrets,
                say=self.console.say,
                secret_guard=self.runtime.secret_guard,
                settings_reader=self.runtime if self.runtime.READS_OWN_SETTINGS else None,
            )
        return self._remotes[key]

    @property
    def service(self) -> Service:
        """How Directus is stopped, started and checked on the host."""
        return Service(self.config, self.layout)

    @property
    def runtime(self):
        """What runs Directus on the hosts (runtimes/)."""
        return self.service.runtime

    def lock_hosts(self) -> list[tuple[str, Remote]]:
        """(name, Remote) of every host this task works on, the primary first: where it locks."""
        primary = self.config.primary_host
        hosts = [primary] + ([h for h in self.config.hosts if h != primary] if self.several_hosts else [])
        return [(str(host), self.remote(host)) for host in hosts]

    def remotes(self) -> list[Remote]:
        return [self.remote(host) for host in self.config.hosts]

    def fleet(self) -> list["HostView"]:
        """One view per host, the primary first; with several hosts each prefixes its output
        with its name. Connections are opened here, before any work runs on several at once."""
        primary = self.config.primary_host
        hosts = [primary] + [h for h in self.config.hosts if h != primary]
        several = len(hosts) > 1
        views = [HostView(self, host, f"[{host}] " if several else "") for host in hosts]
        for view in views:
            view.remote()
        return views

    def close(self) -> None:
        for remote in self._remotes.values():
            remote.connection.close()
        self._remotes.clear()

    @property
    def round_trips(self) -> int:
        return sum(remote.log.round_trips for remote in self._remotes.values())


class HostView:
    """The session as seen from one host: that host's Remote, its production, its output
    prefixed with its name. Everything a step needs from a session, so the same steps run on
    any host of several."""

    def __init__(self, session: Session, host, prefix: str):
        self.session = session
        self.host = host
        self.config = session.config
        self.layout = session.layout
        self.dry_run = session.dry_run
        self.switch_method = session.switch_method
        self.console = session.console.for_host(prefix)
        self.production = None

    @property
    def name(self) -> str:
        return str(self.host)

    def remote(self, host=None) -> Remote:
        return self.session.remote(host or self.host)

    @property
    def service(self) -> Service:
        return self.session.service

    @property
    def runtime(self):
        return self.session.runtime

    @property
    def locks(self) -> dict[str, dict]:
        return self.session.locks

    def lock_hosts(self) -> list[tuple[str, Remote]]:
        return [(self.name, self.remote())]

    @property
    def round_trips(self) -> int:
        return self.session.round_trips

    def scrub(self, text: str) -> str:
        return self.session.scrub(text)


@contextmanager
def open_session(*, dry_run: bool = False, several_hosts: bool = False, restart: bool = False):
    session = Session(dry_run=dry_run, several_hosts=several_hosts, restart=restart)
    try:
        if len(session.config.hosts) > 1 and not several_hosts:
            # said, not silent: the others are not touched
            session.console.say(f"note: {len(session.config.hosts)} hosts configured; this task works on the primary, "
                                f"{session.config.primary_host} (for another: DEPLOY_HOSTS=<that host> fab ...)")
        if dry_run:
            session.console.say("DRY RUN: nothing on the host will change; commands that would are listed.")
        yield session
    except DeployError as why:  # its line may quote a value holding a secret
        why.args = (session.scrub(str(why)),)
        raise
    finally:
        session.close()
