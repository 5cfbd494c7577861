"""Tests for cnmflow.engine.deconvolution: known answers on simulated AR(1)/AR(2) traces."""

import numpy as np
import pytest
import scipy.signal

from cnmflow.engine.deconvolution import (
    Deconvolved,
    _noise_sd,
    calcium_free_residual_sd,
    deconvolve_trace,
    deconvolve_trace_refining_sn,
    deconvolve_traces,
    estimate_ar_coefficients,
)
from cnmflow.engine.noise import noise_psd
from cnmflow.errors import InputError, ParameterError

T = 3000
SD = 0.2
G1 = (0.9,)
G2 = (1.7, -0.712)  # roots 0.9525 and 0.7475


def simulate(g, *, seed, T=T, baseline=2.0, sd=SD, rate=0.01):
    """Sparse spikes (amplitude 0.5-1.5) through an AR(p) kernel, plus baseline and noise."""
    rng = np.random.default_rng(seed)
    s = (rng.random(T) < rate) * rng.uniform(0.5, 1.5, T)
    c = scipy.signal.lfilter([1.0], np.concatenate(([1.0], -np.asarray(g))), s)
    y = baseline + c + sd * rng.standard_normal(T)
    return y, c, s


def spike_recall(s_true, s_est, *, thresh=0.15, tol=1):
    """Fraction of true spikes with a detected spike within +-tol frames, and precision."""
    true = np.flatnonzero(s_true)
    det = np.flatnonzero(s_est > thresh)
    recall = np.mean([np.any(np.abs(det - t) <= tol) for t in true])
    precision = np.mean([np.any(np.abs(true - t) <= tol) for t in det])
    return recall, precision


# --- AR coefficient estimation ---------------------------------------------------------------


def test_estimate_ar1_recovers_g():
    y, _, _ = simulate(G1, seed=0)
    (g,) = estimate_ar_coefficients(y, p=1, sn=SD, fudge_factor=1.0)
    assert abs(g - 0.9) < 0.05


def test_estimate_ar2_recovers_g():
    y, _, _ = simulate(G2, seed=0)
    g = estimate_ar_coefficients(y, p=2, sn=SD, fudge_factor=1.0)
    assert np.allclose(g, G2, atol=0.05)
    d = max(np.roots([1.0, -g[0], -g[1]]).real)
    assert abs(d - 0.9525) < 0.02


def test_fudge_factor_shrinks_the_roots():
    y, _, _ = simulate(G2, seed=1)
    raw = estimate_ar_coefficients(y, p=2, sn=SD, fudge_factor=1.0)
    shrunk = estimate_ar_coefficients(y, p=2, sn=SD)  # default 0.96
    roots_raw = np.sort(np.roots([1.0, -raw[0], -raw[1]]).real)
    roots_shrunk = np.sort(np.roots([1.0, -shrunk[0], -shrunk[1]]).real)
    assert np.allclose(roots_shrunk, 0.96 * roots_raw, rtol=1e-6)
    y1, _, _ = simulate(G1, seed=1)
    (g_raw,) = estimate_ar_coefficients(y1, p=1, sn=SD, fudge_factor=1.0)
    (g_shrunk,) = estimate_ar_coefficients(y1, p=1, sn=SD)
    assert g_shrunk == pytest.approx(0.96 * g_raw)


def test_estimate_without_signal_gives_fast_stable_kernel():
    for y in (np.zeros(50), np.full(50, 3.0), np.array([1.0])):
        (g,) = estimate_ar_coefficients(y, p=1, sn=0.0)
        assert 0 < g < 0.05


# --- noise ----------------------------------------------------------------------------------


def test_noise_sd_on_white_noise_within_5_percent():
    rng = np.random.default_rng(3)
    y = 0.7 * rng.standard_normal(T)
    d = deconvolve_trace(y, p=0)
    assert d.sn == pytest.approx(0.7, rel=0.05)


def test_noise_sd_is_the_engine_psd_noise():
    y = np.random.default_rng(4).standard_normal((2, 1000))
    assert np.allclose(_noise_sd(y), noise_psd(y, band=(0.25, 0.5), method="mean"))
    assert deconvolve_trace(y[0], p=1).sn == pytest.approx(noise_psd(y[0]))
    assert deconvolve_trace(np.array([5.0]), p=1).sn == 0  # no frequency in the band


# --- deconvolution, known answers -----------------------------------------------------------


