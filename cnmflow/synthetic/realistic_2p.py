"""A two-photon movie of cortex as a point-scanning microscope records it, with ground truth.

:func:`simulate_realistic_2p` renders, frame chunk by frame chunk, the expected photon count

``λ(t) = bleach(t) · shift_t[ R + Σ_k a_k c_k(t) + N · (1 + level · Σ_j n_j m_j(t)) + Σ_i u_i c_i(t) ]``

and draws the movie through a photomultiplier (:func:`cnmflow.synthetic.two_photon.photomultiplier`):

- ``a_k``: the somata the scan plane cuts through (centres within ``in_plane_um``), the ground
  truth; each is its optical section (:func:`~cnmflow.synthetic.two_photon.section_image`): a
  ring around a dark nucleus, sharp-edged, no halo. ``c_k`` is its ΔF: the cell's resting
  fluorescence times ΔF/F, whose peak is log-uniform in ``peak_dff``.
- ``u_i``: cells whose top or bottom only grazes the plane (``grazing_um`` from it): small, dim
  discs, part of the background.
- ``R``: the resting fluorescence of every cell and of the neuropil, dark where a vessel's lumen
  crosses the plane. ``N``: the neuropil (dendrites and axons, in focus in two-photon images) as
  a fine texture filling the space between somata, its ΔF/F smooth over ``neuropil_scale_um``
  and following the population (:func:`cnmflow.synthetic.tissue.neuropil`); with ``neuropil_haze``
  part of its light comes from out of focus, blurred over ``haze_um``, and lies over somata too. Neuropil is what
  contaminates a soma's pixels in two-photon data (suite2p subtracts 0.7 × its neuropil trace:
  Pachitariu et al. 2017, bioRxiv 061507).
- rigid motion and bleaching from :mod:`cnmflow.synthetic.tissue`.

Preset (:data:`PRESETS_2P`): ``"cortex_l23_2p"`` — mouse cortex L2/3 with GCaMP6s (decay
≈ 0.8 s after one spike: half-decay ~0.55 s in vivo, Chen et al. 2013, Nature 499:295) at
30 Hz, 1.17 µm pixels (a 600 µm field on 512 px), somata of radius ~6.5 µm (~5.5 px); ~50 cut
by the plane per 256² (neuron density ~9·10⁴ /mm³ in mouse cortex, Keller, Erö & Markram
2018, Front Neuroanat 12:83, about 70% of them labelled, in the 9 µm slab whose cells' centres
lie within 4.5 µm of the plane). Resting levels of a few photons per pixel per frame, as in
resonant-scanning recordings. The cells' centres in 3-D are at least ``min_distance_um`` apart. ``neuropil_haze``
0.7: a soma's pixels carry about 0.6 of its surround's neuropil fluctuation, as suite2p's and Chen et al.'s
contamination ratio of 0.7 says somata in tissue do (before December 8 2026 the preset had none, 0.14).

Ground truth (:class:`~cnmflow.synthetic.RealisticTruth`): footprints max-normalised to 1,
calcium in photons at the footprint's peak (unbleached), spikes, centres, each cell's distance
from the plane (``defocus_um``), the per-frame shifts and the background as a low-rank product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse
from scipy.ndimage import gaussian_filter

from cnmflow.errors import ParameterError
from cnmflow.synthetic import tissue
from cnmflow.synthetic.gaussian import SimulatedMovie, ar_coefficients
from cnmflow.synthetic.checks import check_fraction, check_positive, preset_with_overrides
from cnmflow.synthetic.layout import child_generators
from cnmflow.synthetic.realistic import RealisticTruth
from cnmflow.synthetic.rendering import (check_movie_arguments, dense_images, log_uniform, paste, pasted_columns,
                                         render_frames)
from cnmflow.synthetic.two_photon import SectionOptics, photomultiplier, section_image

__all__ = ["TwoPhotonConfig", "PRESETS_2P", "simulate_realistic_2p"]


@dataclass(frozen=True)
class TwoPhotonConfig:
    """Everything :func:`simulate_realistic_2p` draws from (µm, Hz, photons per pixel per frame).

    Densities are per 256 × 256 pixels and scale with the field of view.
    """

    optics: SectionOptics
    n_neurons: int  # cells whose centre lies within in_plane_um of the plane, per 256² (the ground truth)
    n_grazing: int  # cells only grazing the plane, per 256²
    soma_radius_um: float
    fr: float
    decay_time: float
    rate_hz: float  # median event rate
    soma_jitter: float = 0.15  # radius × U(1 ± jitter)
    aspect: tuple[float, float] = (1.0, 1.3)  # long / short in-plane semi-axis
    in_plane_um: float = 4.5
    # Grazing cells: centre 7–10 µm from the plane, so the plane cuts a cap of the soma: at most ~0.4 of an
    # in-plane cell's peak and no nucleus. None sits 4.5–7 µm away, which keeps the ground truth unambiguous.
    grazing_um: tuple[float, float] = (7.0, 10.0)
    min_distance_um: float = 11.0  # between cell centres in 3-D
    p: int = 1
    burst_mean: float = 1.5
    peak_dff: tuple[float, float] = (0.4, 4.0)  # log-uniform peak ΔF/F of each cell
    expression_sd: float = 0.3  # log-normal spread of the cells' indicator level
    cytosol_photons: float = 4.0  # resting photons per pixel per frame of a fully sectioned cytosol
    neuropil_photons: float = 2.5  # resting neuropil, photons per pixel per frame
    neuropil_texture_um: float = 0.8  # grain of the neuropil's dendrites and axons
    neuropil_level: float = 0.15  # sd of the neuropil's ΔF/F
    neuropil_scale_um: float = 30.0
    n_neuropil_modes: int = 8
    # Share of the neuropil's light that reaches a pixel from out of focus (the excitation's tails above and below
    # the plane), spread laterally over ~haze_um: it lies over somata and lumens too. 0: in-focus texture only.
    neuropil_haze: float = 0.0
    haze_um: float = 8.0
    n_vessels: int = 1
    vessel_width_um: tuple[float, float] = (6.0, 15.0)
    vessel_contrast: float = 0.9  # fluorescence missing at a lumen's centre
    nucleus_fraction: float = 0.6
    nucleus_contrast: float = 0.85  # nuclear exclusion of a cytosolic indicator
    excess_noise: float = 1.3  # the photomultiplier's variance factor
    electronic_noise: float = 0.1  # photons rms


PRESETS_2P: dict[str, TwoPhotonConfig] = {
    # Mouse cortex L2/3, ~200 µm deep, GCaMP6s at 30 Hz, 1.17 µm pixels.
    "cortex_l23_2p": TwoPhotonConfig(
        optics=SectionOptics(pixel_um=1.17), n_neurons=50, n_grazing=35, soma_radius_um=6.5, fr=30.0,
        decay_time=0.8, rate_hz=0.15, neuropil_haze=0.7,
    ),
}


def _check_config(name: str, overrides: dict) -> TwoPhotonConfig:
    cfg = preset_with_overrides(PRESETS_2P, name, overrides, simulator="two-photon")
    check_fraction("neuropil_haze", cfg.neuropil_haze)
    check_positive("haze_um", cfg.haze_um)
    return cfg


def _place_cells(gen: np.random.Generator, n: int, rows: int, cols: int, *, bands: tuple[tuple[float, float], ...],
                 existing: np.ndarray, min_distance_um: float, pixel_um: float, margin_px: float) -> np.ndarray:
    """``(n, 3)`` centres (row px, col px, z µm), z uniform over ``bands`` (|z| ranges, either side of the
    plane), each ``min_distance_um`` from every other and from ``existing`` in 3-D."""
    lo = np.array([margin_px, margin_px])
    hi = np.array([rows - 1 - margin_px, cols - 1 - margin_px])
    if np.any(hi <= lo):
        raise ParameterError(f"shape=({rows}, {cols}) is too small for cells of this size: give a larger shape.")
    widths = np.array([b - a for a, b in bands])
    placed = [existing]
    out = np.empty((n, 3))
    for k in range(n):
        pts = np.concatenate(placed + [out[:k]])
        for _ in range(2000):
            band = gen.choice(len(bands), p=widths / widths.sum())
            z = gen.uniform(*bands[band]) * gen.choice([-1.0, 1.0])
            cand = np.r_[gen.uniform(lo, hi), z]
            d_um = np.hypot(np.hypot(pts[:, 0] - cand[0], pts[:, 1] - cand[1]) * pixel_um, pts[:, 2] - cand[2])
            if not len(d_um) or d_um.min() >= min_distance_um:
                out[k] = cand
                break
        else:
            raise ParameterError(
                f"{n} cells do not fit in shape=({rows}, {cols}) at min_distance_um={min_distance_um}: "
                "use fewer cells or a larger shape."
            )
    return out


def _sections(gen, centers: np.ndarray, cfg: TwoPhotonConfig, rows: int, cols: int):
    """Each cell's section image (CSC ``(rows*cols, n)``, C pixel order, µm of dye), with its nucleus dark
    and filled (the space it takes from the neuropil), and its in-plane semi-axes (px)."""
    o = cfg.optics
    n = len(centers)
    radius_um = cfg.soma_radius_um * gen.uniform(1 - cfg.soma_jitter, 1 + cfg.soma_jitter, n)
    aspect = gen.uniform(*cfg.aspect, n)
    axes = np.column_stack([radius_um * np.sqrt(aspect), radius_um / np.sqrt(aspect)]) / o.pixel_um
    theta = gen.uniform(0.0, np.pi, n)
    pieces: dict[bool, list] = {True: [], False: []}   # dark nucleus or filled
    for k in range(n):
        h = int(math.ceil(axes[k].max() + 3 * o.lateral_sd_px)) + 2
        frac = tuple(centers[k, :2] - np.round(centers[k, :2]))
        for dark in (True, False):
            img = section_image(o, tuple(axes[k]), radius_um[k], theta[k], centers[k, 2], offset_px=frac,
                                half_width_px=h, nucleus_fraction=cfg.nucleus_fraction,
                                nucleus_contrast=cfg.nucleus_contrast if dark else 0.0)
            img[img < 1e-4 * max(img.max(), 1e-12)] = 0.0
            pieces[dark].append(paste(img, centers[k, :2], rows, cols))
    return pasted_columns(pieces[True], rows, cols), pasted_columns(pieces[False], rows, cols), axes


def _neuropil_rest(gen, rows: int, cols: int, occupied: np.ndarray, cfg: TwoPhotonConfig) -> np.ndarray:
    """Resting neuropil (photons): a fine non-negative texture, absent where a soma fills the plane."""
    grain = gaussian_filter(gen.standard_normal((rows, cols)), sigma=cfg.neuropil_texture_um / cfg.optics.pixel_um)
    grain = 1.0 + 0.5 * grain / max(grain.std(), 1e-12)
    return cfg.neuropil_photons * np.clip(grain, 0.0, None) * np.clip(1.0 - occupied, 0.0, 1.0)


def _with_haze(in_focus: np.ndarray, cfg: TwoPhotonConfig) -> np.ndarray:
    """The neuropil's light as the detector sees it: ``1 − neuropil_haze`` of it from the texture in the plane, the
    rest from neuropil above and below, blurred over ``haze_um`` — so a soma's or a lumen's pixels carry about
    ``neuropil_haze`` × their surround's neuropil (suite2p subtracts 0.7 × the surround's trace, the contamination
    ratio of Chen et al. 2013). The total light is unchanged; no random draw is taken (same seed, same cells)."""
    haze = float(cfg.neuropil_haze)
    if haze == 0.0:
        return in_focus
    blurred = gaussian_filter(in_focus, sigma=cfg.haze_um / cfg.optics.pixel_um, mode="reflect")
    return (1.0 - haze) * in_focus + haze * blurred


def simulate_realistic_2p(
    configuration: str = "cortex_l23_2p",
    *,
    shape: Sequence[int] = (256, 256),
    n_frames: int = 2000,
    motion_px: float = 0.0,
    bleach_fraction: float = 0.0,
    rng: int | np.random.Generator | None = 0,
    out: np.ndarray | None = None,
    **overrides,
) -> SimulatedMovie:
    """Simulate a two-photon movie of ``configuration`` (see the module docstring).

    Parameters
    ----------
    configuration : {"cortex_l23_2p"}
        The preset; keyword ``overrides`` replace any :class:`TwoPhotonConfig` field (e.g.
        ``n_neurons=20``, ``nucleus_contrast=0``, ``neuropil_level=0.3``).
    shape : (rows, cols)
        Frame size in pixels; cell counts scale with the area relative to 256².
    n_frames : int
        Number of frames (at the preset's ``fr``).
    motion_px : float
        sd (px, per axis) of the rigid brain motion; 0 = none (``truth.shifts``, as in
        :func:`~cnmflow.synthetic.simulate_realistic_1p`).
    bleach_fraction : float
        Fraction of the fluorescence bleached by the last frame (0 = none).
    rng : int, numpy.random.Generator or None
        The only source of randomness: equal arguments give bit-identical movies.
    out : numpy.ndarray, optional
        ``(n_frames, rows, cols)`` float32 array to render into (e.g. a memory map).

    Returns
    -------
    SimulatedMovie
        ``movie`` (T, rows, cols) float32 in photons and a :class:`~cnmflow.synthetic.RealisticTruth`.
    """
    cfg = _check_config(configuration, overrides)
    rows, cols, T, out = check_movie_arguments(shape, n_frames, motion_px=motion_px, bleach_fraction=bleach_fraction,
                                               out=out)
    g_layout, g_shape, g_activity, g_background, g_motion, g_noise = child_generators(rng, 6)
    o = cfg.optics
    area = rows * cols / 256.0**2
    n_in, n_graze = int(round(cfg.n_neurons * area)), int(round(cfg.n_grazing * area))
    g = ar_coefficients(fr=cfg.fr, decay_time=cfg.decay_time, p=cfg.p)

    # ---- where the cells are, and how the plane cuts them
    margin = cfg.soma_radius_um / o.pixel_um
    placed = _place_cells(g_layout, n_in, rows, cols, bands=((0.0, cfg.in_plane_um),), existing=np.empty((0, 3)),
                          min_distance_um=cfg.min_distance_um, pixel_um=o.pixel_um, margin_px=margin)
    grazing = _place_cells(g_layout, n_graze, rows, cols, bands=(cfg.grazing_um,), existing=placed,
                           min_distance_um=cfg.min_distance_um, pixel_um=o.pixel_um, margin_px=0.0)
    cells, bodies, axes = _sections(g_shape, np.concatenate([placed, grazing]), cfg, rows, cols)
    peak = cells.max(axis=0).toarray().ravel()
    expression = np.exp(cfg.expression_sd * g_shape.standard_normal(n_in + n_graze))
    # the cytosol fully sectioned reads σ_z·√(2π) µm of dye: that is cytosol_photons at rest
    rest = cfg.cytosol_photons * expression / (o.axial_sd_um * math.sqrt(2.0 * math.pi))

    # ---- activity: ΔF = rest · ΔF/F, in photons at each footprint's peak
    spikes, calcium = tissue.calcium_activity(g_activity, n_in + n_graze, T, fr=cfg.fr, g=g, rate_hz=cfg.rate_hz,
                                               burst_mean=cfg.burst_mean)
    dff = log_uniform(g_activity, *cfg.peak_dff, n_in + n_graze)
    scale = rest * peak * dff
    spikes, calcium = spikes * scale[:, None], calcium * scale[:, None]

    # ---- background: resting light of cells and neuropil (none in a vessel's lumen), the neuropil's activity
    occupied = np.asarray(bodies.multiply(1.0 / np.maximum(bodies.max(axis=0).toarray().ravel(), 1e-12)).sum(axis=1))
    width = tuple(w / o.pixel_um for w in cfg.vessel_width_um)
    lumen = tissue.vessel_profiles(g_background, rows, cols, n=cfg.n_vessels, width_px=width).sum(axis=0)
    neuropil_rest = _neuropil_rest(g_background, rows, cols, occupied.reshape(rows, cols), cfg)
    neuropil_rest *= 1.0 - cfg.vessel_contrast * np.clip(lumen, 0.0, 1.0)
    neuropil_rest = _with_haze(neuropil_rest, cfg)
    resting = np.asarray(cells @ rest).reshape(rows, cols) + neuropil_rest
    np_spatial, np_traces = tissue.neuropil(
        g_background, rows, cols, T, n_modes=cfg.n_neuropil_modes, scale_px=cfg.neuropil_scale_um / o.pixel_um,
        fr=cfg.fr, population=calcium[:n_in].mean(axis=0),
    )
    np_spatial = cfg.neuropil_level * neuropil_rest[None] * np_spatial
    footprints_all = cells.multiply(1.0 / np.maximum(peak, 1e-12)).tocsc()
    bg_spatial = np.concatenate([resting[None], np_spatial, dense_images(footprints_all[:, n_in:], rows, cols)])
    bg_temporal = np.concatenate([np.ones((1, T)), np_traces, calcium[n_in:]])
    labels = (("resting",) + tuple(f"neuropil{i}" for i in range(cfg.n_neuropil_modes))
              + tuple(f"cell{i}" for i in range(n_graze)))

    # ---- the movie
    shifts = tissue.rigid_shifts(g_motion, T, fr=cfg.fr, sd_px=float(motion_px))
    bleach = tissue.bleaching_curve(T, fraction=float(bleach_fraction))
    n_dense = 1 + cfg.n_neuropil_modes
    spatial = scipy.sparse.hstack([
        footprints_all[:, :n_in], scipy.sparse.csc_matrix(bg_spatial[:n_dense].reshape(n_dense, -1).T),
        footprints_all[:, n_in:],
    ]).tocsr()
    temporal = np.concatenate([calcium[:n_in], bg_temporal])
    render_frames(spatial=spatial, temporal=temporal, rows=rows, cols=cols, bleach=bleach, shifts=shifts,
                  detector=photomultiplier(g_noise, excess_noise=cfg.excess_noise,
                                           electronic_noise=cfg.electronic_noise), out=out)

    footprints = dense_images(footprints_all[:, :n_in], rows, cols)
    noise_sd = math.sqrt(cfg.excess_noise * float(np.median(resting)) + cfg.electronic_noise**2)
    peak_in = calcium[:n_in].max(axis=1)
    truth = RealisticTruth(
        footprints=footprints, calcium=calcium[:n_in].astype(np.float32), spikes=spikes[:n_in].astype(np.float32),
        centers=placed[:, :2], background_mean=np.tensordot(bg_temporal.mean(axis=1), bg_spatial, axes=1)
        .astype(np.float32), fr=float(cfg.fr), decay_time=float(cfg.decay_time), g=tuple(float(x) for x in g),
        noise_sd=noise_sd, sigmas=axes[:n_in], background_spatial=bg_spatial.astype(np.float32),
        background_temporal=bg_temporal.astype(np.float32), kind="2p-realistic", configuration=configuration,
        pixel_um=float(o.pixel_um), defocus_um=placed[:, 2], peak_snr=peak_in / noise_sd, shifts=shifts,
        bleaching=bleach, background_labels=labels, out_of_focus_defocus_um=grazing[:, 2],
        read_noise=float(cfg.electronic_noise),
    )
    return SimulatedMovie(movie=out, truth=truth)
