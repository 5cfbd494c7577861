"""Where simulated cells sit, and how one seed is split into independent random streams.

Both simulators (:mod:`cnmflow.synthetic.gaussian`, :mod:`cnmflow.synthetic.realistic`) draw
their layout the same way, so the same seed places the same cells.
"""

from __future__ import annotations

import numpy as np

from cnmflow.errors import ParameterError

__all__ = ["child_generators", "place_centers"]


def child_generators(rng, n: int) -> list[np.random.Generator]:
    """Independent child generators (one per part), so that e.g. n_frames does not move footprints."""
    gen = np.random.default_rng(rng)
    seeds = gen.integers(0, 2**63 - 1, size=n, dtype=np.int64)
    return [np.random.default_rng(int(s)) for s in seeds]


def place_centers(gen, n, rows, cols, *, min_distance, margin) -> np.ndarray:
    """``(n, 2)`` (row, col) centres drawn uniformly ``margin`` px from the border, at least ``min_distance`` apart."""
    lo_r, hi_r = margin, rows - 1 - margin
    lo_c, hi_c = margin, cols - 1 - margin
    if hi_r <= lo_r or hi_c <= lo_c:
        raise ParameterError(
            f"shape=({rows}, {cols}) is too small for gsig: neurons must stay {margin:.1f} px from the border."
        )
    centers = np.empty((n, 2))
    k = 0
    tries = 0
    max_tries = 200 * n + 2000
    d2 = float(min_distance) ** 2
    while k < n and tries < max_tries:
        batch = np.column_stack([gen.uniform(lo_r, hi_r, 256), gen.uniform(lo_c, hi_c, 256)])
        for cand in batch:
            tries += 1
            if k == 0 or np.min(np.sum((centers[:k] - cand) ** 2, axis=1)) >= d2:
                centers[k] = cand
                k += 1
                if k == n:
                    break
    if k < n:
        raise ParameterError(
            f"n_neurons={n} do not fit in shape=({rows}, {cols}) with min_distance={min_distance:.2f} px "
            f"(placed {k}): use fewer neurons, a larger shape or a smaller min_distance."
        )
    return centers
