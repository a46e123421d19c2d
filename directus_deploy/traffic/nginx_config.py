"""Reading nginx's whole configuration as `nginx -T` prints it: which block the tool's upstream
include sits in, and what it holds.

The deploy user writes that include and nginx, running as root, loads it. Where it sits inside
`upstream NAME { include FILE; }` nginx accepts only upstream directives there, and the tool
writes only `server 127.0.0.1:<port>;`: whoever can write the file can then do no more than
choose which local port serves. Included anywhere else (at `http {}` level, or in a `server`
block), the same file could hold any directive; the tool refuses to write it then.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass

_HEADER = re.compile(r"^# configuration file (/[^\n]*):$")
_LOCAL_SERVER = re.compile(r"^127\.0\.0\.1:[0-9]{1,5}$")


def split_dump(text: str) -> list[tuple[str, str]]:
    """`nginx -T`'s output as [(path, content)], in the order printed (the main file first).
    Each file is printed after a `# configuration file <path>:` line."""
    files: list[tuple[str, list[str]]] = []
    for line in text.split("\n"):
        header = _HEADER.match(line)
        if header:
            files.append((header[1], []))
        elif files:
            files[-1][1].append(line)
    return [(path, "\n".join(lines)) for path, lines in files]


@dataclass
class Directive:
    words: list  # the name, then its arguments (quotes removed)
    line: int
    block: list | None = None  # the directives inside, for a block directive


def parse(text: str) -> list[Directive]:
    """nginx's configuration syntax: words, `;` ending a directive, `{ }` a block, `#` a comment
    (where a word would start), quotes and backslash escapes, `${var}` inside a word."""
    stack: list[list[Directive]] = [[]]
    words: list[str] = []
    first_line = 0
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch == ";":
            if words:
                stack[-1].append(Directive(words, first_line))
            words = []
            i += 1
        elif ch == "{":
            block: list[Directive] = []
            stack[-1].append(Directive(words, first_line if words else line, block))
            stack.append(block)
            words = []
            i += 1
        elif ch == "}":
            if len(stack) > 1:
                stack.pop()
            words = []
            i += 1
        else:
            if not words:
                first_line = line
            word = []
            if ch in "\"'":
                quote, i = ch, i + 1
                while i < n and text[i] != quote:
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    if text[i] == "\n":
                        line += 1
                    word.append(text[i])
                    i += 1
                i += 1
            else:  # a quote inside a word is a character of it
                while i < n:
                    c = text[i]
                    if c == "{" and word and word[-1] == "$":  # ${name}: a variable, not a block
                        end = text.find("}", i)
                        end = n - 1 if end < 0 else end
                        word.append(text[i:end + 1])
                        i = end + 1
                        continue
                    if c in " \t\r\n;{}":
                        break
                    if c == "\\" and i + 1 < n:
                        i += 1
                        c = text[i]
                    word.append(c)
                    i += 1
            words.append("".join(word))
    return stack[0]


def _matches(pattern: str, path: str) -> bool:
    """A path matched by an include's glob, `*` never crossing a `/` (as glob(3))."""
    if not any(c in pattern for c in "*?["):
        return posixpath.normpath(pattern) == path
    parts, names = posixpath.normpath(pattern).split("/"), path.split("/")
    return len(parts) == len(names) and all(fnmatch.fnmatchcase(name, part) for part, name in zip(parts, names))


@dataclass
class Inclusion:
    file: str  # the file holding the include directive
    line: int
    blocks: tuple  # the enclosing blocks, outermost first: ("http", "upstream directus")


def inclusions(files: list[tuple[str, str]], target: str) -> list[Inclusion]:
    """Every place nginx includes `target`, or would once it exists (a glob matching it),
    following the includes from the main file (the first printed) with the blocks they sit in;
    a relative pattern is taken from the main file's folder, as nginx does."""
    contents = dict(files)
    if not files:
        return []
    main = files[0][0]
    prefix = posixpath.dirname(main)
    found: list[Inclusion] = []

    def visit(path: str, directives: list[Directive], blocks: tuple, depth: int) -> None:
        if depth > 20:  # nginx itself refuses an include loop long before
            return
        for directive in directives:
            name = directive.words[0] if directive.words else ""
            if directive.block is not None:
                visit(path, directive.block, blocks + (" ".join(directive.words),), depth)
            elif name == "include":
                for pattern in directive.words[1:]:
                    full = pattern if pattern.startswith("/") else posixpath.join(prefix, pattern)
                    if _matches(full, target):  # even before it exists: a glob such as conf.d/*.conf
                        found.append(Inclusion(path, directive.line, blocks))
                    for included in sorted(p for p in contents if p != target and _matches(full, p)):
                        visit(included, parse(contents[included]), blocks, depth + 1)

    visit(main, parse(contents[main]), (), 0)
    return found


def include_problem(dump: str, include: str, upstream: str, *, required: bool) -> str | None:
    """Why the tool must not write (or rely on) its include, from `nginx -T`'s output; None when
    it may. It may when nginx includes the file only directly inside `upstream <upstream> { }`
    and the file holds only `server 127.0.0.1:<port>;` lines. `required`: the file must be
    included somewhere (a switch); else a file nginx does not load yet is fine (the setup
    writes it before the user's site includes it)."""
    files = split_dump(dump)
    if not files:
        return ("nginx -T printed no configuration, so where it loads the include cannot be checked: the deploy user "
                "must be able to run nginx -T (as root, or through sudo)")
    wanted = f"upstream {upstream}"
    places = inclusions(files, include)
    for place in places:
        if not place.blocks or place.blocks[-1] != wanted:
            where = f"inside {place.blocks[-1].split(' ')[0]} {{ }}" if place.blocks else "at the top level"
            return (f"nginx -T shows {include} included {where} ({place.file}:{place.line}), not inside "
                    f"`{wanted} {{ include {include}; }}`, the only block where the tool may write it")
    if required and not places:
        return (f"nginx does not load {include}: put `{wanted} {{ include {include}; }}` in your site's "
                f"configuration (proxy_pass http://{upstream};) and reload nginx")
    content = dict(files).get(include)
    if content is not None:
        for directive in parse(content):
            words = directive.words
            if directive.block is not None or len(words) != 2 or words[0] != "server" or not _LOCAL_SERVER.match(words[1]):
                shown = " ".join(words) + (" { ... }" if directive.block is not None else ";")
                return (f"{include} holds `{shown}` (line {directive.line}); the tool's include holds only "
                        "server 127.0.0.1:<port> lines: take out what was added")
    return None
