"""The seeds above both cuts classed by shape (:meth:`~cnmflow.auto_params.estimate.AutoEstimate.seed_classes`): round
maxima of the search image at the cells' scale (:func:`round_seeds`, :func:`seed_radii`), ridges (vessels,
dendrites, touching cells), broader (out-of-focus cells, neuropil) or smaller. The cuts do not use them (correlation
and PNR do not order these sources; benchmarks/findings/auto_params.md): they are reported, so a person sees what
lies above the cuts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from cnmflow.auto_params.radius import peak_radius, round_blobs

if TYPE_CHECKING:
    from cnmflow.auto_params.seed_images import SeedImages


#: Half-max radius of a seed over the estimated radius that counts as the cells' scale (:func:`seed_radii`):
#: among the candidates above both cuts on 10 realistic movies (auto_params_benchmark.py --candidates), in-focus
#: cells lay at 0.9–1.2× (median), out-of-focus cells at 1.0–2.0×.
CELL_SCALE_BAND = (0.75, 1.4)


def distinct_seeds(seeds: np.ndarray, radius: float) -> np.ndarray:
    """Which seeds ``(n, 2)``, strongest first, are the first on their place: a seed within ``radius`` of a
    stronger one kept lies on the same cell (the seed search's windows leave several maxima on one cell)."""
    seeds = np.asarray(seeds, dtype=float).reshape(-1, 2)
    earlier = [[] for _ in range(len(seeds))]
    for stronger, weaker in _close_pairs(seeds, radius):
        earlier[weaker].append(stronger)
    kept: list[bool] = []
    for near in earlier:  # in strength order: a seed is kept unless a stronger one near it was
        kept.append(not any(kept[j] for j in near))
    return np.array(kept, dtype=bool)


def _close_pairs(seeds: np.ndarray, radius: float) -> np.ndarray:
    """The pairs (j, i), j < i, of seeds within ``radius`` (``hypot(seeds[j] − seeds[i]) <= radius``), found among
    the seeds sorted by row, each compared with the next ones until their rows lie more than ``radius`` + 1 apart
    (a few hundred comparisons a seed on a 256² movie instead of all n)."""
    by_row = np.argsort(seeds[:, 0], kind="stable")
    rows = seeds[by_row, 0]
    pairs = []
    for step in range(1, len(seeds)):
        close = np.nonzero(rows[step:] - rows[:-step] <= radius + 1)[0]
        if not len(close):
            break
        a, b = by_row[close], by_row[close + step]
        j, i = np.minimum(a, b), np.maximum(a, b)
        offsets = seeds[j] - seeds[i]
        near = np.hypot(offsets[:, 0], offsets[:, 1]) <= radius
        pairs.append(np.column_stack([j[near], i[near]]))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), int)


def seed_radii(movie: np.ndarray, seeds: np.ndarray, *, radius: float) -> np.ndarray:
    """Half-max radius (px, NaN where unmeasurable) of each seed ``(n, 2)`` of a ``(T, rows, cols)`` movie whose
    cells have half-max radius ``radius``: read as the radius estimate reads a blob (on the seed's peak frame
    minus the mean, out to 3 × ``radius``).

    Above the noise cuts, the blob scale is what tells an in-focus cell from the other signal sources: on the
    realistic simulator the in-focus seeds' radius matched the estimate while out-of-focus cells were broader,
    and neither correlation nor PNR ordered them (benchmarks/findings/auto_params.md, ``--candidates``).
    """
    if not len(seeds):
        return np.zeros(0)
    mean = np.asarray(movie, dtype=np.float32).mean(axis=0, dtype=np.float64)
    return np.array([peak_radius(movie, mean, row, col, reach=3.0 * radius)
                     for row, col in np.asarray(seeds, dtype=int)])


def seed_shapes(movie: np.ndarray, images: SeedImages, seeds: np.ndarray, *,
                radius: float) -> dict[str, np.ndarray]:
    """:class:`~cnmflow.auto_params.estimate.AutoEstimate`'s ``seed_distinct``, ``seed_radii`` (measured at the
    distinct seeds, NaN elsewhere) and ``seed_round`` for the seeds above the cuts."""
    distinct = distinct_seeds(seeds, radius)
    radii = np.full(len(seeds), np.nan)
    radii[distinct] = seed_radii(movie, seeds[distinct], radius=radius)
    return {"seed_distinct": distinct, "seed_radii": radii,
            "seed_round": round_seeds(images.correlation, images.pnr, seeds, radius=radius)}


def round_seeds(correlation: np.ndarray, pnr: np.ndarray, seeds: np.ndarray, *, radius: float) -> np.ndarray:
    """Which seeds ``(n, 2)`` are round maxima of the seed search image (correlation × PNR) smoothed at the cells'
    LoG scale ``radius / √2`` (:func:`round_blobs`' Hessian test): a pulsing vessel is a ridge of the search
    image, whose seeds lie along it (on the realistic simulator most seeds above the cuts that were no in-focus
    cell were ridges; benchmarks/findings/auto_params.md, ``--candidates``)."""
    seeds = np.asarray(seeds, dtype=int).reshape(-1, 2)
    out = np.zeros(len(seeds), bool)
    if len(seeds):
        image = np.asarray(correlation, np.float64) * np.asarray(pnr, np.float64)
        scale = np.array([radius / math.sqrt(2)])
        out[round_blobs(image, scale, np.zeros(len(seeds), int), seeds[:, 0], seeds[:, 1])] = True
    return out
