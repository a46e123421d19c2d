"""core.dotenv: the production .env read as Directus reads it (the values below are what Node's
dotenv returns; tests/unit/test_dotenv_node.py checks against it wherever it is installed)."""

from __future__ import annotations

import pytest

from directus_deploy.core import dotenv


@pytest.mark.parametrize("line, value", [
    ("P=p${A}q", "p${A}q"),  # python-dotenv expands ${A} (to nothing here)
    ("P=a#b", "a"),  # python-dotenv: a#b
    ("P='a#b' # note", "a#b"),
    ('P="a\\tb"', "a\\tb"),  # python-dotenv: a<tab>b
    ('P="a\\nb"', "a\nb"),
    ("P='a\\nb'", "a\\nb"),
    ("P=`b`", "b"),
    ("P: colon", "colon"),
    ('P="two\nlines"', "two\nlines"),
])
def test_values_are_what_directus_gets(line, value):
    assert dotenv.parse(f"A=x\n{line}\nNEXT=1\n") == {"A": "x", "P": value, "NEXT": "1"}


def test_replacing_a_value_keeps_every_other_byte():
    text = "# head\nexport A='p${x}#q'\r\nB=\"several\nC=lines\"  # note\nA2=keep\n"
    new, found = dotenv.replace_values(text, {"B": "B=one", "MISSING": "X=1"})
    assert found == {"B"}
    assert new == "# head\nexport A='p${x}#q'\nB=one\nA2=keep\n"
    assert dotenv.parse(new) == {"A": "p${x}#q", "B": "one", "A2": "keep"}