def test_ar1_known_answers():
    y, c_true, s_true = simulate(G1, seed=0)
    d = deconvolve_trace(y, p=1, g=G1, sn=SD)
    assert isinstance(d, Deconvolved)
    assert d.g == pytest.approx(G1)
    assert np.corrcoef(d.c, c_true)[0, 1] > 0.97
    recall, precision = spike_recall(s_true, d.s)
    assert recall > 0.9 and precision > 0.8
    assert d.bl == pytest.approx(2.0, abs=0.05)
    assert np.linalg.norm(y - d.c - d.bl) == pytest.approx(SD * np.sqrt(T), rel=1e-3)
    assert d.lam > 0
    # structure: s >= 0, s[0] = 0, c[0] = c1, the AR(1) recursion, C = c + bl
    assert np.all(d.s >= 0) and d.s[0] == 0 and d.c1 == d.c[0]
    assert np.allclose(d.c[1:], 0.9 * d.c[:-1] + d.s[1:], atol=1e-9)
    assert np.array_equal(d.denoised, d.c + d.bl)


def test_ar2_known_answers():
    y, c_true, s_true = simulate(G2, seed=0)
    d = deconvolve_trace(y, p=2, g=G2, sn=SD)
    assert d.g == pytest.approx(G2)
    assert np.corrcoef(d.c, c_true)[0, 1] > 0.99
    recall, precision = spike_recall(s_true, d.s)
    assert recall > 0.9 and precision > 0.8
    assert d.bl == pytest.approx(2.0, abs=0.1)
    assert np.linalg.norm(y - d.c - d.bl) == pytest.approx(SD * np.sqrt(T), rel=0.05)
    assert np.all(d.s >= 0) and d.s[0] == 0 and d.c1 == d.c[0]
    c_prev = np.concatenate(([0.0], d.c))  # c[-1] = 0
    pred = G2[0] * c_prev[1:-1] + G2[1] * c_prev[:-2] + d.s[1:]  # up to the NNLS tolerance
    assert np.allclose(d.c[1:], pred, atol=1e-3 * d.c.max())


@pytest.mark.parametrize("p, g_true, min_corr", [(1, G1, 0.95), (2, G2, 0.99)])
def test_everything_estimated_from_the_data(p, g_true, min_corr):
    y, c_true, s_true = simulate(g_true, seed=2)
    d = deconvolve_trace(y, p=p)
    assert len(d.g) == p
    assert d.sn == pytest.approx(SD, rel=0.15)  # PSD sees some calcium power: biased up
    assert np.corrcoef(d.c, c_true)[0, 1] > min_corr
    assert spike_recall(s_true, d.s)[0] > 0.9
    assert d.bl == pytest.approx(2.0, abs=0.15)


def test_g_from_decay_time_and_frame_rate():
    decay_time, fr = 0.4, 20.0
    g = np.exp(-1 / (decay_time * fr))
    y, c_true, _ = simulate((g,), seed=5)
    d = deconvolve_trace(y, p=1, g=(g,))
    assert d.g == pytest.approx((g,))
    assert np.corrcoef(d.c, c_true)[0, 1] > 0.95


def test_optimize_g_moves_a_wrong_g_toward_the_truth():
    y, _, _ = simulate(G1, seed=0)
    d = deconvolve_trace(y, p=1, g=(0.8,), sn=SD, optimize_g=True)
    assert abs(d.g[0] - 0.9) < abs(0.8 - 0.9)


def test_bas_nonneg_with_negative_baseline():
    y, _, _ = simulate(G1, seed=1, baseline=-1.0)
    free = deconvolve_trace(y, p=1, g=G1, sn=SD, bas_nonneg=False)
    nonneg = deconvolve_trace(y, p=1, g=G1, sn=SD, bas_nonneg=True)
    assert free.bl == pytest.approx(-1.0, abs=0.05)
    assert nonneg.bl >= 0
    y2, _, _ = simulate(G2, seed=1, baseline=-1.0)
    assert deconvolve_trace(y2, p=2, g=G2, sn=SD, bas_nonneg=False).bl < 0
    assert deconvolve_trace(y2, p=2, g=G2, sn=SD, bas_nonneg=True).bl >= 0


def test_p0_is_no_deconvolution():
    y = np.array([-1.0, 0.5, 2.0, -0.2, 3.0])
    d = deconvolve_trace(y, p=0, bas_nonneg=True)
    assert np.array_equal(d.c, np.maximum(y, 0))
    assert np.array_equal(d.s, d.c)
    assert (d.bl, d.c1, d.g, d.lam) == (0.0, 0.0, (), 0.0)
    assert d.sn > 0


