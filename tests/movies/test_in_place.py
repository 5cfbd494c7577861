"""A single movie stored as one raw block is read where it lies; anything else gets a work copy in its own type."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import tifffile

from cnmflow.engine.movie_source import MovieSource
from cnmflow.errors import MovieError
from cnmflow.movies import concatenate, read_frames, validate_series, work_directory
from cnmflow.movies.concat import in_place, work_dtype
from cnmflow.movies.read import raw_layout
from cnmflow.movies.work_copy import ensure_work_copy, remove_work_copy

from .conftest import movie_data, write_avi, write_isxd

KEY = "ef" * 32
#: Whole frames, a band of rows, every other frame of a box: the reads the engine makes.
READS = [np.s_[:], np.s_[3:9], np.s_[:, 2:5], np.s_[::2, 1:4, 2:5]]


def pixel_values(dtype: str) -> np.ndarray:
    values = movie_data(12, rows=7, cols=6, seed=4) * 600
    return values.astype(dtype) if np.dtype(dtype).kind in "ui" else values.astype(dtype) - 100


def old_float32_copy(series, folder) -> np.ndarray:
    """What the fit read before: every frame converted to float32 by the reader."""
    return read_frames(series.movies[0], 0, series.n_frames)


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("imagej", [True, False])
def test_a_single_uncompressed_tiff_is_read_in_place_with_the_values_of_a_float32_copy(tmp_path, byteorder, dtype,
                                                                                       imagej):
    data = pixel_values(dtype)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, data, byteorder=byteorder, imagej=imagej, metadata={"axes": "TYX"} if imagej else None)
    series = validate_series([path])
    movie = in_place(series)
    assert movie is not None and movie.in_place and movie.path == path.resolve()
    assert np.dtype(movie.dtype) == np.dtype(dtype).newbyteorder(byteorder) and movie.filled_frames == {}
    assert movie.shape == data.shape and movie.offsets == {0: (0, 12)}
    view = MovieSource.of(movie.open()).streaming()
    expected = old_float32_copy(series, tmp_path)
    np.testing.assert_array_equal(expected, data.astype(np.float32))
    for key in READS:
        got = view[key]
        assert got.dtype == np.float32 and got.dtype.isnative
        np.testing.assert_array_equal(got, expected[key])


def test_reading_in_place_writes_nothing_and_never_removes_the_input(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, pixel_values("uint16"), imagej=True)
    series = validate_series([path])
    root = tmp_path / "out" / ".cnmflow-work"
    progress = []
    movie, created = ensure_work_copy(series, root, KEY, progress=lambda stage, f: progress.append((stage, f)))
    assert movie.in_place and not created and progress == [("concatenate", 1.0)]
    assert not root.exists(), "no work file for a single movie read in place"
    assert remove_work_copy(movie) is False
    assert path.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["movie.tif"]


@pytest.mark.parametrize("make", ["compressed", "series"])
def test_what_cannot_be_read_in_place_gets_a_work_copy_in_its_own_type(tmp_path, make):
    data = pixel_values("uint16")
    paths = [tmp_path / "a.tif"]
    if make == "compressed":
        tifffile.imwrite(paths[0], data, compression="zlib")
    else:
        paths.append(tmp_path / "b.tif")
        tifffile.imwrite(paths[0], data[:5])
        tifffile.imwrite(paths[1], data[5:])
    series = validate_series(paths)
    assert in_place(series) is None
    movie, created = ensure_work_copy(series, tmp_path / "work", KEY)
    try:
        assert created and not movie.in_place and movie.path.parent.parent == tmp_path / "work"
        mapped = movie.open()
        assert mapped.dtype == np.uint16 and movie.path.stat().st_size == data.size * 2, "uint16: half a float32 copy"
        np.testing.assert_array_equal(MovieSource.of(mapped).streaming()[:], data.astype(np.float32))
        del mapped
    finally:
        assert remove_work_copy(movie)


def test_a_file_shorter_than_its_frames_is_not_read_in_place(tmp_path):
    """tifffile refuses most cut files when validating; the size check covers the rest."""
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, pixel_values("uint16"), imagej=True)
    info = validate_series([path]).movies[0]
    assert raw_layout(info) is not None
    assert raw_layout(replace(info, n_frames=info.n_frames + 100)) is None


def test_a_work_copy_keeps_small_integer_types_and_makes_anything_else_float32(tmp_path):
    def series_of(*arrays, **isxd):
        paths = []
        for k, array in enumerate(arrays):
            paths.append(write_isxd(tmp_path / f"m{len(list(tmp_path.iterdir()))}_{k}.isxd", array, start_ms=1000 * k,
                                    dtype=array.dtype.type, **isxd))
        return validate_series(paths)

    ints = pixel_values("uint16")
    assert work_dtype(series_of(ints[:6], ints[6:])) == np.uint16
    assert work_dtype(series_of(ints[:6], ints[6:].astype(np.float32))) == np.float32, "types differ"
    assert work_dtype(series_of(ints, dropped=[3])) == np.float32, "interpolated frames are not integers"
    assert work_dtype(series_of(pixel_values("float32"))) == np.float32


def test_an_isxd_without_frame_headers_is_read_in_place_one_with_dropped_frames_is_copied(tmp_path):
    data = pixel_values("uint16")
    whole = validate_series([write_isxd(tmp_path / "whole.isxd", data, dtype=np.uint16)])
    movie = in_place(whole)
    assert movie is not None and movie.dtype == "<u2" and movie.offset == 0
    np.testing.assert_array_equal(MovieSource.of(movie.open()).streaming()[:], data.astype(np.float32))
    dropped = validate_series([write_isxd(tmp_path / "dropped.isxd", data, dtype=np.uint16, dropped=[2])])
    assert raw_layout(dropped.movies[0]) is None and in_place(dropped) is None
    with work_directory(tmp_path / "out") as work:
        copy = concatenate(dropped, work)
        assert copy.dtype == "<f4" and copy.filled_frames == {0: (2,)}


def test_an_avi_is_decoded_into_a_uint8_copy(tmp_path):
    data = np.random.default_rng(3).integers(0, 255, size=(6, 16, 24)).astype(np.uint8)
    series = validate_series([write_avi(tmp_path / "m.avi", data)])
    assert in_place(series) is None
    with work_directory(tmp_path / "out") as work:
        copy = concatenate(series, work)
        assert copy.dtype == "|u1" and copy.path.stat().st_size == data.size
        np.testing.assert_array_equal(MovieSource.of(copy.open()).streaming()[:],
                                      read_frames(series.movies[0], 0, 6))


def test_a_truncated_raw_block_is_refused_by_name(tmp_path):
    from cnmflow.movies.info import RawLayout, read_raw

    path = tmp_path / "cut.raw"
    np.zeros((3, 4, 5), np.uint16).tofile(path)
    with pytest.raises(MovieError, match="truncated") as err:
        read_raw(RawLayout(path=path, dtype=np.dtype("<u2"), offset=0), (4, 5), 2, 4)
    assert str(path) in str(err.value)
