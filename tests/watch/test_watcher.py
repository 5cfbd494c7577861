"""One scan end to end without the orchestrator: survey, claim, finish."""

from __future__ import annotations

import os

import pytest

from cnmflow.errors import InputError, MovieError
from cnmflow.watch import LEDGER_NAME, Ledger, Scan
from cnmflow.watch.summary import EXTRACTED, FAILED, GROWING, UNREADABLE


def _write(path, data: bytes, mtime_s: int = 1_700_000_000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime_s, mtime_s))


def _survey(folder, out, **options):
    with Ledger.in_folder(out) as ledger:
        return Scan(folder, out, patterns=["*.tif"], **options).survey(ledger)


def _process(folder, out, **options):
    """A scan that claims every candidate and marks it done; returns the claim decisions."""
    scan = Scan(folder, out, patterns=["*.tif"], **options)
    with Ledger.in_folder(out) as ledger:
        candidates, _ = scan.survey(ledger)
        decisions = {}
        for candidate in candidates:
            claimed = scan.claim(ledger, candidate)
            decisions[candidate.group.key] = (claimed.decision, claimed.job.output_dir)
            if claimed.decision == "claim":
                scan.finish(ledger, claimed.job, run_id="r", error=None)
    return decisions


def test_ledger_lives_in_the_output_root(tmp_path):
    _write(tmp_path / "in" / "a.tif", b"a")
    _survey(tmp_path / "in", tmp_path / "out")
    assert (tmp_path / "out" / LEDGER_NAME).is_file()


def test_changed_content_is_processed_again_but_a_touch_is_not(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "a.tif", b"first")
    assert _process(folder, out) == {}
    assert _process(folder, out) == {"a.tif": ("claim", "a")}
    assert _process(folder, out) == {"a.tif": ("done", "a")}
    _write(folder / "a.tif", b"first", mtime_s=1_700_000_100)  # same bytes, new mtime
    _process(folder, out)
    assert _process(folder, out) == {"a.tif": ("done", "a")}
    _write(folder / "a.tif", b"second")  # a new recording under the same name
    _process(folder, out)
    assert _process(folder, out) == {"a.tif": ("claim", "a.rev2")}
    with Ledger.in_folder(out) as ledger:
        assert [(j.output_dir, j.state) for j in ledger.jobs()] == [("a", "done"), ("a.rev2", "done")]
        assert len({m.sha256 for j in ledger.jobs() for m in ledger.members(j.id)}) == 2


def test_a_series_waits_for_every_file_and_for_its_listing(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "s" / "1.tif", b"1")
    _survey(folder, out)
    _write(folder / "s" / "2.tif", b"2")  # a copy still adding files
    candidates, growing = _survey(folder, out)
    assert candidates == [] and growing[0].item == "s/" and growing[0].status == GROWING
    candidates, growing = _survey(folder, out)
    assert growing == [] and [c.group.members for c in candidates] == [("s/1.tif", "s/2.tif")]


def test_hashes_are_remembered_for_unchanged_files(tmp_path, monkeypatch):
    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "a.tif", b"a")
    _survey(folder, out)
    _survey(folder, out)
    import cnmflow.watch.watcher as watcher

    monkeypatch.setattr(watcher, "sha256_file", lambda path: (_ for _ in ()).throw(AssertionError("rehashed")))
    candidates, _ = _survey(folder, out)
    assert len(candidates) == 1


def test_finish_reports_bad_input_and_attempts_left(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "a.tif", b"a")
    _survey(folder, out)
    scan = Scan(folder, out, patterns=["*.tif"], max_attempts=2)
    with Ledger.in_folder(out) as ledger:
        (candidate,), _ = scan.survey(ledger)
        job = scan.claim(ledger, candidate).job
        failed = scan.finish(ledger, job, run_id="r1", error=MovieError("a.tif: not a TIFF"))
        assert failed.status == FAILED and "bad input" in failed.detail and "1 attempt(s) left" in failed.detail
        job = scan.claim(ledger, candidate).job
        done = scan.finish(ledger, job, run_id="r2", error=None)
        assert done.status == EXTRACTED and done.output_dir == str(out.absolute() / "a") and done.attempts == 2


