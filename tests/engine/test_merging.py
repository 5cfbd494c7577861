"""Merging: one neuron found twice becomes one component; distinct neurons stay apart."""

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.merging import merge_components


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
