"""Is a component an in-focus soma? Its *own image*: what the movie shows when its trace alone fires.

A one-photon movie also holds cells above and below the focal plane. Their light reaches the
sensor through a scattering PSF that widens with depth, so when such a cell fires the movie shows
a broad blob with a flat top; an in-focus soma shows a compact core of the soma's size (gSig) and a
faint halo. A component seeded on an out-of-focus cell (its trace follows that cell) or on neuropil
has a footprint cut to a neuron's size like every other, so the footprint does not tell them apart;
the movie around it does (issue #16).

The own image of component k is its row of the least-squares regression of the mean-free movie, in
a window of radius ``4·gSig`` around the footprint's peak, on the centred traces of every component
whose footprint reaches the window: the light that moves with k's trace and with no other
component's. Regressing on the neighbours too keeps their transients (which a dense field's most
active frames also hold) out of k's image, and a second component on one neuron gives that neuron's
light to the one that explains it and keeps only what it carries besides.

Its *core contrast*: the mean within gSig of the peak over the mean at gSig–2·gSig, both above the
median at 3–4·gSig (the local level). A Gaussian blob of sd gSig gives 2.5, one of sd 1.45·gSig 1.6,
a flat one 1: an in-focus soma through the scattering PSF gives ~2–3 (the realistic simulator's CA1
cells: median 2.6 at gSig 6), a defocused cell or a neuropil mode less. The *focus ratio* is that
contrast over the median of the fit's components (the typical in-focus cell of this movie at this
gSig, so a gSig set a little small or large moves both). A component is rejected as out of focus when
its focus ratio is below ``focus_thr`` (default 0.63: own light ≳ 1.45× as wide as the typical cell's).

A second component on one neuron (a *duplicate*, its trace following the neuron's) gives the neuron's
light to the component that explains it better: what is left in its own image is what it carries
besides — an out-of-focus cell or neuropil it mixed in, or nothing above the local level (ratio 0) —
so the same test rejects it. The test then re-reads its neighbours without it (two components that
share a neuron's light can both look flat at first), so the neuron's other component gets the light
back and is kept: a pair is resolved to one. Two components that both keep a core (a residual-search seed
1.3–1.4 gSig off a found soma, one soma seeded twice) are a *pair on one soma* when one's peak lies on the
other's footprint and their traces follow each other (``PAIR_FOOTPRINT_FRACTION``, ``PAIR_TRACE_CORR``): once no
component is left below the threshold, the member whose own image is less like the typical cell's (focus ratio
farther from 1 on a log scale) is rejected — not the flatter one: a point left over once the other took the soma's
light reads far above 1 (benchmarks/findings/footprint_fidelity.md, h16twice, h16pair). Rejected, not merged: a merge
would pour the duplicate's contaminant into the neuron's trace and, measured on the realistic movies, a
close-neighbour merge also joins true neighbours (benchmarks/findings/footprint_fidelity.md, h16mrg).
Only a pair whose traces follow each other weakly (each peak on the other's footprint, r 0.35–0.5:
``weak_soma_pairs``), both members accepted, is merged by the fit, and the test run again: each member then carries
a contaminant of its own and neither is the neuron's clean component (h17merge, h19merge). So is a pair by the strong
rule with a member the test does not judge (its peak within EDGE_JUDGED_GSIG·gSig of the field's edge:
``unjudged_soma_pairs``): that member has no focus ratio to choose by, and rejecting it when the other is judged lost
matches where merging did not (h20edge).

The typical cell is read on the components whose whole window lies inside the field, and the test runs only
when at least MIN_JUDGED have one (the median needs a population). A component whose window the field's edge
cuts is judged too when its peak lies at least EDGE_JUDGED_GSIG·gSig inside: its core and the gSig–2·gSig
annulus are whole, and the level is read on the part of its 3–4·gSig ring inside the field (a ring's median
needs no whole ring). At gSig 6 a 4·gSig window leaves a third of a 256² field unjudged; the edge's
out-of-focus components and mixtures were never tested there (benchmarks/findings/footprint_fidelity.md, h16edge).
Nothing is removed: rejected components are reported (``Estimates.idx_components_bad``, CaImAn's name; the
outputs' "rejected" status) and stay in the model, so the light they explain stays out of their
neighbours' traces.

The *halo test* (``halo_thr`` > 0, off by default) reads the own image out to 6·gSig: a defocused cell's light
still stands at 3–4·gSig, where the core contrast reads its level, so at a small gSig (cortex at 3) such a cell
keeps a focus ratio near a soma's (.65–.88); its share of the core's light at 2–3·gSig, read above the level at
5–6·gSig, is about twice the typical cell's. Measured on the realistic cortex movies with looser thresholds (0.6 / 4:
more out-of-focus components to take); at the default thresholds it cost matched cells on one held-out seed, and on
CA1 at gSig 6, whose cells' own images are compact, a few true cells (benchmarks/findings/footprint_fidelity.md,
h16oof).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.chunking import chunk_slices
from cnmflow.engine.resample import block_means_along, frame_block_means
from cnmflow.pixel_order import c_order_index, pixel_index

#: The window's radius and the local level's ring, in gSig: the level is read at 3–4·gSig, past a
#: soma's core and most of its halo (CA1's true profile is at 4% of its peak 3 gSig out). The components
#: regressed on are those reaching this window.
WINDOW_GSIG = 4.0
LEVEL_RING_GSIG = (3.0, 4.0)
#: The halo test (``halo_thr`` > 0): the own image is read out to HALO_WINDOW_GSIG, its *halo* is the mean at
#: HALO_RING_GSIG over the core's mean (within gSig), both above the far level (median at FAR_LEVEL_RING_GSIG).
#: A defocused cell's light still stands at 3–4·gSig, so the core contrast's level, read there, cuts into it and
#: its ratio stays near an in-focus cell's (cortex at gSig 3: .65–.88); read past it, its halo is about twice the
#: typical cell's (realistic cortex seeds 1 and 4 at 0.6 / 4: out-of-focus components 1.6–2.6× the median). The
#: *halo ratio* is the halo over the median of the fit's components; above ``halo_thr`` a component is rejected
#: (benchmarks/findings/footprint_fidelity.md, h16oof: 1.8 on cortex at gSig 3; CA1 at gSig 6 has a tight median and
#: loses true cells).
HALO_WINDOW_GSIG = 6.0
HALO_RING_GSIG = (2.0, 3.0)
FAR_LEVEL_RING_GSIG = (5.0, 6.0)
#: ... and only a halo above HALO_FLOOR is judged (a Gaussian of sd 1.8·gSig keeps 0.4 of its core's light at
#: 2–3·gSig): where the fit's cells have compact own images (CA1 at gSig 6: median 0.09, the Gaussian 1P movies
#: ~0.06) 1.8× the median falls among true cells. Cortex seeds 1 and 4 reject the same with 0–0.4.
HALO_FLOOR = 0.4
#: Most products (float32 values) held at once: more components than fit take another pass over the movie
#: (256 MB; CA1 256² with 160 components needs 6 M).
CROSS_VALUES = 2 ** 26
#: Fewest components with a whole window for the median to stand for the movie's in-focus cells.
MIN_JUDGED = 5
#: Two components on one soma: the footprint peak of one lies where the other's footprint is at least
#: PAIR_FOOTPRINT_FRACTION of its maximum, and their traces (at the test's rate) correlate at least
#: PAIR_TRACE_CORR — both share the soma's transients. Of such a pair the one whose own image is less like the
#: typical cell's (focus ratio farther from 1 on a log scale) is rejected whatever its ratio, once the flat components
#: are: the brighter one is not always the better footprint (benchmarks/findings/footprint_fidelity.md, h16foc,
#: h16twice). A component whose window the field's edge cuts is judged when its peak lies at least this many gSig
#: from the edge (its core and the gSig–2·gSig annulus whole). CA1 seed 1: 2 and 3 judge the same, 1.5
#: rejects a cell whose annulus the edge cuts (benchmarks/findings/footprint_fidelity.md, h16edge).
EDGE_JUDGED_GSIG = 2.0
PAIR_FOOTPRINT_FRACTION = 0.3
PAIR_TRACE_CORR = 0.5
#: A pair on one soma whose traces follow each other only weakly: *each* peak lies where the other's footprint is at
#: least PAIR_MUTUAL_FRACTION of its maximum, and their traces (the test's rate) correlate at least
#: PAIR_MUTUAL_TRACE_CORR but below PAIR_TRACE_CORR — each member mixes the neuron with a different contaminant, so
#: the focus ratio does not tell which is the neuron's. When the test accepts both, the fit merges them where the
#: merge step merges and runs the background, traces and test again from there (engine/fitting). Read on seeds 1
#: and 4 (benchmarks/findings/footprint_fidelity.md, h16dup); h17merge: copies 3 → 0 on seeds 1–9, two held-out CA1
#: fits −.004 / −.006 F1@IoU0.5; h19merge, fresh seeds 10–15 (24 fits, one-shot): copies 9 → 8, no fit loses over
#: .003; fresh 16–18 (18 fits): copies 7 → 5, the three fits with a pair all gain.
PAIR_MUTUAL_FRACTION = 0.4
PAIR_MUTUAL_TRACE_CORR = 0.35


@dataclass(frozen=True)
class FocusTest:
    """Each component's focus ratio (NaN where not judged) and the components rejected as out of focus."""

    ratio: np.ndarray        # (K,)
    rejected: np.ndarray     # indices, ascending


