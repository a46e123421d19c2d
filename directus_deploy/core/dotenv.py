"""The production `.env` read the way Directus reads it.

Directus (@directus/env) parses its `.env` with Node's `dotenv`: no `${VAR}` expansion, a `#`
ends an unquoted value even without a space before it, backslashes are kept as written (only
`\\n` and `\\r` inside double quotes become line breaks), backtick quotes and `KEY: value` lines
are accepted, and a quoted value may run over several lines. python-dotenv differs on each of
these (and expands `${VAR}` unless told not to), so a password read with it is not always the
password Directus uses. This module follows Node's dotenv (its `parse`, dotenv 16 and 17) and
gives each entry's place in the text, so a value can be replaced without touching the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# JavaScript's \s, and the characters its multiline ^ and $ and its `.` treat as line ends
_SPACE_CHARS = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
               "\u2028\u2029\u202f\u205f\u3000\ufeff"
_S = "[" + _SPACE_CHARS + "]"
_ENDS = "\n\r\u2028\u2029"
_LINE_START = f"(?:(?<![\\s\\S])|(?<=[{_ENDS}]))"
_LINE_END = f"(?=[{_ENDS}]|(?![\\s\\S]))"

# KEY=value, KEY = value, export KEY=value, KEY: value; the value single-, double- or
# backtick-quoted (over several lines if need be), or bare up to a `#` or the line's end
_ENTRY = re.compile(
    f"{_LINE_START}{_S}*(?:export{_S}+)?(?P<key>[A-Za-z0-9_.-]+)(?:{_S}*={_S}*?|:{_S}+?)"
    f"(?P<value>{_S}*'(?:\\\\'|[^'])*'|{_S}*\"(?:\\\\\"|[^\"])*\"|{_S}*`(?:\\\\`|[^`])*`|[^#\r\n]+)?"
    f"{_S}*(?:#[^{_ENDS}]*)?{_LINE_END}"
)
# the quotes around a value, taken off (matched line by line, as Node's dotenv does)
_QUOTED = re.compile(f"{_LINE_START}(['\"`])([\\s\\S]*)\\1{_LINE_END}")


@dataclass(frozen=True)
class Entry:
    key: str
    value: str
    start: int  # where the line holding the key begins
    end: int  # where the entry ends: its value, and a comment after it, included


def entries(text: str) -> list[Entry]:
    """Every KEY=value of a .env in order, as Directus reads each; a key given twice is
    listed twice (Directus takes the last). Offsets are into `normalized(text)`."""
    text = normalized(text)
    found = []
    for match in _ENTRY.finditer(text):
        raw = (match["value"] or "").strip(_SPACE_CHARS)
        value = _QUOTED.sub(r"\2", raw)
        if raw[:1] == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        line_start = max(text.rfind(end, 0, match.start("key")) for end in _ENDS) + 1
        found.append(Entry(match["key"], value, line_start, match.end()))
    return found


def parse(text: str) -> dict[str, str]:
    """The settings of a .env, as Directus gets them."""
    return {entry.key: entry.value for entry in entries(text)}


def normalized(text: str) -> str:
    """Line ends as Node's dotenv sees them (CRLF and CR become LF)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def replace_values(text: str, lines: dict[str, str]) -> tuple[str, set[str]]:
    """(the .env with every entry of a key in `lines` replaced by that text, the keys found):
    the whole entry goes (an `export` before it, a value over several lines, a comment after
    it); every other byte stays, but line ends become LF."""
    text = normalized(text)
    done = set()
    for entry in reversed(entries(text)):
        if entry.key in lines:
            text = text[:entry.start] + lines[entry.key] + text[entry.end:]
            done.add(entry.key)
    return text, done
