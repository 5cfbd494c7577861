"""Telling neurons from out-of-focus background sources by footprint size.

In 1P data, out-of-focus cells and neuropil make blobs several times wider than a neuron that
fluctuate on their own; the zero-mean seeding filter damps them but bright ones still pass
min_corr / min_pnr. A footprint whose second-moment radius is well beyond the user's gSig is
such a source, not a neuron: the ring background is the model for it (Zhou et al. 2018).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

from cnmflow.pixel_order import image_to_column, pixel_position

#: A refined component wider than this many gSig (geometric mean of its footprint's principal
#: sds) is a background source. Simulated neurons of radius gSig·(0.8–1.2) measure ≈ 0.8–1.2
#: gSig, but on the real sample (movie_part2, gSig 3) cells CaImAn keeps reach ~2 gSig, so only
#: far wider sources are dropped: a tighter bound buys precision on simulations and loses cells.
MAX_RADIUS_FACTOR = 2.5
#: Initial footprints carry a halo of background (they are regressions in a gSiz box), so at
#: initialisation only sources far wider than a neuron are set aside.
MAX_INITIAL_RADIUS_FACTOR = 2.0


def footprint_radii(A: np.ndarray, dims: tuple[int, int], *, cut: np.ndarray | None = None) -> np.ndarray:
    """(K,) geometric-mean standard deviation (pixels) of each non-negative footprint.

    ``A`` is (rows*cols, K) in Fortran pixel order; an empty footprint has radius 0. Footprints
    flagged in ``cut`` (K,) are cut off by the edge of the field of view: only their extent
    along the edge is intact, so their radius is the larger principal sd.
    """
    A = sp.csc_matrix(A, dtype=np.float64) if sp.issparse(A) else np.asarray(A, dtype=np.float64)
    pixels = np.arange(A.shape[0])
    row, col = (coordinate.astype(float) for coordinate in pixel_position(pixels, dims))

    def weighted_sum(values: np.ndarray) -> np.ndarray:
        return np.asarray(A.T @ values).ravel()

    mass = weighted_sum(np.ones_like(row))
    safe = np.where(mass > 0, mass, 1.0)
    mean_r, mean_c = weighted_sum(row) / safe, weighted_sum(col) / safe
    var_r = weighted_sum(row ** 2) / safe - mean_r ** 2
    var_c = weighted_sum(col ** 2) / safe - mean_c ** 2
    cov_rc = weighted_sum(row * col) / safe - mean_r * mean_c
    determinant = np.maximum(var_r * var_c - cov_rc ** 2, 0.0)
    radius = determinant ** 0.25
    if cut is not None:
        half_trace = (var_r + var_c) / 2
        major = np.sqrt(np.maximum(half_trace + np.sqrt(np.maximum(half_trace ** 2 - determinant, 0.0)), 0.0))
        radius = np.where(cut, major, radius)
    return np.where(mass > 0, radius, 0.0)


def half_max_radii(A: np.ndarray) -> np.ndarray:
    """(K,) radius (pixels) of the disc whose area is the number of pixels at or above half each footprint's peak.

    The half-max radius reads a cell's size as the eye does, with no halo in it: on the realistic simulator's fits
    it is ~1.0·gSig where gSig matches the cells and follows the cells, not gSig, where gSig is far too small
    (CA1's cells, true half-max radius 6.5 px, fitted at gSig 3: 5.9 px). An empty footprint has radius 0.
    """
    A = sp.csc_matrix(A, dtype=np.float64) if sp.issparse(A) else sp.csc_matrix(np.asarray(A, dtype=np.float64))
    radii = np.zeros(A.shape[1])
    for k in range(A.shape[1]):
        values = A.data[A.indptr[k]:A.indptr[k + 1]]
        peak = values.max(initial=0.0)
        if peak > 0:
            radii[k] = np.sqrt(np.count_nonzero(values >= 0.5 * peak) / np.pi)
    return radii


def touches_edges(A: np.ndarray, dims: tuple[int, int], edges: dict[str, bool]) -> np.ndarray:
    """(K,) whether each footprint reaches one of the given image edges ("top", "bottom", "left", "right")."""
    mask = np.zeros(dims, dtype=bool)
    mask[0, :] |= edges.get("top", False)
    mask[-1, :] |= edges.get("bottom", False)
    mask[:, 0] |= edges.get("left", False)
    mask[:, -1] |= edges.get("right", False)
    on_edge = A[np.flatnonzero(image_to_column(mask))]
    return np.asarray((on_edge > 0).sum(axis=0)).ravel() > 0


def neuron_sized(A: np.ndarray, dims: tuple[int, int], *, gsig: float, factor: float = MAX_RADIUS_FACTOR,
                 fov_edges: dict[str, bool] | None = None) -> np.ndarray:
    """(K,) whether each footprint is no wider than ``factor``·gSig (i.e. can be a neuron).

    ``fov_edges`` says which edges of this image are edges of the field of view.
    """
    cut = touches_edges(A, dims, fov_edges) if fov_edges else None
    return footprint_radii(A, dims, cut=cut) <= factor * gsig


def supported_pixels(coefficients: np.ndarray, stderr: np.ndarray, *, sigma: float, min_t: float,
                     peak: tuple[int, int], min_fraction: float = 0.0, null: np.ndarray | None = None,
                     halo_shaped: bool = False, rings: Rings | None = None) -> np.ndarray:
    """The connected region around ``peak`` where a footprint's weights, pooled over a
    neighbourhood, stand significantly above zero.

    ``coefficients`` (rows, cols): each pixel's least-squares weight on the neuron's trace, *not*
    clipped at zero; ``stderr`` (rows, cols): its standard error. A footprint is a smooth image
    (a soma through the microscope's point-spread function), so its far halo — a few % of the
    peak, a fraction of one standard error per pixel — is resolved by pooling: the weights
    Gaussian-averaged with width ``sigma`` (pixels) have standard error ``sqrt(Σ wᵢ² seᵢ²)``
    (independent pixel noise); a pixel is significant where that average is ``min_t`` standard
    errors above zero, and at least ``min_fraction`` of the pooled weights' maximum (a floor
    against slow, temporally correlated background that the independent-noise standard error
    underrates). With ``null`` (bool: pixels where the footprint is absent) the standard error is
    first widened by :func:`null_inflation`, the pooled weights' real spread there. With
    ``halo_shaped`` the region is also held to the shape of a scattering halo: falling away from
    its own largest pooled weight (:func:`radially_falling`; the footprint's ``peak`` may sit a
    pixel or two off it, and a bright cell's rise to it would count) and surrounding that centre
    (:func:`within_surrounded_radius`), so a
    footprint that may grow to a faint halo does not grow onto what its trace picks up beside the
    cell. With ``rings`` (and ``halo_shaped``) the region also reaches as far out as the weights
    pooled on ring sectors around that centre stay significant (:func:`ring_sector_reach`): the
    far halo, a few % of the peak, is too faint for any pixel's neighbourhood but not for a ring.
    Returns a (rows, cols) bool mask: the significant pixels 8-connected to ``peak``
    (empty when ``peak`` itself is not significant).
    """
    coefficients = np.asarray(coefficients, dtype=np.float64)
    variance = np.where(np.isfinite(stderr), np.asarray(stderr, dtype=np.float64) ** 2, 0.0)
    if sigma > 0:
        pooled = ndi.gaussian_filter(coefficients, sigma, mode="nearest")
        pooled_sd = np.sqrt(ndi.gaussian_filter(variance, sigma, mode="nearest") * _squared_weights(float(sigma)))
    else:
        pooled, pooled_sd = coefficients, np.sqrt(variance)
    if null is not None:
        pooled_sd = pooled_sd * null_inflation(pooled, pooled_sd, null)
    floor = min_fraction * pooled.max()
    significant = (pooled >= min_t * pooled_sd) & (pooled > 0) & (pooled >= floor)
    region = _connected(significant, peak)
    if halo_shaped and region.any():
        centre = np.unravel_index(int(np.argmax(np.where(region, pooled, -np.inf))), pooled.shape)
        falling = radially_falling(pooled, pooled_sd, peak=centre, rise_t=min_t)
        significant &= falling & within_surrounded_radius(pooled > 0, centre)
        if rings is not None:
            reach = ring_sector_reach(coefficients, variance, centre, rings=rings, min_t=min_t,
                                      floor=max(floor, 0.0), null=null)
            significant |= reach & falling
        region = _connected(significant, centre)
    return region


@functools.lru_cache(maxsize=16)
def _squared_weights(sigma: float) -> float:
    """``Σ wᵢ²`` of the Gaussian filter of width ``sigma``: the pooled mean's variance per unit pixel
    variance. The same for every footprint of a fit, so computed once."""
    impulse = np.zeros((2 * int(np.ceil(4 * sigma)) + 1,) * 2)
    impulse[impulse.shape[0] // 2, impulse.shape[1] // 2] = 1.0
    return float((ndi.gaussian_filter(impulse, sigma, mode="constant") ** 2).sum())


@dataclass(frozen=True)
class Rings:
    """How :func:`ring_sector_reach` pools: ``sectors`` equal angles × rings ``width`` pixels wide."""

    sectors: int = 12
    width: float = 2.0
    #: with n > 0, :func:`ring_sector_reach` carries the reach on past the last significant ring along
    #: the decay of the last n significant rings (:func:`tail_reach`); 0: the significant rings only
    tail: int = 0


#: fewest ring sectors wholly on null pixels from which :func:`ring_sector_reach` reads their real spread
MIN_NULL_SECTORS = 20


def ring_sector_reach(coefficients: np.ndarray, variance: np.ndarray, centre: tuple[int, int], *, rings: Rings,
                      min_t: float, floor: float, null: np.ndarray | None = None) -> np.ndarray:
    """(rows, cols) bool: the pixels closer to ``centre`` than the first ring on which the weights'
    mean is not significantly above zero.

    A scattering halo is (nearly) radially symmetric about its soma, so pooling along its own
    symmetry — a ring ``rings.width`` px wide — averages many pixels without blurring it radially
    (a 2-px ring 12 px out holds ~150). The ring is cut into ``rings.sectors`` sectors; each sector
    mean has standard error ``sqrt(Σ varᵢ)/n``, widened as :func:`null_inflation` does by the sector
    means' spread where the footprint is absent (``null``). The ring's mean leaves out its brightest
    ``TRIMMED_SECTORS`` (light beside the cell — a neighbour's signal, background left at an edge —
    fills a sector or two, a halo all of them), and only those: on noisy rings that mean sits a little
    low, a test that errs on the side of ending the reach (trimmed on both sides, a dim CA1 cell's broad
    light passed further, h21dimshape). A ring is significant where that mean is ``min_t``
    of its standard errors and ``floor`` above zero. With ``rings.tail`` the reach goes on past the
    first failing ring as :func:`tail_reach` allows.
    """
    cell, n_cells, distance = _ring_cells(coefficients.shape, centre, rings)
    ring = np.floor(distance / rings.width).astype(np.int64)
    counts = np.bincount(cell, minlength=n_cells).astype(np.float64)
    present = counts > 0
    safe = np.where(present, counts, 1.0)
    mean = np.bincount(cell, weights=coefficients.ravel(), minlength=n_cells) / safe
    sd = np.sqrt(np.bincount(cell, weights=variance.ravel(), minlength=n_cells)) / safe
    if null is not None:
        outside = np.bincount(cell, weights=(~null).ravel().astype(np.float64), minlength=n_cells)
        sd = sd * null_inflation(mean, sd, present & (outside == 0), min_count=MIN_NULL_SECTORS)
    low_mean, low_sd = _lower_sector_means(mean.reshape(-1, rings.sectors), sd.reshape(-1, rings.sectors),
                                           present.reshape(-1, rings.sectors), both_sides=False)
    significant = (low_mean >= min_t * low_sd) & (low_mean > 0) & (low_mean >= floor)
    reach = _leading_run(significant)
    if rings.tail > 0:
        reach = tail_reach(low_mean, low_sd, reach, fit_rings=rings.tail, min_t=min_t, floor=floor)
    return ring < reach


def tail_reach(mean: np.ndarray, sd: np.ndarray, reach: int, *, fit_rings: int, min_t: float, floor: float) -> int:
    """How many rings a halo reaches when its last ``fit_rings`` significant rings (of ``reach``) set
    its decay: the rings beyond, while the log-linear decay through those rings' means (weighted by
    their precision) stays above ``floor`` and each ring's mean (``mean`` ± ``sd``) is not ``min_t``
    errors below it; none unless that decay is itself ``min_t`` standard errors below zero (a dim
    cell's noisy rings set no decay to carry on along).

    A scattering halo falls smoothly (nearly exponentially) with distance; its far part, a few % of
    the peak, is too faint for one ring to pass ``min_t`` errors although it holds a good share of
    the footprint's energy (realistic L2/3 at gSig 3: the halo cut ~12 px out, where the truth still
    holds 3% of its peak, and the 90% masks a quarter smaller than the truth's, issue #16). Each ring
    is not tested for being above zero, only for not falling short of the decay the bright rings
    set: the floor ends the reach, a ring where the weights fall away (the cell's light ends) does too.
    """
    if reach < fit_rings or reach >= mean.size or floor <= 0:
        return reach
    last = mean[reach - fit_rings:reach]
    if np.any(last <= 0):
        return reach
    # weighted least squares on log(mean): each ring weighted by (mean / sd)², its log's inverse variance;
    # the decay must itself be determined (min_t standard errors below zero), or nothing is extrapolated
    x = np.arange(reach - fit_rings, reach, dtype=np.float64)
    w = (last / np.maximum(sd[reach - fit_rings:reach], np.finfo(float).tiny)) ** 2
    x_bar = float(np.sum(w * x) / np.sum(w))
    spread = float(np.sum(w * (x - x_bar) ** 2))
    slope = float(np.sum(w * (x - x_bar) * np.log(last)) / spread)
    intercept = float(np.sum(w * np.log(last)) / np.sum(w)) - slope * x_bar
    if slope > -min_t / np.sqrt(spread):
        return reach
    beyond = np.arange(reach, mean.size)
    expected = np.exp(intercept + slope * beyond)
    consistent = (expected >= floor) & (mean[beyond] >= expected - min_t * sd[beyond])
    return reach + _leading_run(consistent)


#: the share of each ring's sectors, the brightest, that :func:`ring_sector_reach` leaves out
TRIMMED_SECTORS = 1 / 6


def _lower_sector_means(mean: np.ndarray, sd: np.ndarray, present: np.ndarray, *, trim: float = TRIMMED_SECTORS,
                        both_sides: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(rings,) each ring's mean over its present sectors less the brightest ``trim`` of them and, with
    ``both_sides``, as many of the dimmest; and that mean's standard error. A ring with no sector kept
    has mean 0 and an infinite error.

    Left out on one side only, the brightest sectors of a ring where the footprint is dim next to the noise
    take the mean down by a share of the sectors' standard error (12 sectors less the brightest 2: 0.27 of
    it), as no halo does: a dim cell's halo read that way fell short of its own weights (realistic CA1 at
    SNR ~2, its 90% mask half the truth's, issue #16, h21dimshape). Trimmed on both sides the mean has no
    such bias under symmetric noise, and light beside the cell still falls in the trimmed top.
    """
    out_mean, out_sd = np.zeros(mean.shape[0]), np.full(mean.shape[0], np.inf)
    n_present = present.sum(axis=1)
    n_drop = n_present - np.ceil((1 - trim) * n_present).astype(np.int64)
    n_kept = n_present - (2 if both_sides else 1) * n_drop
    ascending = np.sort(np.where(present, mean, np.inf), axis=1)    # absent sectors last
    # rings grouped by how many sectors they have: each group's means are one reduction over
    # equal-length rows (the same sums, in the same order, as ring by ring)
    for count in np.unique(n_present[n_kept > 0]):
        rings = np.flatnonzero(n_present == count)
        drop, kept = int(n_drop[rings[0]]) if both_sides else 0, int(n_kept[rings[0]])
        out_mean[rings] = ascending[rings, drop:drop + kept].mean(axis=1)
        errors = sd[rings][present[rings]].reshape(rings.size, count)   # each ring's present sectors, in order
        out_sd[rings] = np.sqrt(np.mean(errors ** 2, axis=1) / kept)
    return out_mean, out_sd


def _leading_run(flags: np.ndarray) -> int:
    """How many of ``flags`` are True before the first False."""
    failing = np.flatnonzero(~flags)
    return int(failing[0]) if failing.size else flags.size


def _connected(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The pixels of ``mask`` 8-connected to ``seed`` (none when ``seed`` is not in ``mask``)."""
    labels, _ = ndi.label(mask, structure=np.ones((3, 3), dtype=bool))
    label = labels[tuple(seed)]
    return labels == label if label > 0 else np.zeros(mask.shape, dtype=bool)


#: fewest null pixels from which :func:`null_inflation` reads the pooled weights' real spread
MIN_NULL_PIXELS = 50


def null_inflation(pooled: np.ndarray, pooled_sd: np.ndarray, null: np.ndarray, *,
                   min_count: int = MIN_NULL_PIXELS) -> float:
    """How much wider than ``pooled_sd`` the pooled weights spread where the footprint is absent.

    The independent-noise standard error underrates the pooled weights' error: the residual a
    footprint is regressed on carries background that is smooth in space (neighbouring pixels err
    together, so pooling averages less out) and slow in time (it correlates with a trace by
    chance). Where the footprint cannot be (``null``, bool), its weights are that error alone, so
    their robust root mean square in units of ``pooled_sd`` (``1.4826·median|z|``, zero-centred:
    a bias counts too) is the factor to widen ``pooled_sd`` by; at least 1, and 1 with fewer than
    ``MIN_NULL_PIXELS`` null pixels.
    """
    usable = null & (pooled_sd > 0) & np.isfinite(pooled_sd)
    if usable.sum() < min_count:
        return 1.0
    z = pooled[usable] / pooled_sd[usable]
    return max(1.0, 1.4826 * float(np.median(np.abs(z))))


def ray_parents(shape: tuple[int, int], peak: tuple[int, int]) -> np.ndarray:
    """(rows*cols,) C-order index of each pixel's neighbour one pixel closer to ``peak`` along the
    straight line from ``peak`` (the peak is its own parent); every chain of parents ends at the peak."""
    steps = _offset_tables(tuple(shape))
    window = steps.window(peak)
    parent_row = peak[0] + steps.parent_row[window]
    parent_col = peak[1] + steps.parent_col[window]
    return np.ravel_multi_index((parent_row, parent_col), shape).ravel()


@dataclass(frozen=True)
class _OffsetTables:
    """Per pixel offset ``(d_row, d_col)`` from a centre pixel, for every offset an image of
    ``shape`` holds: its distance, angle and ray parent's offset (:func:`ray_parents`). An image's
    tables about an integer centre are a window of these (read-only), not recomputed per footprint."""

    shape: tuple[int, int]
    distance: np.ndarray     # (2·rows − 1, 2·cols − 1) hypot(d_row, d_col)
    angle: np.ndarray        # arctan2(d_row, d_col)
    parent_row: np.ndarray   # rint(d_row · shrink), int64
    parent_col: np.ndarray

    def window(self, centre: tuple[int, int]) -> tuple[slice, slice]:
        """The tables' part whose offsets are those of the image's pixels from ``centre``."""
        rows, cols = self.shape
        return (slice(rows - 1 - int(centre[0]), 2 * rows - 1 - int(centre[0])),
                slice(cols - 1 - int(centre[1]), 2 * cols - 1 - int(centre[1])))


@functools.lru_cache(maxsize=8)
def _offset_tables(shape: tuple[int, int]) -> _OffsetTables:
    rows, cols = shape
    d_row, d_col = np.indices((2 * rows - 1, 2 * cols - 1))
    d_row, d_col = d_row - (rows - 1), d_col - (cols - 1)
    distance = np.hypot(d_row, d_col)
    shrink = np.where(distance >= 1, (distance - 1) / np.maximum(distance, 1), 0.0)
    tables = _OffsetTables(shape=(rows, cols), distance=distance, angle=np.arctan2(d_row, d_col),
                           parent_row=np.rint(d_row * shrink).astype(np.int64),
                           parent_col=np.rint(d_col * shrink).astype(np.int64))
    for table in (tables.distance, tables.angle, tables.parent_row, tables.parent_col):
        table.flags.writeable = False
    return tables


def _distance_and_angle(shape: tuple[int, int], centre: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) each pixel's distance to ``centre`` and angle about it (``arctan2(d_row, d_col)``):
    windows of the cached tables for an integer centre inside the image, computed otherwise."""
    if all(float(c).is_integer() and 0 <= c < n for c, n in zip(centre, shape)):
        tables = _offset_tables(tuple(shape))
        window = tables.window((int(centre[0]), int(centre[1])))
        return tables.distance[window], tables.angle[window]
    rows, cols = np.indices(shape)
    return np.hypot(rows - centre[0], cols - centre[1]), np.arctan2(rows - centre[0], cols - centre[1])


def radially_falling(pooled: np.ndarray, pooled_sd: np.ndarray, *, peak: tuple[int, int],
                     rise_t: float) -> np.ndarray:
    """(rows, cols) bool: pixels whose pooled weight, walked out from ``peak`` along a straight ray,
    never rises ``rise_t`` standard errors above the lowest value met on the way in.

    A soma seen through scattering tissue is brightest at its centre and fades monotonically
    outwards, so a footprint that falls and then rises again has met another source (a
    neighbour's overlap, background left at the field's edge), and what lies beyond the rise is
    not its halo. Walks are resolved by pointer doubling over :func:`ray_parents`.
    """
    parent = ray_parents(pooled.shape, peak)
    values, sd = pooled.ravel(), pooled_sd.ravel()
    doublings = int(np.ceil(np.log2(2 * max(pooled.shape)))) + 1        # 2**doublings > any chain's length
    lowest, ancestor = values.copy(), parent.copy()
    for _ in range(doublings):                                          # min over each whole chain
        lowest = np.minimum(lowest, lowest[ancestor])
        ancestor = ancestor[ancestor]
    falling = values <= lowest[parent] + rise_t * sd
    ancestor = parent.copy()
    for _ in range(doublings):                                          # and so did every pixel inward
        falling = falling & falling[ancestor]
        ancestor = ancestor[ancestor]
    return falling.reshape(pooled.shape)


def within_surrounded_radius(positive: np.ndarray, peak: tuple[int, int]) -> np.ndarray:
    """(rows, cols) bool: pixels closer to ``peak`` than the first ring (1 px wide) on which
    fewer than half the pixels are ``positive``.

    A halo is the soma blurred by the tissue's point-spread function, so it lies on all sides of
    the soma: on a ring inside the halo the weights are positive almost everywhere (if only a
    little, below one standard error), on a ring beyond it they are noise about zero, positive
    on about half of it. Weights that stay significant on one side only — a neighbour's signal the
    trace carries, background the ring model leaves where the field's edge cuts it — do not make
    the ring positive (a sign test: it holds whatever their size), and are cut at that radius.
    """
    ring = np.floor(_distance_and_angle(positive.shape, peak)[0]).astype(np.int64).ravel()
    counts = np.bincount(ring)
    passing = np.bincount(ring, weights=positive.ravel().astype(np.float64), minlength=counts.size)
    ending = np.flatnonzero((counts > 0) & (passing < 0.5 * counts))
    radius = int(ending[0]) if ending.size else counts.size
    return (ring < radius).reshape(positive.shape)


def smooth_halo(footprint: np.ndarray, coefficients: np.ndarray, region: np.ndarray, peak: tuple[int, int], *,
                core_radius: float, rings: Rings, symmetric: bool = False,
                trim: float = TRIMMED_SECTORS) -> np.ndarray:
    """``footprint`` (rows, cols, non-negative) with its halo beyond ``core_radius`` px from its centre
    (the weighted centre of its core, within ``core_radius`` of ``peak``) replaced by the means of its
    unconstrained least-squares weights ``coefficients`` on ring sectors about that centre
    (``rings``), each mean taken over the sector's pixels in ``region`` (bool: where the footprint
    may be non-zero) and only then clipped at zero.

    A footprint is a smooth image (a soma through the tissue's point-spread function), but each of
    its pixels is a separate least-squares weight clipped at zero: on a dim cell's halo the clipped
    noise (positive) spreads energy over a large area, and an energy mask of it spills. A halo
    varies slowly along a circle about its soma and fast across, so it is averaged along the
    circle only (a Gaussian of the same reach would pull the bright core outwards): the noise
    averages out instead of adding up. The core keeps the footprint's own per-pixel weights. With
    ``symmetric`` every pixel of a ring takes the mean of the whole ring (not only ``region``) less
    its brightest ``trim`` of sectors (as :func:`ring_sector_reach`): light beside the cell does
    not skew the halo.
    """
    if not region.any():
        return footprint
    centre = _core_centroid(footprint, peak, core_radius)
    rows, cols = np.nonzero(region)     # every ring reaching the region lies in this box about the centre
    reach = int(np.ceil(np.hypot(rows - centre[0], cols - centre[1]).max() + rings.width)) + 1
    box = tuple(slice(max(int(round(c)) - reach, 0), int(round(c)) + reach + 1) for c in centre)
    out = np.zeros_like(footprint)
    out[box] = _smooth_halo_in_box(footprint[box], coefficients[box], region[box],
                                   (centre[0] - box[0].start, centre[1] - box[1].start),
                                   core_radius=core_radius, rings=rings, symmetric=symmetric, trim=trim)
    return out


def _core_centroid(footprint: np.ndarray, peak: tuple[int, int], core_radius: float) -> tuple[float, float]:
    """The weighted centre of ``footprint``'s pixels within ``core_radius`` of ``peak``: the soma's
    centre to a fraction of a pixel (rings about the peak pixel itself would pull a symmetric halo,
    and the footprint's centre with it, onto the pixel grid)."""
    rows, cols = np.indices(footprint.shape)
    weights = np.where(np.hypot(rows - peak[0], cols - peak[1]) <= core_radius, footprint, 0.0).astype(np.float64)
    total = weights.sum()
    if total <= 0:
        return float(peak[0]), float(peak[1])
    return float((weights * rows).sum() / total), float((weights * cols).sum() / total)


def _smooth_halo_in_box(footprint: np.ndarray, coefficients: np.ndarray, region: np.ndarray,
                        centre: tuple[float, float], *, core_radius: float, rings: Rings, symmetric: bool,
                        trim: float) -> np.ndarray:
    """:func:`smooth_halo` on a box holding every ring that reaches ``region``."""
    cell, n_cells, distance = _ring_cells(footprint.shape, centre, rings)
    inside = region.ravel()
    pooled = np.ones_like(inside) if symmetric else inside
    counts = np.bincount(cell[pooled], minlength=n_cells).astype(np.float64)
    sums = np.bincount(cell[pooled], weights=np.asarray(coefficients, dtype=np.float64).ravel()[pooled],
                       minlength=n_cells)
    means = sums / np.maximum(counts, 1.0)
    if symmetric:
        present = (counts > 0).reshape(-1, rings.sectors)
        ring_means, _ = _lower_sector_means(means.reshape(-1, rings.sectors), np.zeros(present.shape), present,
                                            trim=trim)
        means = np.repeat(ring_means, rings.sectors)
    halo = np.where(inside, np.maximum(means, 0.0)[cell], 0.0).reshape(footprint.shape)
    return np.where(distance <= core_radius, footprint, halo).astype(footprint.dtype)


def _ring_cells(shape: tuple[int, int], centre: tuple[float, float],
                rings: Rings) -> tuple[np.ndarray, int, np.ndarray]:
    """(rows*cols,) each pixel's ring-sector cell about ``centre`` (C order), the number of cells,
    and (rows, cols) each pixel's distance to ``centre``."""
    distance, angle = _distance_and_angle(shape, centre)
    ring = np.floor(distance / rings.width).astype(np.int64)
    sector = np.floor((angle + np.pi) / (2 * np.pi) * rings.sectors).astype(np.int64) % rings.sectors
    return (ring * rings.sectors + sector).ravel(), (int(ring.max()) + 1) * rings.sectors, distance
