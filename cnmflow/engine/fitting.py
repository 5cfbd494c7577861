"""``fit``: a whole movie — patches, combination, merging, global background and traces.

1P (corr_pnr) patches are combined under CNMF-E's ring background; 2P (greedy_roi, sparse_NMF)
patches under CNMF's low-rank ``b·f`` (see :mod:`cnmflow.engine.low_rank_background`). Every
pass over the full movie streams frame chunks from the on-disk array, so the main process's
memory grows with the field of view and the number of components, not with the number of frames.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Callable

import numpy as np
import scipy.sparse as sp

from cnmflow.engine.background import fit_ring_model
from cnmflow.engine.estimates import Estimates
from cnmflow.engine.executors import run_patch_jobs
from cnmflow.engine.footprint_shape import neuron_sized
from cnmflow.engine.low_rank_background import combine_patch_backgrounds, settle_traces
from cnmflow.engine.init.low_rank import significant_traces
from cnmflow.engine.merging import merge_components, merge_duplicates
from cnmflow.engine.movie_source import MovieSource
from cnmflow.engine.patch_frames import patch_storage_setting
from cnmflow.engine.patch_job import PatchResult, ring_fit_frames
from cnmflow.engine.patches import deduplicate, embed_footprints, patch_boxes, stitch_images
from cnmflow.engine.quality import evaluate_components
from cnmflow.engine.trace_shape import forgetting_lag, transient_like
from cnmflow.engine.traces import (LowRankBackground, TraceModel, TraceResult, normalize, refine_footprints,
                                   solve_traces)
from cnmflow.errors import ParameterError
from cnmflow.params import Params

Progress = Callable[[str, float], None]

#: Default memory (MB) of one chunk of frames in the passes over the whole movie.
DEFAULT_CHUNK_MB = 128.0
#: Environment variable that sets the chunk memory for every run (CLI, flows, deployments).
CHUNK_MB_VARIABLE = "CNMFLOW_CHUNK_MB"


def chunk_mb_setting() -> float:
    """The chunk memory from ``$CNMFLOW_CHUNK_MB``, else the default; a bad value is refused."""
    text = os.environ.get(CHUNK_MB_VARIABLE, "").strip()
    if not text:
        return DEFAULT_CHUNK_MB
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ParameterError(f"{CHUNK_MB_VARIABLE}={text!r} must be a positive number of megabytes "
                             f"(default {DEFAULT_CHUNK_MB:g}); unset it or set e.g. {CHUNK_MB_VARIABLE}=64")
    return value


#: Initialisation methods this engine implements.
SUPPORTED_INIT = ("corr_pnr", "greedy_roi", "sparse_NMF")
#: Rounds of (spatial, temporal) updates that refit adds on the full field of view.
REFIT_ROUNDS = 2


def check_supported(params: Params) -> None:
    """Refuse, before any compute, what this version of the engine cannot do (or a bad memory setting)."""
    chunk_mb_setting()
    patch_storage_setting()
    if params.method_init not in SUPPORTED_INIT:
        raise ParameterError(
            f"method_init={params.method_init!r} is not available in this version of cnmflow "
            f"(available: {', '.join(SUPPORTED_INIT)})")
    if params.method_init == "corr_pnr" and params.nb > 0:
        raise ParameterError(
            f"nb={params.nb} with method_init='corr_pnr': CNMF-E models the 1P background with the ring model; "
            "use nb=0 for corr_pnr, or method_init='greedy_roi' for a low-rank (2P) background")
    if params.method_init != "corr_pnr" and params.nb > 0 and params.rf is not None and params.nb_patch == 0:
        raise ParameterError(
            f"nb={params.nb} with nb_patch=0: the global background is assembled from the patches' own "
            "background components; set nb_patch >= 1 (the 2P preset uses 1) or rf=None (one patch)")


def _no_progress(stage: str, fraction: float) -> None:
    return None


def fit(movie: np.ndarray, params: Params, progress: Progress | None = None, *,
        chunk_mb: float | None = None, dask_scheduler: str | None = None) -> Estimates:
    """Extract components from a (frames, rows, cols) float32 movie (array or ``np.memmap``).

    Finding no cells is a normal outcome (``K == 0``). The result is deterministic for a given
    movie and parameters. ``progress(stage, fraction)`` is called as work completes.
    ``chunk_mb`` (default ``$CNMFLOW_CHUNK_MB``, else 128) bounds the frames read at once by the
    passes over the whole movie; the patches read their own box in chunks of their own.

    Patches run in ``params.n_processes`` spawned worker processes when the movie is a file
    (``np.memmap``), so a script calling ``fit`` needs the usual ``if __name__ == "__main__":``;
    with ``dask_scheduler`` (e.g. ``"tcp://10.0.0.5:8786"``) they run on that Dask cluster, whose
    workers read the same file (it must be on storage they share).
    """
    check_supported(params)
    chunk_mb = chunk_mb_setting() if chunk_mb is None else chunk_mb
    report = progress or _no_progress
    source = MovieSource.of(movie)
    movie = source.streaming()
    T, rows, cols = source.shape
    dims = (rows, cols)
    chunk_frames = max(1, int(chunk_mb * 2 ** 20 // (rows * cols * 4)))
    timings: dict[str, float] = {}

    started = time.perf_counter()
    results = run_patch_jobs(source, patch_boxes(dims, rf=params.rf, stride=params.stride), params, dims, report,
                             dask_scheduler=dask_scheduler, storage=patch_storage_setting())
    A, C_low, owners = _combine(results, dims, del_duplicates=params.del_duplicates)
    low_rank = params.method_init != "corr_pnr"
    background = None
    if low_rank:
        background = combine_patch_backgrounds(results, dims, nb=params.nb, low_rank=params.low_rank_background)
        A, C_low, background = _against_global_background(movie, A, C_low, owners, background, params, chunk_frames)
    timings["patches"] = time.perf_counter() - started

    started = time.perf_counter()
    report("merge", 0.0)
    merged = merge_components(A, C_low, merge_thr=params.merge_thr)
    A, C_low = merged.A, merged.C
    if params.method_init != "sparse_NMF":   # dendrites are meant to be long and thin
        A, C_low = _neuron_sized(A, C_low, dims, gsig=params.gSig)
    A, C_low = _transient_like(A, C_low, params)
    report("merge", 1.0)
    timings["merge"] = time.perf_counter() - started

    started = time.perf_counter()
    C_full = _to_full_rate(C_low, T, params.tsub)
    if background is not None:
        background = LowRankBackground(b=background.b, f=_to_full_rate(background.f, T, params.tsub))
    model, traces = _update_rounds(movie, TraceModel(A=A, ring=None, low_rank=background), C_full, params, report,
                                   chunk_frames=chunk_frames)
    timings["background_and_traces"] = time.perf_counter() - started

    boxes = [result.box for result in results]
    sn = stitch_images([result.noise for result in results], boxes, dims)
    estimates = normalize(traces, model, dims=dims, sn=sn, ssub_B=params.ssub_B)
    estimates.Cn = stitch_images([result.correlation for result in results], boxes, dims)
    estimates.pnr = stitch_images([result.pnr for result in results], boxes, dims)
    started = time.perf_counter()
    report("quality", 0.0)
    quality = evaluate_components(movie, estimates, fr=params.fr or 30.0, decay_time=params.decay_time,
                                  chunk_frames=chunk_frames)
    estimates.SNR_comp, estimates.r_values = quality.snr, quality.r_values
    timings["quality"] = time.perf_counter() - started
    estimates.timings = timings
    report("quality", 1.0)
    return estimates


def _update_rounds(movie, model: TraceModel, C_full: np.ndarray, params: Params, report: Progress, *,
                   chunk_frames: int) -> tuple[TraceModel, TraceResult]:
    """Background, traces and (between rounds) footprints on the full field of view.

    One round after the patches' initialisation (only_init), two otherwise, and REFIT_ROUNDS more
    with refit. The 1P ring model is fitted in the first round and again in later ones when
    update_background_components; the 2P low-rank background is updated with the footprints.
    """
    T = movie.shape[0]
    rounds = (1 if params.only_init else 2) + (REFIT_ROUNDS if params.refit else 0)
    report("background", 0.0)
    report("traces", 0.0)
    for round_index in range(rounds):
        if model.low_rank is None and (model.ring is None or params.update_background_components):
            ring = fit_ring_model(movie, model.A, C_full, gsiz=params.gSiz, ring_size_factor=params.ring_size_factor,
                                  ssub_B=params.ssub_B, chunk_frames=chunk_frames, frames=ring_fit_frames(T))
            model = TraceModel(A=model.A, ring=ring)
        report("background", (round_index + 1) / rounds)
        traces = solve_traces(movie, model, C_full, params=params, chunk_frames=chunk_frames)
        report("traces", (round_index + 1) / rounds)
        C_full = traces.C
        if traces.f is not None:
            model = replace(model, low_rank=replace(model.low_rank, f=traces.f))
        if round_index + 1 < rounds:
            model = refine_footprints(movie, model, C_full, params=params, chunk_frames=chunk_frames)
    return model, traces


def _against_global_background(movie, A: sp.csc_matrix, C_low: np.ndarray, owners: np.ndarray,
                               background: LowRankBackground, params: Params, chunk_frames: int):
    """2P: copies of one neuron from several patches merged, then every trace re-solved jointly
    against the global background, so that merging compares traces free of background leaks."""
    own, background = settle_traces(movie, A, background, C_low, tsub=params.tsub, chunk_frames=chunk_frames,
                                    joint=False)
    copies = merge_duplicates(A, own, owners, merge_thr=params.merge_thr)
    C_low, background = settle_traces(movie, copies.A, background, copies.C, tsub=params.tsub,
                                      chunk_frames=chunk_frames, joint=True)
    # A component the patch kept only for the background its own model left out has no
    # transient left once the global background is removed.
    keep = np.flatnonzero(significant_traces(C_low))
    return sp.csc_matrix(copies.A[:, keep]), C_low[keep], background


def _combine(results: list[PatchResult], dims: tuple[int, int], *, del_duplicates: bool):
    """Patch results → full field of view, with the patch that found each component (``owners``);
    with del_duplicates keep each component in one patch only."""
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
        keep = deduplicate(A, owners, boxes, dims)
        A, C, owners = A[:, np.flatnonzero(keep)], C[keep], owners[keep]
    return sp.csc_matrix(A), C, owners


def _neuron_sized(A: sp.csc_matrix, C: np.ndarray, dims: tuple[int, int], *, gsig: float):
    """Refined footprints too wide to be neurons are background sources (see footprint_shape)."""
    if A.shape[1] == 0:
        return A, C
    edges = dict(top=True, bottom=True, left=True, right=True)
    keep = np.flatnonzero(neuron_sized(A, dims, gsig=gsig, fov_edges=edges))
    return sp.csc_matrix(A[:, keep]), C[keep]


def _transient_like(A: sp.csc_matrix, C: np.ndarray, params: Params):
    """Components whose traces drift instead of decaying are background sources (see trace_shape)."""
    if A.shape[1] == 0:
        return A, C
    lag = forgetting_lag(fr=params.fr or 30.0, decay_time=params.decay_time, tsub=params.tsub)
    keep = np.flatnonzero(transient_like(C, lag=lag))
    return sp.csc_matrix(A[:, keep]), C[keep]


def _to_full_rate(C_low: np.ndarray, n_frames: int, tsub: int) -> np.ndarray:
    """Traces at the tsub rate → one value per movie frame (each block's value repeated)."""
    if tsub == 1:
        return C_low[:, :n_frames].astype(np.float32)
    return np.repeat(C_low, tsub, axis=1)[:, :n_frames].astype(np.float32)