def test_a_multi_file_ome_tiff_at_the_top_level_is_one_run_and_two_recordings_stay_two(tmp_path):
    """Micro-Manager's name.ome.tif, name_1.ome.tif, name_2.ome.tif directly in the watched folder were three runs,
    each failing ("use a sub-folder"). They are one run, in part order, that validates as one recording; two
    complete recordings named a.ome.tif and a_1.ome.tif (the first's metadata names no other file) stay two."""
    import numpy as np
    import tifffile

    from cnmflow.movies import validate_series
    from tests.runs import micro_manager

    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    rng = np.random.default_rng(0)
    micro_manager(folder, [rng.integers(0, 900, (4, 6, 5), dtype=np.uint16) for _ in range(3)])
    for name in ("a.ome.tif", "a_1.ome.tif"):
        tifffile.imwrite(folder / name, rng.integers(0, 900, (4, 6, 5), dtype=np.uint16), ome=True)
    _survey(folder, out)
    candidates, growing = _survey(folder, out)
    assert growing == []
    runs = {c.group.key: c.group.members for c in candidates}
    assert runs == {"MMStack_Pos0.ome.tif": ("MMStack_Pos0.ome.tif", "MMStack_Pos0_1.ome.tif",
                                             "MMStack_Pos0_2.ome.tif"),
                    "a.ome.tif": ("a.ome.tif",), "a_1.ome.tif": ("a_1.ome.tif",)}
    assert validate_series([folder / m for m in runs["MMStack_Pos0.ome.tif"]]).n_frames == 12


def test_a_multi_file_ome_tiff_copied_file_by_file_waits_for_the_parts_its_metadata_names(tmp_path):
    """rsync copies Micro-Manager's files one at a time, each under a hidden temporary name until it is whole. The
    first file, finished, had been started alone and failed ("list the other files"), attempt after attempt, while
    the copy went on; it waits now, naming the files it waits for, and so does a later part whose first file has not
    come. Once all are there, the set is one run."""
    import numpy as np

    from tests.runs import micro_manager

    staging, folder, out = tmp_path / "staging", tmp_path / "in", tmp_path / "out"
    staging.mkdir(), folder.mkdir()
    rng = np.random.default_rng(0)
    names = [p.name for p in micro_manager(staging, [rng.integers(0, 900, (4, 6, 5), dtype=np.uint16)
                                                     for _ in range(3)])]
    (staging / names[0]).rename(folder / names[0])
    (staging / names[1]).rename(folder / f".{names[1]}.Xy12ab")  # rsync's name for a file it is writing
    for _ in range(2):
        candidates, growing = _survey(folder, out)
    assert candidates == [] and [(o.item, o.status) for o in growing] == [(names[0], GROWING)]
    assert f"waiting for {names[1]}, {names[2]}, which the multi-file OME-TIFF's metadata names" in growing[0].detail
    (folder / f".{names[1]}.Xy12ab").rename(folder / names[1])
    lone = tmp_path / "lone"
    lone.mkdir()
    (staging / names[2]).rename(lone / names[2])
    for _ in range(2):
        candidates, growing = _survey(lone, tmp_path / "out_lone")
    assert candidates == [] and f"waiting for {names[0]}" in growing[0].detail
    (lone / names[2]).rename(folder / names[2])
    for _ in range(2):
        candidates, growing = _survey(folder, out)
    assert growing == [] and [c.group.members for c in candidates] == [tuple(names)]


def test_the_watched_folder_itself_is_refused_as_output_root(tmp_path):
    _write(tmp_path / "in" / "session" / "a.tif", b"a")
    os.symlink(tmp_path / "in", tmp_path / "link")
    for out in (tmp_path / "in", tmp_path / "link"):
        with pytest.raises(InputError, match="is the watched folder itself.*results"):
            Scan(tmp_path / "in", out, patterns=["*.tif"])


def test_an_empty_movie_is_not_started_and_its_series_waits(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "a.tif", b"")
    _write(folder / "session" / "msCam1.tif", b"1")
    _write(folder / "session" / "msCam2.tif", b"")
    for _ in range(3):
        candidates, growing = _survey(folder, out)
    assert candidates == []
    assert {o.item: o.status for o in growing} == {"a.tif": GROWING, "session/": GROWING}
    assert all("empty (0 bytes)" in o.detail for o in growing)


def test_an_unreadable_movie_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    import cnmflow.watch.watcher as watcher

    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "a.tif", b"a")
    _write(folder / "b.tif", b"b")
    hash_file = watcher.sha256_file

    def denied(path):  # chmod 000 does not stop root, who runs the tests in containers
        if path.name == "b.tif":
            raise PermissionError(13, "Permission denied", str(path))
        return hash_file(path)

    monkeypatch.setattr(watcher, "sha256_file", denied)
    _survey(folder, out)
    candidates, others = _survey(folder, out)
    assert [c.group.key for c in candidates] == ["a.tif"]
    assert [(o.item, o.status) for o in others] == [("b.tif", UNREADABLE)]
    assert str(folder / "b.tif") in others[0].detail and "Permission denied" in others[0].detail
    monkeypatch.setattr(watcher, "sha256_file", hash_file)
    candidates, others = _survey(folder, out)
    assert [c.group.key for c in candidates] == ["a.tif", "b.tif"] and others == []


