"""The step runner of flows/pipeline.py, with fake steps that record what they are called with:
no host, no network."""

from __future__ import annotations

import threading
import time

import pytest

from directus_deploy.flows.pipeline import SUMMARY_HEADERS, Pipeline, Step, on_each_host, summary_rows


class Host:
    def __init__(self, name):
        self.name = name


class Run:
    """A context: the fake fleet, and every call the steps make."""

    def __init__(self, hosts=("a", "b", "c"), batch=1):
        self.fleet = [Host(name) for name in hosts]
        self.batch = batch
        self.calls = []
        self.lock = threading.Lock()

    def note(self, *what):
        with self.lock:
            self.calls.append(what)


def step(name, fails=False, undo=True, undo_fails=False, **kwargs):
    def run(ctx):
        ctx.note("run", name)
        if fails:
            raise RuntimeError(f"{name} broke")

    def undo_it(ctx):
        ctx.note("undo", name)
        if undo_fails:
            raise OSError(f"undo of {name} broke")

    return Step(name, run, undo=undo_it if undo else None, plan=f"does {name}", **kwargs)


def host_step(name, scope="each", fails_on=(), sleep=0.0):
    def run(ctx, host):
        ctx.note("run", name, host.name)
        time.sleep(sleep)
        if host.name in fails_on:
            raise PermissionError(f"{host.name}: {name} refused")
        return host.name

    return Step(name, run, scope=scope, undo=lambda ctx: ctx.note("undo", name), plan=f"does {name} on each host")


def pipeline(*steps):
    return Pipeline(list(steps), hosts=lambda run: run.fleet, batch=lambda run: run.batch)


def runs(run):
    return [call[1] for call in run.calls if call[0] == "run"]


def undos(run):
    return [call[1] for call in run.calls if call[0] == "undo"]


def test_steps_run_in_their_declared_order():
    run = Run()
    results = pipeline(step("one"), step("two"), step("three")).run(run)
    assert runs(run) == ["one", "two", "three"]
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert undos(run) == []


def test_a_failure_undoes_only_the_completed_steps_newest_first():
    run = Run()
    flow = pipeline(step("one"), step("two"), step("three", fails=True), step("four"))
    with pytest.raises(RuntimeError, match="three broke"):
        flow.run(run)
    assert runs(run) == ["one", "two", "three"]  # four never ran
    assert undos(run) == ["two", "one"]  # not three (it did not complete), not four


def test_steps_without_undo_are_passed_over():
    run = Run()
    flow = pipeline(step("one"), step("two", undo=False), step("three", fails=True))
    with pytest.raises(RuntimeError):
        flow.run(run)
    assert undos(run) == ["one"]


def test_a_failing_first_step_undoes_nothing():
    run = Run()
    with pytest.raises(RuntimeError, match="one broke"):
        pipeline(step("one", fails=True), step("two")).run(run)
    assert undos(run) == []


def test_an_undo_that_fails_does_not_hide_the_original_error_nor_stop_the_others():
    run = Run()
    said = []
    flow = pipeline(step("one"), step("two", undo_fails=True), step("three", fails=True))
    with pytest.raises(RuntimeError, match="three broke"):
        flow.run(run, say=said.append)
    assert undos(run) == ["two", "one"]
    assert any("could not undo two" in line and "undo of two broke" in line for line in said), said
    assert any("undone: one" in line for line in said), said


def test_ctrl_c_undoes_too_and_is_raised_as_it_came():
    run = Run()

    def interrupted(ctx):
        raise KeyboardInterrupt

    report = []
    flow = pipeline(step("one"), Step("two", interrupted))
    with pytest.raises(KeyboardInterrupt):
        flow.run(run, report=report)
    assert undos(run) == ["one"]
    assert [r.outcome for r in report] == ["ok", "interrupted"]


def test_the_report_holds_outcomes_and_undos_when_the_run_fails():
    run = Run()
    report = []
    with pytest.raises(RuntimeError):
        pipeline(step("one"), step("two", fails=True), step("three")).run(run, report=report)
    assert [(r.name, r.outcome, r.undo) for r in report] == [
        ("one", "ok", "undone"), ("two", "failed", ""), ("three", "not run", "")]
    rows = summary_rows(report)
    assert len(SUMMARY_HEADERS) == len(rows[0])
    assert rows[0][:3] == ["ok, undone", "one", "primary"] and rows[1][0] == "failed"


