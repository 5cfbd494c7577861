"""Turning a fitted series into the files of the seed's Outputs section, all or nothing.

Everything is written into a hidden staging folder inside the output directory; only once every
file is complete (the manifest too) does the set replace whatever an earlier run left there,
as a whole (:mod:`cnmflow.outputs.result_swap`): after an overwrite the folder holds exactly
the new manifest's files, and a killed run leaves the old complete set or the new one.
Existing outputs are never replaced unless the caller asks to overwrite, and the folder is
locked for the whole export (:mod:`cnmflow.outputs.folder_lock`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from cnmflow.engine.quality import component_statuses
from cnmflow.errors import InputError
from cnmflow.k_check import k_note
from cnmflow.lineage import build_manifest, input_records, read_manifest, write_manifest
from cnmflow.outputs.caiman_hdf5 import write_caiman_hdf5
from cnmflow.outputs.folder import open_output_dir
from cnmflow.outputs.images import write_correlation_tif
from cnmflow.outputs.isxd_sets import (EmptySetNotSupported, OutputExistsError, cell_names, output_spacing,
                                       output_timing, split_traces, write_cellset, write_eventset)
from cnmflow.outputs.lineage_graph import lineage_graph
from cnmflow.movies.concat import ConcatenatedMovie
from cnmflow.outputs.corrected_movies import write_corrected_movie
from cnmflow.outputs.motion import motion_images_preview, motion_summary, shifts_preview
from cnmflow.outputs.names import (CORRELATION_NAME, HDF5_NAME, IMAGES_STEM, INITIALIZATION_STEM, LINEAGE_STEM,
                                   MANIFEST_NAME, METADATA_NAME, NO_CELLS_STEM, PRODUCT_NAME, SHIFTS_STEM,
                                   cellset_name, corrected_name, eventset_name, events_stem, footprints_stem,
                                   nwb_name, traces_stem)
from cnmflow.outputs.nwb_export import TIMING_KEY as NWB_TIMING, write_run_nwb
from cnmflow.outputs.nwb_metadata import NwbMetadata, nwb_settings
from cnmflow.outputs.metadata import describe_cellset, describe_eventset, write_output_metadata
from cnmflow.outputs.figures import copy_preview
from cnmflow.outputs.previews import (events_preview, footprints_preview, initialization_images, no_cells_image,
                                      safe_preview, traces_preview)
from cnmflow.outputs.result_swap import staging_folder, swap_in
from cnmflow.pipeline import ExtractionResult, timed_stage
from cnmflow.processes import ForkedCall
from cnmflow.size_check import gsig_note

log = logging.getLogger(__name__)

#: Seconds the run waits at least, once its own previews are drawn, for the forked child's before it kills the
#: child and draws them here (a fork of a threaded process can deadlock). The wait is at least as long as this
#: process took for its own half of the drawing: a healthy child has had that long and more (it started
#: before the data files were written), and waiting longer than drawing them here would take gains nothing.
PREVIEWS_CHILD_MIN_WAIT_S = 30.0


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: file name → {"kind", "movie_index"}, and what the user should know."""

    output_dir: Path
    files: dict[str, dict[str, Any]]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def paths(self) -> list[Path]:
        return [self.output_dir / name for name in self.files]


def planned_names(n_movies: int, *, nwb: bool = True, events: bool = True) -> list[str]:
    """The data files a run over ``n_movies`` movies produces (previews come on top); ``nwb``: with ophys.{k}.nwb;
    ``events``: with neural_events.{k}.isxd (a run without cells writes none: isx cannot)."""
    names = [HDF5_NAME, CORRELATION_NAME, METADATA_NAME, MANIFEST_NAME]
    for k in range(n_movies):
        names += [cellset_name("raw", k), cellset_name("denoised", k)]
        names += [eventset_name(k)] if events else []
        names += [nwb_name(k)] if nwb else []
    return names


