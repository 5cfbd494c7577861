"""Frames holding no image (every pixel one value): a file written only part way is refused before the fit, naming
the frames it lacks; blank frames inside a movie are filled from their neighbours, with a note."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from cnmflow.errors import MovieError
from cnmflow.movies import read_frames, read_info
from cnmflow.movies.read import raw_layout
from cnmflow.movies.checks import blank_frames, memo
from cnmflow.movies.concat import in_place
from cnmflow.validate import validate_inputs

from .conftest import movie_data, write_avi

T, ROWS, COLS = 60, 24, 20
SMALL = {"gSig": 3, "gSiz": 7}


def _movie() -> np.ndarray:
    return (movie_data(T, ROWS, COLS, offset=50.0) + 20).astype(np.uint16)


def _write(path, data: np.ndarray, how: str):
    if how == "avi":
        return write_avi(path.with_suffix(".avi"), data.astype(np.uint8))
    options = {"tif": {}, "bigtiff": {"bigtiff": True}, "compressed": {"compression": "zlib"}}[how]
    tifffile.imwrite(path, data, photometric="minisblack", **options)
    return path


def _zero_filled_tail(path, keep: float):
    """The file as a copier that sets its full length first leaves it part way: zeros after ``keep`` of its bytes."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(int(size * keep))
        f.write(bytes(size - int(size * keep)))


@pytest.mark.parametrize("how", ["tif", "bigtiff"])
def test_a_file_zero_filled_past_where_its_copy_stopped_is_refused_naming_the_frames(tmp_path, how, monkeypatch):
    """A TIFF allocated to its full length and written to 70%: its last frames read as zeros and every trace had
    fallen to one value there, without a word. Refused at validation, before the fit, naming the frames and the fix."""
    from cnmflow import extract, pipeline

    monkeypatch.setattr(pipeline, "fit", lambda *a, **k: pytest.fail("the fit ran on a half-written file"))
    path = _write(tmp_path / "copying.tif", _movie(), how)
    _zero_filled_tail(path, 0.7)
    with pytest.raises(MovieError) as err:
        validate_inputs([path], table=SMALL)
    message = str(err.value)
    assert f"{path}: its last " in message and f"-{T - 1} of {T}) hold no image" in message
    assert "copy it again" in message and "Wait until it is complete" in message
    with pytest.raises(MovieError, match="hold no image"):
        extract([path], tmp_path / "out", params=SMALL)
    assert not (tmp_path / "out" / "caiman_output.hdf5").exists()


@pytest.mark.parametrize("how", ["compressed", "avi"])
def test_a_blank_tail_of_a_decoded_movie_is_refused(tmp_path, how):
    """Movies read by decoding (compressed TIFF, AVI) are judged frame by frame as they decode."""
    data = _movie()
    data[45:] = 0
    path = _write(tmp_path / "cut.tif", data, how)
    with pytest.raises(MovieError, match=r"its last 15 frames \(45-59 of 60\) hold no image.*frames 0-44 as the movie"):
        validate_inputs([path], table=SMALL)


