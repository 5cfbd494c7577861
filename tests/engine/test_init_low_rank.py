"""refine_hals polishes a 2P factorisation without ever making the fit worse."""

import numpy as np
import pytest
import scipy.ndimage as ndi

from cnmflow.pixel_order import frames_to_pixels
from cnmflow.engine.init.low_rank import (LowRankInit, fit_background, nonnegative_factorization, refine_hals,
                                         temporal_median)
from cnmflow.errors import ParameterError
from cnmflow.synthetic import simulate_2p


def _error(Y, init: LowRankInit) -> float:
    Yp = frames_to_pixels(Y).T.astype(np.float64)
    model = init.A.astype(np.float64) @ init.C + init.b.astype(np.float64) @ init.f
    return float(np.sum((Yp - model) ** 2))


def _columns(frames):
    """(K, h, w) images → (h*w, K) Fortran-ordered columns."""
    return frames_to_pixels(np.asarray(frames, dtype=np.float32)).T.copy()


@pytest.fixture(scope="module")
def sim():
    return simulate_2p(shape=(32, 32), n_frames=300, n_neurons=4, nb=1, gsig=2.5, rng=3)


@pytest.fixture(scope="module")
def rough(sim):
    """A poor start: blurred, shifted footprints, noisy traces, a blurred background."""
    truth = sim.truth
    shifted = np.roll(ndi.gaussian_filter(truth.footprints, sigma=(0, 1.5, 1.5)), 1, axis=2)
    gen = np.random.default_rng(0)
    C = np.maximum(truth.calcium + 5 * gen.standard_normal(truth.calcium.shape), 0).astype(np.float32)
    b = _columns(ndi.gaussian_filter(truth.background_spatial, sigma=(0, 3, 3)))
    f = truth.background_temporal * (1 + 0.05 * gen.standard_normal(truth.background_temporal.shape))
    return LowRankInit(A=_columns(shifted), C=C, b=b, f=f.astype(np.float32), score=np.zeros((32, 32), np.float32))


def test_the_error_is_never_worse_than_the_input(sim, rough):
    start = _error(sim.movie, rough)
    errors = [_error(sim.movie, refine_hals(sim.movie, rough, gsig=2.5, iterations=n)) for n in range(6)]
    assert errors[0] == pytest.approx(start, rel=1e-5)  # no rounds: the input, normalised
    assert all(error <= start * (1 + 1e-6) for error in errors), (start, errors)
    assert errors[-1] < 0.75 * start


def test_the_error_is_never_worse_than_a_bad_input(sim, rough):
    """A flat background that cannot follow the fluctuations: still no worse than the start."""
    T = sim.movie.shape[0]
    flat = LowRankInit(A=rough.A, C=rough.C, b=np.ones((32 * 32, 1), np.float32),
                       f=np.full((1, T), float(np.median(sim.movie)), np.float32), score=rough.score)
    start = _error(sim.movie, flat)
    for n in (1, 3):
        assert _error(sim.movie, refine_hals(sim.movie, flat, gsig=2.5, iterations=n)) <= start


def test_refined_factors_are_non_negative_float32_with_unit_footprints(sim, rough):
    out = refine_hals(sim.movie, rough, gsig=2.5)
    for name in ("A", "C", "b", "f"):
        arr = getattr(out, name)
        assert arr.dtype == np.float32 and np.all(arr >= 0), name
    np.testing.assert_allclose(np.linalg.norm(out.A, axis=0), 1.0, rtol=1e-5)
    assert out.A.shape == (32 * 32, 4) and out.C.shape == (4, 300)
    assert out.b.shape == (32 * 32, 1) and out.f.shape == (1, 300)
    assert out.score is not None and out.score.shape == (32, 32)


def test_refinement_approaches_the_truth(sim, rough):
    truth = _columns(sim.truth.footprints)
    truth /= np.linalg.norm(truth, axis=0)
    before = (truth.T @ (rough.A / np.linalg.norm(rough.A, axis=0))).max(axis=1)
    out = refine_hals(sim.movie, rough, gsig=2.5, iterations=10)
    after = (truth.T @ out.A).max(axis=1)
    assert np.all(after > 0.97) and np.all(after > before), (before, after)
    # footprints stay compact: within their starting support dilated by gSig, cleaned of noise pixels
    assert np.all((out.A > 0).sum(axis=0) < 2.5 * (truth > 0.05).sum(axis=0))


def test_footprints_only_grow_near_their_support(sim, rough):
    A = np.zeros_like(rough.A)
    A[:, 0] = rough.A[:, 0]
    single = LowRankInit(A=A[:, :1], C=rough.C[:1], b=rough.b, f=rough.f, score=rough.score)
    out = refine_hals(sim.movie, single, gsig=2.5, iterations=1)
    image = out.A[:, 0].reshape((32, 32), order="F") > 0
    allowed = ndi.binary_dilation(rough.A[:, 0].reshape((32, 32), order="F") > 0, iterations=4)
    assert image.any() and not np.any(image & ~allowed)


