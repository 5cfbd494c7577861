"""Two channels saved interleaved (channel 1, channel 2, channel 1, …) without the metadata that would say so: read
as one movie, each frame mixes a second channel into its neighbours' traces, at twice the frame rate."""

from __future__ import annotations

import numpy as np

from cnmflow.movies.checks.middle_frames import MiddleFrames
from cnmflow.movies.info import MovieInfo

#: How many times more consecutive frames must differ than frames two apart, in their median and in nearly every
#: pair, to be two interleaved channels. Single-channel movies read 0.6–1.0 (simulated 1P/2P with bleaching,
#: motion to 4 px and bright transients; the IDEAS sample recordings); interleaved channels 2.6–1400 (two images of
#: one field 5 px apart; a dark second channel; a second channel of other cells).
INTERLEAVED_RATIO = 2.0



def interleaved_problem(info: MovieInfo, middle: MiddleFrames) -> str | None:
    """The refusal of a movie whose consecutive frames differ far more than frames two apart, else None.

    Each frame is standardised (its mean and sd taken out), so a flicker or a bleaching level is not a channel;
    frames two apart are compared within one parity (one channel), the parity whose frames agree best."""
    levels, start = middle.levels, middle.start
    z = middle.grid - middle.grid.mean(axis=1, keepdims=True)
    n = len(z)
    z /= np.maximum(z.std(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    next_frame = np.mean((z[1:] - z[:-1]) ** 2, axis=1)
    same = min(np.mean((z[2::2] - z[:-2:2]) ** 2, axis=1), np.mean((z[3::2] - z[1:-2:2]) ** 2, axis=1), key=np.median)
    ratio = float(np.median(next_frame) / max(float(np.median(same)), np.finfo(np.float64).tiny))
    if ratio < INTERLEAVED_RATIO or np.quantile(next_frame, 0.1) <= np.quantile(same, 0.9):
        return None
    return (f"{info.path}: its frames alternate between two images — consecutive frames differ {ratio:.0f} times "
            f"more than frames two apart in frames {start}–{start + n - 1} (mean level {levels[0::2].mean():.4g} in "
            f"one parity, {levels[1::2].mean():.4g} in the other): two channels saved interleaved (channel 1, channel "
            "2, …) without channel metadata, which would be analysed as one movie at twice the frame rate; split the "
            "channels and give one, e.g. Fiji: Image > Hyperstacks > Stack to Hyperstack (channels 2), then Image > "
            "Color > Split Channels; numpy: tifffile.imwrite(new_path, movie[0::2]) (movie[1::2] the other)")
