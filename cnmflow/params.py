"""Extraction parameters: the seed's analysis table, its 1P/2P presets, and where each value came from.

Names, defaults and descriptions follow Inscopix's "CaImAn Source Extraction" table, so a user
can move between that tool, CaImAn and cnmflow without translating anything.  Reading CaImAn's
grouped JSON files lives in :mod:`cnmflow.params_file`; this module only knows the flat table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cnmflow.errors import ParameterError

#: Sources an effective value can come from, in the order they are applied.
Source = Literal["default", "preset", "table", "file", "metadata", "machine"]

#: Frames the model needs after temporal downsampling (PSD noise band and AR(p) fit need a few).
MIN_DOWNSAMPLED_FRAMES = 10


def default_n_processes() -> int:
    """The seed's default of 7 worker processes, capped to this machine's cores."""
    return max(1, min(7, os.cpu_count() or 1))


class Params(BaseModel):
    """Every parameter of the seed's analysis table, with the seed's defaults (the 1P preset)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)

    fr: float | None = Field(
        None, gt=0, title="fr",
        description="Imaging rate in frames per second. None ('auto'): taken from the movie's "
        "metadata, else 30 fps.")
    decay_time: float = Field(
        0.4, gt=0, title="decay_time", description="Length of a typical calcium transient in seconds.")
    dxy: float = Field(
        1.0, gt=0, title="dxy", description="Spatial resolution of the field of view in pixels per um.")
    p: int = Field(
        1, ge=0, le=2, title="p",
        description="Order of the autoregressive model used to deconvolve the indicator dynamics (0, 1 or 2).")
    K: int | None = Field(
        None, ge=1, title="K",
        description="Number of components to find per patch. None ('auto'): estimated. With rf unset, "
        "K is the number of cells in the whole field of view.")
    gSig: float = Field(3.0, gt=0, title="gSig", description="Radius of an average neuron in pixels.")
    gSiz: int = Field(7, ge=1, title="gSiz", description="Half-size of the bounding box for each neuron.")
    merge_thr: float = Field(
        0.7, gt=0, le=1, title="merge_thr",
        description="Trace correlation threshold for merging two components.")
    rf: int | None = Field(
        40, ge=1, title="rf",
        description="Half-size of a patch in pixels. None: the whole field of view is one patch.")
    stride: int = Field(20, ge=0, title="stride", description="Overlap between neighbouring patches in pixels.")
    tsub: int = Field(2, ge=1, title="tsub", description="Temporal downsampling factor.")
    ssub: int = Field(1, ge=1, title="ssub", description="Spatial downsampling factor.")
    method_init: Literal["corr_pnr", "greedy_roi", "sparse_NMF"] = Field(
        "corr_pnr", title="method_init",
        description="Initialization: 'corr_pnr' for 1P data, 'greedy_roi' for 2P data, 'sparse_NMF' for "
        "dendritic data.")
    min_corr: float = Field(
        0.85, ge=0, le=1, title="min_corr",
        description="Minimum value of the correlation image for a candidate component (corr_pnr).")
    min_pnr: float = Field(
        12.0, ge=0, title="min_pnr",
        description="Minimum value of the peak-to-noise-ratio image for a candidate component (corr_pnr).")
    ssub_B: int = Field(
        2, ge=1, title="ssub_B",
        description="Spatial downsampling factor for estimating the background (corr_pnr).")
    ring_size_factor: float = Field(
        1.4, gt=0, title="ring_size_factor",
        description="Multiple of the neuron size giving the radius of the ring background model (corr_pnr).")
    method_deconvolution: Literal["oasis"] = Field(
        "oasis", title="method_deconvolution",
        description="Method for the constrained deconvolution of temporal traces.")
    update_background_components: bool = Field(
        True, title="update_background_components",
        description="Update the spatial background components in each iteration.")
    del_duplicates: bool = Field(
        True, title="del_duplicates",
        description="Delete duplicate components in the overlaps between patches (True) or merge them (False).")
    nb: int = Field(
        0, ge=0, title="nb", description="Number of global background components. 0 for 1P data.")
    low_rank_background: bool = Field(
        False, title="low_rank_background",
        description="Update the background with a low-rank approximation (2P) instead of HALS on all "
        "non-zero elements (1P).")
    nb_patch: int = Field(
        0, ge=0, title="nb_patch", description="Number of local background components per patch. 0 for 1P data.")
    rolling_sum: bool = Field(
        True, title="rolling_sum",
        description="Use a rolling sum (True) or a full sum (False) to find candidate centroids (greedy_roi).")
    only_init: bool = Field(
        True, title="only_init", description="Return the values after initialization in each patch.")
    normalize_init: bool = Field(
        False, title="normalize_init",
        description="Normalize pixel values by their median intensity before initialization.")
    center_psf: bool = Field(
        True, title="center_psf",
        description="Filter with a zero-mean (centered) kernel when seeding: True for 1P, False for 2P data.")
    bas_nonneg: bool = Field(
        False, title="bas_nonneg",
        description="Non-negative baseline (True) or a baseline that may go below zero (False).")
    border_pix: int = Field(0, ge=0, title="border_pix", description="Number of pixels to exclude around each border.")
    refit: bool = Field(
        False, title="refit",
        description="Refine the estimates by re-running CNMF seeded with the spatial estimates found.")
    n_processes: int = Field(
        default_factory=default_n_processes, ge=1, title="n_processes",
        description="Number of processes used to analyze patches in parallel (capped to the machine's cores).")

    @model_validator(mode="after")
    def _check_combinations(self) -> "Params":
        if self.rf is not None and self.stride >= 2 * self.rf:
            raise ValueError(
                f"stride={self.stride} must be smaller than 2*rf={2 * self.rf} (patches would not overlap "
                "or tile the field of view); lower stride or raise rf")
        if self.method_init in ("greedy_roi", "sparse_NMF") and self.K is None:
            raise ValueError(
                f"K='auto' is only possible with method_init='corr_pnr'; method_init={self.method_init!r} "
                "needs the number of components per patch: set K (the 2P preset uses 4)")
        if self.gSiz < self.gSig:
            raise ValueError(
                f"gSiz={self.gSiz} is smaller than gSig={self.gSig}: the bounding box must contain the neuron; "
                "use gSiz >= 2*gSig+1")
        return self

    def minimum_frames(self) -> int:
        """Frames a series must have so that the model has enough samples after downsampling."""
        return MIN_DOWNSAMPLED_FRAMES * self.tsub


