"""The job as a library call: work copies held for the fit and given back, timings recorded."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cnmflow.movies.work_copy import WORK_DIR_NAME
from cnmflow.pipeline import extract, held_work_copies, stages_before_fit, timed_stage
from cnmflow.request import RunRequest
from cnmflow.validate import validate_inputs
from tests.runs import TABLE, small_movie


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return validate_inputs([small_movie(tmp_path_factory.mktemp("movie"), rng=17)], RunRequest(table=TABLE))


def test_extract_fits_the_series_and_leaves_only_the_folder(inputs, tmp_path):
    result = extract(inputs, tmp_path / "out")
    assert result.estimates.K > 0 and result.offsets == {0: (0, 200)}
    assert result.estimates.C.shape == (result.estimates.K, 200)
    assert {"concatenate", "fit"} <= set(result.timings) and result.motion is None
    assert not (tmp_path / "out" / WORK_DIR_NAME).exists(), "the work copy is removed after the fit"
    again = extract(inputs, tmp_path / "again")
    np.testing.assert_array_equal(again.estimates.C, result.estimates.C)


def test_work_copies_are_given_back_also_on_errors(inputs, tmp_path):
    root = tmp_path / "work"
    with held_work_copies(inputs, root, "key") as copies:
        assert copies.movie.open().shape == (200, 40, 48) and len(copies.held) == 1
    assert not any(root.glob("series-*")), "given back after the block"
    with pytest.raises(RuntimeError, match="boom"):
        with held_work_copies(inputs, root, "key"):
            raise RuntimeError("boom")
    assert not any(root.glob("series-*")), "given back after an error"


def test_timed_stage_records_seconds_also_when_the_stage_fails():
    timings: dict[str, float] = {}
    with timed_stage(timings, "validate"):
        time.sleep(0.01)
    with pytest.raises(ValueError):
        with timed_stage(timings, "concatenate"):
            raise ValueError
    assert timings["validate"] >= 0.01 and "concatenate" in timings
    assert stages_before_fit({**timings, "extract": 1.0, "motion_correction": 2.0}) == {
        "validate": timings["validate"], "concatenate": timings["concatenate"], "motion_correction": 2.0}


def test_a_uint16_tiff_read_in_place_fits_as_its_float32_work_copy(tmp_path, monkeypatch):
    """The in-place reading converts each chunk exactly as the concatenation did: the same components."""
    import tifffile

    from cnmflow.movies import concat

    (tmp_path / "src").mkdir()
    frames = tifffile.imread(small_movie(tmp_path / "src", rng=17))
    pixels = np.clip(np.rint(frames - frames.min() + 100), 0, 65535).astype(np.uint16)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, pixels, imagej=True, byteorder=">", metadata={"axes": "TYX", "finterval": 0.1})
    inputs = validate_inputs([path], RunRequest(table=TABLE))
    seen = []
    monkeypatch.setattr(concat, "work_dtype", lambda series: seen.append(series) or np.dtype(np.float32))
    with held_work_copies(inputs, tmp_path / "work", "key") as copies:
        assert copies.movie.in_place and not (tmp_path / "work").exists() and not seen
    direct = extract(inputs, tmp_path / "direct")
    monkeypatch.setattr("cnmflow.movies.work_copy.in_place", lambda series: None)   # the old way: a float32 copy
    copied = extract(inputs, tmp_path / "copied")
    assert seen, "the second fit read a float32 work copy"
    assert direct.estimates.K == copied.estimates.K > 0
    for name in ("C", "S", "YrA", "b0", "sn", "Cn", "pnr"):
        np.testing.assert_array_equal(getattr(direct.estimates, name), getattr(copied.estimates, name), err_msg=name)
    assert (direct.estimates.A != copied.estimates.A).nnz == 0
