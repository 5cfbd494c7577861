"""Telling neurons from out-of-focus background sources by footprint size.

In 1P data, out-of-focus cells and neuropil make blobs several times wider than a neuron that
fluctuate on their own; the zero-mean seeding filter damps them but bright ones still pass
min_corr / min_pnr. A footprint whose second-moment radius is well beyond the user's gSig is
such a source, not a neuron: the ring background is the model for it (Zhou et al. 2018).
"""

from __future__ import annotations

import numpy as np

#: A component wider than this many gSig (geometric mean of its footprint's principal sds) is
#: a background source. True neurons of radius gSig·(0.8–1.2) measure ≈ 0.8–1.2 gSig.
MAX_RADIUS_FACTOR = 1.5


def footprint_radii(A: np.ndarray, dims: tuple[int, int]) -> np.ndarray:
    """(K,) geometric-mean standard deviation (pixels) of each non-negative footprint.

    ``A`` is (rows*cols, K) in Fortran pixel order; an empty footprint has radius 0.
    """
    A = np.asarray(A, dtype=np.float64)
    pixels = np.arange(A.shape[0])
    row, col = (pixels % dims[0]).astype(float), (pixels // dims[0]).astype(float)
    mass = A.sum(axis=0)
    safe = np.where(mass > 0, mass, 1.0)
    mean_r, mean_c = row @ A / safe, col @ A / safe
    var_r = (row ** 2) @ A / safe - mean_r ** 2
    var_c = (col ** 2) @ A / safe - mean_c ** 2
    cov_rc = (row * col) @ A / safe - mean_r * mean_c
    determinant = np.maximum(var_r * var_c - cov_rc ** 2, 0.0)
    return np.where(mass > 0, determinant ** 0.25, 0.0)


def neuron_sized(A: np.ndarray, dims: tuple[int, int], *, gsig: float,
                 factor: float = MAX_RADIUS_FACTOR) -> np.ndarray:
    """(K,) whether each footprint is no wider than ``factor``·gSig (i.e. can be a neuron)."""
    return footprint_radii(A, dims) <= factor * gsig