@dataclass(frozen=True)
class Window:
    """One component's square window: its C-order pixel indices, Fortran indices and the peak's place in it."""

    c_index: np.ndarray      # (n,) into a C-ordered frame
    f_index: np.ndarray      # (n,) into A's rows
    shape: tuple[int, int]
    peak: tuple[int, int]    # the footprint's peak, in window coordinates


@dataclass(frozen=True)
class WindowRegressions:
    """What the own images are solved from: the centred traces' Gram matrix and, per judged component,
    the components reaching its window (itself first) and their traces' products with the window's pixels."""

    gram: np.ndarray                      # (K, K)
    neighbours: dict[int, np.ndarray]
    cross: dict[int, np.ndarray]          # (len(neighbours[k]), window pixels)

    def own_image(self, k: int, window: Window, *, without: frozenset[int] = frozenset()) -> np.ndarray:
        """Component k's own image, the components in ``without`` left out of the regression."""
        group = self.neighbours[k]
        keep = np.array([j == k or int(j) not in without for j in group])
        return _own_row(self.gram, group[keep], self.cross[k][keep]).reshape(window.shape)


def out_of_focus(movie, A: sp.csc_matrix, C: np.ndarray, dims: tuple[int, int], *, gsig: float, focus_thr: float,
                 halo_thr: float = 0.0, chunk_frames: int = 500, tsub: int = 1) -> FocusTest:
    """The focus test of the module docstring on every component whose core and annulus lie inside the field
    (and, with ``halo_thr`` > 0, the halo test: HALO_WINDOW_GSIG)."""
    K = A.shape[1]
    ratio = np.full(K, np.nan)
    radius = int(np.ceil(WINDOW_GSIG * gsig))
    A = sp.csc_matrix(A)
    columns = [A[:, k].toarray().ravel() for k in range(K)]
    windows = [footprint_window(column, dims, radius=radius) for column in columns]
    whole = [k for k, w in enumerate(windows) if w.shape == (2 * radius + 1, 2 * radius + 1)]
    judged = [k for k, w in enumerate(windows) if _annulus_inside(w, gsig=gsig)]
    if focus_thr <= 0 or len(whole) < MIN_JUDGED:
        return FocusTest(ratio=ratio, rejected=np.zeros(0, int))
    reach = int(np.ceil((HALO_WINDOW_GSIG if halo_thr > 0 else WINDOW_GSIG) * gsig))
    wide = {k: footprint_window(columns[k], dims, radius=reach) for k in judged}
    regressions = window_regressions(movie, A, C, wide, chunk_frames=chunk_frames, tsub=tsub,
                                     reach={k: windows[k] for k in judged})
    images = {k: regressions.own_image(k, wide[k]) for k in judged}
    typical = float(np.median([core_contrast(images[k], wide[k].peak, gsig=gsig) for k in whole]))
    halos = [halo(images[k], wide[k].peak, gsig=gsig) for k in whole] if halo_thr > 0 else [0.0]
    typical_halo = float(np.nanmedian(halos))
    typical_halo = typical_halo if typical_halo > 0 else np.nan    # off, or no typical halo to compare with

    def read(k: int, without: frozenset[int] = frozenset()) -> tuple[float, float]:
        """Component k's focus ratio and halo ratio (NaN, never over ``halo_thr``, for a halo not over HALO_FLOOR),
        the components in ``without`` left out of its regression."""
        image = regressions.own_image(k, wide[k], without=without) if without else images[k]
        spread = halo(image, wide[k].peak, gsig=gsig) if np.isfinite(typical_halo) else np.nan
        return (core_contrast(image, wide[k].peak, gsig=gsig) / typical,
                spread / typical_halo if spread > HALO_FLOOR else np.nan)

    readings = {k: read(k) for k in judged}
    pairs = soma_pairs(A, windows, regressions.gram, judged)
    rejected = _explain_away(regressions, readings, read, focus_thr=focus_thr, halo_thr=halo_thr, pairs=pairs)
    ratio[judged] = [readings[k][0] for k in judged]
    return FocusTest(ratio=ratio, rejected=np.array(sorted(rejected), dtype=int))


