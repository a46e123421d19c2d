"""One deploy at a time: an atomic `mkdir` lock on the host that says who holds it.

`mkdir` either creates the folder or fails, atomically, so two runs can never both get it
(a check-then-write lock could). The owner (user, machine, pid, what, since) is written inside.
A stale lock is never broken silently: `fab deploy.unlock --force` shows its owner first.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from directus_deploy.core.errors import Refused
from directus_deploy.host.remote import q


def owner_record(purpose: str) -> dict:
    return {
        "user": getpass.getuser(),
        "machine": socket.gethostname(),
        "pid": os.getpid(),
        "purpose": purpose,
        "since": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "token": secrets.token_hex(8),  # tells our lock from a later one after a --force
    }


def describe_owner(owner: dict | None) -> str:
    if not owner:
        return "an unknown owner (no owner.json: a run was interrupted while taking the lock)"
    age = ""
    try:
        since = datetime.strptime(owner["since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        minutes = (datetime.now(timezone.utc) - since).total_seconds() / 60
        age = f", {minutes:.0f} min ago" if minutes >= 1 else ", just now"
    except (KeyError, ValueError):
        pass
    return (
        f"{owner.get('user')}@{owner.get('machine')} (pid {owner.get('pid')}) for "
        f"{owner.get('purpose')} since {owner.get('since')}{age}{_stale(owner)}"
    )


def _stale(owner: dict) -> str:
    """Say so when the owner ran on this machine and its process is gone (killed, crashed)."""
    if owner.get("machine") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return ""
    try:
        os.kill(owner["pid"], 0)
    except ProcessLookupError:
        return "; that process is gone: the lock is stale"
    except PermissionError:
        pass
    return ""


def read_owner(remote, layout) -> tuple[bool, dict | None]:
    result = remote.query(
        f"test -d {q(layout.lock_dir)} || {{ echo FREE; exit 0; }}; cat -- {q(layout.lock_dir + '/owner.json')} 2>/dev/null; true",
        what="read the deploy lock",
    )
    if result.stdout.strip() == "FREE":
        return False, None
    try:
        return True, json.loads(result.stdout)
    except ValueError:
        return True, None


def acquire(remote, layout, owner: dict) -> dict:
    script = (
        f"mkdir -p {q(layout.tool_dir)} && "
        f"if mkdir -- {q(layout.lock_dir)} 2>/dev/null; then cat > {q(layout.lock_dir + '/owner.json')} && echo TAKEN; "
        f"else echo HELD; cat -- {q(layout.lock_dir + '/owner.json')} 2>/dev/null; fi"
    )
    result = remote.run(script, stdin=json.dumps(owner), what="take the deploy lock")
    if result.skipped:
        return owner
    first, _, rest = result.stdout.partition("\n")
    if first.strip() != "TAKEN":
        try:
            holder = json.loads(rest)
        except ValueError:
            holder = None
        raise Refused(
            f"{remote.name}: another deploy holds the lock: {describe_owner(holder)}; wait for it, "
            "or if it is dead, fab deploy.unlock --force"
        )
    return owner


def release(remote, layout, owner: dict) -> None:
    """Remove the lock only if it is still ours (a --force'd lock may belong to someone else now)."""
    owner_file = q(layout.lock_dir + "/owner.json")
    script = f"if grep -qF {q(owner['token'])} {owner_file} 2>/dev/null; then rm -rf -- {q(layout.lock_dir)}; fi"
    remote.run(script, what="release the deploy lock")


def break_lock(remote, layout) -> None:
    remote.run(["rm", "-rf", "--", layout.lock_dir], what="break the deploy lock")


@contextmanager
def held(session, purpose: str):
    """Hold the deploy lock for the block on every host the task works on (taken in order,
    the ones taken given back if another host's is held), unless this run already holds it
    (nested steps). A clean-up run against one host of several must not delete a release's
    work in progress there."""
    hosts = session.lock_hosts()
    locks = session.locks  # {host: owner} held by this run
    if all(name in locks for name, _ in hosts):
        yield locks[hosts[0][0]]
        return
    owner = owner_record(purpose)
    taken = []
    started = time.monotonic()
    try:
        for name, remote in hosts:
            if name not in locks:
                acquire(remote, session.layout, owner)
                locks[name] = owner
                taken.append((name, remote))
        yield owner
    finally:
        # also on Ctrl-C and errors: the lock must not outlive the run that took it
        for name, remote in reversed(taken):
            locks.pop(name, None)
            try:
                release(remote, session.layout, owner)
            except Exception as why:  # noqa: BLE001 - report, do not hide the original error
                session.console.say(f"warning: could not release the deploy lock on {name} ({why}); "
                                    f"held {time.monotonic() - started:.0f}s; fab deploy.unlock --force")


def serial_lock(layout, wait_only: bool = False) -> str:
    """Shell taking the host's inner lock, held to the end of the script: scripts that must not
    overlap (migrations, a restore, a switch and restart) wait for each other, even when one
    was left running on the host by a run that was interrupted. `wait_only`: wait for such a
    script to end without creating anything (for read-only checks, also under --dry-run)."""
    path = q(layout.tool_dir + "/serial.flock")
    if wait_only:
        return f"if [ -e {path} ]; then exec 9< {path} && flock 9; fi"
    return f"mkdir -p {q(layout.tool_dir)} && exec 9> {path} && flock 9"
