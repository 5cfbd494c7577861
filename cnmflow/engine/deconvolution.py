"""Constrained sparse non-negative deconvolution of calcium traces (CaImAn's ``oasis`` method).

For one trace ``y`` (length T) the model is ``y = b + c + e``: a constant baseline ``b``, calcium
``c`` that follows an autoregressive process of order ``p`` driven by non-negative spikes ``s``,

    c_t = g_1 c_{t-1} + ... + g_p c_{t-p} + s_t,   s_t >= 0,

and Gaussian noise ``e`` of standard deviation ``sn``. The noise-constrained problem
(Pnevmatikakis et al., Neuron 2016, eq. 5; Friedrich et al., PLOS Comput Biol 2017) is

    minimise ||s||_1   subject to   ||y - b - c||^2 <= sn^2 T,  s >= 0,

solved with OASIS from the ``oasis-deconv`` package (AR(1): ``constrained_oasisAR1``; AR(2):
``constrained_onnlsAR2``, the variant CaImAn uses). The AR coefficients are estimated from the
autocovariance (Yule-Walker with the noise variance removed from lag 0) and ``sn`` from the
power spectral density in the normalized band (0.25, 0.5].

What the results mean, in CaImAn's terms: ``estimates.C[k] == d.c + d.bl`` (``d.denoised``),
``estimates.S[k] == d.s``, ``bl``, ``c1``, ``g``, ``neurons_sn``, ``lam`` as in CaImAn.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from oasis.functions import constrained_onnlsAR2
from oasis.oasis_methods import constrained_oasisAR1

from cnmflow.engine.noise import noise_psd
from cnmflow.errors import InputError, ParameterError

__all__ = ["Deconvolved", "estimate_ar_coefficients", "deconvolve_trace", "deconvolve_traces",
           "calcium_free_residual_sd", "deconvolve_trace_refining_sn"]

# Roots of the AR polynomial are kept real and inside [_ROOT_MIN, _ROOT_MAX] before the fudge
# shrinkage: a root <= 0 (no detectable positive correlation beyond the noise) becomes a
# near pass-through kernel, a root >= 1 (unstable, e.g. from a drifting trace) a slow decay.
_ROOT_MIN = 0.01
_ROOT_MAX = 0.999
_NOISE_BAND = (0.25, 0.5)
# constrained_onnlsAR2 first solves an AR(1) problem on data decimated by this factor.
_AR2_DECIMATE = 5
# ... then NNLS over windows moved by this many frames (OASIS' default). Its last solve takes the
# frames after the first shift; for a trace shorter than the shift that slice has a negative
# length and OASIS fails (50 <= T < 100), so a short trace is one window: shift = T.
_AR2_SHIFT = 100


@dataclass(frozen=True)
class Deconvolved:
    """Deconvolution of one trace of length T.

    Attributes
    ----------
    c : ndarray, shape (T,)
        Denoised calcium **without** the baseline; it includes the decay of the initial
        calcium ``c1`` (``c[0] == c1``). CaImAn's ``estimates.C`` row is ``c + bl``
        (see :attr:`denoised`).
    s : ndarray, shape (T,)
        Spikes (deconvolved activity), ``>= 0``; ``s[0] == 0`` for ``p >= 1`` because the
        first sample's calcium is the initial value ``c1``, not an event. For ``t >= 1``,
        ``c[t] == sum(g[i] * c[t-1-i]) + s[t]`` with ``c[-1] == 0``: for p = 1 the initial
        calcium decays as ``c1 * g**t``; for p = 2 it follows the AR(2) kernel from
        ``c[0] = c1`` (the AR(2) solver meets the recursion up to its NNLS tolerance, ~1e-4 of
        the peak).
    bl : float
        Baseline ``b`` (same units as the trace).
    c1 : float
        Initial calcium value, ``c[0]``.
    g : tuple of float
        AR coefficients used (length ``p``; ``()`` for ``p = 0``).
    sn : float
        Noise standard deviation of the trace (given, or PSD estimate in band (0.25, 0.5]).
    lam : float
        The sparsity penalty lambda of the equivalent penalized problem
        ``min 1/2 ||y - b - c||^2 + lam ||s||_1`` that the constrained solution solves
        (as returned by OASIS; 0 for ``p = 0``).
    """

    c: np.ndarray
    s: np.ndarray
    bl: float
    c1: float
    g: tuple[float, ...]
    sn: float
    lam: float

    @property
    def denoised(self) -> np.ndarray:
        """CaImAn's denoised trace ``C = c + bl``, shape (T,)."""
        return self.c + self.bl


