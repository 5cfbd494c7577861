"""Chunk sizes and iterators (cnmflow.engine.chunking)."""

from __future__ import annotations

from cnmflow.engine import chunking
from cnmflow.engine.chunking import chunk_slices, frame_chunks, frames_per_chunk, row_bands


def test_chunk_slices_cover_the_range_once_in_order():
    slices = list(chunk_slices(10, 4))
    assert slices == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert list(chunk_slices(0, 4)) == []


def test_frames_per_chunk_follows_the_byte_budget():
    assert frames_per_chunk(100, 4 * 100 * 7) == 7
    assert frames_per_chunk(100, 8 * 100 * 7, bytes_per_value=8) == 7
    assert frames_per_chunk(10 ** 9) == 1                      # at least one frame
    assert frames_per_chunk(100, 4 * 100 * 7, multiple_of=3) == 6
    assert frames_per_chunk(100, 4 * 100 * 2, multiple_of=3) == 3   # at least one whole block


def test_frame_chunks_hold_about_the_budget(monkeypatch):
    chunks = list(frame_chunks(20, 50, 4 * 50 * 6))
    assert [c.stop - c.start for c in chunks] == [6, 6, 6, 2]
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 4 * 50 * 9)
    assert [c.stop - c.start for c in frame_chunks(20, 50)] == [9, 9, 2]
    assert all((c.stop - c.start) % 4 == 0 for c in list(frame_chunks(21, 50, multiple_of=4))[:-1])


def test_row_bands_hold_about_the_values_over_all_frames():
    bands = list(row_bands((10, 7, 3), values=10 * 3 * 2))
    assert bands == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 7)]
