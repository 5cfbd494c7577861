import os

import numpy as np
import pytest
import tifffile

from cnmflow.errors import MovieError, ParameterError
from cnmflow.movies import resolve_frame_rate, validate_series
from tests.runs import micro_manager

from .conftest import movie_data, sample, write_avi, write_isxd


def _tif(path, n=4, rows=6, cols=5, **kwargs):
    kwargs.setdefault("photometric", "minisblack")
    tifffile.imwrite(path, movie_data(n, rows, cols), **kwargs)
    return path


def _ij(path, finterval, n=4):
    return _tif(path, n, imagej=True, metadata={"axes": "TYX", "finterval": finterval})


def test_empty_list():
    with pytest.raises(MovieError, match="no movie files given"):
        validate_series([])


def test_missing_file(tmp_path):
    good = _tif(tmp_path / "a.tif")
    with pytest.raises(MovieError, match="not found") as err:
        validate_series([good, tmp_path / "nope.tif"])
    assert "nope.tif" in str(err.value)


def test_directory(tmp_path):
    folder = tmp_path / "d.tif"
    folder.mkdir()
    with pytest.raises(MovieError, match="is a directory") as err:
        validate_series([folder])
    assert str(folder) in str(err.value)


def test_a_folder_without_an_extension_is_named_a_folder_with_its_movies_and_their_order(tmp_path):
    """A session folder given as the movie was refused as "unsupported movie file type '(no extension)'"."""
    folder = tmp_path / "session"
    folder.mkdir()
    for k in (0, 1, 2):
        _tif(folder / f"{k}.tif")
    with pytest.raises(MovieError, match="is a directory") as err:
        validate_series([folder])
    assert "3 .tif files inside" in str(err.value) and "sort -V" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MovieError, match="holds no .avi, .isxd, .tif, .tiff file"):
        validate_series([_tif(tmp_path / "a.tif"), tmp_path / "empty"])


def test_a_file_name_pattern_is_said_to_be_one(tmp_path):
    """'/data/s/*.tif' typed into the UI's movies list (no shell to expand it) read only 'movie file not found'."""
    for k in (0, 1):
        _tif(tmp_path / f"{k}.tif")
    with pytest.raises(MovieError, match="file-name pattern is expanded by a shell, not here") as err:
        validate_series([tmp_path / "*.tif"])
    assert "(2 files match it)" in str(err.value)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "m.mov"
    path.write_bytes(b"x")
    with pytest.raises(MovieError, match="unsupported movie file type") as err:
        validate_series([path])
    assert str(path) in str(err.value)


