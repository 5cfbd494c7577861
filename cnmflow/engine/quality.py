"""Per-component quality: trace SNR and spatial consistency, as CaImAn's evaluation defines them.

- Trace SNR: how exceptional the most active stretch of the raw trace is. Each sample gets the
  tail probability of its robust z-score; the joint log-probability of the least likely window
  of ``ceil(fr·decay_time)`` samples, turned back into a z value, is the SNR.
- Spatial consistency r: correlation between the footprint and the movie's mean frame during
  the component's most active frames (minus the overall mean frame), over the footprint's
  neighbourhood. A real neuron looks like its footprint when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.special

from cnmflow.engine.chunking import chunk_slices
from cnmflow.engine.estimates import Estimates
from cnmflow.pixel_order import c_order_index, pixel_index, pixel_position

#: Frames per component averaged for the spatial consistency test.
ACTIVE_FRAMES = 20


@dataclass(frozen=True)
class Quality:
    snr: np.ndarray       # (K,)
    r_values: np.ndarray  # (K,)


def trace_snr(raw: np.ndarray, *, window: int) -> np.ndarray:
    """(K, T) raw traces → (K,) SNR of each trace's least probable window of ``window`` samples."""
    raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
    K, T = raw.shape
    if K == 0:
        return np.zeros(0)
    median = np.median(raw, axis=1, keepdims=True)
    below = np.where(raw <= median, raw - median, np.nan)
    # Noise from the half of the distribution below the median, which transients do not reach.
    sd = np.sqrt(np.nanmean(below ** 2, axis=1, keepdims=True))
    sd = np.where(sd > 0, sd, np.finfo(float).tiny)
    z = (raw - median) / sd
    # the normal distribution's log tail and quantile straight from scipy.special: the numbers scipy.stats.norm
    # gives for float64, without its ~0.5 s import in every run
    log_tail = scipy.special.log_ndtr(-z)
    window = int(min(max(window, 1), T))
    cumulative = np.cumsum(np.pad(log_tail, ((0, 0), (1, 0))), axis=1)
    window_sums = cumulative[:, window:] - cumulative[:, :-window]
    least_likely = window_sums.min(axis=1)
    # a window beyond ~38 sd has a probability below float64's smallest: capped there, not inf
    return -scipy.special.ndtri(np.exp(np.maximum(least_likely / window, np.log(np.finfo(float).tiny))))


def spatial_consistency(movie, estimates: Estimates, *, chunk_frames: int = 500,
                        active_frames: int = ACTIVE_FRAMES) -> np.ndarray:
    """(K,) correlation of each footprint with the mean frame of its most active frames."""
    K = estimates.K
    if K == 0:
        return np.zeros(0)
    raw = estimates.C + estimates.YrA
    n_active = min(active_frames, raw.shape[1])
    top = np.argsort(-raw, axis=1, kind="stable")[:, :n_active]
    dims = estimates.dims
    A = estimates.A.tocsc()
    # Each footprint's neighbourhood, as Fortran indices (into A) and C indices (into frames).
    f_index, c_index = zip(*(_neighbourhood(A.indices[A.indptr[k]:A.indptr[k + 1]], dims) for k in range(K)))
    active_sum = [np.zeros(idx.size) for idx in c_index]
    mean_image = np.zeros(dims[0] * dims[1])
    T = movie.shape[0]
    frame_to_components: dict[int, list[int]] = {}
    for k in range(K):
        for t in top[k]:
            frame_to_components.setdefault(int(t), []).append(k)
    for chunk in chunk_slices(T, chunk_frames):
        frames = np.asarray(movie[chunk], dtype=np.float32).reshape(chunk.stop - chunk.start, -1)   # C order
        mean_image += frames.sum(axis=0, dtype=np.float64)
        for t in range(chunk.start, chunk.stop):
            for k in frame_to_components.get(t, ()):
                active_sum[k] += frames[t - chunk.start, c_index[k]]
    mean_image /= T
    r_values = np.zeros(K)
    for k in range(K):
        footprint = A[f_index[k], k].toarray().ravel()
        difference = active_sum[k] / n_active - mean_image[c_index[k]]
        if footprint.std() == 0 or difference.std() == 0:
            r_values[k] = 0.0
        else:
            r_values[k] = float(np.corrcoef(footprint, difference)[0, 1])
    return r_values


def _neighbourhood(pixels: np.ndarray, dims: tuple[int, int], margin: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """A footprint's pixels (Fortran indices) grown by ``margin``: (Fortran indices, C indices)."""
    rows_all, cols_all = dims
    if pixels.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    rows, cols = pixel_position(pixels, dims)
    r0, r1 = max(rows.min() - margin, 0), min(rows.max() + margin + 1, rows_all)
    c0, c1 = max(cols.min() - margin, 0), min(cols.max() + margin + 1, cols_all)
    box = np.zeros((r1 - r0, c1 - c0), dtype=bool)
    box[rows - r0, cols - c0] = True
    grown_rows, grown_cols = np.nonzero(ndi.binary_dilation(box, iterations=margin))
    grown_rows, grown_cols = grown_rows + r0, grown_cols + c0
    order = np.lexsort((grown_rows, grown_cols))        # Fortran order, as before
    grown_rows, grown_cols = grown_rows[order], grown_cols[order]
    return pixel_index(grown_rows, grown_cols, dims), c_order_index(grown_rows, grown_cols, dims)


def evaluate_components(movie, estimates: Estimates, *, fr: float, decay_time: float,
                        chunk_frames: int = 500) -> Quality:
    """Trace SNR and spatial consistency of every component."""
    window = int(np.ceil(fr * decay_time))
    snr = trace_snr(estimates.C + estimates.YrA, window=window)
    r_values = spatial_consistency(movie, estimates, chunk_frames=chunk_frames)
    return Quality(snr=snr, r_values=r_values)


#: CaImAn's 1P acceptance thresholds (min_SNR, rval_thr) and its hard rejection bounds.
MIN_SNR = 2.5
RVAL_THR = 0.85
SNR_LOWEST = 0.5
RVAL_LOWEST = -1.0


def component_statuses(estimates: Estimates, *, evaluate: bool, min_snr: float = MIN_SNR,
                       rval_thr: float = RVAL_THR) -> list[str]:
    """isxd cell statuses: "rejected" for what the engine rejected (``idx_components_bad``, e.g. out-of-focus
    components, engine/in_focus), the rest "undecided" unless evaluation is on (off by default, as in the seed).

    With evaluation, a component is accepted when it passes either test (SNR ≥ min_snr or
    r ≥ rval_thr) and rejected otherwise, or when it fails a hard bound (SNR ≤ 0.5, r ≤ −1).
    """
    engine_rejected = set(int(k) for k in estimates.idx_components_bad)
    if not evaluate:
        return ["rejected" if k in engine_rejected else "undecided" for k in range(estimates.K)]
    statuses = []
    for k, (snr, r) in enumerate(zip(estimates.SNR_comp, estimates.r_values)):
        passes = snr >= min_snr or r >= rval_thr
        hard_fail = snr <= SNR_LOWEST or r <= RVAL_LOWEST
        statuses.append("accepted" if passes and not hard_fail and k not in engine_rejected else "rejected")
    return statuses
