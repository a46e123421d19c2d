"""state.lock and state.deploylog through a Remote whose SSH channel is a local shell: the mkdir
lock taken once, refused to a second run naming its owner, released only by its owner; the deploy
log appended and read back, damaged lines skipped; the host's inner flock."""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.state import deploylog, lock
from directus_deploy.state.layout import Layout

from .local import LocalRemote, run


def test_the_lock_is_taken_once_and_refused_to_a_second_run(tmp_path):
    layout, remote = Layout(str(tmp_path)), LocalRemote()
    first = lock.owner_record("deploy v1")
    lock.acquire(remote, layout, first)
    assert json.loads(open(os.path.join(layout.lock_dir, "owner.json")).read()) == first
    assert lock.read_owner(remote, layout) == (True, first)
    with pytest.raises(Refused) as caught:
        lock.acquire(remote, layout, lock.owner_record("rollback"))
    assert "another deploy holds the lock" in str(caught.value) and "for deploy v1" in str(caught.value)


def test_only_the_owner_releases_the_lock(tmp_path):
    layout, remote = Layout(str(tmp_path)), LocalRemote()
    owner = lock.owner_record("deploy")
    lock.acquire(remote, layout, owner)
    lock.release(remote, layout, lock.owner_record("someone else"))
    assert os.path.isdir(layout.lock_dir)
    lock.release(remote, layout, owner)
    assert not os.path.exists(layout.lock_dir)
    assert lock.read_owner(remote, layout) == (False, None)


def test_a_lock_without_owner_file_is_held_by_an_unknown_owner(tmp_path):
    layout, remote = Layout(str(tmp_path)), LocalRemote()
    os.makedirs(layout.lock_dir)
    assert lock.read_owner(remote, layout) == (True, None)
    assert "unknown owner" in lock.describe_owner(None)
    lock.break_lock(remote, layout)
    assert not os.path.exists(layout.lock_dir)


def test_the_owner_is_described_with_its_age_and_staleness():
    since = (datetime.now(timezone.utc) - timedelta(minutes=42)).strftime("%Y-%m-%dT%H:%M:%SZ")
    gone = {"user": "ana", "machine": socket.gethostname(), "pid": 2 ** 22 + 7, "purpose": "deploy", "since": since}
    text = lock.describe_owner(gone)
    assert text.startswith("ana@") and "for deploy since" in text and "42 min ago" in text and "stale" in text
    alive = {**gone, "pid": os.getpid(), "since": "garbage"}
    assert "stale" not in lock.describe_owner(alive) and "min ago" not in lock.describe_owner(alive)
    elsewhere = {**gone, "machine": "another-machine"}
    assert "stale" not in lock.describe_owner(elsewhere)


def test_under_dry_run_the_lock_is_not_taken(tmp_path):
    layout = Layout(str(tmp_path))
    lock.acquire(LocalRemote(dry_run=True), layout, lock.owner_record("deploy"))
    assert not os.path.exists(layout.tool_dir)


def test_the_serial_lock_makes_a_second_script_wait(tmp_path):
    layout = Layout(str(tmp_path))
    os.makedirs(layout.tool_dir)
    held = lock.serial_lock(layout)
    out = run(f"{held}; flock -n {tmp_path}/.deploy/serial.flock true && echo free || echo busy").stdout
    assert out.strip() == "busy"
    assert run(f"{lock.serial_lock(layout, wait_only=True)}; echo waited").stdout.strip() == "waited"


def test_the_deploy_log_appends_lines_and_reads_them_back(tmp_path):
    layout, remote = Layout(str(tmp_path)), LocalRemote()
    first = deploylog.append(remote, layout, {"action": "release", "release": "r1", "outcome": "ok", "note": "a\nb"})
    deploylog.append(remote, layout, {"action": "rollback", "release": "r0", "outcome": "ok"})
    entries = deploylog.read_entries(remote, layout)
    assert [e["action"] for e in entries] == ["release", "rollback"] and entries[0] == first
    assert first["by"] == deploylog.who() and first["at"].endswith("Z")
    assert oct(os.stat(layout.log_file).st_mode & 0o777) == "0o600"


def test_a_damaged_log_line_is_skipped_and_no_log_is_empty(tmp_path):
    layout, remote = Layout(str(tmp_path)), LocalRemote()
    assert deploylog.read_entries(remote, layout) == []
    os.makedirs(layout.tool_dir)
    with open(layout.log_file, "w") as handle:
        handle.write('{"action": "release"}\n{"action": "rel\n\n{"action": "switch"}\n')
    assert [e["action"] for e in deploylog.read_entries(remote, layout)] == ["release", "switch"]