def estimate_ar_coefficients(
    y: np.ndarray, *, p: int, sn: float, lags: int = 5, fudge_factor: float = 0.96
) -> tuple[float, ...]:
    """Estimate AR(p) coefficients of a noisy trace from its autocovariance.

    With ``gamma(k)`` the sample autocovariance of ``y``, the calcium part obeys the
    Yule-Walker equations ``gamma(k) = sum_i g_i (gamma(|k-i|) - sn^2 [k == i])`` for
    ``k = 1 .. p + lags`` (white noise only adds ``sn^2`` to lag 0); they are solved by least
    squares. The roots of ``z^p - g_1 z^(p-1) - ... - g_p`` are then made real (real part),
    clipped to [0.01, 0.999] and multiplied by ``fudge_factor`` (shrinkage that keeps the
    estimate away from unstable, too slow kernels), and ``g`` is rebuilt from them.
    Deterministic.

    Parameters
    ----------
    y : ndarray, shape (T,)
        Fluorescence trace, finite.
    p : int
        AR order, 1 or 2.
    sn : float
        Noise standard deviation of ``y`` (>= 0).
    lags : int
        Number of lags beyond ``p`` used in the least squares fit (fewer when T is short).
    fudge_factor : float
        Root shrinkage in (0, 1].

    Returns
    -------
    tuple of float
        ``(g,)`` for p = 1, ``(g1, g2)`` for p = 2.
    """
    y = _check_trace(y)
    if p not in (1, 2):
        raise ParameterError(f"p = {p!r} is not allowed for AR estimation; use 1 or 2.")
    _check_sn(sn)
    if isinstance(lags, bool) or not isinstance(lags, (int, np.integer)) or lags < 0:
        raise ParameterError(f"lags = {lags!r} is not allowed; use an integer >= 0.")
    if not (0 < fudge_factor <= 1):
        raise ParameterError(f"fudge_factor = {fudge_factor!r} is not allowed; use a value in (0, 1].")
    T = y.size
    n_eq = min(p + int(lags), T - 1)
    yc = y - y.mean()
    acov = np.array([yc[k:] @ yc[: T - k] for k in range(n_eq + 1)]) / T
    if n_eq < 1 or acov[0] - sn**2 <= 0:
        coefs = np.zeros(p)  # no signal power beyond the noise: no detectable dynamics
    else:
        lhs = scipy.linalg.toeplitz(acov[:n_eq], acov[:p]) - sn**2 * np.eye(n_eq, p)
        coefs = np.linalg.lstsq(lhs, acov[1 : n_eq + 1], rcond=None)[0]
    roots = np.roots(np.concatenate(([1.0], -coefs))).real
    roots = fudge_factor * np.clip(roots, _ROOT_MIN, _ROOT_MAX)
    return tuple(float(v) for v in -np.poly(roots)[1:])


