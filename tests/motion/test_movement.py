"""A moving movie that the run would not correct is told before the fit; a still one is not, even one whose cells
fire brightly on a background without fixed structure (where registration reads noise)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from cnmflow.motion.movement import NOTE_SD_PX, SAMPLE_BLOCKS, SAMPLE_FRAMES, movement
from cnmflow.movies import validate_series
from cnmflow.synthetic.gaussian import simulate_1p
from cnmflow.synthetic.realistic import simulate_realistic_1p
from cnmflow.validate import validate_inputs

TABLE = {"gSig": 3, "gSiz": 13, "fr": 20.0}


def _tif(path, movie: np.ndarray):
    tifffile.imwrite(path, movie.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def moving_and_still(tmp_path_factory):
    folder = tmp_path_factory.mktemp("movement")
    movies = {}
    for motion in (0.0, 0.8):
        sim = simulate_realistic_1p("cortex_l23", shape=(128, 128), n_frames=300, motion_px=motion, rng=7)
        movies[motion] = (_tif(folder / f"cortex_{motion}.tif", sim.movie), sim.truth.shifts)
    return movies


def _notes(path, **table) -> list[str]:
    return [note for note in validate_inputs([path], table={**TABLE, **table}).resolved.notes
            if "the movie moves" in note]


def test_a_moving_movie_left_uncorrected_is_told_with_the_fix(moving_and_still):
    """Brain motion (the simulator's, sd 0.8 px per axis) reads as the frames' true shifts do, sd and largest; the
    note names it and motion_correction=rigid. Corrected, or still, the run gets no such note."""
    path, shifts = moving_and_still[0.8]
    [note] = _notes(path)
    assert "set motion_correction=rigid" in note and "motion_correction is 'none'" in note
    found = movement(validate_series([path]), gsig_filt=3.0, max_shift=6)
    true_sd = np.sqrt(shifts.var(axis=0).sum())
    true_largest = np.hypot(*(shifts - np.median(shifts, axis=0)).T).max()
    assert found.sd_px == pytest.approx(true_sd, rel=0.15) and found.largest_px == pytest.approx(true_largest, rel=0.15)
    assert _notes(path, motion_correction="rigid") == []
    assert _notes(moving_and_still[0.0][0]) == []


def test_suggest_says_it_too(moving_and_still, tmp_path):
    """`cnmflow suggest` reads the movie before anyone runs it: the motion note is among its notes."""
    from cnmflow.suggestion import suggest

    moving = suggest([moving_and_still[0.8][0]], figure=tmp_path / "moving.png")
    assert any("the movie moves" in note for note in moving["notes"]) and "Note: the movie moves" in moving["text"]
    still = suggest([moving_and_still[0.0][0]], figure=tmp_path / "still.png")
    assert not any("moves" in note for note in still["notes"])


@pytest.mark.parametrize("seed", [1, 3])
def test_bright_transients_without_fixed_structure_are_not_read_as_motion(tmp_path, seed):
    """The Gaussian simulator's still movies (cells on a smooth background, nothing fixed to register on) gave
    per-frame shifts of 1-4 px from noise and firing cells; two halves of the field shared one such pull (seed 3:
    0.45 px). Only motion every quarter of the field shares counts."""
    movie = simulate_1p(shape=(128, 128), n_frames=600, rng=seed).movie
    found = movement(validate_series([_tif(tmp_path / "still.tif", movie)]), gsig_filt=3.0, max_shift=6)
    assert found.largest_px > 1  # the noise is there ...
    assert found.sd_px < NOTE_SD_PX / 2  # ... and is not taken for motion


def test_frames_too_small_to_split_into_quarters_are_not_read(tmp_path):
    movie = simulate_1p(shape=(48, 48), n_frames=100, rng=1).movie
    assert movement(validate_series([_tif(tmp_path / "small.tif", movie)]), gsig_filt=3.0, max_shift=6) is None


def test_a_slow_drift_over_the_session_is_told(tmp_path):
    """A baseplate settling: 2.5 px from the first frame to the last, most of it early, no fast motion. The middle
    300 frames hardly move (the check once read only those); blocks from the start, middle and end show it."""
    sim = simulate_realistic_1p("cortex_l23", shape=(128, 128), n_frames=1200, drift_px=2.5, rng=3)
    path = _tif(tmp_path / "drifting.tif", sim.movie)
    shifts = sim.truth.shifts
    block = SAMPLE_FRAMES // SAMPLE_BLOCKS
    true_drift = np.hypot(*(np.median(shifts[-block:], axis=0) - np.median(shifts[:block], axis=0)))
    [note] = _notes(path)
    found = movement(validate_series([path]), gsig_filt=3.0, max_shift=6)
    assert found.n_blocks == 3 and found.drift_px == pytest.approx(true_drift, rel=0.15)
    assert f"drifting {found.drift_px:.1f} px from its start to its end" in note
    assert "from its start, middle and end" in note and "set motion_correction=rigid" in note
