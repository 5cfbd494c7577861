"""Motion correction on its own: movies in; corrected movies, shifts, previews and a manifest out.

What ``cnmflow motion-correct`` and the ``motion-correction`` flow run, so a lab can register a
recording without extracting it. Same checks before compute, same work copies (a finished
corrected copy with the same settings is reused), same all-or-nothing output folder as an
extraction: files are staged and swapped in with the manifest last.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np

from cnmflow.atomic_write import atomic_path
from cnmflow.errors import ParameterError
from cnmflow.fingerprint import input_hashes, run_fingerprint, series_key
from cnmflow.lineage import build_manifest, input_records, write_manifest
from cnmflow.motion.work_copy import MotionOutcome
from cnmflow.movies.work_copy import WORK_DIR_NAME, remove_unused
from cnmflow.outputs.corrected_movies import write_corrected_movie
from cnmflow.outputs.export import previous_result_names
from cnmflow.outputs.folder import open_output_dir
from cnmflow.outputs.isxd_sets import OutputExistsError
from cnmflow.outputs.metadata import write_output_metadata
from cnmflow.outputs.motion import motion_images_preview, motion_summary, shifts_preview
from cnmflow.outputs.names import IMAGES_STEM, MANIFEST_NAME, METADATA_NAME, SHIFTS_NAME, SHIFTS_STEM, corrected_name
from cnmflow.outputs.previews import safe_preview
from cnmflow.outputs.result_swap import staging_folder, swap_in
from cnmflow.params import to_caiman_groups
from cnmflow.params_form import MOTION_DEFAULT_METHOD
from cnmflow.pipeline import held_work_copies
from cnmflow.request import RunRequest, request_of
from cnmflow.validate import ValidatedInputs, validate_inputs

Progress = Callable[[str, float], None]
@dataclass(frozen=True)
class MotionRun:
    """What a motion-only run wrote (file name → {"kind", "movie_index"}) and found."""

    output_dir: Path
    files: dict[str, dict[str, Any]]
    outcome: MotionOutcome
    timings: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def validate_motion_inputs(movies: Sequence[str | os.PathLike], request: RunRequest | None = None, *,
                           preset: str = "1p", table: dict[str, Any] | None = None,
                           params_file: str | os.PathLike | None = None,
                           overwrite_params: bool = False) -> ValidatedInputs:
    """The movies and the effective parameters, motion_correction defaulting to rigid; refused before compute.

    ``request`` is what the user asked for (or give its fields as keywords)."""
    request = request_of(request, preset=preset, table=table, params_file=params_file,
                         overwrite_params=overwrite_params)
    defaulted = RunRequest(preset=request.preset, table={"motion_correction": MOTION_DEFAULT_METHOD, **request.table},
                           params_file=request.params_file, overwrite_params=request.overwrite_params)
    inputs = validate_inputs(movies, defaulted, cell_size=False)  # no seed search here: gSig is not used
    if inputs.resolved.params.motion_correction == "none":
        raise ParameterError("motion_correction='none' leaves nothing for motion-correct to do; set "
                             "motion_correction to rigid or piecewise_rigid")
    return inputs


def planned_motion_names(inputs: ValidatedInputs) -> list[str]:
    """The data files a motion-only run over these inputs writes (previews come on top)."""
    movies = [corrected_name(k, movie.kind) for k, movie in enumerate(inputs.series.movies)]
    return movies + [SHIFTS_NAME, METADATA_NAME, MANIFEST_NAME]


def check_motion_output_dir(output_dir: str | os.PathLike, inputs: ValidatedInputs, *, overwrite: bool) -> None:
    """Refuse, before compute, to replace an earlier run's files unless overwriting."""
    existing = [name for name in planned_motion_names(inputs) if (Path(output_dir) / name).exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{output_dir} already holds outputs of a run ({', '.join(existing[:4])}); choose "
                                "another output directory or ask to overwrite (--overwrite)")


