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


def test_corrupt_avi(tmp_path):
    path = tmp_path / "bad.avi"
    path.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(MovieError) as err:
        read_info(path)
    assert str(path) in str(err.value)