def test_mixed_types(tmp_path):
    a = _tif(tmp_path / "a.tif")
    b = write_avi(tmp_path / "b.avi", np.zeros((3, 6, 5), np.uint8))
    with pytest.raises(MovieError, match="one file type") as err:
        validate_series([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_tif_and_tiff_are_one_type(tmp_path):
    series = validate_series([_tif(tmp_path / "a.tif"), _tif(tmp_path / "b.TIFF")])
    assert series.n_frames == 8


def test_duplicate_paths(tmp_path):
    a = _tif(tmp_path / "a.tif")
    alias = tmp_path / "sub" / ".." / "a.tif"
    (tmp_path / "sub").mkdir()
    with pytest.raises(MovieError, match="listed twice") as err:
        validate_series([a, alias])
    assert str(a) in str(err.value)


def test_a_hard_link_to_a_listed_movie_is_refused(tmp_path):
    """Two names of one file (a hard link, as some copy tools and backups leave) once made a series of the movie
    followed by itself: twice the frames, every cell's activity repeated."""
    a = _tif(tmp_path / "a.tif")
    link = tmp_path / "a_link.tif"
    os.link(a, link)
    with pytest.raises(MovieError, match="listed twice") as err:
        validate_series([a, link])
    assert str(a) in str(err.value) and str(link) in str(err.value) and "hard links" in str(err.value)


def test_frame_size_mismatch(tmp_path):
    a = _tif(tmp_path / "a.tif", rows=6, cols=5)
    b = _tif(tmp_path / "b.tif", rows=7, cols=5)
    with pytest.raises(MovieError, match="frame sizes differ") as err:
        validate_series([a, b])
    msg = str(err.value)
    assert str(a) in msg and str(b) in msg and "6x5" in msg and "7x5" in msg
    assert msg.endswith("export (crop, downsample) them alike, or analyse them separately")  # how to fix it


@pytest.mark.parametrize("shape", [(200, 1, 64), (200, 64, 2), (200, 2, 2)])
def test_a_frame_too_narrow_for_a_cell_is_refused_naming_the_file_and_the_likely_cause(tmp_path, shape):
    path = tmp_path / "line.tif"
    tifffile.imwrite(path, np.ones(shape, np.uint16), photometric="minisblack")
    with pytest.raises(MovieError, match=rf"line\.tif has frames of {shape[1]}x{shape[2]} pixels.*line scan.*axes"):
        validate_series([path])
    tifffile.imwrite(path, np.ones((200, 3, 64), np.uint16), photometric="minisblack")
    assert validate_series([path]).frame_shape == (3, 64)


def test_frame_size_mismatch_samples(ideas):
    p2 = sample(ideas, "movie_part2_108x123x63.isxd")
    p3 = sample(ideas, "movie_part3.isxd")
    with pytest.raises(MovieError, match="frame sizes differ") as err:
        validate_series([p2, p3])
    msg = str(err.value)
    assert p2.name in msg and p3.name in msg and "123x108" in msg and "128x128" in msg


def test_pixel_type_mismatch_is_refused_naming_both_files(tmp_path):
    """A uint8 part (converted to 8 bits in Fiji) joined to uint16 parts was analysed without a word: a step in the
    intensity scale at the join, read as a change in every pixel."""
    a = tmp_path / "a.tif"
    tifffile.imwrite(a, movie_data(4, 6, 5).astype(np.uint16), photometric="minisblack")
    b = tmp_path / "b.tif"
    tifffile.imwrite(b, movie_data(4, 6, 5).astype(np.uint8), photometric="minisblack")
    with pytest.raises(MovieError, match="pixel types differ") as err:
        validate_series([a, b])
    assert "a.tif holds uint16" in str(err.value) and "b.tif holds uint8" in str(err.value)
    big = tmp_path / "big.tif"                                   # Fiji's big-endian uint16 is the same type
    tifffile.imwrite(big, movie_data(4, 6, 5).astype(">u2"), photometric="minisblack", byteorder=">")
    assert validate_series([a, big]).n_frames == 8


def test_isxd_parts_downsampled_or_cropped_apart_to_the_same_size_are_refused_naming_both(tmp_path):
    """Same frame size, another field: a part spatially downsampled 2x (6 µm pixels) or cropped from another corner
    of the sensor had been joined pixel by pixel without a word. The same spacing passes."""
    first = write_isxd(tmp_path / "a.isxd", movie_data(4), pixel_um=3, top_left_um=(6, 9))
    same = write_isxd(tmp_path / "same.isxd", movie_data(4), start_ms=1000, pixel_um=3, top_left_um=(6, 9))
    assert validate_series([first, same]).n_frames == 8
    binned = write_isxd(tmp_path / "binned.isxd", movie_data(4), start_ms=1000, pixel_um=6, top_left_um=(6, 9))
    with pytest.raises(MovieError, match=r"pixel sizes differ: .*a.isxd has pixels of 3x3 µm but .*binned.isxd of "
                                         r"6x6 µm .*analyse them separately"):
        validate_series([first, binned])
    moved = write_isxd(tmp_path / "moved.isxd", movie_data(4), start_ms=1000, pixel_um=3, top_left_um=(30, 9))
    with pytest.raises(MovieError, match=r"crops differ: .*a.isxd starts at 6 µm from the sensor's top and 9 µm from "
                                         r"its left but .*moved.isxd at 30 and 9 µm.* crop all movies of a series"):
        validate_series([first, moved])


def test_frame_period_mismatch(tmp_path):
    a = write_isxd(tmp_path / "a.isxd", movie_data(3), period_ms=100, start_ms=0)
    b = write_isxd(tmp_path / "b.isxd", movie_data(3), period_ms=50, start_ms=5000)
    with pytest.raises(MovieError, match="frame periods differ") as err:
        validate_series([a, b])
    msg = str(err.value)
    assert str(a) in msg and str(b) in msg and "0.1 s" in msg and "0.05 s" in msg
    assert "analyse them separately" in msg and "Image > Properties" in msg  # how to fix it


def test_tiff_frame_period_mismatch(tmp_path):
    with pytest.raises(MovieError, match="frame periods differ"):
        validate_series([_ij(tmp_path / "a.tif", 0.1), _ij(tmp_path / "b.tif", 0.2)])


def test_duplicate_start_times(tmp_path):
    a = write_isxd(tmp_path / "a.isxd", movie_data(3), start_ms=1000)
    b = write_isxd(tmp_path / "b.isxd", movie_data(3, seed=1), start_ms=1000)
    with pytest.raises(MovieError, match="same start time") as err:
        validate_series([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_cellset_in_series(ideas):
    movie = sample(ideas, "movie_part2_108x123x63.isxd")
    cells = sample(ideas, "cellset_series_part1.isxd")
    with pytest.raises(MovieError, match="is an isxd cell set, not a movie") as err:
        validate_series([movie, cells])
    assert str(cells) in str(err.value)


def test_zero_frames(tmp_path):
    empty = write_isxd(tmp_path / "empty.isxd", np.zeros((0, 6, 5), np.float32))
    with pytest.raises(MovieError, match="has 0 frames") as err:
        validate_series([empty])
    assert str(empty) in str(err.value)


def test_zero_frames_avi(tmp_path):
    empty = write_avi(tmp_path / "empty.avi", np.zeros((0, 6, 4), np.uint8))
    with pytest.raises(MovieError) as err:
        validate_series([empty])
    assert str(empty) in str(err.value)


def test_all_frames_invalid(tmp_path):
    path = write_isxd(tmp_path / "a.isxd", movie_data(3), dropped=[0, 1, 2])
    with pytest.raises(MovieError, match="dropped or cropped") as err:
        validate_series([path])
    assert str(path) in str(err.value)


def test_too_few_frames(tmp_path):
    a, b = _tif(tmp_path / "a.tif", n=3), _tif(tmp_path / "b.tif", n=4)
    with pytest.raises(MovieError, match="has 7 frames; extraction needs at least 10 \\(tsub=2\\)") as err:
        validate_series([a, b], min_frames=10, tsub=2)
    assert str(a) in str(err.value) and str(b) in str(err.value)
    assert validate_series([a, b], min_frames=7).n_frames == 7


def test_corrupt_file_named(tmp_path):
    good = _tif(tmp_path / "a.tif")
    bad = tmp_path / "b.tif"
    bad.write_bytes(b"garbage" * 20)
    with pytest.raises(MovieError) as err:
        validate_series([good, bad])
    assert str(bad) in str(err.value)


def test_isxd_ordered_by_start_time(tmp_path):
    late = write_isxd(tmp_path / "late.isxd", movie_data(3), start_ms=9000)
    early = write_isxd(tmp_path / "early.isxd", movie_data(4), start_ms=1000)
    mid = write_isxd(tmp_path / "mid.isxd", movie_data(2), start_ms=5000)
    series = validate_series([late, early, mid])
    assert [m.path.name for m in series.movies] == ["late.isxd", "early.isxd", "mid.isxd"]
    assert series.order == (1, 2, 0)
    assert series.offsets() == {1: (0, 4), 2: (4, 6), 0: (6, 9)}
    assert series.n_frames == 9 and series.frame_shape == (6, 5)
    assert series.frame_rate == pytest.approx(10.0) and series.frame_rate_source == "isxd timing"


def test_isxd_movies_overlapping_in_time_are_refused(tmp_path):
    """A recording (0–4 s) listed with a trimmed copy starting at 2 s was joined: 2 s of frames analysed twice."""
    whole = write_isxd(tmp_path / "rec.isxd", movie_data(40), period_ms=100, start_ms=0)
    trimmed = write_isxd(tmp_path / "rec_trimmed.isxd", movie_data(20, seed=1), period_ms=100, start_ms=2000)
    with pytest.raises(MovieError, match="overlap in time") as err:
        validate_series([trimmed, whole])
    assert "rec.isxd" in str(err.value) and "rec_trimmed.isxd" in str(err.value)
    after = write_isxd(tmp_path / "next.isxd", movie_data(20, seed=2), period_ms=100, start_ms=4000)
    assert validate_series([after, whole]).order == (1, 0)           # back to back: a series


def test_other_kinds_keep_listed_order(tmp_path):
    series = validate_series([_tif(tmp_path / "b.tif", n=2), _tif(tmp_path / "a.tif", n=3)])
    assert series.order == (0, 1)
    assert series.offsets() == {0: (0, 2), 1: (2, 5)}


def test_numbered_chunks_listed_in_plain_name_order_are_refused(tmp_path):
    """Miniscope chunks 0.avi … 11.avi given as *.avi arrive 0, 1, 10, 11, 2, …: they were joined in that order,
    time scrambled without a word. Now one message names the misplaced file and the numeric order."""
    names = [f"{k}.tif" for k in range(12)]
    paths = sorted(_tif(tmp_path / n, n=2) for n in names)          # what a shell glob (or sorted()) hands over
    with pytest.raises(MovieError, match="plain name order") as err:
        validate_series(paths)
    message = str(err.value)
    assert "puts 10.tif before 2.tif" in message and "0.tif 1.tif 2.tif 3.tif" in message and "sort -V" in message


def test_numbered_chunks_in_numeric_or_hand_chosen_order_pass(tmp_path):
    paths = [_tif(tmp_path / f"msCam{k}.tif", n=2) for k in range(1, 13)]
    assert validate_series(paths).order == tuple(range(12))                 # numeric order
    padded = [_tif(tmp_path / f"p{k:03d}.tif", n=2) for k in (2, 10)]
    assert validate_series(padded).n_frames == 4                             # zero-padded: both orders agree
    chosen = [paths[3], paths[0], paths[11]]                                 # msCam4, msCam1, msCam12: by hand
    assert validate_series(chosen).order == (0, 1, 2)


def test_an_image_sequence_of_single_image_tiffs_is_refused_as_a_sequence_with_how_to_stack_it(tmp_path):
    """300 single-image TIFFs (one frame per file) were refused as if one of them were the movie given ('give a
    multi-page TIFF'), with no word on the sequence they make; now the message says so and how to stack them."""
    paths = [tmp_path / f"img_{k:04d}.tif" for k in range(5)]
    for p in paths:
        tifffile.imwrite(p, np.zeros((6, 5), np.uint16), photometric="minisblack")
    with pytest.raises(MovieError, match="image sequence") as err:
        validate_series(paths)
    message = str(err.value)
    assert "5 files" in message and "img_0000.tif" in message and "img_0004.tif" in message
    assert "Image Sequence" in message and "numpy.stack" in message
    with pytest.raises(MovieError, match="single 2-D image") as one:
        validate_series(paths[:1])
    assert "image sequence" not in str(one.value)


def test_a_multi_file_ome_tiff_is_read_once_each_file_its_own_frames(tmp_path):
    """Micro-Manager's MMStack_Pos0.ome.tif describes the frames of MMStack_Pos0_1.ome.tif too, and tifffile reads
    them across files: both listed (*.ome.tif) made 30 frames of a 20-frame recording, the second part twice;
    the first alone read a missing part as frames of zeros."""
    from cnmflow.movies import read_frames

    parts = [np.full((4, 6, 5), 10 * (k + 1), np.uint16) for k in range(3)]
    paths = micro_manager(tmp_path, parts)
    series = validate_series(paths)
    assert series.n_frames == 12 and [m.n_frames for m in series.movies] == [4, 4, 4]
    for movie, part in zip(series.movies, parts):
        np.testing.assert_array_equal(read_frames(movie, 0, 4), part)
    with pytest.raises(MovieError, match="multi-file OME-TIFF") as err:
        validate_series(paths[:2])
    assert "MMStack_Pos0_2.ome.tif is not listed" in str(err.value)
    with pytest.raises(MovieError, match="list them next to each other in that order"):
        validate_series([paths[0], paths[2], paths[1]])
    # a later part alone, or the later parts without the first, read as a whole recording with no word
    for later in ([paths[1]], paths[1:], [paths[1], paths[0], paths[2]]):
        with pytest.raises(MovieError, match="later file of a multi-file OME-TIFF") as err:
            validate_series(later)
        assert "MMStack_Pos0.ome.tif first" in str(err.value) and "sub-folder" in str(err.value)
    paths[2].unlink()
    with pytest.raises(MovieError, match="not found next to it"):
        validate_series(paths[:2])
    (tmp_path / "one").mkdir()                             # a one-file OME-TIFF renamed: its UUID names it
    (single,) = micro_manager(tmp_path / "one", parts[:1])
    renamed = single.rename(single.with_name("renamed.ome.tif"))
    assert validate_series([renamed]).n_frames == 4


def test_avi_series_samples(ideas):
    series = validate_series([sample(ideas, "movie_part1_108x122x200.avi"),
                              sample(ideas, "movie_part2_108x122x126.avi")])
    assert series.n_frames == 163 and series.offsets() == {0: (0, 100), 1: (100, 163)}


# ---- resolve_frame_rate ---------------------------------------------------------------

def test_fr_auto_from_isxd(tmp_path):
    series = validate_series([write_isxd(tmp_path / "a.isxd", movie_data(3), period_ms=50)])
    assert resolve_frame_rate(series, None) == (pytest.approx(20.0), "isxd timing", [])


def test_fr_auto_without_metadata(tmp_path):
    a = _tif(tmp_path / "a.tif")
    fr, source, warnings = resolve_frame_rate(validate_series([a]), None)
    assert (fr, source) == (30.0, "default")
    assert len(warnings) == 1 and "no frame-rate metadata" in warnings[0] and str(a) in warnings[0]
    assert "set fr" in warnings[0]


def test_fr_auto_from_some_files_of_a_series_warns_for_the_others(tmp_path):
    """A TIFF saved without metadata beside one that has it: its rate is assumed, not read, and the run says so."""
    timed, bare = _ij(tmp_path / "a.tif", 0.1), _tif(tmp_path / "b.tif")
    fr, source, warnings = resolve_frame_rate(validate_series([timed, bare]), None)
    assert fr == pytest.approx(10.0) and source == "ImageJ finterval"
    assert len(warnings) == 1 and warnings[0].startswith(f"{bare} carries no frame rate") and str(timed) in warnings[0]
    assert resolve_frame_rate(validate_series([timed, _ij(tmp_path / "c.tif", 0.1)]), None)[2] == []


def test_fr_auto_string(tmp_path):
    series = validate_series([write_isxd(tmp_path / "a.isxd", movie_data(3), period_ms=50)])
    assert resolve_frame_rate(series, "auto") == resolve_frame_rate(series, None)


def test_fr_user_without_metadata(tmp_path):
    assert resolve_frame_rate(validate_series([_tif(tmp_path / "a.tif")]), 15) == (15.0, "user", [])


def test_fr_user_disagrees_with_isxd(tmp_path):
    series = validate_series([write_isxd(tmp_path / "a.isxd", movie_data(3), period_ms=100)])
    fr, source, warnings = resolve_frame_rate(series, 30)
    assert (fr, source) == (pytest.approx(10.0), "isxd timing")
    assert len(warnings) == 1 and "disagrees" in warnings[0]


def test_fr_user_disagrees_with_avi(tmp_path):
    series = validate_series([write_avi(tmp_path / "a.avi", np.zeros((4, 6, 4), np.uint8), rate=15)])
    fr, source, warnings = resolve_frame_rate(series, 30)
    assert fr == pytest.approx(15.0) and source.startswith("avi") and warnings


def test_fr_user_agrees(tmp_path):
    series = validate_series([write_isxd(tmp_path / "a.isxd", movie_data(3), period_ms=100)])
    assert resolve_frame_rate(series, 10.005) == (pytest.approx(10.0), "isxd timing", [])


def test_fr_user_disagrees_with_tiff_metadata(tmp_path):
    series = validate_series([_ij(tmp_path / "a.tif", 0.1)])
    assert resolve_frame_rate(series, None) == (pytest.approx(10.0), "ImageJ finterval", [])
    fr, source, warnings = resolve_frame_rate(series, 20)
    assert (fr, source) == (20.0, "user") and len(warnings) == 1 and "disagrees" in warnings[0]


@pytest.mark.parametrize("interval_s", [100.0, 1e-5])
def test_a_metadata_rate_no_calcium_imaging_runs_at_is_refused_unless_fr_is_set(tmp_path, interval_s):
    """An ImageJ interval of 100 (ms, read as s) gave 0.01 Hz, one of 1e-5 s 100 kHz, taken without a word: the
    deconvolution's decay in frames was off as far. Refused naming the file and the rate, unless fr is set."""
    series = validate_series([_ij(tmp_path / "slow.tif", interval_s)])
    with pytest.raises(ParameterError) as err:
        resolve_frame_rate(series, None)
    message = str(err.value)
    assert f"{tmp_path / 'slow.tif'}" in message and f"{1 / interval_s:.6g} Hz (ImageJ finterval)" in message
    assert "set fr" in message
    fr, source, warnings = resolve_frame_rate(series, 20)
    assert (fr, source) == (20.0, "user") and "no calcium imaging runs at" in warnings[0]
    assert resolve_frame_rate(validate_series([_ij(tmp_path / "ok.tif", 2.0)]), None)[0] == pytest.approx(0.5)


def test_an_isxd_rate_no_calcium_imaging_runs_at_gives_way_to_fr(tmp_path):
    """An isxd's (or AVI's) own rate wins over fr (the file's clock), except one outside what calcium imaging runs
    at: a period of 20 s."""
    series = validate_series([write_isxd(tmp_path / "a.isxd", movie_data(3), period_ms=20000)])
    with pytest.raises(ParameterError, match=r"0\.05 Hz \(isxd timing\)"):
        resolve_frame_rate(series, None)
    assert resolve_frame_rate(series, 20)[:2] == (20.0, "user")


@pytest.mark.parametrize("bad", [0, -5, float("nan"), "fast"])
def test_fr_invalid_user_value(tmp_path, bad):
    with pytest.raises(ParameterError, match="fr must be"):
        resolve_frame_rate(validate_series([_tif(tmp_path / "a.tif")]), bad)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_single_image_among_movies_is_named_to_leave_out_not_to_stack(tmp_path, position):
    """A projection saved beside the movies (``*.tif`` picks it up) was, listed first, called the start of an image
    sequence to stack with the movies, and elsewhere told to be 'a multi-page TIFF'; now it is named, to leave out."""
    movies = [_tif(tmp_path / f"rec{k}.tif") for k in range(2)]
    image = tmp_path / "AVG_rec.tif"
    tifffile.imwrite(image, movie_data(1)[0], photometric="minisblack")
    paths = movies[:position] + [image] + movies[position:]
    with pytest.raises(MovieError) as err:
        validate_series(paths)
    message = str(err.value)
    assert message.startswith(f"{image} holds a single 2-D image, not a movie, listed among 3 files")
    assert "Leave it out of the series" in message and "image sequence" not in message
