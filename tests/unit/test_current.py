"""`current` moves by one rename, written in one place (state/releases.point_current): run here
in bash against a temporary layout."""

from __future__ import annotations

import os
import subprocess

from directus_deploy.state.layout import Layout
from directus_deploy.state.releases import point_current


def bash(script: str) -> None:
    subprocess.run(["bash", "-c", "set -eo pipefail\n" + script], check=True)


def test_current_moves_to_the_release_with_a_relative_link_and_no_leftover(tmp_path):
    layout = Layout(str(tmp_path))
    for release in ("20260101T000000Z-v1", "20260102T000000Z-v2"):
        (tmp_path / "releases" / release).mkdir(parents=True)
    bash(point_current(layout, "20260101T000000Z-v1"))
    assert os.readlink(tmp_path / "current") == "releases/20260101T000000Z-v1"
    inode = os.lstat(tmp_path / "current").st_ino
    bash(point_current(layout, "20260102T000000Z-v2"))
    assert os.readlink(tmp_path / "current") == "releases/20260102T000000Z-v2"
    assert os.lstat(tmp_path / "current").st_ino != inode  # a new link renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "releases"]


def test_a_release_keeps_when_it_first_went_live_and_an_unwritable_one_still_switches(tmp_path):
    layout = Layout(str(tmp_path))
    for release in ("a", "b"):
        (tmp_path / "releases" / release).mkdir(parents=True)
    bash(point_current(layout, "a"))
    first = (tmp_path / "releases" / "a" / "SERVED").read_text()
    bash(point_current(layout, "b") + "\n" + point_current(layout, "a"))
    assert (tmp_path / "releases" / "a" / "SERVED").read_text() == first  # the first time, kept
    assert (tmp_path / "releases" / "b" / "SERVED").exists()
    (tmp_path / "releases" / "b" / "SERVED").unlink()
    # nowhere to write it (a link into a folder that does not exist, even for root): the switch happens all the same
    (tmp_path / "releases" / "b" / "SERVED").symlink_to(tmp_path / "nowhere" / "SERVED")
    bash(point_current(layout, "b"))
    assert os.readlink(tmp_path / "current") == "releases/b" and not (tmp_path / "nowhere").exists()


def test_current_goes_back_to_a_target_read_on_the_host(tmp_path):
    layout = Layout(str(tmp_path))
    (tmp_path / "releases" / "a").mkdir(parents=True)
    (tmp_path / "releases" / "b").mkdir()
    bash(point_current(layout, "a"))
    bash(f"was=$(readlink -- {tmp_path}/current)\n{point_current(layout, 'b')}\n"
         + point_current(layout, target_word='"$was"'))
    assert os.readlink(tmp_path / "current") == "releases/a"


def test_a_current_that_is_a_real_folder_is_not_replaced(tmp_path):
    """mv -T refuses to put a link over a folder: an install's own folder is never swapped away."""
    layout = Layout(str(tmp_path))
    (tmp_path / "releases" / "a").mkdir(parents=True)
    (tmp_path / "current").mkdir()
    (tmp_path / "current" / "keep.txt").write_text("data")
    result = subprocess.run(["bash", "-c", point_current(layout, "a")], capture_output=True, text=True)
    assert result.returncode != 0
    assert (tmp_path / "current" / "keep.txt").read_text() == "data"