def test_all_zero_components_are_dropped(sim, rough):
    A = rough.A.copy()
    A[:, 2] = 0
    out = refine_hals(sim.movie, LowRankInit(A=A, C=rough.C, b=rough.b, f=rough.f, score=rough.score), gsig=2.5)
    assert out.A.shape[1] == 3 and out.C.shape[0] == 3


def test_no_background_and_no_components(sim, rough):
    T = sim.movie.shape[0]
    no_bg = LowRankInit(A=rough.A, C=rough.C, b=np.zeros((1024, 0), np.float32), f=np.zeros((0, T), np.float32),
                        score=rough.score)
    out = refine_hals(sim.movie, no_bg, gsig=2.5, iterations=2)
    assert out.b.shape == (1024, 0) and out.f.shape == (0, T)
    only_bg = LowRankInit(A=np.zeros((1024, 0), np.float32), C=np.zeros((0, T), np.float32), b=rough.b, f=rough.f,
                          score=rough.score)
    out = refine_hals(sim.movie, only_bg, gsig=2.5, iterations=2)
    assert out.A.shape == (1024, 0) and out.b.shape == (1024, 1)


def test_deterministic(sim, rough):
    one = refine_hals(sim.movie, rough, gsig=2.5, iterations=2)
    two = refine_hals(sim.movie, rough, gsig=2.5, iterations=2)
    for name in ("A", "C", "b", "f"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))


def test_fit_background_recovers_a_rank_one_background():
    gen = np.random.default_rng(1)
    yy, xx = np.mgrid[:24, :30]
    field = 50 + 40 * np.exp(-((yy - 8) ** 2 + (xx - 20) ** 2) / 200.0)
    trace = 1 + 0.3 * np.sin(np.linspace(0, 6, 200))
    Z = trace[:, None, None] * field[None] + gen.standard_normal((200, 24, 30))
    b, f = fit_background(np.maximum(Z, 0), 1, block=3)
    model = (b @ f).T.reshape(200, 30, 24).transpose(0, 2, 1)
    truth = trace[:, None, None] * field[None]
    assert np.linalg.norm(model - truth) / np.linalg.norm(truth) < 0.01
    b0, f0 = fit_background(np.maximum(Z, 0), 0)
    assert b0.shape == (24 * 30, 0) and f0.shape == (0, 200)


def test_nonnegative_factorization_recovers_an_exact_non_negative_product():
    gen = np.random.default_rng(2)
    W_true, H_true = gen.uniform(0, 1, (60, 3)), gen.uniform(0, 1, (3, 400))
    H_true[0, :200] = 0  # parts-based: the factors are not the singular vectors
    X = W_true @ H_true
    W, H = nonnegative_factorization(X, 3, iterations=2000, tol=0)
    assert W.min() >= 0 and H.min() >= 0
    assert np.linalg.norm(X - W @ H) / np.linalg.norm(X) < 1e-3


def test_nonnegative_factorization_of_rank_one_is_the_best_rank_one_approximation():
    gen = np.random.default_rng(3)
    X = np.outer(gen.uniform(1, 2, 50), gen.uniform(1, 2, 300)) + gen.uniform(0, 0.5, (50, 300))
    W, H = nonnegative_factorization(X, 1)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    best = S[0] * np.outer(U[:, 0], Vt[0])  # non-negative matrix: its leading pair is non-negative
    np.testing.assert_allclose(W @ H, best, rtol=1e-9)
    assert W.shape == (50, 1) and H.shape == (1, 300)


def test_nonnegative_factorization_is_never_worse_for_more_sweeps():
    gen = np.random.default_rng(4)
    X = np.maximum(gen.standard_normal((40, 150)) + 1.0, 0)
    errors = [np.linalg.norm(X - W @ H) for W, H in (nonnegative_factorization(X, 3, iterations=n, tol=0)
                                                       for n in (1, 5, 50))]
    assert errors[0] >= errors[1] >= errors[2]


@pytest.mark.parametrize("kwargs", [{"gsig": 0}, {"gsig": -1.0}, {"gsig": float("nan")}, {"iterations": -1}])
def test_bad_parameters(sim, rough, kwargs):
    args = {"gsig": 2.5, "iterations": 1} | kwargs
    with pytest.raises(ParameterError):
        refine_hals(sim.movie, rough, **args)


def test_init_of_another_patch_is_rejected(sim, rough):
    with pytest.raises(ParameterError, match="init.A"):
        refine_hals(sim.movie[:, :20, :20], rough, gsig=2.5)
    with pytest.raises(ParameterError, match="init.C"):
        refine_hals(sim.movie[:100], rough, gsig=2.5)


@pytest.mark.parametrize("n_frames", [1, 2, 7, 300, 301])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_temporal_median_is_numpys_median(n_frames, dtype):
    gen = np.random.default_rng(n_frames)
    frames = gen.standard_normal((n_frames, 5, 6)).astype(dtype)
    frames[:, 0] = np.round(frames[:, 0])  # ties
    median = temporal_median(frames)
    assert median.dtype == dtype
    np.testing.assert_array_equal(median, np.median(frames, axis=0))
