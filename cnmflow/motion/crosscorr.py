"""Bounded, sub-pixel peak of the cross-correlation between images and a template.

The shift that registers an image to a template is the position of the peak of their
cross-correlation. NoRMCorre (Pnevmatikakis & Giovannucci 2017) searches it only inside
a window (``max_shifts`` for a frame, ``max_deviation_rigid`` around the rigid shift for a
patch) and refines it to ``1/upsample_factor`` pixel by evaluating the correlation on an
upsampled grid with a matrix-multiply DFT (Guizar-Sicairos, Thurman & Fienup 2008, eq. 12):

    c(y, x) = 1/(H W) * sum_{k,l} T(k,l) conj(F(k,l)) exp(2 pi i (k y / H + l x / W))

evaluated only at the points asked for. scikit-image's ``phase_cross_correlation`` does the
same refinement but has no search window, so a noisy frame's global peak may lie outside
``max_shifts``; both steps here evaluate the sum above on a small grid (first the integer
window, then 1.5 px around its best point), which costs two (m x H)(H x W) products per
image instead of an inverse FFT. Forward FFTs are scipy.fft's, on one thread: the work is
small per call and runs in parallel over chunks of frames (one process each) instead.

Sign convention (CaImAn's ``shifts_rig``): the returned shift ``s`` is the one to *apply* to
the image to register it: if ``image = scipy.ndimage.shift(template, d)`` then ``s = -d``.
Shifts are (row, col) in pixels.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

#: Frames whose spectra are worked on at once: small enough for the working arrays to stay in
#: cache (and out of fresh page faults), large enough to amortise the per-call overhead.
BATCH_FRAMES = 16


def edge_window(side: int, margin: int) -> np.ndarray:
    """(side,) float32 weights: 0 within ``margin`` px of either end, a raised-cosine ramp, then 1.

    Only the template is windowed. Its correlation with an unwindowed frame at any shift up to
    ``margin`` then never reaches across the frame's edge (where the FFT wraps around), and —
    unlike windowing both images, whose product of windows favours small shifts — the weight
    of the content does not depend on the shift, so the estimate is not pulled towards zero.
    """
    margin = max(int(margin), 0)
    ramp = max(1, min(side // 8, (side - 2 * margin) // 4))
    x = np.arange(side, dtype=np.float64)
    distance = np.minimum(x, side - 1 - x) - margin       # px inside the margin
    weights = np.clip(distance / ramp, 0.0, 1.0)
    return (0.5 - 0.5 * np.cos(np.pi * weights)).astype(np.float32)


def spectra(images: np.ndarray, *, margin: tuple[int, int] | None = None) -> np.ndarray:
    """Mean-free half spectra (``rfft2``) of images (..., H, W) → (..., H, W//2+1) complex64.

    With ``margin`` (rows, cols) px the images are first multiplied by :func:`edge_window`
    along each axis (use it for templates; frames are not windowed).
    """
    images = np.asarray(images, dtype=np.float32)
    h, w = images.shape[-2:]
    centred = images - images.mean(axis=(-2, -1), keepdims=True, dtype=np.float32)
    if margin is not None:
        centred *= np.outer(edge_window(h, margin[0]), edge_window(w, margin[1]))
    return scipy.fft.rfft2(centred, axes=(-2, -1), workers=1).astype(np.complex64, copy=False)


def _dft_rows(base: np.ndarray, offsets: np.ndarray, freqs: np.ndarray, size: int) -> np.ndarray:
    """exp(2 pi i p k / size) at points p = base[i] + offsets[j]: (n, m, len(k)) complex64.

    Factored as exp(2 pi i base k / size) * exp(2 pi i offset k / size), so only n + m rows of
    complex exponentials are computed, not n * m.
    """
    scale = 2j * np.pi / size
    per_image = np.exp(scale * base[:, None] * freqs[None, :]).astype(np.complex64)      # (n, K)
    shared = np.exp(scale * offsets[:, None] * freqs[None, :]).astype(np.complex64)      # (m, K)
    return per_image[:, None, :] * shared[None, :, :]


def _correlation_on_grid(product: np.ndarray, base: np.ndarray, row_offsets: np.ndarray,
                         col_offsets: np.ndarray, width: int) -> np.ndarray:
    """Real cross-correlation of each half-spectrum product i at rows base[i, 0] + row_offsets
    and columns base[i, 1] + col_offsets: (n, len(row_offsets), len(col_offsets)), times H*W
    (the constant 1/(H W) does not move the peak and is left out).

    The product of real images' spectra is Hermitian, so the sum over all column frequencies is
    twice the real part of the sum over the non-negative ones (the zero and Nyquist columns once).
    """
    n, h, half = product.shape
    weights = np.full(half, 2.0, dtype=np.float32)
    weights[0] = 1.0
    if width % 2 == 0:
        weights[-1] = 1.0
    left = _dft_rows(base[:, 0], row_offsets, scipy.fft.fftfreq(h, d=1.0 / h), h)            # (n, mr, H)
    right = _dft_rows(base[:, 1], col_offsets, scipy.fft.rfftfreq(width, d=1.0 / width), width)
    right = np.ascontiguousarray((right * weights).transpose(0, 2, 1))                       # (n, half, mc)
    return np.matmul(np.matmul(left, product), right).real


def _best(grid: np.ndarray, base: np.ndarray, row_offsets: np.ndarray, col_offsets: np.ndarray) -> np.ndarray:
    """The (row, col) point of each grid's maximum: (n, 2)."""
    n, mr, mc = grid.shape
    r, c = np.divmod(grid.reshape(n, -1).argmax(axis=1), mc)
    return base + np.stack([row_offsets[r], col_offsets[c]], axis=1)


def register_spectra(template: np.ndarray, images: np.ndarray, *, width: int, centers: np.ndarray,
                     max_shift: tuple[int, int], upsample_factor: int) -> np.ndarray:
    """Sub-pixel shifts that register each image to its template, within a window.

    Parameters
    ----------
    template : (..., H, W//2+1) complex64
        Spectra (:func:`spectra`, windowed with a margin >= the largest shift searched) of the
        template, broadcastable to ``images``.
    images : (..., H, W//2+1) complex64
        Spectra of the images.
    width : int
        W, the images' width in pixels (not recoverable from a half spectrum).
    centers : (..., 2) float
        Centre of each image's search window, pixels (row, col); rounded to whole pixels.
    max_shift : (int, int)
        Half-width of the search window around the centre, pixels (rows, cols).
    upsample_factor : int
        The result is on a 1/upsample_factor pixel grid.

    Returns
    -------
    (..., 2) float64
        Shifts (row, col) in pixels to apply to each image to register it.
    """
    leading = images.shape[:-2]
    n = int(np.prod(leading))
    if n == 0:
        return np.zeros(leading + (2,))
    product = (template * np.conj(images)).reshape((n,) + images.shape[-2:])
    base = np.rint(np.asarray(centers, dtype=np.float64).reshape(n, 2))
    rows = np.arange(-max_shift[0], max_shift[0] + 1, dtype=np.float64)
    cols = np.arange(-max_shift[1], max_shift[1] + 1, dtype=np.float64)
    coarse = _best(_correlation_on_grid(product, base, rows, cols, width), base, rows, cols)
    if upsample_factor > 1:
        # 1.5 px around the integer peak at 1/upsample_factor spacing.
        half = math.ceil(0.75 * upsample_factor)
        offsets = np.arange(-half, half + 1) / upsample_factor
        coarse = _best(_correlation_on_grid(product, coarse, offsets, offsets, width), coarse, offsets, offsets)
    # A peak on the window's edge may refine past it by < 1 px: keep the result inside.
    limit = np.asarray(max_shift, dtype=np.float64)
    return np.clip(coarse, base - limit, base + limit).reshape(leading + (2,))
