import importlib.util

import numpy as np
import pytest
import tifffile

from cnmflow.errors import MovieError
from cnmflow.movies import iter_chunks, read_frames, read_info, validate_series
from cnmflow.movies.tiff import frame_rate_from_imagej, frame_rate_from_scanimage

from .conftest import movie_data, sample


def test_sample_tiff_equals_isxd(ideas):
    tif = read_info(sample(ideas, "movie_part2_108x123x63.tiff"))
    isxd = read_info(sample(ideas, "movie_part2_108x123x63.isxd"))
    assert tif.kind == "tiff" and tif.n_frames == 63 and tif.frame_shape == (123, 108)
    assert tif.dtype == np.float32
    assert tif.frame_rate is None and tif.frame_rate_source is None
    np.testing.assert_array_equal(read_frames(tif, 0, 63), read_frames(isxd, 0, 63))


def test_upper_case_extension(ideas, tmp_path):
    link = tmp_path / "movie.TIFF"
    link.symlink_to(sample(ideas, "movie_part2_108x123x63.tiff"))
    assert read_info(link).n_frames == 63


def test_imagej_finterval_and_pixel_size(tmp_path):
    data = (movie_data(7) * 10).astype(np.uint16)
    path = tmp_path / "ij.Tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYX", "finterval": 0.05, "unit": "um"})
    info = read_info(path)
    assert info.kind == "tiff" and info.dtype == np.uint16
    assert info.frame_rate == pytest.approx(20.0)
    assert info.frame_rate_source == "ImageJ finterval"
    assert info.pixel_size_um == pytest.approx(0.5)
    assert info.frame_period == pytest.approx(0.05)
    np.testing.assert_array_equal(read_frames(info, 2, 6), data[2:6].astype(np.float32))


def test_imagej_fps(tmp_path):
    path = tmp_path / "fps.tif"
    tifffile.imwrite(path, movie_data(4), imagej=True, metadata={"axes": "TYX", "fps": 12.5})
    info = read_info(path)
    assert (info.frame_rate, info.frame_rate_source) == (12.5, "ImageJ fps")


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_plain_and_compressed(tmp_path, compression):
    data = movie_data(11)
    path = tmp_path / "plain.tiff"
    tifffile.imwrite(path, data, compression=compression)
    info = read_info(path)
    assert info.n_frames == 11 and info.frame_rate is None and info.pixel_size_um is None
    blocks = list(iter_chunks(info, chunk_frames=4))
    assert [first for first, _ in blocks] == [0, 4, 8]
    assert all(b.dtype == np.float32 for _, b in blocks)
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), data)
    np.testing.assert_array_equal(read_frames(info, 9, 11), data[9:11])
    assert read_frames(info, 5, 5).shape == (0, 6, 5)


def test_single_image_rejected(tmp_path):
    path = tmp_path / "one.tif"
    tifffile.imwrite(path, movie_data(1)[0])
    with pytest.raises(MovieError, match="single 2-D image") as err:
        read_info(path)
    assert str(path) in str(err.value)


def test_rgb_rejected(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((3, 4, 6, 3), np.uint8), photometric="rgb")
    with pytest.raises(MovieError, match="samples per pixel"):
        read_info(path)


