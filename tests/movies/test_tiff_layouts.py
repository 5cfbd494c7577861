"""Every TIFF layout a user may hand in reads exactly as tifffile.imread, or is refused before compute."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from cnmflow.errors import MovieError
from cnmflow.movies import concatenate, iter_chunks, read_frames, read_info, validate_series

T, ROWS, COLS = 9, 7, 6


def _movie(dtype: str) -> np.ndarray:
    values = np.random.default_rng(3).random((T, ROWS, COLS)) * 3000 + 1
    return values.astype(np.dtype(dtype).newbyteorder("="))


def _write(path, data: np.ndarray, *, byteorder: str, layout: str) -> None:
    """Write `data` in one of the layouts microscopes and Fiji produce."""
    if layout == "imagej":  # one contiguous block (memory-mapped by the reader)
        tifffile.imwrite(path, data, imagej=True, byteorder=byteorder, metadata={"axes": "TYX"})
    elif layout == "contiguous":
        tifffile.imwrite(path, data, byteorder=byteorder, photometric="minisblack")
    elif layout == "pages":  # one page (and series) per frame
        with tifffile.TiffWriter(path, byteorder=byteorder) as tw:
            for frame in data:
                tw.write(frame, photometric="minisblack", contiguous=False)
    elif layout == "compressed":  # read page by page, not memory-mapped
        tifffile.imwrite(path, data, byteorder=byteorder, photometric="minisblack", compression="zlib")
    else:
        raise AssertionError(layout)


@pytest.mark.parametrize("layout", ["imagej", "contiguous", "pages", "compressed"])
@pytest.mark.parametrize("dtype", [">u2", "<u2", ">f4", "<f4"])
def test_every_reader_returns_what_tifffile_reads(tmp_path, dtype, layout):
    path = tmp_path / "m.tif"
    data = _movie(dtype)
    _write(path, data, byteorder=dtype[0], layout=layout)
    # every page in file order (imread alone reads only the first series of a one-page-per-frame file)
    expected = tifffile.imread(path, key=slice(None)).astype(np.float32)
    np.testing.assert_array_equal(expected, data.astype(np.float32))  # the writer kept the values
    info = read_info(path)
    assert info.n_frames == T and info.frame_shape == (ROWS, COLS)
    np.testing.assert_array_equal(read_frames(info, 0, T), expected)
    np.testing.assert_array_equal(read_frames(info, 3, 7), expected[3:7])
    np.testing.assert_array_equal(np.concatenate([b for _, b in iter_chunks(info, chunk_frames=4)]), expected)
    movie = concatenate(validate_series([path]), tmp_path, chunk_frames=4)
    np.testing.assert_array_equal(np.asarray(movie.open()), expected)


def test_big_and_little_endian_give_the_same_work_copy(tmp_path):
    data = _movie("u2")
    copies = []
    for order in "<>":
        folder = tmp_path / order.replace("<", "le").replace(">", "be")
        folder.mkdir()
        _write(folder / "m.tif", data, byteorder=order, layout="imagej")
        copies.append(np.array(concatenate(validate_series([folder / "m.tif"]), folder).open()))
    np.testing.assert_array_equal(copies[0], copies[1])


@pytest.mark.parametrize("shape, kwargs, words", [
    ((T, 2, ROWS, COLS), {}, "4-D TIFF of shape (9, 2, 7, 6)"),
    ((2, T, ROWS, COLS), {}, "4-D TIFF of shape (2, 9, 7, 6)"),
    ((2, 2, T, ROWS, COLS), {}, "5-D TIFF of shape (2, 2, 9, 7, 6)"),
    ((T, 5, ROWS, COLS), {"imagej": True, "metadata": {"axes": "TZYX"}}, "4-D TIFF of shape (9, 5, 7, 6)"),
    ((T, 2, ROWS, COLS), {"imagej": True, "metadata": {"axes": "TCYX"}}, "2 channels"),
    ((T, 3, 2, ROWS, COLS), {"imagej": True, "metadata": {"axes": "TZCYX"}}, "2 channels"),
    ((T, ROWS, COLS, 3), {"photometric": "rgb"}, "3 samples per pixel"),
    ((T, 3, ROWS, COLS), {"photometric": "rgb", "planarconfig": "separate"}, "3 samples per pixel"),
    ((T, ROWS, COLS, 2), {"photometric": "minisblack", "extrasamples": ["unassalpha"]}, "2 samples per pixel"),
])
def test_ambiguous_layouts_are_refused(tmp_path, shape, kwargs, words):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.ones(shape, np.uint16 if "rgb" not in str(kwargs) else np.uint8), **kwargs)
    with pytest.raises(MovieError) as err:
        validate_series([path])
    message = str(err.value)
    assert str(path) in message and words in message
    assert "give a single-channel" in message or "save it as a 3-D (frames, rows, cols) stack" in message


def test_rgb_pages_in_separate_series_are_refused(tmp_path):
    path = tmp_path / "rgb_pages.tif"
    with tifffile.TiffWriter(path) as tw:
        for _ in range(3):
            tw.write(np.zeros((ROWS, COLS, 3), np.uint8), photometric="rgb", contiguous=False)
    with pytest.raises(MovieError, match="3 samples per pixel"):
        read_info(path)


@pytest.mark.parametrize("axes", ["YXT", "YXZ", "YTX", "XYT"])
@pytest.mark.parametrize("byteorder", "<>")
def test_frames_stored_last_are_read_along_the_axis_the_file_names(tmp_path, axes, byteorder):
    """A (rows, cols, frames) array written with its axes ('YXT'): its pages are rows of the movie. It was read as
    frames of the stored bytes in frames-first order, a movie of scrambled pixels of the right size."""
    data = _movie(f"{byteorder}u2")
    stored = np.transpose(data, ["TYX".index(a.replace("Z", "T")) for a in axes])
    path = tmp_path / "frames_last.tif"
    tifffile.imwrite(path, stored, byteorder=byteorder, photometric="minisblack", metadata={"axes": axes})
    info = read_info(path)
    assert (info.n_frames, info.frame_shape) == (T, (ROWS, COLS))
    expected = data.astype(np.float32)
    np.testing.assert_array_equal(read_frames(info, 2, 6), expected[2:6])
    np.testing.assert_array_equal(np.concatenate([b for _, b in iter_chunks(info, chunk_frames=4)]), expected)
    movie = concatenate(validate_series([path]), tmp_path, chunk_frames=4)  # never read in place
    np.testing.assert_array_equal(np.asarray(movie.open()), expected)


@pytest.mark.parametrize("kwargs, words", [
    ({"metadata": {"axes": "YXT"}, "compression": "zlib"}, "stores its frames last (axes 'YXT'"),
    ({"planarconfig": "contig"}, f"one image of {T} samples per pixel"),
])
def test_frames_last_that_cannot_be_read_along_time_is_refused(tmp_path, kwargs, words):
    """Compressed frames-last (each frame would need the whole file decoded), or a (rows, cols, frames) array
    written as one image of many samples per pixel (which had been refused as a colour image to make grayscale)."""
    path = tmp_path / "frames_last.tif"
    tifffile.imwrite(path, np.moveaxis(_movie("u2"), 0, -1), photometric="minisblack", **kwargs)
    with pytest.raises(MovieError) as err:
        validate_series([path])
    assert str(path) in str(err.value) and words in str(err.value) and "np.moveaxis" in str(err.value)


@pytest.mark.parametrize("shape", [(T, 1, ROWS, COLS), (1, T, ROWS, COLS)])
def test_singleton_axes_are_still_a_movie(tmp_path, shape):
    path = tmp_path / "single.tif"
    data = _movie("u2").reshape(shape)
    tifffile.imwrite(path, data, photometric="minisblack")
    info = read_info(path)
    assert info.n_frames == T
    np.testing.assert_array_equal(read_frames(info, 0, T), data.reshape(T, ROWS, COLS).astype(np.float32))


@pytest.mark.parametrize("second", [(T, ROWS, COLS), (4, ROWS - 2, COLS)])
def test_an_ome_tiff_of_several_images_is_refused_not_read_as_one_movie(tmp_path, second):
    """An OME-TIFF's images are separate acquisitions (positions, fields of view). Two of one shape once read as one
    movie of twice the frames, the second place's frames after the first's; the other shape was refused as a file of
    "image series of different frame sizes", which does not say what the file is."""
    path = tmp_path / "positions.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(_movie("u2"), metadata={"axes": "TYX"})
        tw.write(np.ones(second, np.uint16), metadata={"axes": "TYX"})
    with pytest.raises(MovieError) as err:
        validate_series([path])
    message = str(err.value)
    assert message.startswith(str(path)) and "OME-TIFF holding 2 images" in message
    assert f"Image1 {second}" in message and "save each image as its own TIFF" in message


def test_an_ome_tiff_of_one_image_is_a_movie(tmp_path):
    path = tmp_path / "one.ome.tif"
    tifffile.imwrite(path, _movie("u2"), ome=True, metadata={"axes": "TYX"})
    assert read_info(path).n_frames == T


@pytest.mark.parametrize("odd, words", [(lambda f: f[:-2], "page 4 is 5x6 uint16, the first frame 7x6 uint16"),
                                        (lambda f: f.astype(np.float32), "page 4 is 7x6 float32")])
def test_a_page_of_another_size_or_type_is_named(tmp_path, odd, words):
    """A movie with one odd page (a thumbnail, a frame saved in another type) was refused as "image series of
    different frame sizes or types" without saying which page: among thousands, the user could not find it."""
    path = tmp_path / "odd_page.tif"
    with tifffile.TiffWriter(path) as tw:
        for k, frame in enumerate(_movie("u2")):
            tw.write(odd(frame) if k == 4 else frame, photometric="minisblack", contiguous=False)
    with pytest.raises(MovieError) as err:
        read_info(path)
    assert str(err.value).startswith(str(path)) and words in str(err.value)
