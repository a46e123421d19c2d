"""Traffic: which Directus instance nginx sends requests to, whatever runs it.

The tool owns one include (DEPLOY_NGINX_UPSTREAM_FILE) holding the upstream's one server line;
the user's site includes it inside `upstream <name> { }` and is never rewritten. nginx -T must
show the include there and holding nothing else before the tool writes it or switches
(nginx_config.py); every change of the include passes `nginx -t` before a graceful reload, and
the previous include is put back when it does not.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import as_admin, q
from directus_deploy.host.script import Script, emit, parse_results, section, split_sections, with_emit
from directus_deploy.state.production import locate
from directus_deploy.traffic.nginx_config import include_problem

DIRECTUS_DEFAULT_PORT = 8055  # where Directus listens when its .env sets no PORT
READY_WAIT = 10  # seconds for nginx's old workers to stop taking new requests after a reload


def live_port_shell(config) -> str:
    """Shell printing the port the upstream include sends requests to (nothing if none)."""
    return (f"{{ sed -n 's/^[[:space:]]*server[[:space:]]*127[.]0[.]0[.]1:\\([0-9]*\\).*/\\1/p' "
            f"{q(config.nginx_upstream_file)} 2>/dev/null || true; }} | head -1")


def upstream_text(config, port: int) -> str:
    return (
        "# Written by directus-deploy: the Directus instance that serves. Rewritten by every\n"
        f"# blue/green switch; do not edit. Your site includes it inside upstream {config.nginx_upstream} {{ }}\n"
        f"# and sends requests there with proxy_pass http://{config.nginx_upstream};\n"
        f"server 127.0.0.1:{port};\n"
    )


def site_lines(config) -> str:
    """What the user's site holds for the tool's include (README, and the refusals)."""
    return f"upstream {config.nginx_upstream} {{ include {config.nginx_upstream_file}; }}"


def parse_live_port(text: str) -> int | None:
    value = text.strip()
    return int(value) if value.isdigit() else None


@dataclass
class Upstream:
    """What nginx and the include say now."""

    live_port: int | None
    exists: bool
    routed: bool  # some proxy_pass in nginx's configuration sends requests to the upstream
    test_ok: bool
    test_line: str
    current: str | None  # the current release
    dump: str = ""  # nginx -T's output: every configuration file nginx loads

    def problem(self, config, *, required: bool) -> str | None:
        """Why the include must not be written or switched: not inside its upstream block,
        or holding more than server lines (nginx_config.include_problem)."""
        return include_problem(self.dump, config.nginx_upstream_file, config.nginx_upstream, required=required)


def nginx(config, *args: str) -> str:
    """Shell running nginx (as root) with the configured main file."""
    return as_admin("nginx", *(["-c", config.nginx_conf] if config.nginx_conf else []), *args)


def read_upstream(session) -> Upstream:
    """One round trip: the include's port, whether nginx routes to it, whether nginx -t passes."""
    config, layout = session.config, session.layout
    name = config.nginx_upstream
    script = Script(
        section("live"), live_port_shell(config),
        section("exists"), f"test -f {q(config.nginx_upstream_file)} && echo yes || true",
        section("routed"),
        # comments aside (the include's own mentions the proxy_pass to write)
        f"{{ {nginx(config, '-T')}; }} 2>/dev/null | sed 's/#.*//' | "
        f"grep -Ec {q(f'proxy_pass[[:space:]]+https?://{name}([;/[:space:]]|$)')} || true",
        section("test"), f"{{ {nginx(config, '-t')}; }} 2>&1 | tail -1; " + emit("rc", code='"$?"'),
        section("current"), f"readlink -- {q(layout.current)} || true",
        section("dump"), f"{{ {nginx(config, '-T')}; }} 2>/dev/null || true",
    ).text()
    found = split_sections(session.remote().script(script, what="read nginx's upstream", changes=False).stdout)
    test = parse_results(found.get("test", "")).text
    lines = [line for line in test.splitlines() if line.strip()]
    current = found.get("current", "").strip()
    return Upstream(
        live_port=parse_live_port(found.get("live", "")),
        exists=found.get("exists", "").strip() == "yes",
        routed=(found.get("routed", "0").strip() or "0") != "0",
        test_ok="syntax is ok" in test or "test is successful" in test,
        test_line=lines[-1] if lines else "nginx -t printed nothing",
        current=posixpath.basename(current) if current else None,
        dump=found.get("dump", ""),
    )


def check_ready(session, upstream: Upstream | None = None) -> Upstream:
    """The guards of a blue/green switch, before anything changes."""
    config, name = session.config, session.remote().name
    upstream = upstream or read_upstream(session)
    if not upstream.exists:
        raise Refused(f"{name}: {config.nginx_upstream_file} is missing; write it with fab deploy.upstream "
                      "(DEPLOY_STRATEGY=bluegreen)")
    if not upstream.test_ok:
        raise Refused(f"{name}: nginx -t fails before any change: {upstream.test_line}")
    if not upstream.routed:
        raise Refused(f"{name}: nginx sends no request to upstream {config.nginx_upstream}: no proxy_pass "
                      f"http://{config.nginx_upstream} in nginx -T; point your site's proxy_pass at it and reload nginx")
    problem = upstream.problem(config, required=True)
    if problem:
        raise Refused(f"{name}: {problem}; nothing was changed")
    return upstream


