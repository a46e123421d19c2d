"""core.console: steps with their outcome and duration, tables, the summary, host prefixes and
scrubbed output."""

from __future__ import annotations

import io

import pytest

from directus_deploy.core.console import Console


def console(**kwargs):
    stream = io.StringIO()
    return Console(stream=stream, **kwargs), stream


def test_a_table_aligns_columns_under_a_rule():
    shown, stream = console()
    shown.table(["ID", "TAG"], [["20260101T120000Z-v1", "v1"], ["x", "longer-tag"]])
    assert stream.getvalue().splitlines() == [
        "ID                   TAG",
        "-------------------  ----------",
        "20260101T120000Z-v1  v1",
        "x                    longer-tag",
    ]


def test_a_step_says_its_name_outcome_and_detail():
    shown, stream = console()
    with shown.step("back up") as step:
        step.detail = "3 files"
    lines = stream.getvalue().splitlines()
    assert lines[0] == "==> back up" and lines[1].startswith("    ok: 3 files (") and lines[1].endswith("s)")
    assert [(s.name, s.outcome) for s in shown.steps] == [("back up", "ok")]


def test_a_failing_step_is_recorded_failed_and_the_error_passes_on():
    shown, stream = console()
    with pytest.raises(RuntimeError):
        with shown.step("migrate"):
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with shown.step("wait"):
            raise KeyboardInterrupt
    assert [s.outcome for s in shown.steps] == ["failed", "interrupted"]
    assert "    FAILED: migrate (" in stream.getvalue() and "    INTERRUPTED: wait (" in stream.getvalue()


def test_a_step_may_set_its_own_outcome():
    shown, _ = console()
    with shown.step("optional") as step:
        step.outcome = "skipped"
    assert shown.steps[0].outcome == "skipped"


def test_the_summary_lists_every_step_and_the_facts():
    shown, stream = console()
    with shown.step("one"):
        pass
    with shown.step("second step"):
        pass
    shown.summary("Deployed", [("release", "r1")])
    tail = stream.getvalue().splitlines()[-4:]
    assert tail[0].startswith("Deployed (") and tail[3] == "  release: r1"
    assert tail[1].startswith("  ok          one          ") and tail[2].startswith("  ok          second step  ")


def test_a_host_console_prefixes_every_line_and_shares_the_steps():
    shown, stream = console()
    host = shown.for_host("[app1] ")
    host.say("a\nb")
    with host.step("restart"):
        pass
    assert stream.getvalue().splitlines()[:3] == ["[app1] a", "[app1] b", "[app1] ==> restart"]
    assert shown.steps[0].name == "[app1] restart"


def test_output_is_scrubbed():
    shown, stream = console(scrub=lambda text: text.replace("hunter2", "***"))
    shown.say("password hunter2")
    shown.table(["K"], [["hunter2"]])
    assert "hunter2" not in stream.getvalue() and "password ***" in stream.getvalue()


def test_a_step_ending_while_another_threads_step_runs_names_itself():
    import threading

    stream = io.StringIO()
    console = Console(stream=stream)
    inside, leave = threading.Event(), threading.Event()

    def long_step():
        with console.step("dump the database"):
            inside.set()
            leave.wait(5)

    other = threading.Thread(target=long_step)
    other.start()
    inside.wait(5)
    with console.step("upload the code") as step:
        step.detail = "3 files"
    leave.set()
    other.join()
    lines = stream.getvalue().splitlines()
    assert "    ok upload the code: 3 files (0.0s)" in lines, lines
    assert lines[-1].startswith("    ok: ") or lines[-1].startswith("    ok (")  # alone again: the short form
