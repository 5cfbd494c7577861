"""Everything in a miniscope movie that is not an in-focus soma: activity, neuropil, vessels,
illumination, motion and photobleaching.

Each function draws from the ``gen`` it is given (a ``numpy.random.Generator``) and returns new
arrays; lengths are pixels and times frames unless a name says otherwise.

Sources of the figures used by the presets (:mod:`cnmflow.synthetic.realistic`):

- Calcium: GCaMP6f's decay after one spike ≈ 0.4 s at 10–20 Hz imaging (Chen et al. 2013,
  Nature 499:295), AR(1)/AR(2) dynamics as in CNMF (Pnevmatikakis et al. 2016, Neuron 89:285).
- Event rates of CA1 pyramidal cells in miniscope recordings ~0.05–0.5 Hz, heavy-tailed across
  cells (Ziv et al. 2013, Nat Neurosci 16:264), bursts of several spikes (complex spikes).
- Neuropil in one-photon data: a spatially smooth signal (out-of-focus dendrites and axons)
  that fluctuates with the population (Zhou et al. 2018, eLife 7:e28728, the CNMF-E model).
- Vessels: dark because haemoglobin absorbs GCaMP's excitation and emission; their diameter
  and blood volume oscillate at 0.1–0.3 Hz (vasomotion) plus the heartbeat (~8–10 Hz in
  mice) (Drew, Shih & Kleinfeld 2011, PNAS 108:8473).
- Photobleaching: a slow, roughly exponential loss of baseline fluorescence over a session.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from scipy.signal import lfilter
from scipy.spatial import cKDTree

__all__ = [
    "calcium_activity",
    "smooth_traces",
    "neuropil",
    "vessel_profiles",
    "vessel_traces",
    "illumination",
    "rigid_shifts",
    "bleaching_curve",
]


def smooth_traces(gen: np.random.Generator, n: int, n_frames: int, *, sigma_frames: float) -> np.ndarray:
    """``(n, n_frames)`` zero-mean, unit-sd Gaussian noise smoothed over ``sigma_frames``."""
    x = gen.standard_normal((n, n_frames))
    if n_frames < 2:
        return np.zeros((n, n_frames))
    x = gaussian_filter1d(x, sigma=max(float(sigma_frames), 0.5), axis=1, mode="reflect")
    x -= x.mean(axis=1, keepdims=True)
    sd = x.std(axis=1, keepdims=True)
    return x / np.where(sd > 0, sd, 1.0)


def calcium_activity(
    gen: np.random.Generator,
    n: int,
    n_frames: int,
    *,
    fr: float,
    g: tuple[float, ...],
    rate_hz: float,
    burst_mean: float = 1.0,
    min_events: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Spikes and calcium, each cell's calcium peaking at 1.

    Each cell fires events at its own rate (log-normal across cells, median ``rate_hz``); an
    event is ``1 + Poisson(burst_mean)`` spikes with log-normal amplitudes; calcium is the AR(p)
    filter of the spikes. Every cell has at least ``min_events`` events.

    Returns
    -------
    spikes, calcium : numpy.ndarray
        ``(n, n_frames)`` float64 each, scaled together so that ``calcium.max(axis=1) == 1``.
    """
    rates = rate_hz * np.exp(0.7 * gen.standard_normal(n))
    events = gen.random((n, n_frames)) < (rates / fr)[:, None]
    for k in np.flatnonzero(events.sum(axis=1) < min(min_events, n_frames)):
        events[k, gen.choice(n_frames, size=min(min_events, n_frames), replace=False)] = True
    sizes = 1.0 + gen.poisson(burst_mean, size=(n, n_frames))
    s = events * sizes * np.exp(0.25 * gen.standard_normal((n, n_frames)))
    c = lfilter([1.0], np.r_[1.0, -np.asarray(g, float)], s, axis=1)
    peak = c.max(axis=1, keepdims=True)
    s, c = s / peak, c / peak
    c[c < 1e-7] = 0.0  # float32 denormals slow every later product
    return s, c


