from fractions import Fraction

import av
import numpy as np
import pytest

from cnmflow.errors import MovieError
from cnmflow.movies import iter_chunks, read_frames, read_info

from .conftest import sample, write_avi


@pytest.mark.parametrize("name, n", [("movie_part1_108x122x200.avi", 100), ("movie_part2_108x122x126.avi", 63)])
def test_frame_count_is_decoded_not_header(ideas, name, n):
    import av

    path = sample(ideas, name)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 2 * n  # the header's (wrong) count
    info = read_info(path)
    assert info.kind == "avi" and info.n_frames == n
    assert info.frame_shape == (122, 108) and info.dtype == np.uint8
    # the decoded frames are 0.1 s apart (every second index entry is empty)
    assert info.frame_rate == pytest.approx(10.0)
    assert info.frame_rate_source == "avi frame timestamps"
    frames = read_frames(info, 0, n)
    assert frames.shape == (n, 122, 108) and frames.dtype == np.float32
    assert all(frame.any() for frame in frames)  # never padded with zero frames
    with pytest.raises(MovieError, match=f"outside the movie's {n} frames"):
        read_frames(info, 0, n + 1)


def test_written_avi_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 255, (9, 8, 10), dtype=np.uint8)
    info = read_info(write_avi(tmp_path / "m.Avi", data, rate=15))
    assert (info.n_frames, info.frame_shape) == (9, (8, 10))
    assert info.frame_rate == pytest.approx(15.0)
    np.testing.assert_array_equal(read_frames(info, 0, 9), data.astype(np.float32))
    np.testing.assert_array_equal(read_frames(info, 4, 7), data[4:7].astype(np.float32))
    blocks = list(iter_chunks(info, chunk_frames=4))
    assert [(first, b.shape[0]) for first, b in blocks] == [(0, 4), (4, 4), (8, 1)]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), data.astype(np.float32))



def _write_avi(path, frames: np.ndarray, *, codec: str, pix_fmt: str, given_as: str) -> None:
    """An AVI of ``frames`` (handed to the encoder as ``given_as``) stored in ``pix_fmt``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=20)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=given_as)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_deep_avi(path, data: np.ndarray, *, codec: str, pix_fmt: str) -> None:
    """An AVI of uint16 frames stored in ``pix_fmt`` (more than 8 bits per sample)."""
    _write_avi(path, data, codec=codec, pix_fmt=pix_fmt, given_as="gray16le")


@pytest.mark.parametrize("codec, pix_fmt", [("ffv1", "gray16le"), ("png", "gray16be")])
def test_16_bit_grayscale_avi_keeps_its_values(tmp_path, codec, pix_fmt):
    """A 12-bit camera's counts in a 16-bit grayscale AVI were read as 8-bit luma (value // 256: 0..15 here),
    a plausible uint8 movie of 16 grey levels; they are read as stored, in uint16."""
    from cnmflow.movies import validate_series
    from cnmflow.movies.concat import work_dtype

    data = np.random.default_rng(5).integers(100, 4096, (12, 8, 10), dtype=np.uint16)
    path = tmp_path / "deep.avi"
    _write_deep_avi(path, data, codec=codec, pix_fmt=pix_fmt)
    info = read_info(path)
    assert info.dtype == np.uint16 and (info.n_frames, info.frame_shape) == (12, (8, 10))
    np.testing.assert_array_equal(read_frames(info, 0, 12), data.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([b for _, b in iter_chunks(info, chunk_frames=5)]),
                                  data.astype(np.float32))
    assert work_dtype(validate_series([path])) == np.uint16  # the series' work copy keeps the counts


def test_10_bit_colour_avi_is_read_as_16_bit_luma(tmp_path):
    """A video of more than 8 bits per sample that is not grayscale keeps its depth as 16-bit luma."""
    data = np.random.default_rng(6).integers(1000, 60000, (6, 8, 10), dtype=np.uint16)
    path = tmp_path / "deep_yuv.avi"
    _write_deep_avi(path, data, codec="ffv1", pix_fmt="yuv444p10le")
    info = read_info(path)
    assert info.dtype == np.uint16
    frames = read_frames(info, 0, 6)
    assert np.abs(frames - data).max() < 0.01 * 65535  # 16-bit luma, not value // 256


def test_an_avi_whose_frame_size_changes_is_refused_when_opened(tmp_path):
    """Every frame is decoded to count them, so a size change anywhere in the video is refused then, before any
    compute; found only when the frames were read, it failed a run late, past validation's sample of frames."""
    path = tmp_path / "resized.avi"
    frames = (np.random.default_rng(0).random((60, 48, 32)) * 100 + 100).astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=20)
        stream.height, stream.width, stream.pix_fmt = 32, 32, "yuvj420p"
        wider = av.CodecContext.create("mjpeg", "w")
        wider.height, wider.width, wider.pix_fmt = 48, 32, "yuvj420p"
        wider.time_base, wider.framerate = Fraction(1, 20), 20
        for i, frame in enumerate(frames):
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:32] if i < 50 else frame), format="gray")
            image.pts = i
            if i < 50:
                container.mux(stream.encode(image))
                continue
            for packet in wider.encode(image.reformat(format="yuvj420p")):
                packet.stream, packet.pts, packet.dts = stream, i, i
                container.mux(packet)
        container.mux(stream.encode())
    with pytest.raises(MovieError, match="frame 50 is \\(48, 32\\), expected \\(32, 32\\); frame size changes") as err:
        read_info(path)
    assert str(path) in str(err.value)