def _annulus_inside(window: Window, *, gsig: float) -> bool:
    """Whether the field holds ``window``'s core and gSig–2·gSig annulus whole (``EDGE_JUDGED_GSIG``)."""
    before, after = np.array(window.peak), np.array(window.shape) - 1 - np.array(window.peak)
    return bool(min(*before, *after) >= _edge_margin(gsig))


def _edge_margin(gsig: float) -> int:
    """How far (px) a peak must lie from the field's edge for the test to judge its component: EDGE_JUDGED_GSIG·gSig,
    at most the window's radius (a window is cut only by the field)."""
    return min(int(np.ceil(EDGE_JUDGED_GSIG * gsig)), int(np.ceil(WINDOW_GSIG * gsig)))


def soma_pairs(A: sp.csc_matrix, windows: list[Window], gram: np.ndarray, judged: list[int]) -> list[tuple[int, int]]:
    """The judged pairs on one soma (``PAIR_FOOTPRINT_FRACTION``, ``PAIR_TRACE_CORR``)."""
    if len(judged) < 2:
        return []
    peaks = np.array([windows[k].f_index[np.ravel_multi_index(windows[k].peak, windows[k].shape)] for k in judged])
    on_other = _peak_shares(sp.csc_matrix(A)[:, judged], peaks) >= PAIR_FOOTPRINT_FRACTION
    follows = _correlations(gram[np.ix_(judged, judged)]) >= PAIR_TRACE_CORR
    close = (on_other | on_other.T) & follows
    return [(judged[a], judged[b]) for a, b in zip(*np.nonzero(np.triu(close, 1)))]


