"""Everything checked before any compute: parameters, the movie series, and how the two fit together.

A run that will fail should fail here, in seconds, with a message naming the file or parameter,
not after an hour of extraction (the reference tool's habit).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from cnmflow.auto_params import AutoEstimate, resolve_auto, series_cells_radius
from cnmflow.engine import EngineSettings
from cnmflow.errors import ParameterError
from cnmflow.motion.movement import movement_note
from cnmflow.motion.params import check_against_frame
from cnmflow.movies import MovieSeries, resolve_frame_rate, validate_series
from cnmflow.movies.checks import checked_pixel_values
from cnmflow.movies.series import gap_notes
from cnmflow.params import ResolvedParams
from cnmflow.request import RunRequest, request_of
from cnmflow.settings import Settings, load_settings
from cnmflow.size_check import radius_note


@dataclass(frozen=True)
class ValidatedInputs:
    """A movie series and the effective parameters of a run on it, both checked.

    ``engine`` holds the engine's typed sections built from the final values (the frame rate and
    the "auto" values included), so the fit does not check them again; ``machine`` holds the
    machine's settings (chunk memory, scratch, Dask, caches) read once from the environment.
    ``size_note`` is the note, also among ``resolved.notes``, that the gSig set lies far below the cells'
    half-max radius read from the movie (:func:`cell_size_note`); None where it was not given.
    """

    series: MovieSeries
    resolved: ResolvedParams
    engine: EngineSettings = field(repr=False)
    machine: Settings = field(repr=False)
    size_note: str | None = None


def validate_inputs(
    movies: Sequence[str | os.PathLike],
    request: RunRequest | None = None,
    *,
    preset: str = "1p",
    table: dict[str, Any] | None = None,
    params_file: str | os.PathLike | None = None,
    overwrite_params: bool = False,
    machine: Settings | None = None,
    cell_size: bool = True,
) -> ValidatedInputs:
    """Resolve the parameters, validate the series against them and settle the frame rate.

    ``request`` is what the user asked for (or give its fields as keywords). Cheap checks come
    first; then every pixel of float movies is read (NaN, inf and overflowing values are refused),
    once per file and process; last, ``cell_size``: a gSig set is compared with the cells' radius read
    on a bounded sample of the movie (:func:`cell_size_note`; off for motion-only runs), and a movie that moves
    while motion_correction is 'none' gets a note (:func:`~cnmflow.motion.movement.movement_note`). ``machine``
    defaults to the environment's settings (:func:`cnmflow.settings.load_settings`; a bad value is
    refused here, before any compute).
    """
    machine = machine or load_settings()
    resolved = request_of(request, preset=preset, table=table, params_file=params_file,
                          overwrite_params=overwrite_params).resolve()
    series = validate_series(movies, min_frames=resolved.params.minimum_frames(), tsub=resolved.params.tsub)
    fr, fr_source, warnings = resolve_frame_rate(series, resolved.params.fr)
    # a movie without rate metadata runs at the default rate: its source is "default", never "metadata"
    source = {"user": resolved.sources["fr"], "default": "default"}.get(fr_source, "metadata")
    resolved = resolved.with_values({"fr": fr}, source=source, note=f"fr = {fr:g} Hz ({fr_source})")
    _check_fits_frame(series, resolved)
    movie_notes = tuple(note for movie in series.movies for note in movie.notes) + tuple(gap_notes(series))
    series, pixel_notes = checked_pixel_values(series)  # refused, or defective pixels recorded to be mended
    resolved = ResolvedParams(params=resolved.params, sources=resolved.sources,
                              notes=resolved.notes + tuple(warnings) + movie_notes + pixel_notes)
    resolved, estimate = resolve_auto(series, resolved)  # gSig/min_corr/min_pnr "auto": read from the movie
    _check_fits_frame(series, resolved)
    size_note = cell_size_note(series, resolved, estimate) if cell_size else None
    motion_note = movement_note(series, resolved.params)  # a moving movie the run would not correct
    resolved = replace(resolved, notes=resolved.notes + tuple(filter(None, (size_note, motion_note))))
    return ValidatedInputs(series=series, resolved=resolved, engine=EngineSettings.from_params(resolved.params),
                           machine=machine, size_note=size_note)


def cell_size_note(series: MovieSeries, resolved: ResolvedParams, estimate: AutoEstimate | None = None) -> str | None:
    """Before any compute, the note that a gSig the user set lies far below the cells' half-max radius read from
    the movie (:func:`cnmflow.size_check.radius_note`), else None.

    A 1P (corr_pnr) run only: its seed filter loses the PNR of cells far wider than gSig, and the radius is the one
    ``cnmflow suggest`` reads (``estimate``'s where "auto" read it already, else
    :func:`~cnmflow.auto_params.series_cells_radius`, ~0.3–0.6 s CPU on a 256² movie). An estimated gSig gets no
    note; nor does a movie whose projection shows too few cells, or none, to read the radius: never an error.
    """
    params = resolved.params
    if params.method_init != "corr_pnr" or resolved.sources["gSig"] == "auto":
        return None
    radius = (estimate.cells_radius() if estimate is not None
              else series_cells_radius(series, tsub=params.tsub, ssub=params.ssub))
    if radius is None:
        return None
    thresholds_set = any(resolved.sources[name] != "auto" for name in ("min_corr", "min_pnr"))
    return radius_note(float(params.gSig), radius, reread_thresholds=thresholds_set)


def _check_fits_frame(series: MovieSeries, resolved: ResolvedParams) -> None:
    rows, cols = series.frame_shape
    params = resolved.params
    if 2 * params.border_pix >= min(rows, cols):
        raise ParameterError(
            f"border_pix={params.border_pix} excludes the whole {rows}x{cols} frame; "
            f"use a value below {min(rows, cols) // 2}")
    if params.motion_correction != "none":
        check_against_frame(params.motion, (rows, cols))
    smallest = min(rows, cols) // params.ssub
    if params.gSiz >= smallest:
        raise ParameterError(
            f"gSiz={params.gSiz} does not fit the {rows}x{cols} frame (downsampled by ssub={params.ssub}); "
            "use a smaller gSiz or ssub")


def describe_inputs(inputs: ValidatedInputs) -> str:
    """The effective parameters with their sources and the movie summary, as the CLI prints them."""
    series = inputs.series
    lines = ["Movies (concatenated in this order):"]
    for position in series.order:
        movie = series.movies[position]
        first, stop = series.offsets()[position]
        rate = f"{movie.frame_rate:g} Hz" if movie.frame_rate else "no rate metadata"
        extra = f", {len(movie.invalid_frames)} dropped/cropped frames" if movie.invalid_frames else ""
        extra += f", {len(movie.blank_frames)} blank frames filled" if movie.blank_frames else ""
        lines.append(f"  [{position}] {movie.path}  {movie.kind}, {movie.n_frames} frames "
                     f"{movie.frame_shape[0]}x{movie.frame_shape[1]} {movie.dtype}, {rate}{extra}, "
                     f"frames {first}-{stop - 1} of the series")
    lines.append(f"Series: {series.n_frames} frames of {series.frame_shape[0]}x{series.frame_shape[1]} pixels")
    lines.append("Effective parameters (value  source):")
    width = max(len(name) for name, _, _ in inputs.resolved.describe())
    for name, value, source in inputs.resolved.describe():
        shown = "auto" if value is None and name in ("K", "fr") else value
        shown = "unset (one patch)" if value is None and name == "rf" else shown
        lines.append(f"  {name:<{width}}  {shown!s:<12}  {source}")
    if inputs.resolved.notes:
        lines.append("Notes:")
        lines.extend(f"  - {note}" for note in inputs.resolved.notes)
    return "\n".join(lines)