# --- robustness -----------------------------------------------------------------------------


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("level", [0.0, 3.0, -3.0])
def test_constant_trace(p, level):
    y = np.full(200, level)
    d = deconvolve_trace(y, p=p)
    assert d.sn == 0 and np.all(d.c == 0) and np.all(d.s == 0)
    assert d.bl == pytest.approx(level)
    assert deconvolve_trace(y, p=p, bas_nonneg=True).bl == pytest.approx(max(level, 0.0))


@pytest.mark.parametrize("p", [0, 1, 2])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_very_short_traces(p, n):
    y = 1.0 + np.random.default_rng(n).standard_normal(n)
    d = deconvolve_trace(y, p=p)
    assert d.c.shape == d.s.shape == (n,)
    assert np.all(np.isfinite(d.c)) and np.all(d.s >= 0)
    assert np.isfinite(d.bl) and np.isfinite(d.sn) and len(d.g) == p


def test_dtypes_and_inputs_not_mutated():
    y, _, _ = simulate(G1, seed=6, T=500)
    y32 = y.astype(np.float32)
    before = y32.copy()
    d32 = deconvolve_trace(y32, p=1, g=G1, sn=SD)
    assert np.array_equal(y32, before)
    assert d32.c.dtype == np.float64
    d64 = deconvolve_trace(y32.astype(np.float64), p=1, g=G1, sn=SD)
    assert np.allclose(d32.c, d64.c)
    dint = deconvolve_trace(np.round(100 * y).astype(np.uint16), p=1)
    assert np.all(np.isfinite(dint.c))


def test_deterministic_and_global_rng_untouched():
    y, _, _ = simulate(G2, seed=7, T=1000)
    state = np.random.get_state()
    a = deconvolve_trace(y, p=2)
    b = deconvolve_trace(y, p=2)
    c = deconvolve_trace(y, p=1, optimize_g=3)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    assert np.array_equal(a.c, b.c) and np.array_equal(a.s, b.s) and a.g == b.g and a.bl == b.bl
    assert np.all(np.isfinite(c.c))


def test_deconvolve_traces_matches_rows():
    Y = np.stack([simulate(G1, seed=k, T=400)[0] for k in range(3)])
    out = deconvolve_traces(Y, p=1, g_init=G1)
    assert len(out) == 3
    for row, d in zip(Y, out):
        ref = deconvolve_trace(row, p=1, g=G1)
        assert np.allclose(d.c, ref.c) and d.bl == pytest.approx(ref.bl)
    assert deconvolve_traces(np.zeros((0, 10)), p=1) == []


# --- validation: one branch each ------------------------------------------------------------


