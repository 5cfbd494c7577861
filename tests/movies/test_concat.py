import tracemalloc

import numpy as np
import pytest
import tifffile

from cnmflow.movies import concatenate, read_frames, validate_series, work_directory
from cnmflow.movies.concat import WORK_PREFIX

from .conftest import movie_data, sample, write_isxd


def test_three_isxd_movies_in_start_time_order_with_filled_frames(tmp_path):
    a = movie_data(5, seed=1, offset=0)
    b = movie_data(7, seed=2, offset=1000)
    c = movie_data(4, seed=3, offset=2000)
    pa = write_isxd(tmp_path / "a.isxd", a, start_ms=20_000)               # listed first, starts last
    pb = write_isxd(tmp_path / "b.isxd", b, start_ms=1_000, dropped=[0, 3], cropped=[(5, 6)])
    pc = write_isxd(tmp_path / "c.isxd", c, start_ms=10_000, dropped=[2])
    series = validate_series([pa, pb, pc])
    assert series.order == (1, 2, 0)
    calls = []
    out_dir = tmp_path / "out"
    with work_directory(out_dir) as work:
        movie = concatenate(series, work, chunk_frames=3, progress=lambda stage, f: calls.append((stage, f)))
        assert movie.path.parent == work and movie.path.exists()
        assert movie.shape == (16, 6, 5)
        assert movie.offsets == {1: (0, 7), 2: (7, 11), 0: (11, 16)}
        assert movie.filled_frames == {1: (0, 3, 5, 6), 2: (2,)}
        mm = movie.open()
        assert mm.dtype == np.float32 and mm.shape == (16, 6, 5) and mm.flags.c_contiguous
        got_b, got_c, got_a = mm[0:7], mm[7:11], mm[11:16]
        np.testing.assert_array_equal(got_a, a)
        valid_b = [1, 2, 4]
        np.testing.assert_array_equal(got_b[valid_b], b[valid_b])
        np.testing.assert_array_equal(got_b[0], b[1])                      # start: nearest valid frame
        np.testing.assert_allclose(got_b[3], 0.5 * (b[2] + b[4]), rtol=1e-6)  # between 2 and 4
        np.testing.assert_array_equal(got_b[5], b[4])                      # end: nearest valid (4)
        np.testing.assert_array_equal(got_b[6], b[4])
        np.testing.assert_allclose(got_c[2], 0.5 * (c[1] + c[3]), rtol=1e-6)
        np.testing.assert_array_equal(got_c[[0, 1, 3]], c[[0, 1, 3]])
        assert not [p.name for p in work.iterdir() if ".tmp" in p.name]  # no temporary left behind
        del mm, got_a, got_b, got_c
    assert not work.exists() and out_dir.exists()
    assert calls and all(stage == "concatenate" for stage, _ in calls)
    fractions = [f for _, f in calls]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert len(calls) == 3 + 2 + 2  # chunks of 3 frames per movie: 7 -> 3, 4 -> 2, 5 -> 2


def test_interior_fill_is_linear(tmp_path):
    data = np.stack([np.full((4, 3), v, np.float32) for v in (0, 10, 20, 30, 40)])
    path = write_isxd(tmp_path / "m.isxd", data, dropped=[1, 2, 3])
    with work_directory(tmp_path) as work:
        movie = concatenate(validate_series([path]), work, chunk_frames=2)
        np.testing.assert_allclose(movie.open()[:, 0, 0], [0, 10, 20, 30, 40])


def test_tiff_series_in_listed_order(tmp_path):
    parts = [movie_data(n, seed=n) for n in (3, 6, 2)]
    paths = []
    for k, part in enumerate(parts):
        paths.append(tmp_path / f"p{k}.tif")
        tifffile.imwrite(paths[-1], part, photometric="minisblack", compression="zlib" if k == 1 else None)
    series = validate_series(paths)
    with work_directory(tmp_path / "o") as work:
        movie = concatenate(series, work, chunk_frames=4)
        assert movie.offsets == {0: (0, 3), 1: (3, 9), 2: (9, 11)} and movie.filled_frames == {}
        np.testing.assert_array_equal(movie.open(), np.concatenate(parts))


