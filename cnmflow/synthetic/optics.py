"""How a one-photon miniscope images a soma: shape, defocus and scattering.

A cell's footprint in the movie is its soma's projected fluorescence convolved with a
point-spread function (PSF) that depends on where the cell sits:

``psf = b·G(σ_core) + (1 − b)·G(σ_halo)``

- ``b = exp(−depth / ℓs)``, the ballistic (unscattered) fraction of the emitted light that
  leaves the tissue from ``depth`` µm below its surface (the GRIN lens face or the window).
  ℓs, the scattering length of brain tissue at GCaMP's emission (~510 nm), is ~50–100 µm
  (Helmchen & Denk 2005, Nat Methods 2:932; Oheim et al. 2001, J Neurosci Methods 111:29).
- ``σ_core = sqrt(σ_focus² + (κ·Δz)²)``: the in-focus blur σ_focus (lens resolution, the soma's
  own axial extent inside the depth of field, small-angle forward scattering; brain tissue
  scatters mostly forward, anisotropy g ≈ 0.9) plus geometric defocus: a source Δz µm off the
  focal plane is spread over a disc of radius Δz·tan(asin(NA/n)), ≈ 0.4·Δz for the 0.5-NA GRIN
  lenses miniscopes image through (n ≈ 1.36); a uniform disc of radius ρ has an sd of ρ/2
  per axis, so κ ≈ 0.2.
- ``σ_halo = sqrt(σ_core² + (α·depth)²)``: scattered photons leave the surface spread over a
  width that grows with the depth they came from.

σ_focus and α are calibrated so that a CA1 pyramidal soma (radius ~8 µm) at ~66 µm under the
lens, imaged at 1.65 µm/px (Miniscope V4: 608 px across a ~1 mm field of view, Aharoni lab,
github.com/Aharoni-Lab/Miniscope-v4), has the radial profile cnmflow issue #16 quotes for its
held-out CA1 movie (an independent, physically modelled Miniscope V4 simulation): relative to
the peak 1.0, .92, .75, .53, .34, .21, .12, .06, .03, .02 at r = 0, 2, …, 18 px, half maximum
near 6–7 px, ~31% of the footprint's sum within 5 px of its peak and ~74% within 10 px — a
bright core and a long smooth halo. Out-of-focus cells get broad and dim from the same formula
(their photons spread wider); deeper ones are also excited less: the 470 nm excitation is
attenuated with an effective coefficient of 10–20 mm⁻¹ in mouse brain (Al-Juboori et al. 2013,
PLoS ONE 8:e67626), i.e. an attenuation length ℓex ≈ 50–100 µm.

Lengths are µm unless a name ends in ``_px``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

__all__ = ["Optics", "soma_image", "cell_image", "radial_profile"]

SUPERSAMPLE = 3  # sub-pixel sampling of the soma outline


@dataclass(frozen=True)
class Optics:
    """Miniscope imaging geometry; see the module docstring for the model and its sources.

    Attributes
    ----------
    pixel_um : float
        Pixel size at the sample (µm per pixel).
    focal_depth_um : float
        Depth of the focal plane below the tissue surface (µm).
    focus_blur_um : float
        σ of the in-focus core (µm), calibrated on the CA1 profile.
    defocus_blur : float
        κ, growth of the core's σ per µm of defocus (dimensionless).
    scattering_length_um : float
        ℓs of the emitted light (µm).
    halo_spread : float
        α, growth of the halo's σ per µm of depth (dimensionless), calibrated.
    excitation_length_um : float
        ℓex, attenuation length of the excitation light (µm).
    """

    pixel_um: float = 1.65
    focal_depth_um: float = 66.0
    focus_blur_um: float = 6.4
    defocus_blur: float = 0.2
    scattering_length_um: float = 60.0
    halo_spread: float = 0.136
    excitation_length_um: float = 75.0

    def ballistic_fraction(self, defocus_um: float) -> float:
        """Fraction ``b`` of a source's light that leaves the tissue unscattered (0..1)."""
        depth = max(self.focal_depth_um + float(defocus_um), 0.0)
        return math.exp(-depth / self.scattering_length_um)

    def core_sigma_um(self, defocus_um: float) -> float:
        """σ of the PSF's core (µm) for a source ``defocus_um`` off the focal plane (+ = deeper)."""
        return math.hypot(self.focus_blur_um, self.defocus_blur * float(defocus_um))

    def halo_sigma_um(self, defocus_um: float) -> float:
        """σ of the PSF's scattering halo (µm)."""
        depth = max(self.focal_depth_um + float(defocus_um), 0.0)
        return math.hypot(self.core_sigma_um(defocus_um), self.halo_spread * depth)

    def excitation(self, defocus_um: float) -> float:
        """Excitation relative to the focal plane: ``exp(−max(Δz, 0)/ℓex)``.

        Below the focal plane the excitation is attenuated; above it it is taken as equal to
        the focal plane's (a modelling choice: an out-of-focus cell is never brighter per
        photon than an in-focus one, so "out of focus" always means broad *and* dim).
        """
        return math.exp(-max(float(defocus_um), 0.0) / self.excitation_length_um)

    def support_px(self, defocus_um: float) -> int:
        """Half-width (px) of a kernel box that holds the halo out to 4 σ."""
        return int(math.ceil(4.0 * self.halo_sigma_um(defocus_um) / self.pixel_um))

    def psf(self, defocus_um: float, *, half_width_px: int | None = None) -> np.ndarray:
        """The PSF on a ``(2h+1, 2h+1)`` pixel grid centred on the source; sums to 1.

        Parameters
        ----------
        defocus_um : float
            Distance of the source from the focal plane (µm, positive = deeper).
        half_width_px : int, optional
            ``h``; default :meth:`support_px`.
        """
        h = self.support_px(defocus_um) if half_width_px is None else int(half_width_px)
        axis = np.arange(-h, h + 1, dtype=np.float64) * self.pixel_um
        r2 = axis[:, None] ** 2 + axis[None, :] ** 2
        b = self.ballistic_fraction(defocus_um)
        out = np.zeros_like(r2)
        for weight, sigma in ((b, self.core_sigma_um(defocus_um)), (1.0 - b, self.halo_sigma_um(defocus_um))):
            g = np.exp(-0.5 * r2 / sigma**2)
            out += weight * g / g.sum()
        return out / out.sum()


