"""``fit``: a whole movie — patches, combination, merging, global background and traces.

1P (corr_pnr) patches are combined under CNMF-E's ring background; 2P (greedy_roi, sparse_NMF)
patches under CNMF's low-rank ``b·f`` (see :mod:`cnmflow.engine.low_rank_background`). Every
pass over the full movie streams frame chunks from the on-disk array, so the main process's
memory grows with the field of view and the number of components, not with the number of frames.
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace
from typing import Callable

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.background import fit_ring_model, reduced_rank
from cnmflow.engine.chunking import frames_per_chunk
from cnmflow.engine.estimates import Estimates
from cnmflow.engine.executors import run_patch_jobs
from cnmflow.engine.footprint_shape import neuron_sized
from cnmflow.engine.in_focus import out_of_focus, soma_pairs_to_merge
from cnmflow.engine.init.low_rank import significant_traces
from cnmflow.engine.low_rank_background import combine_patch_backgrounds, settle_traces
from cnmflow.engine.merging import connected_groups, merge_components, merge_duplicates, merge_groups, merging_pairs
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_frames import PatchStorage
from cnmflow.engine.patch_job.one_photon import ring_fit_frames
from cnmflow.engine.patch_job.result import PatchResult
from cnmflow.engine.patches import deduplicate, embed_footprints, inner_border_shares, patch_boxes, stitch_images
from cnmflow.engine.quality import evaluate_components
from cnmflow.engine.sections import EngineSettings, MergeSection, QualitySection, RingSection
from cnmflow.engine.soma_compactness import not_compact
from cnmflow.engine.threads import single_threaded
from cnmflow.engine.trace_shape import forgetting_lag, never_at_rest, skewed_up, transient_like
from cnmflow.engine.traces import (LowRankBackground, TraceModel, TraceResult, normalize, refine_footprints,
                                   solve_traces)
from cnmflow.engine.typical_size import within_typical_size
from cnmflow.params import Params
from cnmflow.settings import Settings, load_settings

__all__ = ["fit"]

Progress = Callable[[str, float], None]


def _no_progress(stage: str, fraction: float) -> None:
    return None


def fit(movie: np.ndarray, settings: Params | EngineSettings, progress: Progress | None = None, *,
        chunk_mb: float | None = None, machine: Settings | None = None,
        dask_scheduler: str | None = None) -> Estimates:
    """Extract components from a (frames, rows, cols) float32 movie (array or ``np.memmap``).

    ``settings``: the run's :class:`~cnmflow.params.Params` (checked here: what this engine cannot
    do is refused before any compute), or :class:`~cnmflow.engine.sections.EngineSettings`
    already built (and so checked) from them.

    Finding no cells is a normal outcome (``K == 0``). The result is deterministic for a given
    movie and parameters. 1P components that are no in-focus soma (out-of-focus cells, neuropil, a
    neuron's second component, a fit to noise whose trace never rests) are kept and listed in
    ``idx_components_bad`` (``focus_thr``, :mod:`cnmflow.engine.in_focus`, :mod:`cnmflow.engine.trace_shape`); then
    the accepted 1P footprints far larger than the typical accepted one are cut back to it
    (:mod:`cnmflow.engine.typical_size`).
    ``progress(stage, fraction)`` is called as work completes.
    ``machine``: this machine's :class:`~cnmflow.settings.Settings` (default: read from the
    environment by :func:`~cnmflow.settings.load_settings`, a bad value refused here): where the
    patch jobs keep their frames (``patch_mb``, ``scratch_dir``) and, unless ``chunk_mb`` is
    given, ``chunk_mb``, which bounds the frames read at once by the passes over the whole movie
    (the patches read their own box in chunks of their own). The stages after the patches run one
    BLAS / FFT thread (:mod:`cnmflow.engine.threads`), whatever limit the caller set.

    Patches run in ``n_processes`` spawned worker processes when the movie is a file
    (``np.memmap``), so a script calling ``fit`` needs the usual ``if __name__ == "__main__":``;
    with ``dask_scheduler`` (e.g. ``"tcp://10.0.0.5:8786"``) they run on that Dask cluster, whose
    workers read the same file (it must be on storage they share).
    """
    if not isinstance(settings, EngineSettings):
        settings = EngineSettings.from_params(settings)
    machine = load_settings() if machine is None else machine
    chunk_mb = machine.chunk_mb if chunk_mb is None else chunk_mb
    report = progress or _no_progress
    source = MovieSource.of(movie)
    movie = source.streaming()
    T, rows, cols = source.shape
    dims = (rows, cols)
    chunk_frames = frames_per_chunk(rows * cols, int(chunk_mb * 2 ** 20))
    timings: dict[str, float] = {}

    started = time.perf_counter()
    results = run_patch_jobs(source, patch_boxes(dims, rf=settings.layout.rf, stride=settings.layout.stride),
                             settings.patch_job, dims, report, workers=settings.layout.n_processes,
                             dask_scheduler=dask_scheduler, storage=PatchStorage.from_settings(machine),
                             in_process_below=machine.patches_in_process_below)
    A, C_low, background = _patches_on_the_field_of_view(movie, results, dims, settings, chunk_frames)
    timings["patches"] = time.perf_counter() - started

    with single_threaded():
        estimates = _after_patches(movie, results, A, C_low, background, settings, report, chunk_frames, timings)
    estimates.timings = timings
    return estimates


def _after_patches(movie, results: list[PatchResult], A: sp.csc_matrix, C_low: np.ndarray,
                   background: LowRankBackground | None, settings: EngineSettings, report: Progress,
                   chunk_frames: int, timings: dict[str, float]) -> Estimates:
    """Merging, the full field of view's background and traces, and the quality measures.

    Run with one BLAS / FFT thread: their products are small (traces × frames, windows × frames)
    and extra threads only spin waiting on each other, CPU time without wall time gained (issue #22)."""
    dims = movie.shape[1:]
    started = time.perf_counter()
    A, C_low = _merge(A, C_low, dims, settings.merging, report)
    timings["merge"] = time.perf_counter() - started

    started = time.perf_counter()
    model, traces = _full_rate_traces(movie, A, C_low, background, settings, report, chunk_frames=chunk_frames)
    timings["background_and_traces"] = time.perf_counter() - started

    started = time.perf_counter()
    report("quality", 0.0)
    estimates = _judged(movie, results, traces, model, settings, chunk_frames)
    timings["quality"] = time.perf_counter() - started
    groups = _weak_pair_groups(estimates, settings.quality)
    settled = _settled_pair_groups(estimates, settings.quality, merge_thr=settings.merging.merge_thr)
    if groups or settled:
        started = time.perf_counter()
        merge = functools.partial(_weak_pairs_merged, movie, results, A, C_low, background, settings=settings,
                                  chunk_frames=chunk_frames)
        estimates = _settled_merges_kept(merge, groups, settled, fallback=estimates)
        timings["weak_pairs"] = time.perf_counter() - started
    if settings.quality.typical_size:
        estimates = _accepted_typical_sized(estimates)
    report("quality", 1.0)
    return estimates


def _judged(movie, results: list[PatchResult], traces: TraceResult, model: TraceModel, settings: EngineSettings,
            chunk_frames: int) -> Estimates:
    """The estimates with their quality measures and the 1P components that are no in-focus soma marked rejected."""
    estimates = _estimates(results, traces, model, movie.shape[1:], settings)
    quality = evaluate_components(movie, estimates, fr=settings.quality.fr or 30.0,
                                  decay_time=settings.quality.decay_time, chunk_frames=chunk_frames)
    estimates.SNR_comp, estimates.r_values = quality.snr, quality.r_values
    _mark_rejected(movie, estimates, settings.quality, chunk_frames)
    return estimates


def _weak_pair_groups(estimates: Estimates, section: QualitySection) -> list[np.ndarray]:
    """1P with the focus test on: the pairs on one soma among the components the test accepted that its focus ratios
    cannot resolve, joined into groups to merge — those whose traces follow each other weakly
    (``in_focus.weak_soma_pairs``: each member mixes the neuron with a contaminant of its own, h16dup, h17merge,
    h19merge) and, where the test judged any component, strong pairs with a member at the field's edge it does not
    judge (``in_focus.unjudged_soma_pairs``: no ratio to choose a member by, h20edge;
    benchmarks/findings/footprint_fidelity.md), both from one measurement (``in_focus.soma_pairs_to_merge``). A member
    the test rejected is left to it."""
    if not _pairs_judged(estimates, section):
        return []
    pairs = soma_pairs_to_merge(estimates.A, estimates.C, estimates.dims, gsig=section.gSig, tsub=section.tsub,
                                among=estimates.accepted, unjudged=bool(np.isfinite(estimates.focus_ratio).any()))
    return connected_groups(pairs, estimates.K)


def _settled_pair_groups(estimates: Estimates, section: QualitySection, *, merge_thr: float) -> list[np.ndarray]:
    """1P with the focus test on: the accepted components the merge step's own rule joins (``merging_pairs``: a shared
    pixel, traces correlating over ``merge_thr``) read on their settled traces, in groups. The merge step read the
    patches' traces; a neuron split in two there, or a fragment left on its flank, follows it only once the traces
    are solved on the whole field (j25, benchmarks/findings/footprint_fidelity.md)."""
    if not _pairs_judged(estimates, section):
        return []
    accepted = estimates.accepted
    joined = merging_pairs(estimates.A[:, accepted], estimates.C[accepted], merge_thr)
    pairs = [(int(accepted[j]), int(accepted[k])) for j, k in zip(*np.nonzero(np.triu(joined, 1)))]
    return connected_groups(pairs, estimates.K)


def _pairs_judged(estimates: Estimates, section: QualitySection) -> bool:
    """Whether pairs among the accepted components are looked for: 1P (a ring background), the focus test on."""
    return section.focus_thr > 0 and estimates.K >= 2 and estimates.W.shape[0] > 0


def _settled_merges_kept(merge: Callable[[list[np.ndarray]], Estimates], groups: list[np.ndarray],
                         settled: list[np.ndarray], *, fallback: Estimates) -> Estimates:
    """The fit with ``groups`` and ``settled`` merged (``merge``), less each settled group whose merged component
    the focus test then rejects: one soma split in two merges into one soma, but a cell and a mixture carrying its
    light merge into a blob over two cells, and the test rejecting it would lose both (j25). A settled group
    overlapping a weak one is left out. ``fallback``: the fit unmerged, when nothing is left to merge."""
    weak = set(np.concatenate(groups).tolist()) if groups else set()
    settled = [group for group in settled if weak.isdisjoint(group.tolist())]
    while groups or settled:
        merged = merge(groups + settled)
        first_settled = merged.K - len(settled)           # merged components are appended in group order
        rejected = set(np.asarray(merged.idx_components_bad, dtype=int).tolist())
        undone = {i for i in range(len(settled)) if first_settled + i in rejected}
        if not undone:
            return merged
        settled = [group for i, group in enumerate(settled) if i not in undone]
    return fallback


def _weak_pairs_merged(movie, results: list[PatchResult], A: sp.csc_matrix, C_low: np.ndarray,
                       background: LowRankBackground | None, groups: list[np.ndarray], *, settings: EngineSettings,
                       chunk_frames: int) -> Estimates:
    """The fit again with each group merged where the merge step merges (the update rounds keep every component in
    place, so a final index is a merged component's index): background, traces, quality and focus test solved from
    the merge step's output, not from the converged traces — a re-solve from those moved components far from the
    pair (h17merge). Within the quality stage, so its progress is not reported again."""
    merged = merge_groups(A, C_low, groups)
    model, traces = _full_rate_traces(movie, merged.A, merged.C, background, settings, _no_progress,
                                      chunk_frames=chunk_frames)
    return _judged(movie, results, traces, model, settings, chunk_frames)


def _accepted_typical_sized(estimates: Estimates) -> Estimates:
    """The accepted footprints far larger than the typical accepted one cut back to it (engine/typical_size).

    After the focus test, so its decisions stand and the rejected out-of-focus sources keep the broad footprints that
    hold their light out of their neighbours' own images (cut before it, a neighbour's cut changed which traces a
    cell's own image is regressed on, and cells were rejected: findings/footprint_fidelity.md, session 23)."""
    A, cut = within_typical_size(estimates.A, among=estimates.accepted)
    return estimates.with_footprints(A, cut) if cut.size else estimates


def _mark_rejected(movie, estimates: Estimates, section: QualitySection, chunk_frames: int) -> None:
    """1P: mark the components that are no in-focus soma rejected (kept in the results; engine/in_focus), and,
    with the focus test on, those whose traces never rest (engine/trace_shape: noise and faint mixtures) or, with
    min_skew, are not skewed up as calcium is (engine/trace_shape: a vessel's pulsing). 2P greedy_roi: those whose
    footprint is no soma's (engine/soma_compactness: neuropil)."""
    test = out_of_focus(movie, estimates.A, estimates.C, estimates.dims, gsig=section.gSig,
                        focus_thr=section.focus_thr, halo_thr=section.halo_thr, chunk_frames=chunk_frames,
                        tsub=section.tsub)
    rejected = test.rejected
    if section.focus_thr > 0 and estimates.K:
        flat = ~skewed_up(estimates.C, section.min_skew) if section.min_skew > 0 else np.zeros(estimates.K, bool)
        rejected = np.union1d(rejected, np.flatnonzero(never_at_rest(estimates.C, estimates.SNR_comp) | flat))
        rejected = rejected.astype(int)
    if section.compact_thr > 0:   # 2P somata: neuropil components (engine/soma_compactness)
        loose = not_compact(estimates.A, estimates.dims, gsig=section.gSig, compact_thr=section.compact_thr,
                            raw_traces=estimates.C + estimates.YrA)
        rejected = np.union1d(rejected, loose).astype(int)
    estimates.focus_ratio, estimates.idx_components_bad = test.ratio, rejected


def _patches_on_the_field_of_view(movie, results: list[PatchResult], dims: tuple[int, int],
                                  settings: EngineSettings, chunk_frames: int):
    """The patches' components on the field of view (and, 2P, the global low-rank background
    assembled from the patches' own, every trace re-solved against it)."""
    A, C_low, owners = _combine(results, dims, del_duplicates=settings.layout.del_duplicates,
                                merge_thr=settings.merging.merge_thr)
    if not settings.init.low_rank:
        return A, C_low, None
    background = combine_patch_backgrounds(results, dims, nb=settings.low_rank.nb,
                                           low_rank=settings.low_rank.low_rank_background)
    cut = inner_border_shares(A, owners, [result.box for result in results], dims) > 0
    return _against_global_background(movie, A, C_low, owners, background, settings.merging, chunk_frames, cut=cut)


def _merge(A: sp.csc_matrix, C_low: np.ndarray, dims: tuple[int, int], section: MergeSection, report: Progress):
    """Merged components, without those too wide to be neurons or whose traces do not decay."""
    report("merge", 0.0)
    merged = merge_components(A, C_low, merge_thr=section.merge_thr)
    A, C_low = merged.A, merged.C
    if section.drop_wide:   # dendrites are meant to be long and thin
        A, C_low = _neuron_sized(A, C_low, dims, gsig=section.gSig)
    A, C_low = _transient_like(A, C_low, section)
    report("merge", 1.0)
    return A, C_low


def _full_rate_traces(movie, A: sp.csc_matrix, C_low: np.ndarray, background: LowRankBackground | None,
                      settings: EngineSettings, report: Progress, *, chunk_frames: int):
    """The traces at every frame of the movie, against the background, after the update rounds."""
    T = movie.shape[0]
    tsub = settings.init.tsub
    C_full = _to_full_rate(C_low, T, tsub)
    if background is not None:
        background = LowRankBackground(b=background.b, f=_to_full_rate(background.f, T, tsub))
    return _update_rounds(movie, TraceModel(A=A, ring=None, low_rank=background), C_full, settings, report,
                          chunk_frames=chunk_frames)


def _estimates(results: list[PatchResult], traces: TraceResult, model: TraceModel, dims: tuple[int, int],
               settings: EngineSettings) -> Estimates:
    """Unit-norm components with the patches' noise, correlation and PNR images stitched."""
    boxes = [result.box for result in results]
    sn = stitch_images([result.noise for result in results], boxes, dims)
    estimates = normalize(traces, model, dims=dims, sn=sn, ssub_B=settings.ring.ssub_B)
    estimates.Cn = stitch_images([result.correlation for result in results], boxes, dims)
    estimates.pnr = stitch_images([result.pnr for result in results], boxes, dims)
    K = settings.init.K
    estimates.patches_at_k = (0 if K is None else sum(result.A.shape[1] >= K for result in results), len(results))
    return estimates


def _update_rounds(movie, model: TraceModel, C_full: np.ndarray, settings: EngineSettings, report: Progress, *,
                   chunk_frames: int) -> tuple[TraceModel, TraceResult]:
    """Background, traces and (between rounds) footprints on the full field of view.

    One round after the patches' initialisation (only_init), two otherwise, and REFIT_ROUNDS more
    with refit. The 1P ring model is fitted in the first round and again in later ones when
    update_background_components; the 2P low-rank background is updated with the footprints.
    """
    rounds = settings.rounds.count
    report("background", 0.0)
    report("traces", 0.0)
    for round_index in range(rounds):
        if model.low_rank is None and (model.ring is None or settings.ring.update_background_components):
            model = TraceModel(A=model.A, ring=_fit_ring(movie, model.A, C_full, settings.ring, chunk_frames))
        report("background", (round_index + 1) / rounds)
        traces = solve_traces(movie, model, C_full, section=settings.traces, chunk_frames=chunk_frames)
        report("traces", (round_index + 1) / rounds)
        C_full = traces.C
        if traces.f is not None:
            model = replace(model, low_rank=replace(model.low_rank, f=traces.f))
        if round_index + 1 < rounds:
            model = refine_footprints(movie, model, C_full, section=settings.traces, chunk_frames=chunk_frames)
    return model, traces


def _fit_ring(movie, A: sp.csc_matrix, C_full: np.ndarray, section: RingSection, chunk_frames: int):
    """CNMF-E's ring background of the whole movie under the components ``A·C_full``; a long ring on
    low-rank covariances (``background.reduced_rank``)."""
    rank = reduced_rank(gsiz=section.gSiz, ring_size_factor=section.ring_size_factor, ssub_B=section.ssub_B)
    return fit_ring_model(movie, A, C_full, gsiz=section.gSiz, ring_size_factor=section.ring_size_factor,
                          ssub_B=section.ssub_B, chunk_frames=chunk_frames, frames=ring_fit_frames(movie.shape[0]),
                          temporal_rank=rank)


def _against_global_background(movie, A: sp.csc_matrix, C_low: np.ndarray, owners: np.ndarray,
                               background: LowRankBackground, section: MergeSection, chunk_frames: int, *,
                               cut: np.ndarray):
    """2P: copies of one neuron from several patches merged, then every trace re-solved jointly
    against the global background, so that merging compares traces free of background leaks. ``cut``: which
    footprints their patch cut off (``merge_duplicates`` keeps a merge to an uncut copy's pixels)."""
    own, background = settle_traces(movie, A, background, C_low, tsub=section.tsub, chunk_frames=chunk_frames,
                                    joint=False)
    copies = merge_duplicates(A, own, owners, merge_thr=section.merge_thr, cut=cut)
    C_low, background = settle_traces(movie, copies.A, background, copies.C, tsub=section.tsub,
                                      chunk_frames=chunk_frames, joint=True)
    # A component the patch kept only for the background its own model left out has no
    # transient left once the global background is removed.
    keep = np.flatnonzero(significant_traces(C_low))
    return sp.csc_matrix(copies.A[:, keep]), C_low[keep], background


def _combine(results: list[PatchResult], dims: tuple[int, int], *, del_duplicates: bool, merge_thr: float):
    """Patch results → full field of view, with the patch that found each component (``owners``);
    with del_duplicates keep each component in one patch only (an orphan only where the merge step would not
    join it to a kept component: ``patches.deduplicate``, which asks for the merge step's pairs only then)."""
    boxes = [result.box for result in results]
    columns, traces, owners = [], [], []
    for index, result in enumerate(results):
        if result.A.shape[1]:
            columns.append(embed_footprints(result.A, result.box, dims))
            traces.append(result.C)
            owners.extend([index] * result.A.shape[1])
    n_low = max((result.C.shape[1] for result in results), default=0)
    if not columns:
        return (sp.csc_matrix((dims[0] * dims[1], 0), dtype=np.float32), np.zeros((0, n_low), np.float32),
                np.zeros(0, int))
    A = sp.hstack(columns, format="csc")
    C = np.vstack(traces).astype(np.float32)
    owners = np.asarray(owners)
    if del_duplicates and len(boxes) > 1:
        keep = deduplicate(A, owners, boxes, dims, merging=functools.partial(merging_pairs, A, C, merge_thr))
        A, C, owners = A[:, np.flatnonzero(keep)], C[keep], owners[keep]
    return sp.csc_matrix(A), C, owners


def _neuron_sized(A: sp.csc_matrix, C: np.ndarray, dims: tuple[int, int], *, gsig: float):
    """Refined footprints too wide to be neurons are background sources (see footprint_shape)."""
    if A.shape[1] == 0:
        return A, C
    edges = dict(top=True, bottom=True, left=True, right=True)
    keep = np.flatnonzero(neuron_sized(A, dims, gsig=gsig, fov_edges=edges))
    return sp.csc_matrix(A[:, keep]), C[keep]


def _transient_like(A: sp.csc_matrix, C: np.ndarray, section: MergeSection):
    """Components whose traces drift instead of decaying are background sources (see trace_shape)."""
    if A.shape[1] == 0:
        return A, C
    lag = forgetting_lag(fr=section.fr or 30.0, decay_time=section.decay_time, tsub=section.tsub)
    keep = np.flatnonzero(transient_like(C, lag=lag))
    return sp.csc_matrix(A[:, keep]), C[keep]


def _to_full_rate(C_low: np.ndarray, n_frames: int, tsub: int) -> np.ndarray:
    """Traces at the tsub rate → one value per movie frame (each block's value repeated)."""
    if tsub == 1:
        return C_low[:, :n_frames].astype(np.float32)
    return np.repeat(C_low, tsub, axis=1)[:, :n_frames].astype(np.float32)
