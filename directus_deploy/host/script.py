"""Remote shell scripts: one builder for them and one parser for what they report.

A script reports results with the shell function `emit KIND [KEY VALUE]...`, which prints one
JSON object on a line of its own after the prefix `@@`:

    emit store key "$k"        ->   @@{"kind":"store","key":"abc"}

One format for every script, instead of a marker and a tab layout per script, so one parser
(`parse_results`) reads them all and a value can hold anything (tabs, newlines, quotes) without
breaking the line it travels on. The JSON is made on the host by awk alone: hosts may have
neither node nor jq, and awk is on every one of them. Everything else a script prints stays
ordinary output (`Results.lines`).

Bulk output (a file listing, hashes, a JSON document a tool printed) is not made into records:
`section(name)` prints a line that starts a named part of the output, and `split_sections`
cuts the output into those parts.

Values enter a script only quoted (`q`); secrets never do: `Remote.script(secret_env=...)`
reads them from standard input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from directus_deploy.host.remote import q

PREFIX = "@@"  # what starts a result line; ordinary output is told apart by it

# awk, not printf or sed, writes the JSON: it reads its arguments as they are (ARGV, no escape
# processing, newlines kept) and runs in the C locale so bytes pass through unchanged (UTF-8
# included). Control characters become \t, \n, \r or \u00XX; backslash and quote are escaped;
# the rest is copied in runs between them (a long value stays quick). Both gawk and mawk run it.
# The programs hold no single quote: they sit inside one.
_AWK_STRING = (  # s(v): v as a JSON string; `e` maps each character to escape to its escape
    r'function s(v,   r) { r = ""; while (match(v, /[\001-\037"\\]/)) '
    r'{ r = r substr(v, 1, RSTART - 1) e[substr(v, RSTART, 1)]; v = substr(v, RSTART + 1) } '
    r'return "\"" r v "\"" } '
)
_AWK_ESCAPES = (
    r'for (i = 1; i < 32; i++) e[sprintf("%c", i)] = sprintf("\\u%04x", i); '
    r'e["\t"] = "\\t"; e["\n"] = "\\n"; e["\r"] = "\\r"; e["\\"] = "\\\\"; e["\""] = "\\\""; '
)
_START = 'o = "' + PREFIX + r'{\"kind\":" s(k); '

_EMIT_AWK = (  # emit KIND [KEY VALUE]...
    _AWK_STRING + 'BEGIN { ' + _AWK_ESCAPES
    + r'if (ARGC < 2 || ARGC % 2) { print "emit: a kind, then key value pairs" > "/dev/stderr"; exit 2 } '
    + 'k = ARGV[1]; ' + _START
    + r'for (i = 2; i < ARGC; i += 2) o = o "," s(ARGV[i]) ":" s(ARGV[i + 1]); '
    + r'print o "}"; exit }'
)

_RECORDS_AWK = (  # KIND N COLUMN1..N [KEY VALUE]..., then every line of standard input
    _AWK_STRING + 'BEGIN { ' + _AWK_ESCAPES
    + r'k = ARGV[1]; n = ARGV[2]; for (i = 1; i <= n; i++) c[i] = ARGV[2 + i]; '
    + r'f = ""; for (i = 3 + n; i + 1 < ARGC; i += 2) f = f "," s(ARGV[i]) ":" s(ARGV[i + 1]); '
    + r'ARGC = 1 } '
    + '{ ' + _START + r'o = o f; for (i = 1; i <= n; i++) o = o "," s(c[i]) ":" s($i); print o "}" }'
)

_PAIRS_AWK = (  # KIND NAME VALUE [KEY VALUE]..., then `name<sep>value` lines on standard input
    _AWK_STRING + 'BEGIN { ' + _AWK_ESCAPES
    + r'k = ARGV[1]; nk = ARGV[2]; vk = ARGV[3]; '
    + r'f = ""; for (i = 4; i + 1 < ARGC; i += 2) f = f "," s(ARGV[i]) ":" s(ARGV[i + 1]); '
    + r'ARGC = 1 } '
    + r'NF { v = $NF; n = substr($0, 1, length($0) - length(v) - 1); '
    + _START + r'print o f "," s(nk) ":" s(n) "," s(vk) ":" s(v) "}" }'
)

# The definition, on one line so it fits any script (`;` or newline joined). Defining it twice
# is harmless, so a fragment that emits may carry it along (`with_emit`).
EMIT_FUNCTION = f"emit() {{ LC_ALL=C awk -- '{_EMIT_AWK}' \"$@\"; }}"


def emit(kind: str, **fields: str) -> str:
    """Shell printing one result record. Each field's value is a shell word: `q(value)` for a
    value known here, `'"$name"'` (double-quoted) for one found on the host. Values travel as
    arguments, so each stays under Linux's 128 KiB per argument: results, not file contents."""
    words = [q(kind)]
    for key, value in fields.items():
        words += [q(key), value]
    return "emit " + " ".join(words)