def weak_soma_pairs(A: sp.csc_matrix, C: np.ndarray, *, tsub: int = 1,
                    among: np.ndarray | None = None) -> list[tuple[int, int]]:
    """The pairs on one soma whose traces follow each other weakly (``PAIR_MUTUAL_FRACTION``,
    ``PAIR_MUTUAL_TRACE_CORR`` up to ``PAIR_TRACE_CORR``), traces compared at the test's rate (``tsub``); with
    ``among`` (component indices, e.g. those the test accepted), only pairs of those, in the full indices."""
    measures = _pair_measures(A, C, among, tsub=tsub)
    return [] if measures is None else _weak_pairs(measures)


def unjudged_soma_pairs(A: sp.csc_matrix, C: np.ndarray, dims: tuple[int, int], *, gsig: float, tsub: int = 1,
                        among: np.ndarray | None = None) -> list[tuple[int, int]]:
    """The pairs on one soma by the strong rule (``PAIR_FOOTPRINT_FRACTION`` on either side, ``PAIR_TRACE_CORR``)
    with a member the test does not judge (its peak within ``EDGE_JUDGED_GSIG``·gSig of the field's edge): no focus
    ratio chooses a member there, so :func:`soma_pairs` never sees them; with ``among``, only pairs of those, in the
    full indices (benchmarks/findings/footprint_fidelity.md, h19copies, h20edge)."""
    measures = _pair_measures(A, C, among, tsub=tsub)
    return [] if measures is None else _unjudged_pairs(measures, dims, gsig=gsig)


def soma_pairs_to_merge(A: sp.csc_matrix, C: np.ndarray, dims: tuple[int, int], *, gsig: float, tsub: int = 1,
                        among: np.ndarray | None = None, unjudged: bool = True) -> list[tuple[int, int]]:
    """The pairs the fit merges, from one measurement of the components' peaks and traces: the
    :func:`weak_soma_pairs`, then (with ``unjudged``) the :func:`unjudged_soma_pairs`."""
    measures = _pair_measures(A, C, among, tsub=tsub)
    if measures is None:
        return []
    return _weak_pairs(measures) + (_unjudged_pairs(measures, dims, gsig=gsig) if unjudged else [])


