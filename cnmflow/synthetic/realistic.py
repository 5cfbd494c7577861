"""A one-photon miniscope movie as the optics draw it, with ground truth.

:func:`simulate_realistic_1p` renders, frame chunk by frame chunk, the expected photon count

``λ(t) = bleach(t) · shift_t[ F0 · illumination · (1 − Σ_v contrast_v·vessel_v·m_v(t))
          + neuropil(t) + Σ_k a_k c_k(t) + Σ_j o_j c_j(t) ]``

and draws the movie as ``Poisson(λ) + Normal(0, read_noise)`` (photo-electrons, float32):

- ``a_k``: the in-focus somata (``|Δz| ≤ in_focus_um``), the neurons of the ground truth;
  ``o_j``: cells 25–80 µm below or 50–80 µm above the focal plane, broad and dim, part
  of the background. Both are ellipsoidal somata convolved with the depth-dependent scattering PSF
  of :mod:`cnmflow.synthetic.optics` (bright core, long halo).
- the neuropil, vessels, illumination, motion and bleaching of :mod:`cnmflow.synthetic.tissue`.

Presets (:data:`PRESETS`): ``"ca1"`` — CA1 pyramidal layer under a GRIN lens, 1.65 µm/px
(Miniscope V4), somata of radius ~8 µm (~5 px; gSig 6 / gSiz 25 match them), ~160 in focus per
256² at 10 Hz; ``"cortex_l23"`` — L2/3 at 2.5 µm/px, somata of radius ~6 µm (~2.4 px; gSig 3),
~140 per 256² at 20 Hz. Brightness: each cell's peak ΔF at its footprint's peak is
``U_log(peak_snr)`` times the noise sd at the mean resting level, so the dimmest cells sit at
the noise.

Ground truth (:class:`RealisticTruth`, a :class:`~cnmflow.synthetic.GroundTruth`): footprints
max-normalised to 1 as they appear after the blur, calcium in photo-electrons at the footprint's
peak (unbleached; the movie multiplies it by ``bleaching``), spikes, centres, focal offsets,
the per-frame shifts and the background as a low-rank product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse

from cnmflow.synthetic import tissue
from cnmflow.synthetic.checks import check_positive, preset_with_overrides
from cnmflow.synthetic.gaussian import GroundTruth, SimulatedMovie, ar_coefficients
from cnmflow.synthetic.layout import child_generators, place_centers
from cnmflow.synthetic.optics import Optics, cell_image, soma_image
from cnmflow.synthetic.rendering import (check_movie_arguments, dense_images, log_uniform, paste, pasted_columns,
                                         render_frames)

__all__ = ["RealisticConfig", "RealisticTruth", "PRESETS", "simulate_realistic_1p"]

@dataclass(frozen=True)
class RealisticConfig:
    """Everything :func:`simulate_realistic_1p` draws from (µm, Hz, photo-electrons).

    Densities are per 256 × 256 pixels and scale with the field of view.
    """

    optics: Optics
    n_neurons: int  # in-focus cells per 256² (the ground truth)
    n_out_of_focus: int  # cells off the focal plane per 256² (below_um, above_um)
    soma_radius_um: float
    fr: float
    decay_time: float
    rate_hz: float  # median event rate
    soma_jitter: float = 0.15  # radius × U(1 ± jitter)
    aspect: tuple[float, float] = (1.0, 1.4)  # long / short semi-axis
    in_focus_um: float = 5.0
    # Off-plane cells: 25–80 µm below the focal plane, or 50–80 µm above it (a third of them).
    # A cell above the plane has less tissue to scatter its light, so at equal defocus it looks
    # sharper than one below (at −30 µm as sharp as in focus); only clearly broader, dimmer
    # cells are placed off the plane (half-max radius ≥ ~1.3× an in-focus cell's, peak ≤ ~0.5×
    # at equal brightness), which keeps "in focus" — the ground truth — unambiguous.
    below_um: tuple[float, float] = (25.0, 80.0)
    above_um: tuple[float, float] = (50.0, 80.0)
    above_fraction: float = 1.0 / 3.0
    min_distance_um: float | None = None  # between in-focus centres; default 1.8 radii
    p: int = 1
    burst_mean: float = 1.0
    peak_snr: tuple[float, float] = (1.5, 10.0)  # log-uniform
    baseline_photons: float = 600.0  # mean resting level, e⁻ per pixel per frame
    read_noise: float = 5.0  # e⁻ rms (scientific CMOS sensors: ~1–6 e⁻)
    resting_contrast: float = 0.1  # soma's resting fluorescence over its surround, × F0
    neuropil_level: float = 0.02  # sd of the neuropil fluctuation, × F0
    neuropil_scale_um: float = 40.0
    n_neuropil_modes: int = 8
    n_vessels: int = 2
    vessel_width_um: tuple[float, float] = (10.0, 30.0)
    vessel_contrast: tuple[float, float] = (0.2, 0.45)
    nucleus_fraction: float = 0.55
    nucleus_contrast: float = 0.0  # > 0: a dim nucleus (cytosolic indicator)


PRESETS: dict[str, RealisticConfig] = {
    # CA1 pyramidal layer ~66 µm under a GRIN lens, Miniscope V4 pixels; GCaMP6f at 10 Hz.
    "ca1": RealisticConfig(
        optics=Optics(pixel_um=1.65, focal_depth_um=66.0), n_neurons=160, n_out_of_focus=100,
        soma_radius_um=8.25, fr=10.0, decay_time=0.4, rate_hz=0.15,
    ),
    # Cortex L2/3 ~80 µm under the lens, 2.5 µm pixels; smaller somata, GCaMP6f at 20 Hz.
    "cortex_l23": RealisticConfig(
        optics=Optics(pixel_um=2.5, focal_depth_um=80.0), n_neurons=140, n_out_of_focus=90,
        soma_radius_um=6.0, fr=20.0, decay_time=0.4, rate_hz=0.2,
    ),
}


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality, hashable
class RealisticTruth(GroundTruth):
    """:class:`GroundTruth` plus what the realistic simulator adds.

    ``GroundTruth.background()`` / ``neurons()`` give the frames before motion, bleaching and
    noise. ``background_spatial[j]`` is named by ``background_labels[j]`` ("resting",
    "vessel<i>", "neuropil<i>", "cell<i>" for out-of-focus cells).
    """

    configuration: str = ""
    pixel_um: float = 1.0
    defocus_um: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) µm, + = deeper
    peak_snr: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,)
    shifts: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (T, 2) px, (row, col)
    bleaching: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (T,) fluorescence left
    background_labels: tuple[str, ...] = ()
    out_of_focus_defocus_um: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_oof,)
    read_noise: float = 0.0


# --------------------------------------------------------------------------- helpers
def _check_config(name: str, overrides: dict) -> RealisticConfig:
    return preset_with_overrides(PRESETS, name, overrides, simulator="realistic")


def camera(gen: np.random.Generator, *, read_noise: float):
    """A scientific CMOS sensor: photo-electrons are Poisson, plus Gaussian read noise (e⁻ rms)."""
    def draw(lam: np.ndarray) -> np.ndarray:
        frames = gen.poisson(lam).astype(np.float32)
        frames += np.float32(read_noise) * gen.standard_normal(frames.shape, dtype=np.float32)
        return frames
    return draw


def _cells(gen, centers, defocus, cfg: RealisticConfig, rows: int, cols: int):
    """Max-normalised images of each cell on the frame, its in-focus peak-per-photon ratio,
    and its semi-axes (px). Returns a CSC ``(rows*cols, n)`` matrix in C pixel order."""
    o = cfg.optics
    n = len(centers)
    radius = cfg.soma_radius_um / o.pixel_um * gen.uniform(1 - cfg.soma_jitter, 1 + cfg.soma_jitter, n)
    aspect = gen.uniform(*cfg.aspect, n)
    axes = np.column_stack([radius * np.sqrt(aspect), radius / np.sqrt(aspect)])
    theta = gen.uniform(0.0, np.pi, n)
    pieces, dim = [], np.empty(n)
    for k in range(n):
        h = o.support_px(defocus[k]) + int(math.ceil(axes[k].max())) + 2
        frac = centers[k] - np.round(centers[k])
        soma = soma_image(tuple(axes[k]), theta[k], offset_px=tuple(frac), half_width_px=h,
                          nucleus_fraction=cfg.nucleus_fraction, nucleus_contrast=cfg.nucleus_contrast)
        img = cell_image(soma, o.psf(defocus[k], half_width_px=h))
        in_focus = img if abs(defocus[k]) <= cfg.in_focus_um else cell_image(soma, o.psf(0.0, half_width_px=h))
        # dimming relative to the same soma in focus: same photons spread wider, excited less
        dim[k] = o.excitation(defocus[k]) * in_focus.sum() / img.sum()
        pieces.append(paste(img, centers[k], rows, cols))
    return pasted_columns(pieces, rows, cols), dim, axes


# --------------------------------------------------------------------------- simulator
def simulate_realistic_1p(
    configuration: str = "ca1",
    *,
    shape: Sequence[int] = (256, 256),
    n_frames: int = 1000,
    motion_px: float = 0.0,
    drift_px: float = 0.0,
    bleach_fraction: float = 0.0,
    rng: int | np.random.Generator | None = 0,
    out: np.ndarray | None = None,
    render: bool = True,
    **overrides,
) -> SimulatedMovie:
    """Simulate a one-photon miniscope movie of ``configuration`` (see the module docstring).

    Parameters
    ----------
    configuration : {"ca1", "cortex_l23"}
        The preset; keyword ``overrides`` replace any :class:`RealisticConfig` field
        (e.g. ``n_neurons=40``, ``n_vessels=0``, ``nucleus_contrast=0.4``).
    shape : (rows, cols)
        Frame size in pixels; cell counts scale with the area relative to 256².
    n_frames : int
        Number of frames (at the preset's ``fr``).
    motion_px : float
        sd (px, per axis) of the rigid brain motion; 0 = none. ``truth.shifts[t]`` is the
        (row, col) translation applied to frame t: ``movie[t](x) ≈ scene(x − shifts[t])``.
    drift_px : float
        Slow drift (px) from the first frame to the last, settling over the recording (a baseplate or the tissue
        settling), added to the motion in ``truth.shifts``; 0 = none.
    bleach_fraction : float
        Fraction of the fluorescence bleached by the last frame (0 = none), in ``truth.bleaching``.
    rng : int, numpy.random.Generator or None
        The only source of randomness: equal arguments give bit-identical movies.
    out : numpy.ndarray, optional
        ``(n_frames, rows, cols)`` float32 array (e.g. ``numpy.lib.format.open_memmap``) to
        render into, so that a long movie never has to fit in memory.
    render : bool
        False: draw the ground truth only (the same random draws, so the same truth as a rendered
        run of the same arguments) and skip the movie's rendering. The returned ``movie`` is then
        ``out`` as given, untouched, or, without ``out``, an empty ``(0, rows, cols)`` float32 array.

    Returns
    -------
    SimulatedMovie
        ``movie`` (T, rows, cols) float32 photo-electrons and a :class:`RealisticTruth`.
    """
    cfg = _check_config(configuration, overrides)
    rows, cols, T, out = check_movie_arguments(shape, n_frames, motion_px=motion_px, bleach_fraction=bleach_fraction,
                                               out=out, frames_kept=render)
    check_positive("drift_px", drift_px, allow_zero=True)
    g_layout, g_shape, g_activity, g_background, g_motion, g_noise = child_generators(rng, 6)
    o = cfg.optics
    area = rows * cols / 256.0**2
    n_in, n_oof = int(round(cfg.n_neurons * area)), int(round(cfg.n_out_of_focus * area))
    g = ar_coefficients(fr=cfg.fr, decay_time=cfg.decay_time, p=cfg.p)

    # ---- where the cells are
    radius_px = cfg.soma_radius_um / o.pixel_um
    min_d = 1.8 * radius_px if cfg.min_distance_um is None else cfg.min_distance_um / o.pixel_um
    centers = place_centers(g_layout, n_in, rows, cols, min_distance=min_d, margin=radius_px)
    defocus = g_layout.uniform(-cfg.in_focus_um, cfg.in_focus_um, n_in)
    oof_centers = np.column_stack([g_layout.uniform(0, rows - 1, n_oof), g_layout.uniform(0, cols - 1, n_oof)])
    above = g_layout.random(n_oof) < cfg.above_fraction
    oof_defocus = np.where(above, -g_layout.uniform(*cfg.above_um, n_oof), g_layout.uniform(*cfg.below_um, n_oof))

    # ---- how they look and how bright they are
    cells, _, axes = _cells(g_shape, centers, defocus, cfg, rows, cols)
    oof_cells, oof_dim, _ = _cells(g_shape, oof_centers, oof_defocus, cfg, rows, cols)
    noise_sd = math.sqrt(cfg.baseline_photons + cfg.read_noise**2)
    peak_snr = log_uniform(g_activity, *cfg.peak_snr, n_in)
    oof_peak = noise_sd * log_uniform(g_activity, *cfg.peak_snr, n_oof) * oof_dim

    # ---- activity
    spikes, calcium = tissue.calcium_activity(g_activity, n_in + n_oof, T, fr=cfg.fr, g=g, rate_hz=cfg.rate_hz,
                                               burst_mean=cfg.burst_mean)
    scale = np.r_[noise_sd * peak_snr, oof_peak]
    spikes, calcium = spikes * scale[:, None], calcium * scale[:, None]

    # ---- background: resting fluorescence, vessels, neuropil, out-of-focus cells
    f0 = cfg.baseline_photons * tissue.illumination(g_background, rows, cols, texture_px=20.0 / o.pixel_um)
    resting = f0 * (1.0 + cfg.resting_contrast * np.asarray(cells.sum(axis=1)).reshape(rows, cols).clip(0, 1))
    width = tuple(w / o.pixel_um for w in cfg.vessel_width_um)
    vessels = tissue.vessel_profiles(g_background, rows, cols, n=cfg.n_vessels, width_px=width)
    contrast = g_background.uniform(*cfg.vessel_contrast, cfg.n_vessels)
    vessel_t = tissue.vessel_traces(g_background, cfg.n_vessels, T, fr=cfg.fr)
    np_spatial, np_traces = tissue.neuropil(
        g_background, rows, cols, T, n_modes=cfg.n_neuropil_modes, scale_px=cfg.neuropil_scale_um / o.pixel_um,
        fr=cfg.fr, population=calcium[:n_in].mean(axis=0),
    )
    bg_spatial = np.concatenate([resting[None], -contrast[:, None, None] * vessels * resting[None],
                                 cfg.neuropil_level * cfg.baseline_photons * np_spatial,
                                 dense_images(oof_cells, rows, cols)])
    bg_temporal = np.concatenate([np.ones((1, T)), vessel_t, np_traces, calcium[n_in:]])
    labels = (("resting",) + tuple(f"vessel{i}" for i in range(cfg.n_vessels))
              + tuple(f"neuropil{i}" for i in range(cfg.n_neuropil_modes)) + tuple(f"cell{i}" for i in range(n_oof)))

    # ---- the movie
    shifts = tissue.rigid_shifts(g_motion, T, fr=cfg.fr, sd_px=float(motion_px))
    shifts = shifts + tissue.settling_drift(g_motion, T, total_px=float(drift_px))  # drawn after: old seeds unchanged
    bleach = tissue.bleaching_curve(T, fraction=float(bleach_fraction))
    n_bg_dense = 1 + cfg.n_vessels + cfg.n_neuropil_modes
    spatial = scipy.sparse.hstack([
        cells, scipy.sparse.csc_matrix(bg_spatial[:n_bg_dense].reshape(n_bg_dense, -1).T), oof_cells,
    ]).tocsr()
    temporal = np.concatenate([calcium[:n_in], bg_temporal])
    if render:   # the noise draws come from their own generator: skipping them leaves the truth's draws as they are
        render_frames(spatial=spatial, temporal=temporal, rows=rows, cols=cols, bleach=bleach, shifts=shifts,
                      detector=camera(g_noise, read_noise=cfg.read_noise), out=out)

    footprints = dense_images(cells, rows, cols)
    truth = RealisticTruth(
        footprints=footprints, calcium=calcium[:n_in].astype(np.float32), spikes=spikes[:n_in].astype(np.float32),
        centers=centers, background_mean=np.tensordot(bg_temporal.mean(axis=1), bg_spatial, axes=1).astype(np.float32),
        fr=float(cfg.fr), decay_time=float(cfg.decay_time), g=tuple(float(x) for x in g), noise_sd=noise_sd,
        sigmas=axes, background_spatial=bg_spatial.astype(np.float32),
        background_temporal=bg_temporal.astype(np.float32),
        kind="1p-realistic", configuration=configuration, pixel_um=float(o.pixel_um), defocus_um=defocus,
        peak_snr=peak_snr, shifts=shifts, bleaching=bleach, background_labels=labels,
        out_of_focus_defocus_um=oof_defocus, read_noise=float(cfg.read_noise),
    )
    return SimulatedMovie(movie=out, truth=truth)