def check_output_dir(output_dir: str | os.PathLike, n_movies: int, *, overwrite: bool) -> None:
    """Refuse early, before any compute, to replace the outputs of an earlier run."""
    output_dir = Path(output_dir)
    existing = [name for name in planned_names(n_movies) if (output_dir / name).exists()]
    if existing and not overwrite:
        raise OutputExistsError(
            f"{output_dir} already holds outputs of a run ({', '.join(existing[:4])}"
            f"{', …' if len(existing) > 4 else ''}); choose another output directory or ask to overwrite "
            "(--overwrite)")


def export(result: ExtractionResult, output_dir: str | os.PathLike, *, overwrite: bool = False,
           evaluate: bool = False, run_ids: dict[str, str | None] | None = None,
           hashes: dict[int, str] | None = None, fingerprint: str | None = None,
           stage_timings: dict[str, float] | None = None, nwb: bool = True,
           nwb_metadata: NwbMetadata | None = None, corrected_movie: ConcatenatedMovie | None = None) -> ExportResult:
    """Write every output of ``result`` into ``output_dir``; returns what was written.

    ``nwb`` writes ``ophys.{k}.nwb`` per movie (with ``nwb_metadata``'s facts, placeholders
    otherwise); a failure of the NWB writer fails the export, like any data file's.
    ``corrected_movie`` (the motion-corrected work copy, save_motion_corrected) is written as
    ``motion_corrected.{k}.tif`` / ``.isxd`` per input movie.

    ``evaluate`` turns on the quality evaluation that sets accepted/rejected statuses (off by
    default, as in the seed tool). ``run_ids`` (e.g. the Prefect flow run id) go to the manifest,
    as do the run's ``fingerprint``, the input ``hashes`` when the caller already has them, and
    the seconds of the caller's own stages before the fit (``stage_timings``, e.g. validation).
    """
    output_dir = Path(output_dir)
    n_movies = len(result.inputs.series.movies)
    with open_output_dir(output_dir):
        check_output_dir(output_dir, n_movies, overwrite=overwrite)
        return _export_locked(result, output_dir, evaluate=evaluate, run_ids=run_ids, hashes=hashes,
                              fingerprint=fingerprint, stage_timings=stage_timings, nwb=nwb,
                              nwb_metadata=nwb_metadata, corrected_movie=corrected_movie)


def _export_locked(result: ExtractionResult, output_dir: Path, *, evaluate: bool,
                   run_ids: dict[str, str | None] | None, hashes: dict[int, str] | None,
                   fingerprint: str | None, stage_timings: dict[str, float] | None,
                   nwb: bool = False, nwb_metadata: NwbMetadata | None = None,
                   corrected_movie: ConcatenatedMovie | None = None) -> ExportResult:
    timings: dict[str, float] = {}  # seconds per output, recorded in the manifest with the run's stages
    with staging_folder(output_dir) as staging:
        files, notes, later = _write_all(result, staging, evaluate=evaluate, timings=timings, nwb=nwb,
                                         nwb_metadata=nwb_metadata, fingerprint=fingerprint,
                                         corrected_movie=corrected_movie)
        files.update(later.files)
        notes.extend(later.notes)
        timings.update(later.timings)
        inputs = input_records(result.inputs.series, hashes)
        with timed_stage(timings, "export.lineage_graph"):
            files.update(_write_lineage_graph(staging, inputs, files, run_ids=run_ids or {}, fingerprint=fingerprint,
                                              notes=notes))
        stage_timings = {**(stage_timings or {}), **timings}
        manifest = build_manifest(output_dir=staging, outputs=files,
                                  inputs=inputs,
                                  resolved=result.inputs.resolved, run_ids=run_ids or {}, notes=notes,
                                  run={**run_summary(result, fingerprint=fingerprint, evaluate=evaluate,
                                                     stage_timings=stage_timings),
                                       "nwb": nwb_settings(nwb, nwb_metadata)})
        write_manifest(staging / MANIFEST_NAME, manifest)
        files[MANIFEST_NAME] = {"kind": "manifest", "movie_index": None}
        swap_in(staging, output_dir, new=files, old=previous_result_names(output_dir), manifest_name=MANIFEST_NAME)
    return ExportResult(output_dir=output_dir, files=files, notes=tuple(notes))


