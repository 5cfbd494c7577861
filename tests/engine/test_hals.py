"""HALS updates recover non-negative factors from their sufficient statistics."""

import numpy as np
import scipy.ndimage as ndi

from cnmflow.engine.hals import (clean_footprint, dilate_footprint, update_footprints, update_footprints_with_surround,
                                update_traces)
from cnmflow.pixel_order import frames_to_pixels, pixels_to_frames


def test_pixel_order_round_trip_is_fortran():
    frames = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    pixels = frames_to_pixels(frames)
    np.testing.assert_array_equal(pixels[1], frames[1].ravel(order="F"))
    np.testing.assert_array_equal(pixels_to_frames(pixels, (3, 4)), frames)


def test_trace_and_footprint_updates_reduce_the_error():
    rng = np.random.default_rng(1)
    A_true = np.abs(rng.normal(size=(50, 3))) * (rng.random((50, 3)) > 0.5)
    C_true = np.abs(rng.normal(size=(3, 200)))
    Y = A_true @ C_true
    C = update_traces(np.ones_like(C_true), A_true.T @ Y, A_true.T @ A_true, iterations=50)
    np.testing.assert_allclose(C, C_true, atol=1e-3)
    A = update_footprints(np.ones_like(A_true) * 0.1, Y @ C_true.T, C_true @ C_true.T, A_true > 0, iterations=50)
    np.testing.assert_allclose(A, A_true, atol=1e-3)


def test_clean_footprint_keeps_the_largest_connected_part():
    image = np.zeros((15, 15))
    image[3:8, 3:8] = 1.0
    image[12, 12] = 0.9  # an isolated speck
    cleaned = clean_footprint(image.ravel(order="F"), (15, 15)).reshape((15, 15), order="F")
    assert cleaned[12, 12] == 0 and cleaned[5, 5] > 0


def _calcium(gen: np.random.Generator, T: int, rate: float, g: float) -> np.ndarray:
    spikes = (gen.random(T) < rate) * gen.uniform(0.5, 1.5, T)
    trace = np.zeros(T)
    for t in range(1, T):
        trace[t] = g * trace[t - 1] + spikes[t]
    return trace


def test_footprint_fitted_with_its_surround_takes_only_the_neurons_share():
    """A trace that carries out-of-focus light makes a plain regression give that light's pixels a
    footprint weight; with the surround's trace in the regression they get none (issue #16)."""
    gen = np.random.default_rng(3)
    T = 3000
    cell, light = _calcium(gen, T, 0.03, 0.9), _calcium(gen, T, 0.02, 0.95)
    own = np.array([1.0, 0.3, 0.1, 0.0, 0.0])           # core, halo, faint halo, beside, beside
    stray = np.array([0.2, 0.4, 0.5, 0.5, 0.6])         # the out-of-focus light on the same pixels
    Y = np.outer(own, cell) + np.outer(stray, light) + gen.normal(0, 0.05, (own.size, T))
    trace = cell + 0.3 * light                          # the neuron's trace, contaminated
    surround = light + gen.normal(0, 0.05, T)           # the residual light around the footprint
    X = np.vstack([trace, surround])
    X = X - X.mean(axis=1, keepdims=True)               # centred, as in the refinement
    Yc = Y - Y.mean(axis=1, keepdims=True)
    P, Q = Yc @ X.T, X @ X.T
    support = np.ones((own.size, 1), dtype=bool)
    start = np.full((own.size, 1), 0.1)
    plain = update_footprints(start, P[:, :1], Q[:1, :1], support, iterations=20)[:, 0]
    joint = update_footprints_with_surround(start, P, Q, support, iterations=20)
    assert joint.shape == (own.size, 2)
    assert np.all(plain[3:] > 0.1)                      # the plain fit spreads onto the light
    np.testing.assert_allclose(joint[:, 0], own, atol=0.03)
    assert np.all(joint[:, 1] >= 0)


def test_annulus_masks_average_the_ring_beyond_the_support():
    from cnmflow.engine.patch_job.one_photon import ANNULUS_INNER, ANNULUS_OUTER, annulus_masks
    dims, gsig = (60, 60), 3.0
    image = np.zeros(dims)
    image[28:33, 28:33] = 1.0
    masks = annulus_masks(np.column_stack([image.ravel(order="F"), np.zeros(image.size)]), dims, gsig=gsig)
    ring = masks[:, 0].reshape(dims, order="F")
    assert abs(ring.sum() - 1.0) < 1e-5 and not masks[:, 1].any()
    distance = ndi.distance_transform_edt(image == 0)
    assert np.all((distance[ring > 0] > ANNULUS_INNER * gsig) & (distance[ring > 0] <= ANNULUS_OUTER * gsig))
    assert np.allclose(ring[ring > 0], ring[ring > 0][0])


def _clean_on_the_whole_image(column: np.ndarray, dims: tuple[int, int], max_fraction: float) -> np.ndarray:
    """clean_footprint's definition computed on every pixel of the image (its bounding-box shortcut's reference)."""
    image = ndi.median_filter(column.reshape(dims, order="F"), size=3, mode="nearest")
    image = np.where(image >= max_fraction * image.max(), image, 0.0)
    values = np.sort(image.ravel())[::-1]
    cumulative = np.cumsum(values ** 2)
    cutoff = values[min(np.searchsorted(cumulative, 0.9999 * cumulative[-1]), values.size - 1)]
    labels, n = ndi.label(image >= max(cutoff, np.finfo(np.float32).tiny))
    sizes = ndi.sum(image, labels, index=np.arange(1, n + 1))
    return np.where(labels == 1 + int(np.argmax(sizes)), image, 0.0).ravel(order="F")


def test_clean_and_dilated_footprint_are_those_of_the_whole_image_inside_and_at_the_edges():
    """Both work on the footprint's bounding box (issue #22's speed-up): the result must be every pixel's,
    for a footprint in the middle, one cut by the image's corner, and one of many scattered blobs."""
    rng = np.random.default_rng(4)
    dims = (40, 50)
    rows, cols = np.indices(dims)
    for centre in [(20.0, 25.0), (1.0, 48.5), (39.0, 0.0)]:
        blob = np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / 18.0) + rng.normal(0, 0.03, dims)
        column = np.where(blob > 0.1, blob, 0.0).astype(np.float32).ravel(order="F")
        for max_fraction in (0.0, 0.1):
            np.testing.assert_array_equal(clean_footprint(column, dims, max_fraction=max_fraction),
                                          _clean_on_the_whole_image(column, dims, max_fraction))
        for radius in (1, 4, 12):
            within = ndi.distance_transform_edt(~(column.reshape(dims, order="F") > 0)) <= radius
            np.testing.assert_array_equal(dilate_footprint(column, dims, radius=radius), within.ravel(order="F"))
    scattered = np.where(rng.random(dims) > 0.4, rng.random(dims), 0.0).ravel(order="F")   # many blobs
    np.testing.assert_array_equal(clean_footprint(scattered, dims), _clean_on_the_whole_image(scattered, dims, 0.1))
    assert not dilate_footprint(np.zeros(dims[0] * dims[1]), dims, radius=3).any()