def test_multichannel_rejected(tmp_path):
    path = tmp_path / "ch.tif"
    tifffile.imwrite(path, np.zeros((3, 2, 4, 6), np.uint16), imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(MovieError, match="2 channels") as err:
        read_info(path)
    assert str(path) in str(err.value)


def test_corrupt_tiff(tmp_path):
    path = tmp_path / "bad.tif"
    path.write_bytes(b"II*\x00" + b"\xff" * 50)
    with pytest.raises(MovieError, match="cannot read TIFF") as err:
        read_info(path)
    assert str(path) in str(err.value)


def test_truncated_tiff(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, movie_data(20), compression="zlib")
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(MovieError) as err:
        info = read_info(path)
        read_frames(info, 0, info.n_frames)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("writer", [dict(), dict(imagej=True), dict(metadata=None), dict(compression="zlib")])
def test_a_tiff_cut_short_is_refused_before_any_frame_is_read(tmp_path, writer):
    """A recording still being copied: its first page's metadata (tifffile's shape, ImageJ's) still promise every
    frame, or its page chain points past the end. It once read as 200 frames and failed mid-run on a reshape, or as a
    single image, or (no metadata) as a shorter movie; it is refused by name when it is opened."""
    path = tmp_path / "copying.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 4000, (40, 32, 32), dtype=np.uint16), **writer)
    whole = path.read_bytes()     # two thirds of it: the cut falls in the frames' data, not only in trailing tags
    path.write_bytes(whole[:len(whole) * 2 // 3])
    with pytest.raises(MovieError, match="truncated") as err:
        read_info(path)
    assert str(path) in str(err.value) and "copy the complete file again" in str(err.value)
    path.write_bytes(whole)
    assert read_info(path).n_frames == 40


def test_frame_rate_metadata_parsers():
    assert frame_rate_from_imagej({"finterval": 0.1}) == (pytest.approx(10.0), "ImageJ finterval")
    assert frame_rate_from_imagej({"finterval": 50, "tunit": "ms"})[0] == pytest.approx(20.0)
    assert frame_rate_from_imagej({"fps": 7}) == (7.0, "ImageJ fps")
    assert frame_rate_from_imagej({"finterval": 0}) == (None, None)
    assert frame_rate_from_imagej(None) == (None, None)
    si = {"FrameData": {"SI.hRoiManager.scanFrameRate": 30.05, "SI.hRoiManager.scanVolumeRate": 30.05}}
    assert frame_rate_from_scanimage(si) == (30.05, "ScanImage")
    vol = {"FrameData": {"SI.hRoiManager.scanFrameRate": 30.0, "SI.hRoiManager.scanVolumeRate": 7.5,
                         "SI.hStackManager.numSlices": 4}}
    assert frame_rate_from_scanimage(vol) == (7.5, "ScanImage")
    assert frame_rate_from_scanimage({"FrameData": {}}) == (None, None)


def test_stack_written_block_by_block(tmp_path):
    data = movie_data(12)
    path = tmp_path / "blocks.tif"
    with tifffile.TiffWriter(path) as tw:
        for first in range(0, 12, 4):
            tw.write(data[first:first + 4], photometric="minisblack", contiguous=False)
    info = read_info(path)
    assert info.n_frames == 12
    np.testing.assert_array_equal(read_frames(info, 0, 12), data)
    np.testing.assert_array_equal(np.concatenate([b for _, b in iter_chunks(info, chunk_frames=5)]), data)


def test_contiguous_blocks_are_refused_as_4d(tmp_path):
    """tifffile stores contiguous blocks as one (blocks, frames, rows, cols) array, the same bytes as (T, C, Y, X)."""
    path = tmp_path / "blocks.tif"
    with tifffile.TiffWriter(path) as tw:
        for first in range(0, 12, 4):
            tw.write(movie_data(12)[first:first + 4], photometric="minisblack", contiguous=True)
    with pytest.raises(MovieError, match=r"4-D TIFF of shape \(3, 4, 6, 5\)"):
        read_info(path)


def _retag(path, tag: str, value: int) -> None:
    """Set a SHORT tag of every page in place (how a file written elsewhere with another codec looks here)."""
    with tifffile.TiffFile(path) as tf:
        offsets = [page.tags[tag].valueoffset for page in tf.pages]
    data = bytearray(path.read_bytes())
    for offset in offsets:
        data[offset:offset + 2] = value.to_bytes(2, "little")
    path.write_bytes(bytes(data))


def _pages(path, data, **kwargs):
    with tifffile.TiffWriter(path) as tw:
        for frame in data:
            tw.write(frame, photometric="minisblack", contiguous=False, **kwargs)
    return path


@pytest.mark.skipif(importlib.util.find_spec("imagecodecs") is not None, reason="imagecodecs decodes these")
@pytest.mark.parametrize("tag, value, words", [("Compression", 5, "compressed with LZW"),
                                                ("Compression", 7, "compressed with JPEG"),
                                                ("Predictor", 3, "predictor FLOATINGPOINT")])
def test_a_codec_this_installation_lacks_is_refused_when_the_file_is_opened(tmp_path, tag, value, words):
    """LZW (common in microscope exports), JPEG and the floating-point predictor need imagecodecs: such a file once
    passed validation (its metadata reads without it) and failed on its first frame, mid-run."""
    path = _pages(tmp_path / "codec.tif", movie_data(30).astype(np.uint16),
                  **({"compression": "zlib", "predictor": True} if tag == "Predictor" else {}))
    _retag(path, tag, value)
    with pytest.raises(MovieError) as err:
        validate_series([path])
    message = str(err.value)
    assert message.startswith(str(path)) and words in message
    assert "pip install imagecodecs" in message and "uncompressed" in message


def test_a_lossy_jpeg_tiff_is_noted(tmp_path, monkeypatch):
    monkeypatch.setitem(tifffile.TIFF.DECOMPRESSORS._codecs, 7, lambda *args, **kwargs: None)  # as with imagecodecs
    path = _pages(tmp_path / "jpeg.tif", movie_data(5).astype(np.uint8))
    _retag(path, "Compression", 7)
    (note,) = read_info(path).notes
    assert note.startswith(str(path)) and "lossy JPEG" in note and "uncompressed original" in note


@pytest.mark.parametrize("frame_data, planes", [
    ({"SI.hStackManager.enable": True, "SI.hStackManager.actualNumSlices": 3}, 3),
    ({"SI.hStackManager.enable": False, "SI.hFastZ.enable": True, "SI.hStackManager.numSlices": 4}, 4),
    ({"SI.hStackManager.enable": False, "SI.hFastZ.enable": False, "SI.hStackManager.numSlices": 4}, 1),
    ({"SI.hStackManager.numSlices": 1}, 1),
])
def test_a_scanimage_volume_recording_is_refused_not_read_as_alternating_planes(tmp_path, monkeypatch, frame_data,
                                                                                planes):
    """Its pages interleave the planes of each volume: read page after page they made a movie whose frames alternate
    between planes, at the volume rate."""
    import tifffile.tifffile as tifffile_module

    frame_data = {"SI.hRoiManager.scanFrameRate": 30.0, "SI.hRoiManager.scanVolumeRate": 7.5, **frame_data}
    monkeypatch.setattr(tifffile_module, "read_scanimage_metadata", lambda fh: (frame_data, {}, 4))
    path = tmp_path / "si.tif"
    tifffile.imwrite(path, movie_data(12).astype(np.int16), photometric="minisblack",
                     description="scanimage.SI")   # what makes tifffile read ScanImage metadata
    if planes == 1:
        assert read_info(path).n_frames == 12
        return
    with pytest.raises(MovieError) as err:
        read_info(path)
    message = str(err.value)
    assert message.startswith(str(path)) and f"volume recording of {planes} planes per volume" in message
    assert f"pages k::{planes}" in message


def test_imagej_time_units_beyond_seconds_and_unknown_ones():
    """finterval 0.05 in hours was read as seconds: 20 Hz for a frame every 3 minutes."""
    assert frame_rate_from_imagej({"finterval": 0.05, "tunit": "hr"})[0] == pytest.approx(1 / 180)
    assert frame_rate_from_imagej({"finterval": 2, "tunit": "minutes"})[0] == pytest.approx(1 / 120)
    assert frame_rate_from_imagej({"finterval": 50_000, "tunit": "\\u00B5s"})[0] == pytest.approx(20.0)
    assert frame_rate_from_imagej({"finterval": 0.05, "tunit": "frames"}) == (None, None)   # no rate, not a guess
    assert frame_rate_from_imagej({"finterval": 0.05, "tunit": "frames", "fps": 7}) == (7.0, "ImageJ fps")


def test_an_imagej_movie_timed_in_hours_is_not_read_as_seconds(tmp_path):
    path = tmp_path / "hourly.tif"
    tifffile.imwrite(path, movie_data(5).astype(np.uint16), imagej=True,
                     metadata={"axes": "TYX", "finterval": 0.05, "tunit": "hr"})
    assert read_info(path).frame_rate == pytest.approx(1 / 180)


@pytest.mark.parametrize("timing, rate", [({"TimeIncrement": 0.05, "TimeIncrementUnit": "s"}, 20.0),
                                          ({"TimeIncrement": 40, "TimeIncrementUnit": "ms"}, 25.0),
                                          ({}, None)])
def test_an_ome_tiffs_time_increment_is_its_frame_rate(tmp_path, timing, rate):
    """Bio-Formats and Micro-Manager write the frame interval only in OME-XML: such a movie was analysed at the
    default 30 fps with a warning that it had no frame-rate metadata."""
    path = tmp_path / "timed.ome.tif"
    tifffile.imwrite(path, movie_data(5).astype(np.uint16), ome=True, metadata={"axes": "TYX", **timing})
    info = read_info(path)
    assert info.frame_rate == (pytest.approx(rate) if rate else None)
    assert info.frame_rate_source == ("OME TimeIncrement" if rate else None)