def previous_result_names(output_dir: Path) -> list[str]:
    """The files of the run that wrote ``output_dir`` before: its manifest's list plus every product name."""
    names = set()
    if (output_dir / MANIFEST_NAME).is_file():
        try:
            names.update(read_manifest(output_dir).get("outputs", {}))
        except InputError:
            pass
    try:
        names.update(entry.name for entry in output_dir.iterdir() if PRODUCT_NAME.fullmatch(entry.name))
    except OSError:
        pass
    return sorted(name for name in names if (output_dir / name).is_file())


def _write_lineage_graph(folder: Path, inputs: list[dict], files: dict[str, dict], *, run_ids: dict,
                         fingerprint: str | None, notes: list[str]) -> dict[str, dict]:
    """The picture of inputs → run → outputs; like every preview, a failure is only a note."""
    from cnmflow.lineage import code_version

    code = code_version()
    run = {"fingerprint": fingerprint and fingerprint[:16],
           "code": f"cnmflow {code['cnmflow']}" + (f" @ {code['git_commit'][:10]}" if code["git_commit"] else ""),
           **{name: value for name, value in run_ids.items()}}
    outputs = [name for name, spec in files.items() if spec["kind"] != "preview"] + [MANIFEST_NAME]
    paths, problem = safe_preview(lineage_graph, folder / LINEAGE_STEM, inputs=inputs, run=run, outputs=outputs)
    if problem:
        notes.append(problem)
        log.warning(problem)
    return {path.name: {"kind": "preview", "movie_index": None} for path in paths}


def run_summary(result: ExtractionResult, *, fingerprint: str | None, evaluate: bool,
                stage_timings: dict[str, float] | None = None) -> dict[str, Any]:
    """What trackers and summaries need about the run: counts, statuses, time and memory."""
    estimates = result.estimates
    statuses = component_statuses(estimates, evaluate=evaluate)
    return {
        "fingerprint": fingerprint,
        "n_components": int(estimates.K),
        "n_frames": int(estimates.n_frames),
        "frame_shape": [int(n) for n in estimates.dims],
        "statuses": {status: statuses.count(status) for status in ("accepted", "rejected", "undecided")},
        "evaluated": evaluate,
        "timings_s": {stage: round(float(seconds), 4)
                      for stage, seconds in {**(stage_timings or {}), **result.timings}.items()},
        "peak_rss_mb": None if result.peak_rss_mb is None else round(result.peak_rss_mb, 1),
        **({"motion_correction": motion_summary(result.motion)} if result.motion is not None else {}),
    }


