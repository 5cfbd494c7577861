"""Mean of an image on rings about a point: the one ring profile the footprint diagnostics print (issue #16).

``footprint_split.py``, ``large_mask_stages.py`` and ``focus_reading.py`` each compare a footprint or an own image
with the truth ring by ring; each normalises as its table needs (by the first ring, by the peak, or not at all).
"""

from __future__ import annotations

import numpy as np


def ring_means(image: np.ndarray, centre, starts, width: float = 2.0) -> np.ndarray:
    """(len(starts),) the mean of ``image`` on each ring ``start <= distance < start + width`` about ``centre``
    (rows, cols); NaN for a ring with no pixel in the image."""
    distance = np.hypot(*(np.indices(image.shape) - np.asarray(centre, dtype=float)[:, None, None]))
    out = np.full(len(starts), np.nan)
    for i, start in enumerate(starts):
        ring = (distance >= start) & (distance < start + width)
        if ring.any():
            out[i] = float(image[ring].mean())
    return out