def test_corrupt_avi(tmp_path):
    path = tmp_path / "bad.avi"
    path.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(MovieError) as err:
        read_info(path)
    assert str(path) in str(err.value)


def _cut_avi(tmp_path, *, frames: int = 200, rate: int = 20, keep: float = 0.4):
    """An mpeg4 AVI of `frames` frames cut at a chunk boundary (a copy that stopped early)."""
    data = (np.random.default_rng(4).random((frames, 32, 40)) * 200).astype(np.uint8)
    full = tmp_path / "full.avi"
    with av.open(str(full), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.height, stream.width, stream.pix_fmt = 32, 40, "yuv420p"
        for frame in data:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    raw = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(raw[:raw.find(b"00dc", int(len(raw) * keep))])  # just before a frame's chunk
    return full, cut


def _not_lossy(notes) -> list[str]:
    return [note for note in notes if "lossy" not in note]


def test_truncated_avi_is_analysed_with_a_note(tmp_path, capsys):
    from cnmflow.cli import main
    from cnmflow.validate import describe_inputs, validate_inputs

    full, cut = _cut_avi(tmp_path)
    assert _not_lossy(read_info(full).notes) == []   # mpeg4, as Inscopix writes AVIs: the lossy-codec note only
    info = read_info(cut)
    assert 20 <= info.n_frames < 200
    assert len(_not_lossy(info.notes)) == 1
    note = info.notes[0]
    assert str(cut) in note and "lists 200 frames" in note and f"only {info.n_frames} decode" in note
    assert "truncated" in note
    np.testing.assert_array_equal(read_frames(info, 0, info.n_frames), read_frames(read_info(full), 0, info.n_frames))
    inputs = validate_inputs([cut], table={"gSig": 3, "gSiz": 7})
    assert note in inputs.resolved.notes  # → manifest parameter_notes → "note: …" and output_metadata notes
    assert note in describe_inputs(inputs)
    assert main(["validate", str(cut), "--set", "gSig=3", "--set", "gSiz=7"]) == 0
    assert f"only {info.n_frames} decode" in capsys.readouterr().out


def test_sample_with_empty_index_entries_needs_no_note(ideas):
    info = read_info(sample(ideas, "movie_part1_108x122x200.avi"))
    assert info.n_frames == 100 and info.frame_rate == pytest.approx(10.0)
    assert _not_lossy(info.notes) == []


def test_truncated_avi_note_is_kept_with_the_outputs(tmp_path):
    import json

    import cnmflow

    _, cut = _cut_avi(tmp_path)
    out = tmp_path / "out"
    cnmflow.extract([str(cut)], str(out), params={"gSig": 3, "gSiz": 7})
    note = read_info(cut).notes[0]
    assert note in json.loads((out / "output_metadata.json").read_text())["notes"]["messages"]
    assert note in json.loads((out / "manifest.json").read_text())["parameter_notes"]  # printed as "note: …"


def _write_colour_avi(path, rgb: np.ndarray, *, pix_fmt: str) -> None:
    _write_avi(path, rgb, codec="ffv1", pix_fmt=pix_fmt, given_as="rgb24")


def test_a_colour_avi_whose_channels_differ_is_analysed_as_luma_with_a_note(tmp_path):
    """Its luma mixes the channels (fluorescence in green, a marker in red): once read without a word."""
    grey = np.random.default_rng(2).integers(0, 200, (6, 16, 18), dtype=np.uint8)
    colour = tmp_path / "colour.avi"
    _write_colour_avi(colour, np.stack([grey // 4, grey, 255 - grey], axis=-1), pix_fmt="bgr0")
    (note,) = read_info(colour).notes
    assert note.startswith(str(colour)) and "colour video whose channels differ" in note
    assert "export that channel alone as a grayscale movie" in note
    grey_in_colour = tmp_path / "grey.avi"   # a grey picture in a colour format, as miniscopes write it
    _write_colour_avi(grey_in_colour, np.repeat(grey[..., None], 3, axis=-1), pix_fmt="bgr0")
    assert read_info(grey_in_colour).notes == ()


def test_a_lossy_avi_is_analysed_with_a_note_as_a_lossy_tiff_is(tmp_path):
    """An MPEG-4 (or MJPEG, H.264, XVID) AVI was analysed without a word while a JPEG TIFF gets a note: its pixels
    carry the codec's block artefacts, not the recorded values."""
    data = np.random.default_rng(3).integers(0, 200, (6, 32, 32), dtype=np.uint8)
    lossy = tmp_path / "mpeg4.avi"
    with av.open(str(lossy), "w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.height, stream.width, stream.pix_fmt = 32, 32, "yuv420p"
        for frame in data:
            image = av.VideoFrame.from_ndarray(frame, format="gray").reformat(format="yuv420p")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    (note,) = read_info(lossy).notes
    assert note.startswith(str(lossy)) and "lossy mpeg4 codec" in note
    assert read_info(write_avi(tmp_path / "ffv1.avi", data)).notes == ()


def test_a_stretch_of_an_avi_is_sampled_in_one_decoding_pass(tmp_path, monkeypatch):
    """The auto estimate and the motion check read a stretch of frames a few at a time; each read of an AVI decoded it
    from its first frame again (a 4000-frame 512² AVI: 66 s for the motion check's 300 frames, now 27 s for three
    stretches)."""
    import cnmflow.auto_params.sample as sample
    import cnmflow.movies.avi as avi
    from cnmflow.movies import read_frames, validate_series

    data = np.random.default_rng(4).integers(0, 250, (120, 16, 24), dtype=np.uint8)
    series = validate_series([write_avi(tmp_path / "m.avi", data), write_avi(tmp_path / "n.avi", data[::-1])])
    decoded = []
    real = avi._decoded_frames

    def counted(path, container):
        for frame in real(path, container):
            decoded.append(path.name)
            yield frame

    monkeypatch.setattr(avi, "_decoded_frames", counted)
    monkeypatch.setattr(sample, "READ_BYTES", 4 * 16 * 24 * 8)   # 8 frames a read
    frames = sample.sample_movie(series, max_frames=100, tsub=2)   # frames 20-219: both movies, 25 reads
    assert decoded.count("m.avi") == 120 and decoded.count("n.avi") == 100  # once up to the last frame it needs
    whole = np.concatenate([read_frames(info, 0, info.n_frames) for info in series.movies])[20:220]
    assert np.array_equal(frames, (whole[0::2] + whole[1::2]) / np.float32(2))


def test_an_avis_frames_are_counted_once_while_the_file_is_unchanged(tmp_path, monkeypatch):
    """Counting decodes every frame, and a run reads each movie's info in its pre-check and again in the flow's
    validate step (a 4000-frame 512² AVI: 17-22 s each)."""
    import cnmflow.movies.avi as avi
    from cnmflow.movies import read_info

    path = write_avi(tmp_path / "m.avi", np.random.default_rng(5).integers(0, 250, (30, 16, 24), dtype=np.uint8))
    counted = []
    real = avi.read_info
    monkeypatch.setattr(avi, "read_info", lambda p: counted.append(p) or real(p))
    first = read_info(path)
    assert read_info(path) is first and len(counted) == 1
    write_avi(path, np.random.default_rng(6).integers(0, 250, (20, 16, 24), dtype=np.uint8))  # rewritten
    assert read_info(path).n_frames == 20 and len(counted) == 2
