"""Merging: one neuron found twice becomes one component; distinct neurons stay apart."""

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.merging import connected_groups, merge_components, merge_groups


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
