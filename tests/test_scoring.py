"""Scoring estimated components against ground truth."""

import math

import numpy as np
import pytest
import scipy.sparse

from cnmflow.errors import ParameterError
from cnmflow.scoring import Score, score
from cnmflow.synthetic import simulate_1p

DIMS = (40, 50)


def _disc(center, radius, dims=DIMS) -> np.ndarray:
    r = np.arange(dims[0])[:, None] - center[0]
    c = np.arange(dims[1])[None, :] - center[1]
    return np.exp(-0.5 * (r * r + c * c) / (radius / 2.0) ** 2).astype(np.float32)


@pytest.fixture(scope="module")
def truth():
    centers = [(8, 8), (8, 30), (20, 20), (30, 10), (30, 40), (15, 44)]
    A = np.stack([_disc(c, 6.0) for c in centers])
    rng = np.random.default_rng(0)
    C = np.maximum(rng.standard_normal((len(centers), 200)), 0).cumsum(axis=1) % 7.0
    return A, C


def test_perfect_estimate(truth):
    A, C = truth
    s = score(A, A, truth_traces=C, estimated_traces=C)
    assert isinstance(s, Score)
    assert (s.precision, s.recall, s.f1) == (1.0, 1.0, 1.0)
    assert s.n_true == s.n_estimated == s.n_matched == 6
    assert s.matches == tuple((k, k) for k in range(6))
    assert s.median_trace_corr == pytest.approx(1.0)
    np.testing.assert_allclose(s.trace_corrs, 1.0)


def test_permuted_scaled_and_noisy_estimate(truth):
    A, C = truth
    perm = np.array([3, 0, 5, 1, 4, 2])
    rng = np.random.default_rng(1)
    est_A = 2.5 * A[perm]
    est_C = 0.3 * C[perm] + 0.05 * rng.standard_normal(C.shape)
    s = score(A, est_A, truth_traces=C, estimated_traces=est_C)
    assert s.f1 == 1.0
    assert dict(s.matches) == {int(perm[j]): j for j in range(6)}
    assert 0.9 < s.median_trace_corr < 1.0


def test_missing_and_extra_components(truth):
    A, C = truth
    missing = score(A, A[:4])
    assert missing.precision == 1.0
    assert missing.recall == pytest.approx(4 / 6)
    assert missing.f1 == pytest.approx(2 * (4 / 6) / (1 + 4 / 6))
    extra_fp = np.stack([_disc((36, 25), 5.0), _disc((3, 20), 5.0)])
    extra = score(A, np.concatenate([A, extra_fp]))
    assert extra.recall == 1.0 and extra.precision == pytest.approx(6 / 8)
    assert extra.n_estimated == 8 and extra.n_matched == 6


def test_shift_small_matches_large_does_not(truth):
    A, _ = truth
    small = score(A, np.roll(A, 1, axis=2))
    assert small.f1 == 1.0
    big = score(A, np.roll(A, 6, axis=2))  # IoU of discs this far apart is below 0.3
    assert big.n_matched == 0 and big.f1 == 0.0
    # loosening max_cost lets them match again
    assert score(A, np.roll(A, 6, axis=2), max_cost=0.99).n_matched > 0


def test_far_apart_centroid_not_matched():
    # two large, heavily overlapping footprints whose centroids are > max_distance apart
    a = np.zeros((1, *DIMS), np.float32)
    a[0, 5:35, 5:30] = 1.0
    b = np.zeros((1, *DIMS), np.float32)
    b[0, 5:35, 17:42] = 1.0  # IoU = 13/37 > 0.3, centroid distance 12 px
    assert score(a, b, max_distance=100.0).n_matched == 1
    s = score(a, b)  # default max_distance = 10 px
    assert s.n_matched == 0 and s.matches == ()
    assert math.isnan(s.median_trace_corr)


def test_fortran_sparse_input_equals_dense():
    sim = simulate_1p(shape=(40, 48), n_frames=60, n_neurons=8, rng=2)
    t = sim.truth
    est = np.roll(t.footprints[[0, 2, 3, 5, 6, 7]], 1, axis=1) * 3.0
    est_C = t.calcium[[0, 2, 3, 5, 6, 7]]
    dense = score(t.footprints, est, truth_traces=t.calcium, estimated_traces=est_C)
    est_sparse = scipy.sparse.csc_matrix(est.transpose(0, 2, 1).reshape(len(est), -1).T)
    sparse = score(t.A(), est_sparse, dims=t.dims, truth_traces=t.calcium, estimated_traces=scipy.sparse.csr_matrix(est_C))
    dense_2d = score(t.A().toarray(), est_sparse.toarray(), dims=t.dims, truth_traces=t.calcium, estimated_traces=est_C)
    for other in (sparse, dense_2d):
        assert other.matches == dense.matches
        assert (other.precision, other.recall, other.f1) == (dense.precision, dense.recall, dense.f1)
        np.testing.assert_allclose(other.trace_corrs, dense.trace_corrs)
    assert dense.n_matched == 6 and dense.recall == pytest.approx(6 / 8)
    # a C-order flattening would be a different (wrong) layout, and is scored as such
    wrong = scipy.sparse.csc_matrix(est.reshape(len(est), -1).T)
    assert score(t.A(), wrong, dims=t.dims).n_matched < 6


def test_hungarian_prefers_more_matches():
    # true 0 overlaps est 0 best, but true 1 can only match est 0: both must be matched
    t0, t1 = _disc((20, 20), 6.0), _disc((20, 24), 6.0)
    e0, e1 = _disc((20, 22), 6.0), _disc((20, 18), 6.0)
    s = score(np.stack([t0, t1]), np.stack([e0, e1]), max_cost=0.5)
    assert s.n_matched == 2 and s.matches == ((0, 1), (1, 0))


def test_empty_sets(truth):
    A, C = truth
    empty = np.zeros((0, *DIMS), np.float32)
    s = score(A, empty, truth_traces=C, estimated_traces=np.zeros((0, 200)))
    assert (s.precision, s.recall, s.f1) == (0.0, 0.0, 0.0)
    assert s.n_estimated == 0 and s.n_matched == 0 and s.matches == ()
    assert math.isnan(s.median_trace_corr) and s.trace_corrs.shape == (0,)
    s2 = score(empty, A)
    assert (s2.precision, s2.recall, s2.f1) == (0.0, 0.0, 0.0)
    # a blank estimated footprint never matches
    s3 = score(A, np.concatenate([A[:1], np.zeros((1, *DIMS), np.float32)]))
    assert s3.n_matched == 1


def test_no_traces_gives_nan_correlations(truth):
    A, _ = truth
    s = score(A, A)
    assert s.trace_corrs.shape == (6,) and np.isnan(s.trace_corrs).all()
    assert math.isnan(s.median_trace_corr)


def test_bad_input(truth):
    A, C = truth
    with pytest.raises(ParameterError, match="dims"):
        score(scipy.sparse.csc_matrix(A.reshape(6, -1).T), A)
    with pytest.raises(ParameterError, match="dims"):
        score(A, A, dims=(10, 10))
    with pytest.raises(ParameterError, match="estimated_traces"):
        score(A, A, truth_traces=C)
    with pytest.raises(ParameterError, match="frames"):
        score(A, A, truth_traces=C, estimated_traces=C[:, :100])
    with pytest.raises(ParameterError, match="threshold"):
        score(A, A, threshold=1.5)
    with pytest.raises(ParameterError, match="20x50"):
        score(A, A[:, :20])
    # inputs are not modified
    A2 = A.copy()
    score(A2, -A2)
    np.testing.assert_array_equal(A2, A)