@dataclass(frozen=True)
class _PairMeasures:
    """Of ``among``'s components: the footprints' shares at each other's peaks (``_peak_shares``), their traces'
    correlations and their peaks (Fortran pixel indices)."""

    among: np.ndarray   # component indices, into the full set
    share: np.ndarray   # (n, n)
    corr: np.ndarray    # (n, n)
    peaks: np.ndarray   # (n,)


def _weak_pairs(measures: _PairMeasures) -> list[tuple[int, int]]:
    share, corr, among = measures.share, measures.corr, measures.among
    mutual = (share >= PAIR_MUTUAL_FRACTION) & (share.T >= PAIR_MUTUAL_FRACTION)
    weak = (corr >= PAIR_MUTUAL_TRACE_CORR) & (corr < PAIR_TRACE_CORR)
    return [(int(among[j]), int(among[k])) for j, k in zip(*np.nonzero(np.triu(mutual & weak, 1)))]


def _unjudged_pairs(measures: _PairMeasures, dims: tuple[int, int], *, gsig: float) -> list[tuple[int, int]]:
    on_other = measures.share >= PAIR_FOOTPRINT_FRACTION
    edge = ~_peaks_judged(measures.peaks, dims, gsig=gsig)
    close = (on_other | on_other.T) & (measures.corr >= PAIR_TRACE_CORR) & (edge[:, None] | edge[None, :])
    return [(int(measures.among[j]), int(measures.among[k])) for j, k in zip(*np.nonzero(np.triu(close, 1)))]


def _pair_measures(A: sp.csc_matrix, C: np.ndarray, among: np.ndarray | None, *, tsub: int) -> _PairMeasures | None:
    """The :class:`_PairMeasures` of ``among`` (all components when None), traces compared at the test's rate
    (centred, block means over ``tsub``); None when fewer than two components are asked about."""
    among = np.arange(A.shape[1]) if among is None else np.asarray(among, dtype=int)
    if among.size < 2:
        return None
    A, C = sp.csc_matrix(A)[:, among], np.asarray(C, np.float64)[among]
    peaks = np.asarray(A.argmax(axis=0)).ravel()
    slow = block_means_along(C - C.mean(axis=1, keepdims=True), tsub, axis=1)
    return _PairMeasures(among=among, share=_peak_shares(A, peaks), corr=_correlations(slow @ slow.T), peaks=peaks)


def _peaks_judged(peaks: np.ndarray, dims: tuple[int, int], *, gsig: float) -> np.ndarray:
    """Whether the test judges a component with its peak at each of ``peaks`` (Fortran pixel indices): at least
    ``_edge_margin`` from every edge, the margin ``_annulus_inside`` reads in a window."""
    rows, cols = np.unravel_index(np.asarray(peaks, dtype=int), dims, order="F")
    inside = np.minimum.reduce([rows, cols, dims[0] - 1 - rows, dims[1] - 1 - cols])
    return inside >= _edge_margin(gsig)


def _peak_shares(A: sp.csc_matrix, peaks: np.ndarray) -> np.ndarray:
    """(K, K): footprint k's weight at component j's peak pixel (``peaks[j]``), over footprint k's maximum — how much
    of a pair's members lies on the other's peak (0 for an empty footprint)."""
    at_peaks = A[peaks].toarray()
    maxima = A.max(axis=0).toarray().ravel()
    return at_peaks / np.where(maxima > 0, maxima, np.inf)[None, :]


def _correlations(gram: np.ndarray) -> np.ndarray:
    """Pearson correlations from the Gram matrix of mean-subtracted traces."""
    scale = np.sqrt(np.maximum(np.diag(gram), np.finfo(float).tiny))
    return gram / scale[:, None] / scale[None, :]


