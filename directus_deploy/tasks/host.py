"""Reach the production host(s): check what they have, trust a new host key."""


from directus_deploy.core.console import Console
from directus_deploy.core.errors import HostKeyError, Refused
from directus_deploy.flows.session import open_session
from directus_deploy.host import ssh
from directus_deploy.runtimes import load_config
from directus_deploy.state.probe import TOOLS, read_host_facts, require_node

from .base import task


@task
def check(c):
    """Connect to every host (verifying its key) and report tools, Node, disk and layout."""
    with open_session(several_hosts=True) as session:
        for remote in session.remotes():
            tools = {**TOOLS, **session.runtime.TOOLS}
            facts = read_host_facts(remote, session.layout.root, tools)
            console = session.console
            console.say(f"{remote.name}: logged in as {facts.user} on {facts.hostname}")
            rows = [[tool, facts.tools.get(tool, "missing"), why] for tool, why in tools.items()]
            console.table(["tool", "path", "used to"], rows)
            console.say(f"node version: {facts.node_version or 'none'}")
            console.say(f"free disk at {facts.disk_of}: {facts.free_kib / 1048576:.1f} GiB")
            state = "present" if facts.layout_exists else "not set up yet (fab deploy.setup or deploy.adopt)"
            console.say(f"layout at {session.layout.root}: {state}")
            runtime = session.runtime
            for instance in runtime.instances():
                status = remote.query(runtime.status(instance), what="ask the runtime", check=False).stdout.strip()
                console.say(f"Directus under {runtime.NAME}: {instance} {status or 'unknown'}")
            report = runtime.host_report()
            problem = None
            if report:  # what the runtime itself needs on the host; a "refused: " line is a problem
                for line in remote.query(report, what="ask the runtime", check=False).stdout.splitlines():
                    if line.startswith("refused: "):
                        problem = line[len("refused: "):]
                    console.say(line)
            require_node(remote, facts)
            for tool in ("npm", "tar") if runtime.RELEASE_HOLDS_DEPENDENCIES else ("tar", *runtime.TOOLS):
                if tool not in facts.tools:
                    raise Refused(f"{remote.name}: {tool} not found; it {tools[tool]}")
            if problem:
                raise Refused(f"{remote.name}: {problem}")


@task(
    help={
        "fingerprint": "the SHA256:... fingerprint you verified out of band; the key is trusted "
        "only if the server offers exactly this one"
    }
)
def trust(c, fingerprint=""):
    """Record a new host's SSH key in known_hosts, after you have checked its fingerprint."""
    config = load_config()
    console = Console()
    for host in config.hosts:
        connection, key = ssh.scan_host_key(config, host)
        offered = ssh.fingerprint(key)
        name = ssh.known_hosts_name(connection)
        recorded = ssh.recorded_keys(connection)
        if key.get_name() in recorded:
            if recorded[key.get_name()] == key:
                console.say(f"{name}: already trusted ({key.get_name()} {offered})")
                continue
            raise HostKeyError(
                f"{name}: known_hosts has a different {key.get_name()} key; a changed key is not "
                f"replaced here: check why, then remove the old entry (ssh-keygen -R '{name}')"
            )
        if not fingerprint:
            raise Refused(
                f"{name} offers {key.get_name()} {offered}; compare it with the server's own "
                f"(ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub there), then run: fab host.trust --fingerprint={offered}"
            )
        if fingerprint != offered:
            raise HostKeyError(f"{name} offers {offered}, not {fingerprint}; not trusted")
        path = ssh.trust_host_key(connection, key)
        console.say(f"{name}: trusted {key.get_name()} {offered} (written to {path})")