def deconvolve_trace(
    y: np.ndarray,
    *,
    p: int,
    g: tuple[float, ...] | None = None,
    sn: float | None = None,
    bas_nonneg: bool = False,
    optimize_g: int = 0,
) -> Deconvolved:
    """Deconvolve one trace with constrained OASIS (CaImAn ``method_deconvolution="oasis"``).

    Parameters
    ----------
    y : ndarray, shape (T,)
        Fluorescence trace (e.g. ``C_k + YrA_k``), finite; any real dtype, computed in float64.
    p : int
        AR order: 0, 1 or 2.
    g : tuple of float, optional
        AR coefficients (length ``p``), e.g. ``(exp(-1 / (decay_time * fr)),)`` for p = 1.
        Estimated with :func:`estimate_ar_coefficients` (defaults) when None.
    sn : float, optional
        Noise standard deviation; PSD estimate in band (0.25, 0.5] when None.
    bas_nonneg : bool
        True: baseline constrained to ``b >= 0``. False: ``b`` is unconstrained (no lower
        bound; at the optimum it equals ``mean(y - c)``, so it can be negative, but never
        above ``mean(y)``).
    optimize_g : int
        Number of large, isolated events used to refine ``g`` during the solve (0: keep ``g``;
        ``True`` counts as 1, which is what CaImAn's flag passes on). p = 1 only.

    Returns
    -------
    Deconvolved
        ``c`` without baseline; CaImAn's C is ``result.denoised == c + bl``.

    Notes
    -----
    ``p = 0`` means no deconvolution, as in CaImAn: ``bl = 0``, ``c = max(y, 0)``,
    ``s = c``, ``c1 = 0``, ``g = ()``, ``lam = 0``; ``sn`` is still estimated (or passed
    through) and ``bas_nonneg`` / ``optimize_g`` have no effect.

    A trace with no signal above the noise (constant, all zero), or one too short for AR(p)
    dynamics (T <= p), gives ``c = s = 0`` and ``bl`` equal to its level (its mean; clamped
    at 0 when ``bas_nonneg``).
    """
    y = _check_trace(y)
    optimize_g = _check_options(p, optimize_g)
    sn = float(_noise_sd(y[np.newaxis])[0]) if sn is None else _check_sn(sn)
    if p == 0:
        return _without_dynamics(y, g=g, sn=sn)
    g = estimate_ar_coefficients(y, p=p, sn=sn) if g is None else _check_g(g, p)
    if y.size <= p:
        return _baseline_only(y, g=g, sn=sn, bas_nonneg=bas_nonneg)
    return _oasis(y, p=p, g=g, sn=sn, bas_nonneg=bas_nonneg, optimize_g=optimize_g)


def calcium_free_residual_sd(y: np.ndarray, deconvolved: Deconvolved) -> float:
    """The sd of the residual ``e = y - bl - c`` once its part shaped like the calcium is removed.

    With the right noise sd the residual is noise, uncorrelated with ``c``. A noise sd set too
    high (the PSD estimate of a bright trace, whose fast transients put power into the noise
    band) leaves part of every transient in ``e``: ``e ≈ β·c + n`` with ``β > 0``. The sd of
    ``e - β·c`` (``β`` by least squares, clipped at 0) is that of ``n``: what is not calcium of
    this trace's own shape, so contamination shaped otherwise (neighbours, out-of-focus cells)
    stays in it and keeps the estimate high. Never above the residual's own sd.
    """
    residual = y - deconvolved.bl - deconvolved.c
    residual = residual - residual.mean()
    calcium = deconvolved.c - deconvolved.c.mean()
    energy = float(calcium @ calcium)
    beta = max(float(residual @ calcium) / energy, 0.0) if energy > 0 else 0.0
    return float(np.sqrt(np.mean((residual - beta * calcium) ** 2)))


def deconvolve_trace_refining_sn(
    y: np.ndarray, *, p: int, g: tuple[float, ...] | None = None, bas_nonneg: bool = False,
    refinements: int = 1,
) -> Deconvolved:
    """:func:`deconvolve_trace` with the PSD noise sd, then ``refinements`` times re-solved with
    the sd of what the solution leaves unexplained (:func:`calcium_free_residual_sd`, never above
    the PSD estimate). The PSD sd overestimates a bright, clean trace's noise (1.6-2.3x on the
    realistic simulator), which shrinks its transients; a contaminated trace keeps its estimate.
    The AR coefficients of the first solve are kept.
    """
    deconvolved = deconvolve_trace(y, p=p, g=g, bas_nonneg=bas_nonneg)
    if p == 0:
        return deconvolved
    y = _check_trace(y)
    for _ in range(refinements):
        sn = min(calcium_free_residual_sd(y, deconvolved), deconvolved.sn)
        deconvolved = deconvolve_trace(y, p=p, g=deconvolved.g, sn=sn, bas_nonneg=bas_nonneg)
    return deconvolved


