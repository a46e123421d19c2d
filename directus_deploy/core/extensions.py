"""Directus extensions: validating manifests before the switch, building what needs it.

Directus 12 reads every `extensions/<folder>/package.json`; if one of them parses but is not a
valid extension manifest, it loads *no* extension at all (and only logs a warning). So every
manifest is checked here, the way Directus checks it, before a release can go live.
"""

from __future__ import annotations

import json
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from directus_deploy.core.errors import Refused

APP_TYPES = {"interface", "display", "layout", "module", "panel", "theme"}
API_TYPES = {"hook", "endpoint"}
HYBRID_TYPES = {"operation"}
ALL_TYPES = APP_TYPES | API_TYPES | HYBRID_TYPES | {"bundle"}


@dataclass
class Extension:
    folder: str  # e.g. extensions/directus-extension-hello, or .registry/<id>
    name: str = ""
    version: str = ""
    type: str = ""
    entries: list = field(default_factory=list)  # files Directus will load, relative to the folder
    problems: list = field(default_factory=list)
    build_script: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def check_manifest(folder: str, text: bytes | str | None) -> Extension | None:
    """Check one extension folder's package.json as Directus would. None: a folder Directus
    skips (no package.json, or one that is not JSON)."""
    if text is None:
        return None
    try:
        package = json.loads(text)
    except ValueError:
        return None  # Directus skips a folder whose package.json is not JSON
    extension = Extension(folder)
    if not isinstance(package, dict):
        extension.problems.append("package.json is not an object")
        return extension
    extension.name = str(package.get("name", ""))
    extension.version = str(package.get("version", ""))
    extension.build_script = bool((package.get("scripts") or {}).get("build"))
    options = package.get("directus:extension")
    for key in ("name", "version"):
        if not isinstance(package.get(key), str) or not package.get(key):
            extension.problems.append(f"`{key}` missing")
    if not isinstance(options, dict):
        extension.problems.append("no `directus:extension` object")
        return extension
    kind = options.get("type")
    extension.type = str(kind)
    if kind not in ALL_TYPES:
        extension.problems.append(f"type {kind!r} is not one of {', '.join(sorted(ALL_TYPES))}")
        return extension
    if not isinstance(options.get("host"), str):
        extension.problems.append("`host` missing (e.g. \"^12.0.0\")")
    path, source = options.get("path"), options.get("source")
    if kind in APP_TYPES | API_TYPES:
        if not isinstance(path, str) or not isinstance(source, str):
            extension.problems.append("`path` and `source` must be strings")
        else:
            extension.entries = [path]
    else:  # hybrid and bundles: {app, api}
        if not (isinstance(path, dict) and isinstance(path.get("app"), str) and isinstance(path.get("api"), str)):
            extension.problems.append("`path` must be {app, api}")
        else:
            extension.entries = [path["app"], path["api"]]
        if kind == "bundle":
            if not isinstance(options.get("entries"), list):
                extension.problems.append("a bundle needs `entries`")
        elif not (isinstance(source, dict) and isinstance(source.get("app"), str) and isinstance(source.get("api"), str)):
            extension.problems.append("`source` must be {app, api}")
    return extension


# Shell run inside an extensions/ folder: prints every package.json Directus will read there
# (its own folders and the marketplace's .registry), each after a `@@package <path>` line.
PRINT_MANIFESTS = ("for f in */package.json .registry/*/package.json; do "
                   "[ -f \"$f\" ] && { printf '\\n@@package\\t%s\\n' \"$f\"; cat -- \"$f\"; }; done; true")


def printed_manifests(output: str) -> list[tuple[str, str]]:
    """(package.json path, its text) pairs from PRINT_MANIFESTS output."""
    pairs = []
    for chunk in output.split("\n@@package\t")[1:]:
        path, _, text = chunk.partition("\n")
        pairs.append((path, text))
    return pairs


def check_printed(output: str) -> list[Extension]:
    """Check every manifest in PRINT_MANIFESTS output."""
    found = []
    for path, text in printed_manifests(output):
        extension = check_manifest(path.rsplit("/", 1)[0], text)
        if extension is not None:
            found.append(extension)
    return found


def missing_entries(extension: Extension, present: set[str]) -> list[str]:
    return [e for e in extension.entries if posixpath.normpath(e) not in present]


def check_tree(files: dict[str, bytes | None], listing: list[str], root: str = "extensions") -> list[Extension]:
    """Check every extension folder under `root` in a file tree (paths relative to the project).
    `files` maps each folder's package.json path to its content; `listing` is every file path."""
    folders = sorted({p.split("/")[1] for p in listing if p.startswith(root + "/") and p.count("/") >= 2
                      and not p.split("/")[1].startswith(".")})
    found = []
    for name in folders:
        folder = f"{root}/{name}"
        extension = check_manifest(folder, files.get(f"{folder}/package.json"))
        if extension is None:
            continue
        found.append(extension)
    return found


def build_missing(source, tag, archive: Path, extensions: list[Extension], say) -> list[str]:
    """Build extensions whose entry file is missing and that have a build script, into the
    release archive. Returns the folders built."""
    listing = set(source.files(tag))
    needing = [e for e in extensions if e.ok and e.build_script and
               missing_entries(e, {p[len(e.folder) + 1:] for p in listing if p.startswith(e.folder + "/")})]
    if not needing:
        return []
    with tempfile.TemporaryDirectory(prefix="extension-build-") as work:
        tree = Path(work) / "tree"
        tree.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        for extension in needing:
            folder = tree / extension.folder
            say(f"    building {extension.folder} (npm install, npm run build)")
            for command in (["npm", "install", "--no-audit", "--no-fund"], ["npm", "run", "build"]):
                result = subprocess.run(command, cwd=folder, capture_output=True, text=True)
                if result.returncode != 0:
                    tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
                    raise Refused(f"building {extension.folder} failed ({' '.join(command)}): {tail[0]}")
            built = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
            still = missing_entries(extension, built)
            if still:
                raise Refused(f"{extension.folder}: its build did not produce {', '.join(still)}")
            shutil.rmtree(folder / "node_modules", ignore_errors=True)
        with tarfile.open(archive, "w") as tar:
            for child in sorted(tree.iterdir()):
                tar.add(child, arcname=child.name)
    return [e.folder for e in needing]


def describe_problems(extensions: list[Extension]) -> str:
    bad = [e for e in extensions if not e.ok]
    return "; ".join(f"{e.folder}: {', '.join(e.problems)}" for e in bad)
