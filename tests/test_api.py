"""``cnmflow.extract``: what it refuses before the fit."""

from __future__ import annotations

import shutil

import pytest

import cnmflow
from cnmflow import api
from cnmflow.errors import MovieError
from tests.runs import TABLE, small_movie


def test_a_copy_listed_with_its_original_is_refused_before_the_fit(tmp_path, monkeypatch):
    """The library call hashed the inputs only for the manifest, after the fit: a copy listed with its original was
    fitted as one recording twice over."""
    movie = small_movie(tmp_path, rng=13)
    copy = tmp_path / "movie (1).tif"
    shutil.copyfile(movie, copy)
    monkeypatch.setattr(api, "extract_components", lambda *args, **kwargs: pytest.fail("fitted"))
    with pytest.raises(MovieError, match="hold the same (bytes|frames)") as err:  # frames: read at validation
        cnmflow.extract([movie, copy], tmp_path / "out", params=TABLE, nwb=False)
    assert str(copy) in str(err.value)