PARAM_NAMES: tuple[str, ...] = tuple(Params.model_fields)

#: The seed's "1P vs 2P" table, exactly.
PRESETS: dict[str, dict[str, Any]] = {
    "1p": dict(K=None, method_init="corr_pnr", del_duplicates=True, nb=0, low_rank_background=False,
               nb_patch=0, normalize_init=False, center_psf=True, bas_nonneg=False),
    "2p": dict(K=4, method_init="greedy_roi", del_duplicates=False, nb=2, low_rank_background=True,
               nb_patch=1, normalize_init=True, center_psf=False, bas_nonneg=True),
}


@dataclass(frozen=True)
class ResolvedParams:
    """The effective parameters of a run, with the source of every value and what the user should know."""

    params: Params
    sources: dict[str, str]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> list[tuple[str, Any, str]]:
        """(name, value, source) rows in table order, for the CLI, the run summary and MLflow."""
        return [(name, getattr(self.params, name), self.sources[name]) for name in PARAM_NAMES]

    def with_values(self, values: Mapping[str, Any], *, source: str, note: str | None = None) -> "ResolvedParams":
        """A copy with some values replaced (e.g. fr from movie metadata), their source recorded."""
        params = build_params({**self.params.model_dump(), **values})
        sources = {**self.sources, **{name: source for name in values}}
        notes = self.notes + ((note,) if note else ())
        return ResolvedParams(params=params, sources=sources, notes=notes)


def build_params(values: Mapping[str, Any]) -> Params:
    """Validate flat values into :class:`Params`; errors name the parameter, the value and what is allowed."""
    unknown = sorted(set(values) - set(PARAM_NAMES))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(PARAM_NAMES)}")
    try:
        return Params(**values)
    except ValidationError as err:
        raise ParameterError(_format_validation_error(err, values)) from None


