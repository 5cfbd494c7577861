import numpy as np
import pytest

from cnmflow.errors import MovieError
from cnmflow.movies import iter_chunks, read_frames, read_info
from cnmflow.movies.isxd import read_header

from .conftest import movie_data, sample, write_isxd


def test_sample_part2_metadata(ideas):
    info = read_info(sample(ideas, "movie_part2_108x123x63.isxd"))
    assert info.kind == "isxd"
    assert info.n_frames == 63
    assert info.frame_shape == (123, 108)
    assert info.dtype == np.float32
    assert info.frame_rate == pytest.approx(10.0)
    assert info.frame_period == pytest.approx(0.1)
    assert info.frame_rate_source == "isxd timing"
    assert info.start_time.timestamp() == pytest.approx(30.1)
    assert info.pixel_size_um == pytest.approx(3.0)
    assert info.invalid_frames == ()
    assert info.extra_properties == {"idps": {"spatialDownsampling": 1, "temporalDownsampling": 1}}
    assert info.timing.num_samples == 63 and info.spacing.num_pixels == (123, 108)
    assert info.path.is_absolute()


def test_sample_part3_metadata(ideas):
    info = read_info(sample(ideas, "movie_part3.isxd"))
    assert (info.n_frames, info.frame_shape) == (34, (128, 128))
    assert info.start_time.timestamp() == pytest.approx(62.3)
    assert info.extra_properties is None


@pytest.mark.parametrize("name, what", [("cellset_series_part1.isxd", "cell set"),
                                        ("sample_eventset_msr_1.isxd", "event set")])
def test_not_a_movie(ideas, name, what, capfd):
    path = sample(ideas, name)
    with pytest.raises(MovieError, match=f"is an isxd {what}, not a movie") as err:
        read_info(path)
    assert str(path) in str(err.value)
    if what == "cell set":
        assert "give the movie the cells were extracted from" in str(err.value)


def test_upper_case_extension(ideas, tmp_path):
    link = tmp_path / "MOVIE.ISXD"
    link.symlink_to(sample(ideas, "movie_part2_108x123x63.isxd"))
    info = read_info(link)
    assert info.kind == "isxd" and info.n_frames == 63


def test_written_movie_roundtrip_and_invalid_frames(tmp_path):
    data = movie_data(8)
    path = write_isxd(tmp_path / "m.isxd", data, period_ms=50, start_ms=1500, dropped=[2], cropped=[(5, 6)])
    info = read_info(path)
    assert info.n_frames == 8 and info.frame_shape == (6, 5)
    assert info.frame_rate == pytest.approx(20.0)
    assert info.invalid_frames == (2, 5, 6)
    assert info.start_time.timestamp() == pytest.approx(1.5)
    frames = read_frames(info, 0, 8)
    assert frames.dtype == np.float32 and frames.shape == (8, 6, 5)
    valid = [0, 1, 3, 4, 7]
    np.testing.assert_array_equal(frames[valid], data[valid])
    assert not frames[[2, 5, 6]].any()  # invalid frames read back as zeros
    blocks = list(iter_chunks(info, chunk_frames=3))
    assert [first for first, _ in blocks] == [0, 3, 6]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), frames)
    np.testing.assert_array_equal(read_frames(info, 3, 5), frames[3:5])


def test_uint16_movie(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    info = read_info(write_isxd(tmp_path / "u.isxd", data, dtype=np.uint16))
    assert info.dtype == np.uint16
    np.testing.assert_array_equal(read_frames(info, 0, 3), data.astype(np.float32))


def test_header_parse_and_corrupt_file(tmp_path):
    path = write_isxd(tmp_path / "m.isxd", movie_data(2))
    header = read_header(path)
    assert header["type"] == 0 and header["timingInfo"]["numTimes"] == 2
    bad = tmp_path / "bad.isxd"
    bad.write_bytes(b"\x00not an isxd file" * 10)
    assert read_header(bad) is None
    with pytest.raises(MovieError, match="cannot read isxd movie") as err:
        read_info(bad)
    assert str(bad) in str(err.value)


def test_frame_range_checked(tmp_path):
    info = read_info(write_isxd(tmp_path / "m.isxd", movie_data(3)))
    with pytest.raises(MovieError, match="outside the movie's 3 frames"):
        read_frames(info, 2, 4)


def test_timing_outlives_the_isx_movie(tmp_path):
    """isx.Movie.timing is a view into the C movie; MovieInfo keeps an independent copy."""
    import gc

    import isx

    a = read_info(write_isxd(tmp_path / "a.isxd", movie_data(4), period_ms=100, start_ms=1000, dropped=[1]))
    b = read_info(write_isxd(tmp_path / "b.isxd", movie_data(3), period_ms=50, start_ms=7000))
    gc.collect()
    keep = [isx.Movie.read(str(tmp_path / "a.isxd")) for _ in range(5)]  # reuse freed memory
    assert a.timing.period.secs_float == pytest.approx(0.1) and a.timing.dropped == [1]
    assert b.timing.period.secs_float == pytest.approx(0.05) and b.frame_period == pytest.approx(0.05)
    # the copies can be reused to write outputs with identical timing and spacing
    out = isx.Movie.write(str(tmp_path / "out.isxd"), a.timing, a.spacing, np.float32)
    for i in (0, 2, 3):
        out.set_frame_data(i, np.zeros(a.frame_shape, np.float32))
    out.flush()
    del out
    again = isx.Movie.read(str(tmp_path / "out.isxd"))
    assert again.timing == a.timing and again.spacing == a.spacing


def test_single_frame_isxd_is_accepted(tmp_path):
    # isx stores 0- and 1-frame movies with the "image" type; they are still read as movies
    info = read_info(write_isxd(tmp_path / "one.isxd", movie_data(1)))
    assert info.n_frames == 1