def test_a_series_waits_while_a_copy_tool_writes_a_movie_under_a_temporary_name(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "s" / "msCam1.tif", b"1")
    _write(folder / "s" / "msCam2.tif", b"2")
    for temporary in (".msCam3.tif.Xy12Ab", "msCam3.tif.Xy12Ab.partial"):  # rsync, rclone
        _write(folder / "s" / temporary, b"3")
        _survey(folder, out)
        with open(folder / "s" / temporary, "ab") as copy:  # more of it came; the folder's mtime stands still
            copy.write(b"33")
        candidates, growing = _survey(folder, out)
        assert candidates == [] and [(o.item, o.status) for o in growing] == [("s/", GROWING)]
        (folder / "s" / temporary).unlink()
    _write(folder / "s" / "msCam3.tif", b"333")
    _survey(folder, out)
    candidates, growing = _survey(folder, out)
    assert growing == [] and [c.group.members for c in candidates] == [("s/msCam1.tif", "s/msCam2.tif", "s/msCam3.tif")]


def test_a_folder_that_cannot_be_listed_is_reported_not_passed_over(tmp_path, monkeypatch):
    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "s1" / "a.tif", b"a")
    _write(folder / "s2" / "b.tif", b"b")
    scandir = os.scandir

    def denied(path="."):  # chmod 000 does not stop root, who runs the tests in containers
        if os.fspath(path).endswith("s2"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    _survey(folder, out)
    candidates, others = _survey(folder, out)
    assert [c.group.key for c in candidates] == ["s1/"]
    assert [(o.item, o.status) for o in others] == [("s2/", UNREADABLE)]
    assert "folder s2/ cannot be read (Permission denied)" in others[0].detail


def test_a_series_with_a_file_that_cannot_be_looked_at_waits(tmp_path, monkeypatch):
    from pathlib import Path

    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "s" / "1.tif", b"1")
    _write(folder / "s" / "2.tif", b"2")
    stat = Path.stat

    def denied(self, **options):
        if self.name == "2.tif":
            raise PermissionError(13, "Permission denied", str(self))
        return stat(self, **options)

    monkeypatch.setattr(Path, "stat", denied)
    _survey(folder, out)
    candidates, others = _survey(folder, out)
    assert candidates == [] and [(o.item, o.status) for o in others] == [("s/2.tif", UNREADABLE)]


def test_a_series_folder_renamed_during_the_scan_does_not_fail_it(tmp_path, monkeypatch):
    import cnmflow.watch.watcher as watcher

    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "a.tif", b"a")
    _write(folder / "New folder" / "1.tif", b"1")
    listing = watcher.folder_listing

    def renamed(root, key):  # the user renames the folder right after os.walk listed it
        if key == "New folder/":
            (folder / "New folder").rename(folder / "session1")
        return listing(root, key)

    _survey(folder, out)
    monkeypatch.setattr(watcher, "folder_listing", renamed)
    candidates, growing = _survey(folder, out)
    assert [c.group.key for c in candidates] == ["a.tif"]
    assert [(o.item, o.status) for o in growing] == [("New folder/", GROWING)] and "renamed" in growing[0].detail
    monkeypatch.setattr(watcher, "folder_listing", listing)
    _survey(folder, out)
    candidates, growing = _survey(folder, out)
    assert [c.group.key for c in candidates] == ["a.tif", "session1/"] and growing == []


def test_two_watched_folders_cannot_share_an_output_root_but_a_moved_one_can(tmp_path):
    out = tmp_path / "out"
    _write(tmp_path / "rig1" / "s1" / "a.tif", b"1")
    _write(tmp_path / "rig2" / "s2" / "b.tif", b"2")
    _survey(tmp_path / "rig1", out)
    with pytest.raises(InputError, match="already holds the results of the watched folder .*rig1.*own output_root"):
        _survey(tmp_path / "rig2", out)
    candidates, _ = _survey(tmp_path / "rig1", out)  # the first one goes on as before
    assert [c.group.key for c in candidates] == ["s1/"]
    (tmp_path / "rig1").rename(tmp_path / "moved")
    candidates, _ = _survey(tmp_path / "moved", out)
    assert [c.group.key for c in candidates] == ["s1/"]


def test_two_watchers_of_one_folder_with_other_patterns_both_get_their_files(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    _write(folder / "a.tif", b"a")
    _write(folder / "b.isxd", b"b")
    _write(folder / "s" / "c.isxd", b"c")
    found = {}
    for _ in range(2):
        for pattern in ("*.tif", "*.isxd"):  # e.g. a 2P deployment for .tif and a 1P one for .isxd
            with Ledger.in_folder(out) as ledger:
                candidates, _ = Scan(folder, out, patterns=[pattern]).survey(ledger)
            found[pattern] = [c.group.key for c in candidates]
    assert found == {"*.tif": ["a.tif"], "*.isxd": ["b.isxd", "s/"]}
    (folder / "a.tif").unlink()  # a file gone is still forgotten
    with Ledger.in_folder(out) as ledger:
        Scan(folder, out, patterns=["*.isxd"]).survey(ledger)
    _write(folder / "a.tif", b"a")
    candidates, growing = _survey(folder, out)
    assert candidates == [] and "first seen" in growing[0].detail