@pytest.mark.parametrize("how", ["tif", "compressed", "avi"])
def test_blank_frames_inside_a_movie_are_filled_from_their_neighbours_with_a_note(tmp_path, how):
    """Zeros a converter wrote for lost frames, a light source not yet on in frame 0, one flat last frame: recorded on
    the movie, named in one note, and read (by every reader: the fit's work copy too, never the file in place) as the
    linear interpolation of the nearest frames with an image, or the nearest one at an end."""
    data = _movie()
    data[[0, 5, 6, 30]] = 0
    data[T - 1] = 255
    path = _write(tmp_path / "holes.tif", data, how)
    inputs = validate_inputs([path], table=SMALL)
    info = inputs.series.movies[0]
    assert info.blank_frames == (0, 5, 6, 30, T - 1)
    assert info.flat_frames == (info.blank_frames if how == "avi" else None)  # an AVI's seen as it was counted
    [note] = [note for note in inputs.resolved.notes if "hold no image" in note]
    assert f"{path}: 5 frames hold no image" in note and "frames 0, 5-6, 30, 59)" in note and "interpolation" in note
    stored = read_frames(info.__class__(**{**info.__dict__, "blank_frames": ()}), 0, T)
    seen = read_frames(info, 0, T)
    np.testing.assert_allclose(seen[5], (2 * stored[4] + stored[7]) / 3, rtol=1e-6)
    np.testing.assert_allclose(seen[6], (stored[4] + 2 * stored[7]) / 3, rtol=1e-6)
    np.testing.assert_allclose(seen[30], (stored[29] + stored[31]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(seen[0], stored[1])
    np.testing.assert_array_equal(seen[T - 1], stored[T - 2])
    keep = np.setdiff1d(np.arange(T), info.blank_frames)
    np.testing.assert_array_equal(seen[keep], stored[keep])
    assert in_place(inputs.series) is None


def test_frames_flat_only_in_the_rows_sampled_are_not_blank(tmp_path, monkeypatch):
    """A movie read in place is sampled on a few rows per frame; a frame flat there but not elsewhere is read whole
    and kept."""
    monkeypatch.setattr(memo, "CHUNK_BYTES", 3 * ROWS * COLS * 4)  # a few frames at a time
    data = _movie()
    data[10, :, :] = 7
    data[10, 11, 3] = 8  # one pixel off the sampled rows differs
    data[20] = 9
    path = _write(tmp_path / "sampled.tif", data, "tif")
    assert raw_layout(read_info(path)) is not None
    inputs = validate_inputs([path], table=SMALL)
    assert inputs.series.movies[0].blank_frames == (20,)
    assert blank_frames.SAMPLED_ROWS < ROWS and 11 not in np.linspace(0, ROWS - 1, blank_frames.SAMPLED_ROWS).round()


def test_a_movie_of_flat_frames_only_is_refused(tmp_path):
    """Every frame one value, the value changing from frame to frame (a light level logged as a movie): no image."""
    levels = np.zeros((T, ROWS, COLS), np.uint16) + np.arange(T, dtype=np.uint16)[:, None, None]
    with pytest.raises(MovieError, match=f"levels.tif: none of its {T} frames holds an image"):
        validate_inputs([_write(tmp_path / "levels.tif", levels, "tif")], table=SMALL)


def test_a_clean_movie_has_no_blank_frames_and_no_note(tmp_path):
    inputs = validate_inputs([_write(tmp_path / "clean.tif", _movie(), "tif")], table=SMALL)
    assert inputs.series.movies[0].blank_frames == ()
    assert not any("hold no image" in note for note in inputs.resolved.notes)


def test_a_runs_traces_are_nan_where_the_file_held_no_image(tmp_path):
    """Filled frames are made, not recorded: the cell sets mark them dropped (isx reads NaN there, as for an isxd's
    dropped frames) and the NWB traces are NaN there; the hdf5 keeps CaImAn's layout, every frame a value."""
    import isx
    from pynwb import NWBHDF5IO

    from cnmflow import extract
    from cnmflow.synthetic.gaussian import simulate_1p

    movie = simulate_1p(shape=(48, 48), n_frames=300, rng=4).movie.astype(np.uint16)
    movie[[40, 41, 150]] = 0
    out = tmp_path / "out"
    extract([_write(tmp_path / "holes.tif", movie, "tif")], out,
            params={"gSig": 3, "gSiz": 7, "min_corr": 0.7, "min_pnr": 6, "fr": 10})
    cells = isx.CellSet.read(str(out / "cellset_raw.000.isxd"))
    assert cells.num_cells > 0 and list(cells.timing.dropped) == [40, 41, 150]
    assert np.flatnonzero(np.isnan(cells.get_cell_trace_data(0))).tolist() == [40, 41, 150]
    assert isx.EventSet.read(str(out / "neural_events.000.isxd")).num_cells == cells.num_cells
    with NWBHDF5IO(str(out / "ophys.000.nwb"), "r") as io:
        series = io.read().processing["ophys"]["Fluorescence"]["RoiResponseSeries"]
        assert np.flatnonzero(np.isnan(series.data[:]).all(axis=1)).tolist() == [40, 41, 150]
        assert "held no image" in series.description