def test_dry_run_prints_every_plan_and_runs_nothing():
    run = Run()
    said = []
    flow = pipeline(step("one"), host_step("two"), step("three", fails=True))
    results = flow.run(run, say=said.append, dry_run=True)
    assert run.calls == []
    assert said == ["1. one (primary): does one", "2. two (each): does two on each host", "3. three (primary): does three"]
    assert [r.outcome for r in results] == ["planned"] * 3
    assert flow.plan()[1] == ["2.", "two", "each", "does two on each host"]


def test_each_runs_on_every_host_at_once():
    run = Run(hosts=("a", "b", "c"))
    started = time.monotonic()
    pipeline(host_step("upload", sleep=0.3)).run(run)
    assert sorted(call[2] for call in run.calls) == ["a", "b", "c"]
    assert time.monotonic() - started < 0.8  # in parallel, not 0.9 s one after the other


def test_each_failing_on_one_host_names_it_and_raises_its_error_after_all_are_done():
    run = Run(hosts=("a", "b", "c"))
    said = []
    report = []
    flow = pipeline(step("before"), host_step("upload", fails_on=("b",)), step("after"))
    with pytest.raises(PermissionError, match="b: upload refused"):
        flow.run(run, say=said.append, report=report)
    assert sorted(call[2] for call in run.calls if call[1] == "upload") == ["a", "b", "c"]  # the others finished
    assert report[1].failed_on == {"b": "b: upload refused"}
    assert any("failed on b" in line for line in said), said
    assert "after" not in runs(run) and undos(run) == ["before"]
    assert "failed on b" in summary_rows(report)[1][0]


def test_each_with_several_failures_raises_the_first_hosts_and_reports_all():
    run = Run(hosts=("a", "b", "c"))
    report = []
    with pytest.raises(PermissionError, match="a: upload refused"):
        pipeline(host_step("upload", fails_on=("c", "a"))).run(run, report=report)
    assert list(report[0].failed_on) == ["a", "c"]


def test_a_step_may_name_its_own_hosts():
    run = Run(hosts=("primary", "b", "c"))
    flow = Pipeline([Step("others", lambda ctx, host: ctx.note("run", "others", host.name), scope="each",
                          hosts=lambda ctx: ctx.fleet[1:])], hosts=lambda ctx: ctx.fleet)
    flow.run(run)
    assert sorted(call[2] for call in run.calls) == ["b", "c"]


def test_rolling_goes_a_batch_at_a_time_and_stops_at_the_batch_that_fails():
    run = Run(hosts=("a", "b", "c", "d", "e"), batch=2)
    with pytest.raises(PermissionError, match="c: switch refused"):
        pipeline(host_step("switch", scope="rolling", fails_on=("c",))).run(run)
    switched = [call[2] for call in run.calls if call[0] == "run"]
    assert sorted(switched[:2]) == ["a", "b"] and sorted(switched[2:]) == ["c", "d"]  # e never started


def test_rolling_one_host_at_a_time_keeps_the_host_order():
    run = Run(hosts=("a", "b", "c"), batch=1)
    pipeline(host_step("switch", scope="rolling")).run(run)
    assert [call[2] for call in run.calls] == ["a", "b", "c"]


def test_no_hosts_means_nothing_to_do():
    run = Run(hosts=())
    results = pipeline(host_step("each"), host_step("roll", scope="rolling")).run(run)
    assert run.calls == [] and [r.outcome for r in results] == ["ok", "ok"]


def test_each_step_is_timed():
    run = Run()
    slow = Step("slow", lambda ctx: time.sleep(0.2))
    results = pipeline(step("quick"), slow).run(run)
    assert results[0].seconds < 0.1
    assert 0.2 <= results[1].seconds < 1
    assert summary_rows(results)[1][3] == f"{results[1].seconds:.1f}s"


def test_a_failed_step_is_timed_too():
    def slow_failure(ctx):
        time.sleep(0.15)
        raise RuntimeError("late")

    report = []
    with pytest.raises(RuntimeError):
        pipeline(Step("late", slow_failure)).run(Run(), report=report)
    assert report[0].outcome == "failed" and report[0].seconds >= 0.15


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="scope"):
        Step("x", lambda ctx: None, scope="everywhere")
    with pytest.raises(ValueError, match="share a name"):
        Pipeline([step("x"), step("x")])


