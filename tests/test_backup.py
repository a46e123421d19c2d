"""Backups on the real test bed: taken, verified by a restore, immutable, incremental, and
restored over a damaged production so that it serves exactly what it served before."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest

from testbed.content import png
from testbed.databases import ENGINES

from .helpers import fab_ok, one_line, run_fab, tree_fingerprint


@pytest.fixture(scope="module")
def productions(bed, tmp_path_factory):
    made = bed.new_productions()
    folder = tmp_path_factory.mktemp("backup")
    yield {engine: (p, bed.tool_env(p, folder / engine)) for engine, p in made.items()}
    for production in made.values():
        production.destroy()


def backups_dir(env_file):
    return env_file.parent / "srv" / "backups"


def manifests(env_file) -> list[dict]:
    folder = backups_dir(env_file)
    found = sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []
    return [json.loads((p / "manifest.json").read_text()) for p in found]






@pytest.mark.parametrize("engine", ENGINES)
def test_backup_then_damage_then_restore_serves_exactly_what_it_served(productions, engine):
    production, env_file = productions[engine]
    install = f"--install={production.folder}"
    before = production.content()
    fab_ok("backup.all", install, env_file=env_file)
    backup = manifests(env_file)[-1]
    assert backup["database"]["tables"]["articles"] == len(before["articles"])
    assert backup["uploads"]["count"] >= 24 and backup["extensions"]["registry"] == [production.registry_folder]

    # private: folders 0700, files 0600
    root = backups_dir(env_file) / backup["id"]
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))

    # damage production: rows and files deleted through the API, an upload deleted on disk,
    # a marketplace extension removed
    api = production.api
    doomed = [a["id"] for a in before["articles"][:5]]
    api.json("DELETE", "/items/articles", doomed)
    file_ids = list(before["files"])
    api.request("DELETE", f"/files/{file_ids[6]}")
    upload_on_disk = next(p for p in (production.folder / "uploads").iterdir() if p.name.startswith(file_ids[7]))
    upload_on_disk.unlink()
    shutil.rmtree(production.folder / "extensions" / ".registry" / production.registry_folder)
    assert production.content() != before

    result = fab_ok("backup.restore", f"--id={backup['id']}", install, "--yes", env_file=env_file)
    assert "safety backup" in result.stdout
    assert production.content() == before
    loaded = {e["schema"]["name"] for e in api.get("/extensions")["data"] if e["schema"]}
    assert "directus-extension-greeting" in loaded
    # the damaged state was kept too: the safety backup holds the fewer rows
    safety = manifests(env_file)[-1]
    assert safety["reason"].startswith("pre-restore") and safety["database"]["tables"]["articles"] == len(before["articles"]) - 5


def test_a_backup_keeps_old_bytes_when_production_changes_a_file(productions):
    """Replace one upload through Directus and overwrite another in place on disk: the backup
    keeps the old bytes of both (it never shares an inode with a live file)."""
    production, env_file = productions["sqlite"]
    install = f"--install={production.folder}"
    fab_ok("backup.all", install, env_file=env_file)
    first = manifests(env_file)[-1]
    files = first["uploads"]["files"]
    replaced_id = production.content()["files"]
    target_id = sorted(replaced_id)[0]
    replaced_name = next(name for name in files if name.startswith(target_id))
    in_place_name = sorted(name for name in files if not name.startswith(target_id) and name.endswith(".png"))[0]

    production.api.replace_file(target_id, "new.png", png(10, 10, seed=999))
    live = production.folder / "uploads" / in_place_name
    with open(live, "r+b") as handle:  # an editor or a script writing into the live file
        handle.seek(0)
        handle.write(b"\xff" * 32)

    backup_root = backups_dir(env_file) / first["id"] / "uploads"
    for name in (replaced_name, in_place_name):
        copy = backup_root / name
        assert subprocess.run(["sha256sum", str(copy)], capture_output=True, text=True).stdout[:64] == files[name][2]
        assert copy.stat().st_ino != (production.folder / "uploads" / name).stat().st_ino

    # the next backup copies the two changed files and hard-links the rest to the first backup
    fab_ok("backup.all", install, env_file=env_file)
    second = manifests(env_file)[-1]
    assert second["previous"] == first["id"]
    assert second["uploads"]["copied"] <= 4  # the two changed files (+ Directus's health probe file, a thumbnail)
    assert second["uploads"]["linked"] >= second["uploads"]["count"] - 4
    second_root = backups_dir(env_file) / second["id"] / "uploads"
    assert (second_root / in_place_name).stat().st_ino != (backup_root / in_place_name).stat().st_ino
    unchanged = sorted(set(files) - {replaced_name, in_place_name, "directus-health-file"})[0]
    assert (second_root / unchanged).stat().st_ino == (backup_root / unchanged).stat().st_ino


def test_an_unchanged_backup_shares_the_previous_snapshot_and_pruning_keeps_it(bed, productions):
    production, env_file = productions["postgres"]
    install = f"--install={production.folder}"
    fab_ok("backup.all", install, env_file=env_file)
    owner = manifests(env_file)[-1]
    production.api.get("/server/health")  # Directus rewrites its probe file: not content
    for _ in range(2):
        fab_ok("backup.files", install, env_file=env_file)
    first_sharer, second_sharer = manifests(env_file)[-2:]
    for sharer in (first_sharer, second_sharer):
        assert sharer["parts"] == ["files"]
        assert sharer["uploads"]["copied"] == 0 and sharer["uploads"]["bytes_written"] == 0
        assert sharer["uploads"]["snapshot_of"] == owner["id"]
        assert sharer["uploads"]["files"] == owner["uploads"]["files"]

    # pruning the owner hands its uploads folder to the oldest sharer; the other follows it
    keep_two = bed.tool_env(production, env_file.parent, KEEP_BACKUPS="2")
    safety = [m["id"] for m in manifests(env_file) if m.get("keep")]  # restores' safety backups stay
    older = [m["id"] for m in manifests(env_file)][:-2]
    fab_ok("backup.prune", env_file=keep_two)
    assert [m["id"] for m in manifests(env_file)] == safety + [first_sharer["id"], second_sharer["id"]]
    assert not any((backups_dir(env_file) / b).exists() for b in older if b not in safety)
    first_uploads = backups_dir(env_file) / first_sharer["id"] / "uploads"
    assert first_uploads.is_dir() and not first_uploads.is_symlink()
    assert os.readlink(backups_dir(env_file) / second_sharer["id"] / "uploads") == f"../{first_sharer['id']}/uploads"
    for sharer in (first_sharer, second_sharer):
        fab_ok("backup.verify", f"--id={sharer['id']}", install, env_file=env_file)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_corrupted_dump_fails_verification(productions, engine):
    production, env_file = productions[engine]
    install = f"--install={production.folder}"
    fab_ok("backup.db", install, env_file=env_file)
    backup = manifests(env_file)[-1]
    fab_ok("backup.verify", f"--id={backup['id']}", install, env_file=env_file)
    dump = backups_dir(env_file) / backup["id"] / backup["database"]["file"]
    size = dump.stat().st_size
    with open(dump, "r+b") as handle:
        handle.truncate(size // 2)
    result = run_fab("backup.verify", f"--id={backup['id']}", install, env_file=env_file)
    assert result.returncode == 1
    assert "FAILED verification" in one_line(result)
    assert "db checksum  FAIL" in result.stdout and "db restore   FAIL" in result.stdout


def test_pull_downloads_checks_and_resumes(productions, tmp_path):
    production, env_file = productions["mysql"]
    fab_ok("backup.all", f"--install={production.folder}", env_file=env_file)
    backup = manifests(env_file)[-1]
    fab_ok("backup.pull", f"--id={backup['id']}", f"--to={tmp_path}", env_file=env_file)
    local = tmp_path / backup["id"]
    dump = local / backup["database"]["file"]
    assert dump.stat().st_size == backup["database"]["size"]
    assert stat.S_IMODE(local.stat().st_mode) == 0o700 and stat.S_IMODE(dump.stat().st_mode) == 0o600
    # an interrupted download: the dump is cut short, one upload is missing
    with open(dump, "r+b") as handle:
        handle.truncate(backup["database"]["size"] // 3)
    victim = next((local / "uploads").iterdir())
    victim.unlink()
    again = fab_ok("backup.pull", f"--id={backup['id']}", f"--to={tmp_path}", env_file=env_file)
    assert "1 resumed" in again.stdout
    assert subprocess.run(["sha256sum", str(dump)], capture_output=True, text=True).stdout[:64] == backup["database"]["sha256"]
    assert victim.exists()


def test_guards_refuse_with_one_line_and_leave_nothing(bed, productions, tmp_path):
    production, env_file = productions["sqlite"]
    srv = env_file.parent / "srv"
    before = tree_fingerprint(srv)
    # the database file is missing (production broken): nothing half-done stays behind
    broken = tmp_path / "broken"
    shutil.copytree(production.folder, broken, symlinks=True, ignore=shutil.ignore_patterns("node_modules", "uploads"))
    (broken / "uploads").mkdir()
    os.symlink(production.folder / "node_modules", broken / "node_modules")
    (broken / "database" / "data.db").unlink()
    result = run_fab("backup.all", f"--install={broken}", env_file=env_file)
    assert result.returncode == 1 and "not found" in one_line(result)
    assert tree_fingerprint(srv, ignore=(".deploy",)) == {k: v for k, v in before.items() if not k.startswith(".deploy")}

    # the database server cannot be reached (a PostgreSQL install whose DB_PORT is wrong)
    pg, pg_env = productions["postgres"]
    unreachable = tmp_path / "unreachable"
    shutil.copytree(pg.folder, unreachable, symlinks=True, ignore=shutil.ignore_patterns("node_modules", "uploads"))
    (unreachable / "uploads").mkdir()
    os.symlink(pg.folder / "node_modules", unreachable / "node_modules")
    env = (unreachable / ".env").read_text().replace("DB_PORT=5432", "DB_PORT=1")
    (unreachable / ".env").write_text(env)
    pg_srv = pg_env.parent / "srv"
    pg_before = tree_fingerprint(pg_srv, ignore=(".deploy",))
    result = run_fab("backup.all", f"--install={unreachable}", env_file=pg_env)
    assert result.returncode == 1
    line = one_line(result)
    assert "back up failed" in line and ("Connection refused" in line or "connection" in line.lower())
    assert pg.database.password not in result.stdout + result.stderr
    assert tree_fingerprint(pg_srv, ignore=(".deploy",)) == pg_before

    # not an install at all
    result = run_fab("backup.all", f"--install={tmp_path / 'nothing'}", env_file=env_file)
    assert result.returncode == 2 and "no Directus production" in one_line(result)

    # a backup id that does not exist, or walks out of the backups folder
    for bad in ("20990101T000000Z-nope", "../../../etc/passwd", "x;touch /tmp/pwned"):
        result = run_fab("backup.restore", f"--id={bad}", "--yes", f"--install={production.folder}", env_file=env_file)
        assert result.returncode == 2, bad
        one_line(result)
    assert not os.path.exists("/tmp/pwned")


def test_not_enough_disk_is_refused_before_anything_is_written(bed, productions, tmp_path):
    production, env_file = productions["sqlite"]
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)], check=True)
    try:
        small_env = bed.tool_env(production, tmp_path / "cfg", DEPLOY_PATH=str(tiny / "srv"))
        result = run_fab("backup.all", f"--install={production.folder}", env_file=small_env)
        assert result.returncode == 2
        assert "not enough free disk" in one_line(result)
        assert not (tiny / "srv" / "backups").exists() or not any((tiny / "srv" / "backups").iterdir())
    finally:
        subprocess.run(["umount", str(tiny)], check=True)


def test_dry_run_changes_nothing(productions):
    production, env_file = productions["postgres"]
    srv = env_file.parent / "srv"
    before = tree_fingerprint(srv)
    result = fab_ok("backup.all", f"--install={production.folder}", "--dry-run", env_file=env_file)
    assert "would write backup" in result.stdout
    assert tree_fingerprint(srv) == before


def test_prune_keeps_the_newest_and_removes_leftovers(bed, productions, tmp_path):
    production, env_file = productions["sqlite"]
    keep_two = bed.tool_env(production, env_file.parent, KEEP_BACKUPS="2")
    for _ in range(2):
        fab_ok("backup.db", f"--install={production.folder}", env_file=keep_two)
    leftover = backups_dir(env_file) / ".tmp-20000101T000000Z-interrupted"
    leftover.mkdir()
    safety = [m["id"] for m in manifests(env_file) if m.get("keep")]
    ids = [m["id"] for m in manifests(env_file) if not m.get("keep")]
    assert len(ids) > 2
    result = fab_ok("backup.prune", env_file=keep_two)
    assert [m["id"] for m in manifests(env_file)] == sorted(safety + ids[-2:])
    assert not leftover.exists()
    assert "deleted" in result.stdout


def test_a_safety_backup_is_never_pruned_and_goes_only_when_deleted(bed, productions):
    production, env_file = productions["mysql"]
    install = f"--install={production.folder}"
    fab_ok("backup.files", install, env_file=env_file)
    source = manifests(env_file)[-1]["id"]
    fab_ok("backup.restore", f"--id={source}", "--only=files", install, "--yes", env_file=env_file)
    safety = [m["id"] for m in manifests(env_file) if source in (m.get("keep") or "")]
    assert len(safety) == 1, [m.get("keep") for m in manifests(env_file)]
    keep_one = bed.tool_env(production, env_file.parent, KEEP_BACKUPS="1")
    fab_ok("backup.db", install, env_file=keep_one)
    newest = manifests(env_file)[-1]["id"]
    result = fab_ok("backup.prune", env_file=keep_one)
    kept = [m["id"] for m in manifests(env_file)]
    assert kept == sorted({*safety, newest, *[m["id"] for m in manifests(env_file) if m.get("keep")]})
    assert f"keeping {safety[0]}: safety backup" in result.stdout

    unconfirmed = run_fab("backup.delete", f"--id={safety[0]}", env_file=keep_one)  # no terminal, no --yes
    assert unconfirmed.returncode == 2 and "--yes" in one_line(unconfirmed)
    assert (backups_dir(env_file) / safety[0]).is_dir()
    fab_ok("backup.delete", f"--id={safety[0]}", "--yes", env_file=keep_one)
    assert safety[0] not in [m["id"] for m in manifests(env_file)]
    assert not (backups_dir(env_file) / safety[0]).exists()