@dataclass
class Written:
    """Files written by one part of the export (name → {"kind", "movie_index"}), its notes and its seconds."""

    files: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _write_all(result: ExtractionResult, folder: Path, *, evaluate: bool, timings: dict[str, float], nwb: bool,
               nwb_metadata: NwbMetadata | None, fingerprint: str | None,
               corrected_movie: ConcatenatedMovie | None) -> tuple[dict[str, dict], list[str], Written]:
    """The data files, the previews and the metadata file (the seconds of each kind go to ``timings``), and
    what comes after them in the manifest: the corrected movies and the NWB files.

    Two processes draw the previews: a forked child (:class:`~cnmflow.processes.ForkedCall`) the parts of
    :data:`CHILD_PREVIEWS` while this process writes the data and NWB files, then draws the other parts: on
    two cores that work is shared instead of waited for. A child that dies has its parts drawn here.
    """
    estimates = result.estimates
    statuses = component_statuses(estimates, evaluate=evaluate)
    notes: list[str] = []
    if estimates.K == 0:
        notes.append("no cells were found: the cell sets hold 0 cells and no event sets are written "
                     f"(isx cannot write an event set without cells); {_LOWER_THRESHOLDS} to find more")
    # the note that gSig is far below the cells' size, once per run: before the fit where validation read the movie
    wide = None if result.inputs.size_note else gsig_note(estimates, float(result.inputs.resolved.params.gSig))
    params = result.inputs.resolved.params
    stopped = k_note(estimates, K=params.K, method_init=params.method_init)
    for note in (wide, stopped):   # in the run's log; the user reads them with the run's other notes
        if note:
            log.info(note)
            notes.append(note)
    traces = {"raw": split_traces(estimates.C + estimates.YrA, result.offsets),
              "denoised": split_traces(estimates.C, result.offsets),
              "spikes": split_traces(estimates.S, result.offsets)}
    previews = ForkedCall(_draw_previews, result, folder, traces, statuses, CHILD_PREVIEWS)
    try:
        files, metadata = _write_data_files(result, folder, traces, statuses, timings)
        later = _write_after_metadata(result, folder, evaluate=evaluate, nwb=nwb, nwb_metadata=nwb_metadata,
                                      fingerprint=fingerprint, corrected_movie=corrected_movie)
        started = time.perf_counter()
        drawn = _draw_previews(result, folder, traces, statuses,
                               [part for part in PREVIEW_PARTS if part not in CHILD_PREVIEWS])
        wait_s = max(PREVIEWS_CHILD_MIN_WAIT_S, time.perf_counter() - started)
        drawn.update(_drawn(previews, result, folder, traces, statuses, wait_s=wait_s))
    except BaseException:
        previews.cancel()
        raise
    for part in PREVIEW_PARTS:  # the manifest's order, whoever drew them
        for problem in drawn[part].notes:
            log.warning(problem)
        files.update(drawn[part].files)
        notes.extend(drawn[part].notes)
        timings.update(drawn[part].timings)
    if result.motion is not None:
        metadata["motion_correction"] = motion_summary(result.motion)
        with timed_stage(timings, "export.motion_previews"):
            files.update(_write_motion_previews(result, folder, notes))
    metadata["notes"] = {"messages": list(notes) + list(result.inputs.resolved.notes)}
    write_output_metadata(folder / METADATA_NAME, metadata)
    files[METADATA_NAME] = {"kind": "metadata", "movie_index": None}
    return files, notes, later


def _write_data_files(result: ExtractionResult, folder: Path, traces: dict[str, dict], statuses: list[str],
                      timings: dict[str, float]) -> tuple[dict[str, dict], dict[str, dict]]:
    """CaImAn's hdf5, the correlation image and the isxd sets; (files, the sets' metadata)."""
    files: dict[str, dict] = {}
    with timed_stage(timings, "export.hdf5"):
        files.update(_write_hdf5(result, folder, statuses))
    if result.estimates.Cn is not None:
        with timed_stage(timings, "export.correlation_tif"):
            write_correlation_tif(folder / CORRELATION_NAME, result.estimates.Cn)
        files[CORRELATION_NAME] = {"kind": "image", "movie_index": None}
    with timed_stage(timings, "export.isxd_sets"):
        written, metadata = _write_isxd_sets(result, folder, traces, names=cell_names(result.estimates.K),
                                             statuses=statuses)
    files.update(written)
    return files, metadata


def _write_after_metadata(result: ExtractionResult, folder: Path, *, evaluate: bool, nwb: bool,
                          nwb_metadata: NwbMetadata | None, fingerprint: str | None,
                          corrected_movie: ConcatenatedMovie | None) -> Written:
    """The motion-corrected movies and the NWB files (listed after the metadata file in the manifest)."""
    later = Written()
    if corrected_movie is not None:
        with timed_stage(later.timings, "export.motion_corrected"):
            later.files.update(write_corrected_movies(result, corrected_movie, folder))
    if nwb:
        step = write_run_nwb(result, folder, fingerprint=fingerprint, evaluate=evaluate, metadata=nwb_metadata)
        later.files.update(step.files)
        later.notes.extend(step.notes)
        later.timings[NWB_TIMING] = round(step.seconds, 4)
    return later


def _draw_previews(result: ExtractionResult, folder: Path, traces: dict[str, dict], statuses: list[str],
                   parts: Sequence[str]) -> dict[str, Written]:
    """The previews of ``parts`` (of :data:`PREVIEW_PARTS`), each part's files, notes and seconds."""
    drawn = {}
    for part in parts:
        drawn[part] = Written()
        _PREVIEW_WRITERS[part](result, folder, traces, statuses, _PreviewAttempt(drawn[part]))
    return drawn