def test_on_each_host_keeps_host_order_in_its_results():
    hosts = [Host(name) for name in "abc"]
    assert on_each_host(hosts, lambda host: (time.sleep(0.05 * (3 - len(host.name))), host.name)[1]) == ["a", "b", "c"]
    assert on_each_host([], lambda host: 1 / 0) == []


def test_the_release_is_declared_top_to_bottom():
    """The release reads as README's chain, guards to unlock, the lock given back on failure."""
    from directus_deploy.flows.release import RELEASE

    names = [s.name for s in RELEASE.steps]
    assert names[0] == "check the tag" and names[-1] == "unlock"
    assert names.index("lock") < names.index("back up") < names.index("deploy the code") < names.index("migrate") \
        < names.index("switch") < names.index("verify") < names.index("record") < names.index("clean up")
    assert all(s.plan for s in RELEASE.steps)
    undoable = [s.name for s in RELEASE.steps if s.undo]
    assert undoable == ["lock", "deploy the code"]
    # beside the backup, one after another
    assert [s.name for s in RELEASE.steps if s.beside] == ["deploy the code", "check the extensions", "read the schema plan"]


def fake_release(monkeypatch, *, dry_run=False, fails=None):
    """flows/release.py's RELEASE with every step function replaced by one that records its call."""
    import io
    from types import SimpleNamespace

    from directus_deploy.core.console import Console
    from directus_deploy.core.errors import RolledBack
    from directus_deploy.flows import release as flow

    calls = []

    def fake(name):
        def called(run, *rest):
            calls.append(name if not rest else (name, rest[0]))
            if name == fails:
                raise RolledBack(f"{name} failed")
        return called

    for name in ("check_tag", "back_up", "deploy_code", "check_extensions", "plan_schema", "confirm_schema", "rehearse",
                 "migrate", "apply_system_config", "switch", "verify", "record", "discard_unused_release"):
        monkeypatch.setattr(flow, name, fake(name))
    monkeypatch.setattr(flow, "connect", lambda run: setattr(run, "fleet", ["p", "q"]))
    monkeypatch.setattr(flow, "check_host", lambda view, run: calls.append(("check_host", view)))
    monkeypatch.setattr(flow, "clean_up_on", lambda run, view: calls.append(("clean_up_on", view)))
    monkeypatch.setattr(flow, "take_lock", lambda run: (calls.append("take_lock"), run.lock.callback(calls.append, "unlock")))
    stream = io.StringIO()
    session = SimpleNamespace(dry_run=dry_run, config=SimpleNamespace(rehearse="never"), console=Console(stream=stream))
    return flow, session, calls, stream


def test_the_release_runs_its_steps_in_order_and_unlocks_last(monkeypatch):
    flow, session, calls, _ = fake_release(monkeypatch)
    run = flow.release(session, "v2", batch=1)
    names = [c if isinstance(c, str) else c[0] for c in calls]
    # while the backup runs: the code, its extensions and the schema plan, in that order
    meanwhile = names[4:8]
    assert sorted(meanwhile) == sorted(["back_up", "deploy_code", "check_extensions", "plan_schema"])
    assert [n for n in meanwhile if n != "back_up"] == ["deploy_code", "check_extensions", "plan_schema"]
    assert names[:4] + names[8:] == [
        "check_tag", "check_host", "check_host", "take_lock", "confirm_schema",
        "rehearse", "migrate", "apply_system_config", "switch", "verify", "record",
        "clean_up_on", "clean_up_on", "unlock"]
    assert ("check_host", "p") == calls[1] and sorted(c for c in calls if c[0] == "clean_up_on") == [("clean_up_on", "p"), ("clean_up_on", "q")]
    assert [r.outcome for r in run.step_results] == ["ok"] * len(flow.RELEASE.steps)


def test_a_failed_switch_discards_the_unused_release_then_gives_the_lock_back(monkeypatch):
    from directus_deploy.core.errors import RolledBack

    flow, session, calls, stream = fake_release(monkeypatch, fails="switch")
    with pytest.raises(RolledBack, match="switch failed"):
        flow.release(session, "v2")
    assert calls[-3:] == ["switch", "discard_unused_release", "unlock"]
    assert "verify" not in calls and "record" not in calls
    assert "undone: deploy the code" in stream.getvalue() and "undone: lock" in stream.getvalue()


