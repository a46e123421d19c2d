"""The blue/green switch behind nginx: a release goes live with no failed request.

    start the new release on the idle color's port  (the serving instance is not touched)
    -> health gate on that port: ping, health with the token, extensions loaded
    -> the upstream include names the new port; `nginx -t`; `current` moves; graceful reload
    -> ping, health and extensions through nginx
    -> the old instance gets its requests in flight finished (drain), then stops

A failure up to the reload stops the new instance again and leaves everything else as it was;
a failure of the check through nginx puts the include, `current` and nginx back, with the old
instance still running. Either way no user request ever reached the failed release (a gate
failure) or the old one kept serving throughout (a failed check through nginx).

nginx's own site file is the user's and is never rewritten: the tool owns only the include
that defines the upstream (DEPLOY_NGINX_UPSTREAM_FILE).
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass

from . import instances
from .errors import DeployError, Refused, RolledBack
from .lock import serial_lock
from .production import locate
from .remote import as_admin, q, section, split_sections

DIRECTUS_DEFAULT_PORT = 8055  # where Directus listens when its .env sets no PORT
READY_WAIT = 10  # seconds for nginx's old workers to stop taking new requests after a reload


@dataclass
class Upstream:
    """What nginx and the include say now."""

    live_port: int | None
    exists: bool
    routed: bool  # some proxy_pass in nginx's configuration sends requests to the upstream
    test_ok: bool
    test_line: str
    current: str | None  # the current release


def nginx(config, *args: str) -> str:
    """Shell running nginx (as root) with the configured main file."""
    return as_admin("nginx", *(["-c", config.nginx_conf] if config.nginx_conf else []), *args)


def read_upstream(session) -> Upstream:
    """One round trip: the include's port, whether nginx routes to it, whether nginx -t passes."""
    config, layout = session.config, session.layout
    name = config.nginx_upstream
    script = "\n".join([
        section("live"), instances.live_port_shell(config),
        section("exists"), f"test -f {q(config.nginx_upstream_file)} && echo yes || true",
        section("routed"),
        # comments aside (the include's own mentions the proxy_pass to write)
        f"{{ {nginx(config, '-T')}; }} 2>/dev/null | sed 's/#.*//' | "
        f"grep -Ec {q(f'proxy_pass[[:space:]]+https?://{name}([;/[:space:]]|$)')} || true",
        section("test"), f"{{ {nginx(config, '-t')}; }} 2>&1 | tail -1; echo \"@@rc $?\"",
        section("current"), f"readlink -- {q(layout.current)} || true",
    ])
    found = split_sections(session.remote().script(script, what="read nginx's upstream", changes=False).stdout)
    test = found.get("test", "")
    lines = [line for line in test.splitlines() if line.strip() and not line.startswith("@@rc")]
    current = found.get("current", "").strip()
    return Upstream(
        live_port=instances.parse_live_port(found.get("live", "")),
        exists=found.get("exists", "").strip() == "yes",
        routed=(found.get("routed", "0").strip() or "0") != "0",
        test_ok="syntax is ok" in test or "test is successful" in test,
        test_line=lines[-1] if lines else "nginx -t printed nothing",
        current=posixpath.basename(current) if current else None,
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
    return upstream


def write_upstream(session, port: int) -> None:
    """Write the include naming `port`, keep it only if `nginx -t` passes, then reload nginx."""
    config = session.config
    include = config.nginx_upstream_file
    script = "\n".join([
        f"mkdir -p -- {q(posixpath.dirname(include))}",
        f"if [ -f {q(include)} ]; then cp -p -- {q(include)} {q(include + '.before')}; fi",
        _write_include(config, port),
        f"if ! out=$({{ {nginx(config, '-t')}; }} 2>&1); then",
        f"  {_restore_include(config)}",
        "  echo \"nginx -t failed: $(printf '%s' \"$out\" | tail -1)\" >&2; exit 1",
        "fi",
        f"rm -f -- {q(include + '.before')}",
        nginx(config, "-s", "reload"),
    ])
    session.remote().script(script, what=f"write {include} and reload nginx")


def install_upstream(session, port: int | None = None) -> tuple[Upstream, bool]:
    """Write the include if it is missing: naming `port`, or the port Directus serves on now
    (the production .env's PORT) when it runs, else blue's. An existing include is kept.
    Returns the state and whether it was written."""
    upstream = read_upstream(session)
    if upstream.exists:
        return upstream, False
    if port is None:
        if upstream.current:
            env = session.production.env if session.production else locate(session.remote(), session.layout).env
            port = int(str(env.get("PORT") or DIRECTUS_DEFAULT_PORT))
        else:
            port = instances.colors(session.config)[0].port
    if session.dry_run:
        session.console.say(f"    would write {session.config.nginx_upstream_file} naming 127.0.0.1:{port} and reload nginx")
        return upstream, False
    write_upstream(session, port)
    return read_upstream(session), True


def switch_to(session, release_id: str, expected_extensions: list[str], previous: str | None = None) -> dict:
    """Start `release_id` on the idle color, gate it, move nginx to it, retire the old one.
    Raises RolledBack if it never went live (the old instance serving throughout)."""
    config, console = session.config, session.console
    upstream = check_ready(session)
    live = instances.serving(config, upstream.live_port)
    new = instances.idle(config, live)
    previous = previous or upstream.current
    gate = _start_and_gate(session, new, release_id, expected_extensions, upstream.live_port)
    if not gate.get("ok"):
        raise RolledBack(f"{release_id} failed its health gate on {new} ({gate.get('failed')}: {gate.get('detail')}); "
                         f"it never received a request; {previous} still serves")
    console.say(f"    {new} runs {release_id}: healthy after {gate['seconds']:.1f}s while {live} serves {previous}")
    moved = _move_traffic(session, live, new, release_id, expected_extensions, upstream.live_port)
    console.say(f"    nginx now sends requests to {new}; {live} drained in {moved['drained']:.1f}s and stopped")
    return {**gate, "previous": previous, "strategy": "bluegreen", "instance": new.name,
            "drained_seconds": moved["drained"], "through_nginx": moved["gate"]}


def _start_and_gate(session, new: instances.Instance, release_id: str, expected: list[str],
                    live_port: int | None) -> dict:
    service, layout = session.service, session.layout
    script = "\n".join([
        serial_lock(layout),
        _still_serving(session.config, live_port),
        instances.pm2_start(new, layout.release_dir(release_id), layout.bluegreen_config),
        f"if ! {service.health_check(expected, instance=new)}; then",
        f"  {retire(new)}",
        "fi",
    ])
    result = session.remote().script(script, what=f"start {release_id} on {new} and pass the health gate",
                                     secret_env=service.secret_env, check=False)
    if not result.ok:
        raise DeployError(f"{session.remote().name}: starting {new} failed: {session.remote().error_line(result)}")
    return _gate_report(result.stdout)


def _move_traffic(session, live: instances.Instance, new: instances.Instance, release_id: str, expected: list[str],
                  live_port: int | None) -> dict:
    """One script that runs to its end whatever happens to this side (critical): the
    include, nginx -t, `current`, the reload, the check through nginx, the drain, the stop."""
    config, layout, service = session.config, session.layout, session.service
    include, current = config.nginx_upstream_file, layout.current
    script = "\n".join([
        serial_lock(layout),
        _still_serving(config, live_port),
        f"was=$(readlink -- {q(current)} || true)",
        f"if [ -f {q(include)} ]; then cp -p -- {q(include)} {q(include + '.before')}; fi",
        _write_include(config, new.port),
        f"if ! out=$({{ {nginx(config, '-t')}; }} 2>&1); then",
        f"  {_restore_include(config)}; {retire(new)}",
        "  echo \"nginx -t failed with the new upstream: $(printf '%s' \"$out\" | tail -1)\" >&2; exit 1",
        "fi",
        f"ln -sfn -- {q(posixpath.join('releases', release_id))} {q(current + '.new')} && mv -T -- {q(current + '.new')} {q(current)}",
        _reload_and_wait(config),
        f"if ! {service.health_check(expected, timeout=30)} > {q(layout.tool_dir + '/bluegreen-gate')}; then",
        "  # through nginx it does not work: everything back as it was; the old instance never stopped",
        f"  cat {q(layout.tool_dir + '/bluegreen-gate')}",
        f"  {_restore_include(config)}",
        f"  if [ -n \"$was\" ]; then ln -sfn -- \"$was\" {q(current + '.new')} && mv -T -- {q(current + '.new')} {q(current)}; fi",
        f"  {_reload_and_wait(config)}",
        f"  {retire(new)}",
        "  echo '@@reverted'; exit 0",
        "fi",
        f"cat {q(layout.tool_dir + '/bluegreen-gate')}",
        f"rm -f -- {q(include + '.before')}",
        _drain(config, live_port),
        retire(live),
    ])
    result = session.remote().script(script, what=f"move nginx to {new} and retire {live}", critical=True,
                                     secret_env=service.secret_env, check=False)
    remote = session.remote()
    if not result.ok:
        raise RolledBack(f"{release_id} did not go live: {remote.error_line(result)}; {live} still serves")
    gate = _gate_report(result.stdout)
    if "@@reverted" in result.stdout:
        raise RolledBack(f"{release_id} passed its gate on {new} but not through nginx ({gate.get('failed')}: "
                         f"{gate.get('detail')}, {config.directus_url}); nginx and current are back, {live} still serves")
    drained = next((float(l.split("\t")[1]) for l in result.stdout.splitlines() if l.startswith("@@drained\t")), 0.0)
    return {"gate": gate, "drained": drained}


def retire(instance: instances.Instance) -> str:
    """Shell stopping an instance for good (gone from pm2's saved list too); never fails."""
    return f"{{ pm2 delete {q(instance.app)} >/dev/null 2>&1 || true; pm2 save --force >/dev/null 2>&1 || true; }}"


def _still_serving(config, live_port: int | None) -> str:
    """Shell refusing to go on if another run moved nginx since the state was read."""
    expected = str(live_port) if live_port else ""
    return (f"if [ \"$({instances.live_port_shell(config)})\" != {q(expected)} ]; then "
            "echo 'the nginx upstream changed while this run was preparing; run it again' >&2; exit 1; fi")


def _write_include(config, port: int) -> str:
    include = config.nginx_upstream_file
    return (f"printf '%s' {q(instances.upstream_text(config, port))} > {q(include + '.tmp')} && "
            f"mv -f -- {q(include + '.tmp')} {q(include)}")


def _restore_include(config) -> str:
    include = config.nginx_upstream_file
    return f"if [ -f {q(include + '.before')} ]; then mv -f -- {q(include + '.before')} {q(include)}; else rm -f -- {q(include)}; fi"


def _reload_and_wait(config) -> str:
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


def _drain(config, live_port: int | None) -> str:
    """Shell waiting until no request to the old port is in flight (nginx holds a connection
    to it per request), at most DEPLOY_DRAIN_SECONDS; prints @@drained<TAB>seconds."""
    if not live_port:
        return "printf '@@drained\\t0\\n'"
    return "; ".join([
        "started=$(date +%s.%N)",
        f"if command -v ss >/dev/null; then for _ in $(seq {config.drain_seconds * 10}); do "
        f"[ -z \"$(ss -Htn state established '( dport = :{live_port} )' 2>/dev/null)\" ] && break; sleep 0.1; done; "
        "else sleep 2; fi",
        "awk -v a=\"$(date +%s.%N)\" -v b=\"$started\" 'BEGIN {print \"@@drained\\t\" a - b}'",
    ])


def _gate_report(text: str) -> dict:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return {"ok": False, "failed": "start", "detail": "no health report (see pm2 logs)"}
