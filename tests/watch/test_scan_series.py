"""Finding movies and grouping them into runs (no orchestrator involved)."""

from __future__ import annotations

import os

import pytest

from cnmflow.watch.scan import DEFAULT_PATTERNS, folder_listing, parse_patterns, scan_folder
from cnmflow.watch.series import group_files


def _touch(path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_patterns_from_a_comma_string_or_a_list():
    assert parse_patterns("*.isxd, *.tif,") == ("*.isxd", "*.tif")
    assert parse_patterns(["*.avi", " "]) == ("*.avi",)
    with pytest.raises(ValueError, match="pattern"):
        parse_patterns(" , ")


def test_scan_is_recursive_case_insensitive_and_skips_hidden_and_output(tmp_path):
    for rel in ("a.TIF", "s1/b.isxd", "s1/deep/c.avi", "notes.txt", ".partial.tif", ".work/d.tif", "out/e.isxd"):
        _touch(tmp_path / rel, b"12345")
    found = scan_folder(tmp_path, DEFAULT_PATTERNS, exclude=[tmp_path / "out"])
    assert [o.path for o in found] == ["a.TIF", "s1/b.isxd", "s1/deep/c.avi"]
    assert all(o.size == 5 for o in found)


def test_subfolder_rule_makes_root_files_single_runs_and_each_folder_a_series():
    groups = group_files(["z.tif", "a.isxd", "s1/b2.tif", "s1/b1.tif", "s1/deep/c.avi"], "subfolder")
    assert [(g.key, g.members, g.output_base) for g in groups] == [
        ("a.isxd", ("a.isxd",), "a"),
        ("z.tif", ("z.tif",), "z"),
        ("s1/", ("s1/b1.tif", "s1/b2.tif"), "s1"),
        ("s1/deep/", ("s1/deep/c.avi",), "s1/deep"),
    ]
    assert [g.is_series for g in groups] == [False, False, True, True]


def test_a_series_of_numbered_chunks_runs_in_numeric_order():
    """A Miniscope session folder (0.avi … 11.avi) was run 0, 1, 10, 11, 2, …: time scrambled."""
    groups = group_files([f"s/{k}.avi" for k in (11, 2, 0, 10, 1)], "subfolder")
    assert groups[0].members == ("s/0.avi", "s/1.avi", "s/2.avi", "s/10.avi", "s/11.avi")


def test_file_rule_makes_every_file_its_own_run():
    groups = group_files(["s1/b.tif", "a.isxd"], "file")
    assert [(g.key, g.members, g.output_base) for g in groups] == [
        ("a.isxd", ("a.isxd",), "a"), ("s1/b.tif", ("s1/b.tif",), "s1/b")]
    assert not any(g.is_series for g in groups)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="series_rule"):
        group_files(["a.tif"], "day")


def test_folder_listing_moves_when_a_file_is_added(tmp_path):
    _touch(tmp_path / "s1" / "a.tif")
    before = folder_listing(tmp_path, "s1/")
    os.utime(tmp_path / "s1", ns=(1, 1))
    _touch(tmp_path / "s1" / "b.tif")
    after = folder_listing(tmp_path, "s1/")
    assert before.path == after.path == "s1/" and after.mtime_ns != 1


def test_an_output_folder_holding_the_watched_one_excludes_none_of_its_sub_folders(tmp_path):
    _touch(tmp_path / "data" / "in" / "session" / "a.tif")
    _touch(tmp_path / "data" / "in" / "top.tif")
    found = scan_folder(tmp_path / "data" / "in", ["*.tif"], exclude=[tmp_path / "data"])
    assert [o.path for o in found] == ["session/a.tif", "top.tif"]


def test_an_output_folder_named_through_a_link_is_still_left_out(tmp_path):
    _touch(tmp_path / "real" / "in" / "top.tif")
    _touch(tmp_path / "real" / "in" / "results" / "top" / "cells.isxd")
    os.symlink(tmp_path / "real", tmp_path / "link")
    for watched, out in ((tmp_path / "link" / "in", tmp_path / "real" / "in" / "results"),
                         (tmp_path / "real" / "in", tmp_path / "link" / "in" / "results")):
        found = scan_folder(watched, ["*.tif", "*.isxd"], exclude=[out])
        assert [o.path for o in found] == ["top.tif"]


def test_a_file_that_cannot_be_looked_at_is_noted_not_fatal(tmp_path, monkeypatch):
    from pathlib import Path

    _touch(tmp_path / "s" / "a.tif")
    _touch(tmp_path / "s" / "b.tif")
    stat = Path.stat

    def denied(self, **options):  # a folder with read but no search permission
        if self.name == "b.tif":
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, **options)

    monkeypatch.setattr(Path, "stat", denied)
    unreadable = []
    assert [o.path for o in scan_folder(tmp_path, ["*.tif"], unreadable=unreadable)] == ["s/a.tif"]
    assert [(path, error.strerror) for path, error in unreadable] == [("s/b.tif", "Permission denied")]


def test_a_folder_linked_in_is_scanned_once_and_loops_end(tmp_path):
    _touch(tmp_path / "rig" / "today" / "a.tif")
    _touch(tmp_path / "rig" / "today" / "deep" / "b.tif")
    os.symlink(tmp_path / "rig" / "today" / "deep", tmp_path / "rig" / "today" / "deep" / "loop")
    _touch(tmp_path / "in" / "2024-01-01" / "c.tif")
    os.symlink(tmp_path / "rig" / "today", tmp_path / "in" / "rig1")  # a session linked in from the rig
    os.symlink(tmp_path / "rig" / "today", tmp_path / "in" / "rig1-again")
    os.symlink(tmp_path / "in" / "2024-01-01", tmp_path / "in" / "0-latest")  # already scanned by its own name
    os.symlink(tmp_path, tmp_path / "in" / "up")  # holds the watched folder
    found = scan_folder(tmp_path / "in", ["*.tif"])
    assert [o.path for o in found] == ["2024-01-01/c.tif", "rig1/a.tif", "rig1/deep/b.tif"]


def test_an_output_folder_linked_into_the_watched_one_is_left_out(tmp_path):
    _touch(tmp_path / "in" / "a.tif")
    _touch(tmp_path / "out" / "a" / "cells.isxd")
    os.symlink(tmp_path / "out", tmp_path / "in" / "results")
    found = scan_folder(tmp_path / "in", ["*.tif", "*.isxd"], exclude=[tmp_path / "out"])
    assert [o.path for o in found] == ["a.tif"]