def test_a_refused_backup_discards_the_code_uploaded_meanwhile_and_gives_the_lock_back(monkeypatch):
    from directus_deploy.core.errors import RolledBack

    flow, session, calls, _ = fake_release(monkeypatch, fails="back_up")
    with pytest.raises(RolledBack, match="back_up failed"):
        flow.release(session, "v2")
    assert sorted(calls[-6:-2]) == ["back_up", "check_extensions", "deploy_code", "plan_schema"]
    assert calls[-2:] == ["discard_unused_release", "unlock"] and "confirm_schema" not in calls


def test_a_dry_run_release_prints_its_plan_from_the_declaration(monkeypatch):
    flow, session, calls, stream = fake_release(monkeypatch, dry_run=True)
    flow.release(session, "v2")
    out = stream.getvalue()
    assert "The release, step by step:" in out
    for step in flow.RELEASE.steps:
        assert step.name in out and step.plan in out
    assert calls[-1] == "unlock"  # the steps themselves run, each in its own dry-run way (would ...)


def fake_rollback(monkeypatch, *, dry_run=False, unknown=(), switch_fails=False):
    """flows/rollback.py's ROLLBACK with the host work replaced by fakes that record their calls."""
    import io
    from types import SimpleNamespace

    from directus_deploy.core.console import Console
    from directus_deploy.core.errors import RolledBack
    from directus_deploy.flows import rollback as flow

    calls = []
    target = flow.Target(release="20260101T000000Z-v1", tag="v1", commit="c" * 40, entry={}, present=True,
                         unknown_migrations=list(unknown), migrations_now=["m1"])

    def view(name):
        return SimpleNamespace(name=name, layout=SimpleNamespace(release_dir=lambda r: "/srv/releases/" + r),
                               remote=lambda: SimpleNamespace(is_dir=lambda path: True))

    def fleet():
        calls.append("fleet")
        return [view("p"), view("q")]

    def switch_everywhere(views, release_id, names, current):
        calls.append(("switch", release_id, current, sorted(names)))
        if switch_fails:
            raise RolledBack("q failed its gate")

    monkeypatch.setattr(flow, "choose", lambda session, to_tag: ("20260202T000000Z-v2", target))
    monkeypatch.setattr(flow, "switch_everywhere", switch_everywhere)
    monkeypatch.setattr(flow.steps, "check_host_extensions", lambda v, release_id, manifests=None: ["hello"])
    monkeypatch.setattr(flow.steps, "record", lambda v, entry: calls.append(("record", v.name, entry["outcome"])))
    stream = io.StringIO()
    session = SimpleNamespace(dry_run=dry_run, console=Console(stream=stream), fleet=fleet)
    return flow, session, calls, stream


def test_the_rollback_switches_then_records_on_every_host(monkeypatch):
    flow, session, calls, _ = fake_rollback(monkeypatch)
    outcome = flow.rollback(session, None, False, None)
    assert calls == ["fleet", ("switch", "20260101T000000Z-v1", "20260202T000000Z-v2", ["p", "q"]),
                     ("record", "p", "ok"), ("record", "q", "ok")]
    assert outcome["release"] == "20260101T000000Z-v1" and outcome["from"] == "20260202T000000Z-v2"
    assert outcome["migrations"] == ["m1"] and outcome["hosts"] == ["p", "q"]


def test_a_failed_rollback_switch_is_recorded_as_failed_on_every_host(monkeypatch):
    from directus_deploy.core.errors import RolledBack

    flow, session, calls, _ = fake_rollback(monkeypatch, switch_fails=True)
    with pytest.raises(RolledBack, match="q failed its gate"):
        flow.rollback(session, None, False, None)
    assert calls[-2:] == [("record", "p", "failed"), ("record", "q", "failed")]


def test_a_dry_run_rollback_says_what_it_would_do_and_connects_to_no_host(monkeypatch):
    flow, session, calls, stream = fake_rollback(monkeypatch, dry_run=True)
    assert flow.rollback(session, None, False, None) == {"release": "20260101T000000Z-v1"}
    assert calls == []
    out = stream.getvalue()
    assert "would switch to 20260101T000000Z-v1" in out and "The rollback, step by step:" in out


def test_a_code_only_rollback_over_unknown_migrations_is_refused_before_anything(monkeypatch):
    from directus_deploy.core.errors import Refused

    flow, session, calls, _ = fake_rollback(monkeypatch, unknown=("20990101A",))
    with pytest.raises(Refused, match="--with-db"):
        flow.rollback(session, None, False, None)
    assert calls == []


