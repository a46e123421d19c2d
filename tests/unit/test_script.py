"""The script builder and the results parser (directus_deploy/host/script.py), checked by running
the scripts they make in a local bash, as Remote.script runs them on a host (`set -eo pipefail`),
against a temporary folder: no SSH, no test bed.

Each case runs once per awk found here (gawk and mawk when both are installed), since hosts
differ in which one `awk` is."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from directus_deploy.host.remote import q
from directus_deploy.host.script import (
    EMIT_FUNCTION,
    Script,
    emit,
    pairs,
    parse_results,
    records,
    section,
    split_sections,
    with_emit,
)

AWKS = [name for name in ("gawk", "mawk") if shutil.which(name)] or ["awk"]

NASTY = [
    "plain",
    "",
    "with  spaces  ",
    "single ' quote",
    'double " quote',
    "$(touch pwned)",
    "`touch pwned`",
    "$HOME ${PATH} $1 $@",
    "back\\slash \\n \\t \\\\",
    "tab\there",
    "new\nline",
    "trailing newline\n",
    "\n\nleading newlines",
    "carriage\rreturn",
    "controls \x01\x07\x08\x0b\x0c\x1b\x1f and \x7f",
    "unicode: é ü 漢字 😀 \u2028 \u2029 \x85",
    "-f",
    "-",
    "a=b",
    "@@{\"kind\":\"fake\"}",
    '{"json": [1, 2]}',
    "; rm -rf / #",
    "%s %d %% \\0",
]


@pytest.fixture(params=AWKS)
def run(request, tmp_path):
    """Run a script body like Remote.script does, in tmp_path, with `awk` being one awk."""
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    (bin_dir / "awk").symlink_to(shutil.which(request.param))
    work = tmp_path / "work"
    work.mkdir()

    def run(body: str, check: bool = True) -> subprocess.CompletedProcess:
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LC_ALL="C.UTF-8")
        result = subprocess.run(["bash", "-c", "set -eo pipefail\n" + str(body)], cwd=work, env=env,
                                capture_output=True)
        if check:
            assert result.returncode == 0, result.stderr.decode()
        return result

    run.work = work
    return run


def out(result) -> str:
    return result.stdout.decode("utf-8", errors="replace")


@pytest.mark.parametrize("value", NASTY, ids=range(len(NASTY)))
def test_a_value_survives_emit_and_parse_unchanged(run, value):
    result = run(Script().emit("value", v=q(value)))
    assert parse_results(out(result)).first("value") == {"kind": "value", "v": value}
    assert parse_results(out(result)).lines == []


def test_nothing_in_a_value_is_executed(run):
    script = Script().emit("value", **{f"v{i}": q(value) for i, value in enumerate(NASTY)})
    record = parse_results(out(run(script))).first("value")
    assert [record[f"v{i}"] for i in range(len(NASTY))] == NASTY
    assert sorted(p.name for p in run.work.iterdir()) == []


def test_a_value_from_the_host_is_read_from_a_variable(run):
    (run.work / "odd name\twith\nall").write_text("")
    step = emit("file", name='"$f"', size='"$(stat -c %s -- "$f")"')
    script = Script("for f in *; do", "  " + step, "done")
    assert parse_results(out(run(script))).all("file") == [{"kind": "file", "name": "odd name\twith\nall", "size": "0"}]


def test_several_kinds_interleave_with_ordinary_output(run):
    script = Script(
        "echo first line",
        emit("store", key=q("a")),
        "printf 'no newline at the end'; echo",
        emit("count", table=q("users"), rows=q(3)),
        "echo '  indented  '",
        emit("store", key=q("b")),
        "echo",
        "echo last",
    )
    results = parse_results(out(run(script)))
    assert [r["key"] for r in results.all("store")] == ["a", "b"]
    assert results.first("count") == {"kind": "count", "table": "users", "rows": "3"}
    assert results.first("missing") is None and not results.has("missing") and results.has("store")
    assert results.lines == ["first line", "no newline at the end", "  indented  ", "", "last"]
    assert results.text == "first line\nno newline at the end\n  indented  \n\nlast\n"
    assert [r["kind"] for r in results.records] == ["store", "count", "store"]


def test_a_record_with_no_fields(run):
    assert parse_results(out(run(Script().emit("reverted")))).records == [{"kind": "reverted"}]


def test_a_failing_step_stops_the_script(run):
    script = Script().emit("before").add("false").emit("after").add("touch reached")
    result = run(script, check=False)
    assert result.returncode == 1
    assert [r["kind"] for r in parse_results(out(result)).records] == ["before"]
    assert not (run.work / "reached").exists()


def test_a_failing_pipeline_stops_the_script(run):
    script = Script().add("false | cat").emit("after")
    result = run(script, check=False)
    assert result.returncode != 0 and parse_results(out(result)).records == []


def test_emit_without_a_value_for_a_key_fails(run):
    result = run(Script().add("emit store key").add("touch reached"), check=False)
    assert result.returncode != 0 and b"emit:" in result.stderr
    assert not (run.work / "reached").exists()


def test_run_quotes_every_word(run):
    script = Script().run("touch", "a file; touch other", "$(touch third)")
    run(script)
    assert sorted(p.name for p in run.work.iterdir()) == ["$(touch third)", "a file; touch other"]


def test_a_fragment_with_emit_stands_alone_in_any_script(run):
    fragment = with_emit(emit("drained", seconds=q("0.5")))
    body = "; ".join(["echo before", fragment.replace("\n", "; "), "echo after"])
    assert parse_results(out(run(body))).first("drained")["seconds"] == "0.5"
    twice = with_emit("true") + "\n" + fragment  # defined twice: harmless
    assert parse_results(out(run(twice))).first("drained") == {"kind": "drained", "seconds": "0.5"}


def test_a_script_runs_under_a_secret_read_from_stdin(run):
    # as Remote.run passes secrets: read from standard input, exported, never in the body
    secret = "pa$$ 'word\" $(touch leaked)"
    body = "IFS= read -r SECRET && export SECRET && { " + Script().emit("len", n='"${#SECRET}"').text() + "\n}"
    assert secret not in body
    env = dict(os.environ, LC_ALL="C.UTF-8")
    result = subprocess.run(["bash", "-c", "set -eo pipefail\n" + body], cwd=run.work, env=env,
                            input=(secret + "\n").encode(), capture_output=True, check=True)
    assert parse_results(result.stdout.decode()).first("len") == {"kind": "len", "n": str(len(secret))}
    assert list(run.work.iterdir()) == []


def test_the_function_definition_is_one_line_with_no_unbalanced_quote():
    assert "\n" not in EMIT_FUNCTION
    assert Script().text() == EMIT_FUNCTION
    assert Script("a", "", "b").text() == EMIT_FUNCTION + "\na\nb"


def test_ordinary_lines_that_look_like_records_stay_ordinary():
    results = parse_results('@@{not json\n@@{"no": "kind"}\n@@["list"]\n{"ok": true}\n@@section:x\n@@rc 0\n')
    assert results.records == []
    assert results.lines == ['@@{not json', '@@{"no": "kind"}', '@@["list"]', '{"ok": true}', "@@section:x", "@@rc 0"]


def test_parse_cuts_lines_at_newline_only():
    results = parse_results('a\u2028b\rc\n@@{"kind":"k","v":"x\u2028y"}\n\n')
    assert results.lines == ["a\u2028b\rc", ""]
    assert results.first("k")["v"] == "x\u2028y"
    assert parse_results("").records == [] and parse_results("").lines == []
    assert parse_results("no newline").lines == ["no newline"]


def test_emit_quotes_the_kind_and_the_field_names():
    assert emit("k", a=q("1")) == "emit k a 1"
    assert emit("two words", **{"odd key": q("v")}) == "emit 'two words' 'odd key' v"


def test_split_at_a_record_gives_the_two_phases_of_the_output(run):
    script = Script("echo one", emit("issued", seconds=q("1.5")), "echo '{\"ok\": false}'", emit("switched-back"),
                    emit("issued", seconds=q("2")), "echo '{\"ok\": true}'")
    first, then = parse_results(out(run(script))).split_at("switched-back")
    assert first.lines == ["one", '{"ok": false}'] and first.first("issued")["seconds"] == "1.5"
    assert then.lines == ['{"ok": true}'] and then.all("issued") == [{"kind": "issued", "seconds": "2"}]
    whole, none = parse_results("a\n").split_at("switched-back")
    assert none is None and whole.lines == ["a"]


@pytest.mark.parametrize("separator, data", [("|", "users|3\nodd \"ta\\ble\t|42|extra\n"), ("\\t", "users\t3\nodd \"ta\\ble|\t42\textra\n")])
def test_records_turns_each_input_line_into_one_record(run, separator, data):
    script = Script(f"printf %s {q(data)} | " + records("count", "table", "rows", separator=separator, of="before"),
                    "echo other")
    results = parse_results(out(run(script)))
    table = 'odd "ta\\ble' + ("\t" if separator == "|" else "|")
    assert results.all("count") == [{"kind": "count", "of": "before", "table": "users", "rows": "3"},
                                     {"kind": "count", "of": "before", "table": table, "rows": "42"}]
    assert results.lines == ["other"]


def test_records_needs_no_definition_and_reads_nothing_when_there_is_no_input(run):
    assert parse_results(out(run("true | " + records("k", "a", separator=" ")))).records == []
    assert parse_results(out(run("echo 'x y' | " + records("k", "a", "b", separator=" ", mark="$(touch p)")))).records == [
        {"kind": "k", "mark": "$(touch p)", "a": "x", "b": "y"}]
    assert list(run.work.iterdir()) == []


@pytest.mark.parametrize("separator", ["|", "\\t"])
def test_pairs_cut_each_line_at_its_last_separator(run, separator):
    sep = "|" if separator == "|" else "\t"
    data = f"users{sep}3\na{sep}b \"c\"{sep}42\n\nnone\n"
    results = parse_results(out(run(f"printf %s {q(data)} | " + pairs("count", "table", "rows", separator=separator,
                                                                    of="$(touch p)"))))
    assert results.all("count") == [
        {"kind": "count", "of": "$(touch p)", "table": "users", "rows": "3"},
        {"kind": "count", "of": "$(touch p)", "table": f'a{sep}b "c"', "rows": "42"},
        {"kind": "count", "of": "$(touch p)", "table": "", "rows": "none"}]
    assert list(run.work.iterdir()) == []


def test_sections_printed_by_a_script_are_read_back_by_name(run):
    script = "\n".join([section("one"), "echo first", section("two"), "printf 'a\\nb\\n'", section("empty")])
    found = split_sections(out(run(script)))
    assert found == {"one": "first\n", "two": "a\nb\n", "empty": ""}


def test_output_before_the_first_section_is_not_a_section():
    assert split_sections("noise\nmore\n@@section:x\nbody\n") == {"x": "body\n"}
    assert split_sections("no sections at all") == {}


# -- the scripts converted to records, run here as far as they go without a host -------------

def test_the_drain_fragment_reports_its_seconds_in_any_script(run):
    from types import SimpleNamespace

    from directus_deploy.traffic import nginx

    config = SimpleNamespace(drain_seconds=0)
    for live_port in (None, 1):
        body = "\n".join(["echo before", nginx.drain(config, live_port), "echo after"])
        results = parse_results(out(run(body)))
        assert float(results.first("drained")["seconds"]) >= 0
        assert results.lines == ["before", "after"]


def test_the_switch_reads_both_gates_and_their_restart_times(run):
    from directus_deploy.flows import switch

    gate = lambda ok: q(f'{{"ok": {ok}, "seconds": 2.0, "failed": "health", "detail": "x"}}')  # noqa: E731
    body = Script(
        f"{{ {emit('restart-issued', seconds=q('0.5'))} > report; }} && echo {gate('false')} >> report",
        "cat report; echo; " + emit("switched-back"),
        f"{emit('restart-issued', seconds=q('1.25'))} > back; echo {gate('true')} >> back; cat back",
    )
    first, back = parse_results(out(run(body))).split_at("switched-back")
    assert switch._report(first) == {"ok": False, "seconds": 2.0, "failed": "health", "detail": "x",
                                     "restart_seconds": 2.5}
    assert switch._report(back)["ok"] is True and switch._report(back)["restart_seconds"] == 3.25
    assert switch._report(parse_results(""))["failed"] == "restart"


def test_the_cleanup_reports_each_store_it_deletes(run):
    from directus_deploy.state.layout import Layout
    from directus_deploy.state.releases import cleanup_lines

    layout = Layout(str(run.work))
    for key in ("kept", "odd key", "gone"):
        os.makedirs(os.path.join(layout.shared_deps, key, "node_modules"))
    os.makedirs(os.path.join(layout.releases, "20260101T120000Z-v1"))
    os.symlink(f"{layout.DEPS_FROM_RELEASE}/kept/node_modules", os.path.join(layout.releases, "20260101T120000Z-v1", "node_modules"))
    results = parse_results(out(run("\n".join(cleanup_lines(layout, [])))))
    assert sorted(r["key"] for r in results.all("store")) == ["gone", "odd key"]
    assert os.listdir(layout.shared_deps) == ["kept"]
