"""Merging: one neuron found twice becomes one component; distinct neurons stay apart."""

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.merging import connected_groups, merge_components, merge_duplicates, merge_groups


def _blob(center, dims=(20, 20), sigma=2.0):
    yy, xx = np.mgrid[:dims[0], :dims[1]]
    image = np.exp(-((yy - center[0]) ** 2 + (xx - center[1]) ** 2) / (2 * sigma ** 2))
    image[image < 0.05] = 0
    return image.ravel(order="F")


def test_overlapping_correlated_components_merge_and_distinct_ones_do_not():
    rng = np.random.default_rng(0)
    trace = np.maximum(rng.normal(size=300), 0).cumsum() % 5
    other = np.roll(trace, 97) + rng.normal(scale=0.5, size=300)
    A = sp.csc_matrix(np.column_stack([_blob((8, 8)), _blob((9, 9)), _blob((8, 9)) * 0 + _blob((15, 15))]))
    C = np.vstack([trace, trace * 0.8 + rng.normal(scale=0.05, size=300), other])
    result = merge_components(A, C, merge_thr=0.8)
    assert result.A.shape[1] == 2
    assert result.merged_groups == ((0, 1),)
    merged_trace = result.C[-1]
    assert np.corrcoef(merged_trace, trace)[0, 1] > 0.99


def test_correlated_but_not_overlapping_components_stay_apart():
    trace = np.sin(np.linspace(0, 20, 200)) + 1
    A = sp.csc_matrix(np.column_stack([_blob((4, 4)), _blob((15, 15))]))
    result = merge_components(A, np.vstack([trace, trace]), merge_thr=0.5)
    assert result.A.shape[1] == 2 and result.merged_groups == ()


def test_groups_found_by_another_rule_merge_as_the_merge_step_merges_them():
    """merge_groups combines exactly the groups it is given (here two components whose traces correlate too
    weakly for merge_thr), as merge_components would: the same rank-1 component, appended last."""
    rng = np.random.default_rng(1)
    neuron = np.maximum(rng.normal(size=300), 0).cumsum() % 5
    A = sp.csc_matrix(np.column_stack([_blob((8, 8)), _blob((9, 10)), _blob((16, 16))]))
    C = np.vstack([neuron + rng.normal(scale=1.0, size=300), neuron + rng.normal(scale=1.0, size=300),
                   rng.random(300)])
    result = merge_groups(A, C, connected_groups([(1, 0)], 3))
    assert result.merged_groups == ((0, 1),) and result.A.shape[1] == 2
    np.testing.assert_array_equal(result.C[0], C[2].astype(np.float32))
    as_merge_step = merge_components(A[:, :2], C[:2], merge_thr=-1.0)
    np.testing.assert_allclose(result.A[:, 1].toarray(), as_merge_step.A.toarray(), rtol=1e-6)
    np.testing.assert_allclose(result.C[1], as_merge_step.C[0], rtol=1e-5)


def test_connected_groups_join_chains_and_leave_singletons_out():
    groups = connected_groups([(0, 2), (2, 4)], 6)
    assert [g.tolist() for g in groups] == [[0, 2, 4]]
    assert connected_groups([], 3) == []


def _copies_of_one_neuron():
    """Two patches' copies of one neuron (footprints on a 30² field, traces): patch 0's is clean, patch 1's took up a
    skirt of weak weight around it (its background could not follow the neuropil there), and a third, patch 2's,
    was cut by its patch's edge (the right half only)."""
    rng = np.random.default_rng(3)
    dims = (30, 30)
    neuron = _blob((15, 15), dims)
    yy, xx = np.mgrid[:30, :30]
    skirt = ((np.hypot(yy - 15, xx - 15) < 11) & (neuron.reshape(dims, order="F") == 0)).ravel(order="F") * 0.15
    cut_copy = neuron * (xx >= 15).ravel(order="F")
    trace = np.maximum(rng.normal(size=400), 0).cumsum() % 5
    C = np.vstack([trace + rng.normal(scale=0.05, size=400) for _ in range(3)])
    return sp.csc_matrix(np.column_stack([neuron, neuron + skirt, cut_copy])), C, np.array([0, 1, 2]), neuron


def test_copies_merge_onto_the_pixels_of_the_smallest_copy_their_patch_did_not_cut():
    A, C, owners, neuron = _copies_of_one_neuron()
    result = merge_duplicates(A, C, owners, merge_thr=0.7, cut=np.array([False, False, True]))
    assert result.merged_groups == ((0, 1, 2),) and result.A.shape[1] == 1
    merged = result.A[:, 0].toarray().ravel()
    assert set(np.flatnonzero(merged)) == set(np.flatnonzero(neuron))   # the skirt stays out
    assert np.corrcoef(merged[neuron > 0], neuron[neuron > 0])[0, 1] > 0.95   # the cut copy adds to its own half


def test_copies_all_cut_by_their_patches_or_not_told_join_over_their_union():
    A, C, owners, neuron = _copies_of_one_neuron()
    union = set(np.flatnonzero(np.asarray(A.sum(axis=1)).ravel()))
    for cut in (None, np.array([True, True, True])):
        merged = merge_duplicates(A, C, owners, merge_thr=0.7, cut=cut).A[:, 0].toarray().ravel()
        assert set(np.flatnonzero(merged)) == union
