"""Extraction parameters: the seed's analysis table, its 1P/2P presets, and where each value came from.

Names, defaults and descriptions follow Inscopix's "CaImAn Source Extraction" table, so a user
can move between that tool, CaImAn and cnmflow without translating anything.  Reading CaImAn's
grouped JSON files lives in :mod:`cnmflow.params_file`; this module only knows the flat table.
"""

from __future__ import annotations

import difflib
import functools
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Mapping, get_args, get_origin

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from cnmflow.errors import ParameterError
from cnmflow.motion.params import MOTION_PARAM_NAMES, MotionSection

#: Sources an effective value can come from, in the order they are applied.
Source = Literal["default", "preset", "table", "file", "metadata", "machine", "auto"]

#: Parameters that also take "auto": estimated from the movie before extraction (cnmflow.auto_params).
AUTO_FIELDS: tuple[str, ...] = ("gSig", "min_corr", "min_pnr")

#: Frames the model needs after temporal downsampling (PSD noise band and AR(p) fit need a few).
MIN_DOWNSAMPLED_FRAMES = 10


#: Largest integer a parameter may hold (larger ones overflow the engine's int arrays).
MAX_INT = 2**31 - 1


def number_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a number parameter, or None.

    Runs before pydantic's lax coercion, which would turn ``true`` into 1.0, ``"8"`` into 8 and
    accept inf/nan: a flag, text or a non-finite value is never what the user meant.
    """
    if isinstance(value, (bool, np.bool_)):
        return "true/false is not a number; give a number"
    if isinstance(value, (str, bytes)):
        try:
            finite = math.isfinite(float(value))
        except ValueError:
            if value.strip().lower() in ("auto", "none"):
                return "'auto' is written null (JSON) or None; or give a number"
            return "text is not a number; give a number"
        if not finite:
            return "must be a finite number (inf and nan are not allowed)"
        return f"give the number without quotes ({value!s} as a JSON number, not text)"
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        return "must be a finite number (inf and nan are not allowed)"
    if isinstance(value, numbers.Integral) and abs(int(value)) > MAX_INT:
        return f"is too large (at most {MAX_INT})"
    return None


def flag_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a true/false parameter (1, "yes" and friends are refused), or None."""
    return None if isinstance(value, (bool, np.bool_)) else "give true or false"


