"""What the NWB writer needs (`NwbRun`), from a fresh fit or from a finished output folder.

Two callers, one writer: the export builds the run from the `ExtractionResult` it holds
(`nwb_run_from_result`), and ``cnmflow nwb OUTPUT_DIR`` rebuilds the same run from the files
a finished run left (`nwb_run_from_folder`: ``manifest.json`` for the parameters, fingerprint
and each movie's frame range, ``caiman_output.hdf5`` for the model, ``cellset_raw.{k}.isxd``
for each movie's timing, spacing and cell statuses). Both read timing from the same isx
objects the cell sets were written with, so the NWB timelines equal the cell sets'.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from cnmflow import isx_timing
from cnmflow.errors import InputError
from cnmflow.isx_package import isx_package
from cnmflow.outputs.names import HDF5_NAME, MANIFEST_NAME, cellset_name
from cnmflow.outputs.nwb import NwbMovie, NwbRun

if TYPE_CHECKING:
    from cnmflow.pipeline import ExtractionResult


def nwb_run_from_result(result: ExtractionResult, *, fingerprint: str | None = None, evaluate: bool = False,
                        created: datetime | None = None) -> NwbRun:
    """The `NwbRun` of an `ExtractionResult` (what `cnmflow.outputs.export` holds after the fit)."""
    from cnmflow.engine.quality import component_statuses  # noqa: PLC0415
    from cnmflow.outputs.isxd_sets import output_spacing, output_timing  # noqa: PLC0415

    params = result.inputs.resolved.params
    movies = []
    for index, movie in enumerate(result.inputs.series.movies):
        timing = output_timing(movie, fr=float(params.fr), blank_dropped=True)
        spacing = output_spacing(movie, dxy=params.dxy)
        movies.append(nwb_movie(index, Path(movie.path).name, result.offsets[index], timing, spacing,
                                start_time=movie.start_time))
    return NwbRun(estimates=result.estimates, movies=movies, parameters=params.model_dump(mode="json"),
                  fingerprint=fingerprint, statuses=component_statuses(result.estimates, evaluate=evaluate),
                  evaluated=evaluate, created=created or datetime.now().astimezone())


def nwb_movie(index: int, name: str, frame_range: tuple[int, int], timing, spacing, *,
              start_time: datetime | None) -> NwbMovie:
    """One movie from the isx timing and spacing its outputs carry (read while their owner lives)."""
    first, stop = (int(v) for v in frame_range)
    n = int(timing.num_samples)
    if stop - first != n:
        raise InputError(f"movie {index:03d} ({name}) covers {stop - first} frames of the series but its timing "
                         f"has {n} samples; the outputs do not belong to the same run")
    invalid = np.flatnonzero(~np.asarray(timing.get_valid_samples_mask(), dtype=bool))
    impl = spacing._impl
    return NwbMovie(index=int(index), name=name, frame_range=(first, stop),
                    period=isx_timing.as_fraction(timing.period),
                    pixel_size_um=(float(isx_timing.as_fraction(impl.pixel_height)),
                                   float(isx_timing.as_fraction(impl.pixel_width))),
                    start_time=start_time, invalid_samples=tuple(int(i) for i in invalid))


def nwb_run_from_folder(output_dir: str | os.PathLike) -> NwbRun:
    """The `NwbRun` of a finished output folder; InputError when it holds no finished, intact run."""
    from cnmflow.lineage import read_manifest, sha256_file  # noqa: PLC0415
    from cnmflow.outputs.caiman_hdf5 import read_caiman_hdf5  # noqa: PLC0415

    folder = Path(output_dir)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; give the output folder of a finished cnmflow run")
    manifest = read_manifest(folder)
    outputs = manifest.get("outputs", {})
    inputs = sorted(manifest.get("inputs", []), key=lambda record: record["index"])
    needed = [HDF5_NAME] + [cellset_name("raw", record["index"]) for record in inputs]
    for name in needed:
        record = outputs.get(name)
        file = folder / name
        if record is None or not file.is_file():
            raise InputError(f"{file} is missing or not listed in {folder / MANIFEST_NAME}; "
                             "the folder holds no finished run: run cnmflow run on the movies again")
        if file.stat().st_size != record.get("size_bytes") or sha256_file(file) != record.get("sha256"):
            raise InputError(f"{file} no longer matches {folder / MANIFEST_NAME} (changed after the run); "
                             "restore it or run cnmflow run on the movies again")
    estimates = read_caiman_hdf5(folder / HDF5_NAME)
    movies, statuses = [], None
    for record in inputs:
        movie, cell_statuses = _movie_from_cellset(folder, record, dims=estimates.dims)
        movies.append(movie)
        statuses = statuses or cell_statuses
    run = manifest.get("run", {})
    if statuses is None or len(statuses) != estimates.K:
        raise InputError(f"the cell sets in {folder} hold {len(statuses or [])} cells but {HDF5_NAME} has "
                         f"{estimates.K}; the folder mixes outputs of different runs")
    return NwbRun(estimates=estimates, movies=movies, parameters=_parameters(manifest["parameters"]),
                  fingerprint=run.get("fingerprint"), statuses=statuses, evaluated=bool(run.get("evaluated")),
                  created=_created(manifest.get("created")))


def _movie_from_cellset(folder: Path, record: Mapping[str, Any], *, dims) -> tuple[NwbMovie, list[str]]:
    index = int(record["index"])
    path = folder / cellset_name("raw", index)
    try:
        cellset = isx_package().CellSet.read(str(path))
    except Exception as err:  # isx raises bare Exception
        raise InputError(f"{path} cannot be read as an isxd cell set ({err}); run cnmflow run again") from None
    try:
        if tuple(int(v) for v in cellset.spacing.num_pixels) != tuple(int(v) for v in dims):
            raise InputError(f"{path} has {tuple(cellset.spacing.num_pixels)} pixels but {HDF5_NAME} has dims "
                             f"{tuple(dims)}; the folder mixes outputs of different runs")
        start = isx_timing.time_to_datetime(cellset.timing.start) if record.get("kind") == "isxd" else None
        movie = nwb_movie(index, Path(record["path"]).name, tuple(record["frame_range"]), cellset.timing,
                          cellset.spacing, start_time=start)
        statuses = [cellset.get_cell_status(k) for k in range(int(cellset.num_cells))]
    finally:
        del cellset
    return movie, statuses


def _parameters(table: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {name: entry.get("value") for name, entry in table.items()}


def _created(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