class FakeRemote:
    """What the config push and the extension hotfix ask of a host, recorded."""

    def __init__(self, calls):
        self.calls = calls

    def write_file(self, path, text, mode):
        self.calls.append(("write", path, text))

    def run(self, command, **kwargs):
        self.calls.append(("run", *command))


def fake_session(calls, stream, **config):
    from types import SimpleNamespace

    from directus_deploy.core.console import Console
    from directus_deploy.state.layout import Layout

    remote = FakeRemote(calls)
    return SimpleNamespace(dry_run=False, remote=lambda: remote, layout=Layout("/srv/d"), switch_method="restart",
                           config=SimpleNamespace(**config), console=Console(stream=stream))


def fake_push(monkeypatch, *, fails=None):
    import io

    from directus_deploy.core.errors import RolledBack
    from directus_deploy.flows import production_env as flow

    calls, stream = [], io.StringIO()

    def maybe_fail(name):
        calls.append(name)
        if name == fails:
            raise RolledBack(f"{name} failed")

    monkeypatch.setattr(flow, "take_backup", lambda session, **kw: (maybe_fail("backup"), {"id": "B"})[1])
    monkeypatch.setattr(flow, "current_release", lambda remote, layout: "R")
    monkeypatch.setattr(flow.steps, "check_host_extensions", lambda session, release: (maybe_fail("check"), ["x"])[1])
    monkeypatch.setattr(flow.steps, "switch", lambda session, release, names, previous=None: maybe_fail("switch"))
    monkeypatch.setattr(flow.steps, "record", lambda session, entry: maybe_fail(("record", entry["outcome"])))
    changes = [flow.Change("CORS_ORIGIN", "add", None, "https://example.com")]
    return flow, fake_session(calls, stream), calls, changes, stream


def test_the_config_push_backs_up_writes_switches_and_records(monkeypatch):
    flow, session, calls, changes, _ = fake_push(monkeypatch)
    assert flow.push(session, "KEY=old\n", changes, "a template") == {"backup": "B", "release": "R"}
    assert [c if isinstance(c, str) else c[:2] for c in calls] == [
        "backup", "check", ("write", "/srv/d/shared/.env"), "switch", ("record", "ok")]
    assert "CORS_ORIGIN=https://example.com" in calls[2][2] and "KEY=old" in calls[2][2]


def test_a_config_push_whose_gate_fails_puts_the_previous_env_back_and_switches_again(monkeypatch):
    from directus_deploy.core.errors import DeployError

    flow, session, calls, changes, _ = fake_push(monkeypatch, fails="switch")
    with pytest.raises(DeployError, match="so did the previous one"):  # the fake's second switch fails too
        flow.push(session, "KEY=old\n", changes, "a template")
    writes = [c[2] for c in calls if isinstance(c, tuple) and c[0] == "write"]
    assert writes[-1] == "KEY=old\n" and calls.count("switch") == 2
    assert not [c for c in calls if isinstance(c, tuple) and c[0] == "record"]