def _drawn(previews: ForkedCall, result: ExtractionResult, folder: Path, traces: dict[str, dict],
           statuses: list[str], *, wait_s: float) -> dict[str, Written]:
    """The previews the child drew; drawn here instead when the child failed or is silent after ``wait_s``
    (a preview's own failure is a note the child returns, not a failure)."""
    try:
        return previews.result(timeout_s=wait_s)
    except (ChildProcessError, RuntimeError) as err:
        log.warning("the previews' process failed (%s); drawing them here", err)
        return _draw_previews(result, folder, traces, statuses, CHILD_PREVIEWS)


def _write_hdf5(result: ExtractionResult, folder: Path, statuses: list[str]) -> dict[str, dict]:
    """CaImAn's hdf5 with the components not rejected as ``idx_components``."""
    series = result.inputs.series
    accepted = [k for k, status in enumerate(statuses) if status != "rejected"]
    write_caiman_hdf5(folder / HDF5_NAME, result.estimates, result.inputs.resolved.params,
                      fnames=[str(m.path) for m in series.movies], idx_components=accepted,
                      shifts=result.motion.result.caiman_shifts() if result.motion is not None else None)
    return {HDF5_NAME: {"kind": "caiman_hdf5", "movie_index": None}}


def _write_isxd_sets(result: ExtractionResult, folder: Path, traces: dict[str, dict], *, names: list[str],
                     statuses: list[str]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Per movie: the raw and denoised cell sets and the event set; (files, their metadata)."""
    estimates = result.estimates
    params = result.inputs.resolved.params
    files: dict[str, dict] = {}
    metadata: dict[str, dict] = {}
    for index, movie in enumerate(result.inputs.series.movies):
        timing = output_timing(movie, fr=float(params.fr), blank_dropped=True)
        spacing = output_spacing(movie, dxy=params.dxy)
        for label in ("raw", "denoised"):
            name = cellset_name(label, index)
            write_cellset(folder / name, footprints=estimates.A, dims=estimates.dims, traces=traces[label][index],
                          timing=timing, spacing=spacing, statuses=statuses,
                          extra_properties=movie.extra_properties)
            files[name] = {"kind": f"cellset_{label}", "movie_index": index}
            metadata[name] = describe_cellset(folder / name)
        name = eventset_name(index)
        try:
            write_eventset(folder / name, spikes=traces["spikes"][index], timing=timing, cell_names=names)
        except EmptySetNotSupported as err:
            metadata[name] = {"type": "eventset", "written": False, "reason": str(err)}
        else:
            files[name] = {"kind": "neural_events", "movie_index": index}
            metadata[name] = describe_eventset(folder / name)
    return files, metadata


def write_corrected_movies(result: ExtractionResult, corrected: ConcatenatedMovie, folder: Path) -> dict[str, dict]:
    """``motion_corrected.{k}.tif`` / ``.isxd`` per input movie from the corrected work copy (save_motion_corrected)."""
    params = result.inputs.resolved.params
    frames = corrected.open()
    files: dict[str, dict] = {}
    for index, movie in enumerate(result.inputs.series.movies):
        first, stop = result.offsets[index]
        name = corrected_name(index, movie.kind)
        write_corrected_movie(folder / name, frames[first:stop], movie, fr=float(params.fr), dxy=params.dxy)
        files[name] = {"kind": "motion_corrected", "movie_index": index}
    return files


def _write_motion_previews(result: ExtractionResult, folder: Path, notes: list[str]) -> dict[str, dict]:
    """Shifts over time and before/after images; like every preview, a failure is only a note."""
    fr = float(result.inputs.resolved.params.fr)
    starts = sorted(first / fr for first, _ in result.offsets.values())[1:]
    written: dict[str, dict] = {}
    for function, stem, kwargs in ((shifts_preview, SHIFTS_STEM, {"fr": fr, "boundaries": starts}),
                                   (motion_images_preview, IMAGES_STEM, {})):
        paths, problem = safe_preview(function, folder / stem, result.motion, **kwargs)
        if problem:
            notes.append(problem)
        written.update({path.name: {"kind": "preview", "movie_index": None} for path in paths})
    return written


@dataclass
class _PreviewAttempt:
    """Draws one preview into a part's :class:`Written`: its files, its seconds (``export.preview.<stem>``),
    and a failure as a note (logged by the caller), never a failed run."""

    drawn: Written

    def __call__(self, movie_index: int | None, function: Callable[..., list[Path]], stem: Path, *args,
                 **kwargs) -> bool:
        with timed_stage(self.drawn.timings, f"export.preview.{stem.name}"):
            paths, problem = safe_preview(function, stem, *args, **kwargs)
        if problem:
            self.drawn.notes.append(problem)
        self.drawn.files.update({path.name: {"kind": "preview", "movie_index": movie_index} for path in paths})
        return not problem


#: what finding no cells asks of the user (a blank movie, where no pixel changes, is refused before the fit:
#: :func:`cnmflow.movies.checks.check_not_blank`)
_LOWER_THRESHOLDS = "lower min_corr / min_pnr"


def _initialization_previews(result: ExtractionResult, folder: Path, traces: dict[str, dict], statuses: list[str],
                             attempt: _PreviewAttempt) -> None:
    """The seed's initialization images, or the no-cells picture."""
    estimates = result.estimates
    if estimates.Cn is not None and estimates.pnr is not None:
        attempt(None, initialization_images, folder / INITIALIZATION_STEM, pnr=estimates.pnr,
                correlation=estimates.Cn)
    if estimates.K == 0:
        attempt(None, no_cells_image, folder / NO_CELLS_STEM,
                message=f"No cells found: {_LOWER_THRESHOLDS}")


def _cell_previews(result: ExtractionResult, folder: Path, traces: dict[str, dict], statuses: list[str],
                   attempt: _PreviewAttempt) -> None:
    """Traces (per movie, and of the whole series) and footprints of both cell sets; the footprints are one
    picture, drawn once and copied."""
    estimates = result.estimates
    fr = float(result.inputs.resolved.params.fr)
    names = cell_names(estimates.K)
    in_series_order = sorted(result.offsets, key=lambda index: result.offsets[index][0])
    starts = [result.offsets[index][0] / fr for index in in_series_order]
    footprints_drawn: Path | None = None
    for label in ("raw", "denoised"):
        if len(traces[label]) > 1:
            series_traces = np.concatenate([traces[label][index] for index in in_series_order], axis=1)
            attempt(None, traces_preview, folder / traces_stem(label, None), series_traces, fr=fr,
                    names=names, boundaries=starts[1:], title=f"{label} traces, whole series")
        for index in sorted(traces[label]):
            attempt(index, traces_preview, folder / traces_stem(label, index), traces[label][index], fr=fr,
                    names=names, title=f"{label} traces, movie {index:03d}")
            stem = folder / footprints_stem(label, index)
            if footprints_drawn is not None:  # the same picture for every movie and both cell sets
                attempt(index, copy_preview, stem, footprints_drawn)
            elif attempt(index, footprints_preview, stem, estimates, statuses=statuses, names=names):
                footprints_drawn = stem


def _event_previews(result: ExtractionResult, folder: Path, traces: dict[str, dict], statuses: list[str],
                    attempt: _PreviewAttempt) -> None:
    """The neural events of each movie."""
    fr = float(result.inputs.resolved.params.fr)
    names = cell_names(result.estimates.K)
    for index in sorted(traces["spikes"]):
        attempt(index, events_preview, folder / events_stem(index), traces["spikes"][index], fr=fr, names=names)


#: The previews of the seed's Outputs section by part, in the manifest's order.
_PREVIEW_WRITERS = {"initialization": _initialization_previews, "cells": _cell_previews, "events": _event_previews}
PREVIEW_PARTS = tuple(_PREVIEW_WRITERS)
#: The parts the forked child draws (about half the drawing of a small run: the run's process writes the data
#: and NWB files meanwhile, then draws the cells' traces and footprints).
CHILD_PREVIEWS = ("initialization", "events")
