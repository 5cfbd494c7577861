"""What every initialisation of a patch returns, whichever variant ran.

The variants (:mod:`~cnmflow.engine.init.corr_pnr`, :mod:`~cnmflow.engine.init.greedy_roi`,
:mod:`~cnmflow.engine.init.sparse_nmf`) each offer ``initialize(frames, section, *, storage)``
returning an :class:`InitResult`, so a patch job calls any of them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)  # arrays inside: identity equality
class InitResult:
    """Initial components of one patch on its ``ssub`` grid: ``Y ≈ A·C + b·f``.

    Pixels are Fortran-ordered (``A[:, k].reshape((h, w), order="F")``). ``b`` and ``f`` are
    empty, (h*w, 0) and (0, T), where the background is not low-rank (corr_pnr: the ring model).
    """

    A: np.ndarray            # (h*w, K) float32 footprints
    C: np.ndarray            # (K, T) float32 traces at the tsub rate, movie units
    b: np.ndarray            # (h*w, nb) float32 background footprints
    f: np.ndarray            # (nb, T) float32 background traces
    correlation: np.ndarray  # (h, w) float32 correlation image of the seed search
    pnr: np.ndarray          # (h, w) float32 peak-to-noise image of the seed search (patch-grid noise)

    @property
    def n_components(self) -> int:
        return int(self.A.shape[1])
