"""What keeps a rehearsal's copy to itself, run in a local bash: production's Redis settings left
out of the copy's settings, and a teardown that stops only the processes the rehearsal started
(a pid a killed run left behind may belong to another process by now)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from directus_deploy.flows.rehearsal import REDIS_SETTING, start_time, teardown
from directus_deploy.host.remote import q

from .local import run, strict

PRODUCTION_ENV = """\
DB_CLIENT=sqlite3
REDIS=redis://:s3cret@cache:6379
REDIS_HOST=cache
  export CACHE_REDIS=redis://cache:6379/1
RATE_LIMITER_REDIS=redis://cache:6379/2
SYNCHRONIZATION_REDIS=redis://cache:6379/3
CACHE_STORE=redis
REDIS_ENABLED=true
SECRET=keeps-its-value
PREDIS_NOTE=not a redis setting
"""


def test_every_redis_setting_is_left_out_of_the_copy_and_named(tmp_path):
    env = tmp_path / ".env"
    env.write_text(PRODUCTION_ENV)
    kept = run(strict(f"grep -Ev {q(REDIS_SETTING)} -- {q(str(env))}")).stdout
    assert kept == "DB_CLIENT=sqlite3\nCACHE_STORE=redis\nSECRET=keeps-its-value\nPREDIS_NOTE=not a redis setting\n"
    names = run(strict(f"grep -Eo {q(REDIS_SETTING)} -- {q(str(env))} | "
                       "sed -E 's/^[[:space:]]*(export[[:space:]]+)?//; s/[[:space:]]*=$//'")).stdout.split()
    assert names == ["REDIS", "REDIS_HOST", "CACHE_REDIS", "RATE_LIMITER_REDIS", "SYNCHRONIZATION_REDIS", "REDIS_ENABLED"]


def started(pid: int) -> str:
    return run(start_time(str(pid))).stdout.strip()


@pytest.fixture
def processes():
    made = []

    def spawn(*command: str) -> subprocess.Popen:
        process = subprocess.Popen(list(command), start_new_session=True)  # a process group of its own
        made.append(process)
        return process

    yield spawn
    for process in made:
        process.kill()
        process.wait()


def test_teardown_stops_its_own_groups_and_never_a_reused_pid(tmp_path, processes):
    ours = processes("bash", "-c", "exec -a node-rehearsal sleep 300")
    reused = processes("sleep", "300")  # a pid a killed run recorded, taken by another process since
    old_format = processes("sleep", "301")  # a pid recorded without its start time
    time.sleep(0.2)
    work = tmp_path / "rehearsal"
    work.mkdir()
    (work / "pids").write_text(f"{ours.pid} {started(ours.pid)}\n{reused.pid} 1\n{old_format.pid}\n")
    engine = SimpleNamespace(prelude=lambda work, must_exist=True: "", rehearsal_drop=lambda work: "true")
    reaper = threading.Thread(target=ours.wait)  # on a host, init reaps them: no zombie keeps the group
    reaper.start()
    run(strict(teardown(engine, str(work))))
    reaper.join(timeout=10)
    assert ours.returncode is not None
    assert reused.poll() is None and old_format.poll() is None
    assert not work.exists()


def test_start_time_names_a_process_whose_name_holds_spaces_and_parentheses(tmp_path, processes):
    program = tmp_path / "a) b (c"  # the name /proc/<pid>/stat shows in parentheses
    program.symlink_to(shutil.which("sleep"))
    odd = processes(str(program), "300")
    time.sleep(0.2)
    expected = Path(f"/proc/{odd.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    assert started(odd.pid) == expected and expected.isdigit()