def test_avi_samples_concatenate(ideas, tmp_path):
    paths = [sample(ideas, "movie_part1_108x122x200.avi"), sample(ideas, "movie_part2_108x122x126.avi")]
    series = validate_series(paths)
    with work_directory(tmp_path) as work:
        movie = concatenate(series, work, chunk_frames=32)
        assert movie.shape == (163, 122, 108)
        mm = movie.open()
        np.testing.assert_array_equal(mm[100:], read_frames(series.movies[1], 0, 63))
        assert all(frame.any() for frame in mm)
        del mm


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_work_directory_removed_on_error(tmp_path, exc):
    with pytest.raises(exc):
        with work_directory(tmp_path) as work:
            assert work.parent == tmp_path.resolve() and work.name.startswith(WORK_PREFIX)
            (work / "scratch.bin").write_bytes(b"x" * 100)
            raise exc("stop")
    assert not work.exists()
    assert not list(tmp_path.glob(WORK_PREFIX + "*"))


def test_work_directories_are_unique_and_created(tmp_path):
    target = tmp_path / "new" / "out"
    with work_directory(target) as w1, work_directory(target) as w2:
        assert w1 != w2 and w1.is_dir() and w2.is_dir() and w1.parent == target.resolve()
    assert not w1.exists() and not w2.exists() and target.is_dir()


def test_failed_concatenation_leaves_no_partial_file(tmp_path):
    paths = [tmp_path / "a.tif", tmp_path / "b.tif"]
    for p in paths:
        tifffile.imwrite(p, movie_data(5), photometric="minisblack")
    series = validate_series(paths)

    def boom(stage, fraction):
        if fraction > 0.5:
            raise RuntimeError("cancelled")

    with work_directory(tmp_path / "o") as work:
        with pytest.raises(RuntimeError):
            concatenate(series, work, chunk_frames=2, progress=boom)
        assert list(work.iterdir()) == []


def test_memory_is_bounded(tmp_path):
    n, rows, cols = 200, 128, 128  # 3 movies x 13 MB = 39 MB of float32
    rng = np.random.default_rng(0)
    paths = []
    for k in range(3):  # one contiguous (memory-mapped) stack, blocks of pages, compressed blocks
        paths.append(tmp_path / f"m{k}.tif")
        if k == 0:
            tifffile.imwrite(paths[-1], rng.random((n, rows, cols), dtype=np.float32), photometric="minisblack")
            continue
        with tifffile.TiffWriter(paths[-1]) as tw:
            for first in range(0, n, 50):
                block = rng.random((50, rows, cols), dtype=np.float32)
                tw.write(block, photometric="minisblack", contiguous=False,
                         compression="zlib" if k == 2 else None)
    series = validate_series(paths)
    movie_bytes = series.n_frames * rows * cols * 4
    assert movie_bytes > 35e6
    with work_directory(tmp_path / "o") as work:
        tracemalloc.start()
        try:
            movie = concatenate(series, work, chunk_frames=16)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert movie.shape == (600, rows, cols)
        assert peak < movie_bytes / 8, f"peak {peak / 1e6:.1f} MB for a {movie_bytes / 1e6:.1f} MB series"
        mm = movie.open()
        np.testing.assert_array_equal(mm[590:600], read_frames(series.movies[2], 190, 200))
        del mm


def test_lost_frames_are_interpolated_wherever_the_movie_is_read_and_auto_reads_them_so(tmp_path):
    """An isxd's dropped frames hold no data (the reader gives zeros). The work copy interpolated them, but the
    'auto' estimate's sample and validation's checks read them as stored: blank frames in the sample. Every read now
    gives the interpolated frames, so the estimate equals the one on the movie with those frames interpolated."""
    from cnmflow.auto_params import estimate_parameters
    from cnmflow.synthetic.gaussian import simulate_1p

    movie = simulate_1p(shape=(48, 48), n_frames=400, rng=3).movie.astype(np.float32)
    dropped = [190, 200, 201, 210]
    path = write_isxd(tmp_path / "dropped.isxd", movie, dropped=dropped)
    expected = movie.copy()
    for i, (before, after) in {190: (189, 191), 200: (199, 202), 201: (199, 202), 210: (209, 211)}.items():
        w = (i - before) / (after - before)
        expected[i] = (1.0 - w) * movie[before] + w * movie[after]
    series = validate_series([path], min_frames=2)
    np.testing.assert_allclose(read_frames(series.movies[0], 195, 205), expected[195:205], rtol=1e-6)
    np.testing.assert_allclose(read_frames(series.movies[0], 201, 202), expected[201:202], rtol=1e-6)
    whole = write_isxd(tmp_path / "interpolated.isxd", expected)
    assert estimate_parameters([path], tsub=2).values() == estimate_parameters([whole], tsub=2).values()
    assert len(estimate_parameters([path], tsub=2).seeds) == len(estimate_parameters([whole], tsub=2).seeds)