def test_nan_is_a_clear_value_error():
    y = np.ones(20)
    y[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        deconvolve_trace(y, p=1)


def test_inf_rejected():
    with pytest.raises(InputError, match="NaN/inf"):
        deconvolve_traces(np.array([[1.0, np.inf, 2.0]]), p=1)


def test_wrong_shape_rejected():
    with pytest.raises(InputError, match="shape"):
        deconvolve_trace(np.ones((2, 5)), p=1)


def test_empty_rejected():
    with pytest.raises(InputError, match="non-empty"):
        deconvolve_trace(np.array([]), p=1)


def test_non_numeric_rejected():
    with pytest.raises(InputError, match="dtype"):
        deconvolve_trace(np.array(["a", "b"]), p=1)


def test_traces_must_be_2d():
    with pytest.raises(InputError, match="2-D"):
        deconvolve_traces(np.ones(10), p=1)


def test_bad_p_rejected():
    with pytest.raises(ParameterError, match="p = 3"):
        deconvolve_trace(np.ones(10), p=3)


def test_ar_estimation_needs_p_1_or_2():
    with pytest.raises(ParameterError, match="p = 0"):
        estimate_ar_coefficients(np.ones(10), p=0, sn=0.1)


def test_g_length_must_match_p():
    with pytest.raises(ParameterError, match="p = 2"):
        deconvolve_trace(np.ones(10), p=2, g=(0.9,))


def test_g_must_be_stable():
    with pytest.raises(ParameterError, match="stable"):
        deconvolve_trace(np.ones(10), p=1, g=(1.2,))


def test_g_with_p0_rejected():
    with pytest.raises(ParameterError, match="p = 0"):
        deconvolve_trace(np.ones(10), p=0, g=(0.9,))


def test_negative_sn_rejected():
    with pytest.raises(ParameterError, match="sn"):
        deconvolve_trace(np.ones(10), p=1, sn=-1.0)


def test_bad_fudge_factor_rejected():
    with pytest.raises(ParameterError, match="fudge_factor"):
        estimate_ar_coefficients(np.ones(10), p=1, sn=0.1, fudge_factor=1.5)


def test_bad_lags_rejected():
    with pytest.raises(ParameterError, match="lags"):
        estimate_ar_coefficients(np.ones(10), p=1, sn=0.1, lags=-1)


def test_bad_optimize_g_rejected():
    with pytest.raises(ParameterError, match="optimize_g"):
        deconvolve_trace(np.ones(10), p=1, optimize_g=-2)


def test_optimize_g_with_p2_rejected():
    with pytest.raises(ParameterError, match="p = 2"):
        deconvolve_trace(np.ones(10), p=2, optimize_g=True)


@pytest.mark.parametrize("p, g, c1_min", [(1, G1, 2.7), (2, G2, 0.5)])
def test_initial_calcium_goes_to_c1_not_to_a_spike(p, g, c1_min):
    # a trace that starts high and decays: c1 takes it, no spike at the start
    # (for p = 2 the solver models the start with the rising AR(2) kernel, so c1 is smaller)
    rng = np.random.default_rng(8)
    n = 300
    d_root = max(np.roots(np.concatenate(([1.0], -np.asarray(g)))).real)
    y = 1.0 + 3.0 * d_root ** np.arange(n) + 0.05 * rng.standard_normal(n)
    d = deconvolve_trace(y, p=p, g=g, sn=0.05)
    assert d.c1 == d.c[0] and c1_min < d.c1 < 3.3
    assert d.s[0] == 0 and d.s.max() < 0.3
    assert d.bl == pytest.approx(1.0, abs=0.05)


# --- noise sd refined from the residual ------------------------------------------------------


def test_refined_noise_sd_restores_a_bright_traces_transients():
    """Fast, frequent, bright transients put power into the PSD noise band: the PSD sd is far
    above the true one and the deconvolution shrinks the peaks; the refined sd is near the truth."""
    true_sd = 0.04
    y, c, _ = simulate((0.78,), seed=3, rate=0.05, sd=true_sd)
    psd = deconvolve_trace(y, p=1, g=(0.78,))
    refined = deconvolve_trace_refining_sn(y, p=1, g=(0.78,), refinements=2)
    assert psd.sn > 3 * true_sd
    assert refined.sn < 0.5 * psd.sn
    assert np.corrcoef(psd.c, c)[0, 1] < 0.97
    assert np.corrcoef(refined.c, c)[0, 1] > 0.99
    assert refined.g == psd.g


def test_refined_noise_sd_keeps_a_dim_traces_estimate():
    """A dim trace whose PSD sd is already right keeps it (within 10 %)."""
    y, c, _ = simulate((0.9,), seed=4, rate=0.01, sd=0.2)
    psd = deconvolve_trace(y, p=1, g=(0.9,))
    refined = deconvolve_trace_refining_sn(y, p=1, g=(0.9,))
    assert refined.sn == pytest.approx(psd.sn, rel=0.1)
    assert np.corrcoef(refined.c, c)[0, 1] >= np.corrcoef(psd.c, c)[0, 1] - 0.005


def test_calcium_free_residual_sd_removes_only_the_calcium_shaped_part():
    """What is left of the trace's own transients is not noise; contamination shaped otherwise is."""
    rng = np.random.default_rng(5)
    _, c, _ = simulate((0.9,), seed=5)
    _, other, _ = simulate((0.9,), seed=6)
    noise = 0.1 * rng.standard_normal(T)
    fit = Deconvolved(c=c, s=np.zeros(T), bl=1.0, c1=float(c[0]), g=(0.9,), sn=1.0, lam=0.0)
    shrunk = 1.0 + 1.4 * c + noise                  # 40 % of every transient left in the residual
    assert calcium_free_residual_sd(shrunk, fit) == pytest.approx(0.1, rel=0.05)
    contaminated = 1.0 + c + 0.5 * other + noise    # another cell's transients left in it
    assert calcium_free_residual_sd(contaminated, fit) == pytest.approx(np.std(0.5 * other + noise), rel=0.05)
    assert deconvolve_trace_refining_sn(np.full(100, 2.0), p=1, g=(0.9,)).sn == 0.0
