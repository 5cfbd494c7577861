import os

import numpy as np
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


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.tif"
    path.write_bytes(b"II*\x00")
    path.chmod(0)
    try:
        with pytest.raises(MovieError, match="not readable") as err:
            read_info(path)
        assert str(path) in str(err.value)
    finally:
        path.chmod(0o600)


def test_unreadable_file_reported(tmp_path, monkeypatch):
    """Same branch without relying on file permissions (the tests may run as root)."""
    import builtins

    path = tmp_path / "locked.tif"
    path.write_bytes(b"II*\x00")
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if str(file) == str(path.resolve()):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(MovieError, match="not readable.*Permission denied") as err:
        read_info(path)
    assert str(path) in str(err.value)


def test_a_symbolic_link_loop_is_refused_by_name(tmp_path):
    """It raised a RuntimeError traceback (exit 1) from Path.resolve instead of one line."""
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(MovieError, match="points back to itself") as err:
        read_info(a)
    assert str(a) in str(err.value)


@pytest.mark.parametrize("holds, named", [("tiff", ".avi"), ("tiff", ".isxd"), ("avi", ".tif")])
def test_a_movie_named_with_another_types_extension_is_refused_with_the_right_one(tmp_path, holds, named):
    """A TIFF renamed .avi was read by FFmpeg as one still image ('has 1 frames … give a longer movie')."""
    import tifffile

    from .conftest import write_avi

    source = tmp_path / ("m.tif" if holds == "tiff" else "m.avi")
    if holds == "tiff":
        tifffile.imwrite(source, np.zeros((30, 8, 8), np.uint16), photometric="minisblack")
    else:
        write_avi(source, np.zeros((30, 8, 8), np.uint8))
    wrong = source.rename(tmp_path / f"renamed{named}")
    with pytest.raises(MovieError, match=f"is named {named} but holds") as err:
        read_info(wrong)
    assert f"rename it to {'.tif' if holds == 'tiff' else '.avi'}" in str(err.value)
