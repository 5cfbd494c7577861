"""How much a movie moves, read before a fit that would not correct it.

With ``motion_correction`` 'none' (the seed tool's default) a moving movie gives a plausible-looking wrong result:
on the realistic cortex simulator (128²×800, 35 cells) rigid brain motion of sd 0.45 px per axis took F1 from .79–.80
to .63 (K 45–51 → 64–76: cells split and doubled) and rigid correction gave .76–.79
(``benchmarks/findings/motion_check.md``); so did a slow drift of 2 px over the movie (F1 .80 to .64; rigid: .77),
which a sample from the movie's middle does not see. So validation reads the motion on frames from the movie's
start, middle and end and, where it is clear, adds a note with the fix.

A shift estimated on frames with little fixed structure (cells that show only while they fire, a smooth background)
is noise that can reach the search's limit on a still movie. Rigid motion moves the whole field alike, so the shifts
are estimated on each quarter of the frame apart, and only what the quarters share counts: the covariance of two
quarters' shift series, which estimation noise (independent in each) does not feed, in the median over the six
pairs (a bright cell firing pulls the shifts of the one or two quarters it lies in together: on a still simulated
movie, two halves had read 0.45 px).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from cnmflow.auto_params.estimate import SeriesMemo
from cnmflow.auto_params.sample import sample_movie
from cnmflow.motion.highpass import highpass
from cnmflow.motion.rigid import RigidTemplate, estimate_rigid
from cnmflow.motion.template import initial_template
from cnmflow.progress import report

#: Frames read (full rate): brain motion shows within seconds. A longer movie is read in SAMPLE_BLOCKS contiguous
#: blocks of SAMPLE_FRAMES / SAMPLE_BLOCKS from its start, middle and end, so a slow drift over the session (a
#: baseplate or the tissue settling) shows as the blocks' offsets.
SAMPLE_FRAMES = 300
SAMPLE_BLOCKS = 3
#: Bytes of float32 frames the sample may hold.
SAMPLE_BYTES = 1 << 26
#: Frames are block-averaged in space to at most this side before estimating (the shifts scaled back).
MAX_SIDE = 256
#: Fewest pixels on each side of a quarter of the frame (after downsampling): smaller frames get no note.
MIN_QUARTER = 32
#: Motion the quarters share (sd, px, both axes together) from which a run is told: sd 0.3 px per axis (read
#: .36-.40) cost cortex F1 .03-.08 and correction gained -.01 to +.04; 0.45 (read .54-.62) cost .16-.17, correction
#: gained .13-.16.
NOTE_SD_PX = 0.45
#: Drift (px, first block to last) the note names: a still Gaussian movie read up to 0.2 px, a drift of 1 px 0.8.
DRIFT_SAID_PX = 1.0
#: Correlation of two quarters' shifts along an axis from which they are taken to share a motion.
MIN_SHARED_R = 0.3
#: Rounds of aligning the frames to sharpen their template before the shifts are read: none (the median of block
#: means; one round read the same sd within .01 px at twice the cost, 11 s against 5 s on 512² frames).
TEMPLATE_ROUNDS = 0
#: Sub-pixel precision of the shifts.
UPSAMPLE = 10

#: The progress stage of reading the blocks.
MOTION_CHECK = "motion check"

_MOVEMENT = SeriesMemo()


@dataclass(frozen=True)
class Movement:
    """Rigid motion read on a sample of the movie: its shared sd and the largest shift from the median position."""

    sd_px: float
    largest_px: float
    n_frames: int
    #: Blocks the frames were read in, and the distance (px) between the median positions of the first and the last.
    n_blocks: int = 1
    drift_px: float = 0.0


def movement(series, *, gsig_filt: float | None, max_shift: int) -> Movement | None:
    """The rigid motion of frames from the series' start, middle and end (:class:`Movement`; a short series': all
    its frames up to SAMPLE_FRAMES from its middle), or None where the frame is too small to
    read it; remembered per process while the files are unchanged. ``gsig_filt`` (px, full resolution) high-passes
    the frames first (1P data); ``max_shift`` bounds the search (px)."""
    return _MOVEMENT.get(series, (gsig_filt, max_shift), lambda: _read(series, gsig_filt, max_shift))


def movement_note(series, params, *, gsig: float | None = None) -> str | None:
    """The note for a run that leaves motion uncorrected on a movie that clearly moves, else None. ``gsig`` stands
    for a gSig still "auto" in ``params`` (``cnmflow suggest``)."""
    if params.motion_correction != "none":
        return None
    filt = params.motion.gSig_filt
    gsig_filt = (float(max(filt)) if filt is not None
                 else float(gsig if gsig is not None else params.gSig) if params.method_init == "corr_pnr" else None)
    found = movement(series, gsig_filt=gsig_filt, max_shift=max(params.motion.max_shifts))
    if found is None or found.sd_px < NOTE_SD_PX:
        return None
    where = "its middle" if found.n_blocks == 1 else "its start, middle and end"
    drifting = f", drifting {found.drift_px:.1f} px from its start to its end" if found.drift_px >= DRIFT_SAID_PX else ""
    return (f"the movie moves: its frames shift by {found.sd_px:.2f} px (sd, read on {found.n_frames} frames from "
            f"{where}, every quarter of the field alike), up to {found.largest_px:.1f} px{drifting}, and "
            "motion_correction is 'none'. Uncorrected, moving cells are split or doubled (simulated cortex moving by "
            "sd 0.45 px per axis: F1 .63, corrected .76-.79; drifting 2 px over the movie: .64, corrected .77); set "
            "motion_correction=rigid (piecewise_rigid where parts of the field move apart)")


def _read(series, gsig_filt: float | None, max_shift: int) -> Movement | None:
    ssub = max(1, math.ceil(max(series.frame_shape) / MAX_SIDE))
    rows, cols = (side // ssub for side in series.frame_shape)
    if min(rows, cols) // 2 < MIN_QUARTER or series.n_frames < 20:
        return None
    frames, blocks = _sample(series, ssub)
    if gsig_filt is not None:
        width = max(1, round(gsig_filt / ssub))
        frames = highpass(frames, gsig_filt=(width, width))
    reach = max(1, min(math.ceil(max_shift / ssub), rows // 8, cols // 8))
    half_rows, half_cols = rows // 2, cols // 2
    quarters = [_shifts(frames[:, r:r + half_rows, c:c + half_cols], reach)
                for r in (0, half_rows) for c in (0, half_cols)]
    shared = sum(float(np.median([_shared_variance(a[:, axis], b[:, axis])
                                  for a, b in itertools.combinations(quarters, 2)])) for axis in (0, 1))
    together = np.mean(quarters, axis=0)
    # each quarter's move from the first block to the last; their median: one quarter's bright cell does not count
    moved = np.median([np.median(q[blocks[-1]], axis=0) - np.median(q[blocks[0]], axis=0) for q in quarters], axis=0)
    return Movement(sd_px=ssub * math.sqrt(shared), largest_px=ssub * float(np.hypot(*together.T).max()),
                    n_frames=len(frames), n_blocks=len(blocks), drift_px=ssub * float(np.hypot(*moved)))


def _sample(series, ssub: int) -> tuple[np.ndarray, list[slice]]:
    """The frames read, and each block's slice of them: one block where the movie is short, else SAMPLE_BLOCKS."""
    if series.n_frames <= SAMPLE_FRAMES:
        frames = sample_movie(series, ssub=ssub, max_frames=SAMPLE_FRAMES, max_bytes=SAMPLE_BYTES)
        return frames, [slice(0, len(frames))]
    parts = []
    for k, at in enumerate(np.linspace(0, 1, SAMPLE_BLOCKS)):  # an AVI is decoded up to each block: seconds each
        report(MOTION_CHECK, k / SAMPLE_BLOCKS)
        parts.append(sample_movie(series, ssub=ssub, max_frames=SAMPLE_FRAMES // SAMPLE_BLOCKS,
                                  max_bytes=SAMPLE_BYTES // SAMPLE_BLOCKS, at=at))
    report(MOTION_CHECK, 1.0)
    ends = np.cumsum([len(part) for part in parts])
    return np.concatenate(parts), [slice(end - len(part), end) for end, part in zip(ends, parts)]


def _shared_variance(a: np.ndarray, b: np.ndarray) -> float:
    """The variance two shift series share (their covariance), where they clearly share one: a correlation of
    MIN_SHARED_R or more (noise alone reads 0 ± 1/sqrt(n), 0.06 on 300 frames, and its covariance, square-rooted,
    had read a still simulated movie as moving by 0.4 px)."""
    if a.std() == 0 or b.std() == 0 or np.corrcoef(a, b)[0, 1] < MIN_SHARED_R:
        return 0.0
    return float(np.cov(a, b)[0, 1])


def _shifts(frames: np.ndarray, reach: int) -> np.ndarray:
    """Each frame's rigid shift against the frames' own template, from their median position (px)."""
    template = initial_template(frames, max_shifts=(reach, reach), upsample_factor=UPSAMPLE, rounds=TEMPLATE_ROUNDS)
    shifts = estimate_rigid(frames, RigidTemplate.of(template, max_shifts=(reach, reach)), upsample_factor=UPSAMPLE)
    return shifts - np.median(shifts, axis=0)
