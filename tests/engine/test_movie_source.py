"""Reading the shared movie file: same values as numpy slicing, no mapping kept."""

import numpy as np
import pytest

from cnmflow.engine.movie_source import MovieSource

KEYS = [np.s_[:], np.s_[2:5], np.s_[3:9, 2:7, 1:10], np.s_[::3, 4:12, ::2], np.s_[5], np.s_[5, 3],
        np.s_[-1, :, 4], np.s_[1:18:4, 0:13, 3:4], np.s_[:, 12:13], np.s_[:, :, 2:9], np.s_[4:4], np.s_[:, 3:3]]


@pytest.fixture()
def movie(tmp_path):
    data = np.random.default_rng(0).normal(size=(20, 13, 11)).astype(np.float32)
    np.save(tmp_path / "movie.npy", data)
    return data, np.load(tmp_path / "movie.npy", mmap_mode="r")


@pytest.mark.parametrize("key", KEYS, ids=str)
def test_streaming_view_reads_what_numpy_slicing_gives(movie, key):
    data, mapped = movie
    view = MovieSource.of(mapped).streaming()
    np.testing.assert_array_equal(view[key], data[key])


def test_file_backed_movies_are_shared_by_path_and_arrays_stay_in_memory(movie):
    data, mapped = movie
    assert MovieSource.of(mapped).shareable
    assert not MovieSource.of(data).shareable
    assert MovieSource.of(data).streaming() is data
    # A view of a memmap has no offset of its own: it must not be mistaken for the file.
    assert not MovieSource.of(mapped[2:]).shareable


def test_reading_past_the_end_of_a_truncated_file_fails(tmp_path):
    path = tmp_path / "raw.float32"
    np.zeros((3, 4, 5), np.float32).tofile(path)
    source = MovieSource(path=path, shape=(5, 4, 5))
    with pytest.raises(EOFError):
        source.streaming()[:, 1:3]
    with pytest.raises(EOFError):
        source.streaming()[:]


@pytest.mark.parametrize("stored", [">u2", "<u2", ">f4", "<f4", "u1", "<i2"])
@pytest.mark.parametrize("key", KEYS[:8], ids=str)
def test_a_file_in_any_stored_type_reads_as_float32(tmp_path, stored, key):
    """A uint16 TIFF read in place (either byte order, after a header) gives the float32 a float32 copy holds."""
    data = np.random.default_rng(1).integers(0, 250, size=(20, 13, 11)).astype(stored)
    path = tmp_path / "movie.raw"
    path.write_bytes(b"header" + data.tobytes())
    mapped = np.memmap(path, dtype=stored, mode="r", shape=data.shape, offset=6)
    view = MovieSource.of(mapped).streaming()
    got = view[key]
    assert view.dtype == np.float32 and got.dtype == np.float32 and got.dtype.isnative
    np.testing.assert_array_equal(got, data.astype(np.float32)[key])
