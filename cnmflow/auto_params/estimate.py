"""The estimate: gSig (unless given), min_corr and min_pnr of a movie with the evidence behind each, and "auto"
resolved in a run's parameters.

Fallback. When no seed candidate passes both cuts while the max − mean projection shows round blobs significant at
one false blob in the whole scale space (visible cells), the cuts relax to keep that many strongest candidates
(:func:`relaxed_cuts`): a movie with visible cells never gets cuts that leave no seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Sequence, TypeVar

import numpy as np

from cnmflow.auto_params.cuts import ThresholdEstimate, ceiled_min_pnr, pnr_reduction, threshold_estimates
from cnmflow.auto_params.gsig_choice import KERNEL_STEP_REACH, GsigChoice, choose_gsig
from cnmflow.auto_params.radius import (MIN_BLOBS, RADIUS_SMOOTH_FRAMES, RadiusEstimate, SmoothedMovie,
                                        estimate_radius, smoothed_in_time)
from cnmflow.auto_params.sample import SampleRegion, read_region, sample_movie, sample_region
from cnmflow.auto_params.seed_images import GSIZ_RADIUS_FACTOR, SeedImages, gsiz_for, gsiz_of_radius, seed_images
from cnmflow.auto_params.seed_shapes import CELL_SCALE_BAND, seed_shapes
from cnmflow.engine.init.corr_pnr import seed_candidates
from cnmflow.errors import MovieError, ParameterError
from cnmflow.file_memo import IdentityMemo, file_identity
from cnmflow.size_check import radius_note

if TYPE_CHECKING:
    from cnmflow.params import ResolvedParams

T = TypeVar("T")


#: The parameters that accept "auto".
AUTO_NAMES: tuple[str, ...] = ("gSig", "min_corr", "min_pnr")


@dataclass(frozen=True)
class AutoEstimate:
    """Suggested gSig / gSiz / min_corr / min_pnr of a movie, with the evidence behind each."""

    gSig: float
    gSiz: int
    min_corr: float
    min_pnr: float
    radius: RadiusEstimate
    corr: ThresholdEstimate
    pnr: ThresholdEstimate
    correlation_image: np.ndarray = field(repr=False)
    pnr_image: np.ndarray = field(repr=False)
    seeds: np.ndarray = field(repr=False)  # (n, 2) candidate seeds above both cuts
    n_frames_used: int = 0
    pnr_reduction: float = 1.0  # min_pnr = the PNR cut on the downsampled image / this (see pnr_reduction)
    relaxed: int = 0  # > 0: no candidate passed the null's cuts; the cuts keep this many strongest candidates
    seed_distinct: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)  # (n,) distinct_seeds
    seed_radii: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # (n,) px, NaN: not measured
    seed_round: np.ndarray = field(default_factory=lambda: np.zeros(0, bool), repr=False)  # (n,) see round_seeds
    gsig_choice: "GsigChoice | None" = field(default=None, repr=False)  # None: gSig was given
    ssub: int = 1  # the sample's spatial downsampling: the radius is in its pixels
    null_min_pnr: float = math.nan  # the null's cut, full rate, before the ceiling (cuts.MIN_PNR_CEILING)
    region: SampleRegion | None = None  # where the sample lay in the field (None: not read from a series)

    def sample_place(self) -> str:
        """Where in the field the sample lay ('' for the whole field or no series: :meth:`SampleRegion.describe`)."""
        return self.region.describe() if self.region is not None else ""

    def sample_text(self, tsub: int | None = None) -> str:
        """How much of the movie the values were read on (frames after ``tsub`` where given), for the run's note
        and the suggestion."""
        where = self.sample_place()
        return (f"{self.n_frames_used} frames" + (f" (after tsub={tsub})" if tsub is not None else "")
                + (f" of {where}" if where else ""))

    @property
    def pnr_ceiled(self) -> bool:
        """Whether min_pnr is the ceiling, not the null's cut (which lies above it); False where the cuts relaxed."""
        return not self.relaxed and self.null_min_pnr > self.min_pnr

    def cells_radius(self) -> float | None:
        """The cells' half-max radius in the movie's pixels, or None where the projection shows fewer than
        MIN_BLOBS cells: too few to say how large the cells are (:func:`visible_cells_radius`)."""
        return visible_cells_radius(self.radius, ssub=self.ssub)

    def given_gsig_note(self) -> str | None:
        """Where gSig was given, not estimated: a note when the cells' half-max radius read here lies far above it
        (:func:`cnmflow.size_check.radius_note`); None too where the projection shows too few cells to read it."""
        radius = self.cells_radius()
        if self.gsig_choice is not None or radius is None:
            return None
        return radius_note(self.gSig, radius)

    def few_cells_note(self) -> str | None:
        """Where gSig was estimated on a movie whose projection shows fewer than MIN_BLOBS cells: a note that the
        values are a guess, since the radius is then a median of a few blobs and gSig falls back to it; None
        otherwise. On held-out movies this faint auto's F1@0.5 fell 0.16–0.32 below the best of a grid of settings
        on two of four, where elsewhere it lay within 0.1 (benchmarks/findings/auto_params.md, session 26)."""
        n = self.radius.n_visible
        if self.gsig_choice is None or n >= MIN_BLOBS:
            return None
        standing = "no cell stands" if n == 0 else f"only {n} cell{'s' if n > 1 else ''} stand{'' if n > 1 else 's'}"
        return (f"auto's values are uncertain: {standing} out of the movie's noise (fewer than {MIN_BLOBS}), so the "
                f"radius is read on few blobs and gSig falls back to it; on faint movies such values were often far "
                f"from the best settings — check the figure of `cnmflow suggest`, or compare settings with "
                f"`cnmflow sweep`")

    def seed_classes(self) -> dict[str, np.ndarray]:
        """Masks over ``seeds`` of the distinct ones (above both cuts) by shape: "cell" (round, half-max radius
        within :data:`CELL_SCALE_BAND` of the estimate), "ridge" (not round: a vessel, a dendrite or touching
        cells), "broader" and "smaller" (round, off the cells' scale; broader: out-of-focus cells or neuropil),
        "unmeasured" (round, no half-max radius on its peak frame)."""
        ratio = self.seed_radii / self.radius.radius
        low, high = CELL_SCALE_BAND
        round_ = self.seed_distinct & self.seed_round
        with np.errstate(invalid="ignore"):
            return {"cell": round_ & (ratio >= low) & (ratio <= high), "ridge": self.seed_distinct & ~self.seed_round,
                    "broader": round_ & (ratio > high), "smaller": round_ & (ratio < low),
                    "unmeasured": round_ & ~np.isfinite(ratio)}

    def seed_class_counts(self) -> dict[str, int]:
        """How many distinct seeds fall in each of :meth:`seed_classes`."""
        return {name: int(mask.sum()) for name, mask in self.seed_classes().items()}

    def values(self) -> dict[str, float]:
        return {"gSig": self.gSig, "min_corr": self.min_corr, "min_pnr": self.min_pnr}

    def reasons(self) -> dict[str, str]:
        """One line per value: the rule and the numbers it came from."""
        return {
            "gSig": self._gsig_reason(),
            "gSiz": self._gsiz_reason(),
            "min_corr": f"{self.min_corr:g}: {self.corr.evidence()}{self._relaxed()}",
            "min_pnr": (f"{self.min_pnr:g}: {self._ceiled()}{self.pnr.evidence()}, on the downsampled PNR "
                        f"(/ {self.pnr_reduction:.3g}: min_pnr is a full-rate PNR){self._relaxed()}; {len(self.seeds)} "
                        f"candidate seeds above both cuts{self._scales()}"),
        }

    def _gsiz_reason(self) -> str:
        if self.gsig_choice is None:
            return f"{self.gSiz}: 2·gSig+1 (the seed's rule)"
        return (f"{self.gSiz}: 2·{GSIZ_RADIUS_FACTOR:g}·r+1, the seed box of gSig {GSIZ_RADIUS_FACTOR:g} × the radius "
                f"{self.radius.radius * self.ssub:.2f} px, whichever factor gSig took (its choice does not step the "
                f"seed's box and the ring)")

    def _gsig_reason(self) -> str:
        if self.gsig_choice is None:
            return f"{self.gSig:g} px: given"
        return (f"{self.gSig:g} px: {self.gsig_choice.evidence()}{self._raised()}; the radius "
                f"{self.radius.radius * self.ssub:.2f} px is the {self.radius.evidence()}")

    def _raised(self) -> str:
        chosen = self.gsig_choice.factor * self.radius.radius
        if self.gsig_choice.gsig == chosen:
            return ""
        return (f" ({self.gsig_choice.factor:g} × the radius = {chosen * self.ssub:.2f}, raised onto the seed "
                f"kernel's next size step: less than {KERNEL_STEP_REACH:g} px below it)")

    def _scales(self) -> str:
        if not self.seed_distinct.any():
            return ""
        n = self.seed_class_counts()
        low, high = CELL_SCALE_BAND
        return (f"; of the {sum(n.values())} distinct places they lie on, {n['cell']} are round with a half-max "
                f"radius of {low:g}–{high:g}× the estimate (cells), {n['ridge']} are ridges (vessels, dendrites or "
                f"touching cells), {n['broader']} broader (out-of-focus cells, neuropil), {n['smaller']} smaller and "
                f"{n['unmeasured']} unmeasured: signal above the noise cuts that no min_corr/min_pnr tells from "
                f"the cells")

    def _ceiled(self) -> str:
        if not self.pnr_ceiled:
            return ""
        return (f"the null's cut {self.null_min_pnr:g} capped at {self.min_pnr:g} (the ceiling: CaImAn's hand-tuned "
                f"CA1 value; where the noise null reads 8–10, as on dense CA1, its seed search misses cells); "
                f"the null's cut: ")

    def _relaxed(self) -> str:
        if not self.relaxed:
            return ""
        return (f"; no candidate passed these cuts while the projection shows {self.relaxed} round blobs: "
                f"relaxed to keep the {len(self.seeds)} strongest candidates")


