"""The .env lines this tool writes, and the production .env it reads, against the dotenv Directus
itself uses (Node's `dotenv`, as @directus/env parses a .env), when a copy of it is on this machine
(the test bed's Directus cache): what the tool means is what Directus gets, and what Directus
runs with is what the tool reads."""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import subprocess

import pytest

from directus_deploy.core import dotenv
from directus_deploy.flows.production_env import Change, parse, render
from directus_deploy.state.settings import dotenv_line

CANDIDATES = sorted(glob.glob(os.path.expanduser("~/.cache/directus-deploy/*/node_modules/dotenv/package.json")))
pytestmark = pytest.mark.skipif(not (CANDIDATES and shutil.which("node")), reason="Node's dotenv (from a Directus install)")

READ = "const d = require(process.argv[1]); process.stdout.write(JSON.stringify(d.parse(require('fs').readFileSync(0))))"


def node_parse(text: str) -> dict:
    module = os.path.dirname(CANDIDATES[-1])
    result = subprocess.run(["node", "-e", READ, module], input=text, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


VALUES = ["plain", "", "two words", "it's", 'say "hi"', "$(id) and `id` and $HOME", "a#b # not a comment",
          "back\\slash", 'json:["a b",{"c":"d"}]', "trailing space ", "ünïcødé ✓", "multi\nline"]


@pytest.mark.parametrize("value", VALUES)
def test_dotenv_line_is_read_by_directus_as_written(value):
    assert node_parse(dotenv_line("KEY", value) + "\nNEXT=1\n") == {"KEY": value, "NEXT": "1"}


@pytest.mark.parametrize("value", ["plain", "two words", "it's", "$(id)", "a#b", "trailing space "])
def test_config_push_values_are_read_by_directus_as_by_this_tool(value):
    text = render("PORT=1\n", [Change("NEW", "add", None, value)], "note")
    assert node_parse(text)["NEW"] == parse(text)["NEW"] == value


@pytest.mark.parametrize("value", ['say "hi"', "C:\\dir"])
def test_config_push_values_with_quotes_or_backslashes_reach_directus_intact(value):
    text = render("PORT=1\n", [Change("NEW", "add", None, value)], "note")
    assert parse(text)["NEW"] == value  # what config.diff reads afterwards
    assert node_parse(text)["NEW"] == value  # what Directus runs with


# .env texts as people write them, each read by this tool exactly as Directus reads it
TEXTS = [
    "A=x\nDB_PASSWORD=p${A}q\n",  # no expansion
    "DB_PASSWORD=p$A$q${\n",
    "DB_PASSWORD=a#b\nSECRET=c # d\n",  # a bare value ends at `#`
    "DB_PASSWORD='a#b'\nSECRET=\"c#d\" # note\n",
    "DB_PASSWORD=\"p${A}q\"\nSECRET='p${A}q'\n",
    "A=\"tab\\there\"\nB='it\\'s'\nC=\"q\\\"q\"\nD=\"new\\nline\"\nE='no\\nbreak'\n",  # backslashes
    "KEY=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\nNEXT=1\n",  # over several lines
    "A=\"unterminated\nB=2\n",
    "A=`back`\nB: colon\nexport C=3\n  D  =  spaced  \n",
    "A=1\r\nB='two'\r\nC=\"x\r\ny\"\r\n",  # CRLF
    "A=first\nA=last\n",
    "# only a comment\n\nA=\n=nokey\nB\nC=a'b\"c\n",
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_production_env_is_read_as_directus_reads_it(text):
    assert dotenv.parse(text) == node_parse(text)


def node_parse_many(texts: list[str]) -> list[dict]:
    module = os.path.dirname(CANDIDATES[-1])
    script = ("const d = require(process.argv[1]); const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "process.stdout.write(JSON.stringify(texts.map((t) => d.parse(t))))")
    result = subprocess.run(["node", "-e", script, module], input=json.dumps(texts), capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout)


def test_random_env_texts_are_read_as_directus_reads_them():
    pieces = ["A", "B", "=", ":", "#", "'", '"', "`", " ", "\n", "\\", "$", "{", "}", "x", "-", ".", "\t", "export ",
              "\r", "\u00a0"]
    rng = random.Random(20240607)
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 30))) for _ in range(2000)]
    for text, expected in zip(texts, node_parse_many(texts)):
        assert dotenv.parse(text) == expected, repr(text)


def test_config_push_replaces_a_value_over_several_lines_whole():
    host = "SECRET='p${A}q#x'\nKEY=\"line one\nDB_PASSWORD=not-a-key\nline three\"\nDB_PASSWORD=\"p${A}q\"\n"
    text = render(host, [Change("KEY", "change", None, "one line")], "note")
    assert node_parse(text) == {"SECRET": "p${A}q#x", "KEY": "one line", "DB_PASSWORD": "p${A}q"}
    assert text == "SECRET='p${A}q#x'\nKEY='one line'\nDB_PASSWORD=\"p${A}q\"\n"  # the other lines byte for byte