def test_a_config_push_stopped_before_its_switch_writes_nothing_or_puts_the_env_back(monkeypatch):
    from directus_deploy.core.errors import RolledBack

    flow, session, calls, changes, _ = fake_push(monkeypatch, fails="check")
    with pytest.raises(RolledBack):
        flow.push(session, "KEY=old\n", changes, "a template")
    assert not [c for c in calls if isinstance(c, tuple)]  # nothing written
    flow, session, calls, changes, stream = fake_push(monkeypatch)
    monkeypatch.setattr(flow.steps, "switch", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    run = flow.PushRun(session, "KEY=old\n", changes, "a template", written=True)
    flow.put_back(run)
    assert calls[-1] == ("write", "/srv/d/shared/.env", "KEY=old\n") and "previous .env is back" in stream.getvalue()


def test_the_extension_hotfix_is_declared_and_discards_a_release_that_never_went_live(monkeypatch):
    import io

    from directus_deploy.core.errors import Refused
    from directus_deploy.flows import extensions_sync as flow

    assert [s.name for s in flow.EXTENSIONS_SYNC.steps] == [
        "compare", "pack", "make the release", "check the extensions", "switch", "record"]
    assert all(s.plan for s in flow.EXTENSIONS_SYNC.steps)
    calls, stream = [], io.StringIO()
    session = fake_session(calls, stream, source=".")

    def make(run):
        run.release_id = "20260101T120000Z-v2"

    def bad_manifest(session, release):
        raise Refused("extension x: package.json is not valid JSON")

    monkeypatch.setattr(flow, "compare", lambda run: calls.append("compare"))
    monkeypatch.setattr(flow, "pack", lambda run: calls.append("pack"))
    monkeypatch.setattr(flow, "make_release", make)
    monkeypatch.setattr(flow.steps, "check_host_extensions", bad_manifest)
    with pytest.raises(Refused, match="not valid JSON"):
        flow.sync_extensions(session, tag=None)
    assert calls[-1] == ("run", "rm", "-rf", "--", "/srv/d/releases/20260101T120000Z-v2")
    assert "removed release 20260101T120000Z-v2 (never went live)" in stream.getvalue()


# -- steps beside each other ------------------------------------------------------------------

def waiting_step(name, started: dict, wait_for: str | None = None, fails=False):
    """A step that notes its start, then (with `wait_for`) waits until that step has started:
    it can only end when both run at the same time."""
    started[name] = threading.Event()

    def run(ctx):
        ctx.note("run", name)
        started[name].set()
        if wait_for and not started[wait_for].wait(5):
            raise TimeoutError(f"{name} ran alone")
        time.sleep(0.05)
        if fails:
            raise RuntimeError(f"{name} broke")

    return run


def test_a_step_beside_the_one_before_runs_at_the_same_time_and_the_next_waits_for_both():
    run, started = Run(), {}
    flow = pipeline(Step("back up", waiting_step("back up", started), undo=None),
                    Step("code", waiting_step("code", started, wait_for="back up"), beside=True),
                    step("after"))
    results = flow.run(run)
    assert [r.outcome for r in results] == ["ok", "ok", "ok"]
    assert runs(run)[-1] == "after"  # only once both had ended
    assert sorted(runs(run)[:2]) == ["back up", "code"]


def test_when_one_of_two_steps_side_by_side_fails_the_other_ends_and_is_undone():
    run, started = Run(), {}
    flow = pipeline(step("lock"),
                    Step("back up", waiting_step("back up", started, fails=True), undo=None),
                    Step("code", waiting_step("code", started, wait_for="back up"), beside=True,
                         undo=lambda ctx: ctx.note("undo", "code")),
                    step("after"))
    with pytest.raises(RuntimeError, match="back up broke"):
        flow.run(run)
    assert "after" not in runs(run)
    assert undos(run) == ["code", "lock"]  # the code step had completed: its release goes


def test_the_first_failure_in_step_order_is_raised_when_both_fail():
    run, started = Run(), {}
    flow = pipeline(Step("one", waiting_step("one", started, fails=True)),
                    Step("two", waiting_step("two", started, wait_for="one", fails=True), beside=True))
    report = []
    with pytest.raises(RuntimeError, match="one broke"):
        flow.run(run, report=report)
    assert [r.outcome for r in report] == ["failed", "failed"]
    assert all(r.seconds > 0 for r in report)


def test_without_parallel_steps_beside_run_one_after_the_other():
    run = Run()
    flow = pipeline(step("one"), step("two", beside=True), step("three"))
    flow.run(run, parallel=False)
    assert runs(run) == ["one", "two", "three"]


def test_the_first_step_cannot_run_beside_a_step_before_it():
    with pytest.raises(ValueError, match="first"):
        pipeline(step("one", beside=True))


def test_steps_beside_run_one_after_another_and_a_failure_stops_the_rest_of_them():
    run, started = Run(), {}
    flow = pipeline(Step("back up", waiting_step("back up", started, wait_for="code")),
                    Step("code", waiting_step("code", started), beside=True, undo=lambda ctx: ctx.note("undo", "code")),
                    step("plan", fails=True, beside=True),
                    step("checks", beside=True),
                    step("after"))
    report = []
    with pytest.raises(RuntimeError, match="plan broke"):
        flow.run(run, report=report)
    assert runs(run).index("code") < runs(run).index("plan")
    assert "checks" not in runs(run) and "after" not in runs(run)
    assert [r.outcome for r in report] == ["ok", "ok", "failed", "not run", "not run"]
    assert undos(run) == ["code"]  # back up has no undo here; plan failed; checks never ran
