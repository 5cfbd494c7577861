"""Simulated calcium-imaging movies with ground truth (the writers are in :mod:`cnmflow.synthetic.writers`).

The simulators are the fixture of the test suite and of the benchmarks:

- :func:`simulate_1p`: one-photon (CNMF-E style, Zhou et al. 2018). Gaussian-like, slightly
  elliptic neurons with sparse Poisson spiking and AR(1)/AR(2) calcium, on top of a strong,
  spatially smooth background (``background_ratio`` times the mean neuron peak) that
  fluctuates slowly, plus local "out-of-focus" blobs with their own slow traces and an
  optional dark blood vessel. Gaussian noise (optionally shot-noise-like scaling).
- :func:`simulate_2p`: two-photon (CNMF style). Same neurons, weak low-rank non-negative
  background with ``nb`` components, Gaussian noise.

Everything is seeded through ``rng`` (an int or a ``numpy.random.Generator``); the same
arguments give bit-identical arrays. Generation is vectorised and chunked over frames: the
only full-size array is the movie itself; the background is kept as a low-rank
factorisation (``GroundTruth.background_spatial`` x ``GroundTruth.background_temporal``).

Units: the movie is in arbitrary "counts"; a neuron's contribution is
``footprints[k] * calcium[k, t]`` and each neuron's peak SNR is
``calcium[k].max() * footprints[k].max() / noise_sd`` (footprints are max-normalised to 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter

from cnmflow.errors import ParameterError
from cnmflow.synthetic.checks import check_positive, check_shape
from cnmflow.synthetic.layout import child_generators, place_centers
from cnmflow.synthetic.tissue import crossing_curve

__all__ = [
    "GroundTruth",
    "SimulatedMovie",
    "simulate_1p",
    "simulate_2p",
    "ar_coefficients",
]

_CHUNK_FRAMES = 64


# --------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class GroundTruth:
    """What the simulator put into the movie.

    ``movie = sum_k footprints[k] * calcium[k, t] + background(t) + noise``, where
    ``background(t) = sum_j background_spatial[j] * background_temporal[j, t]``.
    """

    footprints: np.ndarray  # (K, rows, cols) float32, each max-normalised to 1
    calcium: np.ndarray  # (K, T) float32, noise-free calcium in movie intensity units
    spikes: np.ndarray  # (K, T) float32, same units: calcium = AR filter of spikes
    centers: np.ndarray  # (K, 2) float64 (row, col)
    background_mean: np.ndarray  # (rows, cols) float32, temporal mean of the background
    fr: float
    decay_time: float
    g: tuple[float, ...]
    noise_sd: float
    # extras (not needed to use the simulator, handy for tests of the engine)
    sigmas: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (K, 2) axis sigmas
    background_spatial: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.float32))
    background_temporal: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    kind: str = "1p"

    @property
    def n_neurons(self) -> int:
        return int(self.footprints.shape[0])

    @property
    def dims(self) -> tuple[int, int]:
        return (int(self.footprints.shape[1]), int(self.footprints.shape[2]))

    def A(self) -> scipy.sparse.csc_matrix:
        """Footprints as a ``(rows*cols, K)`` CSC matrix in Fortran pixel order."""
        k, rows, cols = self.footprints.shape
        dense = self.footprints.transpose(0, 2, 1).reshape(k, rows * cols).T
        return scipy.sparse.csc_matrix(dense)

    def background(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Noise-free background frames ``[start, stop)`` as ``(n, rows, cols)`` float32."""
        bt = self.background_temporal[:, start:stop]
        r, rows, cols = self.background_spatial.shape
        out = bt.T @ self.background_spatial.reshape(r, rows * cols)
        return out.reshape(-1, rows, cols).astype(np.float32, copy=False)

    def neurons(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Noise-free neural signal ``A·C`` for frames ``[start, stop)`` as ``(n, rows, cols)``."""
        k, rows, cols = self.footprints.shape
        c = self.calcium[:, start:stop]
        out = c.T @ self.footprints.reshape(k, rows * cols)
        return out.reshape(-1, rows, cols).astype(np.float32, copy=False)


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class SimulatedMovie:
    movie: np.ndarray  # (T, rows, cols) float32, C order
    truth: GroundTruth


# --------------------------------------------------------------------------- helpers
def _check_range(name: str, value) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name}={value!r} is not allowed: give (low, high), e.g. (3.0, 10.0).") from None
    if not (0 < lo <= hi) or not math.isfinite(hi):
        raise ParameterError(f"{name}={value!r} is not allowed: need 0 < low <= high.")
    return lo, hi


def ar_coefficients(*, fr: float, decay_time: float, p: int = 1, rise_time: float | None = None) -> tuple[float, ...]:
    """AR coefficients of the calcium kernel.

    p = 1: ``g = exp(-1/(decay_time·fr))``. p = 2: rise and decay time constants,
    ``g1 = d + r``, ``g2 = -d·r`` with ``d = exp(-1/(decay_time·fr))``,
    ``r = exp(-1/(rise_time·fr))`` (``rise_time`` defaults to ``decay_time / 8``).
    """
    d = math.exp(-1.0 / (decay_time * fr))
    if p == 1:
        return (d,)
    if p == 2:
        rt = decay_time / 8.0 if rise_time is None else float(rise_time)
        if not (0 < rt < decay_time):
            raise ParameterError(f"rise_time={rise_time!r} is not allowed: need 0 < rise_time < decay_time.")
        r = math.exp(-1.0 / (rt * fr))
        return (d + r, -d * r)
    raise ParameterError(f"p={p!r} is not allowed: the simulator supports p=1 (AR(1)) or p=2 (AR(2)).")


def _smooth_noise(gen: np.random.Generator, n: int, length: int, sigma_frames: float) -> np.ndarray:
    """(n, length) zero-mean, unit-sd, temporally smooth random traces (float64)."""
    x = gen.standard_normal((n, length))
    if length < 2:
        return np.zeros((n, length))
    x = gaussian_filter1d(x, sigma=max(float(sigma_frames), 0.5), axis=1, mode="reflect")
    x -= x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    sd[sd == 0] = 1.0
    return x / sd


def _footprints(gen, centers, rows, cols, gsig) -> tuple[np.ndarray, np.ndarray]:
    """Rotated elliptic Gaussians truncated at 3 sigma (Mahalanobis), max-normalised to 1."""
    n = centers.shape[0]
    sig = gsig * gen.uniform(0.8, 1.2, size=(n, 2))
    theta = gen.uniform(0.0, np.pi, size=n)
    out = np.zeros((n, rows, cols), np.float32)
    for k in range(n):
        cr, cc = centers[k]
        half = int(math.ceil(3.0 * sig[k].max())) + 1
        r0, r1 = max(0, int(cr) - half), min(rows, int(cr) + half + 2)
        c0, c1 = max(0, int(cc) - half), min(cols, int(cc) + half + 2)
        dr = np.arange(r0, r1)[:, None] - cr
        dc = np.arange(c0, c1)[None, :] - cc
        ct, st = math.cos(theta[k]), math.sin(theta[k])
        u = (ct * dr + st * dc) / sig[k, 0]
        v = (-st * dr + ct * dc) / sig[k, 1]
        m2 = u * u + v * v
        a = np.exp(-0.5 * m2)
        a[m2 > 9.0] = 0.0
        a /= a.max()
        out[k, r0:r1, c0:c1] = a
    return out, sig


def _calcium(gen, n, T, *, fr, spike_rate, g, peaks, min_events=2):
    """Poisson spikes with variable amplitudes -> AR calcium scaled so max(calcium) = peaks."""
    lam = float(spike_rate) / float(fr)
    counts = gen.poisson(lam, size=(n, T)).astype(np.float64)
    if T >= 1:
        # every neuron fires at least `min_events` times, so none is silent
        need = min(min_events, T)
        for k in np.flatnonzero((counts > 0).sum(axis=1) < need):
            t = gen.choice(T, size=need, replace=False)
            counts[k, t] += 1.0
    amps = np.exp(0.3 * gen.standard_normal((n, T)))
    s = counts * amps
    c = lfilter([1.0], np.r_[1.0, -np.asarray(g, float)], s, axis=1)
    scale = peaks / c.max(axis=1)
    s, c = s * scale[:, None], c * scale[:, None]
    # long decays reach float32 denormals, which make every later product ~10x slower
    c[c < 1e-9 * peaks[:, None]] = 0.0
    return s, c


def _flush_tiny(x: np.ndarray, rel: float = 1e-9) -> np.ndarray:
    """Zero values negligible against the largest one: float32 denormals slow every product ~10x."""
    x = np.asarray(x, dtype=np.float64).copy()
    x[np.abs(x) < rel * np.abs(x).max(initial=0.0)] = 0.0
    return x


def _gauss2d(rows, cols, center, sigma, *, truncate: float | None = None) -> np.ndarray:
    rr = (np.arange(rows)[:, None] - center[0]) / sigma[0]
    cc = (np.arange(cols)[None, :] - center[1]) / sigma[1]
    m2 = rr * rr + cc * cc
    out = np.exp(-0.5 * m2)
    if truncate is not None:
        out[m2 > truncate**2] = 0.0
    return out


def _vessel_profile(gen, rows, cols, width) -> np.ndarray:
    """A smooth curve (quadratic Bezier) crossing the field of view; Gaussian band profile."""
    from scipy.spatial import cKDTree

    curve = crossing_curve(gen, rows, cols)

    grid = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), axis=-1).reshape(-1, 2)
    dist, _ = cKDTree(curve).query(grid, distance_upper_bound=5.0 * width)  # inf beyond: profile 0
    return np.exp(-0.5 * (dist.reshape(rows, cols) / width) ** 2)


def _render(
    *,
    T: int,
    rows: int,
    cols: int,
    footprints: np.ndarray,
    calcium: np.ndarray,
    bg_spatial: np.ndarray,
    bg_temporal: np.ndarray,
    noise_sd: float,
    noise_gen: np.random.Generator,
    shot_noise: bool,
    shot_ref: float,
) -> np.ndarray:
    """movie = footprints·calcium + bg_spatial·bg_temporal + noise, built in frame chunks."""
    P = rows * cols
    K = footprints.shape[0]
    movie = np.empty((T, rows, cols), np.float32)
    A = scipy.sparse.csr_matrix(footprints.reshape(K, P).T.astype(np.float32))  # (P, K), C pixel order
    Cf = np.ascontiguousarray(calcium.astype(np.float32))
    Bs = bg_spatial.reshape(bg_spatial.shape[0], P).astype(np.float32)
    Bt = bg_temporal.astype(np.float32)
    noise = np.empty((_CHUNK_FRAMES, P), np.float32) if shot_noise else None
    for t0 in range(0, T, _CHUNK_FRAMES):
        t1 = min(T, t0 + _CHUNK_FRAMES)
        view = movie[t0:t1].reshape(t1 - t0, P)
        if shot_noise:
            view[...] = Bt[:, t0:t1].T @ Bs
            if K:
                view += (A @ Cf[:, t0:t1]).T
            nz = noise[: t1 - t0]
            noise_gen.standard_normal(out=nz, dtype=np.float32)
            scale = np.sqrt(np.maximum(view, 0.0) / shot_ref)
            nz *= scale
            nz *= noise_sd
            view += nz
        else:
            noise_gen.standard_normal(out=view, dtype=np.float32)
            view *= np.float32(noise_sd)
            view += Bt[:, t0:t1].T @ Bs
            if K:
                view += (A @ Cf[:, t0:t1]).T
    return movie


def _common_checks(shape, n_frames, n_neurons, gsig, fr, decay_time, p, spike_rate, peak_snr, noise_sd):
    rows, cols = check_shape(shape)
    check_positive("n_frames", n_frames, integer=True)
    check_positive("n_neurons", n_neurons, integer=True, allow_zero=True)
    check_positive("gsig", gsig)
    check_positive("fr", fr)
    check_positive("decay_time", decay_time)
    check_positive("spike_rate", spike_rate)
    check_positive("noise_sd", noise_sd)
    lo, hi = _check_range("peak_snr", peak_snr)
    if p not in (1, 2):
        raise ParameterError(f"p={p!r} is not allowed: the simulator supports p=1 (AR(1)) or p=2 (AR(2)).")
    return rows, cols, lo, hi


# --------------------------------------------------------------------------- simulators
def _assemble(*, kind, footprints, calcium, spikes, centers, sigmas, bg_spatial, bg_temporal, fr, decay_time, g,
              noise_sd, noise_gen, shot_noise, shot_ref, T, rows, cols) -> SimulatedMovie:
    """Render the movie from its parts and keep the parts as its ground truth."""
    movie = _render(
        T=T, rows=rows, cols=cols, footprints=footprints, calcium=calcium,
        bg_spatial=bg_spatial, bg_temporal=bg_temporal, noise_sd=float(noise_sd),
        noise_gen=noise_gen, shot_noise=shot_noise, shot_ref=shot_ref,
    )
    bg_mean = np.tensordot(bg_temporal.astype(np.float64).mean(axis=1), bg_spatial.astype(np.float64), axes=1)
    truth = GroundTruth(
        footprints=footprints, calcium=calcium.astype(np.float32), spikes=spikes.astype(np.float32),
        centers=centers, background_mean=bg_mean.astype(np.float32), fr=float(fr),
        decay_time=float(decay_time), g=tuple(float(x) for x in g), noise_sd=float(noise_sd), sigmas=sigmas,
        background_spatial=bg_spatial, background_temporal=bg_temporal, kind=kind,
    )
    return SimulatedMovie(movie=movie, truth=truth)


def simulate_1p(
    *,
    shape: Sequence[int] = (64, 64),
    n_frames: int = 500,
    n_neurons: int = 20,
    gsig: float = 3.0,
    fr: float = 10.0,
    decay_time: float = 0.4,
    p: int = 1,
    rise_time: float | None = None,
    spike_rate: float = 0.3,
    peak_snr: tuple[float, float] = (3.0, 10.0),
    noise_sd: float = 25.0,
    background_ratio: float = 5.0,
    n_local_background: int | None = None,
    vessel: bool = False,
    shot_noise: bool = False,
    min_distance: float | None = None,
    rng: int | np.random.Generator | None = 0,
) -> SimulatedMovie:
    """Simulated one-photon (microendoscope) movie, CNMF-E paper style.

    Neurons: centres at least ``min_distance`` apart (default ``2·gsig``: footprints overlap
    but stay separable) and at least ``gsig`` from the border; elliptic rotated Gaussians with
    axis sigmas ``gsig·U(0.8, 1.2)`` truncated at 3 sigma. Calcium: Poisson spikes at
    ``spike_rate`` Hz (each neuron fires at least twice) with log-normal amplitudes, AR(p)
    dynamics, scaled so ``peak SNR = max calcium / noise_sd`` is ``U(peak_snr)``.

    Background (the hard part, what the ring model is for): a smooth field of large Gaussian
    blobs with mean ``background_ratio × mean neuron peak``; two global slowly fluctuating
    modes (a multiplicative ~3% flicker of the whole field and a large-scale pattern at
    ~0.4 neuron peaks); ``n_local_background`` out-of-focus blobs (sigma ``2–4·gsig``, i.e.
    ~5–9·gsig wide) with their own slow log-normal traces at 0.3–1 mean neuron peak (mean); with
    ``vessel=True`` a dark curvilinear band (25–40% dimmer) whose depth fluctuates slowly.

    Noise: Gaussian with sd ``noise_sd``; with ``shot_noise=True`` the sd scales with
    ``sqrt(signal / mean background)`` (``noise_sd`` is then the sd at the mean background level).
    """
    rows, cols, lo, hi = _common_checks(shape, n_frames, n_neurons, gsig, fr, decay_time, p, spike_rate, peak_snr, noise_sd)
    check_positive("background_ratio", background_ratio)
    T = int(n_frames)
    g = ar_coefficients(fr=fr, decay_time=decay_time, p=p, rise_time=rise_time)
    md = 2.0 * gsig if min_distance is None else float(min_distance)
    g_layout, g_shape, g_spikes, g_bg, g_bgt, g_noise = child_generators(rng, 6)

    centers = place_centers(g_layout, int(n_neurons), rows, cols, min_distance=md, margin=max(float(gsig), 2.0))
    footprints, sigmas = _footprints(g_shape, centers, rows, cols, gsig)
    peaks = noise_sd * g_spikes.uniform(lo, hi, size=int(n_neurons))
    spikes, calcium = _calcium(g_spikes, int(n_neurons), T, fr=fr, spike_rate=spike_rate, g=g, peaks=peaks)
    mean_peak = float(noise_sd * (lo + hi) / 2.0)  # independent of the draw: stable levels

    # ---- background: low-rank spatial x temporal terms
    spatial: list[np.ndarray] = []
    temporal: list[np.ndarray] = []
    size = float(max(rows, cols))
    # smooth base field: offset + a few large blobs + vignetting
    base = np.full((rows, cols), 0.35)
    for _ in range(4):
        c = (g_bg.uniform(-0.1, 1.1) * rows, g_bg.uniform(-0.1, 1.1) * cols)
        s = g_bg.uniform(0.25, 0.6, size=2) * size
        base += g_bg.uniform(0.3, 1.0) * _gauss2d(rows, cols, c, s)
    base *= _gauss2d(rows, cols, ((rows - 1) / 2, (cols - 1) / 2), (0.9 * size, 0.9 * size))
    base *= background_ratio * mean_peak / base.mean()
    tt = T
    spatial.append(base)
    temporal.append(np.ones(tt))
    # global flicker (multiplicative ~5%) and a large-scale zero-mean pattern
    z = _smooth_noise(g_bgt, 2, tt, sigma_frames=3.0 * fr)
    spatial.append(0.03 * base)
    temporal.append(z[0])
    pattern = np.zeros((rows, cols))
    for sign in (1.0, -1.0):
        c = (g_bg.uniform(0.0, 1.0) * rows, g_bg.uniform(0.0, 1.0) * cols)
        pattern += sign * _gauss2d(rows, cols, c, g_bg.uniform(0.2, 0.4, size=2) * size)
    pattern *= 0.4 * mean_peak / max(np.abs(pattern).max(), 1e-12)
    spatial.append(pattern)
    temporal.append(z[1])
    # local out-of-focus blobs with their own slow non-negative traces
    n_loc = max(2, int(round(rows * cols / 1600.0)) + 1) if n_local_background is None else int(n_local_background)
    if n_loc:
        zl = _smooth_noise(g_bgt, n_loc, tt, sigma_frames=1.5 * fr)
        for j in range(n_loc):
            c = (g_bg.uniform(0, rows - 1), g_bg.uniform(0, cols - 1))
            s = gsig * g_bg.uniform(2.0, 4.0, size=2)
            blob = _gauss2d(rows, cols, c, s, truncate=3.0)
            amp = g_bg.uniform(0.3, 1.0) * mean_peak
            spatial.append(amp * blob)
            tr = np.exp(0.4 * zl[j])
            temporal.append(tr / tr.mean())
    if vessel:
        prof = _vessel_profile(g_bg, rows, cols, width=float(gsig) * g_bg.uniform(1.0, 1.5))
        depth = g_bg.uniform(0.25, 0.4)
        zv = _smooth_noise(g_bgt, 1, tt, sigma_frames=2.0 * fr)[0]
        fv = 1.0 + 0.15 * zv + 0.1 * np.sin(2 * np.pi * 0.1 * np.arange(tt) / fr + g_bg.uniform(0, 2 * np.pi))
        spatial.append(-depth * prof * base)
        temporal.append(fv)

    bg_spatial = _flush_tiny(np.stack(spatial)).astype(np.float32)
    bg_temporal = np.stack(temporal).astype(np.float32)
    return _assemble(
        kind="1p", footprints=footprints, calcium=calcium, spikes=spikes, centers=centers, sigmas=sigmas,
        bg_spatial=bg_spatial, bg_temporal=bg_temporal, fr=fr, decay_time=decay_time, g=g, noise_sd=noise_sd,
        noise_gen=g_noise, shot_noise=bool(shot_noise), shot_ref=float(base.mean()), T=T, rows=rows, cols=cols,
    )


def simulate_2p(
    *,
    shape: Sequence[int] = (64, 64),
    n_frames: int = 500,
    n_neurons: int = 20,
    gsig: float = 3.0,
    fr: float = 30.0,
    decay_time: float = 0.4,
    p: int = 1,
    rise_time: float | None = None,
    nb: int = 2,
    spike_rate: float = 0.3,
    peak_snr: tuple[float, float] = (3.0, 10.0),
    noise_sd: float = 10.0,
    background_ratio: float = 1.0,
    min_distance: float | None = None,
    rng: int | np.random.Generator | None = 0,
) -> SimulatedMovie:
    """Simulated two-photon movie, CNMF style.

    Neurons as in :func:`simulate_1p` but packed closer (default ``min_distance = 1.5·gsig``).
    Background: exactly rank ``nb``, non-negative: ``nb`` smooth positive spatial fields
    (large Gaussian blobs centred at distinct places) times positive slowly fluctuating
    traces (mean 1, ~30% sd, ~1 s timescale); its
    mean is ``background_ratio × mean neuron peak``. Gaussian noise with sd ``noise_sd``.
    """
    rows, cols, lo, hi = _common_checks(shape, n_frames, n_neurons, gsig, fr, decay_time, p, spike_rate, peak_snr, noise_sd)
    check_positive("nb", nb, integer=True)
    check_positive("background_ratio", background_ratio)
    T = int(n_frames)
    g = ar_coefficients(fr=fr, decay_time=decay_time, p=p, rise_time=rise_time)
    md = 1.5 * gsig if min_distance is None else float(min_distance)
    g_layout, g_shape, g_spikes, g_bg, g_bgt, g_noise = child_generators(rng, 6)

    centers = place_centers(g_layout, int(n_neurons), rows, cols, min_distance=md, margin=max(float(gsig), 2.0))
    footprints, sigmas = _footprints(g_shape, centers, rows, cols, gsig)
    peaks = noise_sd * g_spikes.uniform(lo, hi, size=int(n_neurons))
    spikes, calcium = _calcium(g_spikes, int(n_neurons), T, fr=fr, spike_rate=spike_rate, g=g, peaks=peaks)
    mean_peak = float(noise_sd * (lo + hi) / 2.0)

    size = float(max(rows, cols))
    spatial = []
    phase = g_bg.uniform(0.0, 2 * np.pi)
    for j in range(int(nb)):
        # distinct fields: component j is brightest around its own point of a circle, so the
        # nb components stay linearly independent (the background is really rank nb)
        ang = phase + 2 * np.pi * j / int(nb) + g_bg.uniform(-0.3, 0.3)
        c = ((0.5 + 0.35 * np.sin(ang)) * rows, (0.5 + 0.35 * np.cos(ang)) * cols)
        f = np.full((rows, cols), 0.1 if j == 0 else 0.0)
        f += _gauss2d(rows, cols, c, g_bg.uniform(0.25, 0.4, size=2) * size)
        spatial.append(f)
    bg_spatial = np.stack(spatial)
    bg_spatial *= background_ratio * mean_peak / bg_spatial.sum(axis=0).mean()
    z = _smooth_noise(g_bgt, int(nb), T, sigma_frames=1.0 * fr)
    bg_temporal = np.exp(0.3 * z)
    bg_temporal /= bg_temporal.mean(axis=1, keepdims=True)
    bg_spatial = _flush_tiny(bg_spatial).astype(np.float32)
    bg_temporal = bg_temporal.astype(np.float32)

    return _assemble(
        kind="2p", footprints=footprints, calcium=calcium, spikes=spikes, centers=centers, sigmas=sigmas,
        bg_spatial=bg_spatial, bg_temporal=bg_temporal, fr=fr, decay_time=decay_time, g=g, noise_sd=noise_sd,
        noise_gen=g_noise, shot_noise=False, shot_ref=1.0, T=T, rows=rows, cols=cols,
    )