def _less_soma_like(pairs: list[tuple[int, int]], ratios: dict[int, float], rejected: set[int]) -> list[int]:
    """Of each pair on one soma with both members still accepted, the member whose own image is less like the
    typical cell's: focus ratio farther from 1 on a log scale (a flat image far below it; one far above it, up to
    ``inf``, is a point left over once the other took the soma's light)."""
    def distance(k: int) -> float:
        return abs(float(np.log(ratios[k]))) if 0 < ratios[k] < np.inf else np.inf
    return [j if distance(j) > distance(k) else k for j, k in pairs if j not in rejected and k not in rejected]


def _explain_away(regressions: WindowRegressions, readings: dict[int, tuple[float, float]], read, *,
                  focus_thr: float, halo_thr: float = 0.0, pairs: list[tuple[int, int]] = ()) -> set[int]:
    """Reject the flattest component below ``focus_thr`` — once none is left, the less soma-like member of a pair on
    one soma (``pairs``), then the one with the widest halo above ``halo_thr`` (0: none) — re-read its neighbours'
    own images without it (``read(k, without)``: focus ratio, halo ratio), repeat.

    Two components on one neuron share its light in the joint regression, and both may look flat; once
    the flatter is rejected the other gets the neuron's light back — a pair is resolved to one. ``readings``
    is updated in place."""
    rejected: set[int] = set()
    while True:
        ratios = {k: value[0] for k, value in readings.items()}
        flat = [k for k, value in ratios.items() if value < focus_thr and k not in rejected]
        wide = [k for k, value in readings.items() if 0 < halo_thr < value[1] and k not in rejected]
        if flat:
            worst = min(flat, key=lambda k: ratios[k])
        elif paired := _less_soma_like(pairs, ratios, rejected):
            worst = min(paired, key=lambda k: ratios[k])
        elif wide:
            worst = max(wide, key=lambda k: readings[k][1])
        else:
            return rejected
        rejected.add(worst)
        for k in readings:
            if k not in rejected and worst in regressions.neighbours[k]:
                readings[k] = read(k, frozenset(rejected))


def footprint_window(column: np.ndarray, dims: tuple[int, int], *, radius: int) -> Window:
    """The window of ``radius`` pixels around a (Fortran-ordered, dense) footprint's peak, cut at the field's edge."""
    peak_row, peak_col = np.unravel_index(int(np.argmax(column)), dims, order="F")
    r0, r1 = max(peak_row - radius, 0), min(peak_row + radius + 1, dims[0])
    c0, c1 = max(peak_col - radius, 0), min(peak_col + radius + 1, dims[1])
    rows, cols = np.meshgrid(np.arange(r0, r1), np.arange(c0, c1), indexing="ij")
    return Window(c_index=c_order_index(rows.ravel(), cols.ravel(), dims),
                  f_index=pixel_index(rows.ravel(), cols.ravel(), dims),
                  shape=(r1 - r0, c1 - c0), peak=(int(peak_row - r0), int(peak_col - c0)))


def window_regressions(movie, A: sp.csc_matrix, C: np.ndarray, windows: dict[int, Window], *,
                       chunk_frames: int = 500, tsub: int = 1,
                       reach: dict[int, Window] | None = None) -> WindowRegressions:
    """The products the own images of ``windows``' components are solved from: one pass over ``movie`` per
    batch of components whose products fit in CROSS_VALUES; movie and traces averaged over ``tsub`` frames
    first (the rate the patches fit at: a transient spans several frames, and the pass costs ``1/tsub``).
    Each is regressed on the components whose footprint reaches its window in ``reach`` (default: ``windows``):
    the own image is solved pixel by pixel, so a wider window read on the same components keeps the inner
    window's values."""
    A_rows = sp.csr_matrix(A)
    reach = windows if reach is None else reach
    neighbours = {k: _reaching(A_rows, reach[k].f_index, k) for k in windows}
    traces = np.asarray(C, np.float64)
    traces = traces - traces.mean(axis=1, keepdims=True)
    cross: dict[int, np.ndarray] = {}
    for batch in _batches({k: len(neighbours[k]) * window.c_index.size for k, window in windows.items()}):
        cross.update(_window_products(movie, traces, {k: windows[k] for k in batch}, neighbours,
                                      chunk_frames=chunk_frames, tsub=tsub))
    slow = block_means_along(traces, tsub, axis=1)
    return WindowRegressions(gram=slow @ slow.T, neighbours=neighbours, cross=cross)


