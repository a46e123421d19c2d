"""The .env lines this tool writes, read back by the dotenv Directus itself uses (Node's `dotenv`,
as @directus/env parses a .env), when a copy of it is on this machine (the test bed's Directus
cache): what the tool means is what Directus gets."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import pytest

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
