"""Work copies are shared and reference-counted: never deleted under a live user, the last one removes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnmflow.movies.work_copy import (WORK_DIR_NAME, ensure_work_copy, find_work_copy, remove_unused,
                                      remove_work_copy, work_copy_dir)
from cnmflow.outputs.folder import open_output_dir
from cnmflow.synthetic import simulate_1p, write_tiff
from cnmflow.validate import validate_inputs
from tests.outputs.holders import holding_work_copy, kill_hard

KEY = "ab" * 32


@pytest.fixture(scope="module")
def movie(tmp_path_factory) -> Path:
    simulated = simulate_1p(shape=(24, 24), n_frames=40, n_neurons=2, gsig=3.0, fr=10.0, rng=2)
    # compressed: a single uncompressed TIFF is read in place, without a work copy
    return write_tiff(tmp_path_factory.mktemp("movie") / "movie.tif", simulated.movie, fr=10.0, compression="zlib")


@pytest.fixture(scope="module")
def series(movie):
    return validate_inputs([movie]).series


def test_the_copy_stays_while_another_run_in_this_process_holds_it(series, tmp_path):
    root = tmp_path / "work"
    sweep_copy, created = ensure_work_copy(series, root, KEY)         # e.g. the sweep
    child_copy, child_created = ensure_work_copy(series, root, KEY)   # one of its combinations
    assert created and not child_created and child_copy == sweep_copy
    assert not remove_work_copy(child_copy) and find_work_copy(root, KEY) is not None
    assert remove_work_copy(sweep_copy)
    assert not root.exists(), "the last user removes the copy and the emptied root"


def test_a_shared_work_dir_copy_is_never_deleted_under_a_running_job(movie, series, tmp_path):
    with holding_work_copy(movie, tmp_path / "shared", KEY) as other_job:
        mine, created = ensure_work_copy(series, tmp_path / "shared", KEY)
        assert not created and str(mine.path) == other_job.line
        assert not remove_work_copy(mine), "another live run still reads it"
        assert remove_unused(tmp_path / "shared") == []
        assert mine.open()[0].shape == (24, 24)
        kill_hard(other_job)                       # its hold dies with it
        assert remove_unused(tmp_path / "shared") == [work_copy_dir(tmp_path, KEY).name]
    assert not (tmp_path / "shared").exists()


def test_a_killed_runs_copy_is_adopted_then_removed_and_its_staging_swept(movie, series, tmp_path):
    root = tmp_path / "out" / WORK_DIR_NAME
    with holding_work_copy(movie, root, KEY) as killed:
        kill_hard(killed)
    (root / ".writing-deadbeef").mkdir()
    (root / ".writing-deadbeef" / ".users.lock").touch()          # a concatenation killed midway
    (root / ".writing-deadbeef" / "concatenated.partial").write_bytes(b"\0" * 64)
    before = os.stat(work_copy_dir(root, KEY) / "concatenated.json").st_ino

    with open_output_dir(tmp_path / "out"):                       # the next run in that folder
        assert not (root / ".writing-deadbeef").exists()
        adopted, created = ensure_work_copy(series, root, KEY)
        assert not created and os.stat(work_copy_dir(root, KEY) / "concatenated.json").st_ino == before
        assert remove_work_copy(adopted)
    assert os.listdir(tmp_path / "out") == []


def test_an_unused_copy_of_other_inputs_is_removed_by_the_next_concatenation(series, tmp_path):
    old, _ = ensure_work_copy(series, tmp_path, "cd" * 32)
    os.close(_leaked_fd(old))                                      # as if its process had died
    new, created = ensure_work_copy(series, tmp_path, KEY)
    assert created and not work_copy_dir(tmp_path, "cd" * 32).exists()
    remove_work_copy(new)


def _leaked_fd(movie) -> int:
    from cnmflow.movies import work_copy

    return work_copy._leases.pop(movie.path.parent).pop()


def test_a_damaged_copy_nobody_uses_is_replaced(series, tmp_path):
    copy, _ = ensure_work_copy(series, tmp_path / "work", KEY)
    os.close(_leaked_fd(copy))                                     # its run died ...
    with open(copy.path, "r+b") as handle:                         # ... and the disk lost the end of the file
        handle.truncate(100)
    again, created = ensure_work_copy(series, tmp_path / "work", KEY)
    assert created and again.path.stat().st_size == 4 * 40 * 24 * 24
    remove_work_copy(again)