def write_upstream(session, port: int) -> None:
    """Write the include naming `port`, keep it only if `nginx -t` passes and nginx -T shows it
    where it belongs (a site may have included it before it existed: nginx -T could not tell
    until now), then reload nginx."""
    config = session.config
    include = config.nginx_upstream_file
    remote = session.remote()
    script = "\n".join([
        f"mkdir -p -- {q(posixpath.dirname(include))}",
        f"if [ -f {q(include)} ]; then cp -p -- {q(include)} {q(include + '.before')}; fi",
        write_include(config, port),
        f"if ! out=$({{ {nginx(config, '-t')}; }} 2>&1); then",
        f"  {restore_include(config)}",
        "  echo \"nginx -t failed: $(printf '%s' \"$out\" | tail -1)\" >&2; exit 1",
        "fi",
        f"{{ {nginx(config, '-T')}; }} 2>/dev/null",
    ])
    dump = remote.script(script, what=f"write {include} and test nginx").stdout
    problem = include_problem(dump, include, config.nginx_upstream, required=False)
    if problem:
        remote.script(restore_include(config), what=f"put {include} back")
        raise Refused(f"{remote.name}: {problem}; nothing was changed")
    remote.script(f"rm -f -- {q(include + '.before')}\n" + nginx(config, "-s", "reload"), what="reload nginx")


def install_upstream(session, port: int | None = None) -> tuple[Upstream, bool]:
    """Write the include if it is missing: naming `port`, or the port Directus serves on now
    (where the host reaches it: the production .env's PORT, or a container's published port)
    when it runs, else blue's. An existing include is kept.
    Returns the state and whether it was written."""
    upstream = read_upstream(session)
    # before anything is written; when the include is missing and nginx -T fails (a site that
    # includes it already), write_upstream checks once it is there
    problem = upstream.problem(session.config, required=False) if upstream.exists or upstream.dump.strip() else None
    if problem:
        raise Refused(f"{session.remote().name}: {problem}; nothing was changed")
    if upstream.exists:
        return upstream, False
    if port is None:
        if upstream.current:
            production = session.production or locate(session.remote(), session.layout)
            port = production.served_port or int(str(production.env.get("PORT") or DIRECTUS_DEFAULT_PORT))
        else:
            port = session.config.bluegreen_ports[0]  # blue's
    if session.dry_run:
        session.console.say(f"    would write {session.config.nginx_upstream_file} naming 127.0.0.1:{port} and reload nginx")
        return upstream, False
    write_upstream(session, port)
    return read_upstream(session), True


def write_include(config, port: int) -> str:
    include = config.nginx_upstream_file
    return (f"printf '%s' {q(upstream_text(config, port))} > {q(include + '.tmp')} && "
            f"mv -f -- {q(include + '.tmp')} {q(include)}")


def restore_include(config) -> str:
    include = config.nginx_upstream_file
    return f"if [ -f {q(include + '.before')} ]; then mv -f -- {q(include + '.before')} {q(include)}; else rm -f -- {q(include)}; fi"


def reload_and_wait(config) -> str:
    """Graceful reload, then wait until nginx's old workers take no new request (each has
    exited or is finishing its open ones): from then on new requests go to the new upstream."""
    master = q("^nginx: master process" + (f".*{config.nginx_conf}" if config.nginx_conf else ""))
    return "\n".join([
        f"old=$(for m in $(pgrep -f {master} || true); do pgrep -P \"$m\" || true; done)",
        nginx(config, "-s", "reload"),
        f"for _ in $(seq {READY_WAIT * 20}); do",
        "  busy=''",
        "  for p in $old; do",
        "    if [ \"$(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null | sed 's/ *$//')\" = 'nginx: worker process' ]; then busy=1; fi",
        "  done",
        "  if [ -z \"$busy\" ]; then break; fi",
        "  sleep 0.05",
        "done",
    ])


def drain(config, live_port: int | None) -> str:
    """Shell waiting until no request to the old port is in flight (nginx holds a connection
    to it per request), at most DEPLOY_DRAIN_SECONDS; reports a `drained` record (`seconds`)."""
    if not live_port:
        return with_emit(emit("drained", seconds=q(0)))
    return with_emit("; ".join([
        "started=$(date +%s.%N)",
        f"if command -v ss >/dev/null; then for _ in $(seq {config.drain_seconds * 10}); do "
        f"[ -z \"$(ss -Htn state established '( dport = :{live_port} )' 2>/dev/null)\" ] && break; sleep 0.1; done; "
        "else sleep 2; fi",
        emit("drained", seconds='"$(awk -v a="$(date +%s.%N)" -v b="$started" \'BEGIN {print a - b}\')"'),
    ]))
