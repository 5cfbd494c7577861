"""The spatial high-pass that makes one-photon (miniscope) frames registrable.

A 1P frame is dominated by a bright, smooth, slowly changing out-of-focus background, and its
cross-correlation peak with a template is then broad and pinned to the fixed vignetting. Shifts
are therefore estimated on band-passed frames: convolution with a Gaussian of width ``gSig_filt``
truncated to a disc and made zero-mean (a "Mexican hat" on a disc, as NoRMCorre does for 1P
data). It removes everything smoother than a cell and keeps cell-sized structure (cells, vessels).
The filter is used for estimation only; corrected frames keep their raw intensities.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def highpass_kernel(gsig_filt: tuple[int, int]) -> np.ndarray:
    """The zero-mean disc-truncated Gaussian kernel, (2*ry+1, 2*rx+1) float32, ry = ceil(1.5*gSig).

    Parameters
    ----------
    gsig_filt : (int, int)
        Gaussian standard deviation in pixels along rows and columns.
    """
    sy, sx = (float(g) for g in gsig_filt)
    ry, rx = math.ceil(1.5 * sy), math.ceil(1.5 * sx)
    y = np.arange(-ry, ry + 1, dtype=np.float64)[:, None]
    x = np.arange(-rx, rx + 1, dtype=np.float64)[None, :]
    gauss = np.exp(-0.5 * ((y / sy) ** 2 + (x / sx) ** 2))
    # Keep the pixels inside the ellipse through the kernel's edge midpoints (the disc), zero-mean there.
    inside = (y / max(ry, 1)) ** 2 + (x / max(rx, 1)) ** 2 <= 1.0
    kernel = np.where(inside, gauss - gauss[inside].mean(), 0.0)
    return kernel.astype(np.float32)


def highpass(frames: np.ndarray, *, gsig_filt: tuple[int, int] | None) -> np.ndarray:
    """Band-pass filtered copies of ``frames`` (n, rows, cols) float32; a float32 copy when None.

    Borders are replicated (the project's filter convention), so a frame's edge does not look
    like an edge of the image content.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if gsig_filt is None:
        return frames.copy()
    kernel = highpass_kernel(gsig_filt)
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        cv2.filter2D(frame, cv2.CV_32F, kernel, dst=out[i], borderType=cv2.BORDER_REPLICATE)
    return out
