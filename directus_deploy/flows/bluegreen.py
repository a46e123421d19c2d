"""The blue/green switch behind nginx: a release goes live with no failed request.

    start the new release on the idle color's port  (the serving instance is not touched)
    -> health gate on that port: ping, health with the token, extensions loaded
    -> the upstream include names the new port (traffic/nginx.py); `nginx -t`; `current` moves; graceful reload
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

from directus_deploy.core.errors import DeployError, RolledBack
from directus_deploy.host.remote import q
from directus_deploy.host.script import Script, emit, parse_results
from directus_deploy.runtimes import instances
from directus_deploy.runtimes.base import Instance
from directus_deploy.runtimes.service import gate_report
from directus_deploy.state.lock import serial_lock
from directus_deploy.state.releases import point_current
from directus_deploy.traffic import nginx


def switch_to(session, release_id: str, expected_extensions: list[str], previous: str | None = None) -> dict:
    """Start `release_id` on the idle color, gate it, move nginx to it, retire the old one.
    Raises RolledBack if it never went live (the old instance serving throughout)."""
    console = session.console
    upstream = nginx.check_ready(session)
    every = session.runtime.instances()
    live = instances.serving(every, upstream.live_port)
    new = instances.idle(every, live)
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


def _start_and_gate(session, new: Instance, release_id: str, expected: list[str],
                    live_port: int | None) -> dict:
    service, layout = session.service, session.layout
    script = "\n".join([
        serial_lock(layout),
        _still_serving(session.config, live_port),
        session.runtime.start_instance(new, layout.release_dir(release_id)),
        f"if ! {service.health_check(expected, instance=new)}; then",
        f"  {session.runtime.retire(new)}",
        "fi",
    ])
    result = session.remote().script(script, what=f"start {release_id} on {new} and pass the health gate",
                                     secret_env=service.secret_env, check=False)
    if not result.ok:
        raise DeployError(f"{session.remote().name}: starting {new} failed: {session.remote().error_line(result)}")
    return _gate_report(result.stdout)


def _move_traffic(session, live: Instance, new: Instance, release_id: str, expected: list[str],
                  live_port: int | None) -> dict:
    """One script that runs to its end whatever happens to this side (critical): the
    include, nginx -t, `current`, the reload, the check through nginx, the drain, the stop."""
    config, layout, service = session.config, session.layout, session.service
    include, current = config.nginx_upstream_file, layout.current
    script = Script(
        serial_lock(layout),
        _still_serving(config, live_port),
        f"was=$(readlink -- {q(current)} || true)",
        f"if [ -f {q(include)} ]; then cp -p -- {q(include)} {q(include + '.before')}; fi",
        nginx.write_include(config, new.port),
        f"if ! out=$({{ {nginx.nginx(config, '-t')}; }} 2>&1); then",
        f"  {nginx.restore_include(config)}; {session.runtime.retire(new)}",
        "  echo \"nginx -t failed with the new upstream: $(printf '%s' \"$out\" | tail -1)\" >&2; exit 1",
        "fi",
        point_current(layout, release_id),
        nginx.reload_and_wait(config),
        f"if ! {service.health_check(expected, timeout=30)} > {q(layout.tool_dir + '/bluegreen-gate')}; then",
        "  # through nginx it does not work: everything back as it was; the old instance never stopped",
        f"  cat {q(layout.tool_dir + '/bluegreen-gate')}",
        f"  {nginx.restore_include(config)}",
        f"  if [ -n \"$was\" ]; then {point_current(layout, target_word=WAS)}; fi",
        f"  {nginx.reload_and_wait(config)}",
        f"  {session.runtime.retire(new)}",
        f"  {emit('reverted')}; exit 0",
        "fi",
        f"cat {q(layout.tool_dir + '/bluegreen-gate')}",
        f"rm -f -- {q(include + '.before')}",
        nginx.drain(config, live_port),
        session.runtime.retire(live),
    ).text()
    result = session.remote().script(script, what=f"move nginx to {new} and retire {live}", critical=True,
                                     secret_env=service.secret_env, check=False)
    remote = session.remote()
    if not result.ok:
        raise RolledBack(f"{release_id} did not go live: {remote.error_line(result)}; {live} still serves")
    gate = _gate_report(result.stdout)
    results = parse_results(result.stdout)
    if results.has("reverted"):
        raise RolledBack(f"{release_id} passed its gate on {new} but not through nginx ({gate.get('failed')}: "
                         f"{gate.get('detail')}, {config.directus_url}); nginx and current are back, {live} still serves")
    drained = float(results.first("drained")["seconds"]) if results.has("drained") else 0.0
    return {"gate": gate, "drained": drained}


WAS = '"$was"'  # the shell variable holding where `current` pointed before the move


def _still_serving(config, live_port: int | None) -> str:
    """Shell refusing to go on if another run moved nginx since the state was read."""
    expected = str(live_port) if live_port else ""
    return (f"if [ \"$({nginx.live_port_shell(config)})\" != {q(expected)} ]; then "
            "echo 'the nginx upstream changed while this run was preparing; run it again' >&2; exit 1; fi")


def _gate_report(text: str) -> dict:
    return gate_report(text) or {"ok": False, "failed": "start", "detail": "no health report (see the runtime's log of the instance)"}
