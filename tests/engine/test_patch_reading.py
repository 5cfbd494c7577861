"""A patch is read in pieces: the noise sample and chunked downsampling equal the whole-array versions."""

from __future__ import annotations

import numpy as np
import pytest

from cnmflow.engine import chunking
from cnmflow.engine.noise import pixel_noise
from cnmflow.engine.patch_frames import PatchStorage
from cnmflow.engine.patch_job import one_photon
from cnmflow.engine.patch_job.box_io import BoxView, downsample_in_chunks
from cnmflow.engine.patches import PatchBox
from cnmflow.engine.resample import downsample


def test_box_view_reads_exactly_the_box():
    movie = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    view = BoxView(movie, PatchBox(1, 5, 2, 6))
    assert view.shape == (5, 4, 4)
    np.testing.assert_array_equal(view[1:3, 1:3, :], movie[1:3, 2:4, 2:6])
    np.testing.assert_array_equal(view[:, :, :], movie[:, 1:5, 2:6])


def test_chunked_downsampling_and_noise_equal_the_whole_patch(monkeypatch):
    movie = np.random.default_rng(0).random((1001, 30, 40), dtype=np.float32)
    box = PatchBox(3, 25, 5, 33)
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 4 * 22 * 28 * 10)  # 10 frames per chunk
    view = BoxView(movie, box)
    whole = movie[:, 3:25, 5:33]
    for tsub, ssub in ((1, 1), (2, 2), (3, 1)):
        for storage in (PatchStorage(), PatchStorage(memory_bytes=0)):
            with downsample_in_chunks(view, tsub=tsub, ssub=ssub, storage=storage) as chunked:
                np.testing.assert_array_equal(chunked[:], downsample(whole, tsub=tsub, ssub=ssub))
    np.testing.assert_array_equal(pixel_noise(view), pixel_noise(whole))


@pytest.mark.parametrize("memory_bytes", [np.inf, 0], ids=["in memory", "scratch file"])
def test_residual_in_place_is_the_patch_less_background_and_neurons_and_undoes(monkeypatch, memory_bytes):
    import scipy.sparse as sp

    from cnmflow.engine.background import fit_ring_model, ring_background

    rng = np.random.default_rng(1)
    T, dims = 60, (19, 23)
    A = np.zeros((dims[0] * dims[1], 2), dtype=np.float32)
    A[[40, 200], [0, 1]] = 1.0
    C = rng.random((2, T), dtype=np.float32) * 5
    original = 50 + rng.normal(size=(T, *dims)).astype(np.float32)
    ring = fit_ring_model(original, sp.csc_matrix(A), C, gsiz=5, ring_size_factor=1.4, ssub_B=2)
    neural = one_photon._neural(A, C, dims)
    expected = original - ring_background(ring, original, neural) - neural
    storage = PatchStorage(memory_bytes=memory_bytes)
    Y = storage.allocate(original.shape)
    Y[:] = original
    monkeypatch.setattr(chunking, "CHUNK_BYTES", 4 * dims[0] * dims[1] * 7)  # 7 frames per chunk
    fluctuation = one_photon._residual_in_place(Y, A, C, ring, storage)
    assert fluctuation.shape == (T, 10, 12)
    np.testing.assert_allclose(Y[:], expected, atol=1e-3)
    one_photon._undo_residual_in_place(Y, A, C, ring, fluctuation)
    np.testing.assert_allclose(Y[:], original, rtol=1e-6)
    fluctuation.close()
    Y.close()


def test_c_ordered_rows_back_to_fortran_order():
    from cnmflow.pixel_order import fortran_index, frames_to_pixels, to_fortran_rows

    image = np.arange(15.0).reshape(3, 5)
    to_fortran = fortran_index(image.shape)
    np.testing.assert_array_equal(frames_to_pixels(image[None])[0][to_fortran], image.ravel())
    np.testing.assert_array_equal(to_fortran_rows(image.ravel()[:, None], to_fortran)[:, 0],
                                  image.ravel(order="F"))
