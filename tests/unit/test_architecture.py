"""The architecture holds: the layers of docs/architecture.md (import-linter's contract), no
import cycle anywhere in the package, and no process manager named outside runtimes/."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "directus_deploy"


def test_the_layer_contract_is_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_no_module_imports_itself_back_through_others():
    graph = grimp.build_graph("directus_deploy")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} <-> {imported}")
    # a package imports its own modules (its __init__) and they import nothing back but siblings
    cycles = [c for c in cycles if not _package_and_member(c)]
    assert not cycles, cycles


def _package_and_member(cycle: str) -> bool:
    first, second = cycle.split(" <-> ")
    return second.startswith(first + ".") or first.startswith(second + ".")


RUNTIME_WORDS = re.compile(r"pm2|systemd|systemctl|compose|docker", re.IGNORECASE)


def test_only_the_runtimes_name_a_process_manager():
    named = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "runtimes" in path.relative_to(PACKAGE).parts:
            continue
        named += [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
                  for number, line in enumerate(path.read_text().splitlines(), 1) if RUNTIME_WORDS.search(line)]
    assert not named, "only directus_deploy/runtimes/ may name a process manager:\n" + "\n".join(named)
