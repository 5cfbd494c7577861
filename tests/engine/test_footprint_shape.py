"""Footprint size: neurons of radius ~gSig pass, sources several times wider do not."""

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.footprint_shape import footprint_radii, half_max_radii, neuron_sized, touches_edges


def _blob(dims, center, sigma):
    yy, xx = np.mgrid[:dims[0], :dims[1]]
    return np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma ** 2)).ravel(order="F")


def test_radius_of_a_gaussian_is_its_sigma_dense_or_sparse():
    dims = (60, 50)
    A = np.column_stack([_blob(dims, (30, 25), 3.0), _blob(dims, (30, 25), 7.0)])
    np.testing.assert_allclose(footprint_radii(A, dims), [3.0, 7.0], rtol=0.02)
    np.testing.assert_allclose(footprint_radii(sp.csc_matrix(A), dims), footprint_radii(A, dims))


def test_half_max_radius_reads_the_cell_without_its_halo_dense_or_sparse():
    dims = (60, 50)
    halo = 0.3 * _blob(dims, (30, 25), 12.0)  # a wide halo under half the peak moves the half-max radius little
    A = np.column_stack([_blob(dims, (30, 25), 3.0), _blob(dims, (30, 25), 6.0) + halo, np.zeros(dims[0] * dims[1])])
    # a Gaussian of sd s is at half its peak at 1.177 s; the empty footprint has radius 0
    np.testing.assert_allclose(half_max_radii(A)[:1], [1.177 * 3.0], rtol=0.08)
    assert 1.177 * 6.0 < half_max_radii(A)[1] < 1.4 * 6.0 and half_max_radii(A)[2] == 0.0
    np.testing.assert_array_equal(half_max_radii(sp.csc_matrix(A)), half_max_radii(A))


def test_wide_sources_are_not_neuron_sized():
    dims = (60, 50)
    A = np.column_stack([_blob(dims, (30, 25), 3.0), _blob(dims, (30, 25), 9.0)])
    assert neuron_sized(A, dims, gsig=3.0, factor=2.0).tolist() == [True, False]


def test_a_source_cut_by_the_edge_is_judged_along_the_edge():
    dims = (60, 50)
    cut_blob = _blob(dims, (0, 25), 7.0)[:, None]   # half of it outside the field of view
    edges = dict(top=True, bottom=True, left=True, right=True)
    assert touches_edges(cut_blob, dims, edges).tolist() == [True]
    assert footprint_radii(cut_blob, dims)[0] < 6.0   # truncated: looks smaller than it is
    assert not neuron_sized(cut_blob, dims, gsig=3.0, factor=2.0, fov_edges=edges)[0]
