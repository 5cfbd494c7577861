"""Pixel order: every helper agrees with CaImAn's ``A[:, k].reshape(dims, order="F")``."""

import numpy as np

from cnmflow.pixel_order import (c_order_index, column_to_image, columns_to_images, fortran_index, frames_to_pixels,
                                 image_to_column, images_to_columns, pixel_index, pixel_position, pixels_to_frames,
                                 to_fortran_rows)

DIMS = (3, 5)


def _images(n: int = 4) -> np.ndarray:
    return np.arange(n * DIMS[0] * DIMS[1], dtype=np.float32).reshape(n, *DIMS)


def test_a_column_is_the_image_read_column_by_column():
    image = _images(1)[0]
    column = image_to_column(image)
    np.testing.assert_array_equal(column, image.ravel(order="F"))
    np.testing.assert_array_equal(column_to_image(column, DIMS), image)


def test_footprint_columns_read_back_as_caiman_users_read_them():
    images = _images()
    A = images_to_columns(images)
    assert A.shape == (DIMS[0] * DIMS[1], len(images))
    for k, image in enumerate(images):
        np.testing.assert_array_equal(A[:, k].reshape(DIMS, order="F"), image)
    np.testing.assert_array_equal(columns_to_images(A, DIMS), images)


def test_frames_and_pixel_rows_round_trip():
    frames = _images()
    pixels = frames_to_pixels(frames)
    np.testing.assert_array_equal(pixels[2], frames[2].ravel(order="F"))
    np.testing.assert_array_equal(pixels_to_frames(pixels, DIMS), frames)


def test_pixel_index_and_position_are_inverse_and_match_numpy():
    rows, cols = np.meshgrid(np.arange(DIMS[0]), np.arange(DIMS[1]), indexing="ij")
    index = pixel_index(rows, cols, DIMS)
    np.testing.assert_array_equal(index, np.ravel_multi_index((rows, cols), DIMS, order="F"))
    np.testing.assert_array_equal(c_order_index(rows, cols, DIMS), np.ravel_multi_index((rows, cols), DIMS))
    back_rows, back_cols = pixel_position(index, DIMS)
    np.testing.assert_array_equal(back_rows, rows)
    np.testing.assert_array_equal(back_cols, cols)
    assert pixel_index(2, 1, DIMS) == 1 * DIMS[0] + 2


def test_fortran_index_reorders_footprint_rows_to_c_order_and_back():
    image = _images(1)[0]
    to_fortran = fortran_index(DIMS)
    np.testing.assert_array_equal(image_to_column(image)[to_fortran], image.ravel())
    np.testing.assert_array_equal(to_fortran_rows(image.ravel()[:, None], to_fortran)[:, 0], image.ravel(order="F"))
