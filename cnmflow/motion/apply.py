"""Apply estimated shifts to frames with OpenCV, and measure the border the shifts expose.

Shifts follow CaImAn's ``shifts_rig`` convention: ``(row, col)`` pixels *applied* to the frame,
``corrected(r, c) = frame(r - dy, c - dx)``. Interpolation is bicubic (as NoRMCorre applies
shifts); the output keeps the input's size and pixel frame — nothing is cropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Border = Literal["replicate", "minimum"]
_INTERPOLATION = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}


def border_mode(border_nan: bool | str) -> Border:
    """How CaImAn's ``border_nan`` fills exposed pixels here (the engine refuses NaN).

    ``'copy'`` and ``True`` replicate the nearest edge pixel (``True``'s NaN region is reported as
    :class:`CropBox` instead); ``'min'`` and ``False`` use the frame's minimum.
    """
    return "replicate" if border_nan in (True, "copy") else "minimum"


def _cv_border(frame: np.ndarray, border: Border) -> dict:
    if border == "replicate":
        return {"borderMode": cv2.BORDER_REPLICATE}
    return {"borderMode": cv2.BORDER_CONSTANT, "borderValue": float(frame.min())}


def shift_frames(frames: np.ndarray, shifts: np.ndarray, *, border: Border = "replicate",
                 interpolation: Literal["cubic", "linear"] = "cubic") -> np.ndarray:
    """Rigidly shifted copies of frames (n, rows, cols) by shifts (n, 2) px (row, col); float32.

    ``interpolation='linear'`` is ~10x faster and is used where frames are moved only to
    estimate a remaining shift; corrected frames use ``'cubic'``.
    """
    frames = np.asarray(frames, dtype=np.float32)
    n, h, w = frames.shape
    out = np.empty_like(frames)
    for i in range(n):
        dy, dx = (float(v) for v in shifts[i])
        matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float64)
        cv2.warpAffine(frames[i], matrix, (w, h), dst=out[i], flags=_INTERPOLATION[interpolation],
                       **_cv_border(frames[i], border))
    return out


def warp_frame(frame: np.ndarray, field: np.ndarray, *, border: Border = "replicate") -> np.ndarray:
    """A frame (rows, cols) moved by a dense shift field (2, rows, cols) px (row, col); float32."""
    frame = np.asarray(frame, dtype=np.float32)
    h, w = frame.shape
    grid_r, grid_c = np.indices((h, w), dtype=np.float32)
    map_r = grid_r - field[0]
    map_c = grid_c - field[1]
    return cv2.remap(frame, map_c.astype(np.float32), map_r.astype(np.float32), cv2.INTER_CUBIC,
                     **_cv_border(frame, border))


@dataclass(frozen=True)
class CropBox:
    """Pixels at each edge that some frame's shift left without data (filled by the border policy).

    ``rows``/``cols`` slices give the region every corrected frame has data for; footprints and
    the corrected movie stay full-size in the input's pixel frame, so this is only a record (and,
    for ``border_nan=True``, the region to exclude downstream).
    """

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    def slices(self, frame_shape: tuple[int, int]) -> tuple[slice, slice]:
        h, w = frame_shape
        return slice(self.top, h - self.bottom), slice(self.left, w - self.right)

    def union(self, other: "CropBox") -> "CropBox":
        return CropBox(max(self.top, other.top), max(self.bottom, other.bottom),
                       max(self.left, other.left), max(self.right, other.right))

    @property
    def max(self) -> int:
        """The widest edge, pixels (a uniform ``border_pix`` that covers the crop)."""
        return max(self.top, self.bottom, self.left, self.right)


def exposed(rows_shift_top: np.ndarray, rows_shift_bottom: np.ndarray,
            cols_shift_left: np.ndarray, cols_shift_right: np.ndarray) -> CropBox:
    """The crop box for shifts seen at each edge (any shape, px): content moved inwards exposes.

    A positive row shift moves content down and exposes the top rows; a negative one the bottom.
    """
    def edge(values: np.ndarray, sign: float) -> int:
        values = np.asarray(values, dtype=np.float64) * sign
        return int(math.ceil(values.max() - 1e-6)) if values.size and values.max() > 0 else 0

    return CropBox(top=edge(rows_shift_top, 1.0), bottom=edge(rows_shift_bottom, -1.0),
                   left=edge(cols_shift_left, 1.0), right=edge(cols_shift_right, -1.0))
