"""host.remote: `q` quoting and Remote's running of commands
(secrets through standard input, --dry-run, scrubbing, scripts under pipefail, file helpers),
with the SSH channel replaced by a local shell."""

from __future__ import annotations

import os

import pytest

from directus_deploy.core.errors import DeployError
from directus_deploy.host.remote import as_admin, q

from .local import LocalRemote, run

NASTY = [
    "plain",
    "two words",
    "it's",
    'say "hi"',
    "$(touch pwned)",
    "`touch pwned`",
    "a;touch pwned",
    "line one\nline two",
    "back\\slash",
    "*",
    "-n",
    "",
    "tab\there",
    "ünïcødé ✓",
]


@pytest.mark.parametrize("value", NASTY)
def test_a_quoted_word_reaches_the_command_intact_and_is_never_run(tmp_path, value):
    out = run(f"printf '%s' {q(value)}", cwd=tmp_path).stdout
    assert out == value
    assert not (tmp_path / "pwned").exists()


def test_q_keeps_each_word_a_separate_argument(tmp_path):
    words = ["a b", "", "c'd", "$HOME"]
    out = run(f"for w in {q(*words)}; do printf '<%s>' \"$w\"; done", cwd=tmp_path).stdout
    assert out == "<a b><><c'd><$HOME>"


def test_as_admin_runs_the_command_quoted_as_root(tmp_path):
    script = as_admin("printf", "%s", "x y")
    assert "else sudo -n printf %s 'x y'; fi" in script
    if os.getuid() == 0:  # root: no sudo involved, the words arrive intact
        assert run(script).stdout == "x y"


def test_secret_env_values_reach_the_command_on_stdin_and_never_its_command_line():
    remote = LocalRemote()
    secret = "pa ss'w\"or$(touch /tmp/never)d"
    result = remote.run('printf "%s" "$DB_PASS"', secret_env={"DB_PASS": secret})
    assert result.stdout == secret
    assert all(secret not in command for command in remote.commands)
    assert all(secret not in entry["command"] for entry in remote.log.entries)


def test_several_secrets_and_stdin_arrive_in_order():
    remote = LocalRemote()
    result = remote.run('printf "%s|%s|" "$A" "$B"; cat', secret_env={"A": "one", "B": "two"}, stdin="rest\n")
    assert result.stdout == "one|two|rest\n"


def test_a_secret_with_a_newline_is_refused_before_anything_runs():
    remote = LocalRemote()
    with pytest.raises(DeployError, match="newline"):
        remote.run("true", secret_env={"X": "a\nb"})
    assert remote.commands == []


def test_a_secret_name_that_is_no_identifier_is_refused():
    with pytest.raises(ValueError):
        LocalRemote().run("true", secret_env={"X; rm -rf /": "v"})


def test_a_failing_command_raises_one_line_naming_the_host_and_what():
    remote = LocalRemote()
    with pytest.raises(DeployError) as caught:
        remote.run("echo first >&2; echo 'the real reason' >&2; exit 3", what="do the thing")
    assert str(caught.value) == "local-host: do the thing failed: the real reason"
    assert remote.run("exit 4", check=False).exit_code == 4


def test_secrets_are_scrubbed_from_errors_and_said_plans():
    remote = LocalRemote(secrets=["hunter22"])
    remote.add_secret("s3cr3t-from-host")
    remote.add_secret("abc")  # too short to scrub reliably: ignored
    with pytest.raises(DeployError) as caught:
        remote.run("echo 'hunter22 and s3cr3t-from-host' >&2; exit 1")
    assert "hunter22" not in str(caught.value) and "s3cr3t" not in str(caught.value)
    assert str(caught.value).endswith("*** and ***")
    assert remote.scrub("abc") == "abc"


def test_dry_run_skips_what_changes_the_host_but_runs_queries(tmp_path):
    remote = LocalRemote(dry_run=True)
    target = tmp_path / "made"
    skipped = remote.run(["touch", str(target)], what="make a file")
    assert skipped.skipped and not target.exists()
    assert remote.said == ["    would make a file on local-host"]
    assert remote.query(["echo", "read"]).stdout == "read\n"
    assert remote.log.round_trips == 1


def test_a_list_command_is_quoted_word_by_word(tmp_path):
    remote = LocalRemote()
    assert remote.run(["printf", "%s|", "a b", "$(id)", "c'd"]).stdout == "a b|$(id)|c'd|"


def test_script_stops_at_the_first_failing_step_even_inside_a_pipeline(tmp_path):
    remote = LocalRemote()
    marker = tmp_path / "after"
    result = remote.script(f"false | cat\ntouch {q(str(marker))}", check=False)
    assert not result.ok and not marker.exists()
    remote.script(f"true | cat\ntouch {q(str(marker))}")
    assert marker.exists()


def test_a_critical_script_keeps_its_output_and_exit_code():
    remote = LocalRemote()
    result = remote.script("echo out; echo err >&2; exit 5", critical=True, check=False)
    assert (result.exit_code, result.stdout, result.stderr) == (5, "out\n", "err\n")


def test_write_file_then_read_file_round_trips_content_and_mode(tmp_path):
    remote = LocalRemote()
    path = tmp_path / "dir with space" / "f'ile.env"
    path.parent.mkdir()
    content = "A=1\nB='two words'\n$(not run)\n"
    remote.write_file(str(path), content, mode="0640")
    assert path.read_text() == content and oct(path.stat().st_mode & 0o777) == "0o640"
    assert remote.read_file(str(path)) == content
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_read_file_of_a_missing_file(tmp_path):
    remote = LocalRemote()
    assert remote.read_file(str(tmp_path / "nope"), missing_ok=True) is None
    with pytest.raises(DeployError, match="cannot read"):
        remote.read_file(str(tmp_path / "nope"))


def test_switch_symlink_replaces_the_link_and_leaves_no_temporary(tmp_path):
    remote = LocalRemote()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link = tmp_path / "current"
    remote.switch_symlink(str(link), "a")
    assert remote.read_link(str(link)) == "a"
    remote.switch_symlink(str(link), "b")
    assert remote.read_link(str(link)) == "b" and link.resolve() == (tmp_path / "b").resolve()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "current"]


def test_make_dir_sets_the_mode_of_an_existing_folder_too(tmp_path):
    remote = LocalRemote()
    folder = tmp_path / "x" / "y"
    remote.make_dir(str(folder), mode="0700")
    assert remote.is_dir(str(folder)) and oct(folder.stat().st_mode & 0o777) == "0o700"
    folder.chmod(0o755)
    remote.make_dir(str(folder), mode="0700")
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert remote.exists(str(folder)) and not remote.exists(str(tmp_path / "missing"))


def test_node_path_is_put_first_on_path(tmp_path):
    remote = LocalRemote(node_path=str(tmp_path / "node bin"))
    assert remote.run('printf "%s" "$PATH"').stdout.startswith(str(tmp_path / "node bin") + ":")
