"""Merging: one neuron found twice becomes one component; distinct neurons stay apart."""

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.merging import merge_close_neighbours, merge_components


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


def _spikes(rng, n_frames=600, rate=0.03):
    """A calcium-like trace: sparse spikes through a decaying kernel."""
    spikes = (rng.random(n_frames) < rate) * rng.uniform(0.5, 1.5, n_frames)
    return np.convolve(spikes, 0.9 ** np.arange(40))[:n_frames]


def test_two_halves_of_one_cell_each_mixed_with_another_neighbour_merge():
    # One cell found twice, each half also carrying a different neighbour's activity: the halves'
    # traces correlate only moderately (below any merge_thr), but their peaks lie within a soma.
    rng = np.random.default_rng(1)
    cell, left, right = _spikes(rng), _spikes(rng), _spikes(rng)
    A = sp.csc_matrix(np.column_stack([_blob((10, 8), dims=(24, 24), sigma=3), _blob((10, 12), dims=(24, 24), sigma=3)]))
    C = np.vstack([cell + 0.8 * left, cell + 0.8 * right])
    assert 0.4 < np.corrcoef(C)[0, 1] < 0.7
    assert merge_components(A, C, merge_thr=0.7).merged_groups == ()
    result = merge_close_neighbours(A, C, (24, 24), gsig=3)
    assert result.merged_groups == ((0, 1),) and result.A.shape[1] == 1
    assert np.corrcoef(result.C[0], cell)[0, 1] > np.corrcoef(C[0], cell)[0, 1]


def test_neighbours_a_soma_apart_or_with_their_own_activity_stay_apart():
    rng = np.random.default_rng(2)
    shared, own_a, own_b = _spikes(rng), _spikes(rng), _spikes(rng)
    dims = (30, 30)
    # Peaks two gSig apart: two cells, however correlated (e.g. both driven by one stimulus).
    apart = sp.csc_matrix(np.column_stack([_blob((15, 9), dims=dims, sigma=3), _blob((15, 15), dims=dims, sigma=3)]))
    correlated = np.vstack([shared + 0.5 * own_a, shared + 0.5 * own_b])
    assert merge_close_neighbours(apart, correlated, dims, gsig=3).merged_groups == ()
    # Peaks close but traces independent: a cell and an out-of-focus one behind it.
    close = sp.csc_matrix(np.column_stack([_blob((15, 14), dims=dims, sigma=3), _blob((15, 16), dims=dims, sigma=5)]))
    assert merge_close_neighbours(close, np.vstack([own_a, own_b]), dims, gsig=3).merged_groups == ()
