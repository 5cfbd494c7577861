"""The ring background seen through footprints and traces equals projecting the formed background."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.background import fit_ring_model, ring_background
from cnmflow.engine.patch_frames import PatchStorage
from cnmflow.engine.ring_projections import (PRODUCT_FRAMES, RingGrid, background_free_projections,
                                             patch_footprint_projections, patch_trace_projections, sparse_times_frames)
from cnmflow.pixel_order import frames_to_pixels, pixels_to_frames

DIMS = (19, 23)
T = 60


def _setting(rng: int = 1):
    generator = np.random.default_rng(rng)
    A = np.zeros((DIMS[0] * DIMS[1], 2))
    A[[40, 41, 60, 200, 201], [0, 0, 0, 1, 1]] = 1.0
    C = generator.random((2, T)) * 5
    movie = (50 + generator.normal(size=(T, *DIMS))).astype(np.float32)
    ring = fit_ring_model(movie, sp.csc_matrix(A), C, gsiz=5, ring_size_factor=1.4, ssub_B=2)
    return movie, A, C, ring


def _background_free(movie, A, C, ring) -> np.ndarray:
    """(T, pixels) Fortran order: ``Y − B`` with the background formed frame by frame."""
    neural = pixels_to_frames((A @ C).T, DIMS)
    return frames_to_pixels(movie - ring_background(ring, movie, neural)).astype(np.float64)


def _patch(movie):
    Y = PatchStorage(memory_bytes=0).allocate(movie.shape)   # a scratch file, read in chunks
    Y[:] = movie
    return Y


def test_patch_trace_projections_are_the_footprints_times_the_background_free_movie():
    movie, A, C, ring = _setting()
    with _patch(movie) as Y:
        U = patch_trace_projections(Y, A, C, ring, RingGrid.of(DIMS, ring))
    np.testing.assert_allclose(U, A.T @ _background_free(movie, A, C, ring).T, rtol=1e-4, atol=1e-2)


def test_patch_footprint_projections_are_the_background_free_movie_times_the_traces():
    movie, A, C, ring = _setting(2)
    new_C = C * 1.5
    with _patch(movie) as Y:
        P = patch_footprint_projections(Y, A, new_C, C, ring, RingGrid.of(DIMS, ring))
    np.testing.assert_allclose(P, _background_free(movie, A, C, ring).T @ new_C.T, rtol=1e-4, atol=1e-2)


def test_full_view_projections_agree_with_the_patch_ones():
    movie, A, C, ring = _setting(3)
    full = background_free_projections(movie, sp.csc_matrix(A), ring, C, chunk_frames=16)
    with _patch(movie) as Y:
        patch = patch_trace_projections(Y, A, C, ring, RingGrid.of(DIMS, ring))
    np.testing.assert_allclose(full, patch, rtol=1e-4, atol=1e-2)


def test_projections_through_other_filters_keep_the_background_formed_without_the_components():
    movie, A, C, ring = _setting(4)
    filters = np.abs(np.random.default_rng(7).standard_normal(A.shape)).astype(A.dtype) * (A > 0)
    U = background_free_projections(movie, sp.csc_matrix(A), ring, C, chunk_frames=16, filters=sp.csc_matrix(filters))
    np.testing.assert_allclose(U, filters.T @ _background_free(movie, A, C, ring).T, rtol=1e-4, atol=1e-2)


def test_sparse_times_frames_gives_exactly_one_products_numbers():
    generator = np.random.default_rng(5)
    M = sp.random(7, 300, density=0.1, format="csr", random_state=6, dtype=np.float32).T.tocsc().T
    for n in (1, PRODUCT_FRAMES, 3 * PRODUCT_FRAMES + 5):
        rows = generator.standard_normal((n, 300)).astype(np.float32)
        product = sparse_times_frames(M, rows)
        assert product.dtype == np.float32
        np.testing.assert_array_equal(product, M @ np.ascontiguousarray(rows.T))