def sample_radius(movie: np.ndarray, *, rings: bool = False) -> RadiusEstimate:
    """The cells' radius of a ``(T, rows, cols)`` sample, read on its 3-frame running mean (fewer frames: as they
    are): the estimate's first step, and all the size check before a fit reads. ``rings``: two-photon somata
    (:func:`~cnmflow.auto_params.radius.estimate_radius`)."""
    smoothed = SmoothedMovie(movie) if movie.shape[0] >= RADIUS_SMOOTH_FRAMES else smoothed_in_time(movie)
    return estimate_radius(smoothed, rings=rings)


def visible_cells_radius(radius: RadiusEstimate, *, ssub: int = 1) -> float | None:
    """``radius`` in the movie's pixels (it was read on a sample downsampled by ``ssub``), or None where the
    projection shows fewer than MIN_BLOBS cells: a few blobs say too little about the cells' size to warn on."""
    return radius.radius * ssub if radius.n_visible >= MIN_BLOBS else None


def estimate_from_movie(movie: np.ndarray, *, gsig: float | None = None, center_psf: bool = True, tsub: int = 1,
                        ssub: int = 1, border_pix: int = 0, rng: int | np.random.Generator | None = 0,
                        n_movie_frames: int | None = None, rings: bool = False) -> AutoEstimate:
    """gSig (unless given), min_corr and min_pnr of a ``(T, rows, cols)`` movie already downsampled by
    (tsub, ssub, ssub) as the engine downsamples a patch.

    ``gsig`` fixed by the user is used for the images; radii are in the movie's pixels times ``ssub``;
    min_pnr is a full-rate PNR (:func:`pnr_reduction`); ``n_movie_frames`` (after tsub, default T) is the
    length of the whole movie when ``movie`` is a sample of it (the PNR cut is carried to that length);
    ``rings``: the cells are two-photon somata, rings round a dark nucleus (the radius reader's two-photon reading).
    """
    if getattr(movie, "ndim", None) != 3 or movie.shape[0] < 2:
        raise ParameterError(f"'auto' needs a (frames, rows, cols) movie of at least 2 frames, got {movie.shape}")
    radius = sample_radius(movie, rings=rings)
    choice = None
    if gsig is not None:
        g = float(gsig) / ssub
        images = seed_images(movie, gsig=g, center_psf=center_psf)
    else:
        choice = choose_gsig(movie, radius, center_psf=center_psf, rng=rng)
        g, images = choice.gsig, choice.images
    corr, pnr = threshold_estimates(images, n_frames=movie.shape[0], gsig=g, center_psf=center_psf, rng=rng,
                                    n_movie_frames=n_movie_frames)
    reduction = pnr_reduction(tsub, ssub)
    min_corr = float(np.clip(round(corr.cut, 3), 0.0, 1.0))
    null_min_pnr = float(max(round(pnr.cut / reduction, 2), 0.0))
    min_pnr = ceiled_min_pnr(null_min_pnr)
    # gSiz, the run's seed box: the seed's rule for a given gSig, else the radius's box; the candidates (and the
    # fallback's) are searched with the same box on the downsampled grid, as the run's own seed search sees them
    if gsig is not None:
        gsig_out, gsiz_out, search_gsiz = float(gsig), gsiz_for(float(gsig)), gsiz_for(g)
    else:
        gsig_out, gsiz_out = round(g * ssub, 2), gsiz_of_radius(radius.radius * ssub)
        search_gsiz = gsiz_of_radius(radius.radius)
    search = dict(gsiz=search_gsiz, border_pix=border_pix // ssub)
    seeds = seed_candidates(images.correlation, images.pnr, min_corr=min_corr, min_pnr=min_pnr * reduction, **search)
    relaxed = 0
    if len(seeds) == 0 and radius.n_visible > 0:
        min_corr, min_pnr, seeds = relaxed_cuts(images, radius.n_visible, reduction=reduction, **search)
        relaxed = radius.n_visible
    return AutoEstimate(gSig=gsig_out, gSiz=gsiz_out, min_corr=min_corr, min_pnr=min_pnr,
                        radius=radius, corr=corr, pnr=pnr, correlation_image=images.correlation,
                        pnr_image=images.pnr, seeds=seeds, n_frames_used=int(movie.shape[0]),
                        pnr_reduction=reduction, relaxed=relaxed, gsig_choice=choice, ssub=ssub,
                        null_min_pnr=null_min_pnr,
                        **seed_shapes(movie, images, seeds, radius=radius.radius))


def relaxed_cuts(images: SeedImages, n: int, *, reduction: float, gsiz: int,
                 border_pix: int) -> tuple[float, float, np.ndarray]:
    """The loosest (min_corr, min_pnr) that keeps the ``n`` strongest seed candidates (by corr × PNR), and
    those seeds: the fallback when no candidate passes the null's cuts but the projection shows ``n``
    significant round blobs — a movie with visible cells must not give a run with none."""
    every = seed_candidates(images.correlation, images.pnr, min_corr=0.0, min_pnr=0.0, gsiz=gsiz,
                            border_pix=border_pix)[:n]
    if len(every) == 0:
        return 0.0, 0.0, every
    rows, cols = every[:, 0], every[:, 1]
    min_corr = math.floor(1000 * float(images.correlation[rows, cols].min())) / 1000
    min_pnr = math.floor(100 * float(images.pnr[rows, cols].min()) / reduction) / 100
    return min_corr, min_pnr, every


def estimate_parameters(movies: Sequence[str | os.PathLike] | object, *, tsub: int = 1, ssub: int = 1,
                        gsig: float | None = None, center_psf: bool = True, border_pix: int = 0,
                        rings: bool = False) -> AutoEstimate:
    """The estimate for a movie series (paths or a validated :class:`~cnmflow.movies.MovieSeries`); ``rings``:
    two-photon somata (:func:`estimate_from_movie`)."""
    from cnmflow.movies import MovieSeries, validate_series

    series = movies if isinstance(movies, MovieSeries) else validate_series(list(movies), min_frames=2)
    region = sample_region(series.frame_shape, series.n_frames, tsub=tsub, ssub=ssub)
    estimate = estimate_from_movie(read_region(series, region, tsub=tsub), gsig=gsig, center_psf=center_psf,
                                   tsub=tsub, ssub=ssub, border_pix=border_pix, n_movie_frames=series.n_frames // tsub,
                                   rings=rings)
    return replace(estimate, region=region)


class SeriesMemo:
    """Values read from a movie series, remembered in this process while its files are unchanged (an
    :class:`~cnmflow.file_memo.IdentityMemo` keyed by their identities and the options that change the value), so
    that the CLI's pre-check, the flow's validate step and a sweep's combinations read the movie once."""

    def __init__(self, max_entries: int = 16):
        self._memo = IdentityMemo(max_entries)

    def get(self, series, extra: tuple, compute: Callable[[], T]) -> T:
        key = (tuple(file_identity(series.movies[k].path) for k in series.order), *extra)
        return self._memo.get(key, compute)


#: The cells' radius of each series read by :func:`series_cells_radius`, by (tsub, ssub).
_CELL_RADII = SeriesMemo()
#: The estimate of each series made by :func:`resolve_auto`, by everything the estimate reads besides the movie.
_ESTIMATES = SeriesMemo()


def series_cells_radius(series, *, tsub: int = 1, ssub: int = 1) -> float | None:
    """The cells' half-max radius (px) of a validated series, read as the estimate reads it (the same sample and
    :func:`sample_radius`), or None where it cannot be read: fewer than MIN_BLOBS cells visible, no round blob (a
    flat movie). The movie's content never makes it raise — the radius only feeds a note — but a file that cannot
    be read does (the fit would fail on it too). Remembered per process (:class:`SeriesMemo`); the sample is bounded
    (:func:`~cnmflow.auto_params.sample.sample_movie`: one contiguous block, at most 128 MiB, read in chunks)."""
    def read() -> float | None:
        try:
            sample = sample_movie(series, tsub=tsub, ssub=ssub)
            with np.errstate(all="ignore"):
                return visible_cells_radius(sample_radius(sample), ssub=ssub)
        except MovieError:
            raise  # a file that cannot be read: the fit would fail on it too, say it now
        except (ValueError, ArithmeticError):  # ParameterError included: no blob to read gives no note, never a failure
            return None

    return _CELL_RADII.get(series, (tsub, ssub), read)


def resolve_auto(series, resolved: "ResolvedParams") -> tuple["ResolvedParams", AutoEstimate | None]:
    """Replace the parameters set to "auto" by the movie's estimate, recorded with source "auto" and a note; and
    the estimate (None where nothing is "auto"), whose radius the size check uses instead of reading it again.

    gSiz follows an estimated gSig unless the user set it (its source is still the default or a preset).
    """
    from cnmflow.params import AUTO_FIELDS

    params = resolved.params
    wanted = [name for name in AUTO_FIELDS if getattr(params, name) == "auto"]
    if not wanted:
        return resolved, None
    if params.method_init != "corr_pnr" and wanted != ["gSig"]:
        raise ParameterError(f"min_corr/min_pnr='auto' only apply to method_init='corr_pnr' "
                             f"(got {params.method_init!r}); give numbers or switch to corr_pnr")
    fixed = None if params.gSig == "auto" else float(params.gSig)
    options = dict(tsub=params.tsub, ssub=params.ssub, gsig=fixed, center_psf=params.center_psf,
                   border_pix=params.border_pix, rings=two_photon_somata(params.method_init))
    # the estimate is deterministic: remembered per series and options
    est = _ESTIMATES.get(series, tuple(sorted(options.items())), lambda: estimate_parameters(series, **options))
    values = {name: est.values()[name] for name in wanted}
    reasons = est.reasons()
    notes = [f"{name} = auto: {reasons[name]}" for name in wanted]
    if "gSig" in wanted and (resolved.sources["gSiz"] == "default" or resolved.sources["gSiz"].startswith("preset")):
        values["gSiz"] = est.gSiz
        notes.append(f"gSiz = auto: {reasons['gSiz']}")
    note = f"'auto' estimated from {est.sample_text()}: " + "; ".join(notes)
    resolved = resolved.with_values(values, source="auto", note=note)
    few = est.few_cells_note()
    return (replace(resolved, notes=resolved.notes + (few,)) if few else resolved), est


def two_photon_somata(method_init: str) -> bool:
    """Whether a run's cells are read as two-photon somata (rings round a dark nucleus): greedy_roi's."""
    return method_init == "greedy_roi"
