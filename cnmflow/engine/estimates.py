"""The result of a fit, with CaImAn's field names, shapes and meanings (``cnm.estimates``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from cnmflow.pixel_order import columns_to_images


def _empty_sparse() -> sp.csc_matrix:
    return sp.csc_matrix((0, 0), dtype=np.float32)


@dataclass
class Estimates:
    """Spatial footprints, traces and background of a fitted movie.

    Pixels are in Fortran order (:mod:`cnmflow.pixel_order`): footprint ``k`` is
    ``A[:, k].reshape(dims, order="F")``.
    Traces are ``(K, n_frames)`` at the movie's full frame rate. ``C`` is the denoised trace
    *including* its baseline ``bl``; ``C + YrA`` is the raw trace; ``S`` the inferred spikes.
    """

    A: sp.csc_matrix                 # (pixels, K) footprints, unit L2 norm per column
    C: np.ndarray                    # (K, T) denoised traces (baseline included)
    S: np.ndarray                    # (K, T) deconvolved activity, >= 0
    YrA: np.ndarray                  # (K, T) residual: raw = C + YrA
    bl: np.ndarray                   # (K,) baselines
    c1: np.ndarray                   # (K,) initial calcium values
    g: np.ndarray                    # (K, p) AR coefficients
    neurons_sn: np.ndarray           # (K,) noise sd of each raw trace
    lam: np.ndarray                  # (K,) sparsity penalty of each deconvolution
    dims: tuple[int, int]            # (rows, cols)
    sn: np.ndarray                   # (pixels,) per-pixel noise sd, Fortran order
    b0: np.ndarray                   # (pixels,) constant background (ring model), Fortran order
    W: sp.csr_matrix = field(default_factory=_empty_sparse)  # ring-model weights on the ssub_B grid
    b: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (pixels, nb) 2P background
    f: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (nb, T) 2P background traces
    Cn: np.ndarray | None = None     # (rows, cols) correlation image
    pnr: np.ndarray | None = None    # (rows, cols) peak-to-noise-ratio image
    SNR_comp: np.ndarray = field(default_factory=lambda: np.zeros(0))   # (K,) trace SNR
    r_values: np.ndarray = field(default_factory=lambda: np.zeros(0))   # (K,) spatial consistency
    focus_ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (K,) 1P focus test, NaN: not judged
    idx_components_bad: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # rejected by the engine
    ssub_B: int = 1                  # grid of W relative to dims
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per stage
    patches_at_k: tuple[int, int] = (0, 0)  # (patches whose search stopped at K components, patches); K 'auto': (0, n)

    def with_footprints(self, A: sp.csc_matrix, changed: np.ndarray) -> "Estimates":
        """These estimates with footprints ``A``, whose ``changed`` columns are each a part of the present one (the
        same pixels' weights, some zeroed): those scaled back to unit norm and their traces scaled to match, so that
        ``A·C`` is unchanged where they are kept."""
        norms = np.ones(A.shape[1])
        changed_columns = A[:, changed]
        norms[changed] = np.sqrt(np.asarray(changed_columns.multiply(changed_columns).sum(axis=0),
                                            dtype=np.float64).ravel())
        norms = np.where(norms > 0, norms, 1.0)
        return replace(self.with_traces_scaled(norms), A=sp.csc_matrix(A @ sp.diags(1.0 / norms)).astype(np.float32))

    def with_traces_scaled(self, factors: np.ndarray) -> "Estimates":
        """Each component's traces and their statistics multiplied by its factor: what goes with its footprint
        divided by that factor, ``A·C`` unchanged (the one list of what scales with a footprint's norm)."""
        scale = factors[:, None]
        return replace(self, C=(self.C * scale).astype(np.float32), S=(self.S * scale).astype(np.float32),
                       YrA=(self.YrA * scale).astype(np.float32), bl=self.bl * factors, c1=self.c1 * factors,
                       neurons_sn=self.neurons_sn * factors, lam=self.lam * factors)

    @property
    def accepted(self) -> np.ndarray:
        """Indices of the components the engine did not reject (not in ``idx_components_bad``), ascending."""
        return np.setdiff1d(np.arange(self.K), np.asarray(self.idx_components_bad, dtype=int))

    @property
    def K(self) -> int:
        """Number of components."""
        return int(self.A.shape[1])

    @property
    def n_frames(self) -> int:
        return int(self.C.shape[1])

    def footprints(self) -> np.ndarray:
        """Dense (K, rows, cols) footprints, for plots and scoring (small K only)."""
        return columns_to_images(self.A.toarray(), self.dims)