def ellipse_distance2(semi_axes_px: tuple[float, float], theta: float, *, offset_px: tuple[float, float],
                      half_width_px: int) -> np.ndarray:
    """``u² + v²`` of an ellipse's own coordinates on a ``(2h+1)·SUPERSAMPLE`` square grid (1 on its outline)."""
    n = (2 * int(half_width_px) + 1) * SUPERSAMPLE
    fine = (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) / SUPERSAMPLE
    dr = fine[:, None] - offset_px[0]
    dc = fine[None, :] - offset_px[1]
    ct, st = math.cos(theta), math.sin(theta)
    u = (ct * dr + st * dc) / semi_axes_px[0]
    v = (-st * dr + ct * dc) / semi_axes_px[1]
    return u * u + v * v


def soma_image(
    semi_axes_px: tuple[float, float],
    theta: float,
    *,
    offset_px: tuple[float, float] = (0.0, 0.0),
    half_width_px: int,
    nucleus_fraction: float = 0.0,
    nucleus_contrast: float = 0.0,
) -> np.ndarray:
    """Projected fluorescence of an ellipsoidal soma on a ``(2h+1, 2h+1)`` grid.

    GCaMP fills the cytosol, so a soma's image is the thickness of an ellipsoid along the
    optical axis, ``sqrt(1 − u² − v²)`` (in-plane semi-axes ``a, b``, rotated by ``theta``);
    with ``nucleus_contrast`` > 0 a concentric ellipsoid of ``nucleus_fraction`` times the
    size holds that much less dye (the dim nucleus of cytosolic indicators).

    Parameters
    ----------
    semi_axes_px : (float, float)
        In-plane semi-axes (px).
    theta : float
        Orientation of the first axis (radians from the row axis).
    offset_px : (float, float)
        Sub-pixel offset of the centre from the grid's centre pixel (rows, cols).
    half_width_px : int
        ``h``; the grid is ``2h+1`` pixels wide.

    Returns
    -------
    numpy.ndarray
        ``(2h+1, 2h+1)`` float64, non-negative, peak near 1 (arbitrary units).
    """
    h, s = int(half_width_px), SUPERSAMPLE
    q = ellipse_distance2(semi_axes_px, theta, offset_px=offset_px, half_width_px=h)
    thick = np.sqrt(np.clip(1.0 - q, 0.0, None))
    if nucleus_contrast > 0 and nucleus_fraction > 0:
        f = float(nucleus_fraction)
        thick -= nucleus_contrast * f * np.sqrt(np.clip(1.0 - q / (f * f), 0.0, None))
    return thick.reshape(2 * h + 1, s, 2 * h + 1, s).mean(axis=(1, 3))


def cell_image(soma: np.ndarray, psf: np.ndarray, *, floor: float = 1e-4) -> np.ndarray:
    """The soma as the movie shows it: ``soma ⊛ psf`` on the soma's grid, max-normalised to 1.

    Values under ``floor`` × the max are set to 0 (the FFT's round-off, and a sparse footprint);
    the grid must be wide enough to hold the halo (see :meth:`Optics.support_px`).
    """
    img = fftconvolve(soma, psf, mode="same")
    peak = img.max()
    if peak <= 0:
        return np.zeros_like(img)
    img /= peak
    img[img < floor] = 0.0
    return img


def radial_profile(image: np.ndarray, center: tuple[float, float], radii: np.ndarray) -> np.ndarray:
    """Mean of ``image`` over 1-px-wide rings ``|r − radius| < 0.5`` around ``center`` (rows, cols).

    ``radii`` in px; radius 0 gives the bilinear value at the centre.
    """
    rows, cols = image.shape
    rr = np.hypot(np.arange(rows)[:, None] - center[0], np.arange(cols)[None, :] - center[1])
    out = np.empty(len(radii))
    for i, radius in enumerate(radii):
        if radius <= 0:
            r0, c0 = int(math.floor(center[0])), int(math.floor(center[1]))
            fr, fc = center[0] - r0, center[1] - c0
            win = image[r0 : r0 + 2, c0 : c0 + 2]
            w = np.array([[(1 - fr) * (1 - fc), (1 - fr) * fc], [fr * (1 - fc), fr * fc]])
            w = w[: win.shape[0], : win.shape[1]]
            out[i] = float((win * w).sum() / w.sum())
        else:
            ring = np.abs(rr - radius) < 0.5
            out[i] = float(image[ring].mean()) if ring.any() else math.nan
    return out
