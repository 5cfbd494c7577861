"""How a two-photon microscope images a soma: an optical section through it, and a photomultiplier.

Two-photon excitation confines fluorescence to the focal volume (excitation ∝ intensity², so
out-of-focus light is not excited), and a point-scanning microscope credits every emitted photon
to the pixel being scanned, scattered or not (Denk, Strickler & Webb 1990, Science 248:73;
Helmchen & Denk 2005, Nat Methods 2:932). So, unlike a miniscope's image, a cell's footprint has
no scattering halo: it is the cell's dye weighted by the axial point-spread function at the
depth of the scan plane,

``image(x, y) = ∫ ρ(x, y, z) · exp(−(z − Δz)² / 2σ_z²) dz``  (per unit peak excitation)

with ``ρ`` = 1 in the cytosol of an ellipsoidal soma and ``1 − nucleus_contrast`` in its nucleus.
Cytosolic indicators such as GCaMP6 are largely excluded from the nucleus, so a soma cut through
its middle is a ring around a dark nucleus (Chen et al. 2013, Nature 499:295; Tian et al. 2009,
Nat Methods 6:875), and a cell cut near its top or bottom is a smaller, dimmer disc. The axial
profile is a Gaussian of FWHM ``axial_fwhm_um``: ~1–2 µm for a diffraction-limited 0.8–1.0 NA
focus at 920 nm, 3–6 µm with the underfilled back apertures and depth-degraded foci of typical
in-vivo cortex imaging (Zipfel, Williams & Webb 2003, Nat Biotechnol 21:1369). The lateral
resolution (~0.5–0.8 µm) is below a typical pixel (~1 µm) and enters as a small Gaussian blur.

Photons are counted by a photomultiplier: a Poisson number of photo-electrons, each amplified by a
random gain, so the variance is the mean times an excess-noise factor ``1 + 1/k`` (~1.2–1.5 for
GaAsP tubes), plus a little electronic noise.

Lengths are µm unless a name ends in ``_px``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import ndtr

from cnmflow.synthetic.optics import SUPERSAMPLE, ellipse_distance2

__all__ = ["SectionOptics", "section_image", "photomultiplier"]

_FWHM_PER_SD = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class SectionOptics:
    """Two-photon imaging geometry (see the module docstring for the model and its sources)."""

    pixel_um: float = 1.17
    axial_fwhm_um: float = 4.0
    lateral_fwhm_um: float = 0.6

    @property
    def axial_sd_um(self) -> float:
        return self.axial_fwhm_um / _FWHM_PER_SD

    @property
    def lateral_sd_px(self) -> float:
        return self.lateral_fwhm_um / _FWHM_PER_SD / self.pixel_um


def _slab(half_thickness: np.ndarray, dz_um: float, sd_um: float) -> np.ndarray:
    """∫ over |z| ≤ half_thickness of a unit-peak Gaussian centred at dz (µm), for every pixel."""
    inside = half_thickness > 0
    out = np.zeros_like(half_thickness)
    h = half_thickness[inside]
    out[inside] = ndtr((h - dz_um) / sd_um) - ndtr((-h - dz_um) / sd_um)
    return out * sd_um * math.sqrt(2.0 * math.pi)


def section_image(
    optics: SectionOptics,
    semi_axes_px: tuple[float, float],
    axial_semi_axis_um: float,
    theta: float,
    dz_um: float,
    *,
    offset_px: tuple[float, float] = (0.0, 0.0),
    half_width_px: int,
    nucleus_fraction: float = 0.0,
    nucleus_contrast: float = 0.0,
) -> np.ndarray:
    """A soma's fluorescence in a scan plane ``dz_um`` from its centre, on a ``(2h+1)²`` grid.

    Values are µm of dye seen by a unit-peak axial profile: a soma's cytosol fully inside the
    focal volume reads ``σ_z·√(2π)``; only ratios between cells matter to a simulator.

    Parameters
    ----------
    semi_axes_px : (float, float)
        In-plane semi-axes (px), the first along ``theta`` (radians from the row axis).
    axial_semi_axis_um : float
        Semi-axis along the optical axis (µm).
    dz_um : float
        Distance of the scan plane from the soma's centre (µm).
    offset_px : (float, float)
        Sub-pixel offset of the centre from the grid's centre pixel (rows, cols).
    nucleus_fraction, nucleus_contrast : float
        The nucleus is a concentric ellipsoid ``nucleus_fraction`` times the soma's size holding
        ``1 − nucleus_contrast`` of the cytosol's dye per volume.
    """
    h, s = int(half_width_px), SUPERSAMPLE
    q = ellipse_distance2(semi_axes_px, theta, offset_px=offset_px, half_width_px=h)
    sd = optics.axial_sd_um
    c = float(axial_semi_axis_um)
    img = _slab(c * np.sqrt(np.clip(1.0 - q, 0.0, None)), dz_um, sd)
    f = float(nucleus_fraction)
    if nucleus_contrast > 0 and f > 0:
        img -= nucleus_contrast * _slab(f * c * np.sqrt(np.clip(1.0 - q / (f * f), 0.0, None)), dz_um, sd)
    img = gaussian_filter(img, sigma=optics.lateral_sd_px * s, mode="constant")
    return img.reshape(2 * h + 1, s, 2 * h + 1, s).mean(axis=(1, 3))


def photomultiplier(gen: np.random.Generator, *, excess_noise: float, electronic_noise: float, gain: float = 1.0):
    """A detector drawing ``gain · Σ_{Poisson(λ) electrons} Gamma(k, 1/k)`` + Normal(0, electronic_noise).

    ``excess_noise`` is the variance factor ``1 + 1/k`` (> 1); the output is in photon units × ``gain``.
    """
    k = 1.0 / (float(excess_noise) - 1.0)

    def draw(lam: np.ndarray) -> np.ndarray:
        electrons = gen.poisson(lam)
        frames = gen.gamma(electrons * k, 1.0 / k).astype(np.float32)
        frames *= np.float32(gain)
        frames += np.float32(electronic_noise) * gen.standard_normal(frames.shape, dtype=np.float32)
        return frames

    return draw
