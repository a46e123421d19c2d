"""core.manifest: backup ids, file listings and hashes as the host's `find` and `sha256sum -z`
print them (run here on real files), hashes inherited from the previous backup, the listing
digest equal to the shell's, copy sizes, row count checks, the parts and summary of a manifest."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone

import pytest

from directus_deploy.core.manifest import (
    CONFIG_DIGEST,
    VOLATILE_TABLES,
    Entry,
    bytes_to_copy,
    compare_counts,
    dumps,
    file_parts,
    fill_hashes,
    listing_digest,
    listing_from_json,
    listing_to_json,
    new_backup_id,
    parse_hashes,
    parse_listing,
    same_listing,
    summary_of,
)
from directus_deploy.host.remote import q
from directus_deploy.state.layout import is_id

from .local import run

FILES = {"a.jpg": b"alpha", "sub dir/b c.png": b"bravo!", "ünï/çødé.txt": b"", "x'y\"z.txt": b"q", "-dash": b"d"}
NOW = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def tree(root, files=FILES):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


@pytest.mark.parametrize("reason, expected", [
    ("pre-release v1.2.3", "20260506T070809Z-pre-release-v1.2.3"),
    ("Manual", "20260506T070809Z-manual"),
    ("../../etc/passwd", "20260506T070809Z-etc-passwd"),
    ("$(rm -rf /)", "20260506T070809Z-rm-rf"),
    ("", "20260506T070809Z-manual"),
    ("...", "20260506T070809Z-manual"),
    ("x" * 100, "20260506T070809Z-" + "x" * 60),
])
def test_a_backup_id_is_a_safe_id_whatever_the_reason(reason, expected):
    backup_id = new_backup_id(reason, NOW)
    assert backup_id == expected and is_id(backup_id)


def test_the_listing_parser_reads_find_output_of_awkward_names(tmp_path):
    root = tree(tmp_path / "uploads")
    blob = run(f"cd {q(str(root))} && find . -type f -printf '%P\\0%s\\0%T@\\0'").stdout
    listing = parse_listing(blob)
    assert {p: e.size for p, e in listing.items()} == {p: len(c) for p, c in FILES.items()}
    stamp = listing["a.jpg"].mtime
    assert abs(float(stamp) - (root / "a.jpg").stat().st_mtime) < 1e-3


def test_the_hash_parser_reads_sha256sum_z_output(tmp_path):
    root = tree(tmp_path / "uploads")
    blob = run(f"cd {q(str(root))} && find . -type f -print0 | xargs -0 sha256sum -z --").stdout
    assert parse_hashes(blob) == {p: hashlib.sha256(c).hexdigest() for p, c in FILES.items()}


def test_the_hash_parser_skips_what_is_not_a_hash_line():
    digest = "a" * 64
    assert parse_hashes(f"\nnoise\0{digest}  ./ok\0short  ./x\0") == {"ok": digest}
    assert parse_hashes(f"{digest} *./binary\0") == {"binary": digest}


def test_the_listing_digest_is_the_one_the_host_computes(tmp_path):
    root = tree(tmp_path / "uploads")
    listing = parse_listing(run(f"cd {q(str(root))} && find . -type f -printf '%P\\0%s\\0%T@\\0'").stdout)
    shell = run(f"cd {q(str(root))} && find . -type f -printf '%P\\t%s\\t%T@\\0' | LC_ALL=C sort -z | sha256sum "
                "| cut -c1-64").stdout.strip()
    assert listing_digest(listing) == shell


def test_the_listing_digest_moves_with_any_size_or_time():
    listing = {"a": Entry(1, "1.0"), "b": Entry(2, "2.0")}
    digest = listing_digest(listing)
    assert listing_digest({"b": Entry(2, "2.0"), "a": Entry(1, "1.0")}) == digest
    assert listing_digest({**listing, "a": Entry(1, "1.5")}) != digest
    assert listing_digest({**listing, "a": Entry(9, "1.0")}) != digest


def test_unchanged_files_inherit_their_hash_and_the_others_need_one():
    previous = {"same": Entry(3, "1.0", "h-same"), "touched": Entry(3, "1.0", "h-old"), "grown": Entry(3, "1.0", "h")}
    live = {"same": Entry(3, "1.0"), "touched": Entry(3, "2.0"), "grown": Entry(4, "1.0"), "new": Entry(1, "1.0"),
            "copied": Entry(5, "5.0")}
    missing = fill_hashes(live, {"copied": "h-copied"}, previous)
    assert sorted(missing) == ["grown", "new", "touched"]
    assert live["same"].sha256 == "h-same" and live["copied"].sha256 == "h-copied"
    assert live["touched"].sha256 is None


def test_a_previous_entry_without_a_hash_is_not_inherited():
    live = {"a": Entry(1, "1.0")}
    assert fill_hashes(live, {}, {"a": Entry(1, "1.0", None)}) == ["a"]


def test_same_listing_compares_names_sizes_and_times():
    base = {"a": Entry(1, "1.0", "x")}
    assert same_listing({"a": Entry(1, "1.0")}, base)
    assert not same_listing({"a": Entry(1, "1.1")}, base)
    assert not same_listing({"a": Entry(1, "1.0"), "b": Entry(1, "1.0")}, base)
    assert not same_listing({}, base)


def test_bytes_to_copy_counts_new_and_changed_files_only():
    previous = {"a": Entry(10, "1"), "b": Entry(20, "1"), "gone": Entry(99, "1")}
    live = {"a": Entry(10, "1"), "b": Entry(25, "1"), "c": Entry(7, "1")}
    assert bytes_to_copy(live, previous) == 32
    assert bytes_to_copy(live, {}) == 42


def test_listings_round_trip_through_json():
    listing = {"b": Entry(2, "2.5", "hb"), "a": Entry(1, "1.5", None)}
    data = listing_to_json(listing)
    assert list(data) == ["a", "b"] and data["b"] == [2, "2.5", "hb"]
    assert listing_from_json(data) == listing


def test_dump_counts_must_lie_between_the_live_counts_before_and_after():
    before = {"articles": 10, "tags": 5, "directus_activity": 100, "new_table": 1}
    after = {"articles": 12, "tags": 5, "directus_activity": 300, "new_table": 1}
    assert compare_counts({"articles": 11, "tags": 5, "directus_activity": 7, "new_table": 1}, before, after) == []
    problems = compare_counts({"articles": 13, "tags": 4, "directus_activity": 7}, before, after)
    assert problems == ["table new_table is missing from the dump",
                        "table articles: dump has 13 rows, live had 10 before and 12 after",
                        "table tags: dump has 4 rows, live had 5 before and 5 after"]
    assert "directus_activity" in VOLATILE_TABLES


def test_a_table_created_while_the_dump_ran_is_not_missing():
    assert compare_counts({"a": 1}, {"a": 1}, {"a": 1, "made_during": 0}) == []


def test_file_parts_are_uploads_extensions_and_each_storage_location():
    manifest = {"uploads": {"files": {}}, "extensions": None, "storage/b": {"files": {}}, "storage/a": {"x": 1},
                "storage/empty": {}, "env": {"sha256": "x"}}
    assert file_parts(manifest) == ["uploads", "storage/a", "storage/b"]
    assert file_parts({"extensions": {"files": {}}}) == ["extensions"]


def test_the_summary_holds_the_listed_keys_and_the_migration_head():
    manifest = {"id": "i", "reason": "r", "parts": ["db"], "uploads": {"files": {"huge": [1, "1", "h"]}},
                "database": {"migration_head": "20250101A", "tables": {"t": 1}}, "keep": "release x"}
    summary = summary_of(manifest)
    assert summary["id"] == "i" and summary["keep"] == "release x" and summary["migration_head"] == "20250101A"
    assert "uploads" not in summary and "database" not in summary
    assert summary_of({})["migration_head"] is None


def test_dumps_is_one_compact_line():
    text = dumps({"a": [1, 2], "b": {"c": "d"}})
    assert text == '{"a":[1,2],"b":{"c":"d"}}\n'


def config_digest(folder) -> str:
    return run(CONFIG_DIGEST.format(folder=q(str(folder)))).stdout.strip()


def test_the_config_digest_follows_contents_and_names(tmp_path):
    folder = tree(tmp_path / "config", {"data/roles.json": b"[1]", "presets.json": b"[]"})
    digest = config_digest(folder)
    assert len(digest) == 64 and config_digest(folder) == digest
    (folder / "data/roles.json").write_bytes(b"[2]")
    changed = config_digest(folder)
    assert changed != digest
    (folder / "data/roles.json").rename(folder / "data/policies.json")
    assert config_digest(folder) != changed


def test_the_config_digest_sees_a_change_in_a_file_whose_name_has_a_space(tmp_path):
    folder = tree(tmp_path / "config", {"data/my roles.json": b"[1]", "presets.json": b"[]"})
    digest = config_digest(folder)
    (folder / "data/my roles.json").write_bytes(b"[2]")
    assert config_digest(folder) != digest


def test_listing_sizes_are_bytes_not_characters(tmp_path):
    root = tree(tmp_path / "u", {"é.txt": "é".encode()})
    listing = parse_listing(run(f"cd {q(str(root))} && find . -type f -printf '%P\\0%s\\0%T@\\0'").stdout)
    assert listing == {"é.txt": Entry(2, listing["é.txt"].mtime)} and os.path.getsize(root / "é.txt") == 2
