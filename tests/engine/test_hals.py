"""HALS updates recover non-negative factors from their sufficient statistics."""

import numpy as np

from cnmflow.engine.hals import clean_footprint, update_footprints, update_traces
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
