"""What a movie's pixels allow, checked at validation: NaN, inf or overflowing values (naming the first bad frame),
blank movies, interleaved channels, defective pixels."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from cnmflow import extract
from cnmflow.cli import main
from cnmflow.errors import MovieError
from cnmflow.movies import read_frames, read_info
from cnmflow.movies.checks import memo, values
from cnmflow.movies.checks.values import MAX_ABS_VALUE, check_pixel_values
from cnmflow.synthetic.gaussian import simulate_1p
from cnmflow.synthetic.realistic import simulate_realistic_1p
from cnmflow.validate import validate_inputs

from .conftest import movie_data, write_isxd

T, ROWS, COLS = 60, 24, 20
SMALL = {"gSig": 3, "gSiz": 7}


def _tif(path, data: np.ndarray):
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def _movie() -> np.ndarray:
    return movie_data(T, ROWS, COLS, offset=50.0)


def _with(change) -> np.ndarray:
    data = _movie()
    change(data)
    return data


def _one_inf(d):
    d[37, 5, 6] = np.inf


def _nan_patch(d):
    d[12, 4:14, 3:13] = np.nan


def _all_nan(d):
    d[:] = np.nan


def _scaled(d):
    d *= 1e30


@pytest.mark.parametrize("change, words", [
    (_one_inf, ["frame 37 holds 1 infinite pixel", "affected: frame 37.", "interpolate", "crop"]),
    (_nan_patch, ["frame 12 holds 100 NaN pixels (of 480)", "affected: frame 12."]),
    (_all_nan, ["frame 0 holds 480 NaN pixels", f"{T} of {T} frames, frames 0 to {T - 1}"]),
    (_scaled, ["frame 0 holds 480 |value| > 1e+12 pixels", "overflow", "rescale the movie"]),
])
def test_unusable_float_tiff_refused_at_validation(tmp_path, change, words):
    _refused_naming(_tif(tmp_path / "bad.tif", _with(change)), words)


def _refused_naming(path, words) -> None:
    """Validation refuses ``path`` with one message that starts with the file and holds each of ``words``."""
    with pytest.raises(MovieError) as err:
        validate_inputs([path], table=SMALL)
    message = str(err.value)
    assert message.startswith(str(path))
    for word in words:
        assert word in message


def test_cli_exits_2_before_the_run(tmp_path, capsys):
    path = _tif(tmp_path / "inf.tif", _with(_one_inf))
    args = ["--set", "gSig=3", "--set", "gSiz=7", "--no-track", "--no-progress"]
    assert main(["run", str(path), "--output-dir", str(tmp_path / "out"), *args]) == 2
    captured = capsys.readouterr()
    assert "frame 37" in captured.err and str(path) in captured.err
    assert "components" not in captured.out
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_float_isxd_scanned_and_dropped_frames_ignored(tmp_path):
    data = _movie()
    data[20, 0, 0] = np.nan
    bad = write_isxd(tmp_path / "bad.isxd", data)
    with pytest.raises(MovieError, match="frame 20 holds 1 NaN pixel"):
        check_pixel_values(read_info(bad))
    ok = write_isxd(tmp_path / "ok.isxd", data, dropped=[20])  # a dropped frame is interpolated, not read
    check_pixel_values(read_info(ok))


def test_integer_and_finite_movies_pass_without_reading(tmp_path, monkeypatch):
    data = _movie()
    data[3, 2, 2] = MAX_ABS_VALUE  # the bound itself is allowed
    check_pixel_values(read_info(_tif(tmp_path / "ok.tif", data)))
    monkeypatch.setattr(values, "_scan", lambda info: pytest.fail("integer movie scanned"))
    check_pixel_values(read_info(_tif(tmp_path / "u16.tif", _movie().astype(np.uint16))))


def test_bad_frame_found_across_small_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(memo, "CHUNK_BYTES", 3 * ROWS * COLS * 4)  # 3 frames at a time
    data = _movie()
    data[[31, 44], 1, 1] = -np.inf
    data[50, 2, 2] = -2e12
    with pytest.raises(MovieError) as err:
        check_pixel_values(read_info(_tif(tmp_path / "m.tif", data)))
    assert "frame 31 holds 1 infinite pixel" in str(err.value)
    assert f"3 of {T} frames, frames 31 to 50" in str(err.value)


def test_scan_once_per_unchanged_file(tmp_path, monkeypatch):
    calls = []
    real = values._scan
    monkeypatch.setattr(values, "_scan", lambda info: calls.append(info.path) or real(info))
    path = _tif(tmp_path / "m.tif", _movie())
    validate_inputs([path], table=SMALL)
    validate_inputs([path], table=SMALL)
    assert len(calls) == 1
    _tif(path, _with(_nan_patch))  # rewritten: new size/mtime, scanned again
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(MovieError, match="frame 12"):
        validate_inputs([path], table=SMALL)
    with pytest.raises(MovieError, match="frame 12"):  # the refusal is remembered too
        validate_inputs([path], table=SMALL)
    assert len(calls) == 2


def _on_offset(dtype: str, offset: float, *, scale: float = 1.0) -> np.ndarray:
    return (_movie().astype(np.float64) * scale + offset).astype(dtype)


@pytest.mark.parametrize("data, words", [
    (_on_offset("uint32", 2**32 - 200), ["uint32", "multiples of 512", "levels", "Subtract a constant baseline"]),
    (_on_offset("int64", -(2**36)), ["int64", "multiples of 8192"]),
    (_on_offset("float64", 1e9), ["float64", "multiples of 64"]),
    (_on_offset("float64", 1.0, scale=1e-7), ["float64", "multiples of 1.19209e-07", "Subtract a constant baseline"]),
])
def test_values_float32_rounds_to_a_few_levels_are_refused_at_validation(tmp_path, data, words):
    """A uint32 movie of a 16-bit signal near 2**32 reads in float32 as a few steps: it was fitted into four times
    the simulated cells (44 false components on 10 neurons) and said nothing."""
    _refused_naming(_tif(tmp_path / "offset.tif", data), words)


@pytest.mark.parametrize("data", [_on_offset("int32", -3000), _on_offset("uint32", 2**25, scale=2**20),
                                  _on_offset("float64", 0.0, scale=1e-6)])
def test_wide_types_float32_keeps_are_accepted(tmp_path, data):
    validate_inputs([_tif(tmp_path / "wide.tif", data)], table=SMALL)


def test_a_float_movie_whose_values_span_almost_nothing_is_refused_with_the_scaling_fix(tmp_path, monkeypatch):
    """A float32 movie of values near 1e-24 (a signal stored in the wrong unit) underflowed in the engine's squares:
    the run found 0 cells and advised lowering min_corr / min_pnr. A movie near 1e-6 is fine."""
    from cnmflow import pipeline

    monkeypatch.setattr(pipeline, "fit", lambda *a, **k: pytest.fail("the fit ran on an underflowing movie"))
    tiny = _tif(tmp_path / "tiny.tif", (_movie().astype(np.float64) * 1e-24).astype(np.float32))
    _refused_naming(tiny, ["float32", "span only", "underflows", "Multiply the movie by a constant"])
    with pytest.raises(MovieError, match="tiny.tif: its values span only"):
        extract([tiny], tmp_path / "out", params=SMALL)
    assert not (tmp_path / "out" / "caiman_output.hdf5").exists()
    validate_inputs([_tif(tmp_path / "small.tif", _movie() * np.float32(1e-6))], table=SMALL)


def test_a_uint64_movie_on_a_huge_offset_is_refused_with_the_baseline_fix(tmp_path):
    """Integers were never scanned: a uint64 movie on 2**60 reached the fit as one flat float32 value (0 components,
    'lower min_corr / min_pnr'). Dividing it would erase its signal; subtracting its baseline keeps it."""
    path = _tif(tmp_path / "u64.tif", _on_offset("uint64", 2**60))
    with pytest.raises(MovieError) as err:
        validate_inputs([path], table=SMALL)
    assert str(err.value).startswith(str(path)) and "subtract a constant baseline" in str(err.value)


@pytest.mark.parametrize("gsig", [3, "auto"])
def test_a_blank_movie_is_refused_before_the_fit_whatever_gsig_is(tmp_path, monkeypatch, gsig):
    """A file allocated and never written: refused at validation naming it, with gSig set as with gSig "auto" (a set
    gSig had run the whole fit, then said the movie was blank)."""
    import cnmflow
    from cnmflow import pipeline

    monkeypatch.setattr(pipeline, "fit", lambda *a, **k: pytest.fail("the fit ran on a blank movie"))
    blank = _tif(tmp_path / "never_written.tif", np.zeros((T, ROWS, COLS), np.uint16))
    for call in (lambda: validate_inputs([blank], table={**SMALL, "gSig": gsig}),
                 lambda: cnmflow.extract([blank], tmp_path / "out", params={**SMALL, "gSig": gsig})):
        with pytest.raises(MovieError, match=f"never_written.tif does not change over time: .* all {T} frames"):
            call()
    assert not (tmp_path / "out" / "caiman_output.hdf5").exists()


def test_a_blank_part_of_a_series_is_named_and_frames_that_start_equal_are_read_on(tmp_path, monkeypatch):
    """Two equal frames alone refuse nothing (a recording whose first frames are dark): the rest is read, in
    chunks, up to a frame that differs; a still image saved as a movie, next to a good part, is named."""
    monkeypatch.setattr(memo, "CHUNK_BYTES", 3 * ROWS * COLS * 4)  # 3 frames at a time
    dark_start = _movie().astype(np.uint16)
    dark_start[:40] = 0
    good = _tif(tmp_path / "dark_start.tif", dark_start)
    still = _tif(tmp_path / "still.tif", np.repeat(_movie()[:1], T, axis=0))
    assert validate_inputs([good], table=SMALL).series.n_frames == T
    with pytest.raises(MovieError, match="still.tif does not change over time"):
        validate_inputs([good, still], table=SMALL)


def _interleaved(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    both = np.empty((2 * len(first), *first.shape[1:]), first.dtype)
    both[0::2], both[1::2] = first, second
    return both


@pytest.mark.parametrize("simulate", [
    lambda: simulate_realistic_1p("ca1", shape=(64, 64), n_frames=200, motion_px=3.0, bleach_fraction=0.5, rng=2),
    lambda: simulate_1p(shape=(48, 48), n_frames=200, fr=5.0, decay_time=0.1, spike_rate=2.0, peak_snr=(10, 30)),
], ids=["realistic-motion-bleaching", "bright-fast-transients"])
def test_two_channels_saved_interleaved_are_refused_and_one_channel_is_not(tmp_path, simulate):
    """Frames alternating channel 1 / channel 2 in a file without channel metadata were analysed as one movie at
    twice the rate. A single channel with motion, bleaching and bright transients passes; its frames interleaved
    with a dim structural channel (another field's light, a static image plus noise) are refused, naming the file."""
    movie = simulate().movie
    green = _tif(tmp_path / "green.tif", movie.astype(np.uint16))
    structural = 0.3 * movie[:1] + np.random.default_rng(0).normal(0, 5, movie.shape)
    both = _tif(tmp_path / "two_channels.tif", _interleaved(movie[:100], structural[:100]).astype(np.uint16))
    assert validate_inputs([green], table=SMALL).series.n_frames == len(movie)
    with pytest.raises(MovieError) as err:
        validate_inputs([both], table=SMALL)
    assert str(tmp_path / "two_channels.tif") in str(err.value)
    assert "frames alternate between two images" in str(err.value) and "Split Channels" in str(err.value)


def test_a_flicker_on_alternate_frames_is_not_a_second_channel(tmp_path):
    """Every other frame brighter (a light source beating with the frame rate), the image the same: one channel."""
    movie = simulate_1p(shape=(48, 48), n_frames=120, rng=3).movie
    flicker = movie.copy()
    flicker[1::2] = flicker[1::2] * 1.3 + 200
    assert validate_inputs([_tif(tmp_path / "flicker.tif", flicker.astype(np.uint16))], table=SMALL)
    shifted = _interleaved(movie[:60], np.roll(movie[:60], 5, axis=2))  # one field, two images 5 px apart
    with pytest.raises(MovieError, match="frames alternate between two images"):
        validate_inputs([_tif(tmp_path / "shifted.tif", shifted.astype(np.uint16))], table=SMALL)


def test_stuck_and_hot_pixels_are_mended_as_read_with_a_note_and_a_constant_border_is_not(tmp_path):
    """A stuck pixel on a 2P cell took its trace's correlation with the truth from .99 to .79, a noisy hot one on a
    1P cell to .57, and a pixel of 3x gain seeded a false cell, with no word. Each is recorded on the movie, named in
    a note, and every frame read has it replaced by its neighbours' median (not refused: raw miniscope sensors often
    have a few); the constant border of a motion-corrected movie (a region, not a pixel) and the movie itself are
    left as they are."""
    movie = simulate_1p(shape=(48, 48), n_frames=120, rng=4).movie
    border = movie.copy()
    border[:, :3], border[:, :, -4:] = 0, 0
    for name, ok in (("clean", movie), ("border", border)):
        inputs = validate_inputs([_tif(tmp_path / f"{name}.tif", ok.astype(np.uint16))], table=SMALL)
        assert inputs.series.movies[0].defective_pixels == ()
        assert not any("defective" in note for note in inputs.resolved.notes)
    noise = np.random.default_rng(1).uniform(2e4, 6e4, len(movie))
    for name, pixel in (("stuck", 65535), ("noisy", noise), ("gain", 3 * movie[:, 20, 30])):
        bad = movie.copy()
        bad[:, 20, 30] = pixel
        inputs = validate_inputs([_tif(tmp_path / f"{name}.tif", bad.astype(np.uint16))], table=SMALL)
        info = inputs.series.movies[0]
        assert info.defective_pixels == ((20, 30),)
        [note] = [note for note in inputs.resolved.notes if "defective" in note]
        assert f"{name}.tif has 1 isolated defective pixel" in note and "(20, 30)" in note and "replaced" in note
        read = read_frames(info, 0, len(movie))
        around = bad.astype(np.uint16)[:, 19:22, 29:32].reshape(len(movie), 9).astype(np.float32)
        np.testing.assert_array_equal(read[:, 20, 30], np.median(np.delete(around, 4, axis=1), axis=1))
        np.testing.assert_array_equal(np.delete(read.reshape(len(movie), -1), 20 * 48 + 30, axis=1),
                                      np.delete(bad.astype(np.uint16).reshape(len(movie), -1), 20 * 48 + 30, axis=1))


def test_a_cell_under_a_noisy_hot_pixel_is_found_with_its_trace(tmp_path):
    """A pixel of uniform noise on a 1P cell's centre cost that cell (not found at all on this movie); mended as the
    movie is read, the cell is found and its trace follows the truth."""
    sim = simulate_1p(shape=(48, 48), n_frames=600, rng=4)
    row, col = (int(round(v)) for v in sim.truth.centers[0])
    movie = sim.movie.copy()
    movie[:, row, col] = np.random.default_rng(1).uniform(2e3, 6e3, len(movie))
    result = extract([_tif(tmp_path / "hot.tif", movie.astype(np.float32))], tmp_path / "out", nwb=False,
                     params={"gSig": 3, "gSiz": 7, "min_corr": 0.7, "min_pnr": 6})
    est = result.extraction.estimates
    footprints = est.footprints()
    accepted = np.setdiff1d(np.arange(est.K), est.idx_components_bad)
    peaks = {k: np.unravel_index(int(np.argmax(footprints[k])), footprints.shape[1:]) for k in accepted}
    on_cell = [k for k, (r, c) in peaks.items() if abs(r - row) <= 2 and abs(c - col) <= 2]
    assert len(on_cell) == 1
    assert np.corrcoef(est.C[on_cell[0]], sim.truth.calcium[0])[0, 1] > 0.85


@pytest.mark.parametrize("kind", ["tif", "isxd"])
def test_a_part_on_another_scale_is_refused_naming_both_and_a_changed_light_level_is_not(tmp_path, kind):
    """A dF/F part (float32, about 0) beside raw uint16 counts, or 12-bit counts beside the same counts shifted to 16
    bits, had been joined without a word: every pixel stepped where one part ended. The same values as float32 (a
    part converted to 32-bit, or motion-corrected) and a light level changed by 1.6x pass; a short part is read too."""
    movie = simulate_1p(shape=(24, 20), n_frames=120, n_neurons=3, rng=4).movie

    def part(name, data, start_ms, dtype):
        if kind == "isxd":
            return write_isxd(tmp_path / f"{name}.isxd", data, start_ms=start_ms, dtype=dtype)
        return _tif(tmp_path / f"{name}.tif", data.astype(dtype))

    raw = part("raw", movie[:60], 0, np.uint16)
    later = movie[60:]
    assert validate_inputs([raw, part("as_float", later, 6000, np.float32)], table=SMALL).series.n_frames == 120
    assert validate_inputs([raw, part("brighter", later * 1.6, 6000, np.uint16)], table=SMALL)
    dff = (later - later.mean(axis=0)) / later.mean(axis=0)
    for name, data, dtype in [("dff", dff, np.float32), ("shifted", later * 16, np.uint16),
                              ("short_dff", dff[:5], np.float32)]:
        with pytest.raises(MovieError) as err:
            validate_inputs([raw, part(name, data, 6000, dtype)], table=SMALL)
        assert f"{name}.{kind} and {raw} are on different scales" in str(err.value), name
        assert "analyse them separately" in str(err.value)


def test_a_part_given_twice_under_other_bytes_is_refused_naming_both(tmp_path):
    """A copy saved again (compressed, or converted to float32) had other bytes, so the run's byte hashes passed it,
    and the series analysed the recording followed by itself. The next recording of the same field passes."""
    movie = simulate_1p(shape=(24, 20), n_frames=120, n_neurons=3, rng=5).movie.astype(np.uint16)
    first = _tif(tmp_path / "first.tif", movie[:60])
    assert validate_inputs([first, _tif(tmp_path / "next.tif", movie[60:])], table=SMALL).series.n_frames == 120
    zipped = tmp_path / "first_zlib.tif"
    tifffile.imwrite(zipped, movie[:60], photometric="minisblack", compression="zlib")
    short = _tif(tmp_path / "short.tif", movie[60:65])  # read whole: too short for the middle frames
    for parts in [[first, zipped], [first, _tif(tmp_path / "first_32bit.tif", movie[:60].astype(np.float32))],
                  [first, short, _tif(tmp_path / "short_32bit.tif", movie[60:65].astype(np.float32))]]:
        with pytest.raises(MovieError) as err:
            validate_inputs(parts, table=SMALL)
        assert f"{parts[-2]} and {parts[-1]} hold the same frames" in str(err.value), parts[-1].name
        assert "list each movie once" in str(err.value)