def motion_correct(movies: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *, preset: str = "1p",
                   params: dict[str, Any] | None = None, params_file: str | os.PathLike | None = None,
                   overwrite_params: bool = False, overwrite: bool = False, work_dir: str | os.PathLike | None = None,
                   dask_scheduler: str | None = None, progress: Progress | None = None,
                   run_ids: dict[str, str | None] | None = None, inputs: ValidatedInputs | None = None) -> MotionRun:
    """Correct ``movies`` (one series) and write ``motion_corrected.{k}``, the shifts, previews and a manifest.

    ``inputs`` skips the validation when the caller has done it (:func:`validate_motion_inputs`).
    """
    inputs = inputs or validate_motion_inputs(movies, preset=preset, table=params, params_file=params_file,
                                              overwrite_params=overwrite_params)
    output_dir = Path(output_dir).expanduser().absolute()
    with open_output_dir(output_dir) as lock:
        check_motion_output_dir(output_dir, inputs, overwrite=overwrite)
        hashes = input_hashes(inputs.series, remembered_in=inputs.machine.hash_cache())
        key = series_key(hashes, inputs.series)
        root = Path(work_dir) if work_dir is not None else lock.folder / WORK_DIR_NAME
        try:
            with held_work_copies(inputs, root, key, corrected_key=key, progress=progress,
                                  dask_scheduler=dask_scheduler) as copies:
                timings = copies.timings
                corrected, outcome = copies.movie, copies.motion
                started = time.perf_counter()
                files, notes = _export(inputs, corrected.open(), corrected.offsets, outcome, output_dir,
                                       hashes=hashes, run_ids=run_ids or {}, timings=timings)
                timings["export"] = time.perf_counter() - started
        finally:
            remove_unused(root)
    return MotionRun(output_dir=output_dir, files=files, outcome=outcome, timings=timings, notes=tuple(notes))


def _export(inputs: ValidatedInputs, frames: np.ndarray, offsets: dict[int, tuple[int, int]], outcome: MotionOutcome,
            output_dir: Path, *, hashes: dict[int, str], run_ids: dict[str, str | None],
            timings: dict[str, float]) -> tuple[dict[str, dict], list[str]]:
    params = inputs.resolved.params
    fr = float(params.fr)
    with staging_folder(output_dir) as staging:
        files: dict[str, dict] = {}
        notes: list[str] = []
        for index, movie in enumerate(inputs.series.movies):
            first, stop = offsets[index]
            name = corrected_name(index, movie.kind)
            write_corrected_movie(staging / name, frames[first:stop], movie, fr=fr, dxy=params.dxy)
            files[name] = {"kind": "motion_corrected", "movie_index": index}
        write_shifts(staging / SHIFTS_NAME, outcome, params)
        files[SHIFTS_NAME] = {"kind": "motion_shifts", "movie_index": None}
        starts = sorted(first / fr for first, _ in offsets.values())[1:]
        for function, stem, kwargs in ((shifts_preview, SHIFTS_STEM, {"fr": fr, "boundaries": starts}),
                                       (motion_images_preview, IMAGES_STEM, {})):
            paths, problem = safe_preview(function, staging / stem, outcome, **kwargs)
            notes.extend([problem] if problem else [])
            files.update({path.name: {"kind": "preview", "movie_index": None} for path in paths})
        summary = motion_summary(outcome)
        write_output_metadata(staging / METADATA_NAME, {
            "motion_correction": summary, "notes": {"messages": notes + list(inputs.resolved.notes)}})
        files[METADATA_NAME] = {"kind": "metadata", "movie_index": None}
        run = {"fingerprint": run_fingerprint(hashes, params), "motion_correction": summary,
               "n_frames": int(frames.shape[0]), "frame_shape": [int(n) for n in frames.shape[1:]],
               "timings_s": {stage: round(seconds, 4) for stage, seconds in timings.items()}}
        manifest = build_manifest(output_dir=staging, outputs=files, inputs=input_records(inputs.series, hashes),
                                  resolved=inputs.resolved, run_ids=run_ids, notes=notes, run=run)
        write_manifest(staging / MANIFEST_NAME, manifest)
        files[MANIFEST_NAME] = {"kind": "manifest", "movie_index": None}
        swap_in(staging, output_dir, new=files, old=previous_result_names(output_dir), manifest_name=MANIFEST_NAME)
    return files, notes


def write_shifts(path: str | os.PathLike, outcome: MotionOutcome, params) -> Path:
    """The shifts as CaImAn keeps them (``estimates/shifts``, ``params/motion``) plus the rigid shifts,
    template, mean images and crop box; written to a temporary name, then renamed."""
    path = Path(path)
    result = outcome.result
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset("estimates/shifts", data=np.asarray(result.caiman_shifts(), dtype=np.float32))
        h5.create_dataset("shifts_rig", data=result.shifts_rig)
        if result.shifts_els is not None:
            h5.create_dataset("shifts_els", data=result.shifts_els)
        for name in ("template", "mean_image"):
            h5.create_dataset(name, data=getattr(result, name))
        h5.create_dataset("mean_image_before", data=outcome.mean_before)
        motion = h5.create_group("params/motion")
        for key, value in to_caiman_groups(params)["motion"].items():
            motion.attrs[key] = "NoneType" if value is None else value
        h5.attrs["method"] = result.method
        for side in ("top", "bottom", "left", "right"):
            h5.attrs[f"crop_{side}"] = int(getattr(result.crop, side))
    return path