def _check_options(p: int, optimize_g) -> int:
    """Refuse an order or refinement the solvers cannot take; ``optimize_g`` as an int (True is 1)."""
    if p not in (0, 1, 2):
        raise ParameterError(f"p = {p!r} is not allowed; use 0 (no dynamics), 1 or 2.")
    if isinstance(optimize_g, (bool, np.bool_)):
        optimize_g = int(optimize_g)
    if not isinstance(optimize_g, (int, np.integer)) or optimize_g < 0:
        raise ParameterError(f"optimize_g = {optimize_g!r} is not allowed; use an integer >= 0.")
    if p == 2 and optimize_g:
        raise ParameterError(
            f"optimize_g = {optimize_g!r} with p = 2 is not supported (OASIS' AR(2) refinement "
            "is experimental and draws from the global random generator); use p = 1 or "
            "optimize_g = 0."
        )
    return optimize_g


def _without_dynamics(y: np.ndarray, *, g, sn: float) -> Deconvolved:
    """p = 0, as in CaImAn: the trace clipped at 0 is both calcium and activity."""
    if g not in (None, ()):
        raise ParameterError(f"g = {g!r} was given with p = 0; pass g=None or ().")
    c = np.maximum(y, 0.0)
    return Deconvolved(c=c, s=c.copy(), bl=0.0, c1=0.0, g=(), sn=sn, lam=0.0)


def _baseline_only(y: np.ndarray, *, g: tuple[float, ...], sn: float, bas_nonneg: bool) -> Deconvolved:
    """A trace too short for any dynamics (T <= p): everything is baseline."""
    bl = max(float(y.mean()), 0.0) if bas_nonneg else float(y.mean())
    zeros = np.zeros(y.size)
    return Deconvolved(c=zeros, s=zeros.copy(), bl=bl, c1=0.0, g=g, sn=sn, lam=0.0)


def _oasis(y: np.ndarray, *, p: int, g: tuple[float, ...], sn: float, bas_nonneg: bool,
           optimize_g: int) -> Deconvolved:
    """The constrained OASIS solve for p = 1 or 2 (see the module docstring)."""
    T = y.size
    if p == 1:
        c, s, b, g_out, lam = constrained_oasisAR1(
            y, g[0], sn, optimize_b=True, b_nonneg=bool(bas_nonneg), optimize_g=int(optimize_g)
        )
        g_out = (float(g_out),)
    else:
        c, s, b, g_out, lam = constrained_onnlsAR2(
            y,
            _distinct_ar2_roots(g),
            sn,
            optimize_b=True,
            b_nonneg=bool(bas_nonneg),
            decimate=_AR2_DECIMATE if T >= 10 * _AR2_DECIMATE else 1,
            shift=min(_AR2_SHIFT, T),
        )
        g_out = tuple(float(v) for v in g_out)
    c = np.asarray(c, dtype=np.float64)
    s = np.maximum(np.asarray(s, dtype=np.float64), 0.0)
    s[0] = 0.0
    return Deconvolved(
        c=c, s=s, bl=float(b), c1=float(c[0]), g=g_out, sn=sn, lam=float(lam)
    )


def deconvolve_traces(
    Y: np.ndarray,
    *,
    p: int,
    g_init: tuple[float, ...] | None = None,
    bas_nonneg: bool = False,
    optimize_g: int = 0,
) -> list[Deconvolved]:
    """Deconvolve every row of ``Y`` with :func:`deconvolve_trace`.

    Parameters
    ----------
    Y : ndarray, shape (K, T)
        One trace per row (e.g. ``C + YrA``).
    p : int
        AR order: 0, 1 or 2.
    g_init : tuple of float, optional
        AR coefficients used for every row; estimated per row when None.
    bas_nonneg, optimize_g
        As in :func:`deconvolve_trace`.

    Returns
    -------
    list of Deconvolved
        One result per row, in row order.
    """
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise InputError(f"Y has shape {Y.shape}; expected a 2-D (K, T) array of traces.")
    if Y.shape[0] == 0:
        return []
    Y = _check_trace(Y, name="Y", ndim=2)
    sns = _noise_sd(Y)  # one vectorized PSD for all rows
    return [
        deconvolve_trace(
            row, p=p, g=g_init, sn=float(sn), bas_nonneg=bas_nonneg, optimize_g=optimize_g
        )
        for row, sn in zip(Y, sns)
    ]


