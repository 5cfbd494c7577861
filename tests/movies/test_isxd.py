from fractions import Fraction

import numpy as np
import pytest

from cnmflow.errors import MovieError
from cnmflow.isx_timing import IsxdSpacing, IsxdTiming
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
    # invalid frames (the file holds zeros for them) read back interpolated between the nearest valid ones
    np.testing.assert_allclose(frames[2], 0.5 * data[1] + 0.5 * data[3], rtol=1e-6)
    np.testing.assert_allclose(frames[5], (2 / 3) * data[4] + (1 / 3) * data[7], rtol=1e-6)
    np.testing.assert_allclose(frames[6], (1 / 3) * data[4] + (2 / 3) * data[7], rtol=1e-6)
    blocks = list(iter_chunks(info, chunk_frames=3))
    assert [first for first, _ in blocks] == [0, 3, 6]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), frames)
    np.testing.assert_array_equal(read_frames(info, 3, 5), frames[3:5])


def test_uint16_movie(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    info = read_info(write_isxd(tmp_path / "u.isxd", data, dtype=np.uint16))
    assert info.dtype == np.uint16
    np.testing.assert_array_equal(read_frames(info, 0, 3), data.astype(np.float32))


def test_header_parse_and_corrupt_file(tmp_path, capfd):
    path = write_isxd(tmp_path / "m.isxd", movie_data(2))
    header = read_header(path)
    assert header["type"] == 0 and header["timingInfo"]["numTimes"] == 2
    bad = tmp_path / "bad.isxd"
    bad.write_bytes(b"\x00not an isxd file" * 10)
    assert read_header(bad) is None
    with pytest.raises(MovieError, match="cannot read isxd movie") as err:
        read_info(bad)
    assert str(bad) in str(err.value) and "JSON header" in str(err.value)
    printed = capfd.readouterr()
    assert ".cpp:" not in printed.out and ".cpp:" not in printed.err    # isx prints this one to standard output


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
    assert a.timing.period_s == Fraction(1, 10) and a.timing.dropped == (1,)
    assert b.timing.period_s == Fraction(1, 20) and b.frame_period == pytest.approx(0.05)
    # the copies can be reused to write outputs with identical timing and spacing
    out = isx.Movie.write(str(tmp_path / "out.isxd"), a.timing.to_isx(), a.spacing.to_isx(), np.float32)
    for i in (0, 2, 3):
        out.set_frame_data(i, np.zeros(a.frame_shape, np.float32))
    out.flush()
    del out
    again = isx.Movie.read(str(tmp_path / "out.isxd"))
    assert again.timing == a.timing.to_isx() and again.spacing == a.spacing.to_isx()
    assert IsxdTiming.from_isx(again.timing) == a.timing and IsxdSpacing.from_isx(again.spacing) == a.spacing
    del keep    # held to here: the freed copies' memory stays reused while the timing is read and written


def test_single_frame_isxd_is_accepted(tmp_path):
    # isx stores 0- and 1-frame movies with the "image" type; they are still read as movies
    info = read_info(write_isxd(tmp_path / "one.isxd", movie_data(1)))
    assert info.n_frames == 1


def _cut_frame_data(path, keep_bytes: int):
    """The file with its frame data cut after `keep_bytes` bytes but its JSON header intact."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[-8:], "little")
    cut = path.with_name("cut.isxd")
    cut.write_bytes(raw[:keep_bytes] + raw[-(length + 9):])
    return cut


@pytest.mark.parametrize("dtype, dropped", [(np.float32, ()), (np.uint16, (2,))])
def test_truncated_frame_data_refused_before_reading(tmp_path, capfd, dtype, dropped):
    data = movie_data(10) * 10
    path = write_isxd(tmp_path / "m.isxd", data, dtype=dtype, dropped=dropped)
    frame_bytes = 6 * 5 * np.dtype(dtype).itemsize
    stored = 10 - len(dropped)
    read_info(path)  # the complete file is fine (dropped frames take no space)
    cut = _cut_frame_data(path, 4 * frame_bytes + 7)
    with pytest.raises(MovieError) as err:
        read_info(cut)
    message = str(err.value)
    assert str(cut) in message and "truncated" in message
    assert f"{stored} stored frames" in message and "about 4 frames" in message
    assert "copy the complete file again" in message
    assert "isxMosaicMovieFile" not in capfd.readouterr().err


def test_isx_native_lines_go_into_the_error_not_stderr(tmp_path, capfd):
    path = write_isxd(tmp_path / "m.isxd", movie_data(4))
    cut = tmp_path / "no_header.isxd"
    cut.write_bytes(path.read_bytes()[:-50])  # the JSON header is damaged
    with pytest.raises(MovieError, match="cannot read isxd movie") as err:
        read_info(cut)
    assert str(cut) in str(err.value)
    assert "JSON header" in str(err.value)
    stderr = capfd.readouterr().err
    assert ".cpp:" not in stderr and "Exception -" not in stderr


def test_frame_read_failure_names_frame_without_native_noise(tmp_path, capfd):
    """A file cut after validation (e.g. while copying) fails at the first missing frame, quietly."""
    path = write_isxd(tmp_path / "m.isxd", movie_data(6))
    info = read_info(path)
    raw = path.read_bytes()
    length = int.from_bytes(raw[-8:], "little")
    path.write_bytes(raw[:3 * 120] + raw[-(length + 9):])
    with pytest.raises(MovieError, match="cannot read frame 3 of") as err:
        read_frames(info, 0, 6)
    assert "Error reading movie frame" in str(err.value)
    assert ".cpp:" not in capfd.readouterr().err


def test_cli_refuses_a_cut_isxd_with_one_line(tmp_path, capfd):
    from cnmflow.cli import main

    cut = _cut_frame_data(write_isxd(tmp_path / "m.isxd", movie_data(30, 24, 20)), 1000)
    assert main(["validate", str(cut)]) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cnmflow: error: ") and "truncated" in lines[0]