def records(kind: str, *columns: str, separator: str, **fixed: object) -> str:
    """Shell filter: every line of its input, cut at `separator` (awk's -F), becomes one record
    of `kind` with `columns` for its fields (extra fields are left out) and the `fixed` fields
    (values known here: quoted here, unlike `emit`'s). For many results at once (a table's row
    counts) in one process, with nothing to define first: it fits inside any fragment or pipeline."""
    return f"LC_ALL=C awk -F {q(separator)} -- '{_RECORDS_AWK}' {q(kind, len(columns), *columns, *_flat(fixed))}"


def pairs(kind: str, name: str, value: str, *, separator: str, **fixed: object) -> str:
    """Shell filter: every `name<separator>value` line of its input becomes one record of `kind`
    with fields `name` and `value`, cut at the line's last separator (one character), so the name
    may hold the separator itself (a table called `a|b`). `fixed` as for `records`."""
    return f"LC_ALL=C awk -F {q(separator)} -- '{_PAIRS_AWK}' {q(kind, name, value, *_flat(fixed))}"


def _flat(fixed: dict) -> list:
    """Fixed fields as the awk programs read them: key, value, key, value..."""
    return [word for item in fixed.items() for word in item]


def with_emit(fragment: str) -> str:
    """A shell fragment that calls `emit`, made to stand alone: whoever puts it in a script
    need not know it reports through `emit`."""
    return EMIT_FUNCTION + "\n" + fragment


class Script:
    """A script body for `Remote.script` (which runs it under bash with `set -eo pipefail`),
    built step by step; `emit` is defined at its top."""

    def __init__(self, *steps: str):
        self.steps = [EMIT_FUNCTION]
        self.add(*steps)

    def add(self, *steps: str) -> Script:
        """Steps already written as shell (their values quoted with `q`)."""
        self.steps.extend(step for step in steps if step)
        return self

    def run(self, *words: object) -> Script:
        """One command from its words, each quoted here."""
        return self.add(q(*words))

    def emit(self, kind: str, **fields: str) -> Script:
        """A result record (see `emit` for how values are written)."""
        return self.add(emit(kind, **fields))

    def text(self) -> str:
        return "\n".join(self.steps)

    __str__ = text


def section(name: str) -> str:
    """Shell printing a `@@section:<name>` line (after a newline, so it starts a line even
    after output that did not end one): the output that follows is the part called `name`."""
    return f"printf '\\n{PREFIX}section:%s\\n' {q(name)}"


def split_sections(output: str) -> dict[str, str]:
    """The parts of a script's output that follow each `section(name)` line."""
    found = {}
    for chunk in ("\n" + output).split(f"\n{PREFIX}section:")[1:]:
        name, _, body = chunk.partition("\n")
        found[name.strip()] = body
    return found


@dataclass
class Results:
    """A script's output read back: `items` holds its records (dicts) and its other lines
    (strings) in the order printed; `records` and `lines` are each kind alone."""

    items: list = field(default_factory=list)

    @property
    def records(self) -> list[dict]:
        return [item for item in self.items if isinstance(item, dict)]

    @property
    def lines(self) -> list[str]:
        return [item for item in self.items if isinstance(item, str)]

    def all(self, kind: str) -> list[dict]:
        return [record for record in self.records if record.get("kind") == kind]

    def first(self, kind: str) -> dict | None:
        return next(iter(self.all(kind)), None)

    def has(self, kind: str) -> bool:
        return self.first(kind) is not None

    def split_at(self, kind: str) -> tuple[Results, Results | None]:
        """What came before the first `kind` record and what came after it (None without one):
        for a script whose output has two phases, such as a switch and then the switch back."""
        for index, item in enumerate(self.items):
            if isinstance(item, dict) and item.get("kind") == kind:
                return Results(self.items[:index]), Results(self.items[index + 1:])
        return self, None

    @property
    def text(self) -> str:
        """The ordinary output without the records, as it was printed."""
        return "".join(line + "\n" for line in self.lines)


def json_object(text: str) -> dict | None:
    """A record's field that holds a JSON document read on the host (a summary, a REVISION):
    the object, or None when it is cut short (a full disk) or not an object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_results(stdout: str) -> Results:
    """Split a script's output into its records and its other lines.

    Lines are cut at `\\n` only (not `str.splitlines`, which also cuts at characters a value may
    hold, such as U+2028). A line that starts with the prefix but is not a JSON object stays
    ordinary output: a script may print anything, and a record is never half-made (`emit` writes
    it in one `print`)."""
    results = Results()
    parts = stdout.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    for line in parts:
        if line.startswith(PREFIX + "{"):
            try:
                record = json.loads(line[len(PREFIX):])
            except ValueError:
                record = None
            if isinstance(record, dict) and "kind" in record:
                results.items.append(record)
                continue
        results.items.append(line)
    return results
