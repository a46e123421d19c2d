"""core.extensions: every extension manifest checked the way Directus checks it (one bad manifest
makes Directus load no extension at all), the manifests printed by the host's shell (run here on
a real folder) and read back, entries missing from a release."""

from __future__ import annotations

import json

import pytest

from directus_deploy.core.extensions import (
    PRINT_MANIFESTS,
    Extension,
    check_manifest,
    check_printed,
    check_tree,
    describe_problems,
    missing_entries,
    printed_manifests,
)
from directus_deploy.host.remote import q

from .local import run


def manifest(kind="endpoint", **options):
    base = {"type": kind, "host": "^12.0.0"}
    if kind in ("hook", "endpoint", "interface", "display", "layout", "module", "panel", "theme"):
        base.update(path="dist/index.js", source="src/index.js")
    elif kind == "operation":
        base.update(path={"app": "dist/app.js", "api": "dist/api.js"}, source={"app": "src/app.js", "api": "src/api.js"})
    elif kind == "bundle":
        base.update(path={"app": "dist/app.js", "api": "dist/api.js"}, entries=[])
    base.update(options)
    return json.dumps({"name": "directus-extension-x", "version": "1.0.0", "directus:extension": base,
                       "scripts": {"build": "directus-extension build"}})


@pytest.mark.parametrize("kind, entries", [
    ("endpoint", ["dist/index.js"]), ("hook", ["dist/index.js"]), ("interface", ["dist/index.js"]),
    ("theme", ["dist/index.js"]), ("operation", ["dist/app.js", "dist/api.js"]),
    ("bundle", ["dist/app.js", "dist/api.js"]),
])
def test_valid_manifests_of_each_kind_pass_with_their_entries(kind, entries):
    extension = check_manifest("extensions/x", manifest(kind))
    assert extension.ok and extension.entries == entries and extension.type == kind
    assert extension.name == "directus-extension-x" and extension.version == "1.0.0" and extension.build_script


@pytest.mark.parametrize("text, problem", [
    (json.dumps([1]), "not an object"),
    (json.dumps({"version": "1", "directus:extension": {}}), "`name` missing"),
    (json.dumps({"name": "x", "version": 1}), "`version` missing"),
    (json.dumps({"name": "x", "version": "1"}), "no `directus:extension` object"),
    (manifest(type="widget"), "type 'widget' is not one of"),
    (manifest(host=12), "`host` missing"),
    (manifest(path=None), "`path` and `source` must be strings"),
    (manifest("operation", source="src.js"), "`source` must be {app, api}"),
    (manifest("operation", path="dist.js"), "`path` must be {app, api}"),
    (manifest("bundle", entries=None), "a bundle needs `entries`"),
])
def test_invalid_manifests_say_what_is_wrong(text, problem):
    extension = check_manifest("extensions/x", text)
    assert not extension.ok and any(problem in p for p in extension.problems)


def test_folders_directus_skips_are_not_extensions():
    assert check_manifest("extensions/x", None) is None
    assert check_manifest("extensions/x", "{not json") is None


def test_check_tree_checks_each_folder_once_and_skips_hidden_ones():
    listing = ["extensions/good/package.json", "extensions/good/dist/index.js", "extensions/bad/package.json",
               "extensions/nomanifest/readme.md", "extensions/.registry/abc/package.json", "extensions/loose.txt",
               "other/x/package.json"]
    files = {"extensions/good/package.json": manifest().encode(), "extensions/bad/package.json": b'{"name": "b"}',
             "extensions/.registry/abc/package.json": b"[]"}
    found = check_tree(files, listing)
    assert [e.folder for e in found] == ["extensions/bad", "extensions/good"]
    assert describe_problems(found) == ("extensions/bad: `version` missing, no `directus:extension` object")


def test_the_host_shell_prints_every_manifest_directus_reads_and_they_are_checked(tmp_path):
    root = tmp_path / "extensions"
    for folder, text in {"good": manifest(), "bad one": '{"name": "x"}', ".registry/m-1": manifest("hook"),
                         "not-json": "{oops"}.items():
        (root / folder).mkdir(parents=True)
        (root / folder / "package.json").write_text(text)
    (root / "no-manifest").mkdir()
    out = run(f"cd {q(str(root))} && {PRINT_MANIFESTS}").stdout
    assert sorted(path for path, _ in printed_manifests(out)) == [
        ".registry/m-1/package.json", "bad one/package.json", "good/package.json", "not-json/package.json"]
    assert dict(printed_manifests(out))["good/package.json"].strip() == manifest()
    checked = {e.folder: e for e in check_printed(out)}
    assert sorted(checked) == [".registry/m-1", "bad one", "good"]
    assert checked["good"].ok and checked[".registry/m-1"].ok and not checked["bad one"].ok


def test_an_empty_extensions_folder_prints_nothing(tmp_path):
    assert run(f"cd {q(str(tmp_path))} && {PRINT_MANIFESTS}").stdout == ""


def test_missing_entries_compare_normalised_paths():
    extension = Extension("extensions/x", entries=["./dist/index.js", "dist/api.js"])
    assert missing_entries(extension, {"dist/index.js"}) == ["dist/api.js"]
    assert missing_entries(extension, {"dist/index.js", "dist/api.js"}) == []


def test_no_problems_describe_as_nothing():
    assert describe_problems([Extension("a"), Extension("b")]) == ""