def _noise_sd(Y: np.ndarray) -> np.ndarray:
    """Noise sd per row of (K, T) ``Y``: PSD mean over normalized band (0.25, 0.5].

    Uses :func:`cnmflow.engine.noise.noise_psd` (``sqrt(mean(PSD / 2))``, CaImAn's
    definition). A trace with no frequency in the band (T = 1) gets its population sd (0).
    """
    sn = np.asarray(noise_psd(Y, band=_NOISE_BAND, method="mean"), dtype=np.float64)
    return np.where(np.isnan(sn), Y.std(axis=-1), sn)


def _check_trace(y, *, name: str = "y", ndim: int = 1) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != ndim or arr.shape[-1] == 0:
        want = "a non-empty 1-D (T,) trace" if ndim == 1 else "a (K, T) array with T >= 1"
        raise InputError(f"{name} has shape {arr.shape}; expected {want}.")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
            or arr.dtype == np.bool_):
        raise InputError(f"{name} has dtype {arr.dtype}; expected real numbers (int or float).")
    arr = np.array(arr, dtype=np.float64, order="C")  # a copy: inputs are never mutated
    if not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(arr)).sum())
        raise InputError(
            f"{name} contains {n_bad} NaN/inf value(s); fill or interpolate them before "
            "deconvolution."
        )
    return arr


def _distinct_ar2_roots(g: tuple[float, ...]) -> tuple[float, float]:
    """AR(2) coefficients whose two real roots differ by at least 1e-4.

    The AR(2) solver needs the roots d > r of ``z^2 - g1 z - g2`` to be real and distinct
    (a double root, e.g. from a complex pair made real, would divide by ``d - r = 0``).
    """
    d, r = sorted(np.roots([1.0, -g[0], -g[1]]).real, reverse=True)
    r = min(r, d - 1e-4)
    return (float(d + r), float(-d * r))


def _check_sn(sn) -> float:
    try:
        value = float(sn)
    except (TypeError, ValueError):
        raise ParameterError(f"sn = {sn!r} is not allowed; use a finite number >= 0.") from None
    if not np.isfinite(value) or value < 0:
        raise ParameterError(f"sn = {sn!r} is not allowed; use a finite number >= 0.")
    return value


def _check_g(g, p: int) -> tuple[float, ...]:
    try:
        g = tuple(float(v) for v in np.atleast_1d(np.asarray(g, dtype=np.float64)))
    except (TypeError, ValueError):
        raise ParameterError(f"g = {g!r} is not allowed; use a tuple of {p} float(s).") from None
    if len(g) != p:
        raise ParameterError(f"g = {g!r} has {len(g)} coefficient(s) but p = {p}; pass {p}.")
    if not _stable_decaying(g):
        roots = np.roots(np.concatenate(([1.0], -np.asarray(g))))
        raise ParameterError(
            f"g = {g!r} is not a stable decaying AR({p}) kernel: the roots of "
            f"z^{p} - g1 z^{p - 1} ... must be real and in (0, 1) (got {np.round(roots, 4)}). "
            "For p = 1 use g = exp(-1 / (decay_time * fr))."
        )
    return g


@functools.lru_cache(maxsize=256)
def _stable_decaying(g: tuple[float, ...]) -> bool:
    """Whether the roots of ``z^p − g1·z^(p−1) − …`` are real and in (0, 1). Cached: the ring trace
    solve deconvolves every trace several times with one prior ``g`` (issue #22: np.roots cost
    ~0.3 CPU s a CA1 fit)."""
    roots = np.roots(np.concatenate(([1.0], -np.asarray(g))))
    return not (np.any(np.abs(roots.imag) > 1e-6) or np.any(roots.real <= 0) or np.any(roots.real >= 1))
