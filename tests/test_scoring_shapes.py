"""Footprint-shape metrics (cnmflow/shape_scoring.py) on hand-built footprints."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnmflow.errors import ParameterError
from cnmflow.scoring import score
from cnmflow.shape_scoring import covered_twice_by_followers, energy_masks, iou_matrix, shape_score, surplus_pairs

DIMS = (40, 40)


def _disc(center, radius, dims=DIMS) -> np.ndarray:
    rr, cc = np.mgrid[: dims[0], : dims[1]]
    return (np.hypot(rr - center[0], cc - center[1]) <= radius).astype(float)


def _blob(center, sigma, dims=DIMS) -> np.ndarray:
    rr, cc = np.mgrid[: dims[0], : dims[1]]
    return np.exp(-0.5 * ((rr - center[0]) ** 2 + (cc - center[1]) ** 2) / sigma**2)


def test_energy_mask_keeps_the_brightest_pixels_up_to_the_fraction():
    fp = np.zeros((1, 4, 4))
    fp[0, 0, :] = [4, 3, 2, 1]  # energy 10: 90% needs 4 + 3 + 2
    mask = energy_masks(fp, fraction=0.9).toarray()[:, 0].reshape(4, 4, order="F")
    assert mask[0].tolist() == [1, 1, 1, 0]
    assert mask.sum() == 3
    full = energy_masks(fp, fraction=1.0).toarray().sum()
    assert full == 4


def test_energy_mask_grows_with_the_halo():
    core = _blob((20, 20), 2.0)
    halo = core + 0.3 * _blob((20, 20), 6.0)
    areas = np.asarray(energy_masks(np.stack([core, halo])).sum(axis=0)).ravel()
    assert areas[1] > 2 * areas[0]


def test_identical_footprints_score_iou_one_and_disjoint_zero():
    a = np.stack([_disc((10, 10), 4), _disc((30, 30), 4)])
    s = shape_score(a, a)
    assert s.f1_iou50 == s.f1_iou30 == 1.0
    assert s.median_iou == pytest.approx(1.0)
    assert s.n_multiply_covered == 0
    iou, _ = iou_matrix(energy_masks(a, fraction=1.0), energy_masks(a, fraction=1.0))
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 1] == 0.0
    disjoint = shape_score(a[:1], a[1:])
    assert disjoint.f1_iou30 == 0.0 and disjoint.f1_iou50 == 0.0 and math.isnan(disjoint.median_iou)


def test_thresholds_050_and_030_differ_on_a_shifted_footprint():
    truth = _disc((20, 20), 6)[None]
    est = _disc((20, 24.5), 6)[None]  # IoU between 0.3 and 0.5
    iou, _ = iou_matrix(energy_masks(truth, fraction=1.0), energy_masks(est, fraction=1.0))
    assert 0.3 < iou[0, 0] < 0.5
    s = shape_score(truth, est, fraction=1.0)
    assert s.f1_iou30 == 1.0 and s.f1_iou50 == 0.0
    assert (s.median_area_true, s.median_area_estimated) == (truth.sum(), est.sum())


def test_a_duplicate_on_one_neuron_is_counted_and_a_neighbour_is_not():
    n0, n1 = _blob((12, 12), 3.0), _blob((12, 21), 3.0)  # overlapping halos, two neurons
    truth = np.stack([n0, n1])
    dup = _blob((13, 11), 2.0)  # a second, smaller component on neuron 0
    est = np.stack([n0, n1, dup])
    s = shape_score(truth, est)
    assert s.n_multiply_covered == 1 and s.n_surplus == 1
    assert s.covering == {0: (0, 2)}
    assert s.f1_iou30 < 1.0  # the duplicate is an unmatched estimate
    clean = shape_score(truth, est[:2])
    assert clean.n_multiply_covered == 0 and clean.f1_iou50 == 1.0


def test_a_wide_component_matched_to_its_neuron_does_not_count_on_the_neighbour_it_reaches_into():
    big, small = _disc((20, 20), 10), _disc((20, 28), 5)  # a small neuron inside a big one's mask
    wide = _disc((20, 26), 8)  # the small neuron's own component, wider than it: most of it lies in the big one
    s = shape_score(np.stack([big, small]), np.stack([big, wide]), fraction=1.0)
    iou, inter = iou_matrix(energy_masks(np.stack([big, small]), fraction=1.0),
                            energy_masks(np.stack([big, wide]), fraction=1.0))
    assert inter[0, 1] > inter[1, 1] and iou[0, 1] > 0.3  # by mask alone it would cover the big neuron twice
    assert s.matches == ((0, 0), (1, 1)) and s.f1_iou30 == 1.0
    assert s.n_multiply_covered == 0 and s.covering == {}


def test_trace_correlation_of_matched_pairs():
    rng = np.random.default_rng(0)
    truth = np.stack([_disc((10, 10), 4), _disc((30, 30), 4)])
    c = rng.random((2, 200))
    s = shape_score(truth, truth[::-1], truth_traces=c, estimated_traces=c[::-1] * 3 + 1)
    assert s.matches == ((0, 1), (1, 0))
    assert s.median_trace_corr == pytest.approx(1.0)
    no_traces = shape_score(truth, truth)
    assert math.isnan(no_traces.median_trace_corr)


def test_sparse_input_in_fortran_order_gives_the_same_score():
    import scipy.sparse

    truth = np.stack([_disc((10, 14), 4), _disc((28, 30), 5)])
    k, rows, cols = truth.shape
    sparse = scipy.sparse.csc_matrix(truth.transpose(0, 2, 1).reshape(k, rows * cols).T)
    a = shape_score(truth, truth).summary()
    b = shape_score(sparse, sparse, dims=(rows, cols)).summary()
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name] or (math.isnan(a[name]) and math.isnan(b[name])), name


def test_empty_estimate_and_the_old_score_is_unchanged():
    truth = np.stack([_disc((10, 10), 4)])
    s = shape_score(truth, np.zeros((0, *DIMS)))
    assert (s.f1_iou30, s.f1_iou50, s.n_multiply_covered) == (0.0, 0.0, 0)
    old = score(truth, truth)
    assert (old.precision, old.recall, old.f1) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("kwargs", [dict(fraction=0.0), dict(fraction=1.5), dict(cover_iou=1.0),
                                    dict(cover_overlap=-0.1)])
def test_bad_options_are_refused(kwargs):
    truth = np.stack([_disc((10, 10), 4)])
    with pytest.raises(ParameterError):
        shape_score(truth, truth, **kwargs)


def test_traces_must_come_in_pairs():
    truth = np.stack([_disc((10, 10), 4)])
    with pytest.raises(ParameterError):
        shape_score(truth, truth, truth_traces=np.ones((1, 5)))


def test_only_a_surplus_whose_trace_follows_the_neuron_counts_as_its_copy():
    rng = np.random.default_rng(1)
    n0, n1 = _blob((12, 12), 3.0), _blob((28, 28), 3.0)
    truth = np.stack([n0, n1])
    t0, t1 = rng.random(200), rng.random(200)
    copy, other = _blob((13, 11), 2.0), _blob((27, 29), 2.0)  # a second component on each neuron
    est = np.stack([n0, n1, copy, other])
    traces = np.stack([t0, t1, t0 + 0.3 * rng.random(200), rng.random(200)])  # the copy follows neuron 0
    s = shape_score(truth, est, truth_traces=np.stack([t0, t1]), estimated_traces=traces)
    assert surplus_pairs(s) == [(0, 2), (1, 3)]
    assert s.n_multiply_covered == 2
    assert covered_twice_by_followers(s, np.stack([t0, t1]), traces) == [0]
