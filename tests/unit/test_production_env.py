"""flows.production_env: the production .env template (`@host`, `${NAME}`), the changes it makes,
the guards on SECRET and DB_*, the host's file edited in place and read back, secrets masked."""

from __future__ import annotations

import pytest

from directus_deploy.core.errors import Refused
from directus_deploy.flows.production_env import (
    Change,
    describe,
    is_secret,
    parse,
    plan,
    refuse_protected,
    render,
    resolve,
)

HOST_TEXT = """# production settings
PORT=8055
export CORS_ORIGIN='https://old.example.com'
DB_PASSWORD="host secret"
SECRET=abc
ONLY_HERE=1
"""


def test_parse_reads_quotes_and_keeps_template_syntax_unexpanded():
    values = parse("A='x y'\nB=\"q\\\"q\"\nC=${SMTP_PASSWORD}\nD=@host\n# comment\nexport E=1\nEMPTY=\n")
    # as Directus reads it: a backslash inside double quotes is kept (only before n or r does it mean something)
    assert values == {"A": "x y", "B": 'q\\"q', "C": "${SMTP_PASSWORD}", "D": "@host", "E": "1", "EMPTY": ""}


def test_resolve_takes_host_values_and_this_machines_environment():
    host = parse(HOST_TEXT)
    wanted = resolve({"DB_PASSWORD": "@host", "EMAIL_SMTP_PASSWORD": "${SMTP}", "PORT": "9000"}, host,
                     environ={"SMTP": "from ci"})
    assert wanted == {"DB_PASSWORD": "host secret", "EMAIL_SMTP_PASSWORD": "from ci", "PORT": "9000"}


@pytest.mark.parametrize("template, environ, says", [
    ({"NEW_KEY": "@host"}, {}, "host's .env has no NEW_KEY"),
    ({"X": "${MISSING}"}, {}, "MISSING is not set"),
    ({"X": "${MULTI}"}, {"MULTI": "a\nb"}, "must be one line"),
])
def test_resolve_refuses_what_it_cannot_work_out(template, environ, says):
    with pytest.raises(Refused, match=says):
        resolve(template, parse(HOST_TEXT), environ=environ)


def test_a_value_that_only_looks_like_a_reference_is_kept():
    assert resolve({"X": "pre${A}post", "Y": "$A"}, {}, environ={"A": "no"}) == {"X": "pre${A}post", "Y": "$A"}


def test_plan_lists_additions_changes_and_host_only_keys():
    host = {"PORT": "8055", "KEEP": "same", "ONLY_HERE": "1"}
    changes = plan({"PORT": "9000", "KEEP": "same", "NEW": "n"}, host)
    assert changes == [Change("PORT", "change", "8055", "9000"), Change("NEW", "add", None, "n"),
                       Change("ONLY_HERE", "host-only", "1", "1")]


@pytest.mark.parametrize("key, flags", [("SECRET", {"allow_secret": False, "allow_db": True}),
                                        ("DB_HOST", {"allow_secret": True, "allow_db": False}),
                                        ("DB_CLIENT", {"allow_secret": True, "allow_db": False})])
def test_secret_and_database_changes_need_their_flag(key, flags):
    with pytest.raises(Refused, match=key):
        refuse_protected([Change(key, "change", "a", "b")], **flags)
    refuse_protected([Change(key, "change", "a", "b")], allow_secret=True, allow_db=True)


def test_host_only_protected_keys_are_no_change():
    refuse_protected([Change("SECRET", "host-only", "a", "a"), Change("DB_HOST", "host-only", "h", "h")],
                     allow_secret=False, allow_db=False)


def test_render_edits_lines_in_place_appends_new_keys_and_reads_back():
    host = parse(HOST_TEXT)
    wanted = {"PORT": "9000", "CORS_ORIGIN": 'https://new.example.com "quoted"', "DB_PASSWORD": "@host",
              "NEW_PATH": "C:\\dir with space", "SECRET": "@host"}
    changes = plan(resolve(wanted, host, environ={}), host)
    text = render(HOST_TEXT, changes, "added by a test")
    lines = text.splitlines()
    assert lines[:3] == ["# production settings", "PORT=9000", 'CORS_ORIGIN=\'https://new.example.com "quoted"\'']  # as Node's dotenv reads it
    assert 'DB_PASSWORD="host secret"' in lines and "ONLY_HERE=1" in lines
    assert lines[-2:] == ["# added by a test", "NEW_PATH='C:\\dir with space'"]
    assert parse(text) == {**host, "PORT": "9000", "CORS_ORIGIN": 'https://new.example.com "quoted"',
                           "NEW_PATH": "C:\\dir with space"}


def test_render_without_changes_keeps_the_file():
    assert render(HOST_TEXT, [], "n") == HOST_TEXT


@pytest.mark.parametrize("key, secret", [("DB_PASSWORD", True), ("SECRET", True), ("KEY", True),
                                         ("EMAIL_SMTP_PASSWORD", True), ("STORAGE_S3_SECRET", True),
                                         ("AUTH_GOOGLE_CLIENT_SECRET", True), ("ADMIN_TOKEN", True),
                                         ("STORAGE_S3_KEY", True), ("PORT", False), ("KEYCLOAK_URL", False)])
def test_secret_keys(key, secret):
    assert is_secret(key) is secret


def test_describe_masks_secret_values_and_says_unset():
    rows = describe([Change("DB_PASSWORD", "change", "old-pw", "new-pw"), Change("PORT", "add", None, "9000"),
                     Change("SECRET", "host-only", "s", "s")])
    assert rows == [["DB_PASSWORD", "change", "***", "***"], ["PORT", "add", "(unset)", "'9000'"],
                    ["SECRET", "kept: only on the host", "***", ""]]
    assert "old-pw" not in repr(rows)
