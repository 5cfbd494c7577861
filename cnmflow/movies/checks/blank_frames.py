"""Frames that hold no image: every pixel one value. A camera's noise changes every pixel of a real frame, so such a
frame is one software wrote in place of an image — zeros a converter put where the acquisition lost frames, or the
tail of a file allocated to its full length before it was written (a copy or a recording still in progress, or cut
short).

Read as they are stored, a few such frames set the seed search's null and every pixel's noise level, and a blank
tail makes every trace fall to the same value there: a plausible-looking wrong result. So a blank tail is refused
(the file is not complete), and other blank frames (a run at the start is often the light source not yet on) are
recorded on the movie and filled as an isxd's dropped frames are (:mod:`cnmflow.movies.frame_fill`), with a note.

Where the frames lie as one raw block, a few rows of every frame are read to find the candidates, and only those
are read whole; an AVI's reader notes them as it decodes every frame to count them; other movies are decoded chunk
by chunk.
"""

from __future__ import annotations

import numpy as np

from cnmflow.movies.checks.memo import chunk_frames, remembered
from cnmflow.movies.info import MovieInfo
from cnmflow.movies.read import READERS, iter_chunks

#: Rows of each frame read to find the candidates in a movie read in place (each row is one short read).
SAMPLED_ROWS = 4
#: A blank run this long at a movie's end is the unwritten tail of a file, refused; a single blank last frame is
#: filled (an acquisition stopped mid-frame).
MIN_BLANK_TAIL = 2

Runs = tuple[tuple[int, int], ...]


def find_blank_frames(info: MovieInfo) -> tuple[int, ...]:
    """The movie's frames in which every pixel has one value, found once per file and process."""
    return remembered("blank_frames", info, lambda: _find(info))


def blank_frames_problem(info: MovieInfo, blank: tuple[int, ...]) -> str | None:
    """The refusal of a movie whose blank frames (:func:`find_blank_frames`) end it (the file is not written to its
    end) or make it up; None where they can be filled."""
    runs = frame_runs(blank)
    n = info.n_frames
    if len(blank) == n:
        return (f"{info.path}: none of its {n} frames holds an image (each frame has every pixel at one value), so "
                "no cell can be found in it; check the file against the acquisition, or export it again")
    if runs and runs[-1][1] == n and runs[-1][1] - runs[-1][0] >= MIN_BLANK_TAIL:
        first = runs[-1][0]
        return (f"{info.path}: its last {n - first} frames ({first}-{n - 1} of {n}) hold no image (every pixel one "
                f"value), so the file looks allocated to its full length but written only up to frame {first - 1}: "
                "a copy or a recording still being written, or one cut short. Wait until it is complete, or copy it "
                f"again; if the recording really ended there, save its frames 0-{first - 1} as the movie")
    return None


def blank_frames_note(info: MovieInfo) -> str:
    """What a run reports of a movie whose blank frames are filled."""
    count = len(info.blank_frames)
    held = "frames hold" if count > 1 else "frame holds"
    return (f"{info.path}: {count} {held} no image (every pixel one value: frames "
            f"{_listed(frame_runs(info.blank_frames))}), which no camera records; they are filled by linear "
            "interpolation between the nearest frames with an image, as an isxd's dropped frames are")


def frame_runs(frames: tuple[int, ...]) -> Runs:
    """Sorted frame indices as runs of consecutive frames, [start, stop)."""
    runs: list[tuple[int, int]] = []
    for i in frames:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return tuple(runs)


def _listed(runs: Runs, shown: int = 6) -> str:
    """Runs as "3, 10-12, …" (the first ``shown`` of them, then how many more)."""
    text = ", ".join(f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in runs[:shown])
    return text + (f" and {len(runs) - shown} more runs" if len(runs) > shown else "")


def _find(info: MovieInfo) -> tuple[int, ...]:
    if info.flat_frames is not None:  # seen as the reader decoded every frame (AVI): not decoded again
        return info.flat_frames
    layout = READERS[info.kind].raw_layout(info)
    if layout is None:
        found = [first + int(k) for first, block in iter_chunks(info, chunk_frames=chunk_frames(info))
                 for k in np.flatnonzero(_one_value(block))]
        return tuple(found)
    movie = np.memmap(layout.path, dtype=layout.dtype, mode="r", offset=layout.offset,
                      shape=(info.n_frames, *info.frame_shape))
    rows = np.unique(np.linspace(0, info.frame_shape[0] - 1, SAMPLED_ROWS).round().astype(int))
    step = max(1, chunk_frames(info) * info.frame_shape[0] // rows.size)
    candidates = [first + int(k) for first in range(0, info.n_frames, step)
                  for k in np.flatnonzero(_one_value(movie[first:first + step, rows, :]))]
    return tuple(i for i in candidates if _one_value(movie[i:i + 1])[0])


def _one_value(block: np.ndarray) -> np.ndarray:
    """For each frame of ``block``, whether all its pixels equal its first."""
    flat = block.reshape(block.shape[0], -1)
    return (flat == flat[:, :1]).all(axis=1)