def _only_numbers(value: Any) -> Any:
    problem = number_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _only_flags(value: Any) -> Any:
    problem = flag_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _numbers_or_auto(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return _only_numbers(value)


#: Annotations every numeric / true-false field of the table (and of the run form) carries.
Number = BeforeValidator(_only_numbers)
#: A number, or "auto" (estimated from the movie; :data:`AUTO_FIELDS`).
NumberOrAuto = BeforeValidator(_numbers_or_auto)
Flag = BeforeValidator(_only_flags)


#: The seed's default number of worker processes.
SEED_N_PROCESSES = 7


def default_n_processes() -> int:
    """The seed's default of 7 worker processes, capped to this machine's cores."""
    return max(1, min(SEED_N_PROCESSES, os.cpu_count() or 1))


class Params(MotionSection):
    """Every parameter of the seed's analysis table, with the seed's defaults (the 1P preset), and
    the motion section (inherited: ``motion_correction`` and CaImAn's motion names; ``.motion``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True, allow_inf_nan=False)

    fr: Annotated[float | None, Number] = Field(
        None, gt=0, title="fr",
        description="Imaging rate in frames per second. None ('auto'): taken from the movie's "
        "metadata, else 30 fps.")
    decay_time: Annotated[float, Number] = Field(
        0.4, gt=0, title="decay_time", description="Length of a typical calcium transient in seconds.")
    dxy: Annotated[float, Number] = Field(
        1.0, gt=0, title="dxy", description="Spatial resolution of the field of view in pixels per um.")
    p: Annotated[int, Number] = Field(
        1, ge=0, le=2, title="p",
        description="Order of the autoregressive model used to deconvolve the indicator dynamics (0, 1 or 2).")
    K: Annotated[int | None, Number] = Field(
        None, ge=1, title="K",
        description="Number of components to find per patch. None ('auto'): estimated (corr_pnr: every seed above "
        "min_corr and min_pnr; greedy_roi: as many as stand out of their surround, at most one per (2·gSig)² px of "
        "the patch). With rf unset, K is the number of cells in the whole field of view.")
    gSig: Annotated[Annotated[float, Field(gt=0)] | Literal["auto"], NumberOrAuto] = Field(
        3.0, title="gSig",
        description="Radius of an average neuron in pixels. 'auto': the half-max radius of the movie's cells.")
    gSiz: Annotated[int, Number] = Field(
        7, ge=1, title="gSiz",
        description="Half-size of the bounding box for each neuron.")
    merge_thr: Annotated[float, Number] = Field(
        0.7, gt=0, le=1, title="merge_thr",
        description="Trace correlation threshold for merging two components.")
    rf: Annotated[int | None, Number] = Field(
        40, ge=1, title="rf",
        description="Half-size of a patch in pixels. None: the whole field of view is one patch.")
    stride: Annotated[int, Number] = Field(
        20, ge=0, title="stride",
        description="Overlap between neighbouring patches in pixels.")
    tsub: Annotated[int, Number] = Field(2, ge=1, title="tsub", description="Temporal downsampling factor.")
    ssub: Annotated[int, Number] = Field(1, ge=1, title="ssub", description="Spatial downsampling factor.")
    method_init: Literal["corr_pnr", "greedy_roi", "sparse_NMF"] = Field(
        "corr_pnr", title="method_init",
        description="Initialization: 'corr_pnr' for 1P data, 'greedy_roi' for 2P data, 'sparse_NMF' for "
        "dendritic data.")
    min_corr: Annotated[Annotated[float, Field(ge=0, le=1)] | Literal["auto"], NumberOrAuto] = Field(
        0.85, title="min_corr",
        description="Minimum value of the correlation image for a candidate component (corr_pnr). 'auto': "
        "the correlation image's noise floor plus a stated number of noise sd.")
    min_pnr: Annotated[Annotated[float, Field(ge=0)] | Literal["auto"], NumberOrAuto] = Field(
        12.0, title="min_pnr",
        description="Minimum value of the peak-to-noise-ratio image for a candidate component (corr_pnr). "
        "'auto': the PNR image's noise floor plus a stated number of noise sd.")
    ssub_B: Annotated[int, Number] = Field(
        2, ge=1, title="ssub_B",
        description="Spatial downsampling factor for estimating the background (corr_pnr).")
    ring_size_factor: Annotated[float, Number] = Field(
        1.4, gt=0, title="ring_size_factor",
        description="Multiple of the neuron size giving the radius of the ring background model (corr_pnr).")
    method_deconvolution: Literal["oasis"] = Field(
        "oasis", title="method_deconvolution",
        description="Method for the constrained deconvolution of temporal traces.")
    update_background_components: Annotated[bool, Flag] = Field(
        True, title="update_background_components",
        description="Update the spatial background components in each iteration.")
    del_duplicates: Annotated[bool, Flag] = Field(
        True, title="del_duplicates",
        description="Delete duplicate components in the overlaps between patches (True) or merge them (False).")
    nb: Annotated[int, Number] = Field(
        0, ge=0, title="nb", description="Number of global background components. 0 for 1P data.")
    low_rank_background: Annotated[bool, Flag] = Field(
        False, title="low_rank_background",
        description="Update the background with a low-rank approximation (2P) instead of HALS on all "
        "non-zero elements (1P).")
    nb_patch: Annotated[int, Number] = Field(
        0, ge=0, title="nb_patch", description="Number of local background components per patch. 0 for 1P data.")
    rolling_sum: Annotated[bool, Flag] = Field(
        True, title="rolling_sum",
        description="Use a rolling sum (True) or a full sum (False) to find candidate centroids (greedy_roi).")
    only_init: Annotated[bool, Flag] = Field(
        True, title="only_init", description="Return the values after initialization in each patch.")
    normalize_init: Annotated[bool, Flag] = Field(
        False, title="normalize_init",
        description="Normalize pixel values by their median intensity before initialization.")
    center_psf: Annotated[bool, Flag] = Field(
        True, title="center_psf",
        description="Filter with a zero-mean (centered) kernel when seeding: True for 1P, False for 2P data.")
    bas_nonneg: Annotated[bool, Flag] = Field(
        False, title="bas_nonneg",
        description="Non-negative baseline (True) or a baseline that may go below zero (False).")
    border_pix: Annotated[int, Number] = Field(
        0, ge=0, title="border_pix",
        description="Number of pixels to exclude around each border.")
    refit: Annotated[bool, Flag] = Field(
        False, title="refit",
        description="Refine the estimates by re-running CNMF seeded with the spatial estimates found.")
    n_processes: Annotated[int, Number] = Field(
        default_factory=default_n_processes, ge=1, title="n_processes",
        description="Number of processes used to analyze patches in parallel (capped to the machine's cores).")
    # beyond the seed's table (issue #16)
    focus_thr: Annotated[float, Number] = Field(
        0.63, ge=0, le=1, title="focus_thr",
        description="1P: a component whose own image (the light that moves with its trace alone) has a core "
        "contrast below this fraction of the fit's median component is rejected as out of focus (an "
        "out-of-focus cell, neuropil, or a second component on one neuron); it stays in the results, marked "
        "rejected (idx_components_bad). With it, a component whose trace never returns to rest and whose SNR is "
        "below 4 (a fit to noise or a faint mixture) is rejected too, and two accepted components on one soma whose "
        "traces follow each other only weakly (each peak on the other's footprint, r 0.35–0.5: each mixes the "
        "neuron with a contaminant of its own) are merged and the fit judged again, as are two on one soma whose traces "
        "follow each other (r ≥ 0.5) when one lies within 2 gSig of the field's edge (not judged there). 0: none "
        "of these.")
    halo_thr: Annotated[float, Number] = Field(
        0.0, ge=0, title="halo_thr",
        description="1P, with focus_thr: a component whose own image keeps, 2–3 gSig out, more than this many "
        "times the fit's median share of its core's light (read above the level 5–6 gSig out) is rejected as out "
        "of focus. Measured on cortex L2/3 at gSig 3 with looser min_corr / min_pnr (0.6 / 4): 1.8 takes most of "
        "the out-of-focus components those thresholds add; on CA1 at gSig 6 it only costs a few true cells. "
        "0: off.")
    min_skew: Annotated[float, Number] = Field(0.0, ge=0, title="min_skew", description=(
        "1P, with focus_thr: a component whose denoised trace's skewness is below this is rejected: calcium rises in "
        "sparse transients (skewed up), a blood vessel's pulsing does not (realistic movies: vessel followers 0.8–1.3, "
        "cells from 1.5 bar a few on a vessel). 1.4 where components follow vessels in a long recording; not on short "
        "clips (tens of frames: too noisy) or for cells firing ~1 Hz or more all the time (skewed less). 0: off."))
    halo_tail: Annotated[bool, Flag] = Field(
        False, title="halo_tail",
        description="1P: carry each footprint's halo past the last ring of its weights that is significant on its "
        "own, along the decay of the rings before it, down to 2% of its peak. For small cells (cortex L2/3 at gSig "
        "3) whose faint far halo holds a good share of their light: on seven unseen realistic cortex movies median "
        "IoU .75–.77 → .80–.82, F1@IoU0.5 equal or higher; on CA1 at gSig 6 it takes dim cells' broad light too "
        "and costs F1@IoU0.5. Off by default.")
    compact_thr: Annotated[float, Number] = Field(
        0.7, ge=0, lt=1, title="compact_thr",
        description="2P (greedy_roi): a component holding less than this share of its footprint's weight within 1.5 "
        "soma radii of its centre (the radius: gSig, or where larger the median footprint radius of the components "
        "whose traces are skewed up), and whose raw trace is not skewed up as a cell's is (skewness below 1), is "
        "rejected as neuropil; it stays in the results, marked rejected (idx_components_bad). A soma's footprint (a "
        "ring round its nucleus, or a disc) holds nearly all its weight there; a component that took up the "
        "neuropil's fluctuation spreads over several somata's area and follows a sum over many cells. On unseen "
        "realistic 2P cortex movies with neuropil: F1 at IoU > 0.3 .67 → .80–.85 (precision ~.58 → ~.90, recall −.02 "
        "at most); on the Gaussian 2P benchmark, without neuropil, F1 .960 → .968 "
        "(benchmarks/findings/two_photon_realistic.md). 0: off.")

    @model_validator(mode="after")
    def _check_combinations(self) -> "Params":
        if self.rf is not None and self.stride >= 2 * self.rf:
            raise ValueError(
                f"stride={self.stride} must be smaller than 2*rf={2 * self.rf} (patches would not overlap "
                "or tile the field of view); lower stride or raise rf")
        if self.rf is not None and 2 * self.rf < self.gSiz:
            raise ValueError(
                f"rf={self.rf} makes patches {2 * self.rf} px wide, narrower than one neuron's bounding box "
                f"(gSiz={self.gSiz}): no patch can hold a whole cell and almost none are found; raise rf to at "
                f"least {-(-self.gSiz // 2)} (about 2-3 cell diameters is usual), or unset rf for one patch")
        if self.method_init == "sparse_NMF" and self.K is None:
            raise ValueError(
                "K='auto' is not possible with method_init='sparse_NMF': a factorisation needs its rank, the number "
                "of components per patch; set K")
        if self.gSig != "auto" and self.gSiz < self.gSig:
            raise ValueError(
                f"gSiz={self.gSiz} is smaller than gSig={self.gSig}: the bounding box must contain the neuron; "
                "use gSiz >= 2*gSig+1")
        return self

    def minimum_frames(self) -> int:
        """Frames a series must have so that the model has enough samples after downsampling."""
        return MIN_DOWNSAMPLED_FRAMES * self.tsub


#: The seed's table in its order, then the motion section.
PARAM_NAMES: tuple[str, ...] = tuple(
    name for name in Params.model_fields if name not in MOTION_PARAM_NAMES) + MOTION_PARAM_NAMES

#: The seed's "1P vs 2P" table, exactly.
PRESETS: dict[str, dict[str, Any]] = {
    "1p": dict(K=None, method_init="corr_pnr", del_duplicates=True, nb=0, low_rank_background=False,
               nb_patch=0, normalize_init=False, center_psf=True, bas_nonneg=False),
    "2p": dict(K=4, method_init="greedy_roi", del_duplicates=False, nb=2, low_rank_background=True,
               nb_patch=1, normalize_init=True, center_psf=False, bas_nonneg=True),
}


#: The initialisations each preset is made for (seed: corr_pnr for 1P, greedy_roi for 2P, sparse_NMF for
#: dendrites, with the 2P background model).
PRESET_INITS: dict[str, tuple[str, ...]] = {"1p": ("corr_pnr",), "2p": ("greedy_roi", "sparse_NMF")}


def check_preset_agrees(preset: str, table: Mapping[str, Any]) -> None:
    """Refuse a table (form, ``--set``) whose method_init belongs to the other preset.

    A preset fills in only the fields the table leaves out; a 2P preset run with corr_pnr (or a
    1P one with greedy_roi) is nearly always a preset switched without the form following (or
    the reverse), and running either half would not be what the user sees.
    """
    method = table.get("method_init")
    owner = next((name for name, inits in PRESET_INITS.items() if method in inits), None)
    if owner is None or owner == preset:
        return
    wanted = " or ".join(repr(name) for name in PRESET_INITS[preset])
    raise ParameterError(
        f"preset={preset!r} does not match method_init={method!r}, the {owner.upper()} initialisation: choose "
        f"preset {owner!r} (the fields you set still run as given), or set method_init to {wanted} with the other "
        f"{preset.upper()} values (in the Prefect UI: the {_DEPLOYMENT_OF[preset]} deployment comes pre-filled "
        "with them)")


#: The Prefect deployment pre-filled with each preset (named in messages only).
_DEPLOYMENT_OF = {"1p": "source-extraction", "2p": "source-extraction-2p"}


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


def build_params(values: Mapping[str, Any], *, sources: Mapping[str, str] | None = None) -> Params:
    """Validate flat values into :class:`Params`; errors name the parameter, the value and what is allowed.

    ``sources`` (name → where the value came from) is added to the message, so a bad value from a
    parameters file names the file.
    """
    unknown = sorted(set(values) - set(PARAM_NAMES))
    if unknown:
        raise ParameterError(unknown_message(unknown))
    try:
        return Params(**values)
    except ValidationError as err:
        raise ParameterError(validation_message(err, values, sources)) from None


def value_problem(name: str, value: Any) -> str | None:
    """What is wrong with one parameter's value on its own (type and range), or None.

    Lets a parameters file name its own bad key; rules between parameters are checked when
    everything is combined (:func:`build_params`).
    """
    try:
        _field_adapter(name).validate_python(value)
    except ValidationError as err:
        return "; ".join(dict.fromkeys(
            _message(name, e) for e in err.errors() if e["type"] != "literal_error" or name not in AUTO_FIELDS))
    return None


@functools.cache
def _field_adapter(name: str) -> TypeAdapter:
    info = Params.model_fields[name]
    return TypeAdapter(Annotated[info.annotation, info], config=ConfigDict(allow_inf_nan=False))


def _or_auto(name: str) -> str:
    return " (or 'auto')" if name in AUTO_FIELDS else ""


def _message(name: str, problem: Mapping[str, Any]) -> str:
    """pydantic's message for one problem, in our words. A null where a number is needed is what ``auto`` on the
    command line becomes: pydantic's "must be a valid integer" named neither 'auto' nor the fix."""
    if problem["input"] is None and problem["type"] in ("int_type", "float_type"):
        return "has no 'auto' (null); give a number, or leave it out for its default"
    return problem["msg"].removeprefix("Value error, ").replace("Input should be", "must be") + _or_auto(name)


@functools.cache
def literal_words(name: str) -> tuple[str, ...]:
    """The words a parameter takes as values of its own (motion_correction's "none", gSig's "auto"), so that the
    text readers (``--set``, ``--grid``) keep such a word instead of reading "none" as a null; () for other names."""
    field = Params.model_fields.get(name)
    words: list[str] = []

    def collect(annotation: Any) -> None:
        if get_origin(annotation) is Literal:
            words.extend(arg for arg in get_args(annotation) if isinstance(arg, str))
        else:
            for arg in get_args(annotation):
                collect(arg)

    if field is not None:
        collect(field.annotation)
    return tuple(words)


def unknown_message(names: list[str], where: str = "") -> str:
    """One line for unknown parameter names, with the closest known name when there is one."""
    hints = [f"did you mean {close[0]!r} for {name!r}?" for name in names
             if (close := difflib.get_close_matches(name, PARAM_NAMES, n=1))]
    hint = "; " + " ".join(hints) if hints else f"; known: {', '.join(PARAM_NAMES)}"
    return f"unknown parameter(s) {', '.join(map(str, names))}{where}{hint}"


def validation_message(err: ValidationError, values: Mapping[str, Any],
                       sources: Mapping[str, str] | None = None) -> str:
    """pydantic's errors as one line: ``invalid parameters: parameter gSig=0 (table): must be greater than 0``."""
    parts: list[str] = []
    for problem in err.errors():
        name = str(problem["loc"][0]) if problem["loc"] else ""
        if problem["type"] == "literal_error" and name in AUTO_FIELDS:
            continue  # the number's own message says "(or 'auto')"
        message = _message(name, problem)
        if problem["type"] == "extra_forbidden":
            part = unknown_message([name])
        elif name in values:
            source = f" ({sources[name]})" if sources and name in sources else ""
            part = f"parameter {name}={value_text(values[name])}{source}: {message}"
        else:
            part = message + _sources_of_mentioned(message, sources)
        if part not in parts:
            parts.append(part)
    return "invalid parameters: " + "; ".join(parts)


def _sources_of_mentioned(message: str, sources: Mapping[str, str] | None) -> str:
    """Where the parameters a cross-field message names came from: `` (gSiz from file p.json, ...)``."""
    named = [name for name in PARAM_NAMES if re.search(rf"\b{name}=", message)]
    found = [f"{name} from {sources[name]}" for name in named if sources and name in sources]
    return f" ({', '.join(found)})" if found else ""


def value_text(value: Any, limit: int = 60) -> str:
    """A value as a short one-line repr (a huge or deeply nested value would flood the message)."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<deeply nested {type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    reference tool ignores it silently and users lose a run finding out.  A table method_init of
    the other preset is refused (:func:`check_preset_agrees`); the file, applied last, may change it.
    """
    if preset not in PRESETS:
        raise ParameterError(f"preset={preset!r} is not known; choose one of {', '.join(PRESETS)}")
    values: dict[str, Any] = {}
    sources = {name: "default" for name in PARAM_NAMES}
    notes: list[str] = []

    def apply(layer: Mapping[str, Any], source: str) -> None:
        unknown = sorted(set(layer) - set(PARAM_NAMES))
        if unknown:
            raise ParameterError(unknown_message(unknown, f" ({source})"))
        values.update(layer)
        sources.update({name: source for name in layer})

    apply(PRESETS[preset], f"preset {preset}")
    apply(table or {}, "table")
    check_preset_agrees(preset, table or {})
    if file_values is not None:
        label = file_name or "parameters file"
        if overwrite_params:
            apply(file_values, f"file {label}")
        else:
            notes.append(
                f"{label} was given but overwrite_params is False: its values were NOT applied "
                f"(it sets {', '.join(sorted(file_values)) or 'nothing this tool uses'}); "
                "set overwrite_params to use it")
    params = build_params(values, sources=sources)
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
        "motion": {
            "max_shifts": params.max_shifts, "strides": params.strides, "overlaps": params.overlaps,
            "max_deviation_rigid": params.max_deviation_rigid, "pw_rigid": params.piecewise,
            "gSig_filt": params.gSig_filt, "border_nan": params.border_nan, "niter_rig": params.niter_rig,
        },
    }
