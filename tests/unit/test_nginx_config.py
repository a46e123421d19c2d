"""traffic.nginx_config: nginx's configuration read from `nginx -T` (the real nginx's output where
it is installed): which block the tool's include sits in, and whether it holds anything but
`server 127.0.0.1:<port>;` lines. The tool writes it only inside its `upstream { }`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from directus_deploy.traffic.nginx_config import include_problem, inclusions, parse, split_dump

UPSTREAM = "directus"
SERVER = "server 127.0.0.1:8056;\n"


def dump_of(tmp_path: Path, site: str, include_text: str | None = SERVER, extra: dict | None = None) -> tuple[str, str]:
    """(nginx -T's output, the include's path) for a main file loading conf.d/*.conf and
    sites/*.conf at http level, the site `site` ({include} is the include's path). The real
    nginx prints it when installed; else the same text is made here the way nginx prints it."""
    include = tmp_path / "upstreams" / "directus.conf"
    include.parent.mkdir(parents=True, exist_ok=True)
    for folder in ("conf.d", "sites"):
        (tmp_path / folder).mkdir(exist_ok=True)
    if include_text is not None:
        include.write_text(include_text)
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log stderr;\nevents {{}}\n"
                    "http {\n    include conf.d/*.conf;\n    include sites/*.conf;\n}\n")
    (tmp_path / "sites" / "site.conf").write_text(site.format(include=include))
    for name, text in (extra or {}).items():
        (tmp_path / name).write_text(text.format(include=include))
    nginx = shutil.which("nginx")
    if nginx:
        result = subprocess.run([nginx, "-T", "-c", str(main), "-p", str(tmp_path), "-e", "stderr"],
                                capture_output=True, text=True)
        return result.stdout, str(include)
    files = [main, *sorted((tmp_path / "conf.d").glob("*.conf")), *sorted((tmp_path / "sites").glob("*.conf"))]
    if include.exists() and f"include {include}" in (tmp_path / "sites" / "site.conf").read_text():
        files.append(include)
    return "".join(f"# configuration file {f}:\n{f.read_text()}\n" for f in files), str(include)


SITE = ("upstream directus {{\n    include {include};\n}}\n"
        "server {{\n    listen 127.0.0.1:18081;\n    location / {{ proxy_pass http://directus; }}\n}}\n")


def test_an_include_inside_its_upstream_holding_one_server_line_is_fine(tmp_path):
    dump, include = dump_of(tmp_path, SITE)
    files = split_dump(dump)
    assert files[0][0] == str(tmp_path / "nginx.conf") and include in dict(files)
    assert [(p.file.endswith("site.conf"), p.line, p.blocks) for p in inclusions(files, include)] == [
        (True, 2, ("http", "upstream directus"))]
    assert include_problem(dump, include, UPSTREAM, required=True) is None


def test_an_include_at_http_level_is_refused(tmp_path):
    """The layout where the include holds the whole upstream block, loaded from conf.d/."""
    dump, _ = dump_of(tmp_path, "server {{ listen 127.0.0.1:18082; location / {{ proxy_pass http://directus; }} }}\n",
                      include_text="", extra={"conf.d/directus.conf": "upstream directus {{ server 127.0.0.1:8056; }}\n"})
    include = str(tmp_path / "conf.d" / "directus.conf")
    problem = include_problem(dump, include, UPSTREAM, required=False)
    assert problem.startswith(f"nginx -T shows {include} included inside http {{ }} ({tmp_path}/nginx.conf:5)")


def test_an_include_in_another_upstream_or_a_server_block_is_refused(tmp_path):
    site = SITE.replace("upstream directus", "upstream other") + "upstream directus {{ server 127.0.0.1:1; }}\n"
    dump, include = dump_of(tmp_path, site)
    assert "included inside upstream { }" in include_problem(dump, include, UPSTREAM, required=True)
    site = ("upstream directus {{ server 127.0.0.1:1; }}\n"
            "server {{\n    listen 127.0.0.1:18083;\n    include {include};\n    location / {{ proxy_pass http://directus; }}\n}}\n")
    dump, include = dump_of(tmp_path, site, include_text="location /x { return 200; }\n")
    assert "included inside server { }" in include_problem(dump, include, UPSTREAM, required=False)


@pytest.mark.parametrize("text, shown", [
    (SERVER + "server 127.0.0.1:8057 backup;\n", "server 127.0.0.1:8057 backup;"),
    (SERVER + "server 10.0.0.5:8056;\n", "server 10.0.0.5:8056;"),
    (SERVER + "keepalive 16;\n", "keepalive 16;"),
])
def test_an_include_holding_anything_but_local_server_lines_is_refused(tmp_path, text, shown):
    dump, include = dump_of(tmp_path, SITE, include_text=text)
    assert f"holds `{shown}` (line 2)" in include_problem(dump, include, UPSTREAM, required=True)


def test_a_location_added_to_the_include_is_refused_whatever_nginx_says():
    """nginx -t itself refuses a location in an upstream; the include's text is checked alone too."""
    dump = ("# configuration file /etc/nginx/nginx.conf:\nhttp { upstream directus { include /etc/nginx/up.conf; } }\n\n"
            "# configuration file /etc/nginx/up.conf:\n# mine\nserver 127.0.0.1:8056;\nlocation / { return 200; }\n\n")
    assert "holds `location / { ... }` (line 3)" in include_problem(dump, "/etc/nginx/up.conf", UPSTREAM, required=True)


def test_an_include_nginx_does_not_load_yet(tmp_path):
    dump, include = dump_of(tmp_path, "server {{ listen 127.0.0.1:18084; }}\n", include_text=None)
    assert include_problem(dump, include, UPSTREAM, required=False) is None  # the setup writes it first
    assert "nginx does not load" in include_problem(dump, include, UPSTREAM, required=True)
    assert "printed no configuration" in include_problem("", include, UPSTREAM, required=False)


def test_includes_are_followed_through_other_files_with_their_blocks():
    dump = ("# configuration file /n/nginx.conf:\nhttp {\n  upstream directus {\n    include wrap/*.conf;\n  }\n}\n\n"
            "# configuration file /n/wrap/a.conf:\ninclude /n/up.conf;\n\n"
            "# configuration file /n/up.conf:\nserver 127.0.0.1:1;\n\n")
    [place] = inclusions(split_dump(dump), "/n/up.conf")
    assert (place.file, place.line, place.blocks) == ("/n/wrap/a.conf", 1, ("http", "upstream directus"))


def test_the_parser_reads_quotes_comments_variables_and_lines():
    directives = parse('# top\nhttp {\n  set $a "x; {y}";\n  return 200 ${a}b; # end\n  location = /a\\ b { }\n}\n')
    [http] = directives
    assert [(d.words, d.line) for d in http.block] == [
        (["set", "$a", "x; {y}"], 3), (["return", "200", "${a}b"], 4), (["location", "=", "/a b"], 5)]


def test_a_missing_include_a_glob_would_load_at_http_level_is_refused(tmp_path):
    """conf.d/*.conf: once written there, nginx would load the include at http level."""
    dump, _ = dump_of(tmp_path, "server {{ listen 127.0.0.1:18085; }}\n", include_text=None)
    include = str(tmp_path / "conf.d" / "directus-upstream.conf")
    assert "included inside http { }" in include_problem(dump, include, UPSTREAM, required=False)
