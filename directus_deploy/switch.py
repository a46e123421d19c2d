"""The switch: `current` moves to the new release with one rename, Directus restarts from the
release's real path, and the health gate decides. A failed gate puts the previous release
back the same way and says so."""

from __future__ import annotations

import posixpath

from .errors import DeployError, RolledBack
from .remote import q
from .service import Service


def current_release(remote, layout) -> str | None:
    target = remote.read_link(layout.current)
    return posixpath.basename(target) if target else None


def _switch_and_start(remote, layout, service: Service, release_id: str, expected: list[str]) -> dict:
    """One round trip: the rename, the restart, and the health gate. Raises if unhealthy."""
    release_dir = layout.release_dir(release_id)
    temp = f"{layout.current}.new"
    # relative target: the layout keeps working if DEPLOY_PATH is moved or mounted elsewhere
    script = "\n".join([
        f"test -d {q(release_dir)}",
        f"ln -sfn -- {q(posixpath.join('releases', release_id))} {q(temp)} && mv -T -- {q(temp)} {q(layout.current)}",
        'started=$(date +%s.%N)',
        service.start(release_dir),
        'printf "\n@@restart-issued\t%s\n" "$(awk -v a="$(date +%s.%N)" -v b="$started" \'BEGIN {print a - b}\')"',
        f"{service.health_check(expected)} || true",
    ])
    result = remote.script(script, what=f"switch to {release_id} and restart Directus", secret_env=service.secret_env)
    report = service.health_report(remote, result)
    issued = next((l.split("\t")[1] for l in result.stdout.splitlines() if l.startswith("@@restart-issued\t")), "0")
    # Directus's own restart: the process manager's start, then the boot until healthy
    report["restart_seconds"] = float(issued or 0) + report["seconds"]
    return report


def switch_to(session, release_id: str, expected_extensions: list[str], previous: str | None = None) -> dict:
    """Switch, restart, health gate. On failure: switch back and restart the previous release,
    then raise RolledBack (or DeployError if there was nothing to go back to)."""
    remote, layout = session.remote(), session.layout
    service = Service(session.config)
    previous = previous or current_release(remote, layout)
    try:
        report = _switch_and_start(remote, layout, service, release_id, expected_extensions)
    except DeployError as failure:
        if not previous or previous == release_id:
            raise
        session.console.say(f"    {failure}")
        session.console.say(f"    switching back to {previous}")
        _switch_and_start(remote, layout, service, previous, [])
        raise RolledBack(f"{release_id} failed its health gate ({failure}); production is back on {previous}") from None
    report["previous"] = previous
    return report
