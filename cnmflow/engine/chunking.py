"""How much of a movie one pass holds at a time: the chunk sizes and the chunk iterators.

Every pass over a movie, a patch or its scratch copy streams it: a chunk of frames (sums,
products, downsampling, filtering) or a band of whole rows (passes that need every frame of a
pixel: noise spectra, medians). The sizes are budgets in bytes or values, turned into frame or
row counts for the shape at hand, so memory follows the budget whatever the recording's length.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "CHUNK_BYTES",
    "FILTER_CHUNK_BYTES",
    "BAND_VALUES",
    "FFT_BATCH_VALUES",
    "chunk_slices",
    "frames_per_chunk",
    "frame_chunks",
    "row_bands",
]

#: Bytes of float32 frames one chunk of a streaming pass over a patch holds (reading and
#: downsampling the patch, products with its footprints, its residual): a few MB keep a worker's
#: memory near its movie-sized arrays.
CHUNK_BYTES = 8 * 2 ** 20
#: Bytes of FFT work per chunk of frames filtered by the summary images' filter (the padded chunk,
#: its spectrum and the inverse transform stay small next to the movie being filtered).
FILTER_CHUNK_BYTES = 8 * 2 ** 20
#: Values (all frames of a band of rows) one band of a per-pixel pass holds: 16 MB of float32.
BAND_VALUES = 2 ** 22
#: Values per FFT batch of pixel columns in the noise estimate: a batch and its spectrum stay in
#: the CPU cache.
FFT_BATCH_VALUES = 2 ** 18


def chunk_slices(length: int, size: int) -> Iterator[slice]:
    """Consecutive slices of ``size`` items covering ``range(length)`` (the last may be shorter)."""
    for start in range(0, length, size):
        yield slice(start, min(start + size, length))


def frames_per_chunk(pixels: int, chunk_bytes: int | None = None, *, bytes_per_value: int = 4,
                     multiple_of: int = 1) -> int:
    """Frames of ``pixels`` values each (``bytes_per_value`` bytes: 4 for float32) that fit in
    ``chunk_bytes`` (default :data:`CHUNK_BYTES`), rounded down to a multiple of ``multiple_of``
    (whole blocks of a temporal downsampling) and at least one such block."""
    budget = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    return max(multiple_of, budget // (bytes_per_value * max(pixels, 1)) // multiple_of * multiple_of)


def frame_chunks(n_frames: int, pixels: int, chunk_bytes: int | None = None, *,
                 multiple_of: int = 1) -> Iterator[slice]:
    """Consecutive frame slices holding about ``chunk_bytes`` (default ``CHUNK_BYTES``) of float32
    ``pixels`` per frame; with ``multiple_of`` every chunk but the last holds whole blocks of that
    many frames."""
    yield from chunk_slices(n_frames, frames_per_chunk(pixels, chunk_bytes, multiple_of=multiple_of))


def row_bands(shape: tuple[int, int, int], values: int | None = None) -> Iterator[slice]:
    """Bands of whole rows for passes that need every frame of a pixel (medians, noise spectra,
    sums over time windows): each band holds about ``values`` (default ``BAND_VALUES``) values
    over all frames."""
    T, rows, cols = shape
    band = max(1, (BAND_VALUES if values is None else values) // max(T * cols, 1))
    yield from chunk_slices(rows, band)