def _batches(sizes: dict[int, int]) -> list[list[int]]:
    """Consecutive groups of components whose products together stay within CROSS_VALUES (one at least)."""
    batches: list[list[int]] = [[]]
    total = 0
    for k, size in sizes.items():
        if batches[-1] and total + size > CROSS_VALUES:
            batches.append([])
            total = 0
        batches[-1].append(k)
        total += size
    return batches


def _window_products(movie, traces: np.ndarray, windows: dict[int, Window], neighbours: dict[int, np.ndarray], *,
                     chunk_frames: int, tsub: int) -> dict[int, np.ndarray]:
    """Per component, its neighbours' centred traces times its window's pixels, summed over the movie."""
    cross = {k: np.zeros((len(neighbours[k]), window.c_index.size), np.float32) for k, window in windows.items()}
    for chunk in chunk_slices(movie.shape[0], max(chunk_frames // tsub, 1) * tsub):
        frames = frame_block_means(np.asarray(movie[chunk], np.float32), tsub)
        # pixel-major, so that a window's pixels are rows read whole: gathered from the frame-major
        # chunk, each window's columns cost ~3x its product (CA1 256²: 1.0 of the test's 1.2 CPU s)
        pixels = np.ascontiguousarray(frames.reshape(frames.shape[0], -1).T)
        del frames
        block = block_means_along(traces[:, chunk], tsub, axis=1).astype(np.float32)
        for k, window in windows.items():
            cross[k] += block[neighbours[k]] @ pixels[window.c_index].T
    return {k: value.astype(np.float64) for k, value in cross.items()}


def _reaching(A_rows: sp.csr_matrix, f_index: np.ndarray, k: int) -> np.ndarray:
    """The components with footprint in the window (``k`` first)."""
    inside = np.flatnonzero(A_rows[f_index].getnnz(axis=0))
    return np.concatenate([[k], inside[inside != k]]).astype(int)


def _own_row(gram: np.ndarray, group: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """The first member's row of the joint least-squares images of ``group``'s traces (a small ridge keeps it
    solvable)."""
    sub = gram[np.ix_(group, group)]
    ridge = 1e-9 * max(float(np.trace(sub)) / len(group), np.finfo(float).tiny)
    solved = np.linalg.solve(sub + ridge * np.eye(len(group)), cross)
    return solved[0]


def halo(image: np.ndarray, peak: tuple[int, int], *, gsig: float) -> float:
    """Mean at HALO_RING_GSIG of ``peak`` over the mean within gSig, both above the median at FAR_LEVEL_RING_GSIG
    (the part of each ring inside ``image``): how much of the core's light still stands 2–3 gSig out.

    ``inf`` when the core does not rise above the far level; NaN when ``image`` holds none of the far ring."""
    distance = _distances(image.shape, peak)
    far = (distance > FAR_LEVEL_RING_GSIG[0] * gsig) & (distance <= FAR_LEVEL_RING_GSIG[1] * gsig)
    if not far.any():
        return float("nan")
    level = float(np.median(image[far]))
    core = float(image[distance <= gsig].mean()) - level
    ring = float(image[(distance > HALO_RING_GSIG[0] * gsig) & (distance <= HALO_RING_GSIG[1] * gsig)].mean()) - level
    return ring / core if core > 0 else float("inf")


def _distances(shape: tuple[int, int], peak: tuple[int, int]) -> np.ndarray:
    """Each pixel's distance from ``peak``."""
    return np.hypot(np.arange(shape[0])[:, None] - peak[0], np.arange(shape[1])[None, :] - peak[1])


def core_contrast(image: np.ndarray, peak: tuple[int, int], *, gsig: float) -> float:
    """Mean within gSig of ``peak`` over the mean at gSig–2·gSig, both above the median at 3–4·gSig.

    ``inf`` when nothing rises above the level around the core (a point-like core); 0 when the core
    does not rise above it either."""
    distance = _distances(image.shape, peak)
    ring = (distance > LEVEL_RING_GSIG[0] * gsig) & (distance <= LEVEL_RING_GSIG[1] * gsig)
    level = float(np.median(image[ring])) if ring.any() else 0.0
    core = float(image[distance <= gsig].mean()) - level
    annulus = float(image[(distance > gsig) & (distance <= 2 * gsig)].mean()) - level
    if core <= 0:
        return 0.0
    return core / annulus if annulus > 0 else float("inf")
