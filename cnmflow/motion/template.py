"""The registration template: built from the movie's first frames, refined from registered ones.

NoRMCorre starts from a summary image of the raw movie and refines it by averaging registered
frames (``niter_rig`` passes). The first template here is made from the first
``template_frames`` frames only (the movie is streamed): the median of their 10-frame means,
then a few rounds of registering those frames to it and averaging, which sharpens it when the
first frames move.
Later passes replace it by the mean of every registered frame (:class:`TemplateSum`).
"""

from __future__ import annotations

import numpy as np

from cnmflow.motion.apply import shift_frames
from cnmflow.motion.rigid import RigidTemplate, estimate_rigid

#: Register-and-average rounds on the first frames.
FIRST_TEMPLATE_ROUNDS = 2
#: Frames averaged per block before the median of the first template (a median of block means is
#: robust to cells firing in a few frames and ~20x cheaper than a median over every frame).
BLOCK_FRAMES = 10


def initial_template(frames: np.ndarray, *, max_shifts: tuple[int, int], upsample_factor: int,
                     rounds: int = FIRST_TEMPLATE_ROUNDS) -> np.ndarray:
    """A template (rows, cols) float32 from frames (n, rows, cols) in the estimation domain."""
    frames = np.asarray(frames, dtype=np.float32)
    n_blocks = max(1, frames.shape[0] // BLOCK_FRAMES)
    blocks = [block.mean(axis=0) for block in np.array_split(frames, n_blocks)]
    template = np.median(np.stack(blocks), axis=0).astype(np.float32)
    for _ in range(rounds):
        shifts = estimate_rigid(frames, RigidTemplate.of(template, max_shifts=max_shifts),
                                upsample_factor=upsample_factor)
        # Centre the template on the frames' median position so it is not biased by the start.
        shifts = shifts - np.median(shifts, axis=0)
        template = shift_frames(frames, shifts, interpolation="linear").mean(axis=0, dtype=np.float64).astype(np.float32)
    return template


class TemplateSum:
    """Running float64 sum of registered frames (rows, cols), for the mean template of a pass."""

    def __init__(self, frame_shape: tuple[int, int]):
        self.total = np.zeros(frame_shape, dtype=np.float64)
        self.count = 0

    def add(self, total: np.ndarray, count: int) -> None:
        self.total += total
        self.count += int(count)

    def mean(self) -> np.ndarray:
        """The mean registered frame, (rows, cols) float32."""
        return (self.total / max(self.count, 1)).astype(np.float32)