def neuropil(
    gen: np.random.Generator,
    rows: int,
    cols: int,
    n_frames: int,
    *,
    n_modes: int,
    scale_px: float,
    fr: float,
    population: np.ndarray,
    coupling: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth, temporally correlated neuropil signal as ``n_modes`` spatial × temporal pairs.

    Spatial modes are white noise smoothed over ``scale_px`` (unit sd each); their traces mix
    the population's mean calcium (weight ``coupling``) with slow noise (~1 s), unit sd. The
    sum ``spatial.T @ traces`` has a per-pixel sd of ~1 (before the caller's scaling).

    Returns
    -------
    spatial : (n_modes, rows, cols) float64
    traces : (n_modes, n_frames) float64
    """
    spatial = np.empty((n_modes, rows, cols))
    for j in range(n_modes):
        f = gaussian_filter(gen.standard_normal((rows, cols)), sigma=scale_px, mode="reflect")
        spatial[j] = (f - f.mean()) / max(f.std(), 1e-12)
    spatial /= math.sqrt(max(n_modes, 1))
    pop = population - population.mean()
    pop = pop / max(pop.std(), 1e-12)
    own = smooth_traces(gen, n_modes, n_frames, sigma_frames=1.0 * fr)
    traces = coupling * pop[None, :] + math.sqrt(1.0 - coupling**2) * own
    return spatial, traces


def crossing_curve(gen: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Points (n, 2) of a quadratic Bezier curve from one edge of the field to the opposite one,
    a vessel's axis; drawn left-right or top-bottom with equal odds."""
    if gen.random() < 0.5:
        p0 = np.array([gen.uniform(0.1, 0.9) * rows, -2.0])
        p2 = np.array([gen.uniform(0.1, 0.9) * rows, cols + 1.0])
    else:
        p0 = np.array([-2.0, gen.uniform(0.1, 0.9) * cols])
        p2 = np.array([rows + 1.0, gen.uniform(0.1, 0.9) * cols])
    p1 = np.array([gen.uniform(0.2, 0.8) * rows, gen.uniform(0.2, 0.8) * cols])
    t = np.linspace(0.0, 1.0, 4 * (rows + cols))[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def vessel_profiles(gen: np.random.Generator, rows: int, cols: int, *, n: int,
                    width_px: tuple[float, float]) -> np.ndarray:
    """``(n, rows, cols)`` vessel absorption profiles in [0, 1]: smooth curves across the field.

    Each vessel is a quadratic Bézier curve from one edge to the opposite one with a Gaussian
    cross-section of sd ``U(width_px)/2``; the profile is 1 on the vessel's axis.
    """
    grid = np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), axis=-1).reshape(-1, 2)
    out = np.zeros((n, rows, cols))
    for j in range(n):
        curve = crossing_curve(gen, rows, cols)
        sd = 0.5 * gen.uniform(*width_px)
        dist, _ = cKDTree(curve).query(grid, distance_upper_bound=5.0 * sd)
        out[j] = np.exp(-0.5 * (dist.reshape(rows, cols) / sd) ** 2)
    return out


def vessel_traces(gen: np.random.Generator, n: int, n_frames: int, *, fr: float) -> np.ndarray:
    """``(n, n_frames)`` relative absorption of each vessel over time, mean 1.

    Vasomotion (a sine at 0.1–0.3 Hz, ±15%), slow noise (±8%) and the heartbeat (8–10 Hz,
    ±4%, sampled at the frame times, so aliased as in a real recording).
    """
    t = np.arange(n_frames) / fr
    f_vaso = gen.uniform(0.1, 0.3, size=(n, 1))
    f_heart = gen.uniform(8.0, 10.0, size=(n, 1))
    phase = gen.uniform(0.0, 2 * np.pi, size=(n, 2))
    slow = smooth_traces(gen, n, n_frames, sigma_frames=2.0 * fr)
    return (1.0 + 0.15 * np.sin(2 * np.pi * f_vaso * t + phase[:, :1]) + 0.08 * slow
            + 0.04 * np.sin(2 * np.pi * f_heart * t + phase[:, 1:]))


def illumination(gen: np.random.Generator, rows: int, cols: int, *, texture_px: float) -> np.ndarray:
    """``(rows, cols)`` resting fluorescence pattern, mean 1.

    The LED's falloff and the lens's vignetting (a wide Gaussian, off-centre, ~±25% across a
    256-px crop) times a faint tissue texture (±8%, smoothed over ``texture_px``).
    """
    size = float(max(rows, cols))
    cr, cc = gen.uniform(0.3, 0.7) * rows, gen.uniform(0.3, 0.7) * cols
    r2 = (np.arange(rows)[:, None] - cr) ** 2 + (np.arange(cols)[None, :] - cc) ** 2
    field = np.exp(-0.5 * r2 / (0.9 * size) ** 2)
    tex = gaussian_filter(gen.standard_normal((rows, cols)), sigma=texture_px, mode="reflect")
    field *= 1.0 + 0.08 * tex / max(tex.std(), 1e-12)
    return field / field.mean()


def rigid_shifts(gen: np.random.Generator, n_frames: int, *, fr: float, sd_px: float) -> np.ndarray:
    """``(n_frames, 2)`` sub-pixel (row, col) translations of the brain under the lens, px.

    A slow drift (Ornstein–Uhlenbeck, ~2 s correlation time) with sd ``sd_px`` per axis plus a
    small frame-to-frame jitter (0.15·sd); zero at no motion.
    """
    if sd_px <= 0:
        return np.zeros((n_frames, 2))
    a = math.exp(-1.0 / (2.0 * fr))
    drive = gen.standard_normal((n_frames, 2)) * math.sqrt(1.0 - a * a)
    drive[0] = gen.standard_normal(2)
    drift = lfilter([1.0], [1.0, -a], drive, axis=0)
    return sd_px * (drift + 0.15 * gen.standard_normal((n_frames, 2)))


def settling_drift(gen: np.random.Generator, n_frames: int, *, total_px: float) -> np.ndarray:
    """``(n_frames, 2)`` slow (row, col) drift over the whole recording, px: ``total_px`` from the first frame to the
    last along a random direction, fast at first and levelling off (e^(-3t/T)), as a miniscope's baseplate or the
    tissue under the lens settles over a session; zero at no drift."""
    if total_px <= 0 or n_frames < 2:
        return np.zeros((n_frames, 2))
    angle = gen.uniform(0.0, 2.0 * math.pi)
    t = np.arange(n_frames) / (n_frames - 1)
    settled = -np.expm1(-3.0 * t) / -math.expm1(-3.0)
    return total_px * settled[:, None] * np.array([math.sin(angle), math.cos(angle)])


def bleaching_curve(n_frames: int, *, fraction: float) -> np.ndarray:
    """``(n_frames,)`` fluorescence remaining: 1 at the first frame, ``1 − fraction`` at the last.

    A single exponential; all fluorescence (resting and activity) bleaches together.
    """
    if fraction <= 0 or n_frames < 2:
        return np.ones(n_frames)
    rate = -math.log(1.0 - fraction) / (n_frames - 1)
    return np.exp(-rate * np.arange(n_frames))