def _format_validation_error(err: ValidationError, values: Mapping[str, Any]) -> str:
    lines = []
    for problem in err.errors():
        name = ".".join(str(part) for part in problem["loc"]) or "parameters"
        message = problem["msg"].removeprefix("Value error, ")
        if name in values:
            lines.append(f"parameter {name}={values[name]!r}: {message}")
        else:
            lines.append(f"{name}: {message}")
    return "invalid parameters: " + "; ".join(lines)


def resolve_params(
    *,
    preset: str = "1p",
    table: Mapping[str, Any] | None = None,
    file_values: Mapping[str, Any] | None = None,
    file_name: str | None = None,
    overwrite_params: bool = False,
) -> ResolvedParams:
    """Combine defaults, a preset, the analysis table and a parameters file, as the seed specifies.

    The file replaces table values only when ``overwrite_params`` is True (keys absent from the
    file keep the table's values); otherwise it is not applied and a note says so, because the
    reference tool ignores it silently and users lose a run finding out.
    """
    if preset not in PRESETS:
        raise ParameterError(f"preset={preset!r} is not known; choose one of {', '.join(PRESETS)}")
    values: dict[str, Any] = {}
    sources = {name: "default" for name in PARAM_NAMES}
    notes: list[str] = []

    def apply(layer: Mapping[str, Any], source: str) -> None:
        unknown = sorted(set(layer) - set(PARAM_NAMES))
        if unknown:
            raise ParameterError(
                f"unknown parameter(s) {', '.join(unknown)} ({source}); known: {', '.join(PARAM_NAMES)}")
        values.update(layer)
        sources.update({name: source for name in layer})

    apply(PRESETS[preset], f"preset {preset}")
    apply(table or {}, "table")
    if file_values is not None:
        label = file_name or "parameters file"
        if overwrite_params:
            apply(file_values, f"file {label}")
        else:
            notes.append(
                f"{label} was given but overwrite_params is False: its values were NOT applied "
                f"(it sets {', '.join(sorted(file_values)) or 'nothing this tool uses'}); "
                "set overwrite_params to use it")
    params = build_params(values)
    cores = os.cpu_count() or 1
    if params.n_processes > cores:
        notes.append(f"n_processes={params.n_processes} capped to this machine's {cores} cores")
        params = build_params({**values, "n_processes": cores})
        sources["n_processes"] = "machine"
    return ResolvedParams(params=params, sources=sources, notes=tuple(notes))


def to_caiman_groups(params: Params) -> dict[str, dict[str, Any]]:
    """The values in CaImAn's ``CNMFParams`` groups and types (tuples, ``K=None`` for auto).

    Used by the hdf5 writer and to hand the same settings to CaImAn.  ``refit`` is not a CaImAn
    parameter (CaImAn refits by calling ``cnm.refit``), so it is not in any group.
    """
    nb = params.nb
    return {
        "data": {"fr": params.fr, "decay_time": params.decay_time, "dxy": (params.dxy, params.dxy)},
        "init": {
            "K": params.K, "gSig": (params.gSig, params.gSig), "gSiz": (params.gSiz, params.gSiz),
            "ssub": params.ssub, "tsub": params.tsub, "nb": nb, "method_init": params.method_init,
            "min_corr": params.min_corr, "min_pnr": params.min_pnr, "ssub_B": params.ssub_B,
            "ring_size_factor": params.ring_size_factor, "normalize_init": params.normalize_init,
            "center_psf": params.center_psf, "rolling_sum": params.rolling_sum,
        },
        "preprocess": {"p": params.p},
        "temporal": {"p": params.p, "method_deconvolution": params.method_deconvolution,
                     "bas_nonneg": params.bas_nonneg, "nb": nb},
        "spatial": {"update_background_components": params.update_background_components, "nb": nb},
        "patch": {
            "rf": params.rf, "stride": params.stride, "only_init": params.only_init,
            "nb_patch": params.nb_patch, "low_rank_background": params.low_rank_background,
            "del_duplicates": params.del_duplicates, "border_pix": params.border_pix,
            "n_processes": params.n_processes,
        },
        "merging": {"merge_thr": params.merge_thr},
    }
