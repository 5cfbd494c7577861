"""Whether the cells a run found are far wider than its gSig says, and what to tell the user then.

gSig sizes the seed search's kernel. Cells much wider than it lose most of their light to the kernel's negative
surround, so their PNR falls and a min_pnr read for cells of gSig's size drops the dimmer ones. Measured on the
realistic CA1 movies (cells of half-max radius 6.5 px; benchmarks/findings/footprint_fidelity.md, h16ideas): at
gSig 3 the cells' median PNR is 0.41 of its value at gSig 6 (0.64 at gSig 4, 0.88 at gSig 5), and the IDEAS
sample file's gSig 3 keeps 54 and 63 of 160 cells on seeds 1 and 4 (F1@0.5 0.51 / 0.56) where gSig 6 keeps 153 /
151 (0.89 / 0.89); 95 and 85 of the cells lost there are never seeded. The footprints the fit keeps still show the
cells' size: their median half-max radius is 2.0·gSig at gSig 3. The note is the product's answer: the engine
cannot know the cells' size before it seeds them, so validation reads it from the movie as ``cnmflow suggest`` does
(:func:`radius_note`, before any compute; :func:`gsig_note` after the fit where the movie showed too few cells to
read it), and a gSig the user set is not changed behind their back (a residual search with a kernel of the first cells' size, measured,
lost on held-out movies: the findings' h16ideas section). The gSiz it suggests is 4·gSig+1: on CA1 at gSig 6 with
the file's rf 40 / stride 20, gSiz 25 gave median IoU 0.77 / 0.80 on seeds 1 / 4, the file's gSiz 13 0.65 / 0.68.
"""

from __future__ import annotations

import numpy as np

from cnmflow.engine.estimates import Estimates
from cnmflow.engine.footprint_shape import half_max_radii

#: The accepted components' median half-max radius, in gSig, from which the note is given. Fits read 0.9–1.4 where
#: gSig fits the cells (realistic CA1 at gSig 6: 1.0–1.14; cortex L2/3 at gSig 3, cells of 4.3 px: 1.30–1.32;
#: Gaussian cells at gSig = their sd: 1.2–1.4; the real IDEAS clip part2 at gSig 3: 0.82–0.86), 1.50 on CA1 at
#: gSig 4 (F1@0.5 0.78 against 0.89 at gSig 6) and 1.98 at the IDEAS file's gSig 3.
WIDE_RATIO = 1.5
#: Fewer accepted components than this say too little about the cells' size.
MIN_COMPONENTS = 5


def median_half_max_radius(estimates: Estimates) -> float | None:
    """The accepted components' median half-max radius (pixels); None with fewer than MIN_COMPONENTS."""
    accepted = estimates.accepted
    if accepted.size < MIN_COMPONENTS:
        return None
    return float(np.median(half_max_radii(estimates.A[:, accepted])))


def far_wider(radius: float, gsig: float) -> bool:
    """Whether cells of half-max ``radius`` are far wider than ``gsig`` (:data:`WIDE_RATIO`): both notes' test."""
    return radius >= WIDE_RATIO * gsig


def _the_fix(radius: float) -> str:
    """The values both notes suggest: gSig the cells' radius, gSiz 4·gSig+1 (the module docstring says why)."""
    return f"set gSig to about {radius:.0f} and gSiz to about {4 * round(radius) + 1} (4·gSig+1), or gSig=auto"


#: What both notes add where min_corr / min_pnr were set for the small gSig (the cuts move with the seed filter).
REREAD_THRESHOLDS = "and read min_corr / min_pnr again at that gSig (`cnmflow suggest` shows both)"


def radius_note(gsig: float, radius: float, *, reread_thresholds: bool = False) -> str | None:
    """Before a fit: a note when a gSig the user set lies far below the cells' half-max radius read from the movie
    (``cnmflow.auto_params.radius``, which reads the realistic movies' true 6.5 / 4.3 px as 6.50–6.56 /
    4.22–4.29: CA1 at the IDEAS file's gSig 3 2.2·gSig, at gSig 4 1.6; cortex L2/3 at gSig 3 1.4; the real IDEAS
    clip part2 0.8). ``reread_thresholds``: min_corr / min_pnr were set too (a run's; ``suggest`` reads them)."""
    if not far_wider(radius, gsig):
        return None
    reread = f", {REREAD_THRESHOLDS}" if reread_thresholds else ""
    return (f"gSig={gsig:g} is set, but the cells' half-max radius reads {radius:.1f} px in the movie "
            f"({radius / gsig:.1f}·gSig): a seed filter that small misses cells of that size (their PNR falls), so the "
            f"dimmer ones are likely to be missed; {_the_fix(radius)}{reread}")


def gsig_note(estimates: Estimates, gsig: float) -> str | None:
    """After a fit: a note naming gSig and the cells' measured radius when the cells are far wider than gSig, else
    None. A run that gave :func:`radius_note` before the fit does not give this one too (the export skips it): one
    note per run, the one the user read before the compute."""
    radius = median_half_max_radius(estimates)
    if radius is None or not far_wider(radius, gsig):
        return None
    return (f"the cells found are wider than gSig={gsig:g} says: their median half-max radius is {radius:.1f} px "
            f"({radius / gsig:.1f}·gSig). A seed filter that small misses cells of that size (their PNR falls "
            f"below min_pnr), so the dimmer ones are likely missing; {_the_fix(radius)}, {REREAD_THRESHOLDS}")
