import pytest

from cnmflow.errors import InputError, MovieError
from cnmflow.movies import read_info


def test_unsupported_extension_lists_supported(tmp_path):
    path = tmp_path / "movie.mp4"
    path.write_bytes(b"x")
    with pytest.raises(MovieError, match=r"\.avi, \.isxd, \.tif, \.tiff") as err:
        read_info(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, InputError) and isinstance(err.value, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(MovieError, match="not found") as err:
        read_info(tmp_path / "absent.tif")
    assert "absent.tif" in str(err.value)


def test_directory(tmp_path):
    folder = tmp_path / "stack.tif"
    folder.mkdir()
    with pytest.raises(MovieError, match="is a directory"):
        read_info(folder)
