"""The switch: `current` moves to the new release with one rename, Directus restarts from the
release's real path, and the health gate decides. A failed gate puts the previous release back
the same way and says so.

The whole of it (switch, restart, gate, and the switch back) runs as one script on the host
that ignores hangups: if this machine dies or the SSH link drops halfway, the host still ends
on a healthy release instead of a stopped Directus or an unchecked one.
"""

from __future__ import annotations

import posixpath

from directus_deploy.core.errors import DeployError, RolledBack
from directus_deploy.flows import bluegreen
from directus_deploy.host.remote import q
from directus_deploy.host.script import Results, Script, emit, parse_results
from directus_deploy.runtimes.service import Service, gate_report
from directus_deploy.state.lock import serial_lock
from directus_deploy.state.releases import point_current


def current_release(remote, layout) -> str | None:
    target = remote.read_link(layout.current)
    return posixpath.basename(target) if target else None


def _go_live(layout, service: Service, release_id: str, expected: list[str], report: str) -> list[str]:
    """Shell (one && chain): point `current` at the release, restart from its real path, run
    the gate into the file `report` (after a `restart-issued` record); true only when every
    part worked and the gate passed. Needs `emit` (a Script)."""
    parts = [
        f"test -d {q(layout.release_dir(release_id))}",
        point_current(layout, release_id),
        "started=$(date +%s.%N)",
        service.start(layout.release_dir(release_id)),
        emit("restart-issued", seconds='"$(awk -v a="$(date +%s.%N)" -v b="$started" \'BEGIN {print a - b}\')"')
        + f" > {q(report)}",
        f"{service.health_check(expected)} >> {q(report)}",
    ]
    return " && ".join("{ " + part + "; }" for part in parts)


def switch_to(session, release_id: str, expected_extensions: list[str], previous: str | None = None,
              method: str | None = None) -> dict:
    """Switch, restart, health gate; on failure the host switches back to `previous` (default:
    the current release) and restarts it, then RolledBack is raised here.

    `method` (default: the session's): `restart` restarts the serving instance in place;
    `bluegreen` starts the release beside it and moves nginx over (flows/bluegreen.py)."""
    if (method or session.switch_method) == "bluegreen":
        return bluegreen.switch_to(session, release_id, expected_extensions, previous)
    remote, layout = session.remote(), session.layout
    service = session.service
    previous = previous or current_release(remote, layout)
    report, back = f"{layout.tool_dir}/switch-report", f"{layout.tool_dir}/switch-back-report"
    going = _go_live(layout, service, release_id, expected_extensions, report)
    # what Directus logged, read before anything else restarts it
    recent_log = service.recent_log()
    log = f"  {recent_log} || true" if recent_log else ":"
    lines = [serial_lock(layout), f"rm -f {q(report)} {q(back)}", f"if {going}; then cat {q(report)}"]
    if previous and previous != release_id:
        returning = _go_live(layout, service, previous, [], back)
        lines += ["else", log, f"  cat {q(report)} 2>/dev/null; echo; {emit('switched-back')}",
                  f"  {returning} || true; cat {q(back)} 2>/dev/null || true"]
    else:
        lines += ["else", log, f"  cat {q(report)} 2>/dev/null || true"]
    lines.append("fi")
    result = remote.script(Script(*lines).text(), critical=True, secret_env=service.secret_env,
                           what=f"switch to {release_id}, restart Directus and check its health")
    first, back_part = parse_results(result.stdout).split_at("switched-back")
    gate = _report(first)
    logged = [record.get("line", "") for record in first.all("log-line")]
    if logged and not gate.get("ok"):
        session.console.say(f"    {release_id}: Directus's last log lines:")
        for line in logged:
            session.console.say(f"      | {remote.scrub(line)}")
    if back_part is not None:
        session.console.say(f"    {release_id} failed its health gate: {gate.get('failed')}: {gate.get('detail')}")
        session.console.say(f"    switched back to {previous}")
        again = _report(back_part)
        if not again.get("ok"):
            raise DeployError(f"{release_id} failed its health gate and {previous} is not healthy either "
                              f"({again.get('failed')}: {again.get('detail')}); restore from a backup")
        raise RolledBack(f"{release_id} failed its health gate ({gate.get('failed')}: {gate.get('detail')}); "
                         f"production is back on {previous}")
    if not gate.get("ok"):
        raise DeployError(f"{remote.name}: health gate failed at {gate.get('failed')}: {gate.get('detail')} "
                          f"({session.config.directus_url})")
    gate["previous"] = previous
    gate["strategy"] = "restart"
    return gate


def _report(results: Results) -> dict:
    """The gate's JSON line and the restart timing reported before it."""
    issued = float((results.first("restart-issued") or {}).get("seconds") or 0)
    report = gate_report("\n".join(results.lines))
    if not report:
        return {"ok": False, "failed": "restart", "detail": "no health report (see the process manager's log)"}
    # Directus's own restart: the process manager's start, then the boot until healthy
    report["restart_seconds"] = issued + report.get("seconds", 0.0)
    return report
